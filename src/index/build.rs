//! Building a segment's graph: validate, build the layers, make layer 0 reachable, serialise.
//! A merged segment's graph can instead start from an earlier segment's ([`build_graph_from`]:
//! kept nodes keep their links, only new vectors are inserted; see `merge`).
//!
//! Two builders ([`GraphBuilder`]): mmdb's own parallel insertion (`insert`, the default) and,
//! with the hidden `__internals` feature only, hnsw_rs's (`hnsw_rs_builder.rs`), whose layers are
//! extracted into a [`GraphLayers`]. mmdb's reaches hnswlib's recall at
//! hnswlib's build cost; hnsw_rs's graph loses recall as segments grow (see `insert`;
//! measurements: docs/perf.md#graph-builders).
//! The hnsw_rs path stays for comparison (`benches/hnsw.rs`) and as a second opinion in tests.
//!
//! A second pass re-selecting every node's neighbours with the HNSW heuristic over its out- and
//! in-neighbours (hnsw_rs prunes overflowing lists by distance only, hnswlib by the heuristic) was
//! tried on 20,000 clustered 128-d vectors: searched by mmdb, hnsw_rs's graph as is kept the best
//! recall@10 at every ef tried, against the heuristic alone or with free slots refilled
//! (docs/perf.md#neighbour-re-selection-pass), so it was dropped: at that size the graph is not
//! what costs hnsw_rs its recall, its one-hop upper-layer descent is (see `search`).
//!
//! With hnsw_rs, its distances are mmdb's own squared L2 kernel
//! (`BuildDistance`: runtime-dispatched SIMD, AVX-512 where the CPU has it, which hnsw_rs's
//! `simdeez` kernels do not use; and it cannot panic on finite input, unlike hnsw_rs's `DistDot`,
//! which asserts on vectors that are normalised only to within 2e-6), on "build vectors":
//! - cosine: the stored (normalised) vectors; L2 order equals cosine order on the unit sphere;
//! - L2: the vectors as they are;
//! - dot: each vector gets one extra coordinate `sqrt(C - |x|²)`, `C` the largest squared norm,
//!   which turns maximum inner product into nearest neighbour in L2 (Bachrach et al., 2014).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::insert::BuildScore;
use super::layout::GraphLayers;
use super::{GraphView, VectorsView, connect, insert, merge};
use crate::{Error, HnswParams, Metric, Result};

/// How far from 1 the norm of a cosine vector may be (they are normalised when stored).
const COSINE_NORM_TOLERANCE: f64 = 1e-3;
/// Largest accepted squared norm, so that no dot product or distance overflows to infinity.
pub const MAX_SQUARED_NORM: f64 = 1e30;

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
    /// hnsw_rs's parallel insertion, layers copied out (only with the hidden `__internals`
    /// feature: the HNSW bench's comparison builder).
    #[cfg(feature = "__internals")]
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
    build_checked(vectors, metric, params, builder)
}

/// Builds the graph of `vectors` (every vector of the merged segment, in its local-id order),
/// reusing `base`: the serialised graph of an earlier segment whose node `i` is now vector
/// `base_map[i]` (`Some(local id in vectors)`) or was dropped (`None`, e.g. a deleted row).
///
/// Vectors no base node maps to are inserted with the same algorithm as [`build_graph`]. Kept
/// nodes keep their levels and links; links to dropped nodes are repaired (see `merge`). The
/// entry point stays the base's when it is kept, else it is the kept node of the highest level.
/// Falls back to [`build_graph`] when no base node is kept, and for [`Metric::Dot`]: its build
/// vectors get an extra coordinate that depends on the largest norm of the whole set (see
/// `BuildVectors`), so the base graph was built in another space than the merged one.
///
/// Errors as [`build_graph`], and [`Error::InvalidArgument`] unless `base_map` has one entry per
/// base node and its ids are distinct and below `vectors.len()`.
pub fn build_graph_from(
    vectors: VectorsView<'_>,
    metric: Metric,
    params: &HnswParams,
    base: &GraphView<'_>,
    base_map: &[Option<u32>],
) -> Result<Vec<u8>> {
    params.validate()?;
    if base_map.len() != base.len() {
        return Err(Error::InvalidArgument(format!(
            "{} base map entries for a graph of {} nodes",
            base_map.len(),
            base.len()
        )));
    }
    if !vectors.is_empty() {
        validate_vectors(vectors, metric)?;
    }
    let n = vectors.len();
    let mut seen = vec![false; n];
    let mut kept = 0usize;
    for (i, v) in base_map.iter().enumerate() {
        let Some(v) = *v else { continue };
        match seen.get_mut(v as usize) {
            None => {
                return Err(Error::InvalidArgument(format!(
                    "base node {i} maps to vector {v} of {n}"
                )));
            }
            Some(s) if *s => {
                return Err(Error::InvalidArgument(format!(
                    "base node {i} maps to vector {v}, as an earlier node does"
                )));
            }
            Some(s) => *s = true,
        }
        kept += 1;
    }
    if n == 0 {
        return Ok(GraphLayers::default().encode());
    }
    if kept == 0 || metric == Metric::Dot {
        return build_checked(vectors, metric, params, GraphBuilder::Mmdb);
    }
    let build = BuildVectors::new(vectors, metric);
    let score = build_score(metric);
    // Not LEVEL_SEED itself: a base built with it drew its levels from the same stream, so new
    // node `v` would repeat the level base node `v` had. Mixed with the count, still reproducible.
    let seed = LEVEL_SEED ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    finish(build.view(), || {
        let (m, efc) = (params.m, params.ef_construction);
        merge::merge_layers(build.view(), score, m, efc, base, base_map, seed)
    })
}

/// Builds validated, non-empty `vectors`.
fn build_checked(
    vectors: VectorsView<'_>,
    metric: Metric,
    params: &HnswParams,
    builder: GraphBuilder,
) -> Result<Vec<u8>> {
    let build = BuildVectors::new(vectors, metric);
    let score = build_score(metric);
    finish(build.view(), || {
        let v = build.view();
        match builder {
            GraphBuilder::Mmdb => {
                insert::build_layers(v, score, params.m, params.ef_construction, LEVEL_SEED)
            }
            #[cfg(feature = "__internals")]
            GraphBuilder::HnswRs => {
                let mut g = super::hnsw_rs_builder::build_layers(v, params);
                if let Some(layer0) = g.layers.first_mut() {
                    connect::add_reverse_edges(&mut layer0.adj, 2 * params.m);
                }
                g
            }
        }
    })
}

/// How the builder compares build vectors (see the module doc).
fn build_score(metric: Metric) -> BuildScore {
    match metric {
        Metric::Cosine => BuildScore::Dot,
        Metric::L2 | Metric::Dot => BuildScore::NegL2,
    }
}

/// Runs `layers` (a builder over the build vectors `v`), makes layer 0 reachable and serialises
/// the graph; a panic in either step becomes an error rather than unwinding into the caller.
fn finish(v: VectorsView<'_>, layers: impl FnOnce() -> GraphLayers) -> Result<Vec<u8>> {
    let run = || {
        let mut g = layers();
        let entry = g.entry;
        if let Some(layer0) = g.layers.first_mut() {
            connect::connect_layer0(&mut layer0.adj, entry, v);
        }
        g
    };
    let graph = catch_unwind(AssertUnwindSafe(run)).map_err(|p| {
        let msg = crate::error::panic_message(&*p);
        Error::InvalidArgument(format!("HNSW build of {} vectors failed: {msg}", v.len()))
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
