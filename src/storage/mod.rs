//! Files on disk: the I/O seam every durable change goes through ([`FileSystem`]), durability
//! helpers (`fsync_dir`; `FramedWriter::finish` is the atomic write: temporary file, fsync,
//! rename, fsync of the directory), the framed file format every segment file uses, memory
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

use std::path::Path;

pub use framed::{FramedFile, FramedWriter};
pub use fs::{FileSystem, RealFileSystem, WritableFile};
pub use lock::WriteLock;
pub use mmap::{Mmap, bytes_as_f32, bytes_as_u32, bytes_as_u64, prefetch};

use crate::{Error, Result};

// Every on-disk integer is little-endian and vectors are mapped in place as f32.
#[cfg(not(target_endian = "little"))]
compile_error!("mmdb's file formats are little-endian and mapped in place");

/// Fsyncs directory `dir` through `fs`, so that creations, renames and deletions in it are
/// durable. A failure is [`Error::OutcomeUnknown`]: the changes may or may not have reached the
/// disk, and the database stops writing until reopened.
pub fn fsync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(|e| unknown(dir, e))
}

/// The error for a failed fsync, truncate or rename: what reached the disk is unknown.
pub fn unknown(path: &Path, source: std::io::Error) -> Error {
    Error::OutcomeUnknown {
        path: path.to_path_buf(),
        source,
    }
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

/// Removes `path` through `fs`, ignoring a file that is already gone.
pub fn remove_file(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
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
