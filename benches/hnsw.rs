//! HNSW bench: build time, recall@10 and QPS of mmdb's graph (built by mmdb, and by hnsw_rs),
//! searched as built (nodes in input order) and as a segment stores it (renumbered in locality
//! order, `mmdb::internals::locality_order`, vectors at `mmdb::internals::padded_stride`).
//!
//! `cargo bench --features __internals --bench hnsw` (release; the index is internal, so this
//! inner layer is reached through the hidden `mmdb::internals`). Sizes come from the environment
//! so the same binary runs the 1M case later:
//! - `MMDB_BENCH_N` (100000), `MMDB_BENCH_DIM` (512), `MMDB_BENCH_QUERIES` (1000),
//! - `MMDB_BENCH_M` (16), `MMDB_BENCH_EFC` (200), `MMDB_BENCH_EFS` ("16,32,64,128,256"),
//! - `MMDB_BENCH_PEER` (1): also build the graph with hnsw_rs and search it with mmdb's search
//!   (0 skips it): same search, other graph, which tells graph quality from search speed,
//! - `MMDB_BENCH_FILTERS` (1): the filtered searches at 50%, 10%, 1% (0 skips them),
//! - `MMDB_BENCH_DUMP` (unset): a directory to write `base.f32`, `queries.f32`, `gt.u32` and
//!   `meta.json` into, for `benches/hnswlib_peer.py`.
//! - `MMDB_BENCH_GRAPH` (unset): a file caching mmdb's graph for these settings: read when it
//!   exists (no build), else built and written there. For iterating on search speed alone.
//! - `MMDB_BENCH_REPEAT` (1): single-thread passes over the queries per line; the line quotes
//!   the median (one pass of 1,000 queries moves by several percent on a shared machine).
//! - `MMDB_BENCH_BUILD_ORDER` (1): also search the graph in build order (0: only as stored).
//! - `MMDB_BENCH_BUILD_PADDED` (0): build on a copy of the vectors at the padded stride segments
//!   store them at (input order), to compare with the packed build.
//!
//! Each build line is preceded by its memory: the RSS before it and VmHWM during it (reset
//! through `/proc/self/clear_refs` first); `benches/hnswlib_peer.py` prints the same for hnswlib.
//!
//! Data: `sqrt(n)` centres uniform on the unit sphere; each vector is a random centre plus Gaussian
//! noise of norm ~0.6, normalised (seed 42, ChaCha8; identical to `tests/it/recall.rs`).
//! Everything runs with cosine (dot product on unit vectors).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mmdb::internals::{
    GraphBuilder, GraphView, VectorsView, build_graph_with, locality_order, padded_stride,
    renumber, search_exact, search_graph,
};
use mmdb::{HnswParams, Metric};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const SPREAD: f32 = 0.6;
const K: usize = 10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

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

/// CPU time of this process (user + system), from /proc (Linux; zero elsewhere).
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

/// `(VmRSS, VmHWM)` of this process in MiB, from /proc (Linux; zeros elsewhere).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS"), field("VmHWM"))
}

/// Starts VmHWM again from the current RSS (Linux: `/proc/self/clear_refs`, value 5), so the
/// peak read after a build is the build's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `f`, returns its result, wall and CPU seconds.
fn timed<R>(f: impl FnOnce() -> R) -> (R, f64, f64) {
    let (w, c) = (Instant::now(), cpu_time());
    let r = f();
    (r, w.elapsed().as_secs_f64(), (cpu_time() - c).as_secs_f64())
}

fn recall(got: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let hit: usize = got
        .iter()
        .zip(truth)
        .map(|(g, t)| g.iter().filter(|x| t.contains(x)).count())
        .sum();
    hit as f64 / (truth.len() * K) as f64
}

/// Runs `search` over all queries on one thread (`MMDB_BENCH_REPEAT` times, median), then on all
/// threads; prints one line.
fn measure(
    label: &str,
    queries: &[&[f32]],
    truth: &[Vec<u32>],
    search: impl Fn(&[f32]) -> Vec<u32> + Sync,
) {
    let repeat: usize = env_or("MMDB_BENCH_REPEAT", 1).max(1);
    let mut walls = Vec::with_capacity(repeat);
    let mut got = Vec::new();
    for _ in 0..repeat {
        let (g, w, _) = timed(|| queries.iter().map(|q| search(q)).collect::<Vec<_>>());
        walls.push(w);
        got = g;
    }
    walls.sort_by(f64::total_cmp);
    let w1 = walls[walls.len() / 2];
    let (_, wn, cn) = timed(|| queries.par_iter().map(|q| search(q)).collect::<Vec<_>>());
    let nq = queries.len() as f64;
    let short = got.iter().filter(|g| g.len() < K).count();
    println!(
        "{label:<34} recall@10 {:.4}  QPS 1 thread {:>8.0}  QPS {} threads {:>8.0}  per CPU-s {:>8.0}  short {short}",
        recall(&got, truth),
        nq / w1,
        rayon::current_num_threads(),
        nq / wn,
        nq / cn.max(1e-9),
    );
}

fn main() {
    let n: usize = env_or("MMDB_BENCH_N", 100_000);
    let dim: usize = env_or("MMDB_BENCH_DIM", 512);
    let nq: usize = env_or("MMDB_BENCH_QUERIES", 1000);
    let params = HnswParams {
        m: env_or("MMDB_BENCH_M", 16),
        ef_construction: env_or("MMDB_BENCH_EFC", 200),
        ..HnswParams::default()
    };
    let efs: Vec<usize> = env_or("MMDB_BENCH_EFS", "16,32,64,128,256".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let peer = env_or("MMDB_BENCH_PEER", 1) != 0;
    let filters = env_or("MMDB_BENCH_FILTERS", 1) != 0;
    let build_order = env_or("MMDB_BENCH_BUILD_ORDER", 1) != 0;
    println!(
        "hnsw bench: n {n}, dim {dim}, queries {nq}, {params:?}, threads {}",
        rayon::current_num_threads()
    );

    let ((base, queries), secs, _) = timed(|| clustered(n, nq, dim, 42));
    println!("data generated in {secs:.1} s");
    let v = VectorsView::new(&base, dim);
    // MMDB_BENCH_BUILD_PADDED=1: build on a copy at the padded stride (input order).
    let padded: Vec<f32> = if env_or("MMDB_BENCH_BUILD_PADDED", 0) != 0 {
        let stride = padded_stride(dim);
        base.chunks(dim)
            .flat_map(|x| {
                x.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0.0, stride - dim))
            })
            .collect()
    } else {
        Vec::new()
    };
    let bv = if padded.is_empty() {
        v
    } else {
        VectorsView::strided(&padded, dim, padded_stride(dim))
    };
    let qs: Vec<&[f32]> = queries.chunks(dim).collect();
    let ids = |hits: Vec<(u32, f32)>| hits.into_iter().map(|h| h.0).collect::<Vec<u32>>();
    let (truth, secs, _) = timed(|| {
        qs.par_iter()
            .map(|q| ids(search_exact(v, Metric::Cosine, q, K, None)))
            .collect::<Vec<_>>()
    });
    println!("exact ground truth in {secs:.1} s");
    if let Ok(dir) = std::env::var("MMDB_BENCH_DUMP") {
        dump(Path::new(&dir), &base, &queries, &truth, n, nq, dim);
    }

    let mut builders = vec![("mmdb", GraphBuilder::Mmdb)];
    if peer {
        builders.push(("hnsw_rs", GraphBuilder::HnswRs));
    }
    for (name, builder) in builders {
        let cache = std::env::var("MMDB_BENCH_GRAPH")
            .ok()
            .filter(|_| builder == GraphBuilder::Mmdb);
        let cached = cache.as_ref().and_then(|p| std::fs::read(p).ok());
        let (bytes, wall, cpu) = match cached {
            Some(bytes) => (bytes, 0.0, 0.0),
            None => {
                reset_peak();
                let (before, _) = memory_mib();
                let built = timed(|| {
                    build_graph_with(bv, Metric::Cosine, &params, builder).expect("build")
                });
                let (_, peak) = memory_mib();
                println!(
                    "{name} build memory: RSS before {before:.0} MiB (the vectors and queries), peak during {peak:.0} MiB, +{:.0} MiB",
                    peak - before
                );
                if let Some(p) = &cache {
                    std::fs::write(p, &built.0).unwrap_or_else(|e| panic!("{p}: {e}"));
                }
                built
            }
        };
        let (graph, parse, _) =
            timed(|| GraphView::parse(&bytes, Path::new("bench.hnsw")).expect("parse"));
        let edges: usize = (0..n as u32).map(|i| graph.neighbours(0, i).count()).sum();
        println!(
            "{name} build: wall {wall:.1} s, CPU {cpu:.1} s, {} bytes, {} layers, mean layer-0 degree {:.1}, parse {:.2} ms",
            bytes.len(),
            graph.layers(),
            edges as f64 / n.max(1) as f64,
            parse * 1e3,
        );
        // As a segment stores it: nodes renumbered (and vectors stored) in locality order.
        let ((stored_bytes, order), secs, _) = timed(|| {
            let order = locality_order(&graph);
            (renumber(&graph, &order), order)
        });
        println!(
            "{name} renumbered in locality order in {:.1} ms",
            secs * 1e3
        );
        let stored = GraphView::parse(&stored_bytes, Path::new("stored.hnsw")).expect("parse");
        // The vectors in that order, at the stride a segment stores them at.
        let stride = padded_stride(dim);
        let stored_data: Vec<f32> = order
            .iter()
            .flat_map(|&o| {
                base[o as usize * dim..(o as usize + 1) * dim]
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0.0, stride - dim))
            })
            .collect();
        let sv = VectorsView::strided(&stored_data, dim, stride);
        // Results as input ids, comparable with `truth`.
        let input_ids = |hits: Vec<(u32, f32)>| {
            hits.into_iter()
                .map(|h| order[h.0 as usize])
                .collect::<Vec<u32>>()
        };
        for &ef in &efs {
            if build_order {
                measure(
                    &format!("{name} graph, build order, ef {ef}"),
                    &qs,
                    &truth,
                    |q| ids(search_graph(&graph, v, Metric::Cosine, q, K, ef, None)),
                );
            }
            measure(
                &format!("{name} graph, stored, ef {ef}"),
                &qs,
                &truth,
                |q| input_ids(search_graph(&stored, sv, Metric::Cosine, q, K, ef, None)),
            );
        }
        if !filters || builder != GraphBuilder::Mmdb {
            continue;
        }
        for (pct, modulo) in [(50u32, 2u32), (10, 10), (1, 100)] {
            let keep = move |i: u32| i.wrapping_mul(2_654_435_761).is_multiple_of(modulo);
            let keep_stored = |i: u32| keep(order[i as usize]);
            let ftruth: Vec<Vec<u32>> = qs
                .par_iter()
                .map(|q| ids(search_exact(v, Metric::Cosine, q, K, Some(&keep))))
                .collect();
            for ef in [64usize, 128] {
                measure(
                    &format!("{name} stored, filter {pct}% ef {ef}"),
                    &qs,
                    &ftruth,
                    |q| {
                        input_ids(search_graph(
                            &stored,
                            sv,
                            Metric::Cosine,
                            q,
                            K,
                            ef,
                            Some(&keep_stored),
                        ))
                    },
                );
            }
            measure(&format!("exact filter {pct}%"), &qs, &ftruth, |q| {
                ids(search_exact(v, Metric::Cosine, q, K, Some(&keep)))
            });
        }
    }
}

fn dump(
    dir: &Path,
    base: &[f32],
    queries: &[f32],
    truth: &[Vec<u32>],
    n: usize,
    nq: usize,
    dim: usize,
) {
    std::fs::create_dir_all(dir).expect("dump dir");
    let write = |name: &str, bytes: Vec<u8>| {
        let p: PathBuf = dir.join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    };
    write(
        "base.f32",
        base.iter().flat_map(|x| x.to_le_bytes()).collect(),
    );
    write(
        "queries.f32",
        queries.iter().flat_map(|x| x.to_le_bytes()).collect(),
    );
    write(
        "gt.u32",
        truth
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    );
    write(
        "meta.json",
        format!("{{\"n\": {n}, \"queries\": {nq}, \"dim\": {dim}, \"k\": {K}}}").into_bytes(),
    );
    println!("data written to {}", dir.display());
}
