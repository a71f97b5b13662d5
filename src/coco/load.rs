//! The COCO bulk loader: captions file + images folder → the two tables of [`super::tables`].
//!
//! Images stream in batches: read and checked in parallel, embedded in one call per batch (the
//! embedder's pool batches further), then written as two atomic batches, captions first and images
//! second. An image row is therefore only ever durable together with its captions, so a run resumes
//! by skipping the image ids (and annotation ids) already present. The cancel flag is checked
//! between batches: every batch before it is acknowledged and durable.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use super::captions::{CocoCaptions, CocoImage, Split};
use super::image_file::{FailureKind, read_checked, resolve_inside};
use super::report::{CaptionFailure, ImageFailure, LoadReport, write_failures};
use super::tables::{captions_table, ensure_tables};
use crate::embedder::{DEFAULT_MODEL, Embedder};
use crate::{Database, Error, ImageLimits, ImageSource, Result, Row, RowId, Value};

/// What to load and how. [`LoadOptions::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// COCO captions JSON (`captions_val2017.json`).
    pub captions: PathBuf,
    /// Folder holding the images named by `file_name`.
    pub images: PathBuf,
    /// Model spec (folder or hub id). Default [`DEFAULT_MODEL`].
    pub model: String,
    /// Images table name; captions go to `<table>_captions`. Default `coco`.
    pub table: String,
    /// Optional split file selecting a subset of the images (see [`Split::read`]). Default none.
    pub split: Option<PathBuf>,
    /// Split name looked up in a Karpathy split file. Default `test`.
    pub split_name: String,
    /// Images per batch. Default 64.
    pub batch_size: usize,
    /// Where to write the failures TSV. Default: beside the database, `<db>.<table>-load-report.tsv`.
    pub report_path: Option<PathBuf>,
    /// Read `file_name`s that lead outside `images` (`..`, absolute paths, symbolic links out).
    /// Default false: they are skipped and reported as `outside_images`.
    pub allow_outside_images: bool,
    /// Limits on each image. Default `None`: the database's
    /// ([`Database::image_limits`]) with a decode deadline of
    /// [`DEFAULT_BULK_DECODE_DEADLINE`](crate::DEFAULT_BULK_DECODE_DEADLINE) unless they set one.
    pub image_limits: Option<ImageLimits>,
}

impl LoadOptions {
    /// Options with the defaults above.
    pub fn new(captions: impl Into<PathBuf>, images: impl Into<PathBuf>) -> LoadOptions {
        LoadOptions {
            captions: captions.into(),
            images: images.into(),
            model: DEFAULT_MODEL.to_string(),
            table: "coco".into(),
            split: None,
            split_name: "test".into(),
            batch_size: 64,
            report_path: None,
            allow_outside_images: false,
            image_limits: None,
        }
    }
}

/// Receives a load's progress: the number of images to embed, then each batch done. The shell
/// draws a progress bar with it (`src/cli/progress.rs`); a Python binding can forward it.
pub trait Progress: Send + Sync {
    /// Called once, before the first batch, with the number of images left to load.
    fn start(&self, _total: u64) {}
    /// Called after each batch with the number of images it held.
    fn advance(&self, _images: u64) {}
    /// Called once when the load stops (finished, cancelled or failed).
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Rows (approximate heap bytes) a COCO load holds before it commits them: about 15,000
/// images with their captions at 512 dimensions.
const COMMIT_BYTES: usize = 64 << 20;

/// Loads a COCO-format data set into `db` (see the module doc); returns what happened.
pub fn load(
    db: &Database,
    opts: &LoadOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<LoadReport> {
    let started = Instant::now();
    // Checked before any work: the name also names the report file and the captions table.
    let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if opts.table.is_empty()
        || !opts.table.chars().all(name_ok)
        || opts.table.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(Error::InvalidArgument(format!(
            "table name {:?}: use letters, digits and _ (not starting with a digit)",
            opts.table
        )));
    }
    if opts.batch_size == 0 {
        return Err(Error::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    let mut coco = CocoCaptions::read(&opts.captions)?;
    if let Some(split) = &opts.split {
        coco.retain_split(&Split::read(split, &opts.split_name)?);
        if coco.images.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "split {} ({}) selects no image of {}",
                split.display(),
                opts.split_name,
                opts.captions.display()
            )));
        }
    }
    let images_dir = std::path::absolute(&opts.images).map_err(|e| Error::io(&opts.images, e))?;
    if !images_dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "images folder {} is not a directory",
            images_dir.display()
        )));
    }
    let embedder = db.models().get(&opts.model)?;
    let caps_table = captions_table(&opts.table);
    ensure_tables(
        db,
        &opts.table,
        &opts.model,
        embedder.identity(),
        embedder.dim(),
    )?;

    let present_images = row_ids(db, &opts.table)?;
    let present_captions = row_ids(db, &caps_table)?;
    let mut todo = Vec::new();
    for img in &coco.images {
        if !present_images.contains(&to_row_id(img.id, "image")?) {
            todo.push(img);
        }
    }
    for a in &coco.annotations {
        to_row_id(a.id, "annotation")?;
    }
    let by_image = coco.captions_by_image();

    let report_path = opts
        .report_path
        .clone()
        .unwrap_or_else(|| beside_db(db.path(), &format!("{}-load-report.tsv", opts.table)));
    let mut report = LoadReport {
        table: opts.table.clone(),
        captions_table: caps_table.clone(),
        images_total: coco.images.len(),
        images_already_loaded: coco.images.len() - todo.len(),
        images_loaded: 0,
        captions_loaded: 0,
        image_failures: Vec::new(),
        caption_failures: Vec::new(),
        interrupted: false,
        report_path: report_path.clone(),
        seconds: 0.0,
    };
    // Rows go straight into one segment per table (see `BulkLoader`), committed every
    // `COMMIT_BYTES` so that a crash loses at most that much embedding work (a rerun resumes
    // after the committed rows); an interrupt or an error commits what is pending first.
    let mut loaders = (
        db.bulk_loader(&caps_table)?.chunk_bytes(COMMIT_BYTES),
        db.bulk_loader(&opts.table)?.chunk_bytes(COMMIT_BYTES),
    );
    progress.start(todo.len() as u64);
    for batch in todo.chunks(opts.batch_size) {
        if cancel.load(Ordering::SeqCst) {
            report.interrupted = true;
            break;
        }
        let loaded = load_batch(
            db,
            &*embedder,
            opts,
            &images_dir,
            batch,
            &by_image,
            &coco,
            &present_captions,
            &mut report,
            &mut loaders,
        );
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                progress.finish();
                // Keep what was loaded before the error (a rerun resumes after it).
                let _ = loaders.0.commit();
                let _ = loaders.1.commit();
                return Err(e);
            }
        };
        report.images_loaded += loaded.0;
        report.captions_loaded += loaded.1;
        progress.advance(batch.len() as u64);
    }
    let (captions, images) = loaders;
    let finished = captions.finish().and_then(|_| images.finish());
    progress.finish();
    finished?;
    write_failures(
        &report_path,
        &report.image_failures,
        &report.caption_failures,
    )?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads, embeds and writes one batch; returns (images, captions) written.
#[allow(clippy::too_many_arguments)]
fn load_batch(
    db: &Database,
    embedder: &dyn Embedder,
    opts: &LoadOptions,
    images_dir: &Path,
    batch: &[&CocoImage],
    by_image: &HashMap<i64, Vec<usize>>,
    coco: &CocoCaptions,
    present_captions: &HashSet<RowId>,
    report: &mut LoadReport,
    loaders: &mut (crate::BulkLoader, crate::BulkLoader),
) -> Result<(usize, usize)> {
    let limits = opts
        .image_limits
        .unwrap_or_else(|| db.image_limits().for_bulk_load());
    let files: Vec<_> = batch
        .par_iter()
        .map(|img| {
            if opts.allow_outside_images {
                read_checked(&images_dir.join(&img.file_name), &limits)
            } else {
                resolve_inside(images_dir, &img.file_name).and_then(|p| read_checked(&p, &limits))
            }
        })
        .collect();
    let mut readable = Vec::new();
    let mut sources = Vec::new();
    for (img, file) in batch.iter().zip(files) {
        match file {
            Ok(bytes) => {
                readable.push(*img);
                sources.push(ImageSource::Bytes(bytes));
            }
            Err((kind, detail)) => report.image_failures.push(failure(img, kind, detail)),
        }
    }
    let dim = embedder.dim();
    let mut image_rows = Vec::new();
    let mut ok_images = Vec::new();
    for (img, emb) in readable
        .into_iter()
        .zip(embedder.embed_images(&sources, &limits))
    {
        match emb.and_then(|v| check_vector(v, dim)) {
            Ok(v) => {
                let path = images_dir
                    .join(&img.file_name)
                    .to_string_lossy()
                    .into_owned();
                let mut row = Row::new(vec![
                    Value::Integer(img.id),
                    Value::Text(img.file_name.clone()),
                    Value::Integer(img.width),
                    Value::Integer(img.height),
                    Value::Image(ImageSource::Path(path)),
                ]);
                row.embeddings[4] = Some(v);
                image_rows.push(row);
                ok_images.push(img.id);
            }
            Err(e) => {
                let kind = FailureKind::of(&e);
                report
                    .image_failures
                    .push(failure(img, kind, e.to_string()))
            }
        }
    }
    // Captions of the images that made it, minus those a previous run already wrote.
    let wanted: Vec<usize> = ok_images
        .iter()
        .flat_map(|id| by_image.get(id).into_iter().flatten().copied())
        .filter(|&i| !present_captions.contains(&(coco.annotations[i].id as RowId)))
        .collect();
    let texts: Vec<String> = wanted
        .iter()
        .map(|&i| coco.annotations[i].caption.clone())
        .collect();
    let mut caption_rows = Vec::new();
    for (&i, emb) in wanted.iter().zip(embedder.embed_texts(&texts)) {
        let a = &coco.annotations[i];
        match emb.and_then(|v| check_vector(v, dim)) {
            Ok(v) => {
                let mut row = Row::new(vec![
                    Value::Integer(a.id),
                    Value::Integer(a.image_id),
                    Value::Text(a.caption.clone()),
                ]);
                row.embeddings[2] = Some(v);
                caption_rows.push(row);
            }
            Err(e) => report.caption_failures.push(CaptionFailure {
                caption_id: a.id,
                image_id: a.image_id,
                detail: e.to_string(),
            }),
        }
    }
    let (n_images, n_captions) = (image_rows.len(), caption_rows.len());
    for row in caption_rows {
        loaders.0.push(row)?;
    }
    for row in image_rows {
        loaders.1.push(row)?;
    }
    Ok((n_images, n_captions))
}

fn failure(img: &CocoImage, kind: FailureKind, detail: String) -> ImageFailure {
    ImageFailure {
        image_id: img.id,
        file_name: img.file_name.clone(),
        kind,
        detail,
    }
}

/// Rejects a vector of the wrong length or with NaN/inf, so one bad slot cannot fail a whole batch.
fn check_vector(v: Vec<f32>, dim: usize) -> Result<Vec<f32>> {
    if v.len() != dim {
        return Err(Error::Model(format!(
            "embedder returned {} values, expected {dim}",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::Model("embedder returned a non-finite value".into()));
    }
    Ok(v)
}

fn to_row_id(id: i64, what: &str) -> Result<RowId> {
    RowId::try_from(id).map_err(|_| Error::InvalidArgument(format!("{what} id {id} is negative")))
}

/// Ids of the live rows of `table`.
pub(super) fn row_ids(db: &Database, table: &str) -> Result<HashSet<RowId>> {
    db.snapshot(table)?
        .scan()
        .map(|r| r.map(|(id, _)| id))
        .collect()
}

/// `<db name>.<suffix>` in the folder holding the database (reports live beside it, not inside).
pub(crate) fn beside_db(db: &Path, suffix: &str) -> PathBuf {
    let name = db
        .file_name()
        .map_or_else(|| "mmdb".into(), |n| n.to_string_lossy().into_owned());
    db.with_file_name(format!("{name}.{suffix}"))
}
