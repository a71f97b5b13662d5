//! `similarity()` query arguments to vectors: a vector literal or parameter as it is, a text or
//! image through the column's model, `row(id)` from the table.

use crate::db::TableSnapshot;
use crate::sql::embedding::{embed_query_image, embed_query_text};
use crate::sql::expr::Expr;
use crate::sql::plan::SelectPlan;
use crate::sql::query_vec::QueryArg;
use crate::{ColumnType, Database, Error, ImageLimits, ImageSource, Result, TableSchema, Value};

/// The column each query of the plan is compared with (for `row(id)` and for dimensions).
fn query_columns(plan: &SelectPlan) -> Vec<Option<usize>> {
    let mut cols = vec![None; plan.queries.len()];
    let mut visit = |e: &Expr| {
        e.walk(&mut |x| {
            if let Expr::Similarity { column, query, .. } = x {
                // A query index out of range stays unresolved: resolving the plan fails below.
                if let Some(slot) = cols.get_mut(*query) {
                    slot.get_or_insert(*column);
                }
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
    limits: &ImageLimits,
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
                let dim = column(schema, col)?.dim.max(1) as usize;
                return Ok(vec![0.0; dim]);
            }
            resolve_query(db, snap, schema, col, arg, params, limits)
        })
        .collect()
}

/// Column `col` of `schema`. The plan's indexes were resolved against the schema at planning; the
/// snapshot's differs only if the table was dropped and created again in between.
fn column(schema: &TableSchema, col: usize) -> Result<&crate::Column> {
    schema.columns.get(col).ok_or_else(|| Error::NoSuchColumn {
        table: schema.name.clone(),
        column: format!("#{col}"),
    })
}

/// The query vector of `arg` for column `col`.
pub fn resolve_query(
    db: &Database,
    snap: &TableSnapshot,
    schema: &TableSchema,
    col: usize,
    arg: &QueryArg,
    params: &[Value],
    limits: &ImageLimits,
) -> Result<Vec<f32>> {
    let c = column(schema, col)?;
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
            embed_query_image(db, schema, img, limits)?
        }
        QueryArg::Row(id) => {
            let row = snap.get(*id)?.ok_or_else(|| {
                Error::Sql(format!("row({id}): no row {id} in table {}", schema.name))
            })?;
            row.vector(col)
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
                    embed_query_image(db, schema, &ImageSource::Bytes(b.clone()), limits)?
                }
                Value::Image(img) => {
                    needs_model("an image")?;
                    embed_query_image(db, schema, img, limits)?
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
