//! INSERT, UPDATE and DELETE: values are coerced to column types, embedded columns are embedded,
//! and each statement is one atomic storage batch.

use crate::sql::binder::absolute_path;
use crate::sql::embedding::{EmbedCtx, embed_rows, is_embedded};
use crate::sql::expr::{EvalCtx, Expr};
use crate::sql::query_resolve::resolve_query;
use crate::sql::query_vec::QueryArg;
use crate::sql::value_fmt::sql_literal;
use crate::{
    ColumnType, Database, Error, ImageLimits, ImageSource, Result, Row, RowId, TableSchema, Value,
};

/// Runs an INSERT; returns the number of rows inserted.
pub fn run_insert(
    db: &Database,
    schema: &TableSchema,
    columns: &[usize],
    rows: &[Vec<Expr>],
    params: &[Value],
    embed: &EmbedCtx<'_>,
) -> Result<usize> {
    let ctx = EvalCtx {
        params,
        queries: &[],
        aggs: &[],
    };
    let mut out = Vec::with_capacity(rows.len());
    // Errors name a row by its place in the VALUES list, the first being row 1.
    let numbers: Vec<usize> = (1..=rows.len()).collect();
    for (&number, exprs) in numbers.iter().zip(rows) {
        let mut values = vec![Value::Null; schema.columns.len()];
        for (&c, e) in columns.iter().zip(exprs) {
            let v = e.eval(0, &Row::default(), &ctx)?;
            let slot = values.get_mut(c).ok_or_else(|| no_column(schema, c))?;
            *slot = coerce(schema, c, number, v)?;
        }
        out.push(Row::new(values));
    }
    embed_rows(db, schema, &mut out, None, &numbers, embed)?;
    Ok(db.insert(&schema.name, out)?.len())
}

/// How often an UPDATE re-reads its rows when other writes keep landing in between.
const UPDATE_TRIES: usize = 100;

/// Runs an UPDATE; returns the number of rows changed. The new rows are computed from a snapshot
/// (outside the writer lock: embedding can take long) and written only if the table has not
/// changed since; otherwise the statement reads again. All rows change in one WAL record, and a
/// failure on any row changes nothing.
pub fn run_update(
    db: &Database,
    schema: &TableSchema,
    assignments: &[(usize, Expr)],
    filter: Option<&Expr>,
    queries: &[QueryArg],
    params: &[Value],
    embed: &EmbedCtx<'_>,
) -> Result<usize> {
    for _ in 0..UPDATE_TRIES {
        let snap = db.snapshot(&schema.name)?;
        let changed = update_rows(
            db,
            &snap,
            schema,
            assignments,
            filter,
            queries,
            params,
            embed,
        )?;
        if changed.is_empty() {
            return Ok(0);
        }
        if let Some(n) = db.update_if_unchanged(&schema.name, &snap, changed)? {
            return Ok(n);
        }
        // Another write landed in between (so the database made progress): let it run.
        std::thread::yield_now();
    }
    Err(Error::Sql(format!(
        "UPDATE of {} gave up after {UPDATE_TRIES} tries: other writes kept changing the table",
        schema.name
    )))
}

/// The rows an UPDATE writes, computed from `snap`.
#[allow(clippy::too_many_arguments)]
fn update_rows(
    db: &Database,
    snap: &crate::TableSnapshot,
    schema: &TableSchema,
    assignments: &[(usize, Expr)],
    filter: Option<&Expr>,
    queries: &[QueryArg],
    params: &[Value],
    embed: &EmbedCtx<'_>,
) -> Result<Vec<(RowId, Row)>> {
    let mut used: Vec<&Expr> = assignments.iter().map(|(_, e)| e).collect();
    used.extend(filter);
    let qv = resolve_for(db, snap, schema, queries, &used, params, embed.limits)?;
    let ctx = EvalCtx {
        params,
        queries: &qv,
        aggs: &[],
    };
    let pk = schema
        .primary_key
        .as_deref()
        .and_then(|p| schema.column_index(p));
    let mut changed: Vec<(RowId, Row)> = Vec::new();
    let mut numbers = Vec::new();
    for r in snap.scan() {
        let (id, row) = r?;
        if let Some(f) = filter
            && !f.eval_condition(id, &row, &ctx)?
        {
            continue;
        }
        let mut new = row.clone();
        new.embeddings.resize(new.values.len(), None);
        // Errors name an updated row by its id.
        let number = usize::try_from(id).unwrap_or(usize::MAX);
        for &(c, ref e) in assignments {
            let v = coerce(schema, c, number, e.eval(id, &row, &ctx)?)?;
            // The snapshot's rows have the shape of the planned schema unless the table was
            // dropped and created again in between: then this is an error, not a panic.
            let (Some(old), Some(slot)) = (row.values.get(c), new.values.get_mut(c)) else {
                return Err(no_column(schema, c));
            };
            if Some(c) == pk && v != *old {
                let name = schema.columns.get(c).map_or("", |col| col.name.as_str());
                return Err(Error::NotSupported(format!(
                    "changing the primary key {}.{name} (row {id})",
                    schema.name
                )));
            }
            *slot = v;
            // `embeddings` was resized to the length of `values` above.
            if is_embedded(schema, c)
                && let Some(emb) = new.embeddings.get_mut(c)
            {
                *emb = None;
            }
        }
        numbers.push(number);
        changed.push((id, new));
    }
    let embedded: Vec<usize> = assignments
        .iter()
        .map(|(c, _)| *c)
        .filter(|&c| is_embedded(schema, c))
        .collect();
    if !embedded.is_empty() {
        let mut rows: Vec<Row> = changed.iter().map(|(_, r)| r.clone()).collect();
        embed_rows(db, schema, &mut rows, Some(&embedded), &numbers, embed)?;
        for ((_, slot), row) in changed.iter_mut().zip(rows) {
            *slot = row;
        }
    }
    Ok(changed)
}

/// Runs a DELETE; returns the number of rows deleted.
pub fn run_delete(
    db: &Database,
    schema: &TableSchema,
    filter: Option<&Expr>,
    queries: &[QueryArg],
    params: &[Value],
    limits: &ImageLimits,
) -> Result<usize> {
    let snap = db.snapshot(&schema.name)?;
    let used: Vec<&Expr> = filter.into_iter().collect();
    let qv = resolve_for(db, &snap, schema, queries, &used, params, limits)?;
    let ctx = EvalCtx {
        params,
        queries: &qv,
        aggs: &[],
    };
    let pred = |id: RowId, row: &Row| match filter {
        None => Ok(true),
        Some(f) => f.eval_condition(id, row, &ctx),
    };
    // A predicate that fails on some row fails the statement before anything is deleted.
    db.try_delete_where(&schema.name, &pred)
}

fn resolve_for(
    db: &Database,
    snap: &crate::TableSnapshot,
    schema: &TableSchema,
    queries: &[QueryArg],
    exprs: &[&Expr],
    params: &[Value],
    limits: &ImageLimits,
) -> Result<Vec<Vec<f32>>> {
    let mut cols = vec![None; queries.len()];
    for f in exprs {
        f.walk(&mut |x| {
            if let Expr::Similarity { column, query, .. } = x {
                // A query index out of range stays unresolved: evaluating it is an error.
                if let Some(slot) = cols.get_mut(*query) {
                    slot.get_or_insert(*column);
                }
            }
        });
    }
    queries
        .iter()
        .zip(cols)
        .map(|(q, c)| match c {
            Some(c) => resolve_query(db, snap, schema, c, q, params, limits),
            None => Ok(Vec::new()),
        })
        .collect()
}

/// Converts a value to the type of column `c` (errors call it row `r`: see
/// [`Error::TypeMismatch`]).
pub fn coerce(schema: &TableSchema, c: usize, r: usize, v: Value) -> Result<Value> {
    let col = schema.columns.get(c).ok_or_else(|| no_column(schema, c))?;
    let mismatch = |v: &Value| Error::TypeMismatch {
        table: schema.name.clone(),
        column: col.name.clone(),
        row: r,
        detail: format!(
            "expected {}, got {}",
            crate::sql::ddl::type_name(col),
            sql_literal(v)
        ),
    };
    Ok(match (col.ty, v) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Integer, Value::Integer(i)) => Value::Integer(i),
        (ColumnType::Integer, Value::Real(x)) if x.fract() == 0.0 && x.abs() < 9.2e18 => {
            Value::Integer(x as i64)
        }
        (ColumnType::Real, Value::Real(x)) => Value::Real(x),
        (ColumnType::Real, Value::Integer(i)) => Value::Real(i as f64),
        (ColumnType::Text, Value::Text(s)) => Value::Text(s),
        (ColumnType::Boolean, Value::Boolean(b)) => Value::Boolean(b),
        (ColumnType::Boolean, Value::Integer(i @ (0 | 1))) => Value::Boolean(i == 1),
        (ColumnType::Blob, Value::Blob(b)) => Value::Blob(b),
        (ColumnType::Image, Value::Text(p)) => Value::Image(ImageSource::Path(absolute_path(&p)?)),
        (ColumnType::Image, Value::Blob(b)) => Value::Image(ImageSource::Bytes(b)),
        (ColumnType::Image, Value::Image(ImageSource::Path(p))) => {
            Value::Image(ImageSource::Path(absolute_path(&p)?))
        }
        (ColumnType::Image, Value::Image(s)) => Value::Image(s),
        (ColumnType::Vector(n), Value::Vector(v)) => {
            if v.len() != n as usize {
                return Err(Error::TypeMismatch {
                    table: schema.name.clone(),
                    column: col.name.clone(),
                    row: r,
                    detail: format!("expected VECTOR({n}), got {} dimensions", v.len()),
                });
            }
            Value::Vector(v)
        }
        (_, other) => return Err(mismatch(&other)),
    })
}

/// Column `c` (an index from the plan) is not in `schema`.
fn no_column(schema: &TableSchema, c: usize) -> Error {
    Error::NoSuchColumn {
        table: schema.name.clone(),
        column: format!("#{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;

    fn two_columns() -> TableSchema {
        TableSchema::new(
            "t",
            vec![
                Column::new("a", ColumnType::Integer),
                Column::new("b", ColumnType::Integer),
            ],
        )
    }

    #[test]
    fn a_column_index_outside_the_schema_is_an_error() {
        let err = coerce(&two_columns(), 2, 0, Value::Integer(1)).unwrap_err();
        assert!(matches!(err, Error::NoSuchColumn { .. }), "{err}");
    }

    #[test]
    fn update_of_rows_narrower_than_the_plan_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("db")).unwrap();
        db.execute("CREATE TABLE t (a INTEGER)", &[]).unwrap();
        db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        // A plan made for a two-column `t`, run on the rows of a one-column `t` (as when the
        // table is dropped and created again between planning and running): this indexed out
        // of range before.
        let snap = db.snapshot("t").unwrap();
        let set_b = [(1, Expr::Literal(Value::Integer(2)))];
        let err = update_rows(
            &db,
            &snap,
            &two_columns(),
            &set_b,
            None,
            &[],
            &[],
            &EmbedCtx {
                limits: &ImageLimits::default(),
                interrupt: &std::sync::atomic::AtomicBool::new(false),
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoSuchColumn { .. }), "{err}");
    }
}
