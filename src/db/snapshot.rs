//! A point-in-time view of one table.

use std::sync::Arc;

use super::state::{LiveSegment, TableState};
use crate::memtable::MemTable;
use crate::{Result, Row, RowId, TableSchema};

/// A consistent view of one table: its memtable and segment list at one moment. Cheap to take
/// (a few `Arc` clones); `Send + Sync`; later writes, flushes and compactions do not change it.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub(super) schema: Arc<TableSchema>,
    pub(super) mem: MemTable,
    pub(super) segments: Vec<LiveSegment>,
    /// The table's [`writes`](super::TableState::writes) when the snapshot was taken.
    pub(super) writes: u64,
}

/// Where a live row is.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Mem,
    Seg(usize, usize),
}

impl TableSnapshot {
    pub(super) fn new(t: &TableState) -> TableSnapshot {
        TableSnapshot {
            schema: t.schema.clone(),
            mem: t.mem.clone(),
            segments: t.segments.clone(),
            writes: t.writes,
        }
    }

    /// The table's schema.
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// Number of live rows.
    pub fn row_count(&self) -> usize {
        self.mem.len() + self.segments.iter().map(LiveSegment::live).sum::<usize>()
    }

    /// Number of segments the table's rows are in (the memtable not counted). Each is a
    /// separate graph to search; background compaction keeps the number logarithmic.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Rows still in memory (written since the last flush, or being flushed).
    pub fn memtable_rows(&self) -> usize {
        self.mem.len()
    }

    /// Every live row, ascending by id. Rows are read lazily; a damaged row yields
    /// [`crate::Error::Corrupted`].
    pub fn scan(&self) -> impl Iterator<Item = Result<(RowId, Row)>> + '_ {
        let mut locs: Vec<(RowId, Loc)> = Vec::with_capacity(self.row_count());
        locs.extend(self.mem.iter().map(|(id, _)| (id, Loc::Mem)));
        for (s, ls) in self.segments.iter().enumerate() {
            for (pos, &id) in ls.seg.ids().iter().enumerate() {
                if !ls.deleted.contains(pos) {
                    locs.push((id, Loc::Seg(s, pos)));
                }
            }
        }
        // Each source is sorted and a live id is in exactly one place.
        locs.sort_unstable_by_key(|l| l.0);
        locs.into_iter()
            .map(move |(id, loc)| Ok((id, self.read(id, loc)?)))
    }

    /// Row `id`, if live.
    pub fn get(&self, id: RowId) -> Result<Option<Row>> {
        match self.locate(id) {
            Some(loc) => self.read(id, loc).map(Some),
            None => Ok(None),
        }
    }

    fn locate(&self, id: RowId) -> Option<Loc> {
        if self.mem.contains(id) {
            return Some(Loc::Mem);
        }
        self.segments.iter().enumerate().find_map(|(s, ls)| {
            let pos = ls.seg.position(id)?;
            (!ls.deleted.contains(pos)).then_some(Loc::Seg(s, pos))
        })
    }

    fn read(&self, id: RowId, loc: Loc) -> Result<Row> {
        match loc {
            Loc::Mem => Ok(self.mem.get(id).map(|r| (**r).clone()).unwrap_or_default()),
            Loc::Seg(s, pos) => self.segments[s].seg.row(pos, &self.schema),
        }
    }

    /// Row at `pos` of segment `s` (search results).
    pub(super) fn segment_row(&self, s: usize, pos: usize) -> Result<Row> {
        self.segments[s].seg.row(pos, &self.schema)
    }

    /// [`segment_row`](Self::segment_row) with only the columns in `want` (`None`: all).
    pub(super) fn segment_row_columns(
        &self,
        s: usize,
        pos: usize,
        want: Option<&[usize]>,
    ) -> Result<Row> {
        self.segments[s].seg.row_columns(pos, &self.schema, want)
    }
}
