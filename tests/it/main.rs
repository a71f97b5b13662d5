//! Integration tests: one binary, one module per area.

mod bench_recall;
mod load_coco;
