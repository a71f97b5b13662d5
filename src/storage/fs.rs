//! The I/O seam: every durable change mmdb makes to its directory (create, write, fsync, rename,
//! fsync of the directory, remove, truncate) goes through a [`FileSystem`], so that a test can
//! stand between mmdb and the disk: keep only what was made durable and drop the rest (power
//! loss), or fail the Nth operation with `EIO` or `ENOSPC`. Reads (the manifest, WAL replay,
//! memory maps of segment files) go to the operating system directly: a test file system writes
//! through to real files, so what mmdb reads back is what it wrote.
//!
//! The default, [`RealFileSystem`], is `std::fs`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Where mmdb's durable writes go (see [`crate::DatabaseBuilder::file_system`]).
///
/// mmdb relies on POSIX semantics: a file's bytes are durable once [`WritableFile::sync_data`]
/// returned `Ok`; a name created, renamed or removed in a directory is durable once
/// [`FileSystem::sync_dir`] of that directory returned `Ok`; [`FileSystem::rename`] replaces the
/// target atomically. An operation that returns `Err` may have happened in part.
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Creates `path` for writing, replacing (truncating) a file of that name.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens the existing file `path` for writing (a WAL file appended to after recovery).
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in directory `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing through a [`FileSystem`]. Methods take `&self`: the WAL's group
/// commit fsyncs from one thread while another appends.
pub trait WritableFile: Send + Sync + std::fmt::Debug {
    /// Writes all of `buf` at byte `offset` (extending the file as needed).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's bytes and length durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's bytes and all its metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// The operating system's file system (`std::fs`); the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFileSystem;

#[derive(Debug)]
struct RealFile(File);

impl FileSystem for RealFileSystem {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = OpenOptions::new().write(true).open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl WritableFile for RealFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}
