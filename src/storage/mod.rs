//! Files on disk: durability helpers (`fsync_dir`; `FramedWriter::finish` is the atomic write:
//! temporary file, fsync, rename, fsync of the directory), the framed file format every segment file uses, memory
//! maps and the cache prefetch hint (the only `unsafe` in mmdb) and the write lock.

// Parsers of files and user input: no unwrap, expect, panic or unchecked indexing outside
// tests; an `#[expect]` names the invariant where one truly holds.
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod framed;
mod fs;
mod lock;
mod mmap;

use std::fs::File;
use std::path::Path;

pub use framed::{FramedFile, FramedWriter};
pub use fs::{FileSystem, RealFileSystem, WritableFile};
pub use lock::WriteLock;
pub use mmap::{Mmap, bytes_as_f32, bytes_as_u32, bytes_as_u64, prefetch};

use crate::{Error, Result};

// Every on-disk integer is little-endian and vectors are mapped in place as f32.
#[cfg(not(target_endian = "little"))]
compile_error!("mmdb's file formats are little-endian and mapped in place");

/// Fsyncs directory `dir`, so that creations, renames and deletions in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The temporary name used while `path` is being written.
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes `path`, ignoring a file that is already gone.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_and_parent() {
        assert_eq!(tmp_path(Path::new("a/b")), Path::new("a/b.tmp"));
        assert_eq!(parent(Path::new("b")), Path::new("."));
    }
}
