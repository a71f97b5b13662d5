//! SQL: parse (a [`sqlparser`] wrapper) → bind/plan → execute against the storage engine.
//!
//! The dialect is documented in `docs/sql.md`. Data flows: [`parser`] splits and parses (with
//! `lexer` tokenizing; `complete` tells a shell when buffered lines end a statement),
//! `planner` (with `binder` for expressions and `ddl` for CREATE TABLE) builds a [`plan::Plan`],
//! `select_exec` / `write_exec` run it (with `embedding` filling vectors), [`Session`] ties it
//! together and `api` puts `execute` / `query` / `prepare` on [`crate::Database`].

// Parsers of files and user input: no unwrap, expect, panic or unchecked indexing outside
// tests; an `#[expect]` names the invariant where one truly holds.
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod api;
mod binder;
mod complete;
mod ddl;
mod embedding;
mod expr;
mod lexer;
mod parser;
mod plan;
mod planner;
mod query_resolve;
mod query_vec;
mod rows;
mod select_exec;
mod session;
mod settings;
mod value_fmt;
mod write_exec;

pub use api::Statement;
#[cfg(feature = "cli")]
pub(crate) use complete::StatementScanner;
pub use complete::is_complete;
pub use rows::{ColumnInfo, FromValue, ResultRow, RowIndex, Rows};
pub use session::{Output, ScriptError, Session};
pub use settings::Settings;
#[cfg(feature = "cli")]
pub(crate) use value_fmt::{display_value, widen_f32};
