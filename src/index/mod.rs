//! Vector indexes of one segment column: an exact (flat) scan and an HNSW graph.
//!
//! Local ids are `u32` positions of vectors in the segment's vector file. Scores are "higher is more
//! similar" for every metric (see [`Metric`](crate::Metric)): cosine and dot give the dot product, L2 gives
//! `-distance`.
//!
//! API contract used by `segment`:
//! - [`build_graph`] builds the HNSW graph of `n` vectors (parallel insertion, see `insert`) and
//!   returns it in mmdb's own layout (see `layout`); [`build_graph_with`] can use `hnsw_rs` instead;
//! - [`locality_order`] and [`renumber`] renumber a built graph so that neighbours sit close
//!   together; the segment stores its vectors in that order (`reorder`);
//! - [`GraphView::parse`] checks those bytes and reads them in place (from an mmap) without copying;
//! - [`search_graph`] and [`search_exact`] answer top-k queries with an optional filter.
//!
//! Search never goes through `hnsw_rs`: it walks the serialised graph directly (greedy descent on
//! the upper layers, beam search of width `ef` on layer 0, a per-thread visited set).

use std::cmp::Ordering;

mod build;
mod connect;
mod distance;
mod flat;
mod insert;
mod layout;
mod reorder;
mod search;
mod visited;

pub use build::{GraphBuilder, build_graph, build_graph_with, validate_vectors};
pub use distance::{dot, l2_sq, score};
pub use flat::search_exact;
pub use layout::GraphView;
pub use reorder::{locality_order, renumber};
pub use search::search_graph;

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

/// A candidate: internal score (higher is better) and local id. Ordered by score, then by
/// *lower* id, so ties resolve the same way in exact and graph search.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: f32,
    id: u32,
}

impl Scored {
    fn new(score: f32, id: u32) -> Scored {
        Scored { score, id }
    }
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.id.cmp(&self.id))
    }
}

#[cfg(test)]
mod tests;
