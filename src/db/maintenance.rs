//! Checkpoints (memtable -> segment) and compaction.
//!
//! Both run under the writer lock but build their files without the tables lock, so readers keep
//! using the previous state (and its mapped files, which stay valid after removal) until the new
//! manifest is committed and the new state swapped in.
//!
//! Automatic thresholds (see `DatabaseBuilder`): a write flushes every memtable once their total
//! size passes `memtable_max_bytes` (64 MiB); after a flush, a table is compacted (all its
//! segments merged into one, deleted rows dropped, HNSW rebuilt) when it has more than
//! `max_segments` (8) segments or more than `max_deleted_fraction` (30%) of its segment rows are
//! deleted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::LiveSegment;
use super::{Database, Inner, Writer};
use crate::segment::{DeleteBitmap, build_segment, del_path};
use crate::{Error, Result, Row, RowId};

impl Database {
    /// Writes every memtable to a new segment, persists pending deletions, commits the manifest
    /// and rotates the WAL.
    pub fn checkpoint(&self) -> Result<()> {
        self.with_writer(|db, w| db.checkpoint_locked(w))
    }

    /// Merges all segments of `table` into one, dropping deleted rows and rebuilding the HNSW
    /// graphs (after a checkpoint). Readers keep working meanwhile.
    pub fn compact(&self, table: &str) -> Result<()> {
        self.with_writer(|db, w| {
            db.checkpoint_locked(w)?;
            let id = db.tables.read().find_id(table)?;
            db.compact_locked(w, id)
        })
    }
}

/// First wait before an automatic flush or compaction that failed is tried again; it doubles
/// with each failure up to [`MAX_RETRY_WAIT`] (a full disk must not make every write pay for a
/// segment build that fails).
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

impl Database {
    /// The automatic flush and compaction after a committed write. It never fails the write:
    /// a failure is kept in [`Database::health`] and retried after a wait.
    pub(super) fn maintain(&self) {
        let mut guard = self.inner.writer.lock();
        let Some(w) = guard.as_mut() else { return };
        if self.inner.poison.get().is_some() || w.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        // Success resets the wait (in `checkpoint_locked`).
        if let Err(e) = self.inner.maybe_flush(w) {
            self.inner.note_maintenance_error(&e);
            w.retry_wait = (w.retry_wait * 2).clamp(FIRST_RETRY_WAIT, MAX_RETRY_WAIT);
            w.retry_at = Some(Instant::now() + w.retry_wait);
        }
    }
}

impl Inner {
    /// Flushes when the memtables are over the size threshold, then compacts where needed.
    pub(super) fn maybe_flush(&self, w: &mut Writer) -> Result<()> {
        let bytes: usize = self
            .tables
            .read()
            .by_id
            .values()
            .map(|t| t.mem.bytes())
            .sum();
        if bytes <= self.opts.memtable_max_bytes {
            return Ok(());
        }
        self.checkpoint_locked(w)?;
        let ids: Vec<u64> = self
            .tables
            .read()
            .by_id
            .values()
            .filter(|t| {
                let rows: usize = t.segments.iter().map(|s| s.seg.len()).sum();
                let dead: usize = t.segments.iter().map(|s| s.deleted.count()).sum();
                t.segments.len() > self.opts.max_segments
                    || (rows > 0 && dead as f64 > self.opts.max_deleted_fraction * rows as f64)
            })
            .map(|t| t.id)
            .collect();
        for id in ids {
            self.compact_locked(w, id)?;
        }
        Ok(())
    }

    /// Writes the memtables to new segments and pending deletions to new bitmap files, then
    /// commits them with a manifest that also names a new, empty WAL file (created first, so a
    /// committed manifest never names a WAL file that does not exist); then switches to it and
    /// removes what the manifest replaced. Nothing changes in memory unless the manifest
    /// commits; after the commit, failed removals only leave files for the next open.
    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        let fs = &*self.opts.fs;
        let mut tables = self.tables.read().clone();
        let last_seq = w.wal.next_seq() - 1;
        let dirty = tables
            .by_id
            .values()
            .any(|t| !t.mem.is_empty() || t.segments.iter().any(|s| s.dirty));
        if !dirty && last_seq == w.checkpoint_seq {
            return Ok(());
        }
        let mut built = Built::default();
        let mut old_dels = Vec::new();
        let staged = self.stage_checkpoint(w, &mut tables, &mut built, &mut old_dels);
        let next_wal = match staged.and_then(|_| w.wal.prepare_rotation()) {
            Ok(n) => n,
            Err(e) => {
                self.discard(&built);
                return Err(e);
            }
        };
        let wal_first = next_wal
            .as_ref()
            .map_or(w.wal.first_seq(), |n| n.first_seq());
        if let Err(e) = self.write_manifest(w, &tables, last_seq, wal_first) {
            // Not committed (a plain I/O error): the new files are not needed. If the outcome
            // is unknown the manifest may name them: keep them.
            if let Error::Io { .. } = e {
                if let Some(n) = next_wal {
                    w.wal.abandon(n);
                }
                self.discard(&built);
            }
            return Err(e);
        }
        w.checkpoint_seq = last_seq;
        *self.tables.write() = tables;
        *self.maintenance_error.lock() = None;
        w.retry_at = None;
        w.retry_wait = Duration::ZERO;
        let mut cleanup = Ok(());
        if let Some(n) = next_wal {
            cleanup = w.wal.install(n);
        }
        for p in old_dels {
            cleanup = cleanup.and_then(|_| crate::storage::remove_file(fs, &p));
        }
        if let Err(e) = cleanup {
            self.note_maintenance_error(&e);
        }
        Ok(())
    }

    /// Writes the new bitmap files and segments of a checkpoint into `tables` (not committed),
    /// noting every file written in `built`.
    fn stage_checkpoint(
        &self,
        w: &mut Writer,
        tables: &mut super::Tables,
        built: &mut Built,
        old_dels: &mut Vec<std::path::PathBuf>,
    ) -> Result<()> {
        let fs = &*self.opts.fs;
        for t in tables.by_id.values_mut() {
            for ls in &mut t.segments {
                if ls.dirty {
                    let generation = ls.del_gen + 1;
                    let path = del_path(&self.path, ls.seg.id(), generation);
                    built.files.push(path.clone());
                    ls.deleted.store(fs, &path)?;
                    if ls.del_gen > 0 {
                        old_dels.push(del_path(&self.path, ls.seg.id(), ls.del_gen));
                    }
                    ls.del_gen = generation;
                    ls.dirty = false;
                }
            }
            if t.mem.is_empty() {
                continue;
            }
            let rows: Vec<(RowId, &Row)> = t.mem.iter().map(|(id, r)| (id, &**r)).collect();
            let seg_id = w.next_segment_id;
            w.next_segment_id += 1;
            built.segments.push(seg_id);
            let seg = Arc::new(build_segment(fs, &self.path, seg_id, &t.schema, &rows)?);
            super::open::verify_in_background(&self.opts, vec![Arc::downgrade(&seg)]);
            let n = seg.len();
            t.segments.push(LiveSegment {
                seg,
                deleted: Arc::new(DeleteBitmap::new(n)),
                del_gen: 0,
                dirty: false,
            });
            t.mem = Default::default();
        }
        Ok(())
    }

    /// Removes the files of a checkpoint or compaction that did not commit (best effort: what is
    /// left is an orphan that the next open removes), so a full disk is not filled further.
    fn discard(&self, built: &Built) {
        for &id in &built.segments {
            let _ = self.remove_segment_files(id);
        }
        for p in &built.files {
            let _ = crate::storage::remove_file(&*self.opts.fs, p);
        }
    }

    /// Merges all segments of table `id` (its memtable must be empty: call after a checkpoint).
    pub(super) fn compact_locked(&self, w: &mut Writer, id: u64) -> Result<()> {
        let fs = &*self.opts.fs;
        let mut tables = self.tables.read().clone();
        let Some(t) = tables.by_id.get_mut(&id) else {
            return Ok(());
        };
        let dead: usize = t.segments.iter().map(|s| s.deleted.count()).sum();
        if t.segments.len() <= 1 && dead == 0 {
            return Ok(());
        }
        let snap = super::TableSnapshot::new(t);
        let mut rows = Vec::with_capacity(snap.row_count());
        for r in snap.scan() {
            rows.push(r?);
        }
        drop(snap);
        let old: Vec<u64> = t.segments.iter().map(|s| s.seg.id()).collect();
        t.segments.clear();
        let mut built = Built::default();
        if !rows.is_empty() {
            let seg_id = w.next_segment_id;
            w.next_segment_id += 1;
            built.segments.push(seg_id);
            let refs: Vec<(RowId, &Row)> = rows.iter().map(|(i, r)| (*i, r)).collect();
            let seg = match build_segment(fs, &self.path, seg_id, &t.schema, &refs) {
                Ok(seg) => Arc::new(seg),
                Err(e) => {
                    self.discard(&built);
                    return Err(e);
                }
            };
            super::open::verify_in_background(&self.opts, vec![Arc::downgrade(&seg)]);
            let n = seg.len();
            t.segments.push(LiveSegment {
                seg,
                deleted: Arc::new(DeleteBitmap::new(n)),
                del_gen: 0,
                dirty: false,
            });
        }
        if let Err(e) = self.store_manifest(w, &tables) {
            // As in a checkpoint: an unknown outcome may have committed the new segment.
            if let Error::Io { .. } = e {
                self.discard(&built);
            }
            return Err(e);
        }
        *self.tables.write() = tables;
        // Committed: files of the replaced segments that cannot be removed now are orphans that
        // the next open removes.
        let cleanup = old
            .into_iter()
            .try_for_each(|s| self.remove_segment_files(s))
            .and_then(|_| crate::storage::fsync_dir(fs, &self.path));
        if let Err(e) = cleanup {
            self.note_maintenance_error(&e);
        }
        Ok(())
    }
}

/// Files a checkpoint wrote before its manifest commit.
#[derive(Debug, Default)]
struct Built {
    segments: Vec<u64>,
    files: Vec<std::path::PathBuf>,
}
