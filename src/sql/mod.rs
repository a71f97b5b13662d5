//! SQL: parse (a [`sqlparser`] wrapper) → bind/plan → execute against the storage engine.
//!
//! The dialect is documented in `docs/sql.md`.

mod binder;
mod ddl;
mod expr;
mod parser;
mod plan;
mod planner;
mod query_vec;
mod value_fmt;
