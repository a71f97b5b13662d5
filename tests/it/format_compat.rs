//! Old files stay readable: `fixtures/db-format-1/` is a database written by mmdb 0.1.0, with
//! vector files in every format version readers still accept. [`opens_format_fixture`] opens a
//! copy read-only and read-write and checks schemas, every row, deletions and search results
//! against the data the fixture was made from ([`history`]), then writes to it.
//!
//! The fixture is not regenerated when the format changes: it stands for files users already
//! have. A new format gets a new fixture beside it. To rebuild this one (same data; the HNSW
//! graphs come out different, which the checks allow):
//!
//! ```text
//! cargo test --no-default-features --test it write_format_fixture -- --ignored
//! ```
//!
//! What is in it (segment ids are read from the manifest, not assumed):
//! - `items`: INTEGER PRIMARY KEY, TEXT NOT NULL, INTEGER, REAL, BOOLEAN, BLOB, VECTOR(8) cosine,
//!   VECTOR(3) l2, NULLs in every nullable column, HNSW parameters other than the defaults. Three
//!   segments, one per checkpoint: the first has its vector files rewritten in format version 1
//!   (vectors in row order, graph numbered in row order), the second in version 2 (graph order,
//!   no stride word), the third is as written (version 3). Deletion bitmaps: generation 2 on the
//!   first segment, 1 on the others.
//! - `notes`: a table without vectors, one segment.
//! - a WAL tail after the last checkpoint (the generator drops the database without closing
//!   it): inserts, a delete of a segment row and of a WAL row, an update, and a table created,
//!   written to and dropped (its records are skipped at replay).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mmdb::{
    Column, ColumnType, Database, HnswParams, Metric, Row, RowId, SearchRequest, TableSchema, Value,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/db-format-1");
/// Column indexes of the vector columns of `items`.
const EMB: usize = 6;
const POS: usize = 7;

// ---- The data: frozen, the fixture was written from exactly this. ----

fn items_schema() -> TableSchema {
    let mut name = Column::new("name", ColumnType::Text);
    name.nullable = false;
    let emb = Column::new("emb", ColumnType::Vector(8));
    let mut pos = Column::new("pos", ColumnType::Vector(3));
    pos.metric = Metric::L2;
    let mut s = TableSchema::new(
        "items",
        vec![
            Column::new("id", ColumnType::Integer),
            name,
            Column::new("qty", ColumnType::Integer),
            Column::new("price", ColumnType::Real),
            Column::new("ok", ColumnType::Boolean),
            Column::new("data", ColumnType::Blob),
            emb,
            pos,
        ],
    );
    s.primary_key = Some("id".into());
    s.hnsw = HnswParams {
        m: 8,
        ef_construction: 40,
        ef_search: 16,
    };
    s
}

fn notes_schema() -> TableSchema {
    let mut k = Column::new("k", ColumnType::Integer);
    k.nullable = false;
    TableSchema::new("notes", vec![k, Column::new("body", ColumnType::Text)])
}

fn scratch_schema() -> TableSchema {
    TableSchema::new("scratch", vec![Column::new("x", ColumnType::Integer)])
}

/// A deterministic vector in [-1, 1]^dim (xorshift). The same as `persistence::vector`, kept
/// apart on purpose: the fixture's data must not change when another test's helper does.
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 2001) as f32 / 1000.0) - 1.0
        })
        .collect()
}

/// Row `k` of `items`, its values chosen from `seed`; NULLs in a pattern that leaves some rows
/// of every segment without a vector.
fn item_with(k: i64, seed: i64) -> Row {
    let s = seed;
    let null_if = |cond: bool, v: Value| if cond { Value::Null } else { v };
    let qty = match s {
        2 => i64::MAX,
        9 => i64::MIN,
        _ => s * s * 1_000_003 - 40_000_000,
    };
    let price = if s == 11 {
        f64::MIN_POSITIVE
    } else {
        (s as f64).sqrt() * -1.5e3 + 0.1
    };
    Row::new(vec![
        Value::Integer(k),
        Value::Text(format!(
            "item {s}: ünï'cödé — {}",
            "x".repeat(s as usize % 5)
        )),
        null_if(s % 5 == 0, Value::Integer(qty)),
        null_if(s % 7 == 3, Value::Real(price)),
        null_if(s % 4 == 2, Value::Boolean(s % 3 == 0)),
        // s % 11 == 0: an empty blob, not NULL.
        null_if(
            s % 6 == 0,
            Value::Blob((0..s % 11).map(|i| (i * 37 + s * 11) as u8).collect()),
        ),
        null_if(s % 6 == 1, Value::Vector(vector(s as u64, 8))),
        null_if(s % 9 == 4, Value::Vector(vector(s as u64 + 1000, 3))),
    ])
}

fn item(k: i64) -> Row {
    item_with(k, k)
}

fn items(ks: std::ops::RangeInclusive<i64>) -> Vec<Row> {
    ks.map(item).collect()
}

fn note(i: i64) -> Row {
    Row::new(vec![
        Value::Integer(i * 10),
        if i == 2 {
            Value::Null
        } else {
            Value::Text(format!("note {i}\nsecond line"))
        },
    ])
}

/// One write of the history.
enum Step {
    Create(TableSchema),
    Drop(&'static str),
    Insert(&'static str, Vec<Row>),
    Delete(&'static str, Vec<RowId>),
    Update(&'static str, Vec<(RowId, Row)>),
    Checkpoint,
}

/// Everything the generator did to the database, in order.
fn history() -> Vec<Step> {
    use Step::*;
    vec![
        Create(items_schema()),
        Create(notes_schema()),
        Insert("items", items(1..=12)),
        Insert("notes", (1..=3).map(note).collect()),
        Checkpoint, // items segment 1 (vector files rewritten as v1), notes' segment
        Insert("items", items(13..=24)),
        Checkpoint, // items segment 2 (rewritten as v2)
        Delete("items", vec![3, 14, 15]),
        Update("items", vec![(7, item_with(7, 507))]),
        Insert("items", items(25..=36)),
        Checkpoint, // items segment 3 (v3, as written): 25..=36 and 7; bitmaps of 1 and 2
        Delete("items", vec![5, 26]),
        Checkpoint, // bitmap generation 2 of segment 1, 1 of segment 3; no new segment
        // The WAL tail.
        Insert("items", items(37..=42)),
        Delete("items", vec![10, 38]),
        Update("items", vec![(13, item_with(13, 513))]),
        Insert("notes", vec![note(4)]),
        Create(scratch_schema()),
        Insert("scratch", vec![Row::new(vec![Value::Integer(1)])]),
        Drop("scratch"),
    ]
}

fn apply(db: &Database, step: Step) {
    match step {
        Step::Create(s) => db.create_table(s).unwrap(),
        Step::Drop(t) => db.drop_table(t).unwrap(),
        Step::Insert(t, rows) => {
            db.insert(t, rows).unwrap();
        }
        Step::Delete(t, ids) => {
            db.delete(t, &ids).unwrap();
        }
        Step::Update(t, rows) => {
            db.update(t, rows).unwrap();
        }
        Step::Checkpoint => db.checkpoint().unwrap(),
    }
}

// ---- The expected contents, computed from the history. ----

/// What a table should hold.
#[derive(Clone)]
struct Table {
    schema: TableSchema,
    rows: BTreeMap<RowId, Row>,
    next_id: RowId,
    deleted: Vec<RowId>,
}

/// The engine's normalisation for cosine columns (`db::validate::normalise`), so stored vectors
/// compare exactly.
fn normalise(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    v.iter().map(|&x| (x as f64 / norm) as f32).collect()
}

/// A row as stored: cosine vectors normalised.
fn stored(schema: &TableSchema, mut row: Row) -> Row {
    for (c, v) in schema.columns.iter().zip(&mut row.values) {
        if let (Metric::Cosine, Value::Vector(x)) = (c.metric, &mut *v) {
            *x = normalise(x);
        }
    }
    row
}

fn insert_into(t: &mut Table, rows: Vec<Row>) {
    let pk = t
        .schema
        .primary_key
        .as_deref()
        .and_then(|p| t.schema.column_index(p));
    for row in rows {
        let id = match pk.map(|c| &row.values[c]) {
            Some(Value::Integer(v)) => *v as RowId,
            _ => t.next_id,
        };
        t.next_id = t.next_id.max(id + 1);
        let row = stored(&t.schema, row);
        t.rows.insert(id, row);
    }
}

fn expected() -> BTreeMap<String, Table> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for step in history() {
        match step {
            Step::Create(schema) => {
                let table = Table {
                    schema: schema.clone(),
                    rows: BTreeMap::new(),
                    next_id: 1,
                    deleted: Vec::new(),
                };
                tables.insert(schema.name, table);
            }
            Step::Drop(t) => {
                tables.remove(t);
            }
            Step::Insert(t, rows) => insert_into(tables.get_mut(t).unwrap(), rows),
            Step::Delete(t, ids) => {
                let t = tables.get_mut(t).unwrap();
                for id in ids {
                    assert!(t.rows.remove(&id).is_some());
                    t.deleted.push(id);
                }
            }
            Step::Update(t, rows) => {
                let t = tables.get_mut(t).unwrap();
                for (id, row) in rows {
                    let row = stored(&t.schema, row);
                    *t.rows.get_mut(&id).unwrap() = row;
                }
            }
            Step::Checkpoint => {}
        }
    }
    // As the engine keeps it: a PRIMARY KEY column is nullable (the id is filled in).
    let items = tables.get_mut("items").unwrap();
    items.schema.columns[0].nullable = true;
    tables
}

// ---- Framed files and the old vector layouts, by hand (docs/format.md). ----

const HEADER: usize = 64;
const FOOTER: usize = 32;
const BLOCK: usize = 1 << 20;
const VEC_MAGIC: [u8; 8] = *b"\x89MMDBVEC";
const GRAPH_MAGIC: [u8; 8] = *b"\x89MMDBHNS";
const MANIFEST_MAGIC: [u8; 8] = *b"\x89MMDBMAN";

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn word_bytes(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Version and body of a framed file.
fn read_framed(path: &Path, magic: [u8; 8]) -> (u32, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(b[..8], magic, "{}", path.display());
    let foot = &b[b.len() - FOOTER..];
    let body_len = u64::from_le_bytes(foot[..8].try_into().unwrap()) as usize;
    (u32_at(&b, 8), b[HEADER..HEADER + body_len].to_vec())
}

/// Writes a framed file as `storage::FramedWriter` does (without its temporary name).
fn write_framed(path: &Path, magic: [u8; 8], version: u32, body: &[u8]) {
    let mut out = Vec::with_capacity(HEADER + body.len() + FOOTER + 16);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.resize(HEADER, 0);
    out.extend_from_slice(body);
    let crcs: Vec<u32> = body.chunks(BLOCK).map(crc32c::crc32c).collect();
    let mut table = word_bytes(&crcs);
    table.extend_from_slice(&(body.len() as u64).to_le_bytes());
    table.extend_from_slice(&(crcs.len() as u32).to_le_bytes());
    out.extend_from_slice(&table);
    out.extend_from_slice(&crc32c::crc32c(&table).to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&magic);
    std::fs::write(path, out).unwrap();
}

/// A version 3 vector file: dim, vectors in stored order (padding dropped), `rows` and `by_row`.
struct Vectors {
    dim: usize,
    data: Vec<Vec<f32>>,
    rows: Vec<u32>,
    by_row: Vec<u32>,
}

fn read_v3(path: &Path) -> Vectors {
    let (version, body) = read_framed(path, VEC_MAGIC);
    assert_eq!(version, 3, "{}", path.display());
    let (dim, count, stride) = (
        u32_at(&body, 0) as usize,
        u32_at(&body, 4) as usize,
        u32_at(&body, 8) as usize,
    );
    let w = words(&body[64..]);
    let data = (0..count)
        .map(|i| {
            w[i * stride..i * stride + dim]
                .iter()
                .map(|&x| f32::from_bits(x))
                .collect()
        })
        .collect();
    let index = &w[count * stride..];
    assert_eq!(index.len(), 2 * count);
    Vectors {
        dim,
        data,
        rows: index[..count].to_vec(),
        by_row: index[count..].to_vec(),
    }
}

/// Body of a version 1 or 2 vector file: `dim`, `count`, zeros to 64, `data` (no stride),
/// `index` words.
fn old_vec_body(dim: usize, data: &[&Vec<f32>], index: &[u32]) -> Vec<u8> {
    let mut w = vec![dim as u32, data.len() as u32];
    w.resize(16, 0);
    w.extend(data.iter().flat_map(|v| v.iter().map(|x| x.to_bits())));
    w.extend_from_slice(index);
    word_bytes(&w)
}

/// Version 2: the stored (graph) order kept, no stride word; the graph file is unchanged.
fn rewrite_as_v2(vec_path: &Path) {
    let v = read_v3(vec_path);
    assert!(v.data.iter().all(|x| x.len() == v.dim));
    let data: Vec<&Vec<f32>> = v.data.iter().collect();
    let index: Vec<u32> = v.rows.iter().chain(&v.by_row).copied().collect();
    write_framed(vec_path, VEC_MAGIC, 2, &old_vec_body(v.dim, &data, &index));
}

/// Version 1: vectors in row order, `rows` ascending, no `by_row`; the graph's nodes numbered
/// in row order, as it was built before graphs were renumbered.
fn rewrite_as_v1(vec_path: &Path, graph_path: &Path) {
    let v = read_v3(vec_path);
    // by_row lists the stored indexes in ascending row position: the row order.
    let order = &v.by_row;
    let data: Vec<&Vec<f32>> = order.iter().map(|&i| &v.data[i as usize]).collect();
    let rows: Vec<u32> = order.iter().map(|&i| v.rows[i as usize]).collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]));
    write_framed(vec_path, VEC_MAGIC, 1, &old_vec_body(v.dim, &data, &rows));
    let (version, graph) = read_framed(graph_path, GRAPH_MAGIC);
    assert_eq!(version, 1);
    let renumbered = renumber_graph(&graph, order);
    // Numbered back, it is the graph as written: the same graph under other ids.
    let mut back = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        back[old as usize] = new as u32;
    }
    assert_eq!(renumber_graph(&renumbered, &back), graph);
    write_framed(graph_path, GRAPH_MAGIC, 1, &renumbered);
}

/// The graph (layout in `src/index/layout.rs`) with node `order[i]` renamed `i`, as
/// `index::renumber` does.
fn renumber_graph(bytes: &[u8], order: &[u32]) -> Vec<u8> {
    let w = words(bytes);
    let (n, layers) = (w[2] as usize, w[3] as usize);
    assert_eq!(order.len(), n);
    let mut new_id = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        new_id[old as usize] = new as u32;
    }
    // Decode every layer to (node, neighbours) in global ids, renamed.
    let mut at = 8 + 2 * layers;
    let mut decoded: Vec<Vec<(u32, Vec<u32>)>> = Vec::new();
    for l in 0..layers {
        let (count, edges) = (w[8 + 2 * l] as usize, w[9 + 2 * l] as usize);
        let nodes: Vec<u32> = if l == 0 {
            (0..n as u32).collect()
        } else {
            at += count;
            w[at - count..at].to_vec()
        };
        let offsets = &w[at..at + count + 1];
        at += count + 1;
        let neigh = &w[at..at + edges];
        at += edges;
        let global = |x: u32| if l == 0 { x } else { nodes[x as usize] };
        let mut layer: Vec<(u32, Vec<u32>)> = (0..count)
            .map(|i| {
                let list = &neigh[offsets[i] as usize..offsets[i + 1] as usize];
                let list = list.iter().map(|&x| new_id[global(x) as usize]).collect();
                (new_id[nodes[i] as usize], list)
            })
            .collect();
        layer.sort_by_key(|e| e.0);
        decoded.push(layer);
    }
    assert_eq!(at, w.len(), "graph length");
    let mut head = w[..8].to_vec();
    head[4] = new_id[w[4] as usize];
    let mut body = Vec::new();
    for (l, layer) in decoded.iter().enumerate() {
        let nodes: Vec<u32> = layer.iter().map(|e| e.0).collect();
        let local = |g: u32| {
            if l == 0 {
                g
            } else {
                nodes.binary_search(&g).unwrap() as u32
            }
        };
        if l > 0 {
            body.extend_from_slice(&nodes);
        }
        let mut off = 0;
        body.push(0);
        for (_, list) in layer {
            off += list.len() as u32;
            body.push(off);
        }
        for (_, list) in layer {
            body.extend(list.iter().map(|&g| local(g)));
        }
        head.push(layer.len() as u32);
        head.push(off);
    }
    head.extend(body);
    word_bytes(&head)
}

/// Ids of the segments of `table` in the manifest, oldest first.
fn segments_of(dir: &Path, table: &str) -> Vec<u64> {
    let (_, body) = read_framed(&dir.join("MANIFEST"), MANIFEST_MAGIC);
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let t = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["schema"]["name"] == table)
        .unwrap();
    t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect()
}

fn vec_path(dir: &Path, seg: u64, col: usize) -> PathBuf {
    dir.join(format!("seg-{seg:08}.c{col}.vec"))
}

fn graph_path(dir: &Path, seg: u64, col: usize) -> PathBuf {
    dir.join(format!("seg-{seg:08}.c{col}.hnsw"))
}

/// Rebuilds the fixture. See the module doc.
#[test]
#[ignore = "rewrites fixtures/db-format-1; run by hand (see the module doc)"]
fn write_format_fixture() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("db");
    // No automatic flushes: the checkpoints of the history make the segments.
    let db = Database::builder()
        .memtable_max_bytes(usize::MAX)
        .open(&dir)
        .unwrap();
    for step in history() {
        apply(&db, step);
    }
    // Dropped, not closed: the writes after the last checkpoint stay in the WAL only.
    drop(db);
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    let segs = segments_of(&dir, "items");
    assert_eq!(segs.len(), 3, "items segments");
    for col in [EMB, POS] {
        rewrite_as_v1(
            &vec_path(&dir, segs[0], col),
            &graph_path(&dir, segs[0], col),
        );
        rewrite_as_v2(&vec_path(&dir, segs[1], col));
    }
    let out = Path::new(FIXTURE);
    std::fs::create_dir_all(out).unwrap();
    for e in std::fs::read_dir(out).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "README.md" {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
    check_fixture(out);
}

#[test]
fn opens_format_fixture() {
    check_fixture(Path::new(FIXTURE));
}

// ---- The checks. ----

/// Copies `fixture` (a writable open may truncate or remove files) and checks it.
fn check_fixture(fixture: &Path) {
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path();
    for e in std::fs::read_dir(fixture).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    check_files(dir);
    let mut want = expected();

    let db = Database::open_read_only(dir).unwrap();
    check_db(&db, &want);
    drop(db);

    let db = Database::open(dir).unwrap();
    let health = db.health();
    assert_eq!(health.torn_tail, None);
    assert_eq!(health.needs_reopen, None);
    check_db(&db, &want);
    // Writes: one row into the WAL, then reopened (replay), closed (a new segment), compacted
    // (old vector files read to rebuild).
    db.insert("items", vec![item(100)]).unwrap();
    insert_into(want.get_mut("items").unwrap(), vec![item(100)]);
    check_db(&db, &want);
    drop(db);
    let db = Database::open(dir).unwrap();
    check_db(&db, &want);
    db.close().unwrap();
    let db = Database::open(dir).unwrap();
    check_db(&db, &want);
    db.compact("items").unwrap();
    check_db(&db, &want);
    db.close().unwrap();
    let db = Database::open_read_only(dir).unwrap();
    check_db(&db, &want);
}

/// The fixture holds what it is meant to: each vector file version, bitmaps, a WAL tail.
fn check_files(dir: &Path) {
    let segs = segments_of(dir, "items");
    assert_eq!(segs.len(), 3);
    for col in [EMB, POS] {
        for (seg, version) in segs.iter().zip([1, 2, 3]) {
            let (v, _) = read_framed(&vec_path(dir, *seg, col), VEC_MAGIC);
            assert_eq!(v, version, "segment {seg} column {col}");
        }
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in [
        format!("seg-{:08}.del2", segs[0]),
        format!("seg-{:08}.del1", segs[2]),
    ] {
        assert!(names.contains(&name), "no {name} in {names:?}");
    }
    let wal: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("wal-") && n.ends_with(".log"))
        .collect();
    assert_eq!(wal.len(), 1, "{names:?}");
    let wal_len = std::fs::metadata(dir.join(wal[0])).unwrap().len();
    assert!(wal_len > 32, "the WAL holds records past its header");
}

fn check_db(db: &Database, want: &BTreeMap<String, Table>) {
    let names: Vec<&String> = want.keys().collect();
    assert_eq!(db.table_names().iter().collect::<Vec<_>>(), names);
    for (name, t) in want {
        assert_eq!(db.table_schema(name).unwrap(), t.schema, "schema of {name}");
        let snap = db.snapshot(name).unwrap();
        let rows: Vec<(RowId, Row)> = snap.scan().collect::<mmdb::Result<_>>().unwrap();
        let want_rows: Vec<(RowId, Row)> = t.rows.clone().into_iter().collect();
        assert_eq!(rows.len(), want_rows.len(), "rows of {name}");
        for (got, want) in rows.iter().zip(&want_rows) {
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(snap.row_count(), t.rows.len());
        for id in &t.deleted {
            assert_eq!(snap.get(*id).unwrap(), None, "{name}: deleted row {id}");
        }
        for (id, row) in &t.rows {
            assert_eq!(
                snap.get(*id).unwrap().as_ref(),
                Some(row),
                "{name}: row {id}"
            );
        }
        let count = db
            .query(&format!("SELECT count(*) FROM {name}"), &[])
            .unwrap();
        let count: i64 = count.get(0).unwrap().get(0).unwrap();
        assert_eq!(count as usize, t.rows.len(), "count(*) of {name}");
    }
    check_searches(db, &want["items"]);
    // NULLs through SQL.
    let rows = db
        .query("SELECT id FROM items WHERE qty IS NULL ORDER BY id", &[])
        .unwrap();
    let got: Vec<i64> = (0..rows.len())
        .map(|i| rows.get(i).unwrap().get(0).unwrap())
        .collect();
    let items = &want["items"];
    let null_qty: Vec<i64> = items
        .rows
        .iter()
        .filter(|(_, r)| r.values[2].is_null())
        .map(|(id, _)| *id as i64)
        .collect();
    assert_eq!(got, null_qty);
}

/// Brute force over the expected rows: (id, score), best first, ties by id.
fn brute_force(
    t: &Table,
    col: usize,
    query: &[f32],
    keep: &dyn Fn(RowId) -> bool,
) -> Vec<(RowId, f32)> {
    let metric = t.schema.columns[col].metric;
    let q = match metric {
        Metric::Cosine => normalise(query),
        _ => query.to_vec(),
    };
    let mut hits: Vec<(RowId, f32)> = t
        .rows
        .iter()
        .filter(|(id, _)| keep(**id))
        .filter_map(|(id, r)| {
            let Value::Vector(v) = &r.values[col] else {
                return None;
            };
            let score = match metric {
                Metric::L2 => -v
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt(),
                _ => v.iter().zip(&q).map(|(a, b)| a * b).sum(),
            };
            Some((*id, score))
        })
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits
}

fn assert_hits(got: &[mmdb::SearchHit], want: &[(RowId, f32)], what: &str) {
    let ids: Vec<RowId> = got.iter().map(|h| h.id).collect();
    let want_ids: Vec<RowId> = want.iter().map(|h| h.0).collect();
    assert_eq!(ids, want_ids, "{what}");
    for (h, w) in got.iter().zip(want) {
        assert!(
            (h.score - w.1).abs() < 1e-5,
            "{what}: row {} score {} vs {}",
            h.id,
            h.score,
            w.1
        );
    }
}

fn check_searches(db: &Database, t: &Table) {
    let snap = db.snapshot("items").unwrap();
    let even = |id: RowId, _: &Row| id.is_multiple_of(2);
    for (col, name) in [(EMB, "emb"), (POS, "pos")] {
        let dim = match t.schema.columns[col].ty {
            ColumnType::Vector(d) => d as usize,
            _ => unreachable!(),
        };
        for q in 0..4u64 {
            let query = vector(90_000 + q, dim);
            let all = brute_force(t, col, &query, &|_| true);
            let evens = brute_force(t, col, &query, &|id| id.is_multiple_of(2));
            for k in [1, 5, all.len()] {
                let what = format!("{name} query {q} k {k}");
                let exact = SearchRequest::new(col, &query, k).exact(true);
                assert_hits(
                    &snap.search(&exact).unwrap(),
                    &all[..k],
                    &format!("{what} exact"),
                );
                // ef at least the table's ef_search, which is above every segment's size: the
                // graph search visits every node, so its results are exact too.
                let hnsw = SearchRequest::new(col, &query, k).ef(k.max(16));
                assert_hits(
                    &snap.search(&hnsw).unwrap(),
                    &all[..k],
                    &format!("{what} hnsw"),
                );
                let k_even = k.min(evens.len());
                for exact in [true, false] {
                    let req = SearchRequest::new(col, &query, k_even)
                        .ef(k.max(16))
                        .exact(exact)
                        .filter(&even);
                    let got = snap.search(&req).unwrap();
                    assert_hits(
                        &got,
                        &evens[..k_even],
                        &format!("{what} even ids, exact {exact}"),
                    );
                }
            }
            // Through SQL.
            let rows = db
                .query(
                    &format!("SELECT id FROM items ORDER BY similarity({name}, ?) LIMIT 5"),
                    &[Value::Vector(query.clone())],
                )
                .unwrap();
            let got: Vec<RowId> = (0..rows.len())
                .map(|i| rows.get(i).unwrap().get::<i64>(0).unwrap() as RowId)
                .collect();
            let want: Vec<RowId> = all[..5].iter().map(|h| h.0).collect();
            assert_eq!(got, want, "SQL {name} query {q}");
        }
    }
}
