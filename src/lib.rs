//! mmdb: an embedded vector database with native multimodal (CLIP) indexing.
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
