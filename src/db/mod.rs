//! The embedded database: [`Database`], its builder, table snapshots and vector search.
//!
//! Concurrency: one writer at a time (a mutex around the WAL writer); table states live behind a
//! `RwLock` that readers hold only long enough to clone a [`TableSnapshot`] (a few `Arc`s), so a
//! reader never waits for a flush or a compaction, which build their files without that lock and
//! swap the new state in at the end.

mod builder;
mod bulk;
mod compaction;
mod flush;
mod health;
mod maintenance;
mod open;
mod search;
mod snapshot;
mod state;
mod table_model;
mod validate;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use builder::{
    DEFAULT_BULK_CHUNK_BYTES, DEFAULT_MAX_DELETED_FRACTION, DEFAULT_MAX_SEGMENTS,
    DEFAULT_MEMTABLE_MAX_BYTES, DEFAULT_MERGE_FACTOR, DatabaseBuilder,
};
pub use bulk::BulkLoader;
pub use health::Health;
pub use maintenance::MaintenanceStats;
pub use search::{SearchHit, SearchPath, SearchPlan, SearchRequest};
pub use snapshot::TableSnapshot;
use state::TableState;

use crate::catalog::StoredSchema;
use crate::embedder::ModelRegistry;
use crate::segment::manifest::{Manifest, SegmentEntry, TableEntry};
use crate::storage::WriteLock;
use crate::wal::WalWriter;
use crate::{ColumnType, Error, Result, TableSchema};

/// An open database. Cheap to clone (an `Arc`); `Send + Sync`.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
    /// The maintenance threads, stopped when the last handle goes.
    threads: Arc<maintenance::Threads>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .field("read_only", &self.inner.opts.read_only)
            .finish()
    }
}

struct Inner {
    path: PathBuf,
    opts: DatabaseBuilder,
    models: ModelRegistry,
    tables: RwLock<Tables>,
    /// `None` when read-only or closed.
    writer: Mutex<Option<Writer>>,
    /// Set by the first I/O failure that leaves the on-disk state unknown: writes are refused
    /// until reopen. Shared with the WAL writer and its group-commit handles.
    poison: Arc<std::sync::OnceLock<String>>,
    /// The last failed flush or compaction, until one succeeds.
    maintenance_error: Mutex<Option<String>>,
    /// What recovery dropped at open.
    torn_tail: Option<crate::wal::TornTail>,
    /// The flush thread's mailbox.
    flusher: Arc<maintenance::Worker>,
    /// The compaction thread's mailbox.
    compactor: Arc<maintenance::Worker>,
    /// What maintenance did since open.
    stats: Mutex<MaintenanceStats>,
    /// Segments that a bulk load, a flush or a merge will replace: no other takes them.
    pinned: Mutex<std::collections::HashSet<u64>>,
    /// The thread pools flushes and merges build their graphs in.
    pools: maintenance::Pools,
    /// When the last write was acknowledged (the idle flush).
    last_write: Mutex<std::time::Instant>,
}

/// Tables by id (ids are never reused; names are looked up case-insensitively).
#[derive(Debug, Clone, Default)]
struct Tables {
    by_id: BTreeMap<u64, TableState>,
}

impl Tables {
    fn find(&self, name: &str) -> Option<&TableState> {
        self.by_id
            .values()
            .find(|t| t.schema.name.eq_ignore_ascii_case(name))
    }
    fn find_id(&self, name: &str) -> Result<u64> {
        self.find(name)
            .map(|t| t.id)
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))
    }
}

/// State only the writer touches.
struct Writer {
    wal: WalWriter,
    checkpoint_seq: u64,
    next_table_id: u64,
    next_segment_id: u64,
    /// First sequence number of the oldest WAL file recovery needs (the one manifests name):
    /// a flush switches appends to a newer file before its manifest commits.
    wal_needed_from: u64,
    _lock: WriteLock,
}

impl Database {
    /// Opens the database at `path`, creating it if needed, with the write lock and default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::builder().open(path)
    }

    /// Opens the database at `path` without the write lock, beside a writer; it sees the data
    /// committed when it opened.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Database> {
        Database::builder().read_only(true).open(path)
    }

    /// Options with their defaults.
    pub fn builder() -> DatabaseBuilder {
        DatabaseBuilder::default()
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.inner.opts.read_only
    }

    /// The image limits this database was opened with
    /// ([`DatabaseBuilder::image_limits`]); sessions start from them.
    pub fn image_limits(&self) -> crate::ImageLimits {
        self.inner.opts.image_limits
    }

    /// The model registry of this database (one per database).
    pub fn models(&self) -> &ModelRegistry {
        &self.inner.models
    }

    /// The condition of this handle: writes refused after an I/O error, a failing flush or
    /// compaction, a torn WAL record dropped at open.
    pub fn health(&self) -> Health {
        Health {
            needs_reopen: self.inner.poison.get().cloned(),
            maintenance_error: self.inner.maintenance_error.lock().clone(),
            torn_tail: self.inner.torn_tail.clone(),
        }
    }

    /// Names of the tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .tables
            .read()
            .by_id
            .values()
            .map(|t| t.schema.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The schema of table `name` (case-insensitive).
    pub fn table_schema(&self, name: &str) -> Result<TableSchema> {
        let tables = self.inner.tables.read();
        let t = tables
            .find(name)
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))?;
        Ok((*t.schema).clone())
    }

    /// Creates a table; the catalog change is durable when this returns.
    ///
    /// A `model` naming a folder by a relative path that exists is stored as the absolute path,
    /// so the table finds its model from any working directory. The model itself is loaded on
    /// first use (an import with precomputed vectors may never load it);
    /// [`create_table_with_model`](Self::create_table_with_model), which SQL's CREATE TABLE
    /// uses, loads it now.
    pub fn create_table(&self, schema: TableSchema) -> Result<()> {
        self.create_table_as(schema, false)
    }

    /// Creates a table as [`create_table`](Self::create_table), loading the table's model first
    /// when it has IMAGE or embedded TEXT columns (its `model`, else
    /// [`DEFAULT_MODEL`](crate::DEFAULT_MODEL)): a model that cannot be loaded is an error and
    /// nothing is created; otherwise the model's identity and dimension are recorded with the
    /// table, as [`set_model_identity`](Self::set_model_identity) would on first use.
    pub fn create_table_with_model(&self, schema: TableSchema) -> Result<()> {
        self.create_table_as(schema, true)
    }

    fn create_table_as(&self, mut schema: TableSchema, load_model: bool) -> Result<()> {
        schema.validate()?;
        if let Some(spec) = &schema.model {
            schema.model = Some(table_model::stored_spec(spec)?);
        }
        if let Some(pk) = &schema.primary_key {
            let c = schema.require_column(pk)?;
            if schema.columns[c].ty != ColumnType::Integer {
                return Err(Error::InvalidSchema(format!(
                    "primary key {}.{pk} must be INTEGER",
                    schema.name
                )));
            }
            schema.columns[c].nullable = true;
        }
        for c in &mut schema.columns {
            if c.ty == ColumnType::Image {
                c.embedded = true;
            } else if c.ty != ColumnType::Text {
                c.embedded = false;
            }
        }
        if load_model {
            self.load_table_model(&mut schema)?;
        }
        self.with_writer(|db, w| {
            let mut tables = db.tables.read().clone();
            if tables.find(&schema.name).is_some() {
                return Err(Error::TableExists(schema.name.clone()));
            }
            let id = w.next_table_id;
            tables.by_id.insert(
                id,
                TableState {
                    id,
                    schema: Arc::new(schema),
                    next_row_id: 1,
                    mem: Default::default(),
                    segments: Vec::new(),
                    writes: 0,
                },
            );
            w.next_table_id += 1;
            db.store_manifest(w, &tables)?;
            *db.tables.write() = tables;
            Ok(())
        })
    }

    /// Drops a table and removes its files.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        self.with_writer(|db, w| {
            let mut tables = db.tables.read().clone();
            let id = tables.find_id(name)?;
            let old = tables.by_id.remove(&id);
            db.store_manifest(w, &tables)?;
            *db.tables.write() = tables;
            if let Some(old) = old {
                // Committed: a file left behind is an orphan that the next open removes.
                let removed = old
                    .segments
                    .iter()
                    .try_for_each(|ls| db.remove_segment_files(ls.seg.id()));
                if let Err(e) = removed {
                    db.note_maintenance_error(&e);
                }
            }
            Ok(())
        })
    }

    /// Records the model identity of `table` and sets the dimension of its IMAGE / embedded TEXT
    /// columns. The same identity again is a no-op; a different one is [`Error::ModelMismatch`].
    pub fn set_model_identity(&self, table: &str, identity: &str, dim: u32) -> Result<()> {
        self.with_writer(|db, w| {
            let mut tables = db.tables.read().clone();
            let id = tables.find_id(table)?;
            let t = tables
                .by_id
                .get_mut(&id)
                .ok_or_else(|| Error::NoSuchTable(table.to_string()))?;
            match &t.schema.model_identity {
                Some(x) if x == identity => return Ok(()),
                Some(x) => {
                    return Err(Error::ModelMismatch {
                        table: t.schema.name.clone(),
                        expected: x.clone(),
                        actual: identity.to_string(),
                    });
                }
                None => {}
            }
            let mut schema = (*t.schema).clone();
            table_model::record_identity(&mut schema, identity, dim)?;
            t.schema = Arc::new(schema);
            db.store_manifest(w, &tables)?;
            *db.tables.write() = tables;
            Ok(())
        })
    }

    /// A consistent point-in-time view of one table; never blocks on flush or compaction.
    pub fn snapshot(&self, table: &str) -> Result<TableSnapshot> {
        let tables = self.inner.tables.read();
        let t = tables
            .find(table)
            .ok_or_else(|| Error::NoSuchTable(table.to_string()))?;
        Ok(TableSnapshot::new(t))
    }

    /// Flushes, then releases the write lock. Other clones of this handle get [`Error::Closed`]
    /// on writes afterwards (reads keep working on the state at close). A handle that refuses
    /// writes after an I/O error ([`Error::NeedsReopen`]) writes nothing more: it only
    /// releases the lock (every acknowledged write is in the WAL already).
    pub fn close(self) -> Result<()> {
        if self.inner.opts.read_only {
            return Ok(());
        }
        // A background run in progress finishes first; then nothing runs in the background.
        self.threads.stop();
        let _flush = self.inner.flusher.run.lock();
        let _compact = self.inner.compactor.run.lock();
        let r = self
            .inner
            .with_writer_inner(|db, _| Ok(db.poison.get().is_some()));
        match r {
            Ok(false) => {}
            // Refusing writes after an I/O error: it writes nothing more, only releases the
            // lock (every acknowledged write is in the WAL already).
            Ok(true) | Err(Error::NeedsReopen { .. }) => {
                *self.inner.writer.lock() = None;
                return Ok(());
            }
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
        let r = self
            .inner
            .flush()
            .and_then(|_| self.inner.with_writer_inner(|_, w| w.wal.sync_all()));
        *self.inner.writer.lock() = None;
        r
    }

    /// Runs `f` with the writer, or fails for read-only, closed and poisoned databases. An
    /// [`Error::OutcomeUnknown`] from `f` poisons the database.
    fn with_writer<T>(&self, f: impl FnOnce(&Inner, &mut Writer) -> Result<T>) -> Result<T> {
        self.inner.with_writer_inner(f)
    }
}

impl Inner {
    /// [`Database::with_writer`], for maintenance code that has only the `Inner`.
    fn with_writer_inner<T>(&self, f: impl FnOnce(&Inner, &mut Writer) -> Result<T>) -> Result<T> {
        let mut guard = self.writer.lock();
        match guard.as_mut() {
            Some(_) if self.poison.get().is_some() => Err(self.needs_reopen()),
            Some(w) => {
                let r = f(self, w);
                if let Err(e) = &r {
                    self.poison_if_unknown(e);
                }
                r
            }
            None if self.opts.read_only => Err(Error::ReadOnly {
                path: self.path.clone(),
            }),
            None => Err(Error::Closed),
        }
    }

    /// The error for a write refused after an I/O failure.
    fn needs_reopen(&self) -> Error {
        Error::NeedsReopen {
            path: self.path.clone(),
            cause: self.poison.get().cloned().unwrap_or_default(),
        }
    }

    /// Poisons the database when `e` leaves the on-disk state unknown.
    fn poison_if_unknown(&self, e: &Error) {
        if matches!(e, Error::OutcomeUnknown { .. }) {
            let _ = self.poison.set(e.to_string());
        }
    }

    /// Records a failed flush, compaction or cleanup (it is retried; writes are unaffected).
    fn note_maintenance_error(&self, e: &Error) {
        self.poison_if_unknown(e);
        *self.maintenance_error.lock() = Some(e.to_string());
    }

    /// Writes the manifest for `tables` with the writer's counters.
    fn store_manifest(&self, w: &Writer, tables: &Tables) -> Result<()> {
        self.write_manifest(w, tables, w.checkpoint_seq, w.wal_needed_from)
    }

    /// Writes the manifest for `tables` with a checkpoint and current WAL file of its own (a
    /// checkpoint commits both).
    fn write_manifest(
        &self,
        w: &Writer,
        tables: &Tables,
        checkpoint_seq: u64,
        wal_first_seq: u64,
    ) -> Result<()> {
        let m = Manifest {
            checkpoint_seq,
            next_table_id: w.next_table_id,
            next_segment_id: w.next_segment_id,
            tables: tables
                .by_id
                .values()
                .map(|t| TableEntry {
                    id: t.id,
                    schema: StoredSchema::from_schema(&t.schema),
                    next_row_id: t.next_row_id,
                    segments: t
                        .segments
                        .iter()
                        .map(|ls| SegmentEntry {
                            id: ls.seg.id(),
                            rows: ls.seg.len() as u64,
                            del_gen: ls.del_gen,
                            vector_columns: ls.seg.vector_columns(),
                        })
                        .collect(),
                })
                .collect(),
            wal_first_seq: Some(wal_first_seq),
        };
        m.store(&*self.opts.fs, &self.path)
    }

    /// Removes every file of segment `id`.
    fn remove_segment_files(&self, id: u64) -> Result<()> {
        let dir = &self.path;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| crate::segment::is_segment_file(n, id))
            {
                crate::storage::remove_file(&*self.opts.fs, &entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
