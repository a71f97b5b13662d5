//! HNSW recall against the exact index: 20,000 clustered 128-d unit vectors (a unit test: the
//! index is internal).
//!
//! The data generator is the one of `benches/hnsw.rs`: `k = sqrt(n)` centres drawn uniformly on the
//! unit sphere, each vector a random centre plus Gaussian noise of total norm ~`SPREAD`,
//! normalised; queries are fresh draws from the same mixture (seeded ChaCha8).

use std::path::Path;
use std::time::Instant;

use super::{GraphView, VectorsView, build_graph, search_exact, search_graph};
use crate::{HnswParams, Metric};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SPREAD: f32 = 0.6;

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; 1 - u keeps the log finite.
    let (u, v): (f32, f32) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

/// `(base, queries)` as flat row-major arrays.
fn clustered(n: usize, nq: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = ((n as f64).sqrt() as usize).max(1);
    let mut centres = vec![0f32; k * dim];
    for c in centres.chunks_mut(dim) {
        c.iter_mut().for_each(|x| *x = gaussian(&mut rng));
        normalise(c);
    }
    let noise = SPREAD / (dim as f32).sqrt();
    let draw = |count: usize, rng: &mut ChaCha8Rng| {
        let mut out = vec![0f32; count * dim];
        for v in out.chunks_mut(dim) {
            let c = rng.random_range(0..k);
            for (x, cx) in v.iter_mut().zip(&centres[c * dim..(c + 1) * dim]) {
                *x = cx + noise * gaussian(rng);
            }
            normalise(v);
        }
        out
    };
    let base = draw(n, &mut rng);
    let queries = draw(nq, &mut rng);
    (base, queries)
}

type Filter<'a> = Option<&'a (dyn Fn(u32) -> bool + Sync)>;

/// The exact top-10 ids of every query.
fn truth(v: VectorsView<'_>, queries: &[f32], filter: Filter<'_>) -> Vec<Vec<u32>> {
    let top = |q: &[f32]| {
        search_exact(v, Metric::Cosine, q, 10, filter)
            .iter()
            .map(|h| h.0)
            .collect()
    };
    queries.chunks(v.dim()).map(top).collect()
}

/// Mean recall@10 of graph search and the number of queries that returned fewer than 10 rows.
fn recall(
    graph: &GraphView<'_>,
    v: VectorsView<'_>,
    queries: &[f32],
    truth: &[Vec<u32>],
    ef: usize,
    filter: Filter<'_>,
) -> (f64, usize) {
    let (mut found, mut short) = (0usize, 0usize);
    for (q, t) in queries.chunks(v.dim()).zip(truth) {
        let got = search_graph(graph, v, Metric::Cosine, q, 10, ef, filter);
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
        short += usize::from(got.len() < 10);
        found += got.iter().filter(|h| t.contains(&h.0)).count();
    }
    (found as f64 / (truth.len() * 10) as f64, short)
}

#[test]
fn recall_at_default_ef_and_with_a_1_percent_filter() {
    let (n, dim) = (20_000, 128);
    let (base, queries) = clustered(n, 100, dim, 42);
    let v = VectorsView::new(&base, dim);
    // The default M and ef_search; ef_construction halved so the debug-build test stays short
    // (the build dominates: mmdb's own code runs unoptimised in test builds).
    let params = HnswParams {
        ef_construction: 100,
        ..HnswParams::default()
    };
    let t = Instant::now();
    let bytes = build_graph(v, Metric::Cosine, &params).unwrap();
    eprintln!("build: {:?}", t.elapsed());
    let graph = GraphView::parse(&bytes, Path::new("recall.hnsw")).unwrap();

    let t = Instant::now();
    let exact = truth(v, &queries, None);
    eprintln!("exact: {:?}", t.elapsed());
    for ef in [10, 16, 32] {
        eprintln!(
            "recall@10 at ef {ef}: {:.4}",
            recall(&graph, v, &queries, &exact, ef, None).0
        );
    }
    let t = Instant::now();
    let (r, short) = recall(&graph, v, &queries, &exact, params.ef_search, None);
    eprintln!(
        "recall@10 at ef {}: {r:.4} ({:?})",
        params.ef_search,
        t.elapsed()
    );
    assert_eq!(short, 0);
    assert!(r >= 0.95, "recall@10 {r}");

    // 1% of rows, spread over all clusters.
    let one_percent = |i: u32| i.wrapping_mul(2_654_435_761).is_multiple_of(100);
    let matching = (0..n as u32).filter(|&i| one_percent(i)).count();
    assert!((150..=250).contains(&matching), "{matching} rows match");
    let t = Instant::now();
    let fq = &queries[..50 * dim];
    let exact = truth(v, fq, Some(&one_percent));
    let (r, short) = recall(&graph, v, fq, &exact, params.ef_search, Some(&one_percent));
    eprintln!("filtered 1% recall@10: {r:.4} ({:?})", t.elapsed());
    assert_eq!(
        short, 0,
        "a filtered search returns k rows when k rows match"
    );
    assert!(r >= 0.95, "filtered recall@10 {r}");
}
