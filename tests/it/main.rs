//! Integration tests: one binary, one module per area.

mod explain;
mod repl;
mod sql_fuzz;
mod sql_logic;
