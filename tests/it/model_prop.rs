//! Model-based property test: random inserts, deletes, updates, flushes, compactions and reopens
//! checked against an in-memory `BTreeMap` after every step.

use std::collections::BTreeMap;
use std::path::Path;

use mmdb::{Database, RowId, SearchRequest, Sync, Value};
use proptest::prelude::*;

use crate::persistence::{row, schema, vector};

const DIM: u32 = 4;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<i64>),
    Delete(Vec<usize>),
    Update(usize, i64),
    Flush,
    Compact,
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(0i64..50, 1..6).prop_map(Op::Insert),
        2 => proptest::collection::vec(any::<usize>(), 1..4).prop_map(Op::Delete),
        2 => (any::<usize>(), 0i64..50).prop_map(|(i, s)| Op::Update(i, s)),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn open(dir: &Path) -> Database {
    Database::builder()
        .sync(Sync::Off)
        .memtable_max_bytes(4096)
        .max_segments(3)
        .open(dir)
        .unwrap()
}

/// Picks the id at `i` (mod len) of the model, or an id that never existed when empty.
fn pick(model: &BTreeMap<RowId, i64>, i: usize) -> RowId {
    if model.is_empty() {
        return 1_000_000;
    }
    *model.keys().nth(i % model.len()).unwrap()
}

fn check(db: &Database, model: &BTreeMap<RowId, i64>) -> Result<(), TestCaseError> {
    let snap = db.snapshot("items").unwrap();
    prop_assert_eq!(snap.row_count(), model.len());
    let rows: Vec<_> = snap.scan().map(|r| r.unwrap()).collect();
    let ids: Vec<RowId> = rows.iter().map(|r| r.0).collect();
    prop_assert_eq!(&ids, &model.keys().copied().collect::<Vec<_>>());
    for (id, r) in &rows {
        let seed = model[id];
        prop_assert_eq!(&r.values[0], &Value::Integer(seed));
        prop_assert_eq!(&r.values[1], &row(seed, DIM).values[1]);
        let got = snap.get(*id).unwrap();
        prop_assert_eq!(got.as_ref(), Some(r));
    }
    // Exact search agrees with brute force over the model.
    let q = vector(777, DIM);
    let qn: f32 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut want: Vec<f32> = model
        .values()
        .map(|&s| {
            let v = vector(s as u64, DIM);
            let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>() / (n * qn)
        })
        .collect();
    want.sort_by(|a, b| b.total_cmp(a));
    for exact in [true, false] {
        let hits = snap
            .search(&SearchRequest::new(2, &q, 3).ef(200).exact(exact))
            .unwrap();
        prop_assert_eq!(hits.len(), model.len().min(3));
        for (h, w) in hits.iter().zip(&want) {
            prop_assert!(
                (h.score - w).abs() < 1e-4,
                "score {} vs model {}",
                h.score,
                w
            );
            prop_assert!(model.contains_key(&h.id));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn matches_btreemap_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(dir.path());
        db.create_table(schema(DIM)).unwrap();
        let mut model: BTreeMap<RowId, i64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(seeds) => {
                    let ids = db.insert("items", seeds.iter().map(|&s| row(s, DIM)).collect()).unwrap();
                    for (id, s) in ids.into_iter().zip(seeds) {
                        prop_assert!(model.insert(id, s).is_none(), "id {} reused", id);
                    }
                }
                Op::Delete(picks) => {
                    let ids: Vec<RowId> = picks.iter().map(|&i| pick(&model, i)).collect();
                    let mut expect = 0;
                    for id in &ids {
                        expect += usize::from(model.remove(id).is_some());
                    }
                    prop_assert_eq!(db.delete("items", &ids).unwrap(), expect);
                }
                Op::Update(i, seed) => {
                    let id = pick(&model, i);
                    let n = db.update("items", vec![(id, row(seed, DIM))]).unwrap();
                    prop_assert_eq!(n, usize::from(model.contains_key(&id)));
                    if let Some(s) = model.get_mut(&id) {
                        *s = seed;
                    }
                }
                Op::Flush => db.checkpoint().unwrap(),
                Op::Compact => db.compact("items").unwrap(),
                Op::Reopen { clean } => {
                    if clean {
                        db.close().unwrap();
                    } else {
                        drop(db);
                    }
                    db = open(dir.path());
                }
            }
            check(&db, &model)?;
        }
    }
}
