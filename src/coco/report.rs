//! What a load and a benchmark tell the user: the skipped-images report file, the Recall@K table
//! (laid out like the CLIP paper's: text retrieval, then image retrieval) and its JSON form.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::image_file::FailureKind;
use crate::{Error, Result};

/// An image the loader skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageFailure {
    /// COCO image id.
    pub image_id: i64,
    /// File name as listed in the captions file.
    pub file_name: String,
    /// Why it was skipped.
    pub kind: FailureKind,
    /// The detail (OS or decoder message).
    pub detail: String,
}

/// A caption that could not be embedded (its image is loaded; the caption is not).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionFailure {
    /// Annotation id.
    pub caption_id: i64,
    /// The image it describes.
    pub image_id: i64,
    /// The embedder's message.
    pub detail: String,
}

/// The outcome of [`load`](super::load).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Images table.
    pub table: String,
    /// Captions table.
    pub captions_table: String,
    /// Images in the captions file (after the split filter).
    pub images_total: usize,
    /// Images already in the table, skipped (resume).
    pub images_already_loaded: usize,
    /// Images loaded by this run.
    pub images_loaded: usize,
    /// Captions loaded by this run.
    pub captions_loaded: usize,
    /// Images skipped because they are missing, truncated or undecodable.
    pub image_failures: Vec<ImageFailure>,
    /// Captions that could not be embedded.
    pub caption_failures: Vec<CaptionFailure>,
    /// True when the run stopped early on the cancel flag (every row counted above is durable).
    pub interrupted: bool,
    /// The TSV file listing the failures.
    pub report_path: PathBuf,
    /// Wall time of the run in seconds.
    pub seconds: f64,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.interrupted {
            "interrupted after loading"
        } else {
            "loaded"
        };
        writeln!(
            f,
            "{verb} {} images and {} captions into {} / {} in {:.1}s ({} of {} images were already loaded)",
            self.images_loaded,
            self.captions_loaded,
            self.table,
            self.captions_table,
            self.seconds,
            self.images_already_loaded,
            self.images_total,
        )?;
        // The kinds that occurred, by report name: `skipped 3 images (missing 2, truncated 1)`.
        let by_kind: Vec<String> = FailureKind::ALL
            .iter()
            .filter_map(|&k| {
                let n = self.image_failures.iter().filter(|x| x.kind == k).count();
                (n > 0).then(|| format!("{} {n}", k.name()))
            })
            .collect();
        let kinds = if by_kind.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_kind.join(", "))
        };
        write!(
            f,
            "skipped {} images{kinds} and {} captions; listed in {}",
            self.image_failures.len(),
            self.caption_failures.len(),
            self.report_path.display()
        )
    }
}

/// Writes the failures as TSV (`kind  image_id  caption_id  file_name  detail`), replacing the file
/// atomically so a reader never sees half a report.
pub fn write_failures(
    path: &Path,
    images: &[ImageFailure],
    captions: &[CaptionFailure],
) -> Result<()> {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let mut out = String::from("kind\timage_id\tcaption_id\tfile_name\tdetail\n");
    for x in images {
        out += &format!(
            "{}\t{}\t\t{}\t{}\n",
            x.kind.name(),
            x.image_id,
            clean(&x.file_name),
            clean(&x.detail)
        );
    }
    for x in captions {
        out += &format!(
            "caption_failed\t{}\t{}\t\t{}\n",
            x.image_id,
            x.caption_id,
            clean(&x.detail)
        );
    }
    atomic_write(path, out.as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Recall@K in percent, one value per K, for both directions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecallScores {
    /// Search path used: `exact` or `hnsw ef=N`.
    pub path: String,
    /// Text→image (image retrieval): a caption's query hits when its image is in the top K.
    pub text_to_image: Vec<f64>,
    /// Image→text (text retrieval): an image's query hits when any of its captions is in the top K.
    pub image_to_text: Vec<f64>,
    /// Wall time of the queries in seconds.
    pub seconds: f64,
}

/// The outcome of [`bench_recall`](super::bench_recall).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecallReport {
    /// Images table.
    pub table: String,
    /// Captions table.
    pub captions_table: String,
    /// Image queries run (images with an embedding).
    pub images: usize,
    /// Caption queries run (captions whose image is in the images table).
    pub captions: usize,
    /// Captions left out because their image is not loaded.
    pub captions_without_image: usize,
    /// The K values.
    pub k: Vec<usize>,
    /// Scores on the requested path.
    pub scores: RecallScores,
    /// Scores of exact search, with `--compare-exact`.
    pub exact: Option<RecallScores>,
}

impl RecallReport {
    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot serialise report: {e}")))?;
        atomic_write(path, &json)
    }
}

impl fmt::Display for RecallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Recall@K on {} ({} images) / {} ({} captions{})",
            self.table,
            self.images,
            self.captions_table,
            self.captions,
            if self.captions_without_image > 0 {
                format!(
                    ", {} without a loaded image left out",
                    self.captions_without_image
                )
            } else {
                String::new()
            }
        )?;
        let n = self.k.len();
        let group = 8 * n;
        writeln!(
            f,
            "{:<16}{:>group$}  {:>group$}",
            "", "Text retrieval", "Image retrieval"
        )?;
        writeln!(
            f,
            "{:<16}{:>group$}  {:>group$}",
            "", "(image→text)", "(text→image)"
        )?;
        let ks: String = self
            .k
            .iter()
            .map(|k| format!("{:>8}", format!("R@{k}")))
            .collect();
        writeln!(f, "{:<16}{ks}  {ks}", "")?;
        let row = |f: &mut fmt::Formatter<'_>, label: &str, a: &[f64], b: &[f64]| {
            let cells = |v: &[f64]| v.iter().map(|x| format!("{x:>8.1}")).collect::<String>();
            writeln!(f, "{label:<16}{}  {}", cells(a), cells(b))
        };
        let s = &self.scores;
        row(f, &s.path, &s.image_to_text, &s.text_to_image)?;
        if let Some(e) = &self.exact {
            row(f, &e.path, &e.image_to_text, &e.text_to_image)?;
            let diff =
                |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>();
            row(
                f,
                "difference",
                &diff(&s.image_to_text, &e.image_to_text),
                &diff(&s.text_to_image, &e.text_to_image),
            )?;
        }
        write!(
            f,
            "(percent; {} queries in {:.2}s)",
            self.images + self.captions,
            s.seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_table_shows_both_directions_and_the_difference() {
        let scores = |path: &str, t: f64| RecallScores {
            path: path.into(),
            text_to_image: vec![t, 55.9, 66.9],
            image_to_text: vec![50.1, 75.0, 83.5],
            seconds: 1.0,
        };
        let r = RecallReport {
            table: "coco".into(),
            captions_table: "coco_captions".into(),
            images: 5000,
            captions: 25010,
            captions_without_image: 0,
            k: vec![1, 5, 10],
            scores: scores("hnsw ef=64", 30.4),
            exact: Some(scores("exact", 30.6)),
        };
        let text = r.to_string();
        assert!(text.contains("R@1     R@5    R@10"), "{text}");
        assert!(
            text.contains("hnsw ef=64          50.1    75.0    83.5      30.4    55.9    66.9"),
            "{text}"
        );
        assert!(
            text.contains("difference           0.0     0.0     0.0      -0.2     0.0     0.0"),
            "{text}"
        );
    }

    #[test]
    fn failures_tsv_has_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.tsv");
        let img = ImageFailure {
            image_id: 5,
            file_name: "a.jpg".into(),
            kind: FailureKind::Missing,
            detail: "file\tnot found".into(),
        };
        let cap = CaptionFailure {
            caption_id: 9,
            image_id: 4,
            detail: "too long".into(),
        };
        write_failures(&p, &[img], &[cap]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "missing\t5\t\ta.jpg\tfile not found");
        assert_eq!(lines[2], "caption_failed\t4\t9\t\ttoo long");
    }
}
