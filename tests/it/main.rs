//! Integration tests: one binary, one module per area.

mod bench_recall;
mod clip;
mod load_coco;
