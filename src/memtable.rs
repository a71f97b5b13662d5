//! The memtable: rows written since the last checkpoint, searched exactly.
//!
//! Rows live in an `Arc<BTreeMap>` so a snapshot is one `Arc` clone; the writer copies the map
//! (`Arc::make_mut`) only when a reader still holds an older version. The map is bounded by the
//! flush threshold (`DatabaseBuilder::memtable_max_bytes`), which bounds that copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::index::score;
use crate::{Metric, Row, RowFilter, RowId, Value};

/// Recent rows by id.
#[derive(Debug, Clone, Default)]
pub struct MemTable {
    rows: Arc<BTreeMap<RowId, Arc<Row>>>,
    bytes: usize,
}

impl MemTable {
    /// Inserts or replaces row `id`.
    pub fn upsert(&mut self, id: RowId, row: Row) {
        self.bytes += row_bytes(&row);
        if let Some(old) = Arc::make_mut(&mut self.rows).insert(id, Arc::new(row)) {
            self.bytes = self.bytes.saturating_sub(row_bytes(&old));
        }
    }

    /// Removes row `id`; true if it was here.
    pub fn remove(&mut self, id: RowId) -> bool {
        if !self.rows.contains_key(&id) {
            return false;
        }
        if let Some(old) = Arc::make_mut(&mut self.rows).remove(&id) {
            self.bytes = self.bytes.saturating_sub(row_bytes(&old));
        }
        true
    }

    /// Row `id`.
    pub fn get(&self, id: RowId) -> Option<&Arc<Row>> {
        self.rows.get(&id)
    }

    /// Whether row `id` is here.
    pub fn contains(&self, id: RowId) -> bool {
        self.rows.contains_key(&id)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Approximate heap bytes held (the flush trigger).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Rows in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (RowId, &Arc<Row>)> + '_ {
        self.rows.iter().map(|(id, r)| (*id, r))
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
            .rows
            .iter()
            .filter_map(|(&id, row)| {
                let v = row.vector(col)?;
                if v.len() != query.len() || filter.is_some_and(|f| !f(id, row)) {
                    return None;
                }
                Some((id, score(metric, v, query)))
            })
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
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
