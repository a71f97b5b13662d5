//! Integration tests: one binary, one module per area.

mod recall;
mod clip;
