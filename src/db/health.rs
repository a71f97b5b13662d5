//! What a database handle knows about its own condition: writes refused after an I/O error,
//! the last failed flush or compaction, and what recovery dropped at open.

use crate::wal::TornTail;

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
