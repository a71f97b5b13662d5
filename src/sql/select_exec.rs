//! Runs a [`SelectPlan`]: a storage top-k search (filter pushed down) or a filtered scan, then
//! aggregation, sorting, OFFSET/LIMIT and projection.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use parking_lot::Mutex;

use crate::sql::expr::{EvalCtx, Expr, as_f64, compare, sort_cmp};
use crate::sql::plan::{AggFunc, Aggregate, Counts, SelectPlan};
use crate::sql::query_resolve::resolve_queries;
use crate::sql::rows::{ColumnInfo, Rows};
use crate::sql::settings::Settings;
use crate::{ColumnType, Database, Error, Result, Row, RowFilter, RowId, TableSchema, Value};

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
    let counts = plan.counts(params)?;
    let Some(schema) = &plan.schema else {
        let queries = Vec::new();
        return finish(
            plan,
            counts,
            vec![(0, Row::default())],
            params,
            &queries,
            None,
        );
    };
    let snap = db.snapshot(&schema.name)?;
    let queries = resolve_queries(db, &snap, plan, params, false, &settings.image_limits)?;
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
        if counts.k() == 0 {
            Vec::new()
        } else {
            let filter_columns = plan.filter.as_ref().map(Expr::columns);
            let filter = filter_columns
                .as_deref()
                .map(|c| (&keep as RowFilter<'_>, c));
            let query = queries.get(vs.query).ok_or_else(|| unresolved(vs.query))?;
            let req = settings.search_request(vs.column, query, counts.k(), filter);
            snap.search(&req)?
                .into_iter()
                .map(|h| (h.id, h.row))
                .collect()
        }
    } else {
        // Without ORDER BY or aggregates the scan can stop once OFFSET + LIMIT rows matched.
        let stop_after = match (
            plan.order_by.is_empty() && plan.aggregates.is_empty(),
            counts.limit,
        ) {
            (true, Some(_)) => Some(counts.k()),
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
    finish(plan, counts, rows, params, &queries, Some(schema))
}

/// Aggregates or sorts, applies OFFSET/LIMIT (already applied in order by a search) and projects.
fn finish(
    plan: &SelectPlan,
    counts: Counts,
    mut rows: Vec<(RowId, Row)>,
    params: &[Value],
    queries: &[Vec<f32>],
    schema: Option<&TableSchema>,
) -> Result<Rows> {
    let columns = schema.map_or(&[][..], |s| s.columns.as_slice());
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
            for ((ka, kb), (_, desc)) in a.0.iter().zip(&b.0).zip(&plan.order_by) {
                let o = sort_cmp(ka, kb);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.1.cmp(&b.1)
        });
        rows = keyed.into_iter().map(|(_, id, row)| (id, row)).collect();
    }
    let take = counts.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (id, row) in rows.into_iter().skip(counts.offset).take(take) {
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
                Expr::Agg(n, _) => plan.aggregates.get(*n).and_then(|a| agg_type(a, columns)),
                other => other.ty(columns),
            }
            .or_else(|| out.iter().find_map(|r| r.get(i)?.column_type()));
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

/// The plan's vector search names a query the plan does not have.
fn unresolved(query: usize) -> Error {
    Error::Sql(format!("vector search query {query} was not resolved"))
}
