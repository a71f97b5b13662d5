//! Runs a [`SelectPlan`]: a storage top-k search (filter pushed down) or a filtered scan, then
//! aggregation, sorting, OFFSET/LIMIT and projection.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use parking_lot::Mutex;

use crate::sql::embedding::{embed_query_image, embed_query_text};
use crate::sql::expr::{EvalCtx, Expr, as_f64, compare, sort_cmp};
use crate::sql::plan::{AggFunc, Aggregate, SelectPlan};
use crate::sql::query_vec::{QueryArg, row_vector};
use crate::sql::rows::{ColumnInfo, Rows};
use crate::sql::session::Settings;
use crate::{
    ColumnType, Database, Error, ImageSource, Result, Row, RowId, SearchRequest, TableSchema,
    TableSnapshot, Value,
};

/// How often long loops look at the interrupt flag.
const CHECK_EVERY: usize = 1024;

/// Runs `plan`.
pub fn run_select(
    db: &Database,
    plan: &SelectPlan,
    params: &[Value],
    settings: &Settings,
    interrupt: &AtomicBool,
) -> Result<Rows> {
    let Some(schema) = &plan.schema else {
        let queries = Vec::new();
        return finish(plan, vec![(0, Row::default())], params, &queries, None);
    };
    let snap = db.snapshot(&schema.name)?;
    let queries = resolve_queries(db, &snap, plan, params, false)?;
    let ctx = EvalCtx {
        params,
        queries: &queries,
        aggs: &[],
    };
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let keep = |id: RowId, row: &Row| match &plan.filter {
        None => true,
        Some(f) => f.eval_condition(id, row, &ctx).unwrap_or_else(|e| {
            first_error.lock().get_or_insert(e);
            false
        }),
    };
    let rows: Vec<(RowId, Row)> = if let Some(vs) = &plan.search {
        if vs.k == 0 {
            Vec::new()
        } else {
            let filter: &(dyn Fn(RowId, &Row) -> bool + Sync) = &keep;
            let filter_columns = plan.filter.as_ref().map(Expr::columns);
            let req = SearchRequest {
                column: vs.column,
                query: &queries[vs.query],
                k: vs.k,
                ef: settings.ef_search,
                exact: settings.exact,
                filter: plan.filter.as_ref().map(|_| filter),
                filter_columns: filter_columns.as_deref(),
            };
            snap.search(&req)?
                .into_iter()
                .map(|h| (h.id, h.row))
                .collect()
        }
    } else {
        // Without ORDER BY or aggregates the scan can stop once OFFSET + LIMIT rows matched.
        let stop_after = match (
            plan.order_by.is_empty() && plan.aggregates.is_empty(),
            plan.limit,
        ) {
            (true, Some(l)) => Some(l.saturating_add(plan.offset)),
            _ => None,
        };
        let mut out = Vec::new();
        for (n, r) in snap.scan().enumerate() {
            if n % CHECK_EVERY == 0 && interrupt.load(AtomicOrdering::Relaxed) {
                return Err(Error::Interrupted);
            }
            if stop_after.is_some_and(|s| out.len() >= s) {
                break;
            }
            let (id, row) = r?;
            if keep(id, &row) {
                out.push((id, row));
            }
        }
        out
    };
    if let Some(e) = first_error.into_inner() {
        return Err(e);
    }
    finish(plan, rows, params, &queries, Some(schema))
}

/// Aggregates or sorts, applies OFFSET/LIMIT (already applied in order by a search) and projects.
fn finish(
    plan: &SelectPlan,
    mut rows: Vec<(RowId, Row)>,
    params: &[Value],
    queries: &[Vec<f32>],
    schema: Option<&TableSchema>,
) -> Result<Rows> {
    let columns = schema.map_or(&[][..], |s| &s.columns[..]);
    let mut aggs = Vec::new();
    if !plan.aggregates.is_empty() {
        let ctx = EvalCtx {
            params,
            queries,
            aggs: &[],
        };
        for a in &plan.aggregates {
            aggs.push(aggregate(a, &rows, &ctx)?);
        }
        rows = vec![(0, Row::default())];
    }
    let ctx = EvalCtx {
        params,
        queries,
        aggs: &aggs,
    };
    if !plan.order_by.is_empty() && plan.search.is_none() {
        let mut keyed = Vec::with_capacity(rows.len());
        for (id, row) in rows {
            let keys = plan
                .order_by
                .iter()
                .map(|(e, _)| e.eval(id, &row, &ctx))
                .collect::<Result<Vec<_>>>()?;
            keyed.push((keys, id, row));
        }
        keyed.sort_by(|a, b| {
            for (i, (_, desc)) in plan.order_by.iter().enumerate() {
                let o = sort_cmp(&a.0[i], &b.0[i]);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.1.cmp(&b.1)
        });
        rows = keyed.into_iter().map(|(_, id, row)| (id, row)).collect();
    }
    let take = plan.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (id, row) in rows.into_iter().skip(plan.offset).take(take) {
        out.push(
            plan.projection
                .iter()
                .map(|(e, _)| e.eval(id, &row, &ctx))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    let infos = plan
        .projection
        .iter()
        .enumerate()
        .map(|(i, (e, name))| {
            let ty = match e {
                Expr::Agg(n, _) => agg_type(&plan.aggregates[*n], columns),
                other => other.ty(columns),
            }
            .or_else(|| out.iter().find_map(|r| r[i].column_type()));
            ColumnInfo {
                name: name.clone(),
                ty,
            }
        })
        .collect();
    Ok(Rows::new(infos, out))
}

fn agg_type(a: &Aggregate, columns: &[crate::Column]) -> Option<ColumnType> {
    match a.func {
        AggFunc::Count => Some(ColumnType::Integer),
        AggFunc::Avg => Some(ColumnType::Real),
        _ => a.arg.as_ref().and_then(|e| e.ty(columns)),
    }
}

fn aggregate(a: &Aggregate, rows: &[(RowId, Row)], ctx: &EvalCtx<'_>) -> Result<Value> {
    let Some(arg) = &a.arg else {
        return Ok(Value::Integer(rows.len() as i64));
    };
    let mut count = 0i64;
    let mut acc = Value::Null;
    let mut fsum = 0f64;
    for (id, row) in rows {
        let v = arg.eval(*id, row, ctx)?;
        if v.is_null() {
            continue;
        }
        count += 1;
        match a.func {
            AggFunc::Count => {}
            AggFunc::Sum | AggFunc::Avg => {
                let x = as_f64(&v).ok_or_else(|| {
                    Error::Sql(format!(
                        "{}() needs numbers, got {}",
                        a.func,
                        v.column_type().map_or("NULL".into(), |t| t.to_string())
                    ))
                })?;
                fsum += x;
                acc = match (&acc, &v) {
                    (Value::Null, Value::Integer(i)) => Value::Integer(*i),
                    (Value::Integer(s), Value::Integer(i)) => {
                        s.checked_add(*i).map_or(Value::Real(fsum), Value::Integer)
                    }
                    _ => Value::Real(fsum),
                };
            }
            AggFunc::Min | AggFunc::Max => {
                let better = match compare(&v, &acc)? {
                    None => true,
                    Some(o) => {
                        (o == Ordering::Less) == (a.func == AggFunc::Min) && o != Ordering::Equal
                    }
                };
                if better {
                    acc = v;
                }
            }
        }
    }
    Ok(match a.func {
        AggFunc::Count => Value::Integer(count),
        AggFunc::Avg if count == 0 => Value::Null,
        AggFunc::Avg => Value::Real(fsum / count as f64),
        _ => acc,
    })
}

/// The column each query of the plan is compared with (for `row(id)` and for dimensions).
fn query_columns(plan: &SelectPlan) -> Vec<Option<usize>> {
    let mut cols = vec![None; plan.queries.len()];
    let mut visit = |e: &Expr| {
        e.walk(&mut |x| {
            if let Expr::Similarity { column, query, .. } = x {
                cols[*query].get_or_insert(*column);
            }
        })
    };
    plan.projection.iter().for_each(|(e, _)| visit(e));
    plan.order_by.iter().for_each(|(e, _)| visit(e));
    plan.aggregates
        .iter()
        .filter_map(|a| a.arg.as_ref())
        .for_each(&mut visit);
    if let Some(f) = &plan.filter {
        visit(f);
    }
    cols
}

/// Turns every query argument into a vector. `placeholder` (for EXPLAIN) skips the model and
/// uses zero vectors of the right dimension.
pub fn resolve_queries(
    db: &Database,
    snap: &TableSnapshot,
    plan: &SelectPlan,
    params: &[Value],
    placeholder: bool,
) -> Result<Vec<Vec<f32>>> {
    let schema = snap.schema();
    let cols = query_columns(plan);
    plan.queries
        .iter()
        .zip(cols)
        .map(|(arg, col)| {
            let Some(col) = col else {
                return Err(Error::Sql(format!(
                    "query {arg} is not used by any similarity()"
                )));
            };
            if placeholder {
                let dim = schema.columns[col].dim.max(1) as usize;
                return Ok(vec![0.0; dim]);
            }
            resolve_query(db, snap, schema, col, arg, params)
        })
        .collect()
}

/// The query vector of `arg` for column `col`.
pub fn resolve_query(
    db: &Database,
    snap: &TableSnapshot,
    schema: &TableSchema,
    col: usize,
    arg: &QueryArg,
    params: &[Value],
) -> Result<Vec<f32>> {
    let c = &schema.columns[col];
    let needs_model = |what: &str| {
        if matches!(c.ty, ColumnType::Vector(_)) {
            Err(Error::Sql(format!(
                "similarity(): {}.{} is {}, which has no model: give a vector [..], a parameter \
                 bound to a vector, or row(id), not {what}",
                schema.name, c.name, c.ty
            )))
        } else {
            Ok(())
        }
    };
    let v = match arg {
        QueryArg::Vector(v) => v.clone(),
        QueryArg::Text(t) => {
            needs_model("a text")?;
            embed_query_text(db, schema, t)?
        }
        QueryArg::Image(img) => {
            needs_model("an image")?;
            embed_query_image(db, schema, img)?
        }
        QueryArg::Row(id) => {
            let row = snap.get(*id)?.ok_or_else(|| {
                Error::Sql(format!("row({id}): no row {id} in table {}", schema.name))
            })?;
            row_vector(&row, col)
                .ok_or_else(|| Error::Sql(format!("row({id}): {} is NULL", c.name)))?
                .to_vec()
        }
        QueryArg::Param(n) => {
            let p = params.get(*n).ok_or_else(|| {
                Error::InvalidArgument(format!("parameter {} is not bound", n + 1))
            })?;
            match p {
                Value::Vector(v) => v.clone(),
                Value::Text(t) => {
                    needs_model("a text")?;
                    embed_query_text(db, schema, t)?
                }
                Value::Blob(b) => {
                    needs_model("an image")?;
                    embed_query_image(db, schema, &ImageSource::Bytes(b.clone()))?
                }
                Value::Image(img) => {
                    needs_model("an image")?;
                    embed_query_image(db, schema, img)?
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "parameter {} of similarity() must be a vector, a text or image bytes, got {}",
                        n + 1,
                        crate::sql::value_fmt::sql_literal(other)
                    )));
                }
            }
        }
    };
    if c.dim != 0 && v.len() != c.dim as usize {
        return Err(Error::Sql(format!(
            "similarity(): query has {} dimensions but {}.{} has {}",
            v.len(),
            schema.name,
            c.name,
            c.dim
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::Sql(
            "similarity(): query vector has a non-finite value".into(),
        ));
    }
    Ok(v)
}
