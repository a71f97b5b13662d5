//! SQL overhead on vector search: p50 / p99 latency of
//! `SELECT id FROM t [WHERE ...] ORDER BY similarity(emb, ?) LIMIT 10` through SQL (prepared, and
//! parsed every time) against `TableSnapshot::search` called directly, on the same data.
//!
//! Percentiles need every sample, so this is a plain harness (`harness = false`), not criterion.
//! Sizes: `MMDB_BENCH_ROWS` (default 100000), `MMDB_BENCH_DIM` (128), `MMDB_BENCH_QUERIES` (300).
//! Data: fixed-seed uniform vectors; `bucket = i % 100`, so `bucket < 10` keeps 10% of rows and
//! `bucket = 7` keeps 1%.

use std::time::{Duration, Instant};

use mmdb::{Database, Row, RowId, SearchRequest, Value, params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A filter on the benchmark rows.
type RowPredicate = fn(&Row) -> bool;

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn measure(queries: &[Vec<f32>], mut f: impl FnMut(&[f32]) -> usize) -> Stats {
    // Warm up (page in the segment files, fill caches).
    for q in queries.iter().take(20) {
        f(q);
    }
    let mut times: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let n = f(q);
            let e = t.elapsed();
            assert_eq!(n, 10, "every case returns 10 rows");
            e
        })
        .collect();
    times.sort();
    let pick = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    Stats {
        p50: pick(0.50),
        p99: pick(0.99),
        mean,
    }
}

fn main() {
    let rows = env("MMDB_BENCH_ROWS", 100_000);
    let dim = env("MMDB_BENCH_DIM", 128);
    let nq = env("MMDB_BENCH_QUERIES", 300);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let vector = |rng: &mut ChaCha8Rng| {
        (0..dim)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect::<Vec<f32>>()
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::builder()
        .sync(mmdb::Sync::Off)
        .open(dir.path().join("db"))
        .expect("open");
    db.execute(
        &format!("CREATE TABLE t (id INTEGER PRIMARY KEY, bucket INTEGER, emb VECTOR({dim}))"),
        params![],
    )
    .expect("create");
    let t = Instant::now();
    for start in (0..rows).step_by(10_000) {
        let batch: Vec<Row> = (start..(start + 10_000).min(rows))
            .map(|i| {
                Row::new(vec![
                    Value::Null,
                    Value::Integer((i % 100) as i64),
                    Value::Vector(vector(&mut rng)),
                ])
            })
            .collect();
        db.insert("t", batch).expect("insert");
    }
    db.checkpoint().expect("checkpoint");
    eprintln!(
        "loaded {rows} x {dim} rows and built the index in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let queries: Vec<Vec<f32>> = (0..nq).map(|_| vector(&mut rng)).collect();

    println!("| case | filter | p50 µs | p99 µs | mean µs |");
    println!("|---|---|---|---|---|");
    let filters: [(&str, Option<RowPredicate>); 3] = [
        ("none", None),
        (
            "bucket < 10 (10%)",
            Some(|r: &Row| matches!(r.values[1], Value::Integer(b) if b < 10)),
        ),
        (
            "bucket = 7 (1%)",
            Some(|r: &Row| matches!(r.values[1], Value::Integer(7))),
        ),
    ];
    for (label, filter) in filters {
        let where_sql = match label {
            "none" => "",
            l if l.starts_with("bucket < 10") => "WHERE bucket < 10 ",
            _ => "WHERE bucket = 7 ",
        };
        let sql = format!("SELECT id FROM t {where_sql}ORDER BY similarity(emb, ?) LIMIT 10");
        // The filter reads column 1 only: say so (`filter_columns`), as SQL does, and also
        // measure the whole-row read it replaces.
        let direct_with = |columns: Option<&[usize]>| {
            measure(&queries, |q| {
                let snap = db.snapshot("t").expect("snapshot");
                let pred = |_: RowId, r: &Row| filter.is_none_or(|f| f(r));
                let mut req = SearchRequest::new(2, q, 10);
                req.filter = filter.map(|_| &pred as &(dyn Fn(RowId, &Row) -> bool + Sync));
                req.filter_columns = columns;
                snap.search(&req).expect("search").len()
            })
        };
        let whole_rows = direct_with(None);
        let direct = direct_with(Some(&[1]));
        let mut stmt = db.prepare(&sql).expect("prepare");
        let prepared = measure(&queries, |q| {
            stmt.query(params![q.to_vec()]).expect("query").len()
        });
        let adhoc = measure(&queries, |q| {
            db.query(&sql, params![q.to_vec()]).expect("query").len()
        });
        for (case, s) in [
            ("storage search, filter reads whole rows", &whole_rows),
            ("storage search", &direct),
            ("SQL prepared", &prepared),
            ("SQL parsed each time", &adhoc),
        ] {
            println!(
                "| {case} | {label} | {:.0} | {:.0} | {:.0} |",
                s.p50.as_secs_f64() * 1e6,
                s.p99.as_secs_f64() * 1e6,
                s.mean.as_secs_f64() * 1e6
            );
        }
        println!(
            "| SQL overhead (prepared - direct, p50) | {label} | {:.0} | | |",
            (prepared.p50.as_secs_f64() - direct.p50.as_secs_f64()) * 1e6
        );
    }
}
