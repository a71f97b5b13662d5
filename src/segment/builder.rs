//! Building a segment from rows: rows file, then per vector column its vectors and HNSW graph.

use std::path::Path;

use super::{Segment, graph_path, rows::write_rows, rows_path, vec_path, vectors};
use crate::index::{GraphView, VectorsView, build_graph, locality_order, renumber};
use crate::storage::FileSystem;
use crate::{Result, Row, RowId, TableSchema};

/// Writes segment `id` of `rows` (ascending ids, already validated) and opens it. Every file is
/// fsynced and renamed into place before this returns; the segment is live once a manifest lists it.
pub fn build_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u64,
    schema: &TableSchema,
    rows: &[(RowId, &Row)],
) -> Result<Segment> {
    write_rows(fs, &rows_path(dir, id), rows)?;
    let mut vector_columns = Vec::new();
    for (c, col) in schema.columns.iter().enumerate() {
        if !col.has_vector() || col.dim == 0 {
            continue;
        }
        vector_columns.push(c);
        let dim = col.dim as usize;
        let mut data = Vec::with_capacity(rows.len() * dim);
        let mut positions = Vec::with_capacity(rows.len());
        for (pos, (_, row)) in rows.iter().enumerate() {
            if let Some(v) = row.vector(c).filter(|v| v.len() == dim) {
                data.extend_from_slice(v);
                positions.push(pos as u32);
            }
        }
        // The graph is built in row order, then renumbered (and the vectors stored) in an
        // order that puts neighbours close together (see `index::reorder`).
        let (graph, order) = if positions.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let built = build_graph(VectorsView::new(&data, dim), col.metric, &schema.hnsw)?;
            let path = graph_path(dir, id, c);
            let view = GraphView::parse(&built, &path)?;
            let order = locality_order(&view);
            (renumber(&view, &order), order)
        };
        vectors::write_vectors(fs, &vec_path(dir, id, c), dim, &data, &positions, &order)?;
        vectors::write_graph(fs, &graph_path(dir, id, c), &graph)?;
    }
    Segment::open(dir, id, schema, &vector_columns)
}
