//! mmdb: an embedded vector database with native multimodal (CLIP) indexing.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod schema;
mod value;
pub mod embed;
mod index;
mod sql;

pub use error::{Error, Result};
pub use schema::{Column, HnswParams, TableSchema};
pub use value::{ColumnType, ImageSource, Metric, Row, RowId, Value};
