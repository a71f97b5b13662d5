//! Integration tests: one binary, one module per area.

mod recall;
mod clip;
mod corruption;
mod crash;
mod model_prop;
mod persistence;
mod wal_recovery;
