//! Integration tests: one binary, one module per area.

mod corruption;
mod crash;
mod explain;
mod model_prop;
mod persistence;
mod repl;
mod sql_fuzz;
mod sql_logic;
mod wal_recovery;
