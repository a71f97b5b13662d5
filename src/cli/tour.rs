//! `mmdb demo`: the out-of-the-box tour. Generates demo scenes, bulk-loads them into a database with
//! the bundled model, answers a few similarity queries in SQL and prints the Recall@K table.
//!
//! Everything goes through the public paths a user would take: [`crate::demo::generate`],
//! [`crate::coco::load`], [`Database::query`] and [`crate::coco::bench_recall`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::cli::progress::Bar;
use crate::cli::render::{Mode, render};
use crate::coco::{LoadOptions, RecallOptions, bench_recall, load};
use crate::{Database, Error, Result, Value};

/// The model spec of the bundled demo model (see [`crate::clip::resolve_model`]).
pub const DEMO_MODEL_SPEC: &str = crate::clip::DEMO_MODEL_NAME;

/// Options of the tour.
#[derive(Debug, Clone)]
pub struct TourOptions {
    /// Working folder: `data/` (the generated scenes) and `db/` (the database) go under it.
    pub dir: PathBuf,
    /// Scenes to generate. Default 400.
    pub images: usize,
    /// Generator seed. Default 2024 (the demo model was trained on seed 1's scenes: these are new).
    pub seed: u64,
    /// Model spec. Default the bundled demo model.
    pub model: String,
}

impl TourOptions {
    /// Defaults for a working folder.
    pub fn new(dir: impl Into<PathBuf>) -> TourOptions {
        TourOptions {
            dir: dir.into(),
            images: 400,
            seed: 2024,
            model: DEMO_MODEL_SPEC.to_string(),
        }
    }
}

const TABLE: &str = "shapes";

/// The file the tour writes into its database folder: the mark that a later tour may delete it.
const TOUR_MARKER: &str = "MMDB-DEMO-TOUR";
const TOUR_MARKER_TEXT: &str = "This database was made by `mmdb demo`; the next `mmdb demo` \
                                with the same --dir replaces it.\n";

/// Removes `db_dir` when an earlier tour made it (it holds [`TOUR_MARKER`]) or it is an empty
/// folder; refuses anything else there, naming the path.
fn clear_tour_db(db_dir: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(db_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(db_dir, e)),
    };
    let is_tour_db = meta.is_dir() && db_dir.join(TOUR_MARKER).is_file();
    let is_empty = meta.is_dir()
        && std::fs::read_dir(db_dir)
            .map_err(|e| Error::io(db_dir, e))?
            .next()
            .is_none();
    if !(is_tour_db || is_empty) {
        return Err(Error::InvalidArgument(format!(
            "{} exists and is not a database made by `mmdb demo` (it has no {TOUR_MARKER} file), \
             so the tour will not replace it: choose another --dir, or remove it yourself",
            db_dir.display()
        )));
    }
    std::fs::remove_dir_all(db_dir).map_err(|e| Error::io(db_dir, e))
}

/// Runs the tour, printing to `out`.
pub fn run_tour(opts: &TourOptions, out: &mut dyn Write) -> Result<()> {
    let w = |out: &mut dyn Write, s: String| -> Result<()> {
        writeln!(out, "{s}").map_err(|e| Error::io("<stdout>", e))
    };
    let data = opts.dir.join("data");
    let db_dir = opts.dir.join("db");
    // Start from scratch so the numbers are those of this run, but only over a database an
    // earlier tour made: `--dir` may name a folder that holds someone's own `db`. Checked first,
    // before any work.
    clear_tour_db(&db_dir)?;

    w(
        out,
        format!(
            "== 1. Generating {} demo scenes in {}",
            opts.images,
            data.display()
        ),
    )?;
    let summary = crate::demo::generate(&data, opts.images, opts.seed, 1.0)?;
    w(
        out,
        format!(
            "   {} images, {} captions (COCO captions format)",
            summary.val_images, summary.captions
        ),
    )?;

    w(
        out,
        format!(
            "\n== 2. Bulk-loading them into {} with model {}",
            db_dir.display(),
            opts.model
        ),
    )?;
    std::fs::create_dir_all(&db_dir).map_err(|e| Error::io(&db_dir, e))?;
    // Marked before anything is loaded, so a tour cut short is still replaced by the next one.
    let marker = db_dir.join(TOUR_MARKER);
    std::fs::write(&marker, TOUR_MARKER_TEXT).map_err(|e| Error::io(&marker, e))?;
    let db = Database::open(&db_dir)?;
    let mut load_opts = LoadOptions::new(
        data.join("annotations/captions_val.json"),
        data.join("images"),
    );
    load_opts.table = TABLE.to_string();
    load_opts.model = opts.model.clone();
    let cancel = AtomicBool::new(false);
    let report = load(&db, &load_opts, &Bar::new(), &cancel)?;
    w(out, format!("{report}"))?;
    let started = Instant::now();
    db.checkpoint()?;
    w(
        out,
        format!(
            "   checkpoint (HNSW segments built): {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    )?;

    w(out, "\n== 3. Similarity search in SQL".to_string())?;
    let sample = first_image(&db, &data)?;
    let (lo, hi) = filter_ids(opts.images);
    let queries = [
        (
            "Text -> image: the most similar images first",
            format!(
                "SELECT id, file_name, similarity(image, 'a small red circle on the left') AS score \
                 FROM {TABLE} ORDER BY similarity(image, 'a small red circle on the left') LIMIT 5"
            ),
        ),
        (
            "Image -> image: scenes like this one",
            format!(
                "SELECT id, file_name, similarity(image, image('{p}')) AS score FROM {TABLE} \
                 ORDER BY similarity(image, image('{p}')) LIMIT 5",
                p = sample.display()
            ),
        ),
        (
            "With a WHERE filter (pushed into the vector search)",
            format!(
                "SELECT id, file_name, similarity(image, 'a large blue square') AS score FROM {TABLE} \
                 WHERE id BETWEEN {lo} AND {hi} ORDER BY similarity(image, 'a large blue square') LIMIT 5"
            ),
        ),
        (
            "Text -> captions (an embedded TEXT column)",
            format!(
                "SELECT image_id, caption, similarity(caption, 'two green triangles') AS score \
                 FROM {TABLE}_captions ORDER BY similarity(caption, 'two green triangles') LIMIT 5"
            ),
        ),
    ];
    for (title, sql) in queries {
        w(out, format!("\n-- {title}\nmmdb> {sql};"))?;
        let started = Instant::now();
        let rows = db.query(&sql, &[])?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        write!(out, "{}", render(&with_caption(&db, rows)?, Mode::Table))
            .map_err(|e| Error::io("<stdout>", e))?;
        w(out, format!("({ms:.1} ms)"))?;
    }

    w(
        out,
        "\n== 4. Recall@K on these scenes (CLIP_benchmark protocol, through mmdb's search)".into(),
    )?;
    let mut recall = RecallOptions::new();
    recall.table = TABLE.to_string();
    recall.compare_exact = true;
    let report = bench_recall(&db, &recall)?;
    w(out, format!("{report}"))?;
    w(
        out,
        "These numbers come from a 5 MB model trained on synthetic shapes; real CLIP weights \
         (e.g. --model openai/clip-vit-base-patch32) give real photo search. Try the REPL:\n  \
         mmdb "
            .to_string()
            + &db_dir.display().to_string(),
    )?;
    db.close()
}

/// Image ids for the filtered query: the second quarter of the scenes (ids are 1..=images), so
/// the filter matches rows whatever `--images` is (a fixed 100..199 matched none of 60 scenes).
fn filter_ids(images: usize) -> (usize, usize) {
    let lo = images / 4 + 1;
    (lo, (images / 2).max(lo))
}

/// The path of the first loaded image, used as the image query.
fn first_image(db: &Database, data: &Path) -> Result<PathBuf> {
    let rows = db.query(
        &format!("SELECT file_name FROM {TABLE} ORDER BY id LIMIT 1"),
        &[],
    )?;
    let name: String = rows
        .get(0)
        .ok_or_else(|| Error::InvalidArgument("the demo table is empty".into()))?
        .get(0)?;
    Ok(data.join("images").join(name))
}

/// Adds one ground-truth caption per image row, so a reader can judge the hits.
fn with_caption(db: &Database, rows: crate::Rows) -> Result<crate::Rows> {
    let mut columns = rows.columns().to_vec();
    if columns.first().is_none_or(|c| c.name != "id") {
        return Ok(rows);
    }
    let mut stmt = db.prepare(&format!(
        "SELECT caption FROM {TABLE}_captions WHERE image_id = ? ORDER BY id LIMIT 1"
    ))?;
    let mut values = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        let id = row.value(0)?.clone();
        let caption = stmt.query(&[id])?;
        let text = match caption.get(0) {
            Some(r) => r.value(0)?.clone(),
            None => Value::Null,
        };
        let mut v = row.values().to_vec();
        v.push(text);
        values.push(v);
    }
    let mut caption_col = columns[0].clone();
    caption_col.name = "a true caption".to_string();
    caption_col.ty = Some(crate::ColumnType::Text);
    columns.push(caption_col);
    Ok(crate::Rows::new(columns, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_matches_some_scenes() {
        assert_eq!(filter_ids(400), (101, 200));
        assert_eq!(filter_ids(60), (16, 30));
        for n in 1..100 {
            let (lo, hi) = filter_ids(n);
            assert!(1 <= lo && lo <= hi && hi <= n, "{n}: {lo}..{hi}");
        }
    }
}
