//! Opening a database: manifest, segments (mapped, not read), then the WAL tail.

use std::path::Path;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::state::{LiveSegment, TableState};
use super::{Database, DatabaseBuilder, Inner, Tables, Writer, maintenance};
use crate::segment::manifest::Manifest;
use crate::segment::{DeleteBitmap, Segment, del_path};
use crate::storage::{WriteLock, fsync_dir};
use crate::wal::{WalWriter, recover};
use crate::{Error, Result};

/// How many times a read-only open retries when a concurrent writer's checkpoint or compaction
/// replaced files between reading the manifest and opening them.
const READ_ONLY_RETRIES: usize = 20;

impl Database {
    pub(super) fn open_with(path: &Path, opts: DatabaseBuilder) -> Result<Database> {
        if opts.read_only {
            return open_read_only(path, opts);
        }
        if path.exists() && !path.is_dir() {
            // create_dir_all would say only "File exists".
            return Err(Error::InvalidArgument(format!(
                "database path {} is a file, not a database directory",
                path.display()
            )));
        }
        let created = !path.exists();
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
        let fs = opts.fs.clone();
        if created {
            // The new directory's own entry must be durable before anything in it counts.
            fsync_dir(&*fs, crate::storage::parent(&path))?;
        }
        let lock = WriteLock::acquire(&path)?;
        let existed = Manifest::load(&path)?;
        if existed.is_none() {
            // A new database, or one whose creation was cut short (an empty WAL file at most).
            for (_, wal) in refuse_without_manifest(&path)? {
                crate::storage::remove_file(&*fs, &wal)?;
            }
        }
        let manifest = existed.clone().unwrap_or(Manifest {
            checkpoint_seq: 0,
            next_table_id: 1,
            next_segment_id: 1,
            tables: Vec::new(),
            wal_first_seq: None,
        });
        let (tables, rec) = load_state(&path, &manifest, opts.wal_recovery)?;
        let poison: crate::wal::Poison = Default::default();
        let wal = WalWriter::open(
            fs.clone(),
            &path,
            opts.sync,
            rec.tail.clone(),
            rec.next_seq,
            poison.clone(),
        )?;
        // Records replayed from a file older than the one being appended to (possible only in
        // databases written before the manifest named its WAL file) must reach a segment before
        // a manifest names the newer file as the only one needed.
        let spread = rec
            .ops
            .first()
            .is_some_and(|(seq, _)| *seq < wal.first_seq());
        let mut writer = Writer {
            wal,
            checkpoint_seq: manifest.checkpoint_seq,
            next_table_id: manifest.next_table_id,
            next_segment_id: manifest.next_segment_id,
            wal_needed_from: manifest.wal_first_seq.unwrap_or(0),
            _lock: lock,
        };
        let inner = Inner {
            path: path.clone(),
            models: opts.models(),
            opts,
            tables: RwLock::new(tables),
            writer: Mutex::new(None),
            poison,
            maintenance_error: Mutex::new(None),
            torn_tail: rec.torn.clone(),
            flusher: Arc::new(maintenance::flush_worker()),
            compactor: Default::default(),
            stats: Default::default(),
            pinned: Default::default(),
            pools: Default::default(),
            last_write: Mutex::new(std::time::Instant::now()),
        };
        let rewrite = manifest.wal_first_seq != Some(writer.wal.first_seq()) || existed.is_none();
        if !spread {
            writer.wal_needed_from = writer.wal.first_seq();
        }
        *inner.writer.lock() = Some(writer);
        if rewrite && !spread {
            inner.with_writer_inner(|db, w| db.store_manifest(w, &db.tables.read()))?;
        }
        let mut removed = false;
        for stale in &rec.stale {
            crate::storage::remove_file(&*fs, stale)?;
            removed = true;
        }
        removed |= remove_orphans(&*fs, &path, &manifest)?;
        if removed {
            fsync_dir(&*fs, &path)?;
        }
        if spread {
            // The records span WAL files (a flush cut short, or an old database): one flush
            // puts them in segments and leaves one WAL file. After the orphans went: the
            // manifest read at open does not list what this flush writes.
            inner.flush()?;
        }
        let inner = Arc::new(inner);
        let threads = if inner.opts.background_maintenance {
            maintenance::Threads::start(&inner)?
        } else {
            maintenance::Threads::none()
        };
        let db = Database {
            inner,
            threads: Arc::new(threads),
        };
        if db.inner.opts.background_maintenance {
            // The replayed memtable may be over the threshold, and deletions may call for a
            // merge: the threads look now, not after the next write.
            db.inner.flusher.request();
            db.inner.compactor.request();
        }
        db.verify_segments_in_background();
        Ok(db)
    }

    /// Starts the background verification of every open segment (see
    /// [`DatabaseBuilder::verify_in_background`]).
    fn verify_segments_in_background(&self) {
        let segments: Vec<Weak<Segment>> = {
            let tables = self.inner.tables.read();
            tables
                .by_id
                .values()
                .flat_map(|t| t.segments.iter().map(|s| Arc::downgrade(&s.seg)))
                .collect()
        };
        verify_in_background(&self.inner.opts, segments);
    }
}

/// For a directory without a MANIFEST: the WAL files of a creation that was cut short (header
/// only), or [`Error::Corrupted`] when it holds database files (segment files, or WAL files with
/// records): a lost MANIFEST must not turn into an empty database that deletes them as orphans.
fn refuse_without_manifest(path: &Path) -> Result<Vec<(u64, std::path::PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::segment::parse_file_name(&name).is_some_and(|f| !f.tmp) {
            found.push(name);
        }
    }
    let wals = crate::wal::list_wal_files(path)?;
    for (_, p) in &wals {
        let len = std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len();
        if len > crate::wal::HEADER as u64 {
            found.push(
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    if found.is_empty() {
        return Ok(wals);
    }
    found.sort();
    let n = found.len();
    found.truncate(3);
    Err(Error::corrupted(
        path.join(crate::segment::manifest::MANIFEST_FILE),
        format!(
            "the MANIFEST is missing but the directory holds {n} database file(s) ({}{}): \
             refusing to open it as an empty database; nothing was deleted (restore the \
             MANIFEST from a backup)",
            found.join(", "),
            if n > found.len() { ", ..." } else { "" }
        ),
    ))
}

fn open_read_only(path: &Path, opts: DatabaseBuilder) -> Result<Database> {
    let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let mut attempt = 0;
    loop {
        let manifest = match Manifest::load(&path)? {
            Some(m) => m,
            None => {
                refuse_without_manifest(&path)?;
                Manifest::default()
            }
        };
        // A torn tail may be an append in flight in the writer beside us: always tolerated.
        match load_state(&path, &manifest, crate::WalRecovery::TolerateTornTail) {
            Ok((tables, _)) => {
                let db = Database {
                    inner: Arc::new(Inner {
                        path,
                        models: opts.models(),
                        opts,
                        tables: RwLock::new(tables),
                        writer: Mutex::new(None),
                        poison: Default::default(),
                        maintenance_error: Mutex::new(None),
                        torn_tail: None,
                        flusher: Default::default(),
                        compactor: Default::default(),
                        stats: Default::default(),
                        pinned: Default::default(),
                        pools: Default::default(),
                        last_write: Mutex::new(std::time::Instant::now()),
                    }),
                    threads: Arc::new(super::maintenance::Threads::none()),
                };
                db.verify_segments_in_background();
                return Ok(db);
            }
            Err(e) => {
                // A writer may have replaced the files we were reading: retry with its new
                // manifest. The same manifest twice means the error is real.
                let now = Manifest::load(&path)?.unwrap_or_default();
                attempt += 1;
                if now == manifest || attempt > READ_ONLY_RETRIES {
                    return Err(e);
                }
            }
        }
    }
}

/// Verifies `segments` on a background thread when the options ask for it. The thread holds
/// weak references: segments dropped meanwhile (the database closed, a compaction replaced
/// them) are skipped.
pub(super) fn verify_in_background(opts: &DatabaseBuilder, segments: Vec<Weak<Segment>>) {
    if !opts.verify_in_background || segments.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("mmdb-verify".into())
        .spawn(move || {
            for seg in segments {
                // A failure is kept by the files and reported by the search that reads them.
                if let Some(seg) = seg.upgrade() {
                    seg.verify_vectors();
                }
            }
        });
    // No thread (resource limits): searches verify on first use, as with the option off.
    drop(spawned);
}

/// Every file `manifest` says must exist; [`Error::Corrupted`] naming the first missing one.
fn check_files(path: &Path, manifest: &Manifest) -> Result<()> {
    let mut missing = Vec::new();
    for t in &manifest.tables {
        for se in &t.segments {
            let mut need = vec![crate::segment::rows_path(path, se.id)];
            for &c in &se.vector_columns {
                need.push(crate::segment::vec_path(path, se.id, c));
                need.push(crate::segment::graph_path(path, se.id, c));
            }
            if se.del_gen > 0 {
                need.push(del_path(path, se.id, se.del_gen));
            }
            missing.extend(need.into_iter().filter(|p| p.symlink_metadata().is_err()));
        }
    }
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Error::corrupted(
            first,
            format!(
                "the file is missing (the MANIFEST lists it){}",
                match missing.len() {
                    1 => String::new(),
                    n => format!("; {} more missing files", n - 1),
                }
            ),
        )),
    }
}

/// Opens the segments the manifest lists and replays the WAL after its checkpoint.
fn load_state(
    path: &Path,
    manifest: &Manifest,
    mode: crate::WalRecovery,
) -> Result<(Tables, crate::wal::Recovered)> {
    check_files(path, manifest)?;
    let mut tables = Tables::default();
    for entry in &manifest.tables {
        let schema = entry
            .schema
            .to_schema()
            .map_err(|d| Error::corrupted(path.join(crate::segment::manifest::MANIFEST_FILE), d))?;
        let mut segments = Vec::with_capacity(entry.segments.len());
        for se in &entry.segments {
            let seg = Segment::open(path, se.id, &schema, &se.vector_columns)?;
            if seg.len() as u64 != se.rows {
                return Err(Error::corrupted(
                    crate::segment::rows_path(path, se.id),
                    format!("{} rows, the manifest says {}", seg.len(), se.rows),
                ));
            }
            let deleted = if se.del_gen == 0 {
                DeleteBitmap::new(seg.len())
            } else {
                DeleteBitmap::load(&del_path(path, se.id, se.del_gen), seg.len())?
            };
            segments.push(LiveSegment {
                seg: Arc::new(seg),
                deleted: Arc::new(deleted),
                del_gen: se.del_gen,
                dirty: false,
            });
        }
        tables.by_id.insert(
            entry.id,
            TableState {
                id: entry.id,
                schema: Arc::new(schema),
                next_row_id: entry.next_row_id,
                mem: Default::default(),
                segments,
                writes: 0,
            },
        );
    }
    let rec = recover(path, manifest.checkpoint_seq, manifest.wal_first_seq, mode)?;
    for (_, op) in &rec.ops {
        // Records of dropped tables are skipped: their ids are never reused.
        if let Some(t) = tables.by_id.get_mut(&op.table()) {
            t.apply_replayed(op.clone());
        }
    }
    Ok((tables, rec))
}

/// Removes files a crash left behind: temporary files mmdb writes (`seg-*.tmp`,
/// `MANIFEST.tmp`), files of segments the manifest does not list (built by a checkpoint or
/// compaction whose manifest never committed, or replaced by one whose removals did not finish)
/// and deletion bitmaps of older generations. Files with other names are never touched.
/// Returns whether anything was removed.
fn remove_orphans(
    fs: &dyn crate::storage::FileSystem,
    path: &Path,
    manifest: &Manifest,
) -> Result<bool> {
    let mut live = std::collections::HashMap::new();
    for t in &manifest.tables {
        for s in &t.segments {
            live.insert(s.id, s.del_gen);
        }
    }
    let manifest_tmp =
        crate::storage::tmp_path(&path.join(crate::segment::manifest::MANIFEST_FILE));
    let mut removed = false;
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let orphan = match crate::segment::parse_file_name(name) {
            Some(f) => {
                f.tmp
                    || match (live.get(&f.id), f.del_gen) {
                        (None, _) => true,
                        (Some(&current), Some(g)) => g != current,
                        (Some(_), None) => false,
                    }
            }
            None => entry.path() == manifest_tmp,
        };
        if orphan {
            crate::storage::remove_file(fs, &entry.path())?;
            removed = true;
        }
    }
    Ok(removed)
}
