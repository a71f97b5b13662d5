//! Integration tests: one binary, one module per area.

mod bench_recall;
mod clip;
mod corruption;
mod crash;
mod demo_data;
mod demo_model;
mod demo_tour;
mod explain;
mod load_coco;
mod model_prop;
mod persistence;
mod recall;
mod repl;
mod sql_fuzz;
mod sql_logic;
mod wal_recovery;
