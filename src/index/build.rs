//! Building a segment's graph: validate, build the layers, make layer 0 reachable, serialise.
//!
//! Two builders ([`GraphBuilder`]): mmdb's own parallel insertion (`insert`, the default) and
//! hnsw_rs's, whose layers are extracted into a [`GraphLayers`]. mmdb's reaches hnswlib's recall at
//! hnswlib's build cost; hnsw_rs's graph loses recall as segments grow (see `insert` for numbers).
//! The hnsw_rs path stays for comparison (`benches/hnsw.rs`) and as a second opinion in tests.
//!
//! A second pass re-selecting every node's neighbours with the HNSW heuristic over its out- and
//! in-neighbours (hnsw_rs prunes overflowing lists by distance only, hnswlib by the heuristic) was
//! tried and measured on 20,000 clustered 128-d vectors: recall@10 at ef 10/16/32 went from
//! 0.922/0.980/0.999 (hnsw_rs's graph as is, searched by mmdb) to 0.834/0.928/0.988 (heuristic only)
//! or 0.912/0.973/0.999 (heuristic, free slots refilled), so it was dropped: at that size the graph
//! is not what costs hnsw_rs its recall, its one-hop upper-layer descent is (see `search`).
//!
//! With hnsw_rs, its distances are mmdb's own squared L2 kernel
//! ([`BuildDistance`]: runtime-dispatched SIMD, AVX-512 where the CPU has it, which hnsw_rs's
//! `simdeez` kernels do not use; and it cannot panic on finite input, unlike hnsw_rs's `DistDot`,
//! which asserts on vectors that are normalised only to within 2e-6), on "build vectors":
//! - cosine: the stored (normalised) vectors; L2 order equals cosine order on the unit sphere;
//! - L2: the vectors as they are;
//! - dot: each vector gets one extra coordinate `sqrt(C - |x|²)`, `C` the largest squared norm,
//!   which turns maximum inner product into nearest neighbour in L2 (Bachrach et al., 2014).

use std::panic::{AssertUnwindSafe, catch_unwind};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

use super::insert::BuildScore;
use super::layout::{GraphLayers, Layer, MAX_LAYERS};
use super::{VectorsView, connect, insert};
use crate::{Error, HnswParams, Metric, Result};

/// How far from 1 the norm of a cosine vector may be (they are normalised when stored).
const COSINE_NORM_TOLERANCE: f64 = 1e-3;
/// Largest accepted squared norm, so that no dot product or distance overflows to infinity.
const MAX_SQUARED_NORM: f64 = 1e30;

/// Checks every vector is finite, not huge, and for cosine normalised. Errors name the local id.
pub fn validate_vectors(vectors: VectorsView<'_>, metric: Metric) -> Result<()> {
    if vectors.dim() == 0 || !vectors.data().len().is_multiple_of(vectors.stride()) {
        return Err(Error::InvalidArgument(format!(
            "{} values do not form vectors of dimension {} ({} values apart)",
            vectors.data().len(),
            vectors.dim(),
            vectors.stride()
        )));
    }
    if vectors.len() >= u32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "{} vectors in one segment",
            vectors.len()
        )));
    }
    for i in 0..vectors.len() {
        let v = vectors.get(i);
        if let Some(j) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "vector {i}: component {j} is {}",
                v[j]
            )));
        }
        let sq: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
        if sq > MAX_SQUARED_NORM {
            return Err(Error::InvalidArgument(format!(
                "vector {i}: norm {:e} is too large",
                sq.sqrt()
            )));
        }
        if metric == Metric::Cosine && (sq.sqrt() - 1.0).abs() > COSINE_NORM_TOLERANCE {
            return Err(Error::InvalidArgument(format!(
                "vector {i}: norm {} but cosine vectors must be normalised",
                sq.sqrt()
            )));
        }
    }
    Ok(())
}

/// Which code builds the graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GraphBuilder {
    /// mmdb's parallel insertion (hnswlib's algorithm). The default.
    #[default]
    Mmdb,
    /// hnsw_rs's parallel insertion, layers copied out.
    HnswRs,
}

/// Builds the HNSW graph over `vectors` with mmdb's builder and returns its serialised form
/// (see `layout`).
pub fn build_graph(
    vectors: VectorsView<'_>,
    metric: Metric,
    params: &HnswParams,
) -> Result<Vec<u8>> {
    build_graph_with(vectors, metric, params, GraphBuilder::Mmdb)
}

/// [`build_graph`] with a chosen builder.
pub fn build_graph_with(
    vectors: VectorsView<'_>,
    metric: Metric,
    params: &HnswParams,
    builder: GraphBuilder,
) -> Result<Vec<u8>> {
    params.validate()?;
    if vectors.is_empty() {
        return Ok(GraphLayers::default().encode());
    }
    validate_vectors(vectors, metric)?;
    let build = BuildVectors::new(vectors, metric);
    let score = match metric {
        Metric::Cosine => BuildScore::Dot,
        Metric::L2 | Metric::Dot => BuildScore::NegL2,
    };
    let run = || {
        let v = build.view();
        let mut g = match builder {
            GraphBuilder::Mmdb => {
                insert::build_layers(v, score, params.m, params.ef_construction, LEVEL_SEED)
            }
            GraphBuilder::HnswRs => {
                let mut g = build_layers(v, params);
                if let Some(layer0) = g.layers.first_mut() {
                    connect::add_reverse_edges(&mut layer0.adj, 2 * params.m);
                }
                g
            }
        };
        let entry = g.entry;
        if let Some(layer0) = g.layers.first_mut() {
            connect::connect_layer0(&mut layer0.adj, entry, v);
        }
        g
    };
    let graph = catch_unwind(AssertUnwindSafe(run)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Error::InvalidArgument(format!(
            "HNSW build of {} vectors failed: {msg}",
            vectors.len()
        ))
    })?;
    Ok(graph.encode())
}

/// Seed of the node levels (the same for every segment: levels depend only on the node count).
const LEVEL_SEED: u64 = 0x6d6d_6462_4853_5721;

/// The vectors the builder sees (see the module doc): borrowed, or augmented for the dot metric.
struct BuildVectors<'a> {
    borrowed: VectorsView<'a>,
    owned: Vec<f32>,
}

impl<'a> BuildVectors<'a> {
    fn new(vectors: VectorsView<'a>, metric: Metric) -> BuildVectors<'a> {
        if metric != Metric::Dot {
            return BuildVectors {
                borrowed: vectors,
                owned: Vec::new(),
            };
        }
        let sq = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
        let c = (0..vectors.len())
            .map(|i| sq(vectors.get(i)))
            .fold(0.0, f64::max);
        let mut owned = Vec::with_capacity(vectors.len() * (vectors.dim() + 1));
        for i in 0..vectors.len() {
            let v = vectors.get(i);
            owned.extend_from_slice(v);
            owned.push((c - sq(v)).max(0.0).sqrt() as f32);
        }
        BuildVectors {
            borrowed: vectors,
            owned,
        }
    }

    fn view(&self) -> VectorsView<'_> {
        if self.owned.is_empty() {
            self.borrowed
        } else {
            VectorsView::new(&self.owned, self.borrowed.dim() + 1)
        }
    }
}

/// Squared L2 for hnsw_rs. Squaring keeps the order of distances, which is all HNSW insertion
/// compares (candidate lists and the neighbour heuristic's `d(e, r) < d(e, q)`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BuildDistance;

impl Distance<f32> for BuildDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        super::l2_sq(va, vb)
    }
}

/// Runs hnsw_rs and extracts its layers; may panic inside hnsw_rs (the caller catches it).
fn build_layers(vectors: VectorsView<'_>, params: &HnswParams) -> GraphLayers {
    let n = vectors.len();
    let (m, m0) = (params.m, 2 * params.m);
    let mut levels = vec![0u8; n];
    let mut lists: Vec<Vec<Vec<u32>>> = vec![Vec::new(); n];
    if n > 1 {
        let hnsw = Hnsw::<f32, BuildDistance>::new(
            m,
            n,
            MAX_LAYERS,
            params.ef_construction,
            BuildDistance,
        );
        // The first point alone: inserted in parallel with others, it may be left unlinked.
        hnsw.insert_slice((vectors.get(0), 0));
        let items: Vec<(&[f32], usize)> = (1..n).map(|i| (vectors.get(i), i)).collect();
        hnsw.parallel_insert_slice(&items);
        for p in hnsw.get_point_indexation() {
            let id = p.get_origin_id();
            let level = p.get_point_id().0;
            levels[id] = level;
            // hnsw_rs also records upper-layer "neighbours" of nodes that are not on that layer
            // (from its descent); only layers 0..=level are real.
            lists[id] = p
                .get_neighborhood_id()
                .into_iter()
                .take(level as usize + 1)
                .map(|layer| layer.iter().map(|nb| nb.get_origin_id() as u32).collect())
                .collect();
        }
    }
    let top = levels.iter().copied().max().unwrap_or(0) as usize;
    let mut layers = Vec::with_capacity(top + 1);
    for l in 0..=top {
        let nodes: Vec<u32> = (0..n as u32)
            .filter(|&i| levels[i as usize] as usize >= l)
            .collect();
        let adj = nodes
            .iter()
            .map(|&g| {
                let mut a: Vec<u32> = lists[g as usize].get(l).cloned().unwrap_or_default();
                a.retain(|&x| x != g && (x as usize) < n && levels[x as usize] as usize >= l);
                let mut seen = std::collections::HashSet::with_capacity(a.len());
                a.retain(|x| seen.insert(*x));
                a
            })
            .collect();
        layers.push(Layer { nodes, adj });
    }
    let entry = layers
        .last()
        .and_then(|l| l.nodes.first().copied())
        .unwrap_or(0);
    GraphLayers {
        n: n as u32,
        entry,
        m: m as u32,
        m0: m0 as u32,
        layers,
    }
}
