//! COCO: bulk loading of COCO-captions-format data sets, import of precomputed embeddings, and the
//! Recall@K benchmark of the CLIP paper run through mmdb's own search. Layout and procedure:
//! `docs/coco.md`.

mod captions;
mod image_file;
mod load;
mod npy;
mod npy_file;
mod recall;
mod report;
mod tables;

pub use captions::{CocoCaption, CocoCaptions, CocoImage, Split};
pub use image_file::FailureKind;
#[cfg(feature = "cli")]
pub(crate) use load::beside_db;
pub use load::{LoadOptions, NoProgress, Progress, load};
pub use npy::{NpyImportOptions, NpyImportReport, import_npy};
pub use npy_file::write_f32 as write_npy_f32;
pub use recall::{RecallOptions, bench_recall};
pub use report::{CaptionFailure, ImageFailure, LoadReport, RecallReport, RecallScores};
pub use tables::{captions_schema, captions_table, images_schema};
