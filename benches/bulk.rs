//! Bulk-load bench: the cost of getting N vectors into a table and what the table is like
//! afterwards, through the public API with background maintenance on.
//!
//! Cases (each prints one line, or one per `ef`):
//! - `bulk`: [`Database::bulk_load`] of N rows into a new database (default settings), then
//!   [`Database::wait_for_maintenance`]: wall, process CPU (all threads: background flushes,
//!   merges and verification count), segments left (the `seg-*.rows` files in the directory,
//!   with the rows of each read from the header of its `.vec` file), rows left in the memtable,
//!   [`Database::maintenance_stats`] (`vectors_indexed / N` is how many times each row was
//!   inserted into a graph), RSS before and peak (VmHWM, reset at the start of the case through
//!   `/proc/self/clear_refs`) and the peak of RssAnon above its level at the start (sampled
//!   every 10 ms).
//! - `incremental`: the same rows through [`Database::insert`] in batches of 10,000 ("API insert
//!   batches"), default settings (`Sync::Full`, 64 MiB memtable, merge factor 4), then
//!   `wait_for_maintenance`; the same measures and the CPU ratio incremental / bulk.
//! - `search`: recall@10 (against the exact top 10, brute force in the bench) and single-thread
//!   QPS at ef 16, 32, 64, 128, 256 through `TableSnapshot::search`, on the databases of `bulk`
//!   and `incremental` as they were left (no manual compaction; memtable rows are searched
//!   exactly), and on a copy of the incremental one after [`Database::compact`] (timed; the
//!   copy is taken after `wait_for_maintenance`, so it holds the same segments and memtable).
//!   The three variants alternate per ef (A, B, C, A, B, C, A, B, C) and each line quotes the
//!   median of 3 passes over the queries; ratios are QPS as left / QPS compacted and recall as
//!   left minus recall compacted. Runs `bulk` and `incremental` first when they are not selected.
//!   Also checks the exact search of the API against the bench's ground truth (20 queries).
//! - `latency`: p50 / p99 / p99.9 / max latency of single-row inserts (`Sync::Normal`, paced at
//!   `MMDB_BENCH_INSERT_RATE` rows/s, one thread) while `compact` runs in another thread on a
//!   table of N rows in 8 segments, then the same for 5 s with no compaction running. The
//!   segments are 3 + 3 + 2 in three consecutive size tiers (about 26%, 6.5% and 1.6% of N
//!   each), a shape the default merge policy leaves alone, so the database is reopened with
//!   default settings (plus `Sync::Normal`) and nothing merges before the `compact`. They are
//!   built once (into `segmented-src`, one `bulk_load` per segment, with a huge merge factor
//!   and `max_segments`) and copied for this case and the next.
//! - `compaction_rss`: peak RssAnon (sampled every 10 ms in a thread) during `compact` of a copy
//!   of the same 8-segment table, minus RssAnon before; VmHWM (reset before the compaction);
//!   wall, CPU, vectors reused / inserted by the merge.
//! - `peer`: with `MMDB_BENCH_PEER` set to a python that has hnswlib and numpy, the data is
//!   written in `benches/hnswlib_peer.py`'s format (`base.f32`, `queries.f32`, `gt.u32`,
//!   `meta.json`) and the script runs on it (`--m 16 --efc 200 --repeat 3`, all cores); its
//!   output is printed, then the ratio of the `bulk` and `incremental` CPU seconds to hnswlib's
//!   build CPU seconds. Unset: the command to run it is printed.
//!
//! Run: `cargo bench --bench bulk` (release). Environment:
//! - `MMDB_BENCH_ROWS` (100000; 1000000 for the 1M run), `MMDB_BENCH_DIM` (512),
//! - `MMDB_BENCH_QUERIES` (500: at 100k rows three variants x five ef x three passes take
//!   seconds; the whole bench at 100k takes about 5 minutes on 2 cores, most of it graph builds),
//! - `MMDB_BENCH_DIR` (a temp dir, removed at the end; when set, the databases are left there),
//! - `MMDB_BENCH_CASES` (all: `bulk,incremental,search,latency,compaction_rss,peer`),
//! - `MMDB_BENCH_PEER` (unset: a python with hnswlib + numpy, for the `peer` case),
//! - `MMDB_BENCH_INSERT_RATE` (500: single-row inserts per second in `latency`; at 100k the
//!   rows inserted during the compaction stay under the 64 MiB memtable, so no flush joins in).
//!
//! Data: N clustered unit vectors, as in `benches/hnsw.rs` (sqrt(N) centres, spread 0.6, seed 42,
//! ChaCha8), queries drawn after them. Table `items (id INTEGER, emb VECTOR(dim))`, cosine,
//! M 16, ef_construction 200; the `id` column holds the vector's index in the data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mmdb::{
    Column, ColumnType, DEFAULT_BULK_CHUNK_BYTES, DEFAULT_MAX_SEGMENTS, DEFAULT_MEMTABLE_MAX_BYTES,
    DEFAULT_MERGE_FACTOR, Database, MaintenanceStats, Row, SearchRequest, Sync, TableSchema,
    TableSnapshot, Value,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const SPREAD: f32 = 0.6;
const K: usize = 10;
const TABLE: &str = "items";
/// Column index of `emb`.
const EMB: usize = 1;
const M: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const EFS: [usize; 5] = [16, 32, 64, 128, 256];
const PASSES: usize = 3;
const INSERT_BATCH: usize = 10_000;
const CASES: [&str; 6] = [
    "bulk",
    "incremental",
    "search",
    "latency",
    "compaction_rss",
    "peer",
];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- data (as benches/hnsw.rs) ----

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

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Exact top K of each query (score descending, then index ascending), on all cores.
fn ground_truth(base: &[f32], queries: &[f32], dim: usize) -> Vec<Vec<u32>> {
    queries
        .par_chunks(dim)
        .map(|q| {
            let mut top: Vec<(f32, u32)> = Vec::with_capacity(K + 1);
            for (i, v) in base.chunks_exact(dim).enumerate() {
                let s = dot(q, v);
                if top.len() == K && s <= top[K - 1].0 {
                    continue;
                }
                let at = top.partition_point(|t| t.0 >= s);
                top.insert(at, (s, i as u32));
                top.truncate(K);
            }
            top.into_iter().map(|t| t.1).collect()
        })
        .collect()
}

fn recall(got: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let hit: usize = got
        .iter()
        .zip(truth)
        .map(|(g, t)| g.iter().filter(|x| t.contains(x)).count())
        .sum();
    hit as f64 / (truth.len() * K).max(1) as f64
}

fn row(base: &[f32], dim: usize, i: usize, id: usize) -> Row {
    Row::new(vec![
        Value::Integer(id as i64),
        Value::Vector(base[i * dim..(i + 1) * dim].to_vec()),
    ])
}

fn schema(dim: usize) -> TableSchema {
    let mut s = TableSchema::new(
        TABLE,
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("emb", ColumnType::Vector(dim as u32)),
        ],
    );
    s.hnsw.m = M;
    s.hnsw.ef_construction = EF_CONSTRUCTION;
    s
}

// ---- process measures ----

/// CPU time of this process, all threads (user + system), from /proc (ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
    (field(14) + field(15)) as f64 / 100.0
}

/// A field of /proc/self/status in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux 4.0+); false where refused.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What [`measured`] saw.
struct Measure {
    wall: f64,
    cpu: f64,
    rss_before: f64,
    hwm: f64,
    hwm_reset: bool,
    anon_before: f64,
    anon_peak: f64,
}

impl Measure {
    fn rss(&self) -> String {
        format!(
            "RSS {:.0} MiB before, VmHWM {:.0} MiB{}, RssAnon peak +{:.0} MiB",
            self.rss_before,
            self.hwm,
            if self.hwm_reset {
                ""
            } else {
                " (not reset: process peak)"
            },
            self.anon_peak - self.anon_before
        )
    }
}

/// Runs `f` with wall and process CPU time, VmHWM (reset first) and RssAnon sampled every 10 ms.
fn measured<R>(f: impl FnOnce() -> R) -> (R, Measure) {
    let stop = AtomicBool::new(false);
    let anon_before = status_mib("RssAnon");
    let rss_before = status_mib("VmRSS");
    let hwm_reset = reset_hwm();
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = anon_before;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(status_mib("RssAnon"));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(status_mib("RssAnon"))
        });
        let (w, c) = (Instant::now(), cpu_secs());
        let r = f();
        let (wall, cpu) = (w.elapsed().as_secs_f64(), cpu_secs() - c);
        stop.store(true, Ordering::Relaxed);
        let anon_peak = sampler.join().unwrap();
        let m = Measure {
            wall,
            cpu,
            rss_before,
            hwm: status_mib("VmHWM"),
            hwm_reset,
            anon_before,
            anon_peak,
        };
        (r, m)
    })
}

// ---- database files ----

/// Rows of each segment in `dir`, largest first: one entry per `seg-*.rows` file with a vector
/// file (a segment being written has none yet), the count read from the vector file's body
/// (framed file: 64-byte header, then dim u32, count u32).
fn segments(dir: &Path) -> Vec<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix("seg-")
            .and_then(|s| s.strip_suffix(".rows"))
        else {
            continue;
        };
        let vec = dir.join(format!("seg-{stem}.c{EMB}.vec"));
        let mut count = [0u8; 4];
        let read = std::fs::File::open(&vec).and_then(|mut f| {
            f.seek(SeekFrom::Start(68))?;
            f.read_exact(&mut count)
        });
        if read.is_ok() {
            out.push(u32::from_le_bytes(count) as usize);
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

fn describe_segments(dir: &Path, total: usize) -> String {
    let segs = segments(dir);
    let in_segs: usize = segs.iter().sum();
    format!(
        "segments {} {:?}, memtable rows {}",
        segs.len(),
        segs,
        total.saturating_sub(in_segs)
    )
}

fn stats_line(s: &MaintenanceStats, n: usize) -> String {
    format!(
        "flushes {}, merges {}, segments written {}, rows written {}, vectors indexed {} ({:.2} x N), reused {}",
        s.flushes,
        s.merges,
        s.segments_written,
        s.rows_written,
        s.vectors_indexed,
        s.vectors_indexed as f64 / n.max(1) as f64,
        s.vectors_reused
    )
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

// ---- bench state ----

struct Bench {
    n: usize,
    dim: usize,
    base_dir: PathBuf,
    keep: bool,
    base: Vec<f32>,
    queries: Vec<f32>,
    truth: Option<Vec<Vec<u32>>>,
    bulk: Option<(Database, Measure)>,
    incremental: Option<(Database, Measure)>,
    segmented: Option<PathBuf>,
}

impl Bench {
    fn truth(&mut self) -> &[Vec<u32>] {
        if self.truth.is_none() {
            let start = Instant::now();
            self.truth = Some(ground_truth(&self.base, &self.queries, self.dim));
            println!(
                "exact ground truth (brute force, {} threads) in {:.1} s",
                rayon::current_num_threads(),
                start.elapsed().as_secs_f64()
            );
        }
        self.truth.as_deref().unwrap()
    }

    fn remove(&self, dir: &Path) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn bulk(&mut self) {
        let dir = self.base_dir.join("bulk");
        fresh(&dir);
        let db = Database::open(&dir).unwrap();
        db.create_table(schema(self.dim)).unwrap();
        let (n, dim, base) = (self.n, self.dim, &self.base);
        let ((), m) = measured(|| {
            db.bulk_load(TABLE, (0..n).map(|i| row(base, dim, i, i)))
                .unwrap();
            db.wait_for_maintenance();
        });
        println!(
            "bulk        (bulk_load, defaults)           : wall {:6.1} s, CPU {:6.1} s | {} | {} | {}",
            m.wall,
            m.cpu,
            describe_segments(&dir, n),
            stats_line(&db.maintenance_stats(), n),
            m.rss()
        );
        self.bulk = Some((db, m));
    }

    fn incremental(&mut self) {
        let dir = self.base_dir.join("incremental");
        fresh(&dir);
        let db = Database::open(&dir).unwrap();
        db.create_table(schema(self.dim)).unwrap();
        let (n, dim, base) = (self.n, self.dim, &self.base);
        let ((), m) = measured(|| {
            for start in (0..n).step_by(INSERT_BATCH) {
                let rows = (start..(start + INSERT_BATCH).min(n))
                    .map(|i| row(base, dim, i, i))
                    .collect();
                db.insert(TABLE, rows).unwrap();
            }
            db.wait_for_maintenance();
        });
        let ratio = self.bulk.as_ref().map_or(String::from("n/a"), |(_, b)| {
            format!("{:.2}", m.cpu / b.cpu)
        });
        println!(
            "incremental (API insert batches of {INSERT_BATCH}): wall {:6.1} s, CPU {:6.1} s | {} | {} | {} | CPU ratio incremental/bulk {ratio}",
            m.wall,
            m.cpu,
            describe_segments(&dir, n),
            stats_line(&db.maintenance_stats(), n),
            m.rss()
        );
        self.incremental = Some((db, m));
    }

    fn search(&mut self) {
        if self.bulk.is_none() {
            self.bulk();
        }
        if self.incremental.is_none() {
            self.incremental();
        }
        let (n, dim) = (self.n, self.dim);
        self.truth();
        let (bulk, incr) = (
            self.bulk.as_ref().unwrap().0.clone(),
            self.incremental.as_ref().unwrap().0.clone(),
        );
        // The compacted variant: a copy of the incremental database as left, compacted.
        let copy = self.base_dir.join("incremental-compacted");
        copy_dir(incr.path(), &copy);
        let compacted = Database::open(&copy).unwrap();
        compacted.wait_for_maintenance();
        let before = describe_segments(&copy, n);
        let ((), m) = measured(|| compacted.compact(TABLE).unwrap());
        println!(
            "search: compact of the incremental copy ({before}): wall {:.1} s, CPU {:.1} s, after: {} | {} | {}",
            m.wall,
            m.cpu,
            describe_segments(&copy, n),
            stats_line(&compacted.maintenance_stats(), n),
            m.rss()
        );
        let truth = self.truth.as_deref().unwrap();
        let queries: Vec<&[f32]> = self.queries.chunks(dim).collect();

        // The API's exact search against the bench's brute force.
        let snap = bulk.snapshot(TABLE).unwrap();
        let few = 20.min(queries.len());
        let exact: Vec<Vec<u32>> = queries[..few]
            .iter()
            .map(|q| ids(&snap, &SearchRequest::new(EMB, q, K).exact(true)))
            .collect();
        println!(
            "search: API exact search vs brute-force ground truth on {few} queries: recall@10 {:.4}",
            recall(&exact, &truth[..few])
        );

        let variants = [
            (
                format!("bulk ({})", short_segments(bulk.path(), n)),
                bulk.clone(),
            ),
            (
                format!("incremental ({})", short_segments(incr.path(), n)),
                incr.clone(),
            ),
            (
                format!("compacted ({})", short_segments(&copy, n)),
                compacted.clone(),
            ),
        ];
        println!(
            "search: {} queries, k {K}, one thread, median of {PASSES} passes, variants alternating per ef: A = {}, B = {}, C = {}",
            queries.len(),
            variants[0].0,
            variants[1].0,
            variants[2].0
        );
        // Warm-up: first searches wait for the background checksum pass and fault pages in.
        for (_, db) in &variants {
            let snap = db.snapshot(TABLE).unwrap();
            for q in &queries {
                ids(&snap, &SearchRequest::new(EMB, q, K).ef(64));
            }
        }
        for ef in EFS {
            let mut walls = vec![Vec::new(); variants.len()];
            let mut got = vec![Vec::new(); variants.len()];
            for _ in 0..PASSES {
                for (v, (_, db)) in variants.iter().enumerate() {
                    let snap = db.snapshot(TABLE).unwrap();
                    let start = Instant::now();
                    got[v] = queries
                        .iter()
                        .map(|q| ids(&snap, &SearchRequest::new(EMB, q, K).ef(ef)))
                        .collect::<Vec<_>>();
                    walls[v].push(start.elapsed().as_secs_f64());
                }
            }
            let res: Vec<(f64, f64)> = walls
                .iter_mut()
                .zip(&got)
                .map(|(w, g)| {
                    w.sort_by(f64::total_cmp);
                    (recall(g, truth), queries.len() as f64 / w[w.len() / 2])
                })
                .collect();
            let (a, b, c) = (res[0], res[1], res[2]);
            println!(
                "search ef {ef:>3}: A bulk R {:.4} QPS {:>6.0} | B incremental R {:.4} QPS {:>6.0} | C compacted R {:.4} QPS {:>6.0} | \
                 B/C QPS {:.2} recall {:+.4} | A/C QPS {:.2} recall {:+.4}",
                a.0,
                a.1,
                b.0,
                b.1,
                c.0,
                c.1,
                b.1 / c.1,
                b.0 - c.0,
                a.1 / c.1,
                a.0 - c.0
            );
        }
        drop(variants);
        drop(compacted);
        self.remove(&copy);
    }

    /// The 8-segment table of `latency` and `compaction_rss`, built once (closed, in
    /// `segmented-src`).
    fn segmented(&mut self) -> PathBuf {
        if let Some(dir) = &self.segmented {
            return dir.clone();
        }
        let dir = self.base_dir.join("segmented-src");
        fresh(&dir);
        let sizes = segment_sizes(self.n);
        let start = Instant::now();
        let db = Database::builder()
            .sync(Sync::Off)
            .memtable_max_bytes(usize::MAX)
            .merge_factor(1 << 20)
            .max_segments(usize::MAX)
            .open(&dir)
            .unwrap();
        db.create_table(schema(self.dim)).unwrap();
        let mut next = 0;
        // One load per segment: a flush would extend the segment before it.
        for size in sizes.iter().copied() {
            db.bulk_load(
                TABLE,
                (next..next + size).map(|i| row(&self.base, self.dim, i, i)),
            )
            .unwrap();
            next += size;
        }
        db.wait_for_maintenance();
        db.close().unwrap();
        println!(
            "setup: table of {} rows in segments {:?} (3 + 3 + 2 per size tier; one bulk load each) built in {:.1} s",
            self.n,
            segments(&dir),
            start.elapsed().as_secs_f64()
        );
        self.segmented = Some(dir.clone());
        dir
    }

    fn latency(&mut self) {
        let src = self.segmented();
        let dir = self.base_dir.join("latency");
        copy_dir(&src, &dir);
        let db = Database::builder().sync(Sync::Normal).open(&dir).unwrap();
        db.wait_for_maintenance();
        // Let the background checksum pass of the reopened segments finish.
        std::thread::sleep(Duration::from_secs(1));
        let before = describe_segments(&dir, self.n);
        let rate: f64 = env("MMDB_BENCH_INSERT_RATE", 500.0);
        let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
        let (n, dim, base) = (self.n, self.dim, &self.base);
        let mut next_id = n;
        let done = AtomicBool::new(false);
        let origin = Instant::now();
        let ((compact_wall, compact_cpu), during) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let (w, c) = (Instant::now(), cpu_secs());
                db.compact(TABLE).unwrap();
                done.store(true, Ordering::Release);
                (w.elapsed().as_secs_f64(), cpu_secs() - c)
            });
            let lat = paced_inserts(&db, base, dim, n, &mut next_id, period, origin, || {
                done.load(Ordering::Acquire)
            });
            (h.join().unwrap(), lat)
        });
        let after = describe_segments(&dir, next_id);
        let idle_origin = Instant::now();
        let until = idle_origin + Duration::from_secs(5);
        let idle = paced_inserts(&db, base, dim, n, &mut next_id, period, idle_origin, || {
            Instant::now() >= until
        });
        println!(
            "latency: compact in one thread ({before} -> {after}): wall {compact_wall:.1} s, process CPU {compact_cpu:.1} s; \
             single-row inserts (Sync::Normal) paced at {rate:.0}/s in another (times below: from the compaction's start, \
             then from the start of the 5 s without it)"
        );
        println!("latency  during compaction: {}", percentiles(&during));
        println!("latency  no compaction    : {}", percentiles(&idle));
        drop(db);
        self.remove(&dir);
    }

    fn compaction_rss(&mut self) {
        let src = self.segmented();
        let dir = self.base_dir.join("compaction-rss");
        copy_dir(&src, &dir);
        let db = Database::open(&dir).unwrap();
        db.wait_for_maintenance();
        std::thread::sleep(Duration::from_secs(1));
        let before = describe_segments(&dir, self.n);
        let stats0 = db.maintenance_stats();
        let ((), m) = measured(|| db.compact(TABLE).unwrap());
        let s = db.maintenance_stats();
        println!(
            "compaction_rss: compact ({before} -> {}): wall {:.1} s, CPU {:.1} s, vectors inserted {} reused {} | \
             RssAnon {:.0} MiB before, peak {:.0} MiB (+{:.0} MiB; vector data {:.0} MiB) | VmHWM {:.0} MiB{} (RSS before {:.0} MiB)",
            describe_segments(&dir, self.n),
            m.wall,
            m.cpu,
            s.vectors_indexed - stats0.vectors_indexed,
            s.vectors_reused - stats0.vectors_reused,
            m.anon_before,
            m.anon_peak,
            m.anon_peak - m.anon_before,
            (self.n * self.dim * 4) as f64 / (1 << 20) as f64,
            m.hwm,
            if m.hwm_reset {
                ", reset before the compaction"
            } else {
                " (not reset: process peak)"
            },
            m.rss_before
        );
        drop(db);
        self.remove(&dir);
    }

    fn peer(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hnswlib_peer.py");
        let data = self.base_dir.join("peer-data");
        let args = ["--m", "16", "--efc", "200", "--repeat", "3"];
        let Ok(python) = std::env::var("MMDB_BENCH_PEER") else {
            println!(
                "peer: not run (MMDB_BENCH_PEER unset). To run it: MMDB_BENCH_PEER=/path/to/python MMDB_BENCH_CASES=bulk,incremental,peer \
                 MMDB_BENCH_ROWS={} MMDB_BENCH_DIM={} cargo bench --bench bulk  (that python needs hnswlib and numpy; the bench writes the data \
                 to {} and runs: python {} {} {})",
                self.n,
                self.dim,
                data.display(),
                script.display(),
                data.display(),
                args.join(" ")
            );
            return;
        };
        self.truth();
        dump(
            &data,
            &self.base,
            &self.queries,
            self.truth.as_deref().unwrap(),
            self.dim,
        );
        println!(
            "peer: {python} {} {} {}",
            script.display(),
            data.display(),
            args.join(" ")
        );
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(&data)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        self.remove(&data);
        if !out.status.success() {
            println!("peer: hnswlib_peer.py failed ({})", out.status);
            return;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cpu = stdout
            .lines()
            .find(|l| l.starts_with("hnswlib build:"))
            .and_then(|l| l.split("CPU ").nth(1))
            .and_then(|s| s.split(" s").next())
            .and_then(|s| s.trim().parse::<f64>().ok());
        let Some(cpu) = cpu else {
            println!("peer: no build CPU seconds in its output");
            return;
        };
        let ratio = |m: &Option<(Database, Measure)>| {
            m.as_ref()
                .map_or(String::from("n/a (case not run)"), |(_, m)| {
                    format!("{:.2} ({:.1} CPU-s)", m.cpu / cpu, m.cpu)
                })
        };
        println!(
            "peer: CPU ratio to hnswlib's build ({cpu:.1} CPU-s, graph only): bulk {} | incremental {}",
            ratio(&self.bulk),
            ratio(&self.incremental)
        );
    }
}

/// "N segments, M in memtable" in a few words.
fn short_segments(dir: &Path, total: usize) -> String {
    let segs = segments(dir);
    let mem = total.saturating_sub(segs.iter().sum());
    format!("{} segment(s), {mem} memtable rows", segs.len())
}

/// Ids (the `id` column) of the top hits of `req`.
fn ids(snap: &TableSnapshot, req: &SearchRequest<'_>) -> Vec<u32> {
    snap.search(req)
        .unwrap()
        .into_iter()
        .map(|h| match h.row.values[0] {
            Value::Integer(i) => i as u32,
            ref v => panic!("id column holds {v:?}"),
        })
        .collect()
}

/// 3 segments in a size tier, 3 in the tier below and 2 in the one below that (the policy's
/// tiers are powers of `merge_factor` = 4, and a quarter of a size is one tier down): 8
/// segments that the default merge policy leaves alone.
fn segment_sizes(n: usize) -> Vec<usize> {
    let s = (n as f64 / 3.875) as usize;
    let mut sizes = vec![s, s, s, s / 4, s / 4, s / 4, s / 16, s / 16];
    sizes[0] += n - sizes.iter().sum::<usize>();
    sizes.retain(|&x| x > 0);
    sizes
}

/// Single-row inserts, one every `period` (not catching up after a slow one), until `stop`;
/// returns each insert's start (seconds since `origin`) and latency.
#[allow(clippy::too_many_arguments)]
fn paced_inserts(
    db: &Database,
    base: &[f32],
    dim: usize,
    n: usize,
    next_id: &mut usize,
    period: Duration,
    origin: Instant,
    stop: impl Fn() -> bool,
) -> Vec<(f64, Duration)> {
    let mut lat = Vec::new();
    let mut due = Instant::now();
    while !stop() {
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        let r = row(base, dim, *next_id % n, *next_id);
        let start = Instant::now();
        db.insert(TABLE, vec![r]).unwrap();
        lat.push((start.duration_since(origin).as_secs_f64(), start.elapsed()));
        *next_id += 1;
        due = (due + period).max(Instant::now());
    }
    lat
}

/// Percentiles of the latencies, and when (seconds after the origin) the 5 slowest began.
fn percentiles(lat: &[(f64, Duration)]) -> String {
    if lat.is_empty() {
        return "no inserts".into();
    }
    let mut v: Vec<Duration> = lat.iter().map(|l| l.1).collect();
    v.sort_unstable();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    let slow = v.iter().filter(|d| d.as_millis() >= 10).count();
    let mut worst = lat.to_vec();
    worst.sort_by_key(|w| std::cmp::Reverse(w.1));
    let worst: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(t, d)| format!("{:.0} ms at {t:.1} s", d.as_secs_f64() * 1e3))
        .collect();
    format!(
        "{} inserts, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.1} ms, {slow} at 10 ms or more; slowest: {}",
        v.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        v[v.len() - 1].as_secs_f64() * 1e3,
        worst.join(", ")
    )
}

/// The data in `benches/hnswlib_peer.py`'s format (as `benches/hnsw.rs` writes it).
fn dump(dir: &Path, base: &[f32], queries: &[f32], truth: &[Vec<u32>], dim: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
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
        format!(
            "{{\"n\": {}, \"queries\": {}, \"dim\": {dim}, \"k\": {K}}}",
            base.len() / dim,
            queries.len() / dim
        )
        .into_bytes(),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let n: usize = env("MMDB_BENCH_ROWS", 100_000);
    let dim: usize = env("MMDB_BENCH_DIM", 512);
    let nq: usize = env("MMDB_BENCH_QUERIES", 500);
    let cases: Vec<String> = std::env::var("MMDB_BENCH_CASES")
        .map(|s| {
            s.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_else(|_| CASES.iter().map(|c| c.to_string()).collect());
    for c in &cases {
        assert!(
            CASES.contains(&c.as_str()),
            "unknown case {c:?} in MMDB_BENCH_CASES; cases: {}",
            CASES.join(",")
        );
    }
    let keep = std::env::var("MMDB_BENCH_DIR").is_ok();
    let base_dir = match std::env::var("MMDB_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => std::env::temp_dir().join(format!("mmdb-bench-bulk-{}", std::process::id())),
    };
    std::fs::create_dir_all(&base_dir).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "bulk bench: N {n}, dim {dim}, queries {nq}, cores {cores} (rayon threads {}), cases {}",
        rayon::current_num_threads(),
        cases.join(",")
    );
    println!(
        "  table {TABLE} (id INTEGER, emb VECTOR({dim})) cosine, M {M}, ef_construction {EF_CONSTRUCTION}; data: clustered unit vectors \
         (sqrt(N) centres, spread {SPREAD}, seed 42); k {K}, ef {EFS:?}"
    );
    println!(
        "  database defaults: Sync::Full, memtable {} MiB, merge_factor {DEFAULT_MERGE_FACTOR}, max_segments {DEFAULT_MAX_SEGMENTS}, \
         bulk chunk {} MiB, background maintenance; incremental batches {INSERT_BATCH} rows; dir {}",
        DEFAULT_MEMTABLE_MAX_BYTES >> 20,
        DEFAULT_BULK_CHUNK_BYTES >> 20,
        base_dir.display()
    );
    let start = Instant::now();
    let (base, queries) = clustered(n, nq, dim, 42);
    println!(
        "data generated in {:.1} s ({:.0} MiB of vectors)",
        start.elapsed().as_secs_f64(),
        (n * dim * 4) as f64 / (1 << 20) as f64
    );
    let mut bench = Bench {
        n,
        dim,
        base_dir: base_dir.clone(),
        keep,
        base,
        queries,
        truth: None,
        bulk: None,
        incremental: None,
        segmented: None,
    };
    let total = Instant::now();
    for case in &cases {
        match case.as_str() {
            "bulk" => bench.bulk(),
            "incremental" => bench.incremental(),
            "search" => bench.search(),
            "latency" => bench.latency(),
            "compaction_rss" => bench.compaction_rss(),
            "peer" => bench.peer(),
            _ => unreachable!(),
        }
    }
    drop(bench);
    if !keep {
        let _ = std::fs::remove_dir_all(&base_dir);
    }
    println!("bulk bench done in {:.0} s", total.elapsed().as_secs_f64());
}
