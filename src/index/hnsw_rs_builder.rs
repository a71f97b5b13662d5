//! hnsw_rs as a second graph builder, for comparison in `benches/hnsw.rs` (hidden `__internals`
//! feature only; the library never calls it otherwise).

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

use super::VectorsView;
use super::layout::{GraphLayers, Layer, MAX_LAYERS};
use crate::HnswParams;

/// Squared L2 for hnsw_rs. Squaring keeps the order of distances, which is all HNSW insertion
/// compares (candidate lists and the neighbour heuristic's `d(e, r) < d(e, q)`).
#[derive(Debug, Clone, Copy, Default)]
struct BuildDistance;

impl Distance<f32> for BuildDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        super::l2_sq(va, vb)
    }
}

/// Runs hnsw_rs and extracts its layers; may panic inside hnsw_rs (the caller catches it).
pub(super) fn build_layers(vectors: VectorsView<'_>, params: &HnswParams) -> GraphLayers {
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
