//! Parameters: `?` are numbered by their place in the text whatever clause they are in, `$n` keep
//! their number, LIMIT / OFFSET take parameters, and a vector literal in the text answers exactly
//! as the same vector given as a parameter.

use mmdb::{Database, Error, Rows, Value, params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .sync(mmdb::Sync::Off)
        .open(dir.path().join("db"))
        .unwrap();
    create_docs(&db, "docs");
    (dir, db)
}

/// `name (id, title, year, emb VECTOR(3))` with ids 1..=8.
fn create_docs(db: &Database, name: &str) {
    db.execute(
        &format!(
            "CREATE TABLE {name} (id INTEGER PRIMARY KEY, title TEXT, year INTEGER, emb VECTOR(3))"
        ),
        params![],
    )
    .unwrap();
    db.execute(
        &format!(
            "INSERT INTO {name} (title, year, emb) VALUES \
             ('red', 2010, [1, 0, 0]), ('green', 2012, [0, 1, 0]), ('blue', 2014, [0, 0, 1]), \
             ('teal', 2016, [0, 0.7, 0.7]), ('pink', 2018, [1, 0.5, 0.5]), (NULL, 2020, [0.2, 0.2, 0.9]), \
             ('gold', NULL, [0.9, 0.9, 0]), ('grey', 2024, NULL)"
        ),
        params![],
    )
    .unwrap();
}

fn values(rows: &Rows) -> Vec<Vec<Value>> {
    rows.iter().map(|r| r.values().to_vec()).collect()
}

#[test]
fn question_marks_bind_where_they_appear_in_the_text() {
    let (_d, db) = db();
    let rows = db
        .query(
            "SELECT title, year + ? AS y FROM docs WHERE id = ?",
            params![100, 2],
        )
        .unwrap();
    assert_eq!(
        values(&rows),
        [[Value::Text("green".into()), Value::Integer(2112)]]
    );
    // ORDER BY before LIMIT before OFFSET, after WHERE, after the projection.
    let rows = db
        .query(
            "SELECT id * ? FROM docs WHERE year > ? ORDER BY similarity(emb, ?) LIMIT ? OFFSET ?",
            params![10, 2011, vec![0.0f32, 0.0, 1.0], 2, 1],
        )
        .unwrap();
    assert_eq!(
        values(&rows),
        [[Value::Integer(60)], [Value::Integer(40)]],
        "blue (30) is nearest, then 6 (60), then teal (40)"
    );
    // `$n` keep their number wherever they are; `?` count on their own.
    let rows = db
        .query(
            "SELECT $2 AS b, ? AS first, ? AS second FROM docs WHERE id = $1",
            params![3, "two"],
        )
        .unwrap();
    assert_eq!(
        values(&rows),
        [[
            Value::Text("two".into()),
            Value::Integer(3),
            Value::Text("two".into())
        ]]
    );
}

#[test]
fn writes_bind_by_text_position() {
    let (_d, db) = db();
    assert_eq!(
        db.execute(
            "UPDATE docs SET title = ?, year = year + ? WHERE id = ?",
            params!["x", 1, 1],
        )
        .unwrap(),
        1
    );
    assert_eq!(
        db.execute(
            "DELETE FROM docs WHERE title = ? AND year = ?",
            params!["x", 2011]
        )
        .unwrap(),
        1
    );
    db.execute(
        "INSERT INTO docs (year, title, emb) VALUES (?, ?, ?)",
        params![1999, "new", vec![1.0f32, 1.0, 1.0]],
    )
    .unwrap();
    let rows = db
        .query("SELECT title FROM docs WHERE year = ?", params![1999])
        .unwrap();
    assert_eq!(values(&rows), [[Value::Text("new".into())]]);
}

#[test]
fn limit_and_offset_take_parameters() {
    let (_d, db) = db();
    let ids = |rows: Rows| -> Vec<i64> { rows.iter().map(|r| r.get::<i64>(0).unwrap()).collect() };
    let q = |sql: &str, p: &[Value]| ids(db.query(sql, p).unwrap());
    assert_eq!(
        q("SELECT id FROM docs ORDER BY id LIMIT ?", params![3]),
        [1, 2, 3]
    );
    assert_eq!(
        q(
            "SELECT id FROM docs ORDER BY id LIMIT ? OFFSET ?",
            params![2, 5]
        ),
        [6, 7]
    );
    assert_eq!(
        q(
            "SELECT id FROM docs ORDER BY id LIMIT $2 OFFSET $1",
            params![5, 2]
        ),
        [6, 7]
    );
    assert_eq!(
        q("SELECT id FROM docs ORDER BY id LIMIT ?, ?", params![5, 2]),
        [6, 7],
        "LIMIT offset, count"
    );
    assert_eq!(q("SELECT id FROM docs LIMIT ? + 1", params![1]), [1, 2]);
    assert_eq!(q("SELECT id FROM docs LIMIT ?", params![0]), [] as [i64; 0]);
    // A vector search with a parameter k.
    assert_eq!(
        q(
            "SELECT id FROM docs ORDER BY similarity(emb, ?) LIMIT ? OFFSET ?",
            params![vec![1.0f32, 0.0, 0.0], 2, 1]
        ),
        [5, 7]
    );

    // Prepared: counted, and a different value each run.
    let mut stmt = db
        .prepare("SELECT id FROM docs WHERE year > ? ORDER BY id LIMIT ? OFFSET ?")
        .unwrap();
    assert_eq!(stmt.parameter_count(), 3);
    assert_eq!(ids(stmt.query(params![2011, 2, 0]).unwrap()), [2, 3]);
    assert_eq!(ids(stmt.query(params![2011, 1, 3]).unwrap()), [5]);

    // EXPLAIN shows the values of this run.
    let plan = db
        .query(
            "EXPLAIN SELECT id FROM docs ORDER BY similarity(emb, ?) LIMIT ? OFFSET ?",
            params![vec![1.0f32, 0.0, 0.0], 4, 3],
        )
        .unwrap();
    let text: Vec<String> = plan.iter().map(|r| r.get::<String>(0).unwrap()).collect();
    assert_eq!(text[0], "Limit: limit=4 offset=3", "{text:?}");
    assert!(text[2].contains(" k=7"), "{text:?}");

    for (p, want) in [
        (
            params![-1],
            "LIMIT $1 must be a non-negative integer, got -1",
        ),
        (
            params![1.5],
            "LIMIT $1 must be a non-negative integer, got 1.5",
        ),
        (
            params!["3"],
            "LIMIT $1 must be a non-negative integer, got '3'",
        ),
        (
            params![None::<i64>],
            "LIMIT $1 must be a non-negative integer, got NULL",
        ),
    ] {
        let err = db.query("SELECT id FROM docs LIMIT ?", p).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains(want), "{err}");
    }
    let err = db
        .query("SELECT id FROM docs LIMIT 1 OFFSET ?", params![-2])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OFFSET $1 must be a non-negative integer"),
        "{err}"
    );
    let err = db
        .query("SELECT id FROM docs LIMIT ?", params![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes 1 parameter(s), 0 given"), "{err}");
    let err = db
        .query("SELECT id FROM docs LIMIT year", params![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("LIMIT cannot read columns"), "{err}");
}

/// A value as SQL text, for the statement the parameterised one must agree with.
fn literal(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Vector(v) => {
            let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            format!("[{}]", items.join(", "))
        }
        other => panic!("no literal for {other:?}"),
    }
}

/// A statement with `?` in random clauses and the values that go with them, in text order.
struct Case {
    sql: String,
    params: Vec<Value>,
}

impl Case {
    fn new() -> Case {
        Case {
            sql: String::new(),
            params: Vec::new(),
        }
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    fn param(&mut self, v: Value) -> &mut Self {
        self.sql.push('?');
        self.params.push(v);
        self
    }

    /// The same statement with each `?` replaced by its value written out.
    fn substituted(&self) -> String {
        let mut out = String::new();
        let mut values = self.params.iter();
        for c in self.sql.chars() {
            match c {
                '?' => out.push_str(&literal(values.next().unwrap())),
                c => out.push(c),
            }
        }
        out
    }
}

fn int(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> Value {
    Value::Integer(rng.random_range(lo..=hi))
}

fn word(rng: &mut ChaCha8Rng) -> Value {
    let w = ["red", "green", "blue", "o'hara", "teal", "?", "x"];
    Value::Text(w[rng.random_range(0..w.len())].into())
}

fn vector(rng: &mut ChaCha8Rng) -> Value {
    Value::Vector(
        (0..3)
            .map(|_| rng.random_range(-4..=4) as f32 / 4.0)
            .collect(),
    )
}

fn random_select(rng: &mut ChaCha8Rng) -> Case {
    let mut c = Case::new();
    c.text("SELECT id");
    for _ in 0..rng.random_range(0..3) {
        match rng.random_range(0..4) {
            0 => c.text(", year + ").param(int(rng, -50, 50)),
            1 => c.text(", ").param(word(rng)).text(" AS w"),
            2 => c.text(", similarity(emb, ").param(vector(rng)).text(")"),
            _ => c.text(", title || ").param(word(rng)),
        };
    }
    c.text(" FROM docs");
    let conds = rng.random_range(0..3);
    for i in 0..conds {
        c.text(if i == 0 { " WHERE " } else { " AND " });
        match rng.random_range(0..4) {
            0 => c.text("id <> ").param(int(rng, 1, 8)),
            1 => c.text("year > ").param(int(rng, 2008, 2024)),
            2 => c.text("title <> ").param(word(rng)),
            _ => c
                .text("year BETWEEN ")
                .param(int(rng, 2008, 2016))
                .text(" AND ")
                .param(int(rng, 2016, 2024)),
        };
    }
    match rng.random_range(0..3) {
        0 => c.text(" ORDER BY id"),
        1 => c
            .text(" ORDER BY similarity(emb, ")
            .param(vector(rng))
            .text("), id"),
        _ => c
            .text(" ORDER BY year * ")
            .param(int(rng, -2, 2))
            .text(", id"),
    };
    if rng.random_bool(0.7) {
        c.text(" LIMIT ").param(int(rng, 0, 9));
        if rng.random_bool(0.5) {
            c.text(" OFFSET ").param(int(rng, 0, 4));
        }
    }
    c
}

fn random_write(rng: &mut ChaCha8Rng, table: &str) -> Case {
    let mut c = Case::new();
    match rng.random_range(0..3) {
        0 => {
            c.text(&format!("INSERT INTO {table} (year, title, emb) VALUES "));
            for i in 0..rng.random_range(1..3) {
                c.text(if i == 0 { "(" } else { ", (" })
                    .param(int(rng, 1990, 2030))
                    .text(", ")
                    .param(word(rng))
                    .text(", ")
                    .param(vector(rng))
                    .text(")");
            }
        }
        1 => {
            c.text(&format!("UPDATE {table} SET year = year + "))
                .param(int(rng, -5, 5))
                .text(", title = ")
                .param(word(rng))
                .text(" WHERE id > ")
                .param(int(rng, 0, 8))
                .text(" AND year < ")
                .param(int(rng, 2010, 2025));
        }
        _ => {
            c.text(&format!("DELETE FROM {table} WHERE year > "))
                .param(int(rng, 2008, 2024))
                .text(" OR title = ")
                .param(word(rng));
        }
    }
    c
}

/// Generated statements with `?` in several clauses give the rows (or make the changes) of the
/// same statement with each value written where its `?` stood.
#[test]
fn random_statements_bind_each_value_where_it_appears() {
    let (_d, db) = db();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for _ in 0..300 {
        let c = random_select(&mut rng);
        let by_param = db.query(&c.sql, &c.params).unwrap();
        let by_text = db.query(&c.substituted(), params![]).unwrap();
        assert_eq!(
            values(&by_param),
            values(&by_text),
            "{}\n{:?}",
            c.sql,
            c.params
        );
    }
    for n in 0..60 {
        let (a, b) = (format!("a{n}"), format!("b{n}"));
        create_docs(&db, &a);
        create_docs(&db, &b);
        let c = random_write(&mut rng, &a);
        let changed = db.execute(&c.sql, &c.params).unwrap();
        let same = db.execute(&c.substituted().replace(&a, &b), params![]);
        assert_eq!(changed, same.unwrap(), "{}\n{:?}", c.sql, c.params);
        let all = |t: &str| values(&db.query(&format!("SELECT * FROM {t}"), params![]).unwrap());
        assert_eq!(all(&a), all(&b), "{}\n{:?}", c.sql, c.params);
    }
}

/// How a vector literal may be written: `0.5`, `5e-1`, `+.5`, integers, spacing and newlines.
fn write_number(rng: &mut ChaCha8Rng, x: f32) -> String {
    let s = match rng.random_range(0..4) {
        0 => format!("{x}"),
        1 => format!("{x:e}"),
        2 => format!("{x:.3}"),
        _ => format!("{:+}", x),
    };
    let pad = [" ", "", "\n  ", "\t"];
    format!(
        "{}{s}{}",
        pad[rng.random_range(0..pad.len())],
        pad[rng.random_range(0..pad.len())]
    )
}

/// A vector literal gives what the same vector as a parameter gives, in a search, a projection,
/// a filter and an INSERT; `[(x), ...]` (which the lexer leaves to sqlparser) agrees too.
#[test]
fn vector_literals_answer_as_parameters() {
    let (_d, db) = db();
    let mut rng = ChaCha8Rng::seed_from_u64(512);
    for _ in 0..150 {
        let v: Vec<f32> = (0..3)
            .map(|_| {
                if rng.random_bool(0.3) {
                    rng.random_range(-3..=3) as f32
                } else {
                    rng.random_range(-1.0..1.0f32)
                }
            })
            .collect();
        let items: Vec<String> = v.iter().map(|x| write_number(&mut rng, *x)).collect();
        // Read back as sqlparser's path would: a written number is the value it reads as.
        let read: Vec<f32> = items
            .iter()
            .map(|s| s.trim().parse::<f64>().unwrap() as f32)
            .collect();
        let lit = format!("[{}]", items.join(","));
        let plain = format!("[({}),{}]", items[0], items[1..].join(","));
        let sql = |q: &str| {
            format!(
                "SELECT id, similarity(emb, {q}) AS s FROM docs WHERE similarity(emb, {q}) > -0.5 \
                 ORDER BY similarity(emb, {q}) LIMIT 4"
            )
        };
        let by_param = db
            .query(&sql("$1"), params![read.clone()])
            .unwrap()
            .iter()
            .map(|r| r.values().to_vec())
            .collect::<Vec<_>>();
        for q in [&lit, &plain] {
            let got = values(&db.query(&sql(q), params![]).unwrap());
            assert_eq!(got, by_param, "{q}");
        }
        db.execute(
            &format!(
                "INSERT INTO docs (title, emb) VALUES ('lit', {lit}), ('plain', {plain}), ('p', ?)"
            ),
            params![read.clone()],
        )
        .unwrap();
        let stored = db
            .query("SELECT emb FROM docs WHERE id > 8", params![])
            .unwrap();
        let stored: Vec<Vec<f32>> = stored.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(stored.len(), 3);
        assert!(stored.iter().all(|v| *v == stored[2]), "{lit}: {stored:?}");
        db.execute("DELETE FROM docs WHERE id > 8", params![])
            .unwrap();
    }
}

/// A literal keeps its column name, EXPLAIN text and errors: the lexer's shortcut is invisible.
#[test]
fn vector_literals_look_as_written() {
    let (_d, db) = db();
    let rows = db
        .query(
            "SELECT similarity(emb,[1,0.5e0,-0]) FROM docs LIMIT 1",
            params![],
        )
        .unwrap();
    assert_eq!(rows.column_names(), ["similarity(emb, [1, 0.5e0, -0])"]);
    let plan = db
        .query(
            "EXPLAIN SELECT id FROM docs ORDER BY similarity(emb, [1, 0, 0]) LIMIT 2",
            params![],
        )
        .unwrap();
    let line: String = plan.get(2).unwrap().get(0).unwrap();
    assert!(line.contains("query=[1, 0, 0] k=2"), "{line}");
    // Brackets inside strings and comments are text, not vectors.
    let rows = db
        .query(
            "SELECT '[1, 2]' AS s, -- , [3]\n title FROM docs /* ,[4] */ WHERE title <> '(,[5])' AND id = ?",
            params![1],
        )
        .unwrap();
    assert_eq!(
        values(&rows),
        [[Value::Text("[1, 2]".into()), Value::Text("red".into())]]
    );
    // A syntax error after a literal points where it is.
    let after = |q: &str| {
        db.query(
            &format!("SELECT similarity(emb, {q}) FROM docs\n WHERE id = = 1"),
            params![vec![1.0f32, 0.0, 0.0]],
        )
        .unwrap_err()
        .to_string()
    };
    let err = after("[1, 0, 0]");
    assert!(err.contains("line 2, column 13"), "{err}");
    assert_eq!(err, after("?"));
    let err = db
        .query("SELECT similarity(emb, [1, 0]) FROM docs", params![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 dimensions"), "{err}");
    let err = db
        .query("SELECT similarity(emb, [1e400, 0, 0]) FROM docs", params![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("number 1e400 is out of range"), "{err}");
}
