//! What a database handle knows about its own condition: writes refused after an I/O error,
//! the last failed flush or compaction, and what recovery dropped at open.

use std::path::PathBuf;

/// The condition of an open database (see [`crate::Database::health`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Why writes are refused ([`crate::Error::NeedsReopen`]), when an I/O error left this handle
    /// unsure of what is on disk. Cleared only by reopening.
    pub needs_reopen: Option<String>,
    /// The last flush or compaction that failed (a full disk, a bad segment build), while it
    /// still fails: committed writes are unaffected (they are in the WAL) and the work is
    /// retried after later writes. `None` once a retry succeeds.
    pub maintenance_error: Option<String>,
    /// The damaged last WAL record that recovery dropped at open, if any (see
    /// [`crate::WalRecovery`]).
    pub torn_tail: Option<TornTail>,
}

/// A damaged last record that recovery dropped: what a crash in the middle of an append
/// leaves. That write was never acknowledged (its fsync had not returned).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The WAL file.
    pub path: PathBuf,
    /// Byte offset of the dropped bytes (the end of the last whole record).
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes: u64,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recovery dropped a torn last record of {}: {} bytes at byte {} (a write cut short \
             by a crash, never acknowledged)",
            self.path.display(),
            self.bytes,
            self.offset
        )
    }
}
