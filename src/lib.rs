//! mmdb: an embedded vector database with native multimodal (CLIP) indexing.
//!
//! Open a [`Database`] (a directory), run SQL through [`Database::execute`] and
//! [`Database::query`], or use the storage API directly ([`Database::insert`],
//! [`TableSnapshot::search`]). The README's example runs as a doctest.
//!
//! Modules along the data path (see `docs/ARCHITECTURE.md`): `sql` (parse, plan, execute) →
//! [`embed`] (CLIP with candle) → `wal` → `memtable` → `segment` (mmap + [`index`] HNSW), with
//! `db` tying them together, [`coco`] and [`demo`] for bulk loading, and [`repl`] for the shell.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod catalog;
pub mod coco;
mod db;
pub mod demo;
pub mod embed;
mod error;
pub mod index;
mod memtable;
pub mod repl;
mod schema;
mod segment;
pub mod sql;
mod storage;
mod value;
mod wal;

pub use db::{
    DEFAULT_MAX_DELETED_FRACTION, DEFAULT_MAX_SEGMENTS, DEFAULT_MEMTABLE_MAX_BYTES, Database,
    DatabaseBuilder, SearchHit, SearchPath, SearchPlan, SearchRequest, TableSnapshot,
};
pub use error::{Error, Result};
pub use schema::{Column, HnswParams, TableSchema};
pub use sql::{ColumnInfo, FromValue, Output, ResultRow, Rows, Session, Statement};
pub use value::{ColumnType, ImageSource, Metric, Row, RowId, Value};
pub use wal::Sync;

/// The README's code blocks, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
