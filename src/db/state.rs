//! The in-memory state of one table and how WAL operations change it.

use std::sync::Arc;

use crate::memtable::MemTable;
use crate::segment::{DeleteBitmap, Segment};
use crate::wal::WalOp;
use crate::{RowId, TableSchema};

/// A live segment with its current deletions.
#[derive(Debug, Clone)]
pub struct LiveSegment {
    /// The immutable segment.
    pub seg: Arc<Segment>,
    /// Deleted row positions (copied on write when a snapshot shares it).
    pub deleted: Arc<DeleteBitmap>,
    /// Generation of the bitmap file on disk (0: none).
    pub del_gen: u64,
    /// Deletions not yet written to a bitmap file.
    pub dirty: bool,
}

impl LiveSegment {
    /// A segment as built, with the deletions `deleted` (none saved yet).
    pub fn new(seg: Arc<Segment>, deleted: DeleteBitmap) -> LiveSegment {
        let dirty = deleted.count() > 0;
        LiveSegment {
            seg,
            deleted: Arc::new(deleted),
            del_gen: 0,
            dirty,
        }
    }
}

impl LiveSegment {
    /// The segment as an input of a merge (its deleted rows left out).
    pub fn as_input(&self) -> crate::segment::MergeInput<'_> {
        crate::segment::MergeInput {
            seg: &self.seg,
            deleted: &self.deleted,
        }
    }

    /// Live rows.
    pub fn live(&self) -> usize {
        self.seg.len() - self.deleted.count()
    }
}

/// One table: schema, memtable and segments.
#[derive(Debug, Clone)]
pub struct TableState {
    /// Stable id.
    pub id: u64,
    /// The schema.
    pub schema: Arc<TableSchema>,
    /// Next automatic row id.
    pub next_row_id: u64,
    /// Rows since the last checkpoint.
    pub mem: MemTable,
    /// Segments, oldest first.
    pub segments: Vec<LiveSegment>,
    /// Data writes applied since open (inserts, updates, deletes; not flushes or compactions):
    /// lets a read-modify-write tell whether the rows it read are still current.
    pub writes: u64,
}

impl TableState {
    /// Whether row `id` is live.
    pub fn contains(&self, id: RowId) -> bool {
        self.mem.contains(id) || self.locate(id).is_some()
    }

    /// The segment index and position of live row `id` in a segment.
    pub fn locate(&self, id: RowId) -> Option<(usize, usize)> {
        self.segments.iter().enumerate().find_map(|(s, ls)| {
            let pos = ls.seg.position(id)?;
            (!ls.deleted.contains(pos)).then_some((s, pos))
        })
    }

    fn delete_in_segment(&mut self, id: RowId) -> bool {
        match self.locate(id) {
            Some((s, pos)) => {
                let ls = &mut self.segments[s];
                Arc::make_mut(&mut ls.deleted).insert(pos);
                ls.dirty = true;
                true
            }
            None => false,
        }
    }

    /// Applies a logged operation as it is written; returns the number of rows affected.
    pub fn apply(&mut self, op: WalOp) -> usize {
        self.apply_as(op, false)
    }

    /// Applies an operation replayed from the WAL at open. An update record names rows that
    /// existed when it was logged, so replay writes them even where the row is no longer
    /// found: deletion bitmaps may be saved ahead of the checkpoint (a flush or compaction
    /// saves a segment's deletions as they are at its commit, and may drop deleted rows from
    /// a merged segment), and the update is what makes such a row live again.
    pub fn apply_replayed(&mut self, op: WalOp) -> usize {
        self.apply_as(op, true)
    }

    fn apply_as(&mut self, op: WalOp, replay: bool) -> usize {
        self.writes += 1;
        match op {
            WalOp::Insert { rows, .. } => {
                let n = rows.len();
                for (id, row) in rows {
                    self.next_row_id = self.next_row_id.max(id + 1);
                    self.mem.upsert(id, row);
                }
                n
            }
            WalOp::Delete { ids, .. } => ids
                .into_iter()
                .filter(|&id| self.mem.remove(id) || self.delete_in_segment(id))
                .count(),
            WalOp::Update { rows, .. } => {
                let mut n = 0;
                for (id, row) in rows {
                    if self.mem.contains(id) || self.delete_in_segment(id) || replay {
                        self.next_row_id = self.next_row_id.max(id + 1);
                        self.mem.upsert(id, row);
                        n += 1;
                    }
                }
                n
            }
        }
    }
}
