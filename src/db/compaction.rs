//! Compaction: merging segments of a table into one, in the background.
//!
//! Like a flush, in three steps: the inputs and their deletions are taken under the writer
//! lock; the merged segment is built without any lock (graphs reused, see
//! `segment::merge_segments`); the commit, under the writer lock, replaces the inputs with it
//! in the table as it is then (flushes may have added segments meanwhile), marks in it the
//! rows deleted or updated since the start, saves changed bitmaps and writes the manifest.
//! The checkpoint does not move: the merged segment holds what its inputs held.

use std::sync::Arc;

use super::maintenance::Pins;
use super::state::LiveSegment;
use super::{Inner, Writer};
use crate::segment::{DeleteBitmap, MergeInput, Segment, merge_segments};
use crate::{Error, Result};

/// What a committed merge replaced: removed after the writer lock is released.
#[derive(Debug, Default)]
pub(super) struct Replaced {
    /// Segments whose files go.
    pub(super) segments: Vec<u64>,
    /// Other files (older bitmap generations).
    pub(super) files: Vec<std::path::PathBuf>,
}

/// Inputs taken at the start of a merge.
struct Plan {
    table: u64,
    schema: Arc<crate::TableSchema>,
    inputs: Vec<LiveSegment>,
    seg_id: u64,
}

impl Inner {
    /// Merges the segments `seg_ids` of table `table` into one. The caller holds the
    /// compaction lock. Segments no longer in the table are left out; fewer than one input
    /// with nothing to drop is a no-op.
    pub(super) fn merge(&self, table: u64, seg_ids: &[u64]) -> Result<()> {
        let Some(plan) = self.with_writer_inner(|db, w| Ok(db.plan_merge(w, table, seg_ids)))?
        else {
            return Ok(());
        };
        let _pins = Pins::taken(self, plan.inputs.iter().map(|ls| ls.seg.id()).collect());
        let built = self.pools.merge(|| self.build_merge(&plan));
        let built = match built {
            Ok(seg) => seg,
            Err(e) => {
                // A failed fsync leaves the disk's state unknown, as anywhere else.
                self.poison_if_unknown(&e);
                let _ = self.remove_segment_files(plan.seg_id);
                return Err(e);
            }
        };
        let replaced = self.with_writer_inner(|db, w| db.commit_merge(w, plan, built))?;
        self.remove_replaced(replaced);
        Ok(())
    }

    /// Removes what a committed merge or bulk chunk replaced. Called after the writer lock:
    /// unlinking big files and syncing the directory must not hold up writers. Files that
    /// cannot be removed now are orphans that the next open removes.
    pub(super) fn remove_replaced(&self, replaced: Replaced) {
        let cleanup = replaced
            .segments
            .into_iter()
            .try_for_each(|s| self.remove_segment_files(s))
            .and_then(|_| crate::storage::fsync_dir(&*self.opts.fs, &self.path));
        let cleanup = replaced.files.iter().fold(cleanup, |r, p| {
            r.and_then(|_| crate::storage::remove_file(&*self.opts.fs, p))
        });
        if let Err(e) = cleanup {
            self.note_maintenance_error(&e);
        }
    }

    fn plan_merge(&self, w: &mut Writer, table: u64, seg_ids: &[u64]) -> Option<Plan> {
        let tables = self.tables.read();
        let t = tables.by_id.get(&table)?;
        let mut pinned = self.pinned.lock();
        let inputs: Vec<LiveSegment> = t
            .segments
            .iter()
            .filter(|ls| seg_ids.contains(&ls.seg.id()) && !pinned.contains(&ls.seg.id()))
            .cloned()
            .collect();
        let dead: usize = inputs.iter().map(|ls| ls.deleted.count()).sum();
        if inputs.is_empty() || (inputs.len() == 1 && dead == 0) {
            return None;
        }
        // A flush must not extend an input meanwhile (unpinned by `merge`).
        pinned.extend(inputs.iter().map(|ls| ls.seg.id()));
        let seg_id = w.next_segment_id;
        w.next_segment_id += 1;
        Some(Plan {
            table,
            schema: t.schema.clone(),
            inputs,
            seg_id,
        })
    }

    /// Builds the merged segment; `None` when no row is live (the inputs just go).
    fn build_merge(&self, plan: &Plan) -> Result<Option<Arc<Segment>>> {
        let live: usize = plan.inputs.iter().map(LiveSegment::live).sum();
        if live == 0 {
            return Ok(None);
        }
        let inputs: Vec<MergeInput<'_>> = plan.inputs.iter().map(LiveSegment::as_input).collect();
        let (seg, counts) = merge_segments(
            &*self.opts.fs,
            &self.path,
            plan.seg_id,
            &plan.schema,
            &inputs,
            &[],
        )?;
        let seg = Arc::new(seg);
        super::open::verify_in_background(&self.opts, vec![Arc::downgrade(&seg)]);
        self.note_merge(&counts, live);
        Ok(Some(seg))
    }

    fn commit_merge(
        &self,
        w: &mut Writer,
        plan: Plan,
        built: Option<Arc<Segment>>,
    ) -> Result<Replaced> {
        let mut tables = self.tables.read().clone();
        let discard = |db: &Inner| {
            let _ = db.remove_segment_files(plan.seg_id);
        };
        let Some(t) = tables.by_id.get_mut(&plan.table) else {
            discard(self);
            return Ok(Replaced::default());
        };
        let ids: Vec<u64> = plan.inputs.iter().map(|ls| ls.seg.id()).collect();
        let Some(first) = t.segments.iter().position(|ls| ids.contains(&ls.seg.id())) else {
            discard(self);
            return Ok(Replaced::default());
        };
        // Rows deleted or updated since the start: deleted now, not then.
        let mut merged = built.map(|seg| {
            let n = seg.len();
            (seg, DeleteBitmap::new(n))
        });
        for (start, now) in plan
            .inputs
            .iter()
            .filter_map(|s| Some((s, t.segments.iter().find(|x| x.seg.id() == s.seg.id())?)))
        {
            for (pos, &rid) in now.seg.ids().iter().enumerate() {
                if now.deleted.contains(pos)
                    && !start.deleted.contains(pos)
                    && let Some((seg, del)) = merged.as_mut()
                    && let Some(p) = seg.position(rid)
                {
                    del.insert(p);
                }
            }
        }
        t.segments.retain(|ls| !ids.contains(&ls.seg.id()));
        if let Some((seg, del)) = merged {
            t.segments
                .insert(first.min(t.segments.len()), LiveSegment::new(seg, del));
        }
        let mut new_files = Vec::new();
        let committed = self
            .save_bitmaps(&mut tables, &mut new_files)
            .and_then(|old| {
                self.store_manifest(w, &tables)?;
                Ok(old)
            });
        let old_dels = match committed {
            Ok(old) => old,
            Err(e) => {
                // As in a flush: an unknown outcome may have committed the new segment.
                if let Error::Io { .. } = e {
                    discard(self);
                    for p in &new_files {
                        let _ = crate::storage::remove_file(&*self.opts.fs, p);
                    }
                }
                return Err(e);
            }
        };
        *self.tables.write() = tables;
        Ok(Replaced {
            segments: ids,
            files: old_dels,
        })
    }
}
