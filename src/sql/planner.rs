//! Planning: one parsed statement → [`Plan`]. Names and types are resolved against the catalog;
//! nothing is read or written.

use sqlparser::ast::{
    self, AssignmentTarget, FromTable, GroupByExpr, LimitClause, ObjectType, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableObject,
};

use crate::sql::binder::{Binder, Params, const_eval};
use crate::sql::ddl::{create_table_schema, table_name};
use crate::sql::expr::Expr;
use crate::sql::plan::{Count, ImageSetting, Plan, SelectPlan, Setting, VectorSearch};
use crate::sql::query_vec::SimKind;
use crate::{Error, Result, TableSchema, Value};

/// Where the planner finds table schemas.
pub trait Catalog {
    /// The schema of `name` (case-insensitive), or [`Error::NoSuchTable`].
    fn schema(&self, name: &str) -> Result<TableSchema>;
}

/// Plans `stmt`; `params` numbers and counts its placeholders.
pub fn plan(stmt: &Statement, catalog: &dyn Catalog, params: &mut Params<'_>) -> Result<Plan> {
    match stmt {
        Statement::CreateTable(ct) => Ok(Plan::CreateTable {
            schema: create_table_schema(ct)?,
            if_not_exists: ct.if_not_exists,
        }),
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => Ok(Plan::DropTable {
            names: names.iter().map(table_name).collect::<Result<_>>()?,
            if_exists: *if_exists,
        }),
        Statement::ShowTables { .. } => Ok(Plan::ShowTables),
        Statement::ExplainTable { table_name: t, .. } => {
            let name = table_name(t)?;
            catalog.schema(&name)?;
            Ok(Plan::Describe(name))
        }
        Statement::Explain {
            statement, analyze, ..
        } => {
            if *analyze {
                return Err(Error::NotSupported("EXPLAIN ANALYZE".into()));
            }
            Ok(Plan::Explain(Box::new(plan(statement, catalog, params)?)))
        }
        Statement::Query(q) => Ok(Plan::Select(Box::new(plan_query(q, catalog, params)?))),
        Statement::Insert(ins) => plan_insert(ins, catalog, params),
        Statement::Update(up) => plan_update(up, catalog, params),
        Statement::Delete(del) => plan_delete(del, catalog, params),
        Statement::Set(set) => plan_set(set, params),
        other => Err(Error::NotSupported(format!(
            "statement {}",
            first_words(other)
        ))),
    }
}

fn first_words(stmt: &Statement) -> String {
    let text = stmt.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The image limit `SET name` changes, if `name` is one.
fn image_setting(name: &str) -> Option<ImageSetting> {
    Some(match name {
        "max_image_bytes" => ImageSetting::MaxBytes,
        "max_image_pixels" => ImageSetting::MaxPixels,
        "max_image_decode_bytes" => ImageSetting::MaxDecodeBytes,
        "image_decode_deadline_ms" => ImageSetting::DecodeDeadlineMs,
        _ => return None,
    })
}

fn plan_set(set: &ast::Set, params: &mut Params<'_>) -> Result<Plan> {
    let ast::Set::SingleAssignment {
        variable, values, ..
    } = set
    else {
        return Err(Error::NotSupported(format!("{set}")));
    };
    let name = variable.to_string().to_ascii_lowercase();
    let [value] = values.as_slice() else {
        return Err(Error::Sql(format!("SET {name} takes one value")));
    };
    let is_default =
        matches!(value, ast::Expr::Identifier(id) if id.value.eq_ignore_ascii_case("default"));
    let v = if is_default {
        Value::Null
    } else {
        let e = Binder::new(None, params).bind(value)?;
        if e.reads_params() {
            return Err(Error::NotSupported(format!(
                "parameters in SET {name}: write the value"
            )));
        }
        const_eval(&e)?
    };
    if let Some(which) = image_setting(&name) {
        let deadline = which == ImageSetting::DecodeDeadlineMs;
        return match v {
            Value::Null => Ok(Plan::Set(Setting::Image(which, None))),
            Value::Integer(n) if n > 0 || (n == 0 && deadline) => {
                Ok(Plan::Set(Setting::Image(which, Some(n as u64))))
            }
            v => Err(Error::InvalidArgument(format!(
                "{name} must be a positive integer{} or DEFAULT, got {}",
                if deadline { " (0: no deadline)" } else { "" },
                crate::sql::value_fmt::sql_literal(&v)
            ))),
        };
    }
    match (name.as_str(), v) {
        ("ef_search", Value::Null) => Ok(Plan::Set(Setting::EfSearch(None))),
        ("ef_search", Value::Integer(n)) if (1..=10_000).contains(&n) => {
            Ok(Plan::Set(Setting::EfSearch(Some(n as usize))))
        }
        ("ef_search", v) => Err(Error::InvalidArgument(format!(
            "ef_search must be an integer in 1..=10000 or DEFAULT, got {}",
            crate::sql::value_fmt::sql_literal(&v)
        ))),
        ("exact", Value::Boolean(b)) => Ok(Plan::Set(Setting::Exact(b))),
        ("exact", Value::Null) => Ok(Plan::Set(Setting::Exact(false))),
        ("exact", _) => Err(Error::InvalidArgument("exact must be true or false".into())),
        _ => Err(Error::InvalidArgument(format!(
            "unknown setting {name} (known: ef_search, exact, max_image_bytes, max_image_pixels, \
             max_image_decode_bytes, image_decode_deadline_ms)"
        ))),
    }
}

fn plan_query(
    q: &ast::Query,
    catalog: &dyn Catalog,
    params: &mut Params<'_>,
) -> Result<SelectPlan> {
    if q.with.is_some() {
        return Err(Error::NotSupported(
            "WITH (common table expressions)".into(),
        ));
    }
    if q.fetch.is_some() || !q.locks.is_empty() || !q.pipe_operators.is_empty() {
        return Err(Error::NotSupported(
            "FETCH / FOR UPDATE / pipe operators".into(),
        ));
    }
    let select = match q.body.as_ref() {
        SetExpr::Select(s) => s,
        SetExpr::Query(_) => return Err(Error::NotSupported("subqueries".into())),
        SetExpr::SetOperation { op, .. } => return Err(Error::NotSupported(format!("{op}"))),
        SetExpr::Values(_) => return Err(Error::NotSupported("VALUES as a query".into())),
        other => return Err(Error::NotSupported(format!("query {other}"))),
    };
    if select.distinct.is_some() {
        return Err(Error::NotSupported("SELECT DISTINCT".into()));
    }
    if select.having.is_some() {
        return Err(Error::NotSupported("HAVING".into()));
    }
    match &select.group_by {
        GroupByExpr::Expressions(e, _) if e.is_empty() => {}
        _ => return Err(Error::NotSupported("GROUP BY".into())),
    }
    if select.into.is_some() || select.top.is_some() || select.qualify.is_some() {
        return Err(Error::NotSupported("SELECT INTO / TOP / QUALIFY".into()));
    }
    let (schema, alias) = match select.from.as_slice() {
        [] => (None, None),
        [t] => {
            if !t.joins.is_empty() {
                return Err(Error::NotSupported("JOIN".into()));
            }
            if let TableFactor::Derived { .. } = &t.relation {
                return Err(Error::NotSupported("subqueries in FROM".into()));
            }
            let (name, alias) = single_table(std::slice::from_ref(t))?;
            (Some(catalog.schema(&name)?), alias)
        }
        _ => return Err(Error::NotSupported("JOIN (several tables in FROM)".into())),
    };
    let mut b = Binder::new(schema.as_ref(), params);
    b.alias = alias;
    // Clauses bind in the order planning needs them; `?` are numbered by text position anyway.
    let filter = select.selection.as_ref().map(|e| b.bind(e)).transpose()?;
    b.aggregates = Some(Vec::new());
    let mut projection = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _)
                if !b.qualifies(&table_name(n)?) =>
            {
                return Err(Error::Sql(format!(
                    "{n}.* names no table in FROM{}",
                    match (&schema, &b.alias) {
                        (Some(s), Some(a)) => format!(" (the table is {} AS {a})", s.name),
                        (Some(s), None) => format!(" (the table is {})", s.name),
                        _ => String::new(),
                    }
                )));
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(e), _) => {
                return Err(Error::NotSupported(format!("select item {e}.*")));
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                let Some(s) = schema.as_ref() else {
                    return Err(Error::Sql("SELECT * needs a table in FROM".into()));
                };
                for (i, c) in s.columns.iter().enumerate() {
                    projection.push((Expr::Column(i, c.name.clone()), c.name.clone()));
                }
            }
            SelectItem::UnnamedExpr(e) => {
                let bound = b.bind(e)?;
                let name = match &bound {
                    Expr::Column(_, n) => n.clone(),
                    _ => e.to_string(),
                };
                projection.push((bound, name));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                projection.push((b.bind(expr)?, alias.value.clone()));
            }
            other => return Err(Error::NotSupported(format!("select item {other}"))),
        }
    }
    let aggregates = b.aggregates.take().unwrap_or_default();
    if !aggregates.is_empty()
        && let Some((e, _)) = projection.iter().find(|(e, _)| e.reads_row())
    {
        return Err(Error::NotSupported(format!(
            "{e} must be inside an aggregate (GROUP BY is not supported)"
        )));
    }
    let mut order_by = Vec::new();
    if let Some(ob) = &q.order_by {
        let ast::OrderByKind::Expressions(keys) = &ob.kind else {
            return Err(Error::NotSupported("ORDER BY ALL".into()));
        };
        if ob.interpolate.is_some() {
            return Err(Error::NotSupported("INTERPOLATE".into()));
        }
        for k in keys {
            if k.options.nulls_first.is_some() || k.with_fill.is_some() {
                return Err(Error::NotSupported("NULLS FIRST/LAST, WITH FILL".into()));
            }
            let e = order_key(&k.expr, &projection, &mut b)?;
            // The headline rule: similarity sorts most similar first unless ASC is written;
            // distance (and everything else) sorts ascending unless DESC is written.
            let desc = match &k.options.sort {
                Some(ast::OrderBySort::Asc) => false,
                Some(ast::OrderBySort::Desc) => true,
                Some(ast::OrderBySort::Using(_)) => {
                    return Err(Error::NotSupported("ORDER BY ... USING".into()));
                }
                None => matches!(
                    e,
                    Expr::Similarity {
                        kind: SimKind::Similarity,
                        ..
                    }
                ),
            };
            order_by.push((e, desc));
        }
    }
    let (limit, offset) = limit_offset(q.limit_clause.as_ref(), &mut b)?;
    let queries = std::mem::take(&mut b.queries);
    let mut plan = SelectPlan {
        schema,
        filter,
        queries,
        search: None,
        projection,
        aggregates,
        order_by,
        limit,
        offset,
    };
    if let (Some(s), true, true, true) = (
        &plan.schema,
        plan.limit.is_some(),
        plan.aggregates.is_empty(),
        plan.order_by.len() == 1,
    ) && let Some((column, query, _)) = plan.similarity_order()
    {
        // The binder resolved `column` against this same schema.
        let c = s.columns.get(column).ok_or_else(|| Error::NoSuchColumn {
            table: s.name.clone(),
            column: format!("#{column}"),
        })?;
        plan.search = Some(VectorSearch {
            column,
            name: c.name.clone(),
            metric: c.metric,
            query,
        });
    }
    Ok(plan)
}

/// An ORDER BY key: an output alias, an output position (1-based), or an expression.
fn order_key(e: &ast::Expr, projection: &[(Expr, String)], b: &mut Binder<'_, '_>) -> Result<Expr> {
    if let ast::Expr::Identifier(id) = e
        && let Some((bound, _)) = projection
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(&id.value))
    {
        return Ok(bound.clone());
    }
    if let ast::Expr::Value(v) = e
        && let ast::Value::Number(n, _) = &v.value
    {
        let pos: usize = n
            .parse()
            .map_err(|_| Error::Sql(format!("bad ORDER BY position {n}")))?;
        return projection
            .get(pos.wrapping_sub(1))
            .map(|(e, _)| e.clone())
            .ok_or_else(|| Error::Sql(format!("ORDER BY position {pos} is out of range")));
    }
    let saved = b.aggregates.take();
    let out = b.bind(e);
    b.aggregates = saved;
    out
}

/// LIMIT and OFFSET, bound with the statement's binder so their parameters are numbered with the
/// rest. A count without parameters is checked now.
fn limit_offset(
    clause: Option<&LimitClause>,
    b: &mut Binder<'_, '_>,
) -> Result<(Option<Count>, Count)> {
    let mut count = |e: &ast::Expr, what: &str| -> Result<Count> {
        let bound = b.bind(e)?;
        if bound.reads_row() {
            return Err(Error::Sql(format!("{what} cannot read columns: {e}")));
        }
        if bound.reads_params() {
            return Ok(Count::Param(bound));
        }
        match const_eval(&bound)? {
            Value::Integer(n) if n >= 0 => Ok(Count::Fixed(n as usize)),
            _ => Err(Error::Sql(format!(
                "{what} must be a non-negative integer, got {e}"
            ))),
        }
    };
    match clause {
        None => Ok((None, Count::Fixed(0))),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(Error::NotSupported("LIMIT BY".into()));
            }
            let l = limit.as_ref().map(|e| count(e, "LIMIT")).transpose()?;
            let o = offset
                .as_ref()
                .map(|o| count(&o.value, "OFFSET"))
                .transpose()?;
            Ok((l, o.unwrap_or(Count::Fixed(0))))
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
            // `LIMIT o, l`: the offset comes first in the text, so bind it first.
            let o = count(offset, "OFFSET")?;
            Ok((Some(count(limit, "LIMIT")?), o))
        }
    }
}

/// The table of a FROM / UPDATE / DELETE that names exactly one, and its alias.
fn single_table(from: &[ast::TableWithJoins]) -> Result<(String, Option<String>)> {
    match from {
        [t] if t.joins.is_empty() => match &t.relation {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let alias = match alias {
                    None => None,
                    Some(a) if a.columns.is_empty() && a.at.is_none() => Some(a.name.value.clone()),
                    Some(a) => {
                        return Err(Error::NotSupported(format!("column aliases in FROM: {a}")));
                    }
                };
                Ok((table_name(name)?, alias))
            }
            other => Err(Error::NotSupported(format!("FROM {other}"))),
        },
        _ => Err(Error::NotSupported("JOIN / several tables".into())),
    }
}

fn plan_insert(ins: &ast::Insert, catalog: &dyn Catalog, params: &mut Params<'_>) -> Result<Plan> {
    let TableObject::TableName(name) = &ins.table else {
        return Err(Error::NotSupported("INSERT INTO TABLE FUNCTION".into()));
    };
    if ins.on.is_some()
        || ins.returning.is_some()
        || ins.or.is_some()
        || !ins.assignments.is_empty()
    {
        return Err(Error::NotSupported(
            "ON CONFLICT / RETURNING / INSERT OR / SET".into(),
        ));
    }
    let schema = catalog.schema(&table_name(name)?)?;
    let columns: Vec<usize> = if ins.columns.is_empty() {
        (0..schema.columns.len()).collect()
    } else {
        let mut cols = Vec::new();
        for c in &ins.columns {
            let i = schema.require_column(&c.to_string())?;
            if cols.contains(&i) {
                return Err(Error::Sql(format!("column {c} is given twice")));
            }
            cols.push(i);
        }
        cols
    };
    let Some(source) = &ins.source else {
        return Err(Error::Sql("INSERT needs VALUES".into()));
    };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Err(Error::NotSupported("INSERT ... SELECT".into()));
    };
    let mut b = Binder::new(None, params);
    let mut rows = Vec::with_capacity(values.rows.len());
    for (r, row) in values.rows.iter().enumerate() {
        if row.content.len() != columns.len() {
            return Err(Error::Sql(format!(
                "row {} of INSERT INTO {} has {} values for {} columns",
                r + 1,
                schema.name,
                row.content.len(),
                columns.len()
            )));
        }
        rows.push(
            row.content
                .iter()
                .map(|e| b.bind(e))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    if !b.queries.is_empty() {
        return Err(Error::NotSupported("similarity() in INSERT values".into()));
    }
    Ok(Plan::Insert {
        schema,
        columns,
        rows,
    })
}

fn plan_update(up: &ast::Update, catalog: &dyn Catalog, params: &mut Params<'_>) -> Result<Plan> {
    if up.from.is_some() || up.returning.is_some() || up.limit.is_some() || !up.order_by.is_empty()
    {
        return Err(Error::NotSupported(
            "UPDATE ... FROM / RETURNING / ORDER BY / LIMIT".into(),
        ));
    }
    let (name, alias) = single_table(std::slice::from_ref(&up.table))?;
    let schema = catalog.schema(&name)?;
    let mut b = Binder::new(Some(&schema), params);
    b.alias = alias;
    let mut assignments = Vec::new();
    for a in &up.assignments {
        let AssignmentTarget::ColumnName(col) = &a.target else {
            return Err(Error::NotSupported("tuple assignment".into()));
        };
        let i = schema.require_column(&col.to_string())?;
        assignments.push((i, b.bind(&a.value)?));
    }
    let filter = up.selection.as_ref().map(|e| b.bind(e)).transpose()?;
    let queries = std::mem::take(&mut b.queries);
    Ok(Plan::Update {
        schema,
        assignments,
        filter,
        queries,
    })
}

fn plan_delete(del: &ast::Delete, catalog: &dyn Catalog, params: &mut Params<'_>) -> Result<Plan> {
    if del.using.is_some()
        || del.returning.is_some()
        || del.limit.is_some()
        || !del.order_by.is_empty()
    {
        return Err(Error::NotSupported(
            "DELETE ... USING / RETURNING / ORDER BY / LIMIT".into(),
        ));
    }
    if !del.tables.is_empty() {
        return Err(Error::NotSupported("multi-table DELETE".into()));
    }
    let from = match &del.from {
        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
    };
    let (name, alias) = single_table(from)?;
    let schema = catalog.schema(&name)?;
    let mut b = Binder::new(Some(&schema), params);
    b.alias = alias;
    let filter = del.selection.as_ref().map(|e| b.bind(e)).transpose()?;
    let queries = std::mem::take(&mut b.queries);
    Ok(Plan::Delete {
        schema,
        filter,
        queries,
    })
}
