//! Durability of the catalog and data; identical results across flush, compaction and reopen;
//! locking and read-only opens.

use mmdb::{
    Column, ColumnType, Database, Error, Metric, Row, RowId, SearchHit, SearchRequest, Sync,
    TableSchema, Value,
};

pub fn schema(dim: u32) -> TableSchema {
    let mut s = TableSchema::new(
        "items",
        vec![
            Column::new("k", ColumnType::Integer),
            Column::new("label", ColumnType::Text),
            Column::new("emb", ColumnType::Vector(dim)),
            Column::new("score", ColumnType::Real),
        ],
    );
    s.columns[2].metric = Metric::Cosine;
    s
}

/// A deterministic pseudo-random vector for seed `s`.
pub fn vector(s: u64, dim: u32) -> Vec<f32> {
    let mut x = s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 2001) as f32 / 1000.0) - 1.0
        })
        .collect()
}

pub fn row(k: i64, dim: u32) -> Row {
    Row::new(vec![
        Value::Integer(k),
        Value::Text(format!("label-{}", k % 10)),
        Value::Vector(vector(k as u64, dim)),
        Value::Real(k as f64 / 2.0),
    ])
}

fn searches(db: &Database, dim: u32) -> Vec<Vec<(RowId, i64)>> {
    let snap = db.snapshot("items").unwrap();
    let even = |_: RowId, r: &Row| matches!(r.values[0], Value::Integer(k) if k % 2 == 0);
    let label3 = |_: RowId, r: &Row| r.values[1] == Value::Text("label-3".into());
    let mut out = Vec::new();
    for q in 0..5u64 {
        let query = vector(10_000 + q, dim);
        for (exact, filter) in [
            (true, None),
            (false, None),
            (
                true,
                Some(&even as &(dyn Fn(RowId, &Row) -> bool + std::marker::Sync)),
            ),
            (
                false,
                Some(&label3 as &(dyn Fn(RowId, &Row) -> bool + std::marker::Sync)),
            ),
        ] {
            // ef above the row count: the graph search is exhaustive, so results are exact.
            let mut req = SearchRequest::new(2, &query, 7).ef(1000).exact(exact);
            req.filter = filter;
            let hits: Vec<SearchHit> = snap.search(&req).unwrap();
            out.push(
                hits.iter()
                    .map(|h| (h.id, (h.score * 1e5).round() as i64))
                    .collect(),
            );
        }
    }
    out
}

fn contents(db: &Database) -> Vec<(RowId, Row)> {
    db.snapshot("items")
        .unwrap()
        .scan()
        .collect::<mmdb::Result<_>>()
        .unwrap()
}

#[test]
fn identical_results_across_flush_compaction_reopen() {
    identical_results_across_flush_compaction_reopen_at(16);
}

/// 512 dims: segments store these vectors padded (`index::padded_stride`).
#[test]
fn identical_results_across_flush_compaction_reopen_512_d() {
    identical_results_across_flush_compaction_reopen_at(512);
}

fn identical_results_across_flush_compaction_reopen_at(dim: u32) {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Database::builder()
            .sync(Sync::Off)
            .memtable_max_bytes(usize::MAX)
            .open(dir.path())
            .unwrap()
    };
    let db = open();
    db.create_table(schema(dim)).unwrap();
    for b in 0..4 {
        db.insert("items", (0..100).map(|i| row(b * 100 + i, dim)).collect())
            .unwrap();
        if b % 2 == 1 {
            db.checkpoint().unwrap();
        }
    }
    db.delete("items", &(1..400).step_by(7).collect::<Vec<_>>())
        .unwrap();
    db.update("items", vec![(5, row(9999, dim)), (250, row(8888, dim))])
        .unwrap();
    let (before, rows) = (searches(&db, dim), contents(&db));
    assert_eq!(rows.len(), 400 - 57);
    db.checkpoint().unwrap();
    assert_eq!(searches(&db, dim), before);
    assert_eq!(contents(&db), rows);
    db.compact("items").unwrap();
    assert_eq!(searches(&db, dim), before);
    assert_eq!(contents(&db), rows);
    db.close().unwrap();
    let db = open();
    assert_eq!(searches(&db, dim), before);
    assert_eq!(contents(&db), rows);
    // And without a clean close: replay from the WAL.
    db.insert("items", vec![row(77777, dim)]).unwrap();
    let (before, rows) = (searches(&db, dim), contents(&db));
    drop(db);
    let db = open();
    assert_eq!(searches(&db, dim), before);
    assert_eq!(contents(&db), rows);
}

#[test]
fn catalog_persists() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut s = schema(4);
    s.hnsw.m = 8;
    s.columns[3].nullable = false;
    db.create_table(s.clone()).unwrap();
    let mut img = TableSchema::new(
        "Pics",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("img", ColumnType::Image),
        ],
    );
    img.primary_key = Some("id".into());
    db.create_table(img).unwrap();
    db.set_model_identity("pics", "fake dim=3", 3).unwrap();
    db.set_model_identity("pics", "fake dim=3", 3).unwrap();
    assert!(matches!(
        db.set_model_identity("pics", "other", 3),
        Err(Error::ModelMismatch { .. })
    ));
    let mut r = Row::new(vec![
        Value::Null,
        Value::Image(mmdb::ImageSource::Path("/x.jpg".into())),
    ]);
    r.embeddings[1] = Some(vec![0.0, 3.0, 4.0]);
    db.insert("pics", vec![r, Row::new(vec![Value::Null, Value::Null])])
        .unwrap();
    db.create_table(TableSchema::new(
        "gone",
        vec![Column::new("a", ColumnType::Integer)],
    ))
    .unwrap();
    db.insert("gone", vec![Row::new(vec![Value::Integer(1)])])
        .unwrap();
    db.drop_table("GONE").unwrap();
    assert!(matches!(db.drop_table("gone"), Err(Error::NoSuchTable(_))));
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.table_names(), vec!["Pics", "items"]);
    assert_eq!(db.table_schema("ITEMS").unwrap(), s);
    let pics = db.table_schema("pics").unwrap();
    assert_eq!(pics.columns[1].dim, 3);
    assert_eq!(pics.model_identity.as_deref(), Some("fake dim=3"));
    db.checkpoint().unwrap();
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let snap = db.snapshot("pics").unwrap();
    let r = snap.get(1).unwrap().unwrap();
    assert_eq!(r.values[0], Value::Integer(1));
    assert_eq!(r.embeddings[1], Some(vec![0.0, 0.6, 0.8]));
    assert_eq!(snap.get(2).unwrap().unwrap().embeddings[1], None);
    let hits = snap
        .search(&SearchRequest::new(1, &[0.0, 0.0, 1.0], 5))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].row, r);
}

#[test]
fn second_writer_is_refused_read_only_sees_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema(4)).unwrap();
    db.insert("items", (0..10).map(|i| row(i, 4)).collect())
        .unwrap();
    match Database::open(dir.path()) {
        Err(Error::Locked { path, holder }) => {
            assert_eq!(path, dir.path().canonicalize().unwrap());
            assert_eq!(holder, format!("pid {}", std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let ro = Database::open_read_only(dir.path()).unwrap();
    assert!(ro.is_read_only());
    db.checkpoint().unwrap();
    db.insert("items", vec![row(11, 4)]).unwrap();
    db.compact("items").unwrap();
    // The read-only handle keeps its state even though compaction removed the files it maps.
    assert_eq!(contents(&ro).len(), 10);
    let ro2 = Database::open_read_only(dir.path()).unwrap();
    assert_eq!(contents(&ro2).len(), 11);
    assert!(matches!(ro2.checkpoint(), Err(Error::ReadOnly { .. })));
}

#[test]
fn readers_are_not_blocked_by_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .sync(Sync::Normal)
        .memtable_max_bytes(20_000)
        .max_segments(3)
        .open(dir.path())
        .unwrap();
    db.create_table(schema(8)).unwrap();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for b in 0..40 {
                db.insert("items", (0..10).map(|i| row(b * 10 + i, 8)).collect())
                    .unwrap();
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let snap = db.snapshot("items").unwrap();
        let n = snap.scan().count();
        assert_eq!(n, snap.row_count());
        assert!(
            n >= last && n.is_multiple_of(10),
            "saw {n} rows after {last}"
        );
        last = n;
    }
    writer.join().unwrap();
    assert_eq!(db.snapshot("items").unwrap().row_count(), 400);
}

#[test]
fn database_is_send_sync_and_errors_name_things() {
    fn check<T: Send + std::marker::Sync + Clone>() {}
    check::<Database>();
    check::<mmdb::TableSnapshot>();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema(4)).unwrap();
    let mut bad = row(1, 4);
    bad.values[2] = Value::Vector(vec![1.0; 5]);
    let e = db.insert("items", vec![row(0, 4), bad]).unwrap_err();
    assert!(
        matches!(&e, Error::TypeMismatch { table, column, row: 2, .. } if table == "items" && column == "emb"),
        "{e}"
    );
    assert!(matches!(
        db.snapshot("nope"),
        Err(Error::NoSuchTable(t)) if t == "nope"
    ));
}

#[test]
fn read_only_opens_beside_a_busy_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .sync(Sync::Off)
        .memtable_max_bytes(8_000)
        .max_segments(2)
        .open(dir.path())
        .unwrap();
    db.create_table(schema(8)).unwrap();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for b in 0..60 {
                db.insert("items", (0..5).map(|i| row(b * 5 + i, 8)).collect())
                    .unwrap();
                if b % 10 == 9 {
                    db.compact("items").unwrap();
                }
            }
        })
    };
    let mut opens = 0;
    while !writer.is_finished() || opens < 3 {
        // Every open sees a whole number of batches, all readable, while checkpoints,
        // compactions and WAL rotations replace files underneath.
        let ro = Database::open_read_only(dir.path()).unwrap();
        let snap = ro.snapshot("items").unwrap();
        let rows: Vec<_> = snap.scan().collect::<mmdb::Result<_>>().unwrap();
        assert_eq!(rows.len() % 5, 0, "saw a partial batch");
        assert_eq!(rows.len(), snap.row_count());
        opens += 1;
    }
    writer.join().unwrap();
    let ro = Database::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.snapshot("items").unwrap().row_count(), 300);
}

#[test]
fn opening_a_file_as_a_database_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "hello").unwrap();
    let e = Database::open(&file).unwrap_err();
    assert!(
        e.to_string()
            .contains("is a file, not a database directory"),
        "{e}"
    );
    assert!(e.to_string().contains("notes.txt"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello");
}
