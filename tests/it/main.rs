//! Integration tests: one binary, one module per area. Modules that need CLIP (the `clip`
//! feature) or the `mmdb` binary (`cli`) are compiled only with those features, so
//! `cargo test --no-default-features` runs the engine's tests alone.

mod bench_recall;
#[cfg(feature = "cli")]
mod binary_anywhere;
#[cfg(feature = "clip")]
mod clip;
mod corruption;
mod crash;
mod create_table_model;
#[cfg(feature = "clip")]
mod demo_data;
#[cfg(feature = "clip")]
mod demo_model;
#[cfg(feature = "cli")]
mod demo_tour;
#[cfg(feature = "cli")]
mod disk_full;
mod durability;
mod explain;
mod fault_fs;
mod format_compat;
#[cfg(feature = "clip")]
mod image_corpus;
mod interrupt;
mod load_coco;
mod maintenance;
mod model_loader;
mod model_prop;
mod persistence;
mod primary_keys;
#[cfg(feature = "cli")]
mod repl;
mod search_order;
mod sql_fuzz;
mod sql_logic;
mod sql_params;
mod wal_recovery;
