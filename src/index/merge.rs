//! The graph of a merged segment, built from an earlier segment's graph: its kept nodes keep their
//! levels and links, links to dropped nodes are repaired, and only the new vectors are inserted
//! (with `insert`'s algorithm). A merge that keeps most of a large segment then costs about the
//! insertion of the new vectors instead of a whole build.
//!
//! Repair (after FreshDiskANN's delete consolidation and hnswlib's `repairConnectionsForUpdate`):
//! on each layer where a kept node's list held a dropped node, the list keeps its kept neighbours
//! and takes stand-ins for the dropped ones from their own kept neighbours (one hop through each
//! dropped node), scored against the node: those the neighbour heuristic keeps first, then the
//! closest, until the list has its old length (see `refill` for why the kept neighbours are not
//! re-selected). A dropped node's neighbours are the natural stand-ins: they are what a search
//! went on to from it. A list longer than the layer's capacity (a base built with a larger m) is
//! re-selected by the heuristic from its kept neighbours and the stand-ins instead. Every
//! candidate is read from the earlier graph, so each node's repair depends on nothing another
//! thread writes: the repair runs in parallel (before the insertions) and its result does not
//! depend on thread timing.
//!
//! Levels: a kept node stays on the layers it was on, so the upper layers keep the earlier
//! graph's structure; new nodes draw theirs as a fresh build would (`insert::draw_levels`).

use rayon::prelude::*;

use super::insert::{BuildScore, Builder, draw_levels};
use super::layout::GraphLayers;
use super::{GraphView, Scored, VectorsView};

/// Builds the layers of `vectors` (the build vectors) from `base`, whose node `i` is now node
/// `base_map[i]` or was dropped. The caller checked that `base_map` has one entry per base node,
/// its ids are distinct and in range, and at least one is `Some`. `seed` fixes the new nodes'
/// levels.
pub(super) fn merge_layers(
    vectors: VectorsView<'_>,
    score: BuildScore,
    m: usize,
    ef_construction: usize,
    base: &GraphView<'_>,
    base_map: &[Option<u32>],
    seed: u64,
) -> GraphLayers {
    let n = vectors.len();
    // `origin[v]`: the base node that became node `v`, or `None` for a new node.
    let mut origin: Vec<Option<u32>> = vec![None; n];
    for (i, v) in base_map.iter().enumerate() {
        if let Some(v) = v {
            origin[*v as usize] = Some(i as u32);
        }
    }
    let mut levels = draw_levels(n, m, seed);
    for (v, o) in origin.iter().enumerate() {
        if o.is_some() {
            levels[v] = 0;
        }
    }
    // Upper layers list their nodes; a node's level is the highest layer that lists it.
    for l in 1..base.layers() {
        for local in 0..base.layer_len(l) as u32 {
            if let Some(v) = mapped(base_map, base.node_id(l, local)) {
                levels[v as usize] = l as u8;
            }
        }
    }
    let entry = mapped(base_map, base.entry()).unwrap_or_else(|| {
        // The highest kept node, the lowest id among equals.
        let kept = (0..n as u32).filter(|&v| origin[v as usize].is_some());
        kept.rev().max_by_key(|&v| levels[v as usize]).unwrap_or(0)
    });
    let b = Builder::new(vectors, score, m, ef_construction, levels, entry);
    (0..n as u32).into_par_iter().for_each(|v| {
        if let Some(i) = origin[v as usize] {
            carry_over(&b, base, base_map, v, i);
        }
    });
    let new: Vec<u32> = (0..n as u32)
        .filter(|&v| origin[v as usize].is_none())
        .collect();
    b.insert_all(new);
    b.into_layers()
}

/// The merged id of base node `g`, if it was kept.
fn mapped(base_map: &[Option<u32>], g: u32) -> Option<u32> {
    base_map.get(g as usize).copied().flatten()
}

/// The neighbours of the `local`-th node of base layer `l`, as base global ids.
fn base_list<'a>(base: &GraphView<'a>, l: usize, local: u32) -> impl Iterator<Item = u32> + 'a {
    let view = *base;
    base.neighbours(l, local)
        .map(move |nb| if l == 0 { nb } else { view.node_id(l, nb) })
}

/// Gives kept node `v` (base node `i`) its base lists in merged ids, repairing each list that
/// held a dropped node (or is longer than this build's capacity: `base` may have had another m).
fn carry_over(b: &Builder<'_>, base: &GraphView<'_>, base_map: &[Option<u32>], v: u32, i: u32) {
    let mut dropped: Vec<u32> = Vec::new();
    for l in 0..base.layers() {
        // Layers are nested: the first one without the node is above its level.
        let Some(local) = base.local_of(l, i) else {
            break;
        };
        let cap = b.capacity(l);
        let mut list: Vec<u32> = Vec::with_capacity(cap);
        dropped.clear();
        for g in base_list(base, l, local) {
            match mapped(base_map, g) {
                Some(u) => list.push(u),
                None => dropped.push(g),
            }
        }
        if dropped.is_empty() && list.len() <= cap {
            b.set_list(v, l, &list);
            continue;
        }
        // The kept neighbours of the dropped ones (one hop through each).
        let via_dropped = dropped
            .iter()
            .filter_map(|&d| base.local_of(l, d))
            .flat_map(|d| base_list(base, l, d))
            .filter_map(|g| mapped(base_map, g));
        let repaired = if list.len() <= cap {
            let target = (list.len() + dropped.len()).min(cap);
            let mut stand_ins: Vec<Scored> = via_dropped
                .filter(|&u| u != v && !list.contains(&u))
                .map(|u| Scored::new(b.score(v, u), u))
                .collect();
            best_first(&mut stand_ins);
            refill(b, list, &stand_ins, target)
        } else {
            // A base with a larger m: re-select among everything, as `link` shrinks a full list.
            let mut cands: Vec<Scored> = list
                .iter()
                .copied()
                .chain(via_dropped)
                .filter(|&u| u != v)
                .map(|u| Scored::new(b.score(v, u), u))
                .collect();
            best_first(&mut cands);
            b.select(v, &cands, cap)
        };
        b.set_list(v, l, &repaired);
    }
}

/// Sorts candidates best first and drops repeats (a node reached twice has the same score both
/// times, so its copies end up side by side).
fn best_first(cands: &mut Vec<Scored>) {
    cands.sort_unstable_by(|x, y| y.cmp(x));
    cands.dedup_by_key(|c| c.id);
}

/// `list` (a node's kept neighbours, left as they are) topped up to `target` entries from
/// `stand_ins` (best first, none already in `list`): first those the neighbour heuristic keeps
/// against the list so far, then the best of the rest.
///
/// Why not the heuristic over the kept neighbours and the stand-ins together, as when a list
/// overflows: many entries of a list are reverse links, added while it had room without the
/// heuristic (see `insert`'s `link`), and the heuristic drops most of them. On 16,000 clustered
/// 128-d vectors with 20% dropped and 8,000 added (three seeds, 1,000 queries each), lists
/// re-selected that way lost a sixth of their edges (layer 0: 14.0 a node on average, 16.9 in a
/// fresh build) and the merged graph recalled 0.007 to 0.010 less at ef 10 than a fresh build;
/// topped up, it matches it at ef 32 and above and does better below
/// (docs/perf.md#merging-segment-graphs).
fn refill(b: &Builder<'_>, mut list: Vec<u32>, stand_ins: &[Scored], target: usize) -> Vec<u32> {
    let mut taken = vec![false; stand_ins.len()];
    for (c, taken) in stand_ins.iter().zip(&mut taken) {
        if list.len() >= target {
            return list;
        }
        // A loop, not `all(closure)`, as in `select`.
        let mut good = true;
        for &r in &list {
            if b.score(c.id, r) > c.score {
                good = false;
                break;
            }
        }
        if good {
            list.push(c.id);
            *taken = true;
        }
    }
    let rest = stand_ins.iter().zip(&taken).filter(|(_, t)| !**t);
    for (c, _) in rest {
        if list.len() >= target {
            break;
        }
        list.push(c.id);
    }
    list
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::index::build_graph;
    use crate::index::insert::tests::unit_vectors;
    use crate::{HnswParams, Metric};

    /// A base graph of `n` vectors with `m`, and a map dropping every node `drop` says to,
    /// the kept ones shuffled to new ids `0..kept` (seeded).
    fn base_and_map(
        data: &[f32],
        dim: usize,
        m: usize,
        drop: impl Fn(u32) -> bool,
    ) -> (Vec<u8>, Vec<Option<u32>>) {
        let params = HnswParams {
            m,
            ..HnswParams::default()
        };
        let bytes = build_graph(VectorsView::new(data, dim), Metric::Cosine, &params).unwrap();
        let n = data.len() / dim;
        let kept: Vec<u32> = (0..n as u32).filter(|&i| !drop(i)).collect();
        let mut ids: Vec<u32> = (0..kept.len() as u32).collect();
        ids.shuffle(&mut ChaCha8Rng::seed_from_u64(5));
        let mut map = vec![None; n];
        for (&i, &v) in kept.iter().zip(&ids) {
            map[i as usize] = Some(v);
        }
        (bytes, map)
    }

    /// The merged vectors: base vector `i` at `map[i]`, then `extra`.
    fn merged_vectors(data: &[f32], dim: usize, map: &[Option<u32>], extra: &[f32]) -> Vec<f32> {
        let kept = map.iter().flatten().count();
        let mut out = vec![0f32; kept * dim];
        for (i, v) in map.iter().enumerate() {
            if let Some(v) = v {
                let v = *v as usize;
                out[v * dim..(v + 1) * dim].copy_from_slice(&data[i * dim..(i + 1) * dim]);
            }
        }
        out.extend_from_slice(extra);
        out
    }

    /// Level of each base node.
    fn base_levels(g: &GraphView<'_>) -> Vec<usize> {
        let mut levels = vec![0; g.len()];
        for l in 1..g.layers() {
            for local in 0..g.layer_len(l) as u32 {
                levels[g.node_id(l, local) as usize] = l;
            }
        }
        levels
    }

    #[test]
    fn repaired_lists_come_from_the_base_and_fit() {
        let (n, dim) = (2000, 16);
        let data = unit_vectors(n, dim, 1);
        // The base has m = 12, the merge m = 8: full base lists must shrink too.
        let (bytes, map) = base_and_map(&data, dim, 12, |i| i % 4 == 1);
        let base = GraphView::parse(&bytes, Path::new("base")).unwrap();
        let levels = base_levels(&base);
        let merged = merged_vectors(&data, dim, &map, &[]);
        let v = VectorsView::new(&merged, dim);
        let g = merge_layers(v, BuildScore::Dot, 8, 64, &base, &map, 3);
        let mut origin = vec![0u32; v.len()];
        for (i, m) in map.iter().enumerate() {
            if let Some(m) = m {
                origin[*m as usize] = i as u32;
            }
        }
        assert_eq!(g.entry, map[base.entry() as usize].unwrap(), "kept entry");
        // Lists longer than the merge's capacity, re-selected.
        let mut repaired = 0;
        assert_eq!(g.layers.len(), base.layers());
        for (l, layer) in g.layers.iter().enumerate() {
            let cap = if l == 0 { 16 } else { 8 };
            // The base lists of `i` and of its dropped neighbours, as base ids.
            let list = |i: u32| -> Vec<u32> {
                let local = base.local_of(l, i).unwrap();
                base_list(&base, l, local).collect()
            };
            for (&node, adj) in layer.nodes.iter().zip(&layer.adj) {
                let i = origin[node as usize];
                assert!(levels[i as usize] >= l, "kept level");
                assert!(adj.len() <= cap, "layer {l}: {} > {cap}", adj.len());
                let direct = list(i);
                let reach: Vec<u32> = direct
                    .iter()
                    .filter(|&&d| map[d as usize].is_none())
                    .flat_map(|&d| list(d))
                    .chain(direct.iter().copied())
                    .collect();
                for &nb in adj {
                    assert_ne!(nb, node, "no self loops");
                    let o = origin[nb as usize];
                    assert!(reach.contains(&o), "layer {l}: {i} -> {o} is no base path");
                }
                let kept: Vec<u32> = direct.iter().filter_map(|&d| map[d as usize]).collect();
                if kept.len() == direct.len() && direct.len() <= cap {
                    assert_eq!(adj, &kept, "an intact list is kept as is");
                } else if direct.len() <= cap {
                    assert_eq!(adj[..kept.len()], kept, "kept neighbours stay");
                    assert!(adj.len() <= direct.len(), "topped up to the old length");
                } else {
                    repaired += 1;
                }
            }
            let on_layer = origin.iter().filter(|&&i| levels[i as usize] >= l).count();
            assert_eq!(layer.nodes.len(), on_layer, "layer {l} keeps its nodes");
        }
        assert!(repaired > 0, "some base lists were over the capacity");
    }

    #[test]
    fn a_dropped_entry_moves_to_the_highest_kept_node() {
        let (n, dim) = (1500, 8);
        let data = unit_vectors(n, dim, 2);
        let params = HnswParams::default();
        let bytes = build_graph(VectorsView::new(&data, dim), Metric::Cosine, &params).unwrap();
        let base = GraphView::parse(&bytes, Path::new("base")).unwrap();
        let levels = base_levels(&base);
        let entry = base.entry();
        // Identity map without the entry.
        let map: Vec<Option<u32>> = (0..n as u32)
            .map(|i| (i != entry).then_some(i - u32::from(i > entry)))
            .collect();
        let merged = merged_vectors(&data, dim, &map, &[]);
        let v = VectorsView::new(&merged, dim);
        let g = merge_layers(v, BuildScore::Dot, 16, 64, &base, &map, 3);
        let top = (0..n)
            .filter(|&i| i != entry as usize)
            .map(|i| levels[i])
            .max();
        let want = (0..n)
            .find(|&i| i != entry as usize && Some(levels[i]) == top)
            .unwrap();
        assert_eq!(g.entry, map[want].unwrap());
        assert_eq!(g.layers.len(), top.unwrap() + 1);
    }
}
