//! The memtable: rows written since the last checkpoint, searched exactly.
//!
//! Rows live in an `Arc<BTreeMap>` so a snapshot is one `Arc` clone; the writer copies the map
//! (`Arc::make_mut`) only when a reader still holds an older version. The map is bounded by the
//! flush threshold (`DatabaseBuilder::memtable_max_bytes`), which bounds that copy.
//!
//! A flush runs in the background in two steps: [`freeze`](MemTable::freeze) moves the rows to
//! a frozen part (still read and searched here) that the maintenance thread writes to a segment
//! while new rows go to the active part; once the segment is committed,
//! [`drop_frozen`](MemTable::drop_frozen) forgets the frozen part. A row is in at most one part:
//! updating or deleting a frozen row removes it from the frozen part (the maintenance thread's
//! copy keeps it, and the commit marks it deleted in the new segment).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::index::score;
use crate::{Metric, Row, RowFilter, RowId, Value};

/// Rows by id.
pub type RowMap = Arc<BTreeMap<RowId, Arc<Row>>>;

/// Recent rows by id.
#[derive(Debug, Clone, Default)]
pub struct MemTable {
    rows: RowMap,
    bytes: usize,
    /// Rows being written to a segment (see the module doc).
    frozen: RowMap,
    frozen_bytes: usize,
}

impl MemTable {
    /// Inserts or replaces row `id`.
    pub fn upsert(&mut self, id: RowId, row: Row) {
        self.remove_frozen(id);
        self.bytes += row_bytes(&row);
        if let Some(old) = Arc::make_mut(&mut self.rows).insert(id, Arc::new(row)) {
            self.bytes = self.bytes.saturating_sub(row_bytes(&old));
        }
    }

    /// Removes row `id`; true if it was here.
    pub fn remove(&mut self, id: RowId) -> bool {
        if self.remove_frozen(id) {
            return true;
        }
        if !self.rows.contains_key(&id) {
            return false;
        }
        if let Some(old) = Arc::make_mut(&mut self.rows).remove(&id) {
            self.bytes = self.bytes.saturating_sub(row_bytes(&old));
        }
        true
    }

    fn remove_frozen(&mut self, id: RowId) -> bool {
        if !self.frozen.contains_key(&id) {
            return false;
        }
        if let Some(old) = Arc::make_mut(&mut self.frozen).remove(&id) {
            self.frozen_bytes = self.frozen_bytes.saturating_sub(row_bytes(&old));
        }
        true
    }

    /// Row `id`.
    pub fn get(&self, id: RowId) -> Option<&Arc<Row>> {
        self.rows.get(&id).or_else(|| self.frozen.get(&id))
    }

    /// Whether row `id` is here.
    pub fn contains(&self, id: RowId) -> bool {
        self.rows.contains_key(&id) || self.frozen.contains_key(&id)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len() + self.frozen.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.frozen.is_empty()
    }

    /// Approximate heap bytes of the active part (the flush trigger).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Approximate heap bytes of both parts (the back-pressure bound).
    pub fn total_bytes(&self) -> usize {
        self.bytes + self.frozen_bytes
    }

    /// Moves the active rows to the frozen part and returns them (the rows the flush writes).
    /// The frozen part must be empty (one flush at a time).
    pub fn freeze(&mut self) -> RowMap {
        debug_assert!(self.frozen.is_empty(), "one flush at a time");
        self.frozen = std::mem::take(&mut self.rows);
        self.frozen_bytes = std::mem::take(&mut self.bytes);
        self.frozen.clone()
    }

    /// The frozen rows still live (a subset of what [`freeze`](Self::freeze) returned).
    pub fn frozen(&self) -> &RowMap {
        &self.frozen
    }

    /// Forgets the frozen part (its segment is committed).
    pub fn drop_frozen(&mut self) {
        self.frozen = RowMap::default();
        self.frozen_bytes = 0;
    }

    /// Puts the frozen rows back into the active part (the flush failed before its commit).
    pub fn thaw(&mut self) {
        let frozen = std::mem::take(&mut self.frozen);
        self.frozen_bytes = 0;
        if frozen.is_empty() {
            return;
        }
        let rows = Arc::make_mut(&mut self.rows);
        for (id, row) in frozen.iter() {
            // A row in both parts cannot be: upsert removes the frozen copy.
            if !rows.contains_key(id) {
                self.bytes += row_bytes(row);
                rows.insert(*id, row.clone());
            }
        }
    }

    /// Rows in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (RowId, &Arc<Row>)> + '_ {
        let mut a = self.rows.iter().peekable();
        let mut b = self.frozen.iter().peekable();
        std::iter::from_fn(move || {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if y.0 < x.0 => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            };
            next.map(|(id, r)| (*id, r))
        })
    }

    /// Exact top-k over column `col`; `filter` sees the row id's position-free form (id, row).
    pub fn search(
        &self,
        col: usize,
        metric: Metric,
        query: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
    ) -> Vec<(RowId, f32)> {
        let mut hits: Vec<(RowId, f32)> = self
            .iter()
            .filter_map(|(id, row)| {
                let v = row.vector(col)?;
                if v.len() != query.len() || filter.is_some_and(|f| !f(id, row)) {
                    return None;
                }
                Some((id, score(metric, v, query)))
            })
            .collect();
        let order = |a: &(RowId, f32), b: &(RowId, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        // The k best, then only those sorted: a full sort of every row cost as much as scoring.
        if k < hits.len() {
            hits.select_nth_unstable_by(k, order);
            hits.truncate(k);
        }
        hits.sort_by(order);
        hits
    }
}

/// Approximate heap size of a row.
pub fn row_bytes(row: &Row) -> usize {
    let values: usize = row
        .values
        .iter()
        .map(|v| {
            32 + match v {
                Value::Text(s) => s.len(),
                Value::Blob(b) => b.len(),
                Value::Image(crate::ImageSource::Path(p)) => p.len(),
                Value::Image(crate::ImageSource::Bytes(b)) => b.len(),
                Value::Vector(v) => v.len() * 4,
                _ => 0,
            }
        })
        .sum();
    let emb: usize = row
        .embeddings
        .iter()
        .flatten()
        .map(|e| 24 + e.len() * 4)
        .sum();
    64 + values + emb + row.embeddings.len() * 24
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_remove_search() {
        let mut m = MemTable::default();
        m.upsert(1, Row::new(vec![Value::Vector(vec![1.0, 0.0])]));
        m.upsert(2, Row::new(vec![Value::Vector(vec![0.0, 1.0])]));
        let snap = m.clone();
        m.remove(1);
        assert_eq!(snap.len(), 2);
        assert_eq!(m.len(), 1);
        let hits = snap.search(0, Metric::Dot, &[1.0, 0.0], 5, None);
        assert_eq!(hits[0].0, 1);
        let only2 = |id: RowId, _: &Row| id == 2;
        assert_eq!(
            snap.search(0, Metric::Dot, &[1.0, 0.0], 5, Some(&only2)),
            vec![(2, 0.0)]
        );
    }
}
