//! Build + search through the public contract: edge cases and small-scale recall for every metric.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::{Error, HnswParams, Metric};

/// `n` clustered vectors of dimension `dim` (normalised when `unit`).
fn clustered(n: usize, dim: usize, unit: bool, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centers[i % centers.len()];
        let mut v: Vec<f32> = c
            .iter()
            .map(|x| x + rng.random_range(-0.3f32..0.3))
            .collect();
        if unit {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
        }
        out.extend(v);
    }
    out
}

fn build_and_parse(data: &[f32], dim: usize, metric: Metric) -> Vec<u8> {
    let bytes = build_graph(VectorsView::new(data, dim), metric, &HnswParams::default()).unwrap();
    GraphView::parse(&bytes, Path::new("g")).unwrap();
    bytes
}

#[test]
fn empty_single_and_pair() {
    for n in [0usize, 1, 2] {
        let data = clustered(n, 4, true, 1);
        let v = VectorsView::new(&data, 4);
        let bytes = build_and_parse(&data, 4, Metric::Cosine);
        let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
        assert_eq!(g.len(), n);
        let q = [0.5, 0.5, 0.5, 0.5];
        let hits = search_graph(&g, v, Metric::Cosine, &q, 10, 64, None);
        assert_eq!(hits, search_exact(v, Metric::Cosine, &q, 10, None), "n={n}");
        assert_eq!(hits.len(), n, "k > n returns all n");
        assert!(search_graph(&g, v, Metric::Cosine, &q, 0, 64, None).is_empty());
    }
}

#[test]
fn duplicates_are_all_found() {
    let one = [0.6f32, 0.8, 0.0];
    let data: Vec<f32> = (0..300).flat_map(|_| one).collect();
    let v = VectorsView::new(&data, 3);
    let bytes = build_and_parse(&data, 3, Metric::Cosine);
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let hits = search_graph(&g, v, Metric::Cosine, &one, 20, 64, None);
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| (h.1 - 1.0).abs() < 1e-5));
    // hnsw_rs's heuristic keeps one edge per duplicate; every node must still be reachable.
    assert_eq!(reachable_from_entry(&g), 300);
}

fn recall(metric: Metric, unit: bool) -> f64 {
    let (n, dim) = (1500, 16);
    let data = clustered(n, dim, unit, 7);
    let v = VectorsView::new(&data, dim);
    // One insertion thread: the edges of a parallel build depend on thread timing, and on a
    // loaded machine the dot graph once fell below the bound. Built alone, the graph is the same
    // on every run; the parallel build's recall is checked at scale in `recall_tests.rs`.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let bytes = pool.install(|| build_and_parse(&data, dim, metric));
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let queries = clustered(30, dim, unit, 8);
    let mut found = 0;
    for q in queries.chunks(dim) {
        let truth: Vec<u32> = search_exact(v, metric, q, 10, None)
            .iter()
            .map(|h| h.0)
            .collect();
        let got = search_graph(&g, v, metric, q, 10, 64, None);
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
        found += got.iter().filter(|h| truth.contains(&h.0)).count();
    }
    found as f64 / 300.0
}

#[test]
fn small_recall_for_every_metric() {
    assert!(recall(Metric::Cosine, true) >= 0.95);
    assert!(recall(Metric::L2, false) >= 0.95);
    assert!(recall(Metric::Dot, false) >= 0.95);
}

#[test]
fn filtered_search_returns_only_matching_rows() {
    let (n, dim) = (1000, 8);
    let data = clustered(n, dim, true, 3);
    let v = VectorsView::new(&data, dim);
    let bytes = build_and_parse(&data, dim, Metric::Cosine);
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let keep = |i: u32| i % 10 == 3;
    let q = &data[..dim];
    let hits = search_graph(&g, v, Metric::Cosine, q, 10, 64, Some(&keep));
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| keep(h.0)));
    let none = |_: u32| false;
    assert!(search_graph(&g, v, Metric::Cosine, q, 10, 64, Some(&none)).is_empty());
}

#[test]
fn bad_vectors_are_refused_before_hnsw_rs() {
    let p = HnswParams::default();
    let nan = [1.0, f32::NAN, 0.0, 1.0];
    let err = build_graph(VectorsView::new(&nan, 2), Metric::L2, &p).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("vector 0")),
        "{err}"
    );
    let long = [1.0, 0.0, 3.0, 4.0];
    let err = build_graph(VectorsView::new(&long, 2), Metric::Cosine, &p).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("vector 1")),
        "{err}"
    );
    let ragged = [1.0, 0.0, 3.0];
    assert!(build_graph(VectorsView::new(&ragged, 2), Metric::L2, &p).is_err());
    let bad_m = HnswParams { m: 1000, ..p };
    assert!(build_graph(VectorsView::new(&long, 2), Metric::L2, &bad_m).is_err());
    // Dot and L2 accept unnormalised vectors.
    build_graph(VectorsView::new(&long, 2), Metric::Dot, &p).unwrap();
}

#[test]
fn graph_over_wrong_vectors_falls_back_to_exact() {
    let data = clustered(50, 4, true, 5);
    let bytes = build_and_parse(&data, 4, Metric::Cosine);
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let fewer = VectorsView::new(&data[..40 * 4], 4);
    let hits = search_graph(&g, fewer, Metric::Cosine, &data[..4], 5, 64, None);
    assert_eq!(
        hits,
        search_exact(fewer, Metric::Cosine, &data[..4], 5, None)
    );
}

/// Nodes reachable on layer 0 from the entry point.
fn reachable_from_entry(g: &GraphView<'_>) -> usize {
    let mut seen = vec![false; g.len()];
    let mut stack = vec![g.entry()];
    seen[g.entry() as usize] = true;
    while let Some(u) = stack.pop() {
        for v in g.neighbours(0, u) {
            if !std::mem::replace(&mut seen[v as usize], true) {
                stack.push(v);
            }
        }
    }
    seen.iter().filter(|&&x| x).count()
}

#[test]
fn padded_vectors_search_like_packed_ones() {
    let (n, dim) = (600, 20);
    let data = clustered(n, dim, true, 11);
    let packed = VectorsView::new(&data, dim);
    let stride = dim + 16;
    let padded: Vec<f32> = data
        .chunks(dim)
        .flat_map(|v| v.iter().copied().chain([9.0; 16]))
        .collect();
    let strided = VectorsView::strided(&padded, dim, stride);
    assert_eq!((strided.len(), strided.get(599)), (n, packed.get(599)));
    let bytes = build_and_parse(&data, dim, Metric::Cosine);
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let strided_bytes = build_graph(strided, Metric::Cosine, &HnswParams::default()).unwrap();
    assert_eq!(
        GraphView::parse(&strided_bytes, Path::new("g"))
            .unwrap()
            .len(),
        n
    );
    // The padding (9s here, zeros in files) is never read as part of a vector.
    for q in clustered(10, dim, true, 12).chunks(dim) {
        for metric in [Metric::Cosine, Metric::L2] {
            assert_eq!(
                search_graph(&g, strided, metric, q, 10, 32, None),
                search_graph(&g, packed, metric, q, 10, 32, None)
            );
            assert_eq!(
                search_exact(strided, metric, q, 10, None),
                search_exact(packed, metric, q, 10, None)
            );
        }
    }
}

#[test]
fn padding_is_one_cache_line_for_whole_kib_vectors_from_2_kib() {
    assert_eq!(padded_stride(512), 528);
    assert_eq!(padded_stride(768), 784);
    assert_eq!(padded_stride(1024), 1040);
    for dim in [0, 1, 3, 128, 256, 384, 500, 640] {
        assert_eq!(padded_stride(dim), dim, "dim {dim}");
    }
}

/// Mostly equal vectors whose tie keys are a permutation of their positions (as in a segment,
/// where vectors sit in graph order and keys are row positions).
#[test]
fn graph_ranks_equal_scores_by_tie_key_and_k_is_a_prefix() {
    let dirs = [[0.6f32, 0.8, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    let n = 300;
    let data: Vec<f32> = (0..n).flat_map(|i| dirs[i % 3]).collect();
    let keys: Vec<u32> = (0..n as u32).map(|i| i * 7 % n as u32).collect();
    let bytes = build_and_parse(&data, 3, Metric::Cosine);
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let v = VectorsView::new(&data, 3).with_ties(&keys);
    let odd = |i: u32| keys[i as usize] % 2 == 1;
    let ef = 32;
    for (j, q) in dirs.into_iter().enumerate() {
        for filter in [None, Some(&odd as LocalFilter<'_>)] {
            let full = search_graph(&g, v, Metric::Cosine, &q, ef, ef, filter);
            assert_eq!(full.len(), ef);
            for w in full.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert!(
                    a.1 > b.1 || (a.1 == b.1 && keys[a.0 as usize] < keys[b.0 as usize]),
                    "{a:?} before {b:?}"
                );
            }
            for k in 1..ef {
                let top = search_graph(&g, v, Metric::Cosine, &q, k, ef, filter);
                assert_eq!(top, full[..k], "k={k}");
            }
            // The exact answer: the (matching) duplicates of `q` with the lowest keys.
            let exact: Vec<u32> = search_exact(v, Metric::Cosine, &q, ef, filter)
                .iter()
                .map(|h| keys[h.0 as usize])
                .collect();
            let mut want: Vec<u32> = (0..n as u32)
                .filter(|&i| i as usize % 3 == j && filter.is_none_or(|f| f(i)))
                .map(|i| keys[i as usize])
                .collect();
            want.sort_unstable();
            want.truncate(ef);
            assert_eq!(exact, want);
        }
    }
}

#[test]
fn a_huge_k_or_ef_returns_every_vector() {
    let data = clustered(100, 4, true, 9);
    let bytes = build_and_parse(&data, 4, Metric::Cosine);
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    let v = VectorsView::new(&data, 4);
    let q = &data[..4];
    for (k, ef) in [(usize::MAX, 64), (1 << 46, 16), (10, usize::MAX)] {
        let hits = search_graph(&g, v, Metric::Cosine, q, k, ef, None);
        assert_eq!(hits.len(), k.min(100), "k={k} ef={ef}");
        assert_eq!(hits, search_exact(v, Metric::Cosine, q, k, None));
    }
}

/// A base graph over the first `n_base` of `data`, a map keeping the nodes `keep` says to
/// (shuffled to new ids), and the merged vectors: the kept ones at their new ids, then the rest
/// of `data`.
fn merge_case(
    data: &[f32],
    dim: usize,
    n_base: usize,
    metric: Metric,
    keep: impl Fn(u32) -> bool,
) -> (Vec<u8>, Vec<Option<u32>>, Vec<f32>) {
    let base = &data[..n_base * dim];
    let bytes = build_graph(VectorsView::new(base, dim), metric, &HnswParams::default()).unwrap();
    let kept: Vec<u32> = (0..n_base as u32).filter(|&i| keep(i)).collect();
    let mut ids: Vec<u32> = (0..kept.len() as u32).collect();
    rand::seq::SliceRandom::shuffle(&mut ids[..], &mut ChaCha8Rng::seed_from_u64(9));
    let mut map = vec![None; n_base];
    let mut merged = vec![0f32; kept.len() * dim];
    for (&i, &v) in kept.iter().zip(&ids) {
        map[i as usize] = Some(v);
        let (i, v) = (i as usize, v as usize);
        merged[v * dim..(v + 1) * dim].copy_from_slice(&base[i * dim..(i + 1) * dim]);
    }
    merged.extend_from_slice(&data[n_base * dim..]);
    (bytes, map, merged)
}

/// Layers each node is on (its level), from a parsed graph.
fn levels_of(g: &GraphView<'_>) -> Vec<usize> {
    let mut levels = vec![0; g.len()];
    for l in 1..g.layers() {
        for local in 0..g.layer_len(l) as u32 {
            levels[g.node_id(l, local) as usize] = l;
        }
    }
    levels
}

#[test]
fn a_merged_graph_keeps_levels_and_reaches_every_node() {
    let (dim, n_base, n_new) = (16, 2000, 1000);
    let data = clustered(n_base + n_new, dim, true, 21);
    let keep = |i: u32| !i.wrapping_mul(2_654_435_761).is_multiple_of(5);
    let (base_bytes, map, merged) = merge_case(&data, dim, n_base, Metric::Cosine, keep);
    let base = GraphView::parse(&base_bytes, Path::new("base")).unwrap();
    let v = VectorsView::new(&merged, dim);
    let p = HnswParams::default();
    let bytes = build_graph_from(v, Metric::Cosine, &p, &base, &map).unwrap();
    let g = GraphView::parse(&bytes, Path::new("merged")).unwrap();
    assert_eq!(g.len(), v.len());
    assert_eq!(
        reachable_from_entry(&g),
        g.len(),
        "layer 0 connected from the entry"
    );

    let (base_levels, levels) = (levels_of(&base), levels_of(&g));
    for (i, m) in map.iter().enumerate() {
        if let Some(m) = m {
            assert_eq!(
                levels[*m as usize], base_levels[i],
                "base node {i} keeps its level"
            );
        }
    }
    // (The dropped entry's case: `merge::tests`.)
    if let Some(base_entry) = map[base.entry() as usize] {
        assert!(
            g.entry() == base_entry || g.layers() > base.layers(),
            "entry kept"
        );
    }
    for l in 0..g.layers() {
        for local in 0..g.layer_len(l) as u32 {
            let node = g.node_id(l, local);
            let nbs: Vec<u32> = g.neighbours(l, local).collect();
            assert!(
                !nbs.contains(&(if l == 0 { node } else { local })),
                "no self loops"
            );
            // Layer 0 may gain an edge or two from `connect_layer0`, past the capacity.
            let cap = if l == 0 { 2 * p.m + 2 } else { p.m };
            assert!(
                nbs.len() <= cap,
                "layer {l} node {node}: {} edges",
                nbs.len()
            );
        }
    }
    // A search for a vector finds itself (nearly always: HNSW is approximate, and the edges
    // depend on thread timing).
    let (mut tried, mut missed) = (0, Vec::new());
    for (i, q) in merged.chunks(dim).enumerate().step_by(7) {
        let hit = search_graph(&g, v, Metric::Cosine, q, 1, 64, None);
        tried += 1;
        if (hit[0].1 - 1.0).abs() >= 1e-5 {
            missed.push(i);
        }
    }
    assert!(
        missed.len() * 100 <= tried,
        "{missed:?} of {tried} not found"
    );
}

#[test]
fn merging_with_nothing_kept_builds_from_scratch() {
    let dim = 8;
    let data = clustered(900, dim, true, 22);
    let (base_bytes, map, merged) = merge_case(&data, dim, 600, Metric::Cosine, |_| false);
    let base = GraphView::parse(&base_bytes, Path::new("base")).unwrap();
    assert!(map.iter().all(Option::is_none));
    let v = VectorsView::new(&merged, dim);
    assert_eq!(v.len(), 300);
    let p = HnswParams::default();
    // One thread: the same levels and insertion order give the same edges.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (merged_bytes, scratch) = pool.install(|| {
        (
            build_graph_from(v, Metric::Cosine, &p, &base, &map).unwrap(),
            build_graph(v, Metric::Cosine, &p).unwrap(),
        )
    });
    assert_eq!(merged_bytes, scratch);
    // Nothing kept and nothing new: the empty graph.
    let none = VectorsView::new(&[], dim);
    let empty = build_graph_from(none, Metric::Cosine, &p, &base, &map).unwrap();
    assert_eq!(empty, build_graph(none, Metric::Cosine, &p).unwrap());
    assert!(GraphView::parse(&empty, Path::new("g")).unwrap().is_empty());
}

#[test]
fn dot_merges_build_from_scratch() {
    let dim = 8;
    let data = clustered(900, dim, false, 23);
    let (base_bytes, map, merged) = merge_case(&data, dim, 600, Metric::Dot, |i| i % 3 != 0);
    let base = GraphView::parse(&base_bytes, Path::new("base")).unwrap();
    let v = VectorsView::new(&merged, dim);
    let p = HnswParams::default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (merged_bytes, scratch) = pool.install(|| {
        (
            build_graph_from(v, Metric::Dot, &p, &base, &map).unwrap(),
            build_graph(v, Metric::Dot, &p).unwrap(),
        )
    });
    assert_eq!(merged_bytes, scratch);
    // L2 reuses the graph: not the from-scratch one (the kept nodes keep the base's levels).
    let (l2_bytes, map, merged) = merge_case(&data, dim, 600, Metric::L2, |i| i % 3 != 0);
    let base = GraphView::parse(&l2_bytes, Path::new("base")).unwrap();
    let v = VectorsView::new(&merged, dim);
    let bytes = build_graph_from(v, Metric::L2, &p, &base, &map).unwrap();
    let g = GraphView::parse(&bytes, Path::new("g")).unwrap();
    assert_eq!(reachable_from_entry(&g), g.len());
    let (base_levels, levels) = (levels_of(&base), levels_of(&g));
    for (i, m) in map.iter().enumerate() {
        if let Some(m) = m {
            assert_eq!(levels[*m as usize], base_levels[i]);
        }
    }
}

#[test]
fn bad_base_maps_are_refused() {
    let dim = 4;
    let data = clustered(60, dim, true, 24);
    let (base_bytes, map, merged) = merge_case(&data, dim, 50, Metric::Cosine, |i| i % 2 == 0);
    let base = GraphView::parse(&base_bytes, Path::new("base")).unwrap();
    let v = VectorsView::new(&merged, dim);
    let p = HnswParams::default();
    let refused = |map: &[Option<u32>], v: VectorsView<'_>| {
        let err = build_graph_from(v, Metric::Cosine, &p, &base, map).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    };
    refused(&map[1..], v);
    let mut longer = map.clone();
    longer.push(None);
    refused(&longer, v);
    let mut twice = map.clone();
    twice[1] = map[0];
    refused(&twice, v);
    let mut past = map.clone();
    past[1] = Some(v.len() as u32);
    refused(&past, v);
    refused(&map, VectorsView::new(&[], dim));
    let bad_m = HnswParams { m: 1000, ..p };
    assert!(build_graph_from(v, Metric::Cosine, &bad_m, &base, &map).is_err());
    let nan = [f32::NAN; 4];
    let mut with_nan = merged.clone();
    with_nan.extend(nan);
    let err = build_graph_from(
        VectorsView::new(&with_nan, dim),
        Metric::Cosine,
        &p,
        &base,
        &map,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("vector 35")),
        "{err}"
    );
    build_graph_from(v, Metric::Cosine, &p, &base, &map).unwrap();
}
