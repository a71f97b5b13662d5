//! Parser and planner robustness: random and mutated statements never panic.

use std::sync::OnceLock;

use mmdb::Database;
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY, image IMAGE, caption EMBEDDED_TEXT, emb VECTOR(3)) WITH (model = 'x', m = 16)",
    "SELECT id, similarity(emb, [0.1, 0.2, 0.3]) AS s FROM t WHERE year > 2015 AND name LIKE 'a%' ORDER BY s LIMIT 10 OFFSET 2",
    "SELECT count(*), min(year), max(name), avg(year), sum(year) FROM t WHERE year BETWEEN 1 AND 9 OR name IS NULL",
    "INSERT INTO t (name, year, emb) VALUES ('it''s', 3, [1, 2, 3]), (NULL, -4, NULL)",
    "UPDATE t SET year = year + 1, name = upper(name) WHERE id IN (1, 2, 3)",
    "DELETE FROM t WHERE NOT (year <> 3) AND emb IS NOT NULL",
    "SELECT * FROM t ORDER BY similarity(emb, row(1)) LIMIT 3",
    "SELECT id FROM t ORDER BY distance(emb, ?) LIMIT $1",
    "EXPLAIN SELECT * FROM t WHERE id = 1",
    "SET ef_search = 32",
    "SELECT * FROM t JOIN u ON t.id = u.id GROUP BY x HAVING count(*) > 1",
    "SELECT similarity(image, image(X'00ff')) FROM t",
];

/// One database shared by every case (cases may change it; only panics matter).
fn session() -> ((), mmdb::Session) {
    static DB: OnceLock<(tempfile::TempDir, Database)> = OnceLock::new();
    let (_, db) = DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder()
            .sync(mmdb::Sync::Off)
            .open(dir.path().join("db"))
            .unwrap();
        (dir, db)
    });
    let mut s = db.session();
    // Recreate the table when a mutated statement dropped it.
    s.execute(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT, year INTEGER, emb VECTOR(3))",
        &[],
    )
    .unwrap();
    if s.query("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0)
        .unwrap()
        .get::<i64>(0)
        .unwrap()
        < 2
    {
        s.execute(
            "INSERT INTO t (name, year, emb) VALUES ('a', 3, [1, 0, 0]), ('b', NULL, [0, 1, 0])",
            &[],
        )
        .unwrap();
    }
    ((), s)
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, char),
    Swap(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
}

fn mutate(seed: &str, muts: &[Mutation]) -> String {
    let mut c: Vec<char> = seed.chars().collect();
    for m in muts {
        if c.is_empty() {
            break;
        }
        let n = c.len();
        match *m {
            Mutation::Delete(i) => {
                c.remove(i % n);
            }
            Mutation::Insert(i, ch) => c.insert(i % (n + 1), ch),
            Mutation::Swap(i, j) => c.swap(i % n, j % n),
            Mutation::Truncate(i) => c.truncate(i % n),
            Mutation::Splice(other, from, len) => {
                let o: Vec<char> = SEEDS[other % SEEDS.len()].chars().collect();
                let from = from % o.len();
                let end = (from + len % 20).min(o.len());
                let at = from % (n + 1);
                c.splice(at..at, o[from..end].iter().copied());
            }
        }
    }
    c.into_iter().collect()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let chars = prop::sample::select(vec![
        '(', ')', '[', ']', ',', '\'', ';', '?', '$', '-', '*', '.', 'X', '0', '9', ' ', 'é', '\n',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), chars).prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_statements_never_panic(seed in 0..SEEDS.len(), muts in prop::collection::vec(mutation(), 1..6)) {
        let (_d, mut s) = session();
        let sql = mutate(SEEDS[seed], &muts);
        // Errors are fine; panics are not. Parameters are bound so planning proceeds.
        let _ = s.run(&sql, &[]);
        let _ = s.run(&sql, &[mmdb::Value::Integer(1), mmdb::Value::Vector(vec![1.0, 0.0, 0.0])]);
    }

    #[test]
    fn random_text_never_panics(sql in "\\PC{0,80}") {
        let (_d, mut s) = session();
        let _ = s.run(&sql, &[]);
        let _ = s.run_script(&sql, |_, _| {});
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let (_d, mut s) = session();
    let sql = format!("SELECT {}1{} FROM t", "(".repeat(5000), ")".repeat(5000));
    assert!(s.run(&sql, &[]).is_err());
    let sql = format!(
        "SELECT 1 FROM t WHERE {}",
        vec!["NOT"; 5000].join(" ") + " true"
    );
    assert!(s.run(&sql, &[]).is_err());
}
