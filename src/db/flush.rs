//! Flushes (checkpoints): the memtables written to segments, in three steps so that writers
//! wait only for the first and the last, which are short.
//!
//! 1. **Freeze**, under the writer lock: every table's active rows become its frozen part
//!    (still read and searched from memory), and the WAL switches to a new file, so the
//!    records up to the freeze (`frozen_seq`) are exactly those in the older files.
//! 2. **Build**, without any lock: one segment per table from its frozen rows. While the
//!    table's newest segment is small (its live rows plus the frozen ones are at most
//!    `merge_factor` times the frozen ones), the flush extends it instead: the new segment
//!    holds that segment's live rows and the frozen ones, and its graph is that segment's
//!    with the frozen vectors inserted (`segment::merge_segments`, as a bulk-load chunk
//!    does). A steady load thus fills segments of `merge_factor` flushes whose rows were
//!    each inserted into a graph once, where one segment per flush would have the size tiers
//!    re-insert them; the extended segment is pinned meanwhile, so no compaction takes it.
//! 3. **Commit**, under the writer lock: the new segments join their tables, replacing the
//!    segments they extend (frozen rows that were updated or deleted meanwhile, and rows of
//!    the extended segment deleted meanwhile, are marked deleted in them), every changed
//!    deletion bitmap is saved, and one manifest names the new segments, the checkpoint
//!    `frozen_seq` and the new WAL file; then the older WAL files and the extended segments'
//!    files are removed.
//!
//! If the build or the commit fails, the frozen rows go back to the active part and the WAL
//! keeps both files: recovery reads a chain of WAL files from the one the manifest names, so
//! nothing is lost, and the next flush covers everything.

use std::path::PathBuf;
use std::sync::Arc;

use super::maintenance::Pins;
use super::state::LiveSegment;
use super::{Inner, Tables, Writer};
use crate::memtable::RowMap;
use crate::segment::{DeleteBitmap, MergeInput, Segment, del_path, merge_segments};
use crate::{Error, Result, Row, RowId, TableSchema};

/// Work left after a commit, done without the writer lock.
type Cleanup = Box<dyn FnOnce(&Inner) + Send>;

/// What a freeze hands to the build step.
struct Frozen {
    /// Last WAL record whose effects the flush holds.
    frozen_seq: u64,
    /// First record of the WAL file written since the freeze (the manifest will name it).
    wal_first: u64,
    /// The tables with frozen rows.
    tables: Vec<FrozenTable>,
}

/// One table's part of a flush.
struct FrozenTable {
    table: u64,
    schema: Arc<TableSchema>,
    rows: RowMap,
    /// The id of the segment the flush writes.
    seg_id: u64,
    /// The table's newest segment as it was at the freeze, when the flush extends it (pinned
    /// until the flush ends).
    base: Option<LiveSegment>,
}

impl Inner {
    /// Flushes every memtable to segments (see the module doc). The caller holds the flush
    /// lock, so one flush runs at a time.
    pub(super) fn flush(&self) -> Result<()> {
        let Some(frozen) = self.with_writer_inner(|db, w| db.freeze(w))? else {
            return Ok(());
        };
        let _pins = Pins::taken(
            self,
            frozen
                .tables
                .iter()
                .filter_map(|f| f.base.as_ref().map(|b| b.seg.id()))
                .collect(),
        );
        let built = self.pools.flush(|| self.build_frozen(&frozen));
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
        let fan_in = self.opts.merge_factor.max(2);
        let mut pinned = self.pinned.lock();
        for t in tables.by_id.values_mut() {
            let rows = t.mem.freeze();
            if rows.is_empty() {
                continue;
            }
            let seg_id = w.next_segment_id;
            w.next_segment_id += 1;
            let base = t
                .segments
                .last()
                .filter(|ls| {
                    !pinned.contains(&ls.seg.id())
                        && ls.live() + rows.len() <= fan_in.saturating_mul(rows.len())
                })
                .cloned();
            if let Some(b) = &base {
                pinned.insert(b.seg.id());
            }
            out.tables.push(FrozenTable {
                table: t.id,
                schema: t.schema.clone(),
                rows,
                seg_id,
                base,
            });
        }
        drop(pinned);
        *self.tables.write() = tables;
        Ok(Some(out))
    }

    /// Step 2: one segment per table, in the order of `frozen.tables` (files fsynced, not yet
    /// listed by a manifest). On error the files written so far are removed.
    fn build_frozen(&self, frozen: &Frozen) -> Result<Vec<Arc<Segment>>> {
        let fs = &*self.opts.fs;
        let mut built: Vec<Arc<Segment>> = Vec::new();
        for f in &frozen.tables {
            let refs: Vec<(RowId, &Row)> = f.rows.iter().map(|(id, r)| (*id, &**r)).collect();
            let inputs: Vec<MergeInput<'_>> = f.base.iter().map(LiveSegment::as_input).collect();
            match merge_segments(fs, &self.path, f.seg_id, &f.schema, &inputs, &refs) {
                Ok((seg, counts)) => {
                    let seg = Arc::new(seg);
                    super::open::verify_in_background(&self.opts, vec![Arc::downgrade(&seg)]);
                    self.note_written(&counts, seg.len());
                    built.push(seg);
                }
                Err(e) => {
                    let _ = self.remove_segment_files(f.seg_id);
                    for s in &built {
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
        built: Vec<Arc<Segment>>,
    ) -> Result<Cleanup> {
        let mut tables = self.tables.read().clone();
        // Segments whose files go after the commit: those of dropped tables and the extended
        // ones.
        let mut orphans = Vec::new();
        for (f, seg) in frozen.tables.iter().zip(built) {
            let Some(t) = tables.by_id.get_mut(&f.table) else {
                // Dropped meanwhile.
                orphans.push(seg.id());
                continue;
            };
            // The extended segment is pinned: nothing else replaces it while the flush runs.
            let at = match &f.base {
                Some(b) => match t.segments.iter().position(|ls| ls.seg.id() == b.seg.id()) {
                    Some(i) => Some(i),
                    None => {
                        for f in &frozen.tables {
                            let _ = self.remove_segment_files(f.seg_id);
                        }
                        drop(tables);
                        self.thaw();
                        return Err(Error::InvalidArgument(format!(
                            "segment {} of table {}, extended by a flush, is gone",
                            b.seg.id(),
                            f.schema.name
                        )));
                    }
                },
                None => None,
            };
            // Frozen rows updated or deleted since the freeze are no longer in the frozen part;
            // rows of the extended segment deleted since are deleted in it now.
            let base_now = at.and_then(|i| t.segments.get(i));
            let mut deleted = DeleteBitmap::new(seg.len());
            for (pos, id) in seg.ids().iter().enumerate() {
                let gone = if f.rows.contains_key(id) {
                    !t.mem.frozen().contains_key(id)
                } else {
                    base_now
                        .and_then(|b| Some((b, b.seg.position(*id)?)))
                        .is_none_or(|(b, p)| b.deleted.contains(p))
                };
                if gone {
                    deleted.insert(pos);
                }
            }
            let live = LiveSegment::new(seg, deleted);
            match at.and_then(|i| t.segments.get_mut(i)) {
                Some(slot) => {
                    orphans.push(slot.seg.id());
                    *slot = live;
                }
                None => t.segments.push(live),
            }
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
                    for f in &frozen.tables {
                        let _ = self.remove_segment_files(f.seg_id);
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
