//! Appending to the WAL, with the three durability modes.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{MAX_RECORD, RECORD_HEADER, WalOp, encode_op, header_bytes, record_header, wal_path};
use crate::storage::fsync_dir;
use crate::{Error, Result};

/// When an acknowledged batch is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// The WAL is fsynced before each write returns (the default). Survives power loss.
    #[default]
    Full,
    /// Group commit: a write returns after an fsync that may cover several concurrent writers'
    /// records, so concurrent writers share fsyncs. Survives power loss once acknowledged.
    /// Readers may see a write a moment before it is acknowledged (while its fsync runs).
    Normal,
    /// No fsync: acknowledged writes survive a process crash, not an OS crash or power loss.
    Off,
}

/// The open WAL file being appended to. Appends happen under the database's writer lock;
/// [`WalWriter::sync_to`] may be called without it (group commit).
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    sync: Sync,
    file: Arc<File>,
    path: PathBuf,
    next_seq: u64,
    /// (last seq known durable, file to fsync for later ones); shared by group-commit waiters.
    synced: Arc<Mutex<u64>>,
    written: u64,
    buf: Vec<u8>,
}

impl WalWriter {
    /// Opens `path` for appending at `end` (after recovery truncated any torn tail), or creates a
    /// new file starting at `next_seq` when `path` is `None`.
    pub fn open(
        dir: &Path,
        sync: Sync,
        existing: Option<(PathBuf, u64)>,
        next_seq: u64,
    ) -> Result<WalWriter> {
        let (file, path) = match existing {
            Some((path, end)) => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                f.set_len(end)
                    .and_then(|_| f.sync_all())
                    .and_then(|_| f.seek(SeekFrom::Start(end)).map(|_| ()))
                    .map_err(|e| Error::io(&path, e))?;
                (f, path)
            }
            None => create_file(dir, next_seq)?,
        };
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            sync,
            file: Arc::new(file),
            path,
            next_seq,
            synced: Arc::new(Mutex::new(next_seq.saturating_sub(1))),
            written: next_seq.saturating_sub(1),
            buf: Vec::new(),
        })
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The file being appended to.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record; with [`Sync::Full`] it is fsynced before returning. Returns its seq;
    /// with [`Sync::Normal`] call [`sync_to`](Self::sync_to) (or the handle from
    /// [`group_commit`](Self::group_commit)) before acknowledging.
    pub fn append(&mut self, op: &WalOp) -> Result<u64> {
        let seq = self.next_seq;
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; RECORD_HEADER]);
        encode_op(op, &mut self.buf);
        // Recovery rejects a longer record as damage: refuse it here rather than log it.
        let payload_len = u32::try_from(self.buf.len() - RECORD_HEADER)
            .ok()
            .filter(|&l| l as usize <= MAX_RECORD)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a batch of {} bytes exceeds the WAL record limit of {MAX_RECORD} bytes",
                    self.buf.len() - RECORD_HEADER
                ))
            })?;
        #[expect(
            clippy::indexing_slicing,
            reason = "`buf` starts with the RECORD_HEADER placeholder bytes pushed above"
        )]
        {
            let h = record_header(payload_len, seq, &self.buf[RECORD_HEADER..]);
            self.buf[..RECORD_HEADER].copy_from_slice(&h);
        }
        (&*self.file)
            .write_all(&self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        self.next_seq += 1;
        self.written = seq;
        if self.sync == Sync::Full {
            self.file
                .sync_data()
                .map_err(|e| Error::io(&self.path, e))?;
            let mut s = self.synced.lock();
            *s = (*s).max(seq);
        }
        Ok(seq)
    }

    /// A handle that makes records up to a seq durable without the writer lock (group commit).
    pub fn group_commit(&self) -> GroupCommit {
        GroupCommit {
            file: self.file.clone(),
            path: self.path.clone(),
            synced: self.synced.clone(),
            written: self.written,
            sync: self.sync,
        }
    }

    /// Starts a new file at the current sequence number and removes the older files. Called after
    /// a manifest that covers every record so far has committed.
    pub fn rotate(&mut self) -> Result<()> {
        let (file, path) = create_file(&self.dir, self.next_seq)?;
        let old = std::mem::replace(&mut self.path, path);
        self.file = Arc::new(file);
        {
            // Everything before next_seq is in segments now: durable.
            let mut s = self.synced.lock();
            *s = (*s).max(self.next_seq.saturating_sub(1));
        }
        for (_, p) in super::recovery::list_wal_files(&self.dir)? {
            if p != self.path {
                crate::storage::remove_file(&p)?;
            }
        }
        let _ = old;
        fsync_dir(&self.dir)
    }

    /// Makes every appended record durable now (used on close).
    pub fn sync_all(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Makes records durable outside the writer lock: concurrent callers share one fsync.
#[derive(Debug)]
pub struct GroupCommit {
    file: Arc<File>,
    path: PathBuf,
    synced: Arc<Mutex<u64>>,
    written: u64,
    sync: Sync,
}

impl GroupCommit {
    /// Returns once the record `seq` is durable (immediately for `Full` and `Off`).
    pub fn sync_to(&self, seq: u64) -> Result<()> {
        if self.sync != Sync::Normal {
            return Ok(());
        }
        // Waiters queue on this mutex; the first one fsyncs for all records written so far.
        let mut synced = self.synced.lock();
        if *synced >= seq {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))?;
        *synced = (*synced).max(self.written.max(seq));
        Ok(())
    }
}

fn create_file(dir: &Path, first_seq: u64) -> Result<(File, PathBuf)> {
    let path = wal_path(dir, first_seq);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.write_all(&header_bytes(first_seq))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&path, e))?;
    fsync_dir(dir)?;
    Ok((f, path))
}
