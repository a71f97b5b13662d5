//! CREATE TABLE → [`TableSchema`].
//!
//! Types: INTEGER (INT, BIGINT), REAL (FLOAT, DOUBLE), TEXT (VARCHAR, STRING), BOOLEAN (BOOL), BLOB
//! (BYTEA), IMAGE, VECTOR(n), and EMBEDDED_TEXT (a TEXT column embedded with the table's model).
//! Options in `WITH (...)`: model, m, ef_construction, ef_search, metric.

use sqlparser::ast::{self, ColumnOption, CreateTable, CreateTableOptions, DataType, SqlOption};

use crate::{Column, ColumnType, Error, Metric, Result, TableSchema, Value};

/// The schema a CREATE TABLE statement describes.
pub fn create_table_schema(ct: &CreateTable) -> Result<TableSchema> {
    let name = table_name(&ct.name)?;
    if ct.query.is_some() {
        return Err(Error::NotSupported("CREATE TABLE ... AS SELECT".into()));
    }
    if ct.or_replace || ct.temporary || ct.like.is_some() {
        return Err(Error::NotSupported(
            "CREATE OR REPLACE / TEMPORARY / LIKE".into(),
        ));
    }
    if !ct.constraints.is_empty() {
        return Err(Error::NotSupported(
            "table constraints (declare PRIMARY KEY and NOT NULL on the column)".into(),
        ));
    }
    let mut schema = TableSchema::new(name.clone(), Vec::new());
    let mut metric = Metric::Cosine;
    let options = match &ct.table_options {
        CreateTableOptions::None => &[][..],
        CreateTableOptions::With(o) => &o[..],
        other => return Err(Error::NotSupported(format!("table options {other}"))),
    };
    for opt in options {
        let SqlOption::KeyValue { key, value } = opt else {
            return Err(Error::NotSupported(format!("table option {opt}")));
        };
        let key = key.to_string().to_ascii_lowercase();
        let v = option_value(value)?;
        let bad = || Error::InvalidSchema(format!("table {name}: bad value for {key}: {value}"));
        let int = || match &v {
            Value::Integer(i) if *i > 0 => Ok(*i as usize),
            _ => Err(bad()),
        };
        match key.as_str() {
            "model" => match &v {
                Value::Text(s) if !s.is_empty() => schema.model = Some(s.clone()),
                _ => return Err(bad()),
            },
            "m" => schema.hnsw.m = int()?,
            "ef_construction" => schema.hnsw.ef_construction = int()?,
            "ef_search" => schema.hnsw.ef_search = int()?,
            "metric" => match &v {
                Value::Text(s) => metric = Metric::parse(s).ok_or_else(bad)?,
                _ => return Err(bad()),
            },
            _ => {
                return Err(Error::InvalidSchema(format!(
                    "table {name}: unknown option {key} (known: model, m, ef_construction, \
                     ef_search, metric)"
                )));
            }
        }
    }
    for col in &ct.columns {
        let (ty, embedded) = column_type(&name, col)?;
        let mut c = Column::new(col.name.value.clone(), ty);
        c.embedded = embedded;
        c.metric = metric;
        for opt in &col.options {
            match &opt.option {
                ColumnOption::NotNull => c.nullable = false,
                ColumnOption::Null => c.nullable = true,
                ColumnOption::PrimaryKey(_) => {
                    if ty != ColumnType::Integer {
                        return Err(Error::InvalidSchema(format!(
                            "{name}.{}: only an INTEGER column can be the PRIMARY KEY",
                            c.name
                        )));
                    }
                    if schema.primary_key.is_some() {
                        return Err(Error::InvalidSchema(format!(
                            "{name}: two PRIMARY KEY columns"
                        )));
                    }
                    schema.primary_key = Some(c.name.clone());
                }
                other => {
                    return Err(Error::NotSupported(format!(
                        "column option {other} on {name}.{}",
                        c.name
                    )));
                }
            }
        }
        schema.columns.push(c);
    }
    schema.validate()?;
    Ok(schema)
}

fn option_value(e: &ast::Expr) -> Result<Value> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| Error::InvalidSchema(format!("option value {n} must be an integer"))),
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                Ok(Value::Text(s.clone()))
            }
            _ => Err(Error::InvalidSchema(format!("bad option value {e}"))),
        },
        // `metric = cosine` without quotes.
        ast::Expr::Identifier(id) => Ok(Value::Text(id.value.clone())),
        _ => Err(Error::InvalidSchema(format!("bad option value {e}"))),
    }
}

/// The column type and whether the column is embedded.
fn column_type(table: &str, col: &ast::ColumnDef) -> Result<(ColumnType, bool)> {
    let bad = || {
        Error::InvalidSchema(format!(
            "{table}.{}: unsupported type {} (use INTEGER, REAL, TEXT, EMBEDDED_TEXT, BOOLEAN, \
             BLOB, IMAGE or VECTOR(n))",
            col.name.value, col.data_type
        ))
    };
    Ok(match &col.data_type {
        DataType::Int(_)
        | DataType::Integer(_)
        | DataType::BigInt(_)
        | DataType::SmallInt(_)
        | DataType::TinyInt(_)
        | DataType::Int64 => (ColumnType::Integer, false),
        DataType::Real
        | DataType::Float(_)
        | DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Float64 => (ColumnType::Real, false),
        DataType::Text | DataType::Varchar(_) | DataType::String(_) => (ColumnType::Text, false),
        DataType::Boolean | DataType::Bool => (ColumnType::Boolean, false),
        DataType::Blob(_) | DataType::Bytea => (ColumnType::Blob, false),
        DataType::Custom(name, mods) => {
            let n = name.to_string().to_ascii_uppercase();
            match (n.as_str(), mods.as_slice()) {
                ("IMAGE", []) => (ColumnType::Image, true),
                ("EMBEDDED_TEXT", []) => (ColumnType::Text, true),
                ("VECTOR", [ast::TypeModifier::Number(d, _)]) => match d.parse::<u32>() {
                    Ok(d) => (ColumnType::Vector(d), false),
                    Err(_) => return Err(bad()),
                },
                ("VECTOR", _) => {
                    return Err(Error::InvalidSchema(format!(
                        "{table}.{}: VECTOR needs a dimension, e.g. VECTOR(512)",
                        col.name.value
                    )));
                }
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    })
}

/// A single-part table name.
pub fn table_name(name: &ast::ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(id)] => Ok(id.value.clone()),
        _ => Err(Error::NotSupported(format!("qualified table name {name}"))),
    }
}

/// The type as written in CREATE TABLE (EMBEDDED_TEXT for embedded text).
pub fn type_name(c: &Column) -> String {
    if c.ty == ColumnType::Text && c.embedded {
        "EMBEDDED_TEXT".into()
    } else {
        c.ty.to_string()
    }
}

impl TableSchema {
    /// The `CREATE TABLE` statement that makes this table (what the shell's `.schema` prints).
    pub fn create_sql(&self) -> String {
        create_sql(self)
    }
}

/// The CREATE TABLE statement that makes `schema`.
pub(crate) fn create_sql(schema: &TableSchema) -> String {
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", c.name, type_name(c));
            if schema.primary_key.as_deref() == Some(&c.name) {
                s.push_str(" PRIMARY KEY");
            } else if !c.nullable {
                s.push_str(" NOT NULL");
            }
            s
        })
        .collect();
    let mut opts = Vec::new();
    if let Some(m) = &schema.model {
        opts.push(format!("model = '{}'", m.replace('\'', "''")));
    }
    let h = &schema.hnsw;
    opts.push(format!(
        "m = {}, ef_construction = {}, ef_search = {}",
        h.m, h.ef_construction, h.ef_search
    ));
    if let Some(c) = schema.columns.iter().find(|c| c.has_vector()) {
        opts.push(format!("metric = '{}'", c.metric.name()));
    }
    format!(
        "CREATE TABLE {} ({}) WITH ({});",
        schema.name,
        cols.join(", "),
        opts.join(", ")
    )
}
