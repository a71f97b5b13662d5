//! Vector indexes of one segment column: an exact (flat) scan and an HNSW graph.
//!
//! Local ids are `u32` positions of vectors in the segment's vector file. Scores are "higher is more
//! similar" for every metric (see [`Metric`]).
//!
//! API contract used by `segment` (the index helper owns the internals):
//! - [`build_graph`] builds the HNSW graph of `n` vectors and returns its serialised bytes;
//! - [`GraphView::parse`] reads those bytes in place (from an mmap) without copying;
//! - [`search_graph`] and [`search_exact`] answer top-k queries with an optional filter.

use std::path::Path;

use crate::{HnswParams, Metric, Result};

/// A row filter on local ids: `true` keeps the vector.
pub type LocalFilter<'a> = &'a (dyn Fn(u32) -> bool + Sync);

/// `n * dim` f32 values, row-major, borrowed (usually from an mmap).
#[derive(Debug, Clone, Copy)]
pub struct VectorsView<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Vector dimension.
    pub dim: usize,
}

impl VectorsView<'_> {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Vector `i`.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// The similarity score of `a` and `b` under `metric` (higher is more similar).
/// For [`Metric::Cosine`] both vectors must already be normalised.
pub fn score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
        Metric::L2 => -a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt(),
    }
}

/// Exact top-k: scores every (filtered) vector. Results best first.
pub fn search_exact(
    vectors: VectorsView<'_>,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<LocalFilter<'_>>,
) -> Vec<(u32, f32)> {
    let mut hits: Vec<(u32, f32)> = (0..vectors.len() as u32)
        .filter(|&i| filter.is_none_or(|f| f(i)))
        .map(|i| (i, score(metric, vectors.get(i as usize), query)))
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits.truncate(k);
    hits
}

/// Builds the HNSW graph over `vectors` and returns its serialised form.
/// STUB until the index work lands: an empty graph (searches fall back to exact).
pub fn build_graph(
    vectors: VectorsView<'_>,
    metric: Metric,
    params: &HnswParams,
) -> Result<Vec<u8>> {
    let _ = (vectors, metric, params);
    Ok(Vec::new())
}

/// A serialised graph read in place.
#[derive(Debug, Clone, Copy)]
pub struct GraphView<'a> {
    bytes: &'a [u8],
}

impl<'a> GraphView<'a> {
    /// Checks and borrows graph bytes; `path` names the file in errors.
    pub fn parse(bytes: &'a [u8], path: &Path) -> Result<GraphView<'a>> {
        let _ = path;
        Ok(GraphView { bytes })
    }
}

/// Approximate top-k through the graph with candidate list size `ef`. Results best first.
/// STUB until the index work lands: exact.
pub fn search_graph(
    graph: &GraphView<'_>,
    vectors: VectorsView<'_>,
    metric: Metric,
    query: &[f32],
    k: usize,
    ef: usize,
    filter: Option<LocalFilter<'_>>,
) -> Vec<(u32, f32)> {
    let _ = (graph.bytes, ef);
    search_exact(vectors, metric, query, k, filter)
}
