//! HNSW recall against the exact index: 20,000 clustered 128-d unit vectors (a unit test: the
//! index is internal); and a merged segment's graph (`build_graph_from`) against a fresh build of
//! the same vectors.
//!
//! The data generator is the one of `benches/hnsw.rs`: `k = sqrt(n)` centres drawn uniformly on the
//! unit sphere, each vector a random centre plus Gaussian noise of total norm ~`SPREAD`,
//! normalised; queries are fresh draws from the same mixture (seeded ChaCha8).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    GraphView, VectorsView, build_graph, build_graph_from, locality_order, renumber, search_exact,
    search_graph,
};
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

/// CPU time of this process (user + system), from /proc (Linux; zero elsewhere), as
/// `benches/hnsw.rs` measures it.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name start at field 3 (state); utime and stime are fields 14
    // and 15, in ticks of 1/100 s.
    let after: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        after
            .get(i - 3)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((field(14) + field(15)) * 10)
}

/// Runs `f`; its result, wall time and CPU time (of the whole process: other tests running
/// beside it count too).
fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration, Duration) {
    let (w, c) = (Instant::now(), cpu_time());
    let r = f();
    (r, w.elapsed(), cpu_time() - c)
}

/// A merge: a base segment of `n_base` vectors, 20% of them dropped at random, and `n_new` new
/// ones (clustered, 128-d, seeded). The final vectors are the kept base vectors in base order,
/// then the new ones; `base_map` maps base nodes to final ids.
struct Merge {
    dim: usize,
    merged: Vec<f32>,
    base_graph: Vec<u8>,
    base_map: Vec<Option<u32>>,
    queries: Vec<f32>,
    params: HnswParams,
}

impl Merge {
    fn new(n_base: usize, n_new: usize, queries: usize, seed: u64) -> Merge {
        let dim = 128;
        let (all, queries) = clustered(n_base + n_new, queries, dim, seed);
        let (base, new) = all.split_at(n_base * dim);
        // ef_construction halved as in the test above (debug builds).
        let params = HnswParams {
            ef_construction: 100,
            ..HnswParams::default()
        };
        let (base_graph, wall, cpu) =
            timed(|| build_graph(VectorsView::new(base, dim), Metric::Cosine, &params).unwrap());
        eprintln!("base build ({n_base} nodes): {wall:?} ({cpu:?} CPU)");
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
        let mut merged = Vec::with_capacity(all.len());
        let base_map: Vec<Option<u32>> = base
            .chunks(dim)
            .map(|v| {
                (!rng.random_bool(0.2)).then(|| {
                    merged.extend_from_slice(v);
                    (merged.len() / dim - 1) as u32
                })
            })
            .collect();
        merged.extend_from_slice(new);
        Merge {
            dim,
            merged,
            base_graph,
            base_map,
            queries,
            params,
        }
    }

    fn vectors(&self) -> VectorsView<'_> {
        VectorsView::new(&self.merged, self.dim)
    }

    fn kept(&self) -> usize {
        self.base_map.iter().flatten().count()
    }

    fn build_fresh(&self) -> Vec<u8> {
        build_graph(self.vectors(), Metric::Cosine, &self.params).unwrap()
    }

    fn build_merged(&self, base: &[u8], base_map: &[Option<u32>]) -> Vec<u8> {
        let base = GraphView::parse(base, Path::new("base.hnsw")).unwrap();
        build_graph_from(
            self.vectors(),
            Metric::Cosine,
            &self.params,
            &base,
            base_map,
        )
        .unwrap()
    }

    /// The base graph renumbered in locality order, as a segment stores it, and its map.
    fn renumbered(&self) -> (Vec<u8>, Vec<Option<u32>>) {
        let base = GraphView::parse(&self.base_graph, Path::new("base.hnsw")).unwrap();
        let order = locality_order(&base);
        // Node `j` of the renumbered graph is base node `order[j]`.
        let map = order.iter().map(|&o| self.base_map[o as usize]).collect();
        (renumber(&base, &order), map)
    }
}

/// Recall@10 of each graph at `ef`, on one line; the merged graphs' (all but the first) must be
/// within 0.005 of the fresh build's (the first) at ef 64 and above.
fn compare_recall(graphs: &[(&str, GraphView<'_>)], case: &Merge, exact: &[Vec<u32>], ef: usize) {
    let v = case.vectors();
    let r: Vec<f64> = graphs
        .iter()
        .map(|(_, g)| {
            let (r, short) = recall(g, v, &case.queries, exact, ef, None);
            assert_eq!(short, 0);
            r
        })
        .collect();
    let line: Vec<String> = graphs
        .iter()
        .zip(&r)
        .map(|((name, _), r)| format!("{name} {r:.4}"))
        .collect();
    eprintln!("recall@10 at ef {ef}: {}", line.join(", "));
    if ef >= 64 {
        for ((name, _), &got) in graphs.iter().zip(&r).skip(1) {
            assert!(
                got >= r[0] - 0.005,
                "{name}: recall@10 {got} at ef {ef}, fresh {}",
                r[0]
            );
        }
    }
}

/// Sizes halved from the merge that docs/perf.md quotes (`merge_build_cost`) so that the
/// debug-build test stays short.
#[test]
fn a_merged_graph_recalls_as_a_fresh_build() {
    let case = Merge::new(8_000, 4_000, 200, 43);
    let v = case.vectors();
    let (kept, n) = (case.kept(), v.len());
    let (scratch, wall, cpu) = timed(|| case.build_fresh());
    eprintln!("fresh build ({n} nodes): {wall:?} ({cpu:?} CPU)");
    let (merged, wall, cpu) = timed(|| case.build_merged(&case.base_graph, &case.base_map));
    eprintln!(
        "merged build ({kept} kept, {} inserted): {wall:?} ({cpu:?} CPU)",
        n - kept
    );
    // As a segment stores its graph: renumbered, the map in the new numbering.
    let (base, map) = case.renumbered();
    let (renumbered, wall, cpu) = timed(|| case.build_merged(&base, &map));
    eprintln!("merged build, renumbered base: {wall:?} ({cpu:?} CPU)");

    let exact = truth(v, &case.queries, None);
    let parse = |b| GraphView::parse(b, Path::new("merged.hnsw")).unwrap();
    let graphs = [
        ("fresh", parse(&scratch)),
        ("merged", parse(&merged)),
        ("merged (renumbered base)", parse(&renumbered)),
    ];
    for ef in [10, 16, 32, 64, 128] {
        compare_recall(&graphs, &case, &exact, ef);
    }
}

/// The merge docs/perf.md quotes: 16,000 base vectors, 20% dropped, 8,000 added. Build CPU time
/// of the merge and of a fresh build, alternating, three each (medians), then recall. Slow in a
/// debug build (several minutes): run by hand, alone, as
/// `cargo test --lib merge_build_cost -- --ignored --nocapture`.
#[test]
#[ignore = "timing: several minutes; run by hand (see the doc comment)"]
fn merge_build_cost() {
    let case = Merge::new(16_000, 8_000, 200, 43);
    let v = case.vectors();
    let (kept, n) = (case.kept(), v.len());
    let (mut fresh, mut merged) = (Vec::new(), Vec::new());
    let (mut fresh_cpu, mut merged_cpu) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let (g, wall, cpu) = timed(|| case.build_fresh());
        eprintln!("round {round}: fresh build ({n} nodes): {wall:?} ({cpu:?} CPU)");
        (fresh, fresh_cpu) = (g, [fresh_cpu, vec![cpu]].concat());
        let (g, wall, cpu) = timed(|| case.build_merged(&case.base_graph, &case.base_map));
        eprintln!(
            "round {round}: merged build ({kept} kept, {} inserted): {wall:?} ({cpu:?} CPU)",
            n - kept
        );
        (merged, merged_cpu) = (g, [merged_cpu, vec![cpu]].concat());
    }
    fresh_cpu.sort();
    merged_cpu.sort();
    eprintln!(
        "median CPU: fresh {:?}, merged {:?} ({:.2}x)",
        fresh_cpu[1],
        merged_cpu[1],
        merged_cpu[1].as_secs_f64() / fresh_cpu[1].as_secs_f64()
    );
    let exact = truth(v, &case.queries, None);
    let parse = |b| GraphView::parse(b, Path::new("merged.hnsw")).unwrap();
    let graphs = [("fresh", parse(&fresh)), ("merged", parse(&merged))];
    for ef in [10, 16, 32, 64, 128] {
        compare_recall(&graphs, &case, &exact, ef);
    }
}
