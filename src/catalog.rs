//! The catalog: table schemas with their stable ids, as stored in the manifest.
//!
//! Schemas are stored as JSON inside the (checksummed) manifest: small, readable with `jq` when
//! debugging, and the schema types stay free of serialisation derives.

use serde::{Deserialize, Serialize};

use crate::{Column, ColumnType, HnswParams, Metric, TableSchema};

/// A stored schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSchema {
    name: String,
    columns: Vec<StoredColumn>,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    model: Option<String>,
    model_identity: Option<String>,
    primary_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct StoredColumn {
    name: String,
    /// INTEGER, REAL, TEXT, BOOLEAN, BLOB, IMAGE or VECTOR.
    ty: String,
    nullable: bool,
    embedded: bool,
    metric: String,
    dim: u32,
}

impl StoredSchema {
    /// The stored form of `s`.
    pub fn from_schema(s: &TableSchema) -> StoredSchema {
        StoredSchema {
            name: s.name.clone(),
            columns: s
                .columns
                .iter()
                .map(|c| StoredColumn {
                    name: c.name.clone(),
                    ty: match c.ty {
                        ColumnType::Vector(_) => "VECTOR".to_string(),
                        t => t.to_string(),
                    },
                    nullable: c.nullable,
                    embedded: c.embedded,
                    metric: c.metric.name().to_string(),
                    dim: c.dim,
                })
                .collect(),
            m: s.hnsw.m,
            ef_construction: s.hnsw.ef_construction,
            ef_search: s.hnsw.ef_search,
            model: s.model.clone(),
            model_identity: s.model_identity.clone(),
            primary_key: s.primary_key.clone(),
        }
    }

    /// Back to a schema; `Err` names what is unknown.
    pub fn to_schema(&self) -> Result<TableSchema, String> {
        let mut columns = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let ty = match c.ty.as_str() {
                "INTEGER" => ColumnType::Integer,
                "REAL" => ColumnType::Real,
                "TEXT" => ColumnType::Text,
                "BOOLEAN" => ColumnType::Boolean,
                "BLOB" => ColumnType::Blob,
                "IMAGE" => ColumnType::Image,
                "VECTOR" => ColumnType::Vector(c.dim),
                t => {
                    return Err(format!(
                        "unknown column type {t} for {}.{}",
                        self.name, c.name
                    ));
                }
            };
            let metric = Metric::parse(&c.metric).ok_or_else(|| {
                format!("unknown metric {} for {}.{}", c.metric, self.name, c.name)
            })?;
            columns.push(Column {
                name: c.name.clone(),
                ty,
                nullable: c.nullable,
                embedded: c.embedded,
                metric,
                dim: c.dim,
            });
        }
        Ok(TableSchema {
            name: self.name.clone(),
            columns,
            hnsw: HnswParams {
                m: self.m,
                ef_construction: self.ef_construction,
                ef_search: self.ef_search,
            },
            model: self.model.clone(),
            model_identity: self.model_identity.clone(),
            primary_key: self.primary_key.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_roundtrip() {
        let mut s = TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("img", ColumnType::Image),
                Column::new("v", ColumnType::Vector(8)),
            ],
        );
        s.columns[2].metric = Metric::L2;
        s.columns[1].dim = 512;
        s.primary_key = Some("id".into());
        s.model_identity = Some("m dim=512".into());
        let json = serde_json::to_string(&StoredSchema::from_schema(&s)).unwrap();
        let back: StoredSchema = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_schema().unwrap(), s);
    }
}
