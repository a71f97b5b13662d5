//! mmdb: an embedded vector database with native multimodal (CLIP) indexing.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod embed;
mod error;
mod index;
mod schema;
mod value;

pub use error::{Error, Result};
pub use schema::{Column, HnswParams, TableSchema};
pub use value::{ColumnType, ImageSource, Metric, Row, RowId, Value};
