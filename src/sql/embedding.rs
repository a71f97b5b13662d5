//! Embedding at the SQL layer: fills `Row::embeddings` of IMAGE / EMBEDDED_TEXT columns before rows
//! reach the storage engine, and turns text / image arguments of `similarity()` into vectors.
//!
//! The model is the table's `model` option or [`DEFAULT_MODEL`]; its identity is recorded with the
//! table on first use, and a different identity later is [`Error::ModelMismatch`].
//!
//! Rows are embedded in chunks, and the session's interrupt flag is read before each chunk and
//! after the last: nothing is written until every row of a statement is embedded, so an
//! interrupted INSERT or UPDATE changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::embedder::{DEFAULT_MODEL, Embedder};
use crate::{
    Column, ColumnType, Database, Error, ImageLimits, ImageSource, Result, Row, TableSchema, Value,
};

/// Values handed to the model per core in one call: a batch for each core, so the model's
/// per-core split stays full, while Ctrl-C waits for at most one chunk.
const VALUES_PER_CORE: usize = 16;

/// What embedding rows needs besides the rows: the image limits and the flag that cancels it.
#[derive(Debug, Clone, Copy)]
pub struct EmbedCtx<'a> {
    /// The limits every image is read under.
    pub limits: &'a ImageLimits,
    /// Set (by Ctrl-C) to stop with [`Error::Interrupted`].
    pub interrupt: &'a AtomicBool,
}

impl EmbedCtx<'_> {
    /// [`Error::Interrupted`] once the flag is set.
    pub fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Whether column `i` gets its vector from the model (false when the table has no column `i`).
pub fn is_embedded(schema: &TableSchema, i: usize) -> bool {
    schema.columns.get(i).is_some_and(embedded_column)
}

fn embedded_column(c: &Column) -> bool {
    c.embedded && matches!(c.ty, ColumnType::Image | ColumnType::Text)
}

/// The table's embedder, checked against the identity recorded with the table (recording it on
/// first use when `record` is set).
pub fn embedder_for(
    db: &Database,
    schema: &TableSchema,
    record: bool,
) -> Result<Arc<dyn Embedder>> {
    let spec = schema.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let e = db.models().get(spec).map_err(|err| match err {
        Error::Model(m) => Error::Model(format!("table {}: {m}", schema.name)),
        other => other,
    })?;
    match &schema.model_identity {
        Some(id) if id != e.identity() => {
            return Err(Error::ModelMismatch {
                table: schema.name.clone(),
                expected: id.clone(),
                actual: e.identity().to_string(),
            });
        }
        Some(_) => {}
        None if record => {
            let dim = u32::try_from(e.dim())
                .map_err(|_| Error::Model(format!("model {spec}: dimension too large")))?;
            db.set_model_identity(&schema.name, e.identity(), dim)?;
        }
        None => {}
    }
    Ok(e)
}

/// Computes the embeddings of the embedded columns `cols` (all embedded columns when `None`) of
/// `rows`; `row_numbers[i]` is how row `i` is named in errors (see [`Error::TypeMismatch`]).
/// Stops with [`Error::Interrupted`] when `ctx`'s flag is set before a chunk or after the last.
pub fn embed_rows(
    db: &Database,
    schema: &TableSchema,
    rows: &mut [Row],
    cols: Option<&[usize]>,
    row_numbers: &[usize],
    ctx: &EmbedCtx<'_>,
) -> Result<()> {
    let number = |r: usize| row_numbers.get(r).copied().unwrap_or(r + 1);
    let targets: Vec<(usize, &Column)> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|&(i, c)| embedded_column(c) && cols.is_none_or(|cs| cs.contains(&i)))
        .filter(|&(i, _)| {
            rows.iter()
                .any(|r| r.values.get(i).is_some_and(|v| !v.is_null()))
        })
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let e = embedder_for(db, schema, true)?;
    for row in rows.iter_mut() {
        row.embeddings.resize(row.values.len(), None);
    }
    for (col, column) in targets {
        let cname = &column.name;
        // Rows come from INSERT (built with one value per column) or from a snapshot of the
        // table; a row of another shape is an error, not an index out of range.
        let missing = |r: usize| {
            Error::Sql(format!(
                "row {} of {} has no column {cname}",
                number(r),
                schema.name
            ))
        };
        let mut which = Vec::new();
        let mut imgs: Vec<ImageSource> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            match (column.ty, row.values.get(col)) {
                (_, None) => return Err(missing(r)),
                (_, Some(Value::Null)) => continue,
                (ColumnType::Image, Some(Value::Image(s))) => imgs.push(s.clone()),
                (ColumnType::Text, Some(Value::Text(s))) => texts.push(s.clone()),
                (ty, Some(other)) => {
                    return Err(Error::TypeMismatch {
                        table: schema.name.clone(),
                        column: cname.clone(),
                        row: number(r),
                        detail: format!(
                            "expected {ty}, got {}",
                            other.column_type().map_or("NULL".into(), |t| t.to_string())
                        ),
                    });
                }
            }
            which.push(r);
        }
        let chunk = VALUES_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut results = Vec::with_capacity(which.len());
        // One of `imgs` and `texts` is empty.
        for part in imgs.chunks(chunk) {
            ctx.check_interrupt()?;
            results.extend(checked_len(e.embed_images(part, ctx.limits), part.len())?);
        }
        for part in texts.chunks(chunk) {
            ctx.check_interrupt()?;
            results.extend(checked_len(e.embed_texts(part), part.len())?);
        }
        for (&r, res) in which.iter().zip(results) {
            let n = number(r);
            let v = res.map_err(|err| row_error(err, &schema.name, cname, n))?;
            if v.len() != e.dim() {
                return Err(Error::Model(format!(
                    "{}.{cname} row {n}: model returned {} dimensions, expected {}",
                    schema.name,
                    v.len(),
                    e.dim()
                )));
            }
            // `which` holds indexes of `rows` whose `values` (and so, after the resize above,
            // `embeddings`) have a column `col`.
            let slot = rows
                .get_mut(r)
                .and_then(|row| row.embeddings.get_mut(col))
                .ok_or_else(|| missing(r))?;
            *slot = Some(v);
        }
    }
    // Set during the last chunk: still nothing is written.
    ctx.check_interrupt()
}

/// `results` of one model call for `asked` values, refused if the model returned another count.
fn checked_len<T>(results: Vec<T>, asked: usize) -> Result<Vec<T>> {
    if results.len() == asked {
        Ok(results)
    } else {
        Err(Error::Model(format!(
            "model returned {} embeddings for {asked} values",
            results.len()
        )))
    }
}

/// Names the row in a per-row embedding error.
fn row_error(err: Error, table: &str, col: &str, row: usize) -> Error {
    match err {
        Error::Image {
            source_name,
            kind,
            detail,
        } => Error::Image {
            source_name,
            kind,
            detail: format!("{detail} (row {row} of {table}.{col})"),
        },
        other => Error::Model(format!("{table}.{col} row {row}: {other}")),
    }
}

/// Embeds one text query for `similarity()` on a column of `schema`.
pub fn embed_query_text(db: &Database, schema: &TableSchema, text: &str) -> Result<Vec<f32>> {
    let e = embedder_for(db, schema, false)?;
    one(e.embed_texts(&[text.to_string()]), "query text")
}

/// Embeds one image query for `similarity()` on a column of `schema`.
pub fn embed_query_image(
    db: &Database,
    schema: &TableSchema,
    img: &ImageSource,
    limits: &ImageLimits,
) -> Result<Vec<f32>> {
    let e = embedder_for(db, schema, false)?;
    one(
        e.embed_images(std::slice::from_ref(img), limits),
        "query image",
    )
}

fn one(mut v: Vec<Result<Vec<f32>>>, what: &str) -> Result<Vec<f32>> {
    if v.len() != 1 {
        return Err(Error::Model(format!(
            "model returned {} results for one {what}",
            v.len()
        )));
    }
    v.remove(0)
}
