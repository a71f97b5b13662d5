//! Background maintenance and bulk loading, from outside: flushes and merges on their threads
//! never lose or resurrect a row, whatever the writers do meanwhile; merged graphs (which
//! reuse their largest input's graph) search as well as the exact index; a row is re-indexed a
//! logarithmic number of times over a load; a bulk load ends as one segment beside writers.

use std::collections::BTreeMap;

use mmdb::{
    Column, ColumnType, Database, Error, Metric, Row, RowId, SearchRequest, Sync, TableSchema,
    Value,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 16;

fn schema(pk: bool) -> TableSchema {
    let mut s = TableSchema::new(
        "t",
        vec![
            Column::new("k", ColumnType::Integer),
            Column::new("emb", ColumnType::Vector(DIM as u32)),
        ],
    );
    s.columns[1].metric = Metric::Cosine;
    if pk {
        s.primary_key = Some("k".into());
    }
    s
}

/// Clustered unit vectors: `sqrt(n)` centres, noise around them (as the HNSW bench).
fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = (n as f64).sqrt().max(1.0) as usize;
    let unit = |mut v: Vec<f32>| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    let centres: Vec<Vec<f32>> = (0..k)
        .map(|_| unit((0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()))
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..k)];
            unit(
                c.iter()
                    .map(|x| x + 0.25 * rng.random_range(-1.0f32..1.0))
                    .collect(),
            )
        })
        .collect()
}

fn row(k: i64, v: Vec<f32>) -> Row {
    Row::new(vec![Value::Integer(k), Value::Vector(v)])
}

/// `k` of every live row by id.
fn contents(db: &Database) -> BTreeMap<RowId, i64> {
    db.snapshot("t")
        .unwrap()
        .scan()
        .map(|r| {
            let (id, row) = r.unwrap();
            match row.values[0] {
                Value::Integer(k) => (id, k),
                ref v => panic!("k is {v:?}"),
            }
        })
        .collect()
}

fn small_db(dir: &std::path::Path) -> Database {
    Database::builder()
        .sync(Sync::Off)
        .memtable_max_bytes(6_000)
        .merge_factor(2)
        .max_segments(3)
        .max_deleted_fraction(0.2)
        .open(dir)
        .unwrap()
}

/// Inserts, updates and deletes from two threads while the flush and compaction threads run
/// under them; the table always equals the model, and so does every reopen (after a drop
/// without close: the WAL chain and the saved bitmaps, whatever was in flight).
#[test]
fn writers_beside_background_flushes_and_merges_lose_nothing() {
    for seed in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let db = small_db(dir.path());
        db.create_table(schema(false)).unwrap();
        let mut model: BTreeMap<RowId, i64> = BTreeMap::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let vectors = clustered(400, seed);
        // A second writer inserts into another table meanwhile (more flush traffic).
        let other = {
            let db = db.clone();
            let mut s = schema(false);
            s.name = "other".into();
            db.create_table(s).unwrap();
            std::thread::spawn(move || {
                for i in 0..150 {
                    db.insert("other", vec![row(i, clustered(1, i as u64).remove(0))])
                        .unwrap();
                }
            })
        };
        for step in 0..120 {
            match rng.random_range(0..10) {
                0..=5 => {
                    let n = rng.random_range(1..8);
                    let rows: Vec<Row> = (0..n)
                        .map(|_| {
                            let k = rng.random_range(0..1_000_000);
                            row(k, vectors[rng.random_range(0..vectors.len())].clone())
                        })
                        .collect();
                    let ks: Vec<i64> = rows
                        .iter()
                        .map(|r| match r.values[0] {
                            Value::Integer(k) => k,
                            _ => unreachable!(),
                        })
                        .collect();
                    let ids = db.insert("t", rows).unwrap();
                    model.extend(ids.into_iter().zip(ks));
                }
                6..=7 if !model.is_empty() => {
                    let ids: Vec<RowId> = model.keys().copied().collect();
                    let pick: Vec<RowId> = (0..rng.random_range(1..6))
                        .map(|_| ids[rng.random_range(0..ids.len())])
                        .collect();
                    db.delete("t", &pick).unwrap();
                    for id in pick {
                        model.remove(&id);
                    }
                }
                8 if !model.is_empty() => {
                    let ids: Vec<RowId> = model.keys().copied().collect();
                    let id = ids[rng.random_range(0..ids.len())];
                    let k = -(step as i64);
                    db.update(
                        "t",
                        vec![(id, row(k, vectors[step % vectors.len()].clone()))],
                    )
                    .unwrap();
                    model.insert(id, k);
                }
                _ => {
                    if rng.random_bool(0.3) {
                        db.compact("t").unwrap();
                    }
                }
            }
            assert_eq!(contents(&db), model, "seed {seed} step {step}");
        }
        other.join().unwrap();
        db.wait_for_maintenance();
        assert_eq!(db.health().maintenance_error, None);
        let stats = db.maintenance_stats();
        assert!(stats.flushes > 0 && stats.merges > 0, "{stats:?}");
        assert_eq!(contents(&db), model, "seed {seed}: after maintenance");
        drop(db);
        let db = small_db(dir.path());
        assert_eq!(contents(&db), model, "seed {seed}: reopened after a drop");
        db.close().unwrap();
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(contents(&db), model, "seed {seed}: reopened after close");
        assert_eq!(db.snapshot("other").unwrap().row_count(), 150);
    }
}

/// Recall@10 of graph search at `ef` against the exact answer, over `queries`.
fn recall(db: &Database, queries: &[Vec<f32>], ef: usize) -> f64 {
    let snap = db.snapshot("t").unwrap();
    let mut found = 0;
    for q in queries {
        let exact: Vec<RowId> = snap
            .search(&SearchRequest::new(1, q, 10).exact(true))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let graph = snap.search(&SearchRequest::new(1, q, 10).ef(ef)).unwrap();
        found += graph.iter().filter(|h| exact.contains(&h.id)).count();
    }
    found as f64 / (10 * queries.len()) as f64
}

/// An incremental load through many flushes and tiered merges (graphs reused), then one
/// compaction: search keeps the recall of a table built in one go, and each row was indexed a
/// logarithmic number of times.
#[test]
fn merged_graphs_recall_like_one_build_and_rows_are_indexed_few_times() {
    let n = 4_000;
    let vectors = clustered(n + 100, 11);
    let (base, queries) = vectors.split_at(n);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .sync(Sync::Off)
        .memtable_max_bytes(40_000)
        .open(dir.path())
        .unwrap();
    db.create_table(schema(false)).unwrap();
    for (b, chunk) in base.chunks(50).enumerate() {
        let rows = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| row((b * 50 + i) as i64, v.clone()))
            .collect();
        db.insert("t", rows).unwrap();
    }
    db.wait_for_maintenance();
    let stats = db.maintenance_stats();
    let snap = db.snapshot("t").unwrap();
    assert_eq!(snap.row_count(), n);
    assert!(stats.flushes >= 8, "{stats:?}");
    assert!(stats.vectors_reused > 0, "merges reused graphs: {stats:?}");
    // Tiers of fan-in 4 over ~flushes units: a row climbs log4(flushes) tiers, re-inserted in
    // at most 3 of every 4 merges (the largest input keeps its graph).
    let per_row = stats.vectors_indexed as f64 / n as f64;
    let tiers = (stats.flushes as f64).log(4.0).ceil();
    assert!(
        per_row <= 1.0 + tiers,
        "{per_row} per row over {tiers} tiers: {stats:?}"
    );
    assert!(
        snap.segment_count() <= 3 * tiers as usize + 1,
        "{} segments",
        snap.segment_count()
    );
    let incremental = recall(&db, queries, 64);
    db.compact("t").unwrap();
    assert_eq!(db.snapshot("t").unwrap().segment_count(), 1);
    let compacted = recall(&db, queries, 64);

    let dir2 = tempfile::tempdir().unwrap();
    let one = Database::open(dir2.path()).unwrap();
    one.create_table(schema(false)).unwrap();
    one.bulk_load(
        "t",
        base.iter()
            .enumerate()
            .map(|(i, v)| row(i as i64, v.clone())),
    )
    .unwrap();
    let fresh = recall(&one, queries, 64);
    assert!(fresh >= 0.95, "one build: {fresh}");
    assert!(
        compacted >= fresh - 0.02 && incremental >= fresh - 0.02,
        "incremental {incremental}, compacted {compacted}, one build {fresh}"
    );
}

/// A bulk load in many chunks ends as one segment, with every row, ids in order, and reopens.
#[test]
fn a_bulk_load_ends_as_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .bulk_chunk_bytes(20_000)
        .open(dir.path())
        .unwrap();
    db.create_table(schema(false)).unwrap();
    let vectors = clustered(1_000, 3);
    let ids = db
        .bulk_load(
            "t",
            vectors
                .iter()
                .enumerate()
                .map(|(i, v)| row(i as i64, v.clone())),
        )
        .unwrap();
    assert_eq!(ids, (1..=1_000).collect::<Vec<RowId>>());
    let snap = db.snapshot("t").unwrap();
    assert_eq!(snap.segment_count(), 1);
    assert_eq!(snap.memtable_rows(), 0);
    let stats = db.maintenance_stats();
    assert!(
        stats.vectors_reused > 0,
        "chunks extend the graph: {stats:?}"
    );
    // Each row inserted into a graph once.
    assert_eq!(stats.vectors_indexed, 1_000, "{stats:?}");
    let want: BTreeMap<RowId, i64> = (1..=1_000).map(|id| (id, id as i64 - 1)).collect();
    assert_eq!(contents(&db), want);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(contents(&db), want);
    assert!(recall(&db, &clustered(30, 99), 64) >= 0.95);
}

/// Writers beside a load: their automatic ids do not collide with the load's, a row of the
/// load deleted or updated meanwhile stays so, and a key given twice is refused.
#[test]
fn a_bulk_load_beside_writers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .bulk_chunk_bytes(10_000)
        .open(dir.path())
        .unwrap();
    db.create_table(schema(true)).unwrap();
    let vectors = clustered(600, 5);
    let mut loader = db.bulk_loader("t").unwrap();
    let mut model = BTreeMap::new();
    let auto = |v: &Vec<f32>| {
        let mut r = row(0, v.clone());
        r.values[0] = Value::Null;
        r
    };
    let mut loaded = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        // Automatic keys on both sides: the load's come from blocks it reserved.
        let id = loader.push(auto(v)).unwrap();
        model.insert(id, id as i64);
        loaded.push(id);
        if i % 100 == 50 {
            let ids = db.insert("t", vec![auto(v)]).unwrap();
            assert!(!loaded.contains(&ids[0]));
            model.insert(ids[0], ids[0] as i64);
        }
        if i == 300 {
            assert!(loader.committed() > 0, "chunks commit as the load goes");
            db.delete("t", &[loaded[10]]).unwrap();
            model.remove(&loaded[10]);
            let id = loaded[20];
            db.update("t", vec![(id, row(id as i64, vectors[0].clone()))])
                .unwrap();
        }
    }
    assert!(model.len() > 600);
    // A key the load (or anyone) already used is refused; the load goes on.
    let taken = loaded[5] as i64;
    let e = loader.push(row(taken, vectors[1].clone())).unwrap_err();
    assert!(
        matches!(e, Error::DuplicateKey { key, .. } if key == taken),
        "{e}"
    );
    assert_eq!(loader.finish().unwrap(), 600);
    assert_eq!(contents(&db), model);
    let first = db.snapshot("t").unwrap().get(loaded[20]).unwrap().unwrap();
    // The update's vector (normalised again when stored: equal up to rounding).
    let Value::Vector(got) = &first.values[1] else {
        panic!("{first:?}")
    };
    assert!(
        got.iter()
            .zip(&vectors[0])
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(contents(&db), model);
}

/// Committed chunks are durable; rows pending when the handle goes are not written.
#[test]
fn a_bulk_load_keeps_its_committed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema(false)).unwrap();
    let vectors = clustered(100, 8);
    let mut loader = db.bulk_loader("t").unwrap();
    for (i, v) in vectors.iter().enumerate().take(60) {
        loader.push(row(i as i64, v.clone())).unwrap();
    }
    loader.commit().unwrap();
    for (i, v) in vectors.iter().enumerate().skip(60) {
        loader.push(row(i as i64, v.clone())).unwrap();
    }
    assert_eq!((loader.committed(), loader.pending()), (60, 40));
    drop(loader);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.snapshot("t").unwrap().row_count(), 60);
    // A bad row is refused at push, naming it, and the load goes on.
    let mut loader = db.bulk_loader("t").unwrap();
    let bad = Row::new(vec![Value::Integer(1), Value::Vector(vec![1.0; 3])]);
    let e = loader.push(bad).unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { row: 1, .. }), "{e}");
    loader.push(row(7, vectors[7].clone())).unwrap();
    assert_eq!(loader.finish().unwrap(), 1);
    assert_eq!(db.snapshot("t").unwrap().row_count(), 61);
    assert!(matches!(
        db.bulk_loader("nope"),
        Err(Error::NoSuchTable(t)) if t == "nope"
    ));
}

/// Rows left in the memtable after a load are flushed once writes stop (they would otherwise
/// be scanned by every search); a few rows are not.
#[test]
fn an_idle_memtable_is_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .memtable_max_bytes(400_000)
        .open(dir.path())
        .unwrap();
    db.create_table(schema(false)).unwrap();
    let vectors = clustered(600, 2);
    db.insert("t", vec![row(0, vectors[0].clone())]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let snap = db.snapshot("t").unwrap();
    assert_eq!(
        (snap.memtable_rows(), snap.segment_count()),
        (1, 0),
        "one row stays"
    );
    let rows = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| row(i as i64, v.clone()));
    db.insert("t", rows.collect()).unwrap();
    let snap = db.snapshot("t").unwrap();
    assert!(
        snap.memtable_rows() > 0,
        "below the threshold: no flush yet"
    );
    let start = std::time::Instant::now();
    while db.snapshot("t").unwrap().memtable_rows() > 0 {
        assert!(start.elapsed().as_secs() < 20, "never flushed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(db.snapshot("t").unwrap().row_count(), 601);
}

/// Flushes extend the newest segment while it holds at most `merge_factor` flushes' worth of
/// rows: every row is inserted into a graph once (the segment's graph is extended, not
/// rebuilt), rows deleted or updated in it before a flush stay so after it, and the table
/// reopens as it was.
#[test]
fn flushes_extend_the_newest_segment_inserting_each_row_once() {
    const FLUSH: usize = 100;
    let vectors = clustered(9 * FLUSH, 5);
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Database::builder()
            .sync(Sync::Off)
            .background_maintenance(false)
            .open(dir.path())
            .unwrap()
    };
    let db = open();
    db.create_table(schema(true)).unwrap();
    let mut model: BTreeMap<RowId, i64> = BTreeMap::new();
    for (f, chunk) in vectors.chunks(FLUSH).enumerate() {
        let rows: Vec<Row> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| row((f * FLUSH + i + 1) as i64, v.clone()))
            .collect();
        for id in db.insert("t", rows).unwrap() {
            model.insert(id, id as i64);
        }
        if f > 0 {
            // A row of the segment about to be extended: deleted, and another updated.
            let (gone, moved) = ((f * FLUSH - 3) as RowId, (f * FLUSH - 7) as RowId);
            db.delete("t", &[gone]).unwrap();
            model.remove(&gone);
            db.update("t", vec![(moved, row(moved as i64, vectors[0].clone()))])
                .unwrap();
        }
        db.checkpoint().unwrap();
        let segments = db.snapshot("t").unwrap().segment_count();
        // Four flushes per segment (merge_factor 4): 1..4 in the first, 5..8 in the second.
        assert_eq!(segments, f / 4 + 1, "after flush {}", f + 1);
        assert_eq!(contents(&db), model, "after flush {}", f + 1);
    }
    let stats = db.maintenance_stats();
    // Each flush inserts its own rows (and the updated rows again); no merge ran.
    assert_eq!(stats.merges, 0, "{stats:?}");
    assert_eq!(stats.vectors_indexed, (9 * FLUSH + 8) as u64, "{stats:?}");
    assert!(stats.vectors_reused > 0, "{stats:?}");
    db.close().unwrap();
    let db = open();
    assert_eq!(contents(&db), model);
    assert_eq!(db.snapshot("t").unwrap().segment_count(), 3);
}
