//! Top-k search walking a [`GraphView`] in place.
//!
//! 1. Upper layers: greedy descent. On each layer walk to a local optimum (move to the best
//!    neighbour while it improves), not one hop: one hop per layer is what leaves hnsw_rs's own
//!    search in the wrong region on large graphs.
//! 2. Layer 0: beam search with `max(ef, k)` results. With a filter, every node is still traversed
//!    (so the beam can cross non-matching regions) but only matching nodes enter the results; the
//!    early exit (best remaining candidate worse than the worst of a full result list) is kept, it
//!    just waits until the list holds `ef` *matching* nodes.
//!
//! Cost of a filtered search: to collect `ef` matches at selectivity `s` the beam expands about
//! `ef / s` nodes, each scoring up to `2m` neighbours, so roughly `2m * ef / s` distances, against
//! `s * n` for an exact scan of the matching rows. The exact scan is cheaper when
//! `s < sqrt(2m * ef / n)`, i.e. when fewer than `sqrt(2m * ef * n)` rows match (m = 16, ef = 64:
//! ~11,000 rows at n = 100,000; measurements agree: docs/perf.md#filtered-search-planner). The
//! storage layer makes that choice; this function always walks the graph.

use std::cmp::{Ordering, Reverse};

use super::distance::{public_score, raw_score};
use super::flat::ranked;
use super::visited::{Scratch, with_scratch};
use super::{GraphView, LocalFilter, Scored, VectorsView, search_exact};
use crate::Metric;

/// Approximate top-k through the graph with candidate list size `ef`. Results best first, equal
/// scores by tie key; the walk depends on `max(ef, k)` and not on `k` otherwise, so for a fixed
/// `ef` the top k is a prefix of the top k + 1 while `k + 1 <= ef`.
///
/// With `max(ef, k)` at least the number of vectors the walk would reach every node anyway: the
/// exact scan does that work without the graph's overhead (and reaches nodes the graph may not).
/// `vectors` must be the vectors the graph was built on; if their count differs (a caller bug),
/// this also falls back to [`search_exact`] rather than read out of bounds.
pub fn search_graph(
    graph: &GraphView<'_>,
    vectors: VectorsView<'_>,
    metric: Metric,
    query: &[f32],
    k: usize,
    ef: usize,
    filter: Option<LocalFilter<'_>>,
) -> Vec<(u32, f32)> {
    if k == 0 || graph.is_empty() {
        return Vec::new();
    }
    let ef = ef.max(k);
    if graph.len() != vectors.len() || ef >= graph.len() {
        return search_exact(vectors, metric, query, k, filter);
    }
    with_scratch(graph.len(), |scratch| {
        walk(graph, vectors, metric, query, ef, filter, scratch);
        let hits: Vec<Scored> = scratch
            .results
            .drain()
            .map(|r| Scored {
                score: public_score(metric, r.0.score),
                ..r.0
            })
            .collect();
        ranked(hits, k)
    })
}

/// The whole walk.
fn walk<'a>(
    graph: &GraphView<'a>,
    vectors: VectorsView<'a>,
    metric: Metric,
    query: &[f32],
    ef: usize,
    filter: Option<LocalFilter<'a>>,
    scratch: &mut Scratch,
) {
    let s = Scorer {
        metric,
        vectors,
        query,
    };
    let entry = descend(graph, &s);
    beam_layer0(graph, &s, entry, ef, filter, scratch);
}

/// Scores nodes against the query.
struct Scorer<'a> {
    metric: Metric,
    vectors: VectorsView<'a>,
    query: &'a [f32],
}

impl Scorer<'_> {
    #[inline(always)]
    fn score(&self, id: u32) -> f32 {
        raw_score(self.metric, self.vectors.get(id as usize), self.query)
    }

    /// Node `id` as a candidate: its score and tie key.
    #[inline(always)]
    fn candidate(&self, id: u32) -> Scored {
        self.vectors.scored(self.score(id), id)
    }

    /// Starts loading the first cache line of vector `id`; the CPU's stream prefetcher fetches
    /// the following lines once the distance reads them in order.
    #[inline(always)]
    fn prefetch(&self, id: u32) {
        if let Some(x) = self.vectors.get(id as usize).first() {
            crate::storage::prefetch(x);
        }
    }
}

/// Greedy walk from the entry point down to layer 1; returns the layer-0 start node.
#[inline(always)]
fn descend(graph: &GraphView<'_>, s: &Scorer<'_>) -> Scored {
    let mut cur = s.candidate(graph.entry());
    for l in (1..graph.layers()).rev() {
        // Present by the subset check of `parse`; `else` keeps a bug from panicking.
        let Some(mut local) = graph.local_of(l, cur.id) else {
            break;
        };
        loop {
            let mut moved = false;
            // Upper-layer lists are short (at most m): start loading all their vectors at once.
            for nb in graph.neighbours(l, local) {
                s.prefetch(graph.node_id(l, nb));
            }
            for nb in graph.neighbours(l, local) {
                let c = s.candidate(graph.node_id(l, nb));
                if c > cur {
                    cur = c;
                    local = nb;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    cur
}

/// How many neighbours ahead of the one being scored the search prefetches (see `beam_layer0`).
pub(super) const PREFETCH_AHEAD: usize = 3;

#[inline(always)]
fn beam_layer0(
    graph: &GraphView<'_>,
    s: &Scorer<'_>,
    entry: Scored,
    ef: usize,
    filter: Option<LocalFilter<'_>>,
    scratch: &mut Scratch,
) {
    let keep = |id: u32| filter.is_none_or(|f| f(id));
    scratch.visit(entry.id);
    scratch.candidates.push(entry);
    if keep(entry.id) {
        scratch.results.push(Reverse(entry));
    }
    while let Some(c) = scratch.candidates.pop() {
        let worst = scratch.results.peek().map(|r| r.0);
        if scratch.results.len() >= ef && worst.is_some_and(|w| c < w) {
            break;
        }
        // The node expanded next, unless one of `c`'s neighbours beats it: its neighbour list
        // loads while `c`'s neighbours are scored (hnswlib prefetches the best candidate's list
        // likewise); a neighbour that becomes the best candidate gets the same.
        let mut next_best = scratch.candidates.peek().copied();
        if let Some(b) = next_best {
            graph.prefetch_neighbours(0, b.id);
        }
        // Unvisited neighbours first; then, while one is scored, the first line of the vector
        // `PREFETCH_AHEAD` neighbours on is prefetched (hnswlib prefetches the next one; with
        // vectors in locality order 3 ahead beat 1 ahead, and prefetching all of them at once
        // was slower: docs/perf.md#prefetch-distance).
        let mut fresh = std::mem::take(&mut scratch.fresh);
        fresh.clear();
        for nb in graph.neighbours(0, c.id) {
            if scratch.visit(nb) {
                fresh.push(nb);
            }
        }
        for &first in fresh.iter().take(PREFETCH_AHEAD) {
            s.prefetch(first);
        }
        for (j, &nb) in fresh.iter().enumerate() {
            if let Some(&next) = fresh.get(j + PREFETCH_AHEAD) {
                s.prefetch(next);
            }
            let score = s.score(nb);
            let full = scratch.results.len() >= ef;
            // The tie key is read only for a node that can enter the results.
            if full
                && scratch
                    .results
                    .peek()
                    .is_some_and(|w| w.0.rank_of(score, || s.vectors.tie_key(nb)) == Ordering::Less)
            {
                continue;
            }
            let e = s.vectors.scored(score, nb);
            scratch.candidates.push(e);
            if next_best.is_none_or(|b| e > b) {
                graph.prefetch_neighbours(0, e.id);
                next_best = Some(e);
            }
            if keep(nb) {
                scratch.results.push(Reverse(e));
                if scratch.results.len() > ef {
                    scratch.results.pop();
                }
            }
        }
        scratch.fresh = fresh;
    }
}
