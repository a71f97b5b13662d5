//! SQL overhead on vector search, two parts (`cargo bench --bench sql [-- search | literal]` runs
//! one):
//!
//! - `search`: p50 / p99 latency of `SELECT id FROM t [WHERE ...] ORDER BY similarity(emb, ?)
//!   LIMIT 10` through SQL (prepared, and parsed every time) against `TableSnapshot::search` called
//!   directly, on the same data. Sizes: `MMDB_BENCH_ROWS` (default 100000), `MMDB_BENCH_DIM` (128).
//!   `bucket = i % 100`, so `bucket < 10` keeps 10% of rows and `bucket = 7` keeps 1%.
//! - `literal`: the same search through `Database::query` with the query vector written in the SQL
//!   text as a `[...]` literal against the same vector given as a parameter, alternating per query.
//!   Sizes: `MMDB_BENCH_LITERAL_ROWS` (10000), `MMDB_BENCH_LITERAL_DIM` (512).
//!
//! Both: `MMDB_BENCH_QUERIES` (300) queries, fixed-seed uniform vectors. Percentiles need every
//! sample, so this is a plain harness (`harness = false`), not criterion.

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

fn stats(mut times: Vec<Duration>) -> Stats {
    times.sort();
    let pick = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    Stats {
        p50: pick(0.50),
        p99: pick(0.99),
        mean,
    }
}

fn measure(queries: &[Vec<f32>], mut f: impl FnMut(&[f32]) -> usize) -> Stats {
    // Warm up (page in the segment files, fill caches).
    for q in queries.iter().take(20) {
        f(q);
    }
    let times = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let n = f(q);
            let e = t.elapsed();
            assert_eq!(n, 10, "every case returns 10 rows");
            e
        })
        .collect();
    stats(times)
}

fn main() {
    // `cargo bench` passes `--bench`; a plain word picks one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if wanted("search") {
        search_overhead();
    }
    if wanted("literal") {
        literal_vs_parameter();
    }
}

fn random_vectors(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..dim).map(|_| rng.random::<f32>() - 0.5).collect())
        .collect()
}

/// A database in a temp dir with table `t (id, bucket = i % 100, emb VECTOR(dim))` of `rows`
/// random rows, checkpointed so the HNSW graph is built.
fn load(rows: usize, dim: usize, rng: &mut ChaCha8Rng) -> (tempfile::TempDir, Database) {
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
        let n = (start + 10_000).min(rows) - start;
        let batch: Vec<Row> = random_vectors(rng, n, dim)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                Row::new(vec![
                    Value::Null,
                    Value::Integer(((start + i) % 100) as i64),
                    Value::Vector(v),
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
    (dir, db)
}

fn search_overhead() {
    let rows = env("MMDB_BENCH_ROWS", 100_000);
    let dim = env("MMDB_BENCH_DIM", 128);
    let nq = env("MMDB_BENCH_QUERIES", 300);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (_dir, db) = load(rows, dim, &mut rng);
    let queries = random_vectors(&mut rng, nq, dim);

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

/// The query vector as a `[...]` literal in the SQL text against the same vector as a parameter.
/// The two alternate (which goes first flips every query) so load on the machine hits both alike.
fn literal_vs_parameter() {
    let rows = env("MMDB_BENCH_LITERAL_ROWS", 10_000);
    let dim = env("MMDB_BENCH_LITERAL_DIM", 512);
    let nq = env("MMDB_BENCH_QUERIES", 300);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (_dir, db) = load(rows, dim, &mut rng);
    let queries = random_vectors(&mut rng, nq, dim);
    let param_sql = "SELECT id FROM t ORDER BY similarity(emb, ?) LIMIT 10";
    // `{}` prints the shortest text that reads back as the same f32, as a client would send it.
    let literal_sql: Vec<String> = queries
        .iter()
        .map(|q| {
            let items: Vec<String> = q.iter().map(|x| x.to_string()).collect();
            format!(
                "SELECT id FROM t ORDER BY similarity(emb, [{}]) LIMIT 10",
                items.join(", ")
            )
        })
        .collect();
    let ids = |rows: mmdb::Rows| -> Vec<i64> {
        rows.iter().map(|r| r.get::<i64>(0).expect("id")).collect()
    };
    let run_param = |q: &[f32]| {
        let t = Instant::now();
        let r = db.query(param_sql, params![q.to_vec()]).expect("query");
        (t.elapsed(), ids(r))
    };
    let run_literal = |sql: &str| {
        let t = Instant::now();
        let r = db.query(sql, params![]).expect("query");
        (t.elapsed(), ids(r))
    };
    for (q, sql) in queries.iter().zip(&literal_sql).take(20) {
        run_param(q);
        run_literal(sql);
    }
    let (mut by_param, mut by_literal) = (Vec::new(), Vec::new());
    for (i, (q, sql)) in queries.iter().zip(&literal_sql).enumerate() {
        let ((tp, a), (tl, b)) = if i % 2 == 0 {
            let p = run_param(q);
            (p, run_literal(sql))
        } else {
            let l = run_literal(sql);
            (run_param(q), l)
        };
        assert_eq!(a, b, "the literal and the parameter find the same rows");
        assert_eq!(a.len(), 10, "every case returns 10 rows");
        by_param.push(tp);
        by_literal.push(tl);
    }
    let (p, l) = (stats(by_param), stats(by_literal));
    let chars = literal_sql.iter().map(String::len).sum::<usize>() / nq;
    println!();
    println!("| {rows} x {dim}, LIMIT 10 | p50 µs | p99 µs | mean µs |");
    println!("|---|---|---|---|");
    for (case, s) in [
        ("vector as a parameter (`?`)", &p),
        ("vector as a literal (about {chars} chars of SQL)", &l),
    ] {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            case.replace("{chars}", &chars.to_string()),
            s.p50.as_secs_f64() * 1e6,
            s.p99.as_secs_f64() * 1e6,
            s.mean.as_secs_f64() * 1e6
        );
    }
    println!(
        "| literal speed relative to the parameter (p50 ratio) | {:.2}x | | |",
        p.p50.as_secs_f64() / l.p50.as_secs_f64()
    );
}
