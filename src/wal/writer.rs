//! Appending to the WAL, with the three durability modes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::{
    HEADER, MAX_RECORD, RECORD_HEADER, WalOp, encode_op, header_bytes, record_header, wal_path,
};
use crate::storage::{FileSystem, WritableFile, fsync_dir, unknown};
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

/// The first I/O failure that left the on-disk state unknown; shared by the database, its WAL
/// writer and the group-commit handles. Once set, every write is refused until reopen.
pub type Poison = Arc<OnceLock<String>>;

/// The open WAL file being appended to. Appends happen under the database's writer lock;
/// [`GroupCommit::sync_to`] may be called without it.
///
/// I/O failures (the redb/fjall rule, and PostgreSQL's lesson that a failed fsync cannot be
/// retried): a failed write is cut off again (the file is truncated back to the last whole
/// record) and the caller gets [`Error::Io`], nothing committed; when that truncate fails, or an
/// fsync fails, the caller gets [`Error::OutcomeUnknown`] and the writer is poisoned.
#[derive(Debug)]
pub struct WalWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    sync: Sync,
    file: Arc<dyn WritableFile>,
    path: PathBuf,
    /// Sequence number of the first record of `file` (its name).
    first_seq: u64,
    /// Bytes of `file` holding whole records (where the next one goes).
    end: u64,
    next_seq: u64,
    /// Last seq known durable; shared by group-commit waiters.
    synced: Arc<Mutex<u64>>,
    written: u64,
    buf: Vec<u8>,
    poison: Poison,
}

/// A new WAL file created by [`WalWriter::prepare_rotation`], not yet in use.
#[derive(Debug)]
pub struct NextWal {
    file: Arc<dyn WritableFile>,
    path: PathBuf,
    first_seq: u64,
}

impl WalWriter {
    /// Opens the WAL for appending: at `tail = (file, first seq, end of its last whole record)`
    /// (recovery's tail; anything after `end` is cut off), or a new file starting at `next_seq`
    /// when `tail` is `None`.
    ///
    /// The whole records of a tail file are first written again, in place, and fsynced:
    /// recovery has just shown them as committed, but after a failed fsync in an earlier process
    /// the kernel may hold them only in pages it marked clean, which no later fsync writes.
    /// Dirtied again, they are written. The bytes are the same, so a crash meanwhile changes
    /// nothing, and no space is needed (a full disk still opens).
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        sync: Sync,
        tail: Option<(PathBuf, u64, u64)>,
        next_seq: u64,
        poison: Poison,
    ) -> Result<WalWriter> {
        let (file, path, first_seq, end) = match tail {
            Some((path, first_seq, end)) => {
                let f = fs.open_write(&path).map_err(|e| Error::io(&path, e))?;
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                let whole = usize::try_from(end)
                    .ok()
                    .and_then(|end| bytes.get(HEADER.min(end)..end))
                    .ok_or_else(|| {
                        Error::corrupted(&path, format!("shorter than its {end} bytes of records"))
                    })?;
                if !whole.is_empty() {
                    f.write_all_at(whole, HEADER as u64)
                        .map_err(|e| Error::io(&path, e))?;
                }
                if bytes.len() as u64 != end {
                    f.set_len(end).map_err(|e| unknown(&path, e))?;
                }
                if !whole.is_empty() || bytes.len() as u64 != end {
                    f.sync_data().map_err(|e| unknown(&path, e))?;
                }
                (Arc::from(f), path, first_seq, end)
            }
            None => {
                let (f, path) = create_file(&*fs, dir, next_seq)?;
                (f, path, next_seq, HEADER as u64)
            }
        };
        Ok(WalWriter {
            fs,
            dir: dir.to_path_buf(),
            sync,
            file,
            path,
            first_seq,
            end,
            next_seq,
            synced: Arc::new(Mutex::new(next_seq.saturating_sub(1))),
            written: next_seq.saturating_sub(1),
            buf: Vec::new(),
            poison,
        })
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sequence number of the first record of the file being appended to (the manifest
    /// names it: the WAL file that must exist).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The file being appended to.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks the writer poisoned with `cause` (the first cause wins).
    fn poison(&self, cause: &Error) {
        let _ = self.poison.set(cause.to_string());
    }

    /// Appends one record; with [`Sync::Full`] it is fsynced before returning. Returns its seq;
    /// with [`Sync::Normal`] call [`GroupCommit::sync_to`] (the handle from
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
        if let Err(e) = self.file.write_all_at(&self.buf, self.end) {
            // Part of the record may be in the file: cut it off, so that the next record follows
            // the last whole one (a partial record followed by more data is damage, not a torn
            // tail). If even that fails, the file's end is unknown.
            if self.file.set_len(self.end).is_err() {
                let err = unknown(&self.path, e);
                self.poison(&err);
                return Err(err);
            }
            return Err(Error::io(&self.path, e));
        }
        self.end += self.buf.len() as u64;
        self.next_seq += 1;
        self.written = seq;
        if self.sync == Sync::Full {
            if let Err(e) = self.file.sync_data() {
                let err = unknown(&self.path, e);
                self.poison(&err);
                return Err(err);
            }
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
            poison: self.poison.clone(),
        }
    }

    /// Creates (durably) the file a flush will [`switch`](Self::switch) to, named for the next
    /// sequence number; `None` when the current file has no record yet (it stays).
    pub fn prepare_rotation(&self) -> Result<Option<NextWal>> {
        if self.next_seq == self.first_seq {
            return Ok(None);
        }
        let (file, path) = create_file(&*self.fs, &self.dir, self.next_seq)?;
        Ok(Some(NextWal {
            file,
            path,
            first_seq: self.next_seq,
        }))
    }

    /// Switches appends to `next` before any manifest names it (a background flush: the
    /// records so far go to a segment while new ones go to `next`). Recovery reads the files
    /// after the one the manifest names in sequence order, so both files are needed until the
    /// flush's manifest names `next`; then [`remove_wal_before`] removes the older ones. The current file is made durable first (unless [`Sync::Off`]): a writer
    /// still waiting for its group commit on it is covered, and a reader of the chain never
    /// finds a torn record in a file that is not the last.
    pub fn switch(&mut self, next: NextWal) -> Result<()> {
        if self.sync != Sync::Off && self.written >= self.first_seq {
            self.sync_all()?;
        }
        {
            let mut s = self.synced.lock();
            *s = (*s).max(self.next_seq.saturating_sub(1));
        }
        self.file = next.file;
        self.path = next.path;
        self.first_seq = next.first_seq;
        self.end = HEADER as u64;
        Ok(())
    }

    /// The directory and file system, for [`remove_wal_before`] after the writer lock is
    /// released.
    pub fn location(&self) -> (Arc<dyn FileSystem>, PathBuf) {
        (self.fs.clone(), self.dir.clone())
    }

    /// Makes every appended record durable now (used on close).
    pub fn sync_all(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| {
            let err = unknown(&self.path, e);
            self.poison(&err);
            err
        })
    }
}

/// Makes records durable outside the writer lock: concurrent callers share one fsync.
#[derive(Debug)]
pub struct GroupCommit {
    file: Arc<dyn WritableFile>,
    path: PathBuf,
    synced: Arc<Mutex<u64>>,
    written: u64,
    sync: Sync,
    poison: Poison,
}

impl GroupCommit {
    /// Returns once the record `seq` is durable (immediately for `Full` and `Off`). A failed
    /// fsync, or one that failed for another writer first, is [`Error::OutcomeUnknown`].
    pub fn sync_to(&self, seq: u64) -> Result<()> {
        if self.sync != Sync::Normal {
            return Ok(());
        }
        // Waiters queue on this mutex; the first one fsyncs for all records written so far.
        let mut synced = self.synced.lock();
        if *synced >= seq {
            return Ok(());
        }
        // After a failed fsync the kernel may have dropped the dirty pages: a retry could
        // "succeed" without them. Never retry.
        if let Some(cause) = self.poison.get() {
            return Err(unknown(&self.path, std::io::Error::other(cause.clone())));
        }
        if let Err(e) = self.file.sync_data() {
            let err = unknown(&self.path, e);
            let _ = self.poison.set(err.to_string());
            return Err(err);
        }
        *synced = (*synced).max(self.written.max(seq));
        Ok(())
    }
}

/// Removes the WAL files of `dir` whose records all come before `first_seq` (a manifest naming
/// the file that starts there committed; the caller holds the flush lock, so no newer switch
/// happened). A failed removal changes nothing: the next flush or open removes the files.
pub fn remove_wal_before(fs: &dyn FileSystem, dir: &Path, first_seq: u64) -> Result<()> {
    let mut removed = false;
    for (seq, p) in super::recovery::list_wal_files(dir)? {
        if seq < first_seq {
            crate::storage::remove_file(fs, &p)?;
            removed = true;
        }
    }
    if removed {
        fsync_dir(fs, dir)?;
    }
    Ok(())
}

/// Creates `wal-<first_seq>.log` with its header, durably (file and directory entry).
fn create_file(
    fs: &dyn FileSystem,
    dir: &Path,
    first_seq: u64,
) -> Result<(Arc<dyn WritableFile>, PathBuf)> {
    let path = wal_path(dir, first_seq);
    let f = fs.create(&path).map_err(|e| Error::io(&path, e))?;
    f.write_all_at(&header_bytes(first_seq), 0)
        .map_err(|e| Error::io(&path, e))?;
    f.sync_data().map_err(|e| unknown(&path, e))?;
    fsync_dir(fs, dir)?;
    Ok((Arc::from(f), path))
}
