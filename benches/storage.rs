//! Storage engine bench: insert throughput (Sync::Full / Normal / Off, 512-d rows), segment build
//! time, and open time and RSS of a table of N x 512 (default 100,000; a plain binary so that open
//! can be measured in a fresh process).
//!
//! Run: `cargo bench --bench storage`. Sizes by environment variable:
//! `MMDB_BENCH_ROWS` (rows of the open/build table, default 100000; 1000000 for the 1M run),
//! `MMDB_BENCH_DIM` (default 512), `MMDB_BENCH_INSERTS` (rows per insert-throughput case,
//! default 2000), `MMDB_BENCH_DIR` (where to put the databases, default a temp dir),
//! `MMDB_BENCH_EFC` (the table's `ef_construction`, default the table default; a low value
//! makes the 1M build quick when only open and first search are of interest),
//! `MMDB_BENCH_IDLE_MS` (pause between open and the first search in the "idle" open case,
//! default 5000). The open cases run with checksum verification on the first search, in the
//! background from open with the search at once, and in the background with the pause.
//! Fixed seed; all data is random unit vectors.

use std::path::Path;
use std::time::Instant;

use mmdb::{Column, ColumnType, Database, Row, SearchRequest, Sync, TableSchema, Value};
use rand::{Rng, SeedableRng};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn schema(dim: u32) -> TableSchema {
    let mut s = TableSchema::new(
        "bench",
        vec![
            Column::new("n", ColumnType::Integer),
            Column::new("tag", ColumnType::Text),
            Column::new("emb", ColumnType::Vector(dim)),
        ],
    );
    s.hnsw.ef_construction = env("MMDB_BENCH_EFC", s.hnsw.ef_construction);
    s
}

fn rows(rng: &mut impl Rng, start: usize, n: usize, dim: usize) -> Vec<Row> {
    (start..start + n)
        .map(|i| {
            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            Row::new(vec![
                Value::Integer(i as i64),
                Value::Text(format!("tag{}", i % 100)),
                Value::Vector(v),
            ])
        })
        .collect()
}

fn insert_case(
    base: &Path,
    name: &str,
    sync: Sync,
    batch: usize,
    threads: usize,
    total: usize,
    dim: usize,
) {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::builder()
        .sync(sync)
        .memtable_max_bytes(usize::MAX)
        .open(&dir)
        .unwrap();
    db.create_table(schema(dim as u32)).unwrap();
    let per_thread = total / threads;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let data: Vec<Vec<Row>> = (0..threads)
        .map(|t| rows(&mut rng, t * per_thread, per_thread, dim))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for mut mine in data {
            let db = db.clone();
            s.spawn(move || {
                while !mine.is_empty() {
                    let rest = mine.split_off(batch.min(mine.len()));
                    db.insert("bench", std::mem::replace(&mut mine, rest))
                        .unwrap();
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = per_thread * threads;
    println!(
        "insert/{name}/dim={dim}/batch={batch}/threads={threads}: {n} rows in {secs:.3} s = {:.0} rows/s",
        n as f64 / secs
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

fn build_case(dir: &Path, n: usize, dim: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Database::builder()
        .sync(Sync::Off)
        .memtable_max_bytes(usize::MAX)
        .open(dir)
        .unwrap();
    db.create_table(schema(dim as u32)).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let start = Instant::now();
    for b in (0..n).step_by(10_000) {
        db.insert("bench", rows(&mut rng, b, 10_000.min(n - b), dim))
            .unwrap();
    }
    let load = start.elapsed().as_secs_f64();
    let start = Instant::now();
    db.checkpoint().unwrap();
    let build = start.elapsed().as_secs_f64();
    println!(
        "build/rows={n}/dim={dim}: insert (Sync::Off) {load:.2} s, segment build (checkpoint: rows, vectors, graph, fsync) {build:.2} s"
    );
    db.close().unwrap();
}

/// Runs in a fresh process: open, RSS, first and later queries. `verify`: "off" (checksums
/// verified by the first search), "background" (the default: a thread verifies from open on; the
/// search comes at once) or "idle" (the same, with a pause of `MMDB_BENCH_IDLE_MS` before the
/// search, as in an application that opens at start-up).
fn open_case(dir: &Path, dim: usize, verify: &str) {
    let rss0 = rss_mib();
    let start = Instant::now();
    let db = Database::builder()
        .read_only(true)
        .verify_in_background(verify != "off")
        .open(dir)
        .unwrap();
    let snap = db.snapshot("bench").unwrap();
    let open = start.elapsed().as_secs_f64();
    let rss1 = rss_mib();
    let n = snap.row_count();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let req = SearchRequest::new(2, &q, 10);
    if verify == "idle" {
        let idle = env("MMDB_BENCH_IDLE_MS", 5000) as u64;
        std::thread::sleep(std::time::Duration::from_millis(idle));
    }
    let start = Instant::now();
    snap.search(&req).unwrap();
    let first = start.elapsed().as_secs_f64();
    let rss2 = rss_mib();
    let start = Instant::now();
    let row = snap.get(n as u64 / 2).unwrap();
    let get = start.elapsed().as_secs_f64();
    assert!(row.is_some());
    let data_mib = (n * dim * 4) as f64 / (1 << 20) as f64;
    println!(
        "open/rows={n}/dim={dim}/verify={verify}: open {:.1} ms, RSS {rss0:.1} -> {rss1:.1} MiB after open (vector data {data_mib:.0} MiB); \
         first search {:.0} ms, RSS after {rss2:.1} MiB; get one row {:.2} ms",
        open * 1e3,
        first * 1e3,
        get * 1e3
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let dim = env("MMDB_BENCH_DIM", 512);
    let base = match std::env::var("MMDB_BENCH_DIR") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => std::env::temp_dir().join(format!("mmdb-bench-{}", std::process::id())),
    };
    if let Ok(dir) = std::env::var("MMDB_BENCH_OPEN_ONLY") {
        let verify = std::env::var("MMDB_BENCH_VERIFY").unwrap_or_else(|_| "off".into());
        open_case(Path::new(&dir), dim, &verify);
        return;
    }
    std::fs::create_dir_all(&base).unwrap();
    let inserts = env("MMDB_BENCH_INSERTS", 2000);
    insert_case(&base, "full", Sync::Full, 1, 1, inserts, dim);
    insert_case(&base, "full", Sync::Full, 100, 1, inserts * 10, dim);
    insert_case(&base, "normal", Sync::Normal, 1, 1, inserts, dim);
    insert_case(&base, "normal", Sync::Normal, 1, 8, inserts, dim);
    insert_case(&base, "off", Sync::Off, 1, 1, inserts * 10, dim);

    let n = env("MMDB_BENCH_ROWS", 100_000);
    let dir = base.join("table");
    build_case(&dir, n, dim);
    for verify in ["off", "background", "idle"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env("MMDB_BENCH_OPEN_ONLY", &dir)
            .env("MMDB_BENCH_DIM", dim.to_string())
            .env("MMDB_BENCH_VERIFY", verify)
            .status()
            .unwrap();
        assert!(status.success());
    }
    if std::env::var("MMDB_BENCH_DIR").is_err() {
        let _ = std::fs::remove_dir_all(&base);
    }
}
