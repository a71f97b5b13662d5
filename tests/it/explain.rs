//! EXPLAIN output compared as text.

use mmdb::{Database, Session, Value};

fn setup() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut s = db.session();
    s.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, year INTEGER, emb VECTOR(2))",
        &[],
    )
    .unwrap();
    s.execute(
        "INSERT INTO t (year, emb) VALUES (2010, [1, 0]), (2016, [0, 1]), (2020, [1, 1]), (2021, [0.5, 1])",
        &[],
    )
    .unwrap();
    (dir, s)
}

fn explain(s: &mut Session, sql: &str) -> String {
    let rows = s.query(&format!("EXPLAIN {sql}"), &[]).unwrap();
    rows.iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn scan_with_filter_sort_and_limit() {
    let (_d, mut s) = setup();
    assert_eq!(
        explain(
            &mut s,
            "SELECT id, year + 1 AS next FROM t WHERE year > 2015 AND id <> 3 ORDER BY year DESC LIMIT 2 OFFSET 1"
        ),
        "Limit: limit=2 offset=1\n\
         \x20 Projection: id, year + 1 AS next\n\
         \x20   Sort: year DESC\n\
         \x20     Scan: table=t filter=(year > 2015 AND id <> 3) [rows=4]"
    );
}

#[test]
fn aggregate_plan() {
    let (_d, mut s) = setup();
    assert_eq!(
        explain(&mut s, "SELECT count(*), max(year) AS last FROM t"),
        "Projection: count(*), max(year) AS last\n\
         \x20 Aggregate: count(*), max(year)\n\
         \x20   Scan: table=t [rows=4]"
    );
}

#[test]
fn vector_search_plan_names_the_storage_path() {
    let (_d, mut s) = setup();
    let plan = explain(
        &mut s,
        "SELECT id, similarity(emb, [1, 0]) AS score FROM t ORDER BY score LIMIT 3",
    );
    let (sql_part, storage) = plan.split_once(" [path=").unwrap();
    let storage = format!("path={storage}");
    assert_eq!(
        sql_part,
        "Limit: limit=3 offset=0\n\
         \x20 Projection: id, similarity(emb, [1, 0]) AS score\n\
         \x20   VectorSearch: table=t column=emb metric=cosine query=[1, 0] k=3"
    );
    assert!(storage.starts_with("path="), "{storage}");
    assert!(
        storage.contains("ef=64") && storage.contains("est_rows=4"),
        "{storage}"
    );

    // A filter is pushed into the search, and the session settings show in the plan.
    s.execute("SET ef_search = 100", &[]).unwrap();
    let plan = explain(
        &mut s,
        "SELECT id FROM t WHERE year > 2015 ORDER BY similarity(emb, [1, 0]) LIMIT 2",
    );
    assert!(plan.contains("k=2 filter=(year > 2015) [path="), "{plan}");
    assert!(plan.contains("ef=100"), "{plan}");
    s.execute("SET exact = true", &[]).unwrap();
    let plan = explain(
        &mut s,
        "SELECT id FROM t ORDER BY similarity(emb, [1, 0]) LIMIT 2",
    );
    assert!(plan.contains("path=exact"), "{plan}");
}

#[test]
fn similarity_without_limit_or_ascending_is_a_sort() {
    let (_d, mut s) = setup();
    assert_eq!(
        explain(
            &mut s,
            "SELECT id FROM t ORDER BY similarity(emb, [1, 0]) ASC LIMIT 1"
        ),
        "Limit: limit=1 offset=0\n\
         \x20 Projection: id\n\
         \x20   Sort: similarity(emb, [1, 0]) ASC\n\
         \x20     Scan: table=t [rows=4]"
    );
    assert_eq!(
        explain(&mut s, "SELECT id FROM t ORDER BY distance(emb, row(2))"),
        "Projection: id\n\
         \x20 Sort: distance(emb, row(2)) ASC\n\
         \x20   Scan: table=t [rows=4]"
    );
}

#[test]
fn explain_of_writes_and_parameters() {
    let (_d, mut s) = setup();
    assert_eq!(
        explain(&mut s, "INSERT INTO t (year) VALUES (1), (2)"),
        "Insert: table=t rows=2"
    );
    assert_eq!(
        explain(&mut s, "DELETE FROM t WHERE year < 2000 OR id = 1"),
        "Delete: table=t filter=(year < 2000 OR id = 1)"
    );
    let rows = s
        .query(
            "EXPLAIN SELECT id FROM t WHERE year > ? ORDER BY similarity(emb, $2) LIMIT 1",
            &[Value::Integer(2015), Value::Vector(vec![1.0, 0.0])],
        )
        .unwrap();
    let text: Vec<String> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert!(
        text[2].contains("query=$2 k=1 filter=(year > $1)"),
        "{text:?}"
    );
}
