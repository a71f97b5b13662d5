//! The `mmdb` command's code (feature `cli`): the shell, its rendering, the subcommands and the
//! demo tour. `src/main.rs` only parses arguments and calls these.
//!
//! This is the top layer: it may use any module below, and nothing in the library uses it. It is
//! public so that `main.rs` and the integration tests can reach it, but hidden from the docs: it
//! is the binary's code, not a stable API.
//!
//! - `shell.rs`: scripts and dot-commands over a [`Session`](crate::Session) (`SET` lasts a shell
//!   session); `render.rs`: results as tables, CSV, JSON or lines; `interactive.rs`: the
//!   rustyline loop (history, multi-line input, Ctrl-C, completion).
//! - `coco.rs`: `load-coco`, `import-npy` and `bench-recall` (argument structs and runners).
//! - `embed.rs`: `mmdb embed`, embeddings as JSON lines.
//! - `tour.rs`: `mmdb demo`.

pub mod coco;
pub mod embed;
pub mod interactive;
pub mod progress;
pub mod render;
pub mod shell;
pub mod tour;

pub use embed::run_embed;
pub use render::Mode;
pub use shell::{Flow, HELP, Shell, temp_db_dir};
pub use tour::{DEMO_MODEL_SPEC, TourOptions, run_tour};
