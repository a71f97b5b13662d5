//! Flushes (checkpoints): the memtables written to segments, in three steps so that writers
//! wait only for the first and the last, which are short.
//!
//! 1. **Freeze**, under the writer lock: every table's active rows become its frozen part
//!    (still read and searched from memory), and the WAL switches to a new file, so the
//!    records up to the freeze (`frozen_seq`) are exactly those in the older files.
//! 2. **Build**, without any lock: one segment per table from its frozen rows.
//! 3. **Commit**, under the writer lock: the new segments join their tables (frozen rows that
//!    were updated or deleted meanwhile are marked deleted in them), every changed deletion
//!    bitmap is saved, and one manifest names the new segments, the checkpoint `frozen_seq`
//!    and the new WAL file; then the older WAL files are removed.
//!
//! If the build or the commit fails, the frozen rows go back to the active part and the WAL
//! keeps both files: recovery reads a chain of WAL files from the one the manifest names, so
//! nothing is lost, and the next flush covers everything.

use std::path::PathBuf;
use std::sync::Arc;

use super::state::LiveSegment;
use super::{Inner, Tables, Writer};
use crate::memtable::RowMap;
use crate::segment::{DeleteBitmap, Segment, build_segment, del_path};
use crate::{Error, Result, Row, RowId, TableSchema};

/// Work left after a commit, done without the writer lock.
type Cleanup = Box<dyn FnOnce(&Inner) + Send>;

/// What a freeze hands to the build step.
struct Frozen {
    /// Last WAL record whose effects the flush holds.
    frozen_seq: u64,
    /// First record of the WAL file written since the freeze (the manifest will name it).
    wal_first: u64,
    /// Per table with frozen rows: table id, schema, rows, new segment id.
    tables: Vec<(u64, Arc<TableSchema>, RowMap, u64)>,
}

impl Inner {
    /// Flushes every memtable to segments (see the module doc). The caller holds the flush
    /// lock, so one flush runs at a time.
    pub(super) fn flush(&self) -> Result<()> {
        let Some(frozen) = self.with_writer_inner(|db, w| db.freeze(w))? else {
            return Ok(());
        };
        let built = self.build_frozen(&frozen);
        let cleanup = self.with_writer_inner(|db, w| match built {
            Ok(built) => db.commit_flush(w, frozen, built),
            Err(e) => {
                // A failed fsync leaves the disk's state unknown, as anywhere else.
                db.poison_if_unknown(&e);
                db.thaw();
                Err(e)
            }
        })?;
        // Unlinking files and syncing the directory must not hold up writers.
        cleanup(self);
        Ok(())
    }

    /// Step 1. `None` when there is nothing to flush.
    fn freeze(&self, w: &mut Writer) -> Result<Option<Frozen>> {
        let mut tables = self.tables.read().clone();
        let last_seq = w.wal.next_seq() - 1;
        let dirty = tables
            .by_id
            .values()
            .any(|t| !t.mem.is_empty() || t.segments.iter().any(|s| s.dirty));
        if !dirty && last_seq == w.checkpoint_seq && w.wal_needed_from == w.wal.first_seq() {
            return Ok(None);
        }
        if let Some(next) = w.wal.prepare_rotation()? {
            w.wal.switch(next)?;
        }
        let mut out = Frozen {
            frozen_seq: last_seq,
            wal_first: w.wal.first_seq(),
            tables: Vec::new(),
        };
        for t in tables.by_id.values_mut() {
            let rows = t.mem.freeze();
            if rows.is_empty() {
                continue;
            }
            let seg_id = w.next_segment_id;
            w.next_segment_id += 1;
            out.tables.push((t.id, t.schema.clone(), rows, seg_id));
        }
        *self.tables.write() = tables;
        Ok(Some(out))
    }

    /// Step 2: one segment per table (files fsynced, not yet listed by a manifest). On error
    /// the files written so far are removed.
    fn build_frozen(&self, frozen: &Frozen) -> Result<Vec<(u64, Arc<Segment>)>> {
        let fs = &*self.opts.fs;
        let mut built = Vec::new();
        for (table, schema, rows, seg_id) in &frozen.tables {
            let refs: Vec<(RowId, &Row)> = rows.iter().map(|(id, r)| (*id, &**r)).collect();
            match build_segment(fs, &self.path, *seg_id, schema, &refs) {
                Ok(seg) => {
                    let seg = Arc::new(seg);
                    super::open::verify_in_background(&self.opts, vec![Arc::downgrade(&seg)]);
                    self.note_built(refs.len(), &seg, schema);
                    built.push((*table, seg));
                }
                Err(e) => {
                    let _ = self.remove_segment_files(*seg_id);
                    for (_, s) in &built {
                        let _ = self.remove_segment_files(s.id());
                    }
                    return Err(e);
                }
            }
        }
        Ok(built)
    }

    /// The frozen rows go back to the active part (a failed flush).
    fn thaw(&self) {
        let mut tables = self.tables.write();
        for t in tables.by_id.values_mut() {
            t.mem.thaw();
        }
    }

    /// Step 3.
    /// Returns the removal of what the commit replaced, to run after the writer lock.
    fn commit_flush(
        &self,
        w: &mut Writer,
        frozen: Frozen,
        built: Vec<(u64, Arc<Segment>)>,
    ) -> Result<Cleanup> {
        let mut tables = self.tables.read().clone();
        let mut orphans = Vec::new();
        for (table, seg) in built {
            let Some(t) = tables.by_id.get_mut(&table) else {
                // Dropped meanwhile.
                orphans.push(seg.id());
                continue;
            };
            // Frozen rows updated or deleted since the freeze are no longer in the frozen part.
            let mut deleted = DeleteBitmap::new(seg.len());
            for (pos, id) in seg.ids().iter().enumerate() {
                if !t.mem.frozen().contains_key(id) {
                    deleted.insert(pos);
                }
            }
            t.segments.push(LiveSegment::new(seg, deleted));
        }
        for t in tables.by_id.values_mut() {
            t.mem.drop_frozen();
        }
        let mut new_files = Vec::new();
        let saved = self
            .save_bitmaps(&mut tables, &mut new_files)
            .and_then(|old| {
                self.write_manifest(w, &tables, frozen.frozen_seq, frozen.wal_first)?;
                Ok(old)
            });
        let old_dels = match saved {
            Ok(old) => old,
            Err(e) => {
                // Not committed (a plain I/O error): the new files are not needed. If the
                // outcome is unknown the manifest may name them: keep them.
                if let Error::Io { .. } = e {
                    for (_, _, _, seg_id) in &frozen.tables {
                        let _ = self.remove_segment_files(*seg_id);
                    }
                    for p in &new_files {
                        let _ = crate::storage::remove_file(&*self.opts.fs, p);
                    }
                }
                drop(tables);
                self.thaw();
                return Err(e);
            }
        };
        w.checkpoint_seq = frozen.frozen_seq;
        w.wal_needed_from = frozen.wal_first;
        *self.tables.write() = tables;
        *self.maintenance_error.lock() = None;
        self.note_flush();
        let (fs, dir) = w.wal.location();
        Ok(Box::new(move |db: &Inner| {
            let mut cleanup = crate::wal::remove_wal_before(&*fs, &dir, frozen.wal_first);
            for id in orphans {
                cleanup = cleanup.and_then(|_| db.remove_segment_files(id));
            }
            for p in old_dels {
                cleanup = cleanup.and_then(|_| crate::storage::remove_file(&*db.opts.fs, &p));
            }
            if let Err(e) = cleanup {
                db.note_maintenance_error(&e);
            }
        }))
    }

    /// Writes a new bitmap file for every segment with unsaved deletions in `tables` (the
    /// deletions as they are now: replay at open tolerates bitmaps ahead of the checkpoint,
    /// see `TableState::apply_replayed`), noting the new files in `new_files`; returns the
    /// files they replace, to remove once the manifest that names the new ones commits.
    pub(super) fn save_bitmaps(
        &self,
        tables: &mut Tables,
        new_files: &mut Vec<PathBuf>,
    ) -> Result<Vec<PathBuf>> {
        let fs = &*self.opts.fs;
        let mut old = Vec::new();
        for t in tables.by_id.values_mut() {
            for ls in &mut t.segments {
                if !ls.dirty {
                    continue;
                }
                let generation = ls.del_gen + 1;
                let path = del_path(&self.path, ls.seg.id(), generation);
                new_files.push(path.clone());
                ls.deleted.store(fs, &path)?;
                if ls.del_gen > 0 {
                    old.push(del_path(&self.path, ls.seg.id(), ls.del_gen));
                }
                ls.del_gen = generation;
                ls.dirty = false;
            }
        }
        Ok(old)
    }
}
