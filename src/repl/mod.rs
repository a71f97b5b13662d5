//! The `mmdb` shell: result rendering, the script/dot-command core, and (with the `repl`
//! feature) the interactive rustyline loop.

#[cfg(feature = "repl")]
pub mod interactive;
pub mod render;
pub mod shell;

pub use render::Mode;
pub use shell::{Flow, HELP, Shell, temp_db_dir};
