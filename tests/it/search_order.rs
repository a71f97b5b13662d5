//! Ranking of vector search with equal scores, and LIMIT/OFFSET over it.
//!
//! The promise (docs/sql.md): results order by score descending, then row id ascending, on every
//! path (exact, filtered, HNSW) and across the memtable and segments. So `LIMIT l OFFSET o` is a
//! slice of one ranked list, and pages put together give the unpaged answer. HNSW is approximate,
//! but with the same candidate list size (`ef_search`, which grows to `LIMIT + OFFSET`) the pages
//! come from the same walk and are still slices. The data here is mostly duplicates, so nearly
//! every page boundary falls inside a run of equal scores.

use mmdb::coco::{self, NpyImportOptions, RecallOptions};
use mmdb::{Database, SearchRequest, Session, Value};
use proptest::prelude::*;

/// Directions the rows point in: few, so that most scores tie.
const DIRECTIONS: [[f32; 2]; 5] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5], [0.6, 0.8]];

fn vector_sql(v: [f32; 2]) -> String {
    format!("[{}, {}]", v[0], v[1])
}

fn ids(s: &mut Session, sql: &str) -> Vec<i64> {
    s.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<i64>(0).unwrap())
        .collect()
}

/// (id, score) in the order returned.
fn scored(s: &mut Session, sql: &str) -> Vec<(i64, f64)> {
    s.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (r.get::<i64>(0).unwrap(), r.get::<f64>(1).unwrap()))
        .collect()
}

/// Rows `(direction, group)` with ids 1..; `stage` 0 and 1 end in a checkpoint each (two
/// segments), stage 2 stays in the memtable; then `deleted` ids go and `moved` ids are rewritten
/// with the same vector (their new version in the memtable, the old one deleted in its segment).
#[derive(Debug)]
struct Data {
    rows: Vec<(usize, i64, usize)>,
    deleted: Vec<usize>,
    moved: Vec<usize>,
}

fn data() -> impl Strategy<Value = Data> {
    prop::collection::vec((0..DIRECTIONS.len(), 0..3i64, 0..3usize), 1..48).prop_flat_map(|rows| {
        let n = rows.len();
        (
            Just(rows),
            prop::collection::vec(0..n, 0..4),
            prop::collection::vec(0..n, 0..4),
        )
            .prop_map(|(rows, deleted, moved)| Data {
                rows,
                deleted,
                moved,
            })
    })
}

fn load(data: &Data, metric: &str) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    db.execute(
        &format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, emb VECTOR(2)) \
             WITH (metric = '{metric}', m = 4, ef_construction = 16)"
        ),
        &[],
    )
    .unwrap();
    let insert = |id: usize, (d, g, _): (usize, i64, usize)| {
        db.execute(
            &format!(
                "INSERT INTO t (id, g, emb) VALUES ({}, {g}, {})",
                id + 1,
                vector_sql(DIRECTIONS[d])
            ),
            &[],
        )
        .unwrap();
    };
    for stage in 0..3 {
        for (i, &r) in data.rows.iter().enumerate() {
            if r.2 == stage {
                insert(i, r);
            }
        }
        if stage < 2 {
            db.checkpoint().unwrap();
        }
    }
    for &i in &data.moved {
        let (d, g, _) = data.rows[i];
        db.execute(
            &format!(
                "UPDATE t SET g = {g}, emb = {} WHERE id = {}",
                vector_sql(DIRECTIONS[d]),
                i + 1
            ),
            &[],
        )
        .unwrap();
    }
    for &i in &data.deleted {
        db.execute(&format!("DELETE FROM t WHERE id = {}", i + 1), &[])
            .unwrap();
    }
    (dir, db)
}

/// The pages of `LIMIT l OFFSET o` for `o = 0, l, 2l, ...` while `o + l <= up_to`, put together.
fn paged(s: &mut Session, select: &str, l: usize, up_to: usize) -> Vec<i64> {
    let mut out = Vec::new();
    let mut o = 0;
    while o + l <= up_to {
        out.extend(ids(s, &format!("{select} LIMIT {l} OFFSET {o}")));
        o += l;
    }
    out
}

/// Scores never increase down the list, and equal scores come in ascending id order.
fn assert_ranked(hits: &[(i64, f64)], what: &str) {
    for w in hits.windows(2) {
        let ((a, sa), (b, sb)) = (w[0], w[1]);
        assert!(
            sa > sb || (sa == sb && a < b),
            "{what}: {a} ({sa}) ranked before {b} ({sb}) in {hits:?}"
        );
    }
}

fn check_paths(data: &Data, metric: &str, query: [f32; 2]) {
    let (_dir, db) = load(data, metric);
    let mut s = db.session();
    let q = vector_sql(query);
    let (rank, best_first) = if metric == "l2" {
        (format!("distance(emb, {q})"), "")
    } else {
        (format!("similarity(emb, {q})"), " DESC")
    };
    let live = ids(&mut s, "SELECT count(*) FROM t")[0] as usize;
    for filter in ["", "WHERE g <> 1 "] {
        let select = format!("SELECT id FROM t {filter}ORDER BY {rank}");
        // Two sort keys: a full sort computed row by row, the oracle of the exact search.
        let oracle = ids(
            &mut s,
            &format!("SELECT id FROM t {filter}ORDER BY {rank}{best_first}, id"),
        );

        s.execute("SET exact = true", &[]).unwrap();
        let exact = ids(&mut s, &format!("{select} LIMIT {}", live + 3));
        assert_eq!(exact, oracle, "exact {filter}");
        for l in [1, 2, 3, 7] {
            // The last pages ask beyond the end and come back short or empty.
            let pages = paged(&mut s, &select, l, live + l);
            assert_eq!(pages, oracle, "exact {filter}LIMIT {l}");
        }
        let with_scores = format!("SELECT id, similarity(emb, {q}) FROM t {filter}ORDER BY {rank}");
        assert_ranked(
            &scored(&mut s, &format!("{with_scores} LIMIT {live}")),
            "exact",
        );

        // HNSW (or the filtered plan the engine picks): pages within one candidate list size.
        s.execute("SET exact = false", &[]).unwrap();
        s.execute("SET ef_search = 12", &[]).unwrap();
        let unpaged = ids(&mut s, &format!("{select} LIMIT 12"));
        for l in [1, 2, 3, 4, 6] {
            let pages = paged(&mut s, &select, l, 12);
            assert_eq!(pages, unpaged, "hnsw {filter}LIMIT {l}");
        }
        assert_ranked(&scored(&mut s, &format!("{with_scores} LIMIT 12")), "hnsw");
        s.execute("SET ef_search = DEFAULT", &[]).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn pages_concatenate_to_the_ranking(
        data in data(),
        metric in prop_oneof![Just("cosine"), Just("l2")],
        query in 0..DIRECTIONS.len(),
    ) {
        check_paths(&data, metric, DIRECTIONS[query]);
    }
}

/// One segment whose vectors are all equal: every page boundary cuts a tie, and the graph
/// stores the vectors in an order of its own, not by id.
#[test]
fn equal_scores_page_in_row_id_order_in_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut s = db.session();
    s.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, emb VECTOR(2))",
        &[],
    )
    .unwrap();
    for id in 1..=40 {
        s.execute(&format!("INSERT INTO t VALUES ({id}, [0.6, 0.8])"), &[])
            .unwrap();
    }
    db.checkpoint().unwrap();
    // A tie that spans the memtable too.
    s.execute("INSERT INTO t VALUES (41, [0.6, 0.8])", &[])
        .unwrap();
    let want: Vec<i64> = (1..=41).collect();
    for exact in ["true", "false"] {
        s.execute(&format!("SET exact = {exact}"), &[]).unwrap();
        for o in 0..41 {
            assert_eq!(
                ids(
                    &mut s,
                    &format!(
                        "SELECT id FROM t ORDER BY similarity(emb, [1, 0]) LIMIT 1 OFFSET {o}"
                    )
                ),
                vec![o as i64 + 1],
                "exact = {exact}, OFFSET {o}"
            );
        }
        let all = ids(
            &mut s,
            "SELECT id FROM t ORDER BY similarity(emb, [1, 0]) LIMIT 100",
        );
        assert_eq!(all, want, "exact = {exact}");
    }
    // The storage API answers the same.
    let snap = db.snapshot("t").unwrap();
    for exact in [true, false] {
        let req = SearchRequest::new(1, &[1.0, 0.0], 5).exact(exact);
        let hits: Vec<u64> = snap.search(&req).unwrap().iter().map(|h| h.id).collect();
        assert_eq!(hits, vec![1, 2, 3, 4, 5], "exact = {exact}");
    }
}

/// A segment large enough that a filter runs inside the graph walk (`filtered-hnsw`), with mostly
/// equal vectors. The walk is approximate, but pages within one `ef_search` are slices of the
/// same list, and equal scores in it are in id order.
#[test]
fn filtered_hnsw_pages_are_slices_of_one_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut s = db.session();
    s.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, emb VECTOR(2)) \
         WITH (m = 4, ef_construction = 16)",
        &[],
    )
    .unwrap();
    let rows: Vec<mmdb::Row> = (0..3000)
        .map(|i| {
            let d = DIRECTIONS[(i * 7 + i / 5) % DIRECTIONS.len()];
            mmdb::Row::new(vec![
                Value::Null,
                Value::Integer((i % 10) as i64),
                Value::Vector(d.to_vec()),
            ])
        })
        .collect();
    db.insert("t", rows).unwrap();
    db.checkpoint().unwrap();
    s.execute("SET ef_search = 24", &[]).unwrap();
    for (filter, path) in [("WHERE g <> 3 ", "filtered-hnsw"), ("", "hnsw")] {
        for q in DIRECTIONS {
            let q = vector_sql(q);
            let select = format!("SELECT id FROM t {filter}ORDER BY similarity(emb, {q})");
            let plan = ids_text(&mut s, &format!("EXPLAIN {select} LIMIT 24"));
            assert!(plan.contains(&format!("path={path} ")), "{plan}");
            let unpaged = ids(&mut s, &format!("{select} LIMIT 24"));
            assert_eq!(unpaged.len(), 24);
            for l in [1, 4, 6, 8] {
                assert_eq!(paged(&mut s, &select, l, 24), unpaged, "{select} LIMIT {l}");
            }
            let with_scores = format!(
                "SELECT id, similarity(emb, {q}) FROM t {filter}ORDER BY similarity(emb, {q}) LIMIT 24"
            );
            assert_ranked(&scored(&mut s, &with_scores), &select);
        }
    }
}

fn ids_text(s: &mut Session, sql: &str) -> String {
    s.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// LIMIT and OFFSET far beyond the table: the rows that exist, on every search path, and no
/// allocation sized by the request.
#[test]
fn huge_limit_and_offset_return_the_rows_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut s = db.session();
    s.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, emb VECTOR(2)) \
         WITH (m = 4, ef_construction = 16)",
        &[],
    )
    .unwrap();
    for id in 1..=30 {
        let d = DIRECTIONS[id % DIRECTIONS.len()];
        s.execute(
            &format!("INSERT INTO t VALUES ({id}, {}, {})", id % 2, vector_sql(d)),
            &[],
        )
        .unwrap();
        if id == 20 {
            // 20 rows in a segment, 10 in the memtable.
            db.checkpoint().unwrap();
        }
    }
    let max = i64::MAX;
    let cases = [
        (format!("LIMIT {max}"), 30, 15),
        ("LIMIT 100000000000000".to_string(), 30, 15),
        (format!("LIMIT {max} OFFSET {max}"), 0, 0),
        (format!("LIMIT {max} OFFSET 4"), 26, 11),
        (format!("LIMIT 100000000000000 OFFSET {max}"), 0, 0),
        ("LIMIT 100000000000000 OFFSET 4".to_string(), 26, 11),
        (format!("LIMIT 3 OFFSET {max}"), 0, 0),
        ("LIMIT 3 OFFSET 100000000000000".to_string(), 0, 0),
    ];
    for exact in ["true", "false"] {
        s.execute(&format!("SET exact = {exact}"), &[]).unwrap();
        for (tail, all, filtered) in &cases {
            for (filter, want) in [("", all), ("WHERE g = 1 ", filtered)] {
                let sql =
                    format!("SELECT id FROM t {filter}ORDER BY similarity(emb, [1, 0]) {tail}");
                assert_eq!(ids(&mut s, &sql).len(), *want, "exact = {exact}: {sql}");
            }
        }
    }
    // The storage API with k = usize::MAX, on each path.
    let snap = db.snapshot("t").unwrap();
    let odd = |id: mmdb::RowId, _: &mmdb::Row| id % 2 == 1;
    for exact in [true, false] {
        let req = SearchRequest::new(2, &[1.0, 0.0], usize::MAX).exact(exact);
        assert_eq!(snap.search(&req).unwrap().len(), 30);
        let req = req.filter(&odd);
        assert_eq!(snap.search(&req).unwrap().len(), 15);
        let req = SearchRequest::new(2, &[1.0, 0.0], 1 << 46)
            .exact(exact)
            .ef(usize::MAX);
        assert_eq!(snap.search(&req).unwrap().len(), 30);
    }
}

/// Same on a segment large enough for the filter to run inside the graph walk.
#[test]
fn huge_limit_on_the_filtered_graph_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut s = db.session();
    s.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, emb VECTOR(2)) \
         WITH (m = 4, ef_construction = 16)",
        &[],
    )
    .unwrap();
    let rows: Vec<mmdb::Row> = (0..2500)
        .map(|i| {
            mmdb::Row::new(vec![
                Value::Null,
                Value::Integer((i % 10) as i64),
                Value::Vector(DIRECTIONS[i % DIRECTIONS.len()].to_vec()),
            ])
        })
        .collect();
    db.insert("t", rows).unwrap();
    db.checkpoint().unwrap();
    let max = i64::MAX;
    let select = "SELECT id FROM t WHERE g <> 0 ORDER BY similarity(emb, [1, 0])";
    let plan = ids_text(&mut s, &format!("EXPLAIN {select} LIMIT {max}"));
    assert!(plan.contains("path=filtered-hnsw "), "{plan}");
    for (tail, want) in [
        (format!("LIMIT {max}"), 2250),
        ("LIMIT 100000000000000".to_string(), 2250),
        (format!("LIMIT {max} OFFSET 2000"), 250),
        (format!("LIMIT 5 OFFSET {max}"), 0),
    ] {
        assert_eq!(
            ids(&mut s, &format!("{select} {tail}")).len(),
            want,
            "{tail}"
        );
    }
}

/// R@K must not depend on which other K values are asked for: R@1 alone equals R@1 among 1, 5,
/// 10, on data where every query ties with a third of the table.
///
/// 30 images, image `i` (ids 1..=30) pointing along axis `i % 3`; two captions each (ids
/// `2i - 1`, `2i`), pointing along their image's axis. With ties by ascending row id the exact
/// answers are worked out by hand: a caption's top K images are the K lowest ids on its axis, so
/// text→image R@1 = 3 images x 2 captions / 60 = 10%, R@5 = 15 x 2 / 60 = 50%, R@10 = 100%; an image's
/// top K captions are those of the lowest ids on its axis, two per image, so image→text R@1 = 3 /
/// 30 = 10%, R@5 = 9 / 30 = 30%, R@10 = 15 / 30 = 50%.
#[test]
fn recall_at_k_does_not_depend_on_the_k_list() {
    let dir = tempfile::tempdir().unwrap();
    let emb = dir.path().join("emb");
    for sub in ["img_emb", "text_emb", "metadata"] {
        std::fs::create_dir_all(emb.join(sub)).unwrap();
    }
    let axis = |image: i64| {
        let mut v = vec![0.0f32; 3];
        v[(image % 3) as usize] = 1.0;
        v
    };
    // One record per caption, its image's embedding repeated (clip-retrieval layout).
    let records: Vec<(i64, i64)> = (1..=30)
        .flat_map(|image| [(image, 2 * image - 1), (image, 2 * image)])
        .collect();
    let vectors: Vec<Vec<f32>> = records.iter().map(|r| axis(r.0)).collect();
    coco::write_npy_f32(&emb.join("img_emb/img_emb_0.npy"), &vectors).unwrap();
    coco::write_npy_f32(&emb.join("text_emb/text_emb_0.npy"), &vectors).unwrap();
    let meta: String = records
        .iter()
        .map(|(image, caption)| {
            format!(
                "{{\"image_path\": \"/data/{image}.png\", \"image_id\": {image}, \
                 \"caption_id\": {caption}, \"caption\": \"c{caption}\"}}\n"
            )
        })
        .collect();
    std::fs::write(emb.join("metadata/metadata_0.jsonl"), meta).unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut o = NpyImportOptions::new(&emb);
    o.identity = Some("fake-axes dim=3".into());
    coco::import_npy(&db, &o).unwrap();
    // Into segments, where vectors are stored in graph order rather than by id.
    db.checkpoint().unwrap();

    let recall = |k: &[usize], exact: bool, ef: Option<usize>| {
        let mut opts = RecallOptions::new();
        opts.k = k.to_vec();
        opts.exact = exact;
        opts.ef = ef;
        let r = coco::bench_recall(&db, &opts).unwrap();
        (r.scores.text_to_image, r.scores.image_to_text)
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let (t2i, i2t) = recall(&[1, 5, 10], true, None);
    for (got, want) in t2i.iter().zip([10.0, 50.0, 100.0]) {
        assert!(close(*got, want), "exact text→image {t2i:?}");
    }
    for (got, want) in i2t.iter().zip([10.0, 30.0, 50.0]) {
        assert!(close(*got, want), "exact image→text {i2t:?}");
    }
    for (exact, ef) in [(true, None), (false, None), (false, Some(4))] {
        let (t2i, i2t) = recall(&[1, 5, 10], exact, ef);
        for (i, k) in [1, 5, 10].into_iter().enumerate() {
            let (one_t2i, one_i2t) = recall(&[k], exact, ef);
            assert!(
                close(one_t2i[0], t2i[i]) && close(one_i2t[0], i2t[i]),
                "exact = {exact}, ef = {ef:?}: R@{k} alone {one_t2i:?} {one_i2t:?}, \
                 among 1, 5, 10 {t2i:?} {i2t:?}"
            );
        }
    }
}
