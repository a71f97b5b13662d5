//! HNSW construction by parallel insertion, as in Malkov & Yashunin (2018), algorithms 1-4, and
//! hnswlib: every node draws a level, descends greedily from the entry point to its level, then on
//! each of its layers runs a beam search of width `ef_construction`, keeps `m` neighbours chosen by
//! the heuristic (a candidate is kept only if it is closer to the new node than to every neighbour
//! kept before it) and links both ways, shrinking an overflowing list with the same heuristic
//! (capacity `m` above layer 0, `2m` on layer 0).
//!
//! Why mmdb builds its own graphs rather than keep hnsw_rs's (which it did first): cost. On the
//! HNSW bench (`benches/hnsw.rs`), hnsw_rs took several times hnswlib's build CPU time, against
//! a target of at most 2x, which this builder meets. Searched by the same code, this graph's
//! recall@10 matches hnswlib's at every ef; hnsw_rs's graph, whose lists mmdb pads with reverse
//! edges, is denser and reaches a little more recall per ef at about the same queries per
//! CPU-second (measurements: docs/perf.md#graph-builders, docs/perf.md#hnsw-bench).
//!
//! Concurrency: insertions run on rayon threads. The lists live in `lists::BuildLists`: a
//! writer holds the node's lock while it appends to or replaces a list (and, as in hnswlib,
//! while it re-selects an overflowing one), so threads block each other only on the same node,
//! and layer-0 readers take no lock (see that module for what a racing reader may see). A search
//! may see a half-inserted node with some lists still empty; that only costs it candidates. The
//! entry point changes under a mutex when a node comes with a higher level. Levels come from a
//! seeded generator, so the level structure is reproducible; the edges depend on thread timing,
//! as with every parallel HNSW builder.

use std::cmp::Reverse;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::Scored;
use super::VectorsView;
use super::distance::{dot, l2_sq};
use super::layout::{GraphLayers, Layer, MAX_LAYERS};
use super::lists::BuildLists;
use super::search::PREFETCH_AHEAD;
use super::visited::{Scratch, with_scratch};

/// How the builder compares build vectors: larger is closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BuildScore {
    /// Dot product (unit vectors: cosine).
    Dot,
    /// Negative squared L2 distance.
    NegL2,
}

/// A graph under construction: every node's level and lists, and the entry point. Built empty by
/// [`build_layers`], or from an earlier graph's nodes by `merge`; both then insert nodes with
/// [`Builder::insert_all`].
pub(super) struct Builder<'a> {
    vectors: VectorsView<'a>,
    score: BuildScore,
    m: usize,
    m0: usize,
    ef: usize,
    levels: Vec<u8>,
    lists: BuildLists,
    /// Entry point and the top layer.
    entry: Mutex<(u32, u8)>,
}

/// Builds the graph of all `vectors`. `seed` fixes the levels.
pub(super) fn build_layers(
    vectors: VectorsView<'_>,
    score: BuildScore,
    m: usize,
    ef_construction: usize,
    seed: u64,
) -> GraphLayers {
    let n = vectors.len();
    let levels = draw_levels(n, m, seed);
    let b = Builder::new(vectors, score, m, ef_construction, levels, 0);
    b.insert_all(1..n as u32);
    b.into_layers()
}

/// Level of each node: `floor(-ln(u) / ln(m))`, capped below [`MAX_LAYERS`].
pub(super) fn draw_levels(n: usize, m: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ml = 1.0 / (m.max(2) as f64).ln();
    (0..n)
        .map(|_| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            ((-u.ln() * ml) as usize).min(MAX_LAYERS - 1) as u8
        })
        .collect()
}

/// Inserts node `q`.
fn insert<'a>(b: &Builder<'a>, q: u32, s: &mut Scratch) {
    let level = b.levels[q as usize] as usize;
    // A node that raises the top layer keeps the entry lock for its whole insertion (as hnswlib
    // does), so no other node links into the new layers before the entry point moves there.
    let guard = b.entry.lock();
    let (entry, top) = (guard.0, guard.1 as usize);
    let mut raising = (level > top).then_some(guard);
    let mut cur = Scored::new(b.score(q, entry), entry);
    for l in (level + 1..=top).rev() {
        cur = b.greedy(q, cur, l, s);
    }
    for l in (0..=level.min(top)).rev() {
        let found = b.search_layer(q, cur, l, s);
        let Some(&best) = found.first() else { continue };
        let chosen = b.select(q, &found, b.m);
        b.lists.set(q, l, &chosen);
        for &e in &chosen {
            b.link(e, q, l, &mut s.fresh);
        }
        cur = best;
    }
    if let Some(entry) = raising.as_mut() {
        **entry = (q, level as u8);
    }
}

impl<'a> Builder<'a> {
    /// A builder over `vectors` (the build vectors) whose node `i` has level `levels[i]` and
    /// empty lists, entering at `entry` (a node of the highest level; ignored when there are no
    /// nodes).
    pub(super) fn new(
        vectors: VectorsView<'a>,
        score: BuildScore,
        m: usize,
        ef_construction: usize,
        levels: Vec<u8>,
        entry: u32,
    ) -> Builder<'a> {
        let top = levels.get(entry as usize).copied().unwrap_or(0);
        Builder {
            lists: BuildLists::new(&levels, m, 2 * m),
            vectors,
            score,
            m,
            m0: 2 * m,
            ef: ef_construction.max(m),
            entry: Mutex::new((entry, top)),
            levels,
        }
    }

    /// Inserts `nodes` in parallel (rayon). Their lists must be empty, and no other node may
    /// link to them yet.
    pub(super) fn insert_all(&self, nodes: impl IntoParallelIterator<Item = u32>) {
        let n = self.levels.len();
        nodes
            .into_par_iter()
            .for_each(|q| with_scratch(n, |s| insert(self, q, s)));
    }

    /// Capacity of a list on layer `l`.
    pub(super) fn capacity(&self, l: usize) -> usize {
        if l == 0 { self.m0 } else { self.m }
    }

    /// Replaces `node`'s list on layer `l` (a layer it is on).
    pub(super) fn set_list(&self, node: u32, l: usize, list: &[u32]) {
        self.lists.set(node, l, list);
    }

    #[inline(always)]
    pub(super) fn score(&self, a: u32, b: u32) -> f32 {
        let (x, y) = (self.vectors.get(a as usize), self.vectors.get(b as usize));
        match self.score {
            BuildScore::Dot => dot(x, y),
            BuildScore::NegL2 => -l2_sq(x, y),
        }
    }

    /// Starts loading the first cache line of vector `id`; the CPU's stream prefetcher fetches
    /// the rest once the distance reads them in order (as `search` does).
    #[inline(always)]
    fn touch(&self, id: u32) {
        if let Some(x) = self.vectors.get(id as usize).first() {
            crate::storage::prefetch(x);
        }
    }

    #[inline(always)]
    fn copy_list(&self, node: u32, l: usize, out: &mut Vec<u32>) {
        self.lists.copy(node, l, out);
    }

    /// Walks layer `l` from `cur` to a local optimum for `q`.
    #[inline(always)]
    fn greedy(&self, q: u32, mut cur: Scored, l: usize, s: &mut Scratch) -> Scored {
        let mut list = std::mem::take(&mut s.fresh);
        loop {
            let mut moved = false;
            self.copy_list(cur.id, l, &mut list);
            for &nb in &list {
                let c = Scored::new(self.score(q, nb), nb);
                if c > cur {
                    cur = c;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        s.fresh = list;
        cur
    }

    /// Beam search of width `ef` on layer `l` from `start`; the nodes found, best first.
    #[inline(always)]
    fn search_layer(&self, q: u32, start: Scored, l: usize, s: &mut Scratch) -> Vec<Scored> {
        s.reset(self.levels.len());
        s.visit(q);
        s.visit(start.id);
        s.candidates.push(start);
        s.results.push(Reverse(start));
        let mut list = std::mem::take(&mut s.fresh);
        while let Some(c) = s.candidates.pop() {
            if s.results.len() >= self.ef && s.results.peek().is_some_and(|w| c < w.0) {
                break;
            }
            self.copy_list(c.id, l, &mut list);
            // The node expanded next, unless a neighbour of `c` beats it: its list loads while
            // `c`'s neighbours are scored (as in `search`).
            if l == 0
                && let Some(next) = s.candidates.peek()
            {
                self.lists.prefetch_l0(next.id);
            }
            // Unvisited first; then the first line of the vector `PREFETCH_AHEAD` on is
            // prefetched while one is scored (`search`'s order: loading all of them at once
            // stalled the builder on the prefetches, docs/perf.md#graph-builders).
            list.retain(|&nb| s.visit(nb));
            for &nb in list.iter().take(PREFETCH_AHEAD) {
                self.touch(nb);
            }
            for (j, &nb) in list.iter().enumerate() {
                if let Some(&next) = list.get(j + PREFETCH_AHEAD) {
                    self.touch(next);
                }
                let e = Scored::new(self.score(q, nb), nb);
                if s.results.len() >= self.ef && s.results.peek().is_some_and(|w| e < w.0) {
                    continue;
                }
                s.candidates.push(e);
                s.results.push(Reverse(e));
                if s.results.len() > self.ef {
                    s.results.pop();
                }
            }
        }
        s.fresh = list;
        let mut found: Vec<Scored> = s.results.drain().map(|r| r.0).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }

    /// The neighbour heuristic: from `candidates` (best first, scored against `base`), keep a
    /// candidate only if it is closer to `base` than to every one kept so far; at most `max`.
    #[inline(always)]
    pub(super) fn select(&self, base: u32, candidates: &[Scored], max: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(max);
        for c in candidates {
            if kept.len() >= max {
                break;
            }
            if c.id == base {
                continue;
            }
            // A loop, not `all(closure)`: closures lose the target features (see `search`).
            let mut good = true;
            for &r in &kept {
                if self.score(c.id, r) > c.score {
                    good = false;
                    break;
                }
            }
            if good {
                kept.push(c.id);
            }
        }
        kept
    }

    /// Adds `q` to `e`'s list on layer `l`, shrinking it with the heuristic when full.
    #[inline(always)]
    fn link(&self, e: u32, q: u32, l: usize, scratch: &mut Vec<u32>) {
        let cap = self.capacity(l);
        self.lists.add(e, q, l, cap, scratch, |full| {
            let mut cands: Vec<Scored> = full
                .iter()
                .map(|&x| Scored::new(self.score(e, x), x))
                .collect();
            cands.sort_unstable_by(|a, b| b.cmp(a));
            self.select(e, &cands, cap)
        });
    }

    /// The finished layers.
    pub(super) fn into_layers(self) -> GraphLayers {
        let n = self.levels.len();
        let top = self.levels.iter().copied().max().unwrap_or(0) as usize;
        let mut layers = Vec::with_capacity(top + 1);
        for l in 0..=top {
            let (nodes, adj) = self.lists.layer(&self.levels, l);
            layers.push(Layer { nodes, adj });
        }
        let (entry, _) = self.entry.into_inner();
        GraphLayers {
            n: n as u32,
            entry,
            m: self.m as u32,
            m0: self.m0 as u32,
            layers,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `n` random unit vectors (seeded), row-major.
    pub(in crate::index) fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            out.extend(v.iter().map(|x| x / norm));
        }
        out
    }

    #[test]
    fn graph_respects_levels_and_capacities() {
        let (n, dim, m) = (3000, 16, 8);
        let data = unit_vectors(n, dim, 7);
        let v = VectorsView::new(&data, dim);
        let g = build_layers(v, BuildScore::Dot, m, 64, 1);
        let levels = draw_levels(n, m, 1);
        assert_eq!(levels, draw_levels(n, m, 1), "levels are seeded");
        assert_eq!(g.layers.len(), *levels.iter().max().unwrap() as usize + 1);
        assert_eq!(levels[g.entry as usize] as usize, g.layers.len() - 1);
        for (l, layer) in g.layers.iter().enumerate() {
            let cap = if l == 0 { 2 * m } else { m };
            for (&node, adj) in layer.nodes.iter().zip(&layer.adj) {
                assert!(levels[node as usize] as usize >= l);
                assert!(
                    adj.len() <= cap,
                    "layer {l} node {node}: {} > {cap}",
                    adj.len()
                );
                for &nb in adj {
                    assert_ne!(nb, node, "no self loops");
                    assert!(levels[nb as usize] as usize >= l, "neighbour on the layer");
                }
            }
        }
        // Every node but the first got linked on layer 0.
        let linked = g.layers[0].adj.iter().filter(|a| !a.is_empty()).count();
        assert_eq!(linked, n);
    }

    #[test]
    fn heuristic_keeps_identical_vectors_linked() {
        // 50 copies of one vector plus distinct ones: copies must not prune each other away.
        let dim = 4;
        let mut data = vec![];
        for _ in 0..50 {
            data.extend([1.0f32, 0.0, 0.0, 0.0]);
        }
        data.extend(unit_vectors(200, dim, 3));
        let v = VectorsView::new(&data, dim);
        let g = build_layers(v, BuildScore::Dot, 8, 32, 2);
        for copy in 0..50 {
            assert!(
                !g.layers[0].adj[copy].is_empty(),
                "copy {copy} has neighbours"
            );
        }
    }
}
