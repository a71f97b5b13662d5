//! Options for opening a database.

use std::path::Path;
use std::sync::Arc;

use super::Database;
use crate::embedder::{ModelLoader, ModelRegistry};
use crate::storage::{FileSystem, RealFileSystem};
use crate::wal::{Sync, WalRecovery};
use crate::{ImageLimits, Result};

/// Default memtable size before a flush to a segment: 64 MiB.
pub const DEFAULT_MEMTABLE_MAX_BYTES: usize = 64 << 20;
/// Default: compact a table when it has more than this many segments.
pub const DEFAULT_MAX_SEGMENTS: usize = 8;
/// Default: rewrite a segment when more than this fraction of its rows is deleted.
pub const DEFAULT_MAX_DELETED_FRACTION: f64 = 0.3;
/// Default rows pending (approximate heap bytes) before a bulk load commits a chunk: 512 MiB.
pub const DEFAULT_BULK_CHUNK_BYTES: usize = 512 << 20;
/// Default fan-in of the size-tiered merge policy: 4 segments of one size tier merge.
pub const DEFAULT_MERGE_FACTOR: usize = 4;

/// Options of [`Database`]; build with [`Database::builder`].
#[derive(Clone)]
pub struct DatabaseBuilder {
    pub(crate) sync: Sync,
    pub(crate) memtable_max_bytes: usize,
    pub(crate) max_segments: usize,
    pub(crate) max_deleted_fraction: f64,
    pub(crate) merge_factor: usize,
    pub(crate) bulk_chunk_bytes: usize,
    pub(crate) background_maintenance: bool,
    pub(crate) read_only: bool,
    pub(crate) verify_in_background: bool,
    pub(crate) model_loader: Option<Arc<ModelLoader>>,
    pub(crate) wal_recovery: WalRecovery,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) image_limits: ImageLimits,
}

impl std::fmt::Debug for DatabaseBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseBuilder")
            .field("sync", &self.sync)
            .field("memtable_max_bytes", &self.memtable_max_bytes)
            .field("max_segments", &self.max_segments)
            .field("max_deleted_fraction", &self.max_deleted_fraction)
            .field("merge_factor", &self.merge_factor)
            .field("bulk_chunk_bytes", &self.bulk_chunk_bytes)
            .field("background_maintenance", &self.background_maintenance)
            .field("read_only", &self.read_only)
            .field("verify_in_background", &self.verify_in_background)
            .field("wal_recovery", &self.wal_recovery)
            .field("file_system", &self.fs)
            .field("image_limits", &self.image_limits)
            .field(
                "model_loader",
                &self.model_loader.as_ref().map_or("built-in", |_| "custom"),
            )
            .finish()
    }
}

impl Default for DatabaseBuilder {
    fn default() -> Self {
        DatabaseBuilder {
            sync: Sync::Full,
            memtable_max_bytes: DEFAULT_MEMTABLE_MAX_BYTES,
            max_segments: DEFAULT_MAX_SEGMENTS,
            max_deleted_fraction: DEFAULT_MAX_DELETED_FRACTION,
            merge_factor: DEFAULT_MERGE_FACTOR,
            bulk_chunk_bytes: DEFAULT_BULK_CHUNK_BYTES,
            background_maintenance: true,
            read_only: false,
            verify_in_background: true,
            model_loader: None,
            wal_recovery: WalRecovery::TolerateTornTail,
            fs: Arc::new(RealFileSystem),
            image_limits: ImageLimits::default(),
        }
    }
}

impl DatabaseBuilder {
    /// When a write is durable. Default [`Sync::Full`] (fsync before each write returns).
    #[must_use]
    pub fn sync(mut self, s: Sync) -> Self {
        self.sync = s;
        self
    }

    /// Memtable size (approximate heap bytes, all tables together) above which a write asks the
    /// background flush thread to write the memtables to segments. Writers wait (back-pressure)
    /// while twice this much is unflushed. Default 64 MiB ([`DEFAULT_MEMTABLE_MAX_BYTES`]).
    #[must_use]
    pub fn memtable_max_bytes(mut self, n: usize) -> Self {
        self.memtable_max_bytes = n;
        self
    }

    /// Background compaction merges a table's smallest segments when it has more than `n`
    /// segments (besides the size tiers, see [`merge_factor`](Self::merge_factor)).
    /// Default 8 ([`DEFAULT_MAX_SEGMENTS`]); at least 1.
    #[must_use]
    pub fn max_segments(mut self, n: usize) -> Self {
        self.max_segments = n.max(1);
        self
    }

    /// Background compaction rewrites a segment when more than this fraction of its rows is
    /// deleted. Default 0.3 ([`DEFAULT_MAX_DELETED_FRACTION`]).
    #[must_use]
    pub fn max_deleted_fraction(mut self, f: f64) -> Self {
        self.max_deleted_fraction = f;
        self
    }

    /// Fan-in of the size-tiered merge policy: when a table has `n` segments of one size tier
    /// (tier k: `n^k` to `n^(k+1) - 1` live rows), the background compaction merges them, so
    /// a row is re-indexed about `log_n(rows)` times as a table grows. Larger values merge
    /// less often and leave more segments to search. A flush also extends the table's newest
    /// segment, instead of writing one of its own, while that segment's live rows plus the
    /// flushed ones are at most `n` times the flushed ones. Default 4
    /// ([`DEFAULT_MERGE_FACTOR`]); at least 2.
    #[must_use]
    pub fn merge_factor(mut self, n: usize) -> Self {
        self.merge_factor = n.max(2);
        self
    }

    /// Rows (approximate heap bytes) a [`BulkLoader`](crate::BulkLoader) holds before it
    /// commits them as a chunk (a rewrite of the load's segment with them added). Larger
    /// chunks rewrite less often and hold more memory. Default 512 MiB
    /// ([`DEFAULT_BULK_CHUNK_BYTES`]).
    #[must_use]
    pub fn bulk_chunk_bytes(mut self, n: usize) -> Self {
        self.bulk_chunk_bytes = n.max(1);
        self
    }

    /// Whether flushes and compactions run on background threads (the default, true), or in
    /// the writing thread: the write that crosses a threshold flushes and merges before it
    /// returns (after it is durable), as a single-threaded application or a deterministic
    /// test may want. Either way a maintenance failure never fails the write.
    #[must_use]
    pub fn background_maintenance(mut self, yes: bool) -> Self {
        self.background_maintenance = yes;
        self
    }

    /// Open without the write lock, seeing the data committed at open; writes fail with
    /// [`crate::Error::ReadOnly`]. Default false.
    #[must_use]
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Whether open starts a background thread that verifies the checksums of every segment's
    /// vector and graph files. Searches never read unverified bytes: with `true` (the default)
    /// the first search of a large table usually finds the work done (measurements:
    /// docs/perf.md#background-verification) and waits only for what is left of the files it
    /// reads; with `false` nothing is read at open and each segment column is verified on its
    /// first search.
    #[must_use]
    pub fn verify_in_background(mut self, yes: bool) -> Self {
        self.verify_in_background = yes;
        self
    }

    /// How the database's [`ModelRegistry`] loads a model spec that was not registered with
    /// [`ModelRegistry::insert`] (a table's `model`, `mmdb load-coco --model`). Default: the
    /// built-in loader, CLIP with candle (folder, HF cache or download) when mmdb is built with
    /// the `clip` feature (a default feature); without it, a loader that refuses every spec with
    /// [`crate::Error::Model`].
    #[must_use]
    pub fn model_loader(mut self, loader: Arc<ModelLoader>) -> Self {
        self.model_loader = Some(loader);
        self
    }

    /// What recovery at open does with a damaged last WAL record. Default
    /// [`WalRecovery::TolerateTornTail`]: drop it as a torn write (reported by
    /// [`Database::health`]); [`WalRecovery::AbsoluteConsistency`] refuses to open instead.
    #[must_use]
    pub fn wal_recovery(mut self, mode: WalRecovery) -> Self {
        self.wal_recovery = mode;
        self
    }

    /// Where durable writes go. Default [`RealFileSystem`] (`std::fs`); tests install one that
    /// simulates power loss or fails chosen operations (see [`FileSystem`]).
    #[must_use]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Limits on every image this database reads (SQL paths and blobs, `image()` queries, COCO
    /// loads): file size, pixels, decode memory, decode deadline. Default
    /// [`ImageLimits::default`]; a session changes them with `SET` (docs/sql.md).
    #[must_use]
    pub fn image_limits(mut self, limits: ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// A fresh registry with this builder's loader.
    pub(crate) fn models(&self) -> ModelRegistry {
        ModelRegistry::with_loader(
            self.model_loader
                .clone()
                .unwrap_or_else(ModelRegistry::builtin_loader),
        )
    }

    /// Opens (or, unless read-only, creates) the database at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path.as_ref(), self)
    }
}
