//! Opening a database: manifest, segments (mapped, not read), then the WAL tail.

use std::path::Path;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::state::{LiveSegment, TableState};
use super::{Database, DatabaseBuilder, Inner, Tables, Writer};
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
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
        let lock = WriteLock::acquire(&path)?;
        let existed = Manifest::load(&path)?;
        let manifest = existed.clone().unwrap_or(Manifest {
            checkpoint_seq: 0,
            next_table_id: 1,
            next_segment_id: 1,
            tables: Vec::new(),
        });
        let (tables, rec) = load_state(&path, &manifest)?;
        let wal = WalWriter::open(&path, opts.sync, rec.tail, rec.next_seq)?;
        let writer = Writer {
            wal,
            checkpoint_seq: manifest.checkpoint_seq,
            next_table_id: manifest.next_table_id,
            next_segment_id: manifest.next_segment_id,
            _lock: lock,
        };
        let inner = Inner {
            path: path.clone(),
            models: opts.models(),
            opts,
            tables: RwLock::new(tables),
            writer: Mutex::new(None),
            poison: Default::default(),
            maintenance_error: Mutex::new(None),
            torn_tail: None,
        };
        if existed.is_none() {
            inner.store_manifest(&writer, &inner.tables.read())?;
        }
        remove_orphans(&path, &manifest)?;
        *inner.writer.lock() = Some(writer);
        let db = Database {
            inner: Arc::new(inner),
        };
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

fn open_read_only(path: &Path, opts: DatabaseBuilder) -> Result<Database> {
    let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let mut attempt = 0;
    loop {
        let manifest = Manifest::load(&path)?.unwrap_or_default();
        match load_state(&path, &manifest) {
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
                    }),
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

/// Opens the segments the manifest lists and replays the WAL after its checkpoint.
fn load_state(path: &Path, manifest: &Manifest) -> Result<(Tables, crate::wal::Recovered)> {
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
    let rec = recover(path, manifest.checkpoint_seq)?;
    for (_, op) in &rec.ops {
        // Records of dropped tables are skipped: their ids are never reused.
        if let Some(t) = tables.by_id.get_mut(&op.table()) {
            t.apply(op.clone());
        }
    }
    Ok((tables, rec))
}

/// Removes files a crash left behind: temporary files and segment files no manifest lists.
fn remove_orphans(path: &Path, manifest: &Manifest) -> Result<()> {
    let mut live = std::collections::HashSet::new();
    for t in &manifest.tables {
        for s in &t.segments {
            live.insert((s.id, s.del_gen));
        }
    }
    let mut removed = false;
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let orphan = if name.ends_with(".tmp") {
            true
        } else if let Some(rest) = name.strip_prefix("seg-") {
            let id: Option<u64> = rest.split('.').next().and_then(|s| s.parse().ok());
            match id {
                Some(id) => {
                    let listed = live.iter().any(|&(s, _)| s == id);
                    let old_del = rest
                        .rsplit_once(".del")
                        .and_then(|(_, g)| g.parse::<u64>().ok())
                        .is_some_and(|g| !live.contains(&(id, g)));
                    !listed || old_del
                }
                None => false,
            }
        } else {
            false
        };
        if orphan {
            crate::storage::remove_file(&entry.path())?;
            removed = true;
        }
    }
    if removed {
        fsync_dir(path)?;
    }
    Ok(())
}
