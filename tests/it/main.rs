//! Integration tests: one binary, one module per area.

mod demo_data;
