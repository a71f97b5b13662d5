//! Import of precomputed embeddings in the layout `clip-retrieval inference` writes:
//!
//! ```text
//! DIR/img_emb/img_emb_0.npy     (n0, d) image embeddings    ┐ row i of every file of shard 0
//! DIR/text_emb/text_emb_0.npy   (n0, d) caption embeddings  │ describes the same sample
//! DIR/metadata/metadata_0.json  n0 records                  ┘ (JSON array or JSON lines)
//! DIR/.../*_1.*                 shard 1, ...
//! ```
//! Metadata records give `image_path` (required with image embeddings), `caption` (required with
//! text embeddings) and optionally `image_id` and `caption_id`. clip-retrieval writes parquet
//! metadata; mmdb reads JSON / JSON lines, so convert parquet first (see docs/coco.md).
//!
//! The rows go to the same two tables as a COCO load (one row per distinct image, one per caption),
//! so `bench-recall` runs on imported embeddings too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::npy_file::NpyReader;
use super::tables::{captions_table, ensure_tables};
use crate::{Database, Error, ImageSource, Result, Row, Value};

/// What to import. [`NpyImportOptions::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NpyImportOptions {
    /// The clip-retrieval output folder.
    pub dir: PathBuf,
    /// Images table; captions go to `<table>_captions`. Default `coco`.
    pub table: String,
    /// Model spec recorded with the tables (used later to embed SQL query text). Default
    /// [`crate::embedder::DEFAULT_MODEL`].
    pub model: String,
    /// The model identity to record. Default none: load `model` and take its identity (and check
    /// its dimension against the files).
    pub identity: Option<String>,
    /// Rows per write batch. Default 1024.
    pub batch_size: usize,
}

impl NpyImportOptions {
    /// Options with the defaults above.
    pub fn new(dir: impl Into<PathBuf>) -> NpyImportOptions {
        NpyImportOptions {
            dir: dir.into(),
            table: "coco".into(),
            model: crate::embedder::DEFAULT_MODEL.into(),
            identity: None,
            batch_size: 1024,
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyImportReport {
    /// Distinct images written.
    pub images: usize,
    /// Captions written.
    pub captions: usize,
    /// Shards read.
    pub shards: usize,
}

/// One shard: its metadata file and the embedding files present.
struct Shard {
    metadata: PathBuf,
    img: Option<PathBuf>,
    text: Option<PathBuf>,
}

/// Imports a clip-retrieval embeddings folder (see the module doc) into empty or new tables.
pub fn import_npy(db: &Database, opts: &NpyImportOptions) -> Result<NpyImportReport> {
    let shards = find_shards(&opts.dir)?;
    let first = shards
        .iter()
        .find_map(|s| s.img.as_ref().or(s.text.as_ref()))
        .expect("checked");
    let dim = NpyReader::open(first)?.dim();
    let identity = match &opts.identity {
        Some(id) => id.clone(),
        None => {
            let e = db.models().get(&opts.model)?;
            if e.dim() != dim {
                return Err(Error::InvalidArgument(format!(
                    "{} holds {dim}-d embeddings but model {} makes {}-d ones",
                    first.display(),
                    opts.model,
                    e.dim()
                )));
            }
            e.identity().to_string()
        }
    };
    ensure_tables(db, &opts.table, &opts.model, &identity, dim)?;
    let caps = captions_table(&opts.table);
    for t in [&opts.table, &caps] {
        if db.snapshot(t)?.row_count() > 0 {
            return Err(Error::InvalidArgument(format!(
                "table {t} already has rows; import into a new --table"
            )));
        }
    }
    let mut state = ImportState::default();
    // Straight into one big segment per table (see `BulkLoader`), not row by row through the
    // WAL and memtable.
    let mut loaders = Loaders {
        images: db.bulk_loader(&opts.table)?,
        captions: db.bulk_loader(&caps)?,
    };
    for shard in &shards {
        import_shard(opts, shard, dim, &mut loaders, &mut state)?;
    }
    loaders.captions.finish()?;
    loaders.images.finish()?;
    Ok(NpyImportReport {
        images: state.images.len(),
        captions: state.captions,
        shards: shards.len(),
    })
}

struct Loaders {
    images: crate::BulkLoader,
    captions: crate::BulkLoader,
}

#[derive(Default)]
struct ImportState {
    /// Image key (id or path) → row id.
    images: HashMap<String, i64>,
    next_image_id: i64,
    captions: usize,
}

fn import_shard(
    opts: &NpyImportOptions,
    shard: &Shard,
    dim: usize,
    loaders: &mut Loaders,
    st: &mut ImportState,
) -> Result<()> {
    let records = read_metadata(&shard.metadata)?;
    let mut readers = Vec::new();
    for p in [&shard.img, &shard.text].into_iter().flatten() {
        let r = NpyReader::open(p)?;
        if r.dim() != dim || r.rows() != records.len() {
            return Err(Error::InvalidArgument(format!(
                "{} has shape ({}, {}); expected ({}, {dim}): one row per record of {} and the \
                 dimension of the first embedding file",
                p.display(),
                r.rows(),
                r.dim(),
                records.len(),
                shard.metadata.display()
            )));
        }
        readers.push(r);
    }
    let (mut img, mut text) = match (&shard.img, &shard.text) {
        (Some(_), Some(_)) => {
            let t = readers.pop();
            (readers.pop(), t)
        }
        (Some(_), None) => (readers.pop(), None),
        _ => (None, readers.pop()),
    };
    for (chunk_no, chunk) in records.chunks(opts.batch_size.max(1)).enumerate() {
        let img_vecs = match img.as_mut() {
            Some(r) => Some(r.read_rows(chunk.len())?),
            None => None,
        };
        let text_vecs = match text.as_mut() {
            Some(r) => Some(r.read_rows(chunk.len())?),
            None => None,
        };
        let (mut image_rows, mut caption_rows) = (Vec::new(), Vec::new());
        for (i, rec) in chunk.iter().enumerate() {
            let at = |field: &str| {
                format!(
                    "{} record {}: {field}",
                    shard.metadata.display(),
                    chunk_no * opts.batch_size.max(1) + i
                )
            };
            let path = str_field(rec, &["image_path", "filepath", "file_name"]);
            let given_id = int_field(rec, &["image_id", "cocoid"]);
            let key = match (given_id, &path) {
                (Some(id), _) => id.to_string(),
                (None, Some(p)) => p.clone(),
                (None, None) => String::new(),
            };
            // Without image embeddings, captions keep the image id the metadata gives.
            let mut image_id =
                st.images
                    .get(&key)
                    .copied()
                    .or(if img_vecs.is_none() { given_id } else { None });
            if let Some(vecs) = &img_vecs {
                let Some(p) = path.clone() else {
                    return Err(Error::InvalidArgument(at("no image_path")));
                };
                if image_id.is_none() {
                    st.next_image_id += 1;
                    let id = given_id.unwrap_or(st.next_image_id);
                    st.images.insert(key.clone(), id);
                    image_id = Some(id);
                    let name = p.rsplit(['/', '\\']).next().unwrap_or(&p).to_string();
                    let mut row = Row::new(vec![
                        Value::Integer(id),
                        Value::Text(name),
                        Value::Null,
                        Value::Null,
                        Value::Image(ImageSource::Path(p)),
                    ]);
                    row.embeddings[4] = Some(vecs[i].clone());
                    image_rows.push(row);
                }
            }
            if let Some(vecs) = &text_vecs {
                let Some(caption) = str_field(rec, &["caption", "text"]) else {
                    return Err(Error::InvalidArgument(at("no caption")));
                };
                st.captions += 1;
                let id =
                    int_field(rec, &["caption_id", "annotation_id"]).unwrap_or(st.captions as i64);
                let mut row = Row::new(vec![
                    Value::Integer(id),
                    image_id.map_or(Value::Null, Value::Integer),
                    Value::Text(caption),
                ]);
                row.embeddings[2] = Some(vecs[i].clone());
                caption_rows.push(row);
            }
        }
        for row in caption_rows {
            loaders.captions.push(row)?;
        }
        for row in image_rows {
            loaders.images.push(row)?;
        }
    }
    Ok(())
}

fn str_field(rec: &Map<String, Json>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| rec.get(*k).and_then(Json::as_str).map(str::to_string))
}

fn int_field(rec: &Map<String, Json>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| rec.get(*k).and_then(Json::as_i64))
}

/// Shards by number: `<kind>/<kind>_<n>.npy` and `metadata/metadata_<n>.{json,jsonl}`.
fn find_shards(dir: &Path) -> Result<Vec<Shard>> {
    let list = |sub: &str| -> Result<HashMap<u64, PathBuf>> {
        let d = dir.join(sub);
        let mut out = HashMap::new();
        if !d.is_dir() {
            return Ok(out);
        }
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(n) = stem.rsplit('_').next().and_then(|n| n.parse::<u64>().ok())
                && let Some(old) = out.insert(n, p.clone())
            {
                return Err(Error::InvalidArgument(format!(
                    "shard {n} has two files: {} and {}",
                    old.display(),
                    p.display()
                )));
            }
        }
        Ok(out)
    };
    let (img, text, meta) = (list("img_emb")?, list("text_emb")?, list("metadata")?);
    if meta.is_empty() || (img.is_empty() && text.is_empty()) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a clip-retrieval embeddings folder (needs metadata/metadata_N.json and img_emb/img_emb_N.npy or text_emb/text_emb_N.npy)",
            dir.display()
        )));
    }
    let mut numbers: Vec<u64> = meta.keys().copied().collect();
    numbers.sort_unstable();
    let mut shards = Vec::new();
    for n in numbers {
        let s = Shard {
            metadata: meta[&n].clone(),
            img: img.get(&n).cloned(),
            text: text.get(&n).cloned(),
        };
        if (!img.is_empty() && s.img.is_none()) || (!text.is_empty() && s.text.is_none()) {
            return Err(Error::InvalidArgument(format!(
                "{} has no matching embedding file for shard {n}",
                s.metadata.display()
            )));
        }
        shards.push(s);
    }
    if let Some(n) = img
        .keys()
        .chain(text.keys())
        .find(|n| !meta.contains_key(n))
    {
        return Err(Error::InvalidArgument(format!(
            "embeddings of shard {n} in {} have no metadata file",
            dir.display()
        )));
    }
    Ok(shards)
}

/// Reads a JSON array or JSON-lines metadata file into records.
fn read_metadata(path: &Path) -> Result<Vec<Map<String, Json>>> {
    if path.extension().is_some_and(|e| e == "parquet") {
        return Err(Error::NotSupported(format!(
            "parquet metadata ({}): convert it to JSON lines first, e.g. python -c \"import pandas as pd; \
             pd.read_parquet('{0}').to_json('{1}', orient='records', lines=True)\" and remove the parquet file",
            path.display(),
            path.with_extension("jsonl").display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, e: serde_json::Error| {
        Error::InvalidArgument(format!("{} line {line}: {e}", path.display()))
    };
    let records: Vec<Json> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| bad(e.line(), e))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(i + 1, e)))
            .collect::<Result<_>>()?
    };
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Json::Object(m) => Ok(m),
            _ => Err(Error::InvalidArgument(format!(
                "{} record {i} is not an object",
                path.display()
            ))),
        })
        .collect()
}
