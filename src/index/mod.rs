//! Vector indexes of one segment column: an exact (flat) scan and an HNSW graph.
//!
//! Local ids are `u32` positions of vectors in the segment's vector file. Scores are "higher is more
//! similar" for every metric (see [`Metric`](crate::Metric)): cosine and dot give the dot product, L2 gives
//! `-distance`.
//!
//! Ranking: score descending, then tie key ascending. The tie key of a vector is its local id unless
//! the caller gives others ([`VectorsView::with_ties`]): a segment gives each vector its row
//! position, so that equal scores rank by row id as everywhere else in the engine, whatever order
//! the vectors are stored in. The top k is then a prefix of the top k + 1 (for graph search, at
//! one `ef`), which is what makes `LIMIT l OFFSET o` pages slices of one list.
//!
//! API contract used by `segment`:
//! - [`build_graph`] builds the HNSW graph of `n` vectors (parallel insertion, see `insert`) and
//!   returns it in mmdb's own layout (see `layout`); [`build_graph_with`] can use `hnsw_rs` instead (hidden `__internals` feature, for the bench);
//! - [`build_graph_from`] builds the graph of a merged segment from an earlier segment's graph and
//!   a map of its nodes to the new local ids: kept nodes keep their links (those to dropped
//!   nodes repaired), only the other vectors are inserted (see `merge`; dot falls back to
//!   [`build_graph`]);
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
#[cfg(feature = "__internals")]
mod hnsw_rs_builder;
mod insert;
mod layout;
mod lists;
mod merge;
mod reorder;
mod search;
mod visited;

// The bench reaches more of the index (`mmdb::internals`) than the engine uses.
#[cfg_attr(not(feature = "__internals"), allow(unused_imports))]
pub use build::{
    GraphBuilder, MAX_SQUARED_NORM, build_graph, build_graph_from, build_graph_with,
    validate_vectors,
};
#[cfg_attr(not(feature = "__internals"), allow(unused_imports))]
pub use distance::{dot, l2_sq, score};
pub use flat::search_exact;
pub use layout::GraphView;
pub use reorder::{locality_order, renumber};
pub use search::search_graph;

/// A row filter on local ids: `true` keeps the vector.
pub type LocalFilter<'a> = &'a (dyn Fn(u32) -> bool + Sync);

/// `n` vectors of `dim` f32 values, row-major, borrowed (usually from an mmap). Vector `i`
/// starts at value `i * stride`; `stride >= dim`, and the `stride - dim` values after each vector
/// are padding that no kernel reads (segments use [`padded_stride`]).
#[derive(Debug, Clone, Copy)]
pub struct VectorsView<'a> {
    data: &'a [f32],
    dim: usize,
    stride: usize,
    /// Tie key per vector; `None`: the local id.
    ties: Option<&'a [u32]>,
}

impl<'a> VectorsView<'a> {
    /// Vectors stored back to back (`stride == dim`).
    pub fn new(data: &'a [f32], dim: usize) -> VectorsView<'a> {
        VectorsView {
            data,
            dim,
            stride: dim,
            ties: None,
        }
    }

    /// Vectors `stride` values apart. A `stride` below `dim` is taken as `dim`.
    pub fn strided(data: &'a [f32], dim: usize, stride: usize) -> VectorsView<'a> {
        VectorsView {
            data,
            dim,
            stride: stride.max(dim),
            ties: None,
        }
    }

    /// Equal scores rank by `keys[i]` ascending instead of by local id `i` (default: by local
    /// id). One key per vector; a vector without one ranks after those with one.
    #[must_use]
    pub fn with_ties(mut self, keys: &'a [u32]) -> VectorsView<'a> {
        self.ties = Some(keys);
        self
    }

    /// The tie key of vector `i`.
    #[inline(always)]
    fn tie_key(&self, i: u32) -> u32 {
        match self.ties {
            None => i,
            Some(t) => t.get(i as usize).copied().unwrap_or(u32::MAX),
        }
    }

    /// Vector `i` as a candidate with `score`, its tie key looked up.
    #[inline(always)]
    fn scored(&self, score: f32, i: u32) -> Scored {
        Scored {
            score,
            key: self.tie_key(i),
            id: i,
        }
    }

    /// The values, padding included.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Values from the start of one vector to the start of the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Number of vectors: whole strides in `data` (padding is stored after the last one too).
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.stride).unwrap_or(0)
    }

    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vector `i`.
    #[inline]
    pub fn get(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.stride..i * self.stride + self.dim]
    }
}

/// The stride, in f32 values, at which segments store `dim`-value vectors: `dim`, plus one
/// 64-byte cache line of padding when a vector is at least 2 KiB and a whole number of KiB.
///
/// Graph search waits on the cache misses of vectors it reads in an order that jumps across the
/// file. At 512 dims (2,048 bytes) every vector starts at one of two offsets in a 4 KiB page,
/// and misses on those first lines, the ones the search prefetches, are slower (likely because
/// they map to the same cache sets and memory banks; this VM has no hardware counters to show
/// it). Measured in one process alternating layouts (graph search, one thread), the padded
/// stride searched faster at 512 and 768 dims and gained nothing within the noise at 128 and
/// 256 dims (docs/perf.md#stride-padding), so smaller or unaligned vectors stay unpadded. The
/// cost is at most 64 bytes per vector (3% at 512 dims).
pub fn padded_stride(dim: usize) -> usize {
    let bytes = dim * 4;
    if bytes >= 2048 && bytes.is_multiple_of(1024) {
        dim + distance::LINE
    } else {
        dim
    }
}

/// A candidate: score (higher is better), tie key and local id. Ordered by score, then by
/// *lower* tie key (see the module doc), so ties resolve the same way in exact and graph search.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: f32,
    key: u32,
    id: u32,
}

impl Scored {
    /// A candidate whose tie key is its local id (graph building).
    fn new(score: f32, id: u32) -> Scored {
        Scored { score, key: id, id }
    }

    /// How a candidate with `score` and tie key `key()` ranks against `self` (`Less`: below).
    /// The key is looked up only when the scores are equal, which keeps it out of the hot loop.
    #[inline(always)]
    fn rank_of(&self, score: f32, key: impl FnOnce() -> u32) -> Ordering {
        score
            .total_cmp(&self.score)
            .then_with(|| self.key.cmp(&key()))
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
            .then(other.key.cmp(&self.key))
    }
}

#[cfg(test)]
mod recall_tests;
#[cfg(test)]
mod tests;
