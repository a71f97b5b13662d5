//! Unit tests of the database API.

use super::*;
use crate::{Column, Metric, Row, RowId, Value};

fn schema() -> TableSchema {
    let mut s = TableSchema::new(
        "T",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("name", ColumnType::Text),
            Column::new("v", ColumnType::Vector(3)),
        ],
    );
    s.primary_key = Some("id".into());
    s
}

fn row(name: &str, v: [f32; 3]) -> Row {
    Row::new(vec![
        Value::Null,
        Value::Text(name.into()),
        Value::Vector(v.to_vec()),
    ])
}

fn query<'a>(q: &'a [f32], k: usize) -> SearchRequest<'a> {
    SearchRequest {
        column: 2,
        query: q,
        k,
        ef: None,
        exact: false,
        filter: None,
        filter_columns: None,
    }
}

#[test]
fn create_insert_search_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema()).unwrap();
    assert!(matches!(
        db.create_table(schema()),
        Err(Error::TableExists(_))
    ));
    let ids = db
        .insert(
            "t",
            vec![row("a", [1.0, 0.0, 0.0]), row("b", [0.0, 1.0, 0.0])],
        )
        .unwrap();
    assert_eq!(ids, vec![1, 2]);
    let snap = db.snapshot("T").unwrap();
    assert_eq!(snap.get(1).unwrap().unwrap().values[0], Value::Integer(1));
    let hits = snap.search(&query(&[0.0, 2.0, 0.0], 1)).unwrap();
    assert_eq!(hits[0].id, 2);
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.table_names(), vec!["T".to_string()]);
    assert_eq!(db.snapshot("t").unwrap().row_count(), 2);
    db.checkpoint().unwrap();
    let hits = db
        .snapshot("t")
        .unwrap()
        .search(&query(&[0.0, 2.0, 0.0], 2))
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(
        hits[0].row,
        db.snapshot("t").unwrap().get(2).unwrap().unwrap()
    );
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let snap = db.snapshot("t").unwrap();
    let all: Vec<_> = snap.scan().map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].1.values[1], Value::Text("b".into()));
}

#[test]
fn validation_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema()).unwrap();
    let bad = Row::new(vec![
        Value::Null,
        Value::Integer(3),
        Value::Vector(vec![1.0, 0.0, 0.0]),
    ]);
    let e = db
        .insert("t", vec![row("a", [1.0, 0.0, 0.0]), bad])
        .unwrap_err();
    assert!(
        matches!(e, Error::TypeMismatch { row: 2, ref column, .. } if column == "name"),
        "{e}"
    );
    assert_eq!(db.snapshot("t").unwrap().row_count(), 0);
    let mut r = row("x", [1.0, 0.0, 0.0]);
    r.values[0] = Value::Integer(10);
    assert_eq!(db.insert("t", vec![r.clone()]).unwrap(), vec![10]);
    assert!(db.insert("t", vec![r]).is_err());
    assert_eq!(
        db.insert("t", vec![row("y", [1.0, 0.0, 0.0])]).unwrap(),
        vec![11]
    );
}

#[test]
fn delete_update_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema()).unwrap();
    db.insert(
        "t",
        (0..10)
            .map(|i| row(&i.to_string(), [1.0, i as f32, 0.0]))
            .collect(),
    )
    .unwrap();
    db.checkpoint().unwrap();
    assert_eq!(db.delete("t", &[1, 2, 99]).unwrap(), 2);
    assert_eq!(
        db.update("t", vec![(3, row("three", [0.0, 0.0, 1.0]))])
            .unwrap(),
        1
    );
    let check = |db: &Database| {
        let s = db.snapshot("t").unwrap();
        assert_eq!(s.row_count(), 8);
        assert!(s.get(1).unwrap().is_none());
        assert_eq!(
            s.get(3).unwrap().unwrap().values[1],
            Value::Text("three".into())
        );
        let hits = s.search(&query(&[0.0, 0.0, 1.0], 1)).unwrap();
        assert_eq!(hits[0].id, 3);
    };
    check(&db);
    db.checkpoint().unwrap();
    check(&db);
    db.compact("t").unwrap();
    check(&db);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    check(&db);
    assert_eq!(db.delete_where("t", &|id, _| id % 2 == 0).unwrap(), 4);
    assert_eq!(db.snapshot("t").unwrap().row_count(), 4);
}

#[test]
fn locks_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema()).unwrap();
    db.insert("t", vec![row("a", [1.0, 0.0, 0.0])]).unwrap();
    assert!(matches!(
        Database::open(dir.path()),
        Err(Error::Locked { .. })
    ));
    let ro = Database::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.snapshot("t").unwrap().row_count(), 1);
    assert!(matches!(
        ro.insert("t", vec![row("b", [1.0, 0.0, 0.0])]),
        Err(Error::ReadOnly { .. })
    ));
    db.insert("t", vec![row("b", [1.0, 0.0, 0.0])]).unwrap();
    assert_eq!(ro.snapshot("t").unwrap().row_count(), 1);
    db.close().unwrap();
    Database::open(dir.path()).unwrap();
}

#[test]
fn filtered_search_returns_k_when_k_match() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut s = schema();
    s.columns[2].metric = Metric::L2;
    db.create_table(s).unwrap();
    db.insert(
        "t",
        (0..500)
            .map(|i| row(&(i % 100).to_string(), [i as f32, 1.0, 0.0]))
            .collect(),
    )
    .unwrap();
    db.checkpoint().unwrap();
    db.insert(
        "t",
        (0..50)
            .map(|i| row(&(i % 100).to_string(), [i as f32, 2.0, 0.0]))
            .collect(),
    )
    .unwrap();
    let f = |_: RowId, r: &Row| r.values[1] == Value::Text("7".into());
    let snap = db.snapshot("t").unwrap();
    let req = SearchRequest {
        filter: Some(&f),
        ..query(&[0.0, 0.0, 0.0], 6)
    };
    let hits = snap.search(&req).unwrap();
    assert_eq!(hits.len(), 6);
    assert!(hits.iter().all(|h| f(h.id, &h.row)));
    let plan = snap.plan_search(&req);
    assert_eq!(plan.path, SearchPath::FilteredExact);
    assert!(
        plan.to_string()
            .starts_with("VectorSearch: column=v k=6 path=filtered-exact"),
        "{plan}"
    );
}

#[test]
fn filter_reads_only_the_named_columns_and_finds_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.create_table(schema()).unwrap();
    db.insert(
        "t",
        (0..400)
            .map(|i| row(&(i % 4).to_string(), [i as f32, 1.0, 0.5]))
            .collect(),
    )
    .unwrap();
    db.checkpoint().unwrap();
    let snap = db.snapshot("t").unwrap();
    let all = |_: RowId, r: &Row| r.values[1] == Value::Text("2".into());
    let projected = |_: RowId, r: &Row| {
        // Only `name` (1) was asked for: the rest is Null, no embeddings or vectors.
        assert_eq!(r.values[0], Value::Null, "id not read");
        assert_eq!(r.values[2], Value::Null, "vector not read");
        r.values[1] == Value::Text("2".into())
    };
    for exact in [false, true] {
        let whole = SearchRequest {
            filter: Some(&all),
            exact,
            ..query(&[1.0, 0.0, 0.0], 10)
        };
        let named = SearchRequest {
            filter: Some(&projected),
            filter_columns: Some(&[1]),
            ..whole
        };
        let (a, b) = (snap.search(&whole).unwrap(), snap.search(&named).unwrap());
        assert_eq!(a.len(), 10);
        assert_eq!(a, b, "exact={exact}");
        assert!(
            b.iter()
                .all(|h| matches!(h.row.values[2], Value::Vector(_))),
            "result rows are whole"
        );
    }
}
