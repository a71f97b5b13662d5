//! A second pass over a layer built by hnsw_rs: re-select every node's neighbours with the HNSW
//! heuristic from the union of its out- and in-neighbours.
//!
//! Why: when a node's list overflows, hnsw_rs drops the farthest neighbour (pure distance), where
//! hnswlib re-runs the diversity heuristic. Lists then fill with near-duplicates from the same
//! cluster, long links disappear, and searches get stuck in the wrong region. Re-running the
//! heuristic over `out ∪ in` restores the diverse links; in-neighbours also make the graph closer to
//! symmetric, which helps reachability.

use hnsw_rs::anndists::dist::{DistL2, Distance};
use rayon::prelude::*;

use super::VectorsView;
use super::layout::Layer;

/// Re-selects the neighbours of every node of `layer` (global ids; `vectors` are the build vectors).
pub(super) fn refine_layer(layer: &mut Layer, vectors: VectorsView<'_>, max_degree: usize) {
    let mode = std::env::var("MMDB_REFINE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(2);
    if mode == 0 {
        return;
    }
    let count = layer.nodes.len();
    let pos = |g: u32| layer.nodes.binary_search(&g).ok();
    let mut reverse: Vec<Vec<u32>> = vec![Vec::new(); count];
    for (i, a) in layer.adj.iter().enumerate() {
        for &g in a {
            if let Some(p) = pos(g) {
                reverse[p].push(layer.nodes[i]);
            }
        }
    }
    let d = |a: u32, b: u32| DistL2.eval(vectors.get(a as usize), vectors.get(b as usize));
    let new_adj: Vec<Vec<u32>> = (0..count)
        .into_par_iter()
        .map(|i| {
            let u = layer.nodes[i];
            let mut cand: Vec<(f32, u32)> = layer.adj[i]
                .iter()
                .chain(&reverse[i])
                .map(|&c| (d(u, c), c))
                .collect();
            cand.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            cand.dedup_by_key(|c| c.1);
            select(&cand, max_degree, mode == 2, &d)
        })
        .collect();
    layer.adj = new_adj;
}

/// The HNSW neighbour heuristic (Malkov & Yashunin, alg. 4) over candidates sorted by distance:
/// keep `c` unless an already kept neighbour is closer to `c` than `c` is to the node. With `fill`,
/// free slots are then filled with the closest pruned candidates.
fn select(cand: &[(f32, u32)], max: usize, fill: bool, d: &impl Fn(u32, u32) -> f32) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(max);
    let mut pruned: Vec<u32> = Vec::new();
    for &(dc, c) in cand {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|&s| d(c, s) > dc) {
            kept.push(c);
        } else {
            pruned.push(c);
        }
    }
    if fill {
        let room = max - kept.len();
        kept.extend(pruned.into_iter().take(room));
    }
    kept
}
