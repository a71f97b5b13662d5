//! Crash test: a child process (this test binary, re-run with `MMDB_CRASH_DIR` set) inserts
//! batches and prints each acknowledged batch; the parent SIGKILLs it at random moments. After
//! every kill the database must open, and every acknowledged row must be present and intact.
//!
//! The child uses a tiny memtable and segment limit so kills also land inside flushes,
//! manifest commits, WAL rotations and compactions.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mmdb::{Database, Row, Sync, Value};
use rand::{Rng, SeedableRng};

use crate::persistence::{row, schema};

const ENV_DIR: &str = "MMDB_CRASH_DIR";
const ENV_FIRST: &str = "MMDB_CRASH_FIRST_BATCH";
const ROWS_PER_BATCH: i64 = 8;
const DIM: u32 = 16;
const TRIALS: usize = 24;

fn open(dir: &std::path::Path) -> mmdb::Result<Database> {
    Database::builder()
        .sync(Sync::Full)
        .memtable_max_bytes(24 * 1024)
        .max_segments(3)
        .open(dir)
}

/// The child role: only does something when started by `crash_trials`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let first: i64 = std::env::var(ENV_FIRST).unwrap().parse().unwrap();
    let db = open(dir.as_ref()).unwrap();
    if db.table_names().is_empty() {
        db.create_table(schema(DIM)).unwrap();
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    for b in first.. {
        let rows = (0..ROWS_PER_BATCH)
            .map(|i| row(b * ROWS_PER_BATCH + i, DIM))
            .collect();
        db.insert("items", rows).unwrap();
        writeln!(out, "ACK {b}").unwrap();
        out.flush().unwrap();
    }
}

fn check_row(r: &Row) -> i64 {
    let Value::Integer(k) = r.values[0] else {
        panic!("bad row {r:?}")
    };
    let want = row(k, DIM);
    assert_eq!(r.values[1], want.values[1], "row {k}");
    assert_eq!(r.values[3], want.values[3], "row {k}");
    let (Value::Vector(got), Value::Vector(raw)) = (&r.values[2], &want.values[2]) else {
        panic!("row {k} has no vector")
    };
    let n: f32 = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (g, w) in got.iter().zip(raw) {
        assert!((g - w / n).abs() < 1e-5, "row {k}: vector differs");
    }
    k
}

#[test]
fn crash_trials() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Run a private copy of this binary: a rebuild (shared target directories) may replace the
    // original while the trials run.
    let bin = tempfile::tempdir().unwrap();
    let exe = bin.path().join("crash-child");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xC0FFEE);
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut kills_after_ack = 0;
    for trial in 0..TRIALS {
        let first = trial as i64 * 1_000_000;
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .env(ENV_FIRST, first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        // Kill at a random moment: from right after start to well into the run.
        let wait = Duration::from_millis(rng.random_range(5..400));
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("child exited on its own: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let before = acked.len();
        for l in &lines {
            if let Some(b) = l.strip_prefix("ACK ") {
                acked.insert(b.parse().unwrap());
            }
        }
        kills_after_ack += usize::from(acked.len() > before);

        // Reopen must succeed and hold every acknowledged batch, whole.
        let db = open(dir.path()).unwrap_or_else(|e| panic!("trial {trial}: open failed: {e}"));
        let Ok(snap) = db.snapshot("items") else {
            assert!(acked.is_empty(), "trial {trial}: table lost");
            continue;
        };
        let mut present: BTreeSet<i64> = BTreeSet::new();
        let mut per_batch = std::collections::BTreeMap::<i64, i64>::new();
        for r in snap.scan() {
            let (_, r) = r.unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            let k = check_row(&r);
            present.insert(k / ROWS_PER_BATCH);
            *per_batch.entry(k / ROWS_PER_BATCH).or_default() += 1;
        }
        for b in &acked {
            assert!(
                present.contains(b),
                "trial {trial}: acknowledged batch {b} lost"
            );
        }
        for (b, n) in per_batch {
            assert_eq!(
                n, ROWS_PER_BATCH,
                "trial {trial}: batch {b} partially present"
            );
        }
        db.close().unwrap();
    }
    assert!(
        kills_after_ack >= TRIALS / 2,
        "too few trials got past startup"
    );
}
