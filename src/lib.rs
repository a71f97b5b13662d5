//! mmdb: an embedded vector database with native multimodal (CLIP) indexing.
//!
//! Open a [`Database`] (a directory), run SQL through [`Database::execute`] and
//! [`Database::query`] (or a [`Session`], which keeps `SET` settings), or use the storage API
//! directly ([`Database::insert`], [`TableSnapshot::search`] with a [`SearchRequest`]). The
//! Rust examples of the README and `docs/` run as doctests.
//!
//! ```
//! # fn main() -> mmdb::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| mmdb::Error::io("tempdir", e))?;
//! let db = mmdb::Database::open(dir.path())?;
//! db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, emb VECTOR(2))", &[])?;
//! db.execute("INSERT INTO t (emb) VALUES ([1, 0]), ([0, 1])", &[])?;
//! let rows = db.query("SELECT id FROM t ORDER BY similarity(emb, [0.9, 0.1]) LIMIT 1", &[])?;
//! assert_eq!(rows.get(0).and_then(|r| r.get::<i64>("id").ok()), Some(1));
//! # Ok(()) }
//! ```
//!
//! Modules along the data path (see `docs/ARCHITECTURE.md`): `sql` (parse, plan, execute) →
//! `embedder` (the [`Embedder`] trait and [`ModelRegistry`]) → `db` → `wal` → `memtable` →
//! `segment` (mmap + `index` HNSW) → `storage`. Cargo features follow those layers:
//!
//! - without default features, the engine alone: storage, WAL, segments, index, SQL, and [`coco`]
//!   loading through whatever [`Embedder`] is installed
//!   ([`DatabaseBuilder::model_loader`], [`ModelRegistry::insert`]);
//! - `clip` (default): CLIP with candle ([`clip`]) as the built-in model loader, image decoding,
//!   and the [`demo`] data generator; `download` and `avx512` (default) and `cuda` refine it;
//! - `cli` (default): the `mmdb` binary.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod catalog;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[cfg(feature = "clip")]
pub mod clip;
pub mod coco;
mod db;
#[cfg(feature = "clip")]
pub mod demo;
mod embedder;
mod error;
mod image_intake;
mod index;
mod memtable;
#[cfg(test)]
mod module_graph;
mod schema;
mod segment;
mod sql;
mod storage;
mod value;
mod wal;

pub use db::{
    BulkLoader, DEFAULT_BULK_CHUNK_BYTES, DEFAULT_MAX_DELETED_FRACTION, DEFAULT_MAX_SEGMENTS,
    DEFAULT_MEMTABLE_MAX_BYTES, DEFAULT_MERGE_FACTOR, Database, DatabaseBuilder, Health,
    MaintenanceStats, SearchHit, SearchPath, SearchPlan, SearchRequest, TableSnapshot,
};
pub use embedder::{DEFAULT_MODEL, Embedder, ModelLoader, ModelRegistry};
pub use error::{Error, ImageErrorKind, Result};
pub use image_intake::{
    DEFAULT_BULK_DECODE_DEADLINE, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_DECODE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS, ImageLimits, PILLOW_MAX_IMAGE_PIXELS, check_complete, read_image,
};
pub use schema::{Column, HnswParams, TableSchema};
pub use sql::{
    ColumnInfo, FromValue, Output, ResultRow, RowIndex, Rows, ScriptError, Session, Settings,
    Statement, is_complete,
};
pub use storage::{FileSystem, RealFileSystem, WritableFile};
pub use value::{ColumnType, ImageSource, Metric, Row, RowFilter, RowId, Value};
pub use wal::{Sync, TornTail, WalRecovery};

/// Engine internals for the benches (`benches/hnsw.rs` measures the index alone). Not an API:
/// only with the hidden `__internals` feature, and it may change in any release.
#[cfg(feature = "__internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::index::*;
}

/// The README's code blocks, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust examples of `docs/sql.md`, run as doctests (its `sql` blocks run in
/// `tests/it/sql_logic.rs`).
#[cfg(doctest)]
#[doc = include_str!("../docs/sql.md")]
pub struct SqlDocDoctests;
