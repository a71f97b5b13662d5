//! sqllogictest scripts (`tests/slt/*.slt`) run against a fresh database each, with a fake,
//! deterministic embedder registered for the default model and for `model = 'fake'`.

use std::path::Path;
use std::sync::Arc;

use mmdb::{DEFAULT_MODEL, Embedder};
use mmdb::{Database, Error, ImageSource, Output, Session, Value};
use sqllogictest::{DBOutput, DefaultColumnType};

/// Bag-of-words vectors: each word adds 1 to bucket hash(word) % DIM, so texts sharing words are
/// similar. Image paths embed the words of their file stem (a missing file is an error); image
/// bytes embed their UTF-8 text.
pub struct FakeEmbedder {
    identity: String,
}

const DIM: usize = 16;

impl FakeEmbedder {
    pub fn new(name: &str) -> FakeEmbedder {
        FakeEmbedder {
            identity: format!("{name} dim={DIM} fake"),
        }
    }

    fn words(text: &str) -> Vec<f32> {
        let mut v = vec![0.0; DIM];
        for w in text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let h = w.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
            v[(h % DIM as u64) as usize] += 1.0;
        }
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        v
    }
}

impl Embedder for FakeEmbedder {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn dim(&self) -> usize {
        DIM
    }
    fn embed_texts(&self, texts: &[String]) -> Vec<mmdb::Result<Vec<f32>>> {
        texts.iter().map(|t| Ok(Self::words(t))).collect()
    }
    fn embed_images(
        &self,
        images: &[ImageSource],
        _: &mmdb::ImageLimits,
    ) -> Vec<mmdb::Result<Vec<f32>>> {
        images
            .iter()
            .map(|img| match img {
                ImageSource::Path(p) => {
                    if !Path::new(p).exists() {
                        return Err(Error::image(
                            p.clone(),
                            mmdb::ImageErrorKind::Missing,
                            "no such file",
                        ));
                    }
                    let stem = Path::new(p)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned());
                    Ok(Self::words(&stem.unwrap_or_default()))
                }
                ImageSource::Bytes(b) => Ok(Self::words(&String::from_utf8_lossy(b))),
            })
            .collect()
    }
}

/// Registers fake embedders on `db` for the default model, `fake` and `other` (a different
/// identity, for mismatch tests).
pub fn install_fakes(db: &Database) {
    db.models()
        .insert(DEFAULT_MODEL, Arc::new(FakeEmbedder::new(DEFAULT_MODEL)));
    db.models()
        .insert("fake", Arc::new(FakeEmbedder::new("fake")));
}

struct SltDb {
    session: Session,
    _dir: tempfile::TempDir,
}

fn render(v: &Value) -> String {
    match v {
        Value::Real(r) => format!("{r:.3}"),
        Value::Text(s) if s.is_empty() => "(empty)".into(),
        other => other.to_string(),
    }
}

impl sqllogictest::DB for SltDb {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        Ok(match self.session.run(sql, &[])? {
            Output::Rows(rows) => DBOutput::Rows {
                types: rows
                    .columns()
                    .iter()
                    .map(|c| match c.ty {
                        Some(mmdb::ColumnType::Integer) => DefaultColumnType::Integer,
                        Some(mmdb::ColumnType::Real) => DefaultColumnType::FloatingPoint,
                        Some(_) => DefaultColumnType::Text,
                        None => DefaultColumnType::Any,
                    })
                    .collect(),
                rows: rows
                    .iter()
                    .map(|r| r.values().iter().map(render).collect())
                    .collect(),
            },
            Output::Changed(n) => DBOutput::StatementComplete(n as u64),
            Output::Done => DBOutput::StatementComplete(0),
        })
    }
}

fn run_slt(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("tests/slt").join(name);
    // Image paths in the scripts are relative to tests/slt/images (created here; the fake
    // embedder only needs the files to exist).
    let images = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slt-images");
    std::fs::create_dir_all(&images).unwrap();
    for f in [
        "cat_on_sofa.jpg",
        "dog_in_park.jpg",
        "red_car.png",
        "cat_and_dog.jpg",
    ] {
        std::fs::write(images.join(f), b"not really an image").unwrap();
    }
    let mut runner = sqllogictest::Runner::new(|| async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("db")).unwrap();
        install_fakes(&db);
        Ok(SltDb {
            session: db.session(),
            _dir: dir,
        })
    });
    runner.add_label("mmdb");
    runner.set_var("IMAGES".into(), images.to_string_lossy().into_owned());
    if let Err(e) = runner.run_file(&file) {
        panic!("{}: {}", file.display(), e.display(true));
    }
}

macro_rules! slt {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            run_slt(concat!(stringify!($name), ".slt"));
        }
    )*};
}

slt!(
    ddl,
    dml,
    select,
    aggregates,
    vector_search,
    embedded,
    errors,
    paging
);

/// The embedded API: parameters, typed access, prepared statements, sessions, models.
mod api {
    use super::*;
    use mmdb::{ColumnType, params};

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("db")).unwrap();
        (dir, db)
    }

    #[test]
    fn parameters_and_typed_access() {
        let (_d, db) = db();
        db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, emb VECTOR(2))",
            params![],
        )
        .unwrap();
        let n = db
            .execute(
                "INSERT INTO t (name, score, emb) VALUES (?, ?, ?), ($4, $5, $6)",
                params![
                    "o'hara; DROP TABLE t",
                    1.5,
                    vec![1.0f32, 0.0],
                    "b",
                    None::<f64>,
                    vec![0.0f32, 1.0]
                ],
            )
            .unwrap();
        assert_eq!(n, 2);
        let rows = db
            .query("SELECT id, name, score, similarity(emb, $1) AS s FROM t WHERE name <> $2 ORDER BY s LIMIT 5", params![
                vec![1.0f32, 0.0], "nobody"
            ])
            .unwrap();
        assert_eq!(rows.column_names(), ["id", "name", "score", "s"]);
        let types: Vec<_> = rows.columns().iter().map(|c| c.ty).collect();
        assert_eq!(
            types,
            [
                Some(ColumnType::Integer),
                Some(ColumnType::Text),
                Some(ColumnType::Real),
                Some(ColumnType::Real)
            ]
        );
        assert_eq!(rows.len(), 2);
        let first = rows.get(0).unwrap();
        assert_eq!(first.get::<String>("name").unwrap(), "o'hara; DROP TABLE t");
        assert_eq!(first.get::<i64>(0).unwrap(), 1);
        assert!((first.get::<f64>("S").unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(
            rows.get(1).unwrap().get::<Option<f64>>("score").unwrap(),
            None
        );
        assert!(db.table_names().contains(&"t".to_string()));
    }

    #[test]
    fn prepared_statements_are_reusable() {
        let (_d, db) = db();
        db.execute("CREATE TABLE t (k INTEGER, v TEXT)", params![])
            .unwrap();
        let mut ins = db.prepare("INSERT INTO t VALUES (?, ?)").unwrap();
        assert_eq!(ins.parameter_count(), 2);
        for i in 0..5 {
            assert_eq!(ins.execute(params![i, format!("v{i}")]).unwrap(), 1);
        }
        let err = ins.execute(params![1]).unwrap_err().to_string();
        assert!(err.contains("takes 2 parameter(s), 1 given"), "{err}");
        let mut q = db
            .prepare("SELECT v FROM t WHERE k >= $1 ORDER BY k")
            .unwrap();
        assert_eq!(q.query(params![3]).unwrap().len(), 2);
        assert_eq!(q.query(params![0]).unwrap().len(), 5);
        assert!(db.prepare("SELECT nope FROM t").is_err());
        assert!(
            db.query("INSERT INTO t VALUES (9, 'x')", params![])
                .is_err()
        );
    }

    #[test]
    fn concurrent_read_modify_write_updates_are_not_lost() {
        let (_d, db) = db();
        db.execute("CREATE TABLE c (n INTEGER)", params![]).unwrap();
        db.execute("INSERT INTO c VALUES (0)", params![]).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        db.execute("UPDATE c SET n = n + 1", params![]).unwrap();
                    }
                });
            }
        });
        let rows = db.query("SELECT n FROM c", params![]).unwrap();
        assert_eq!(rows.get(0).unwrap().get::<i64>(0).unwrap(), 100);
    }

    #[test]
    fn session_settings_persist_per_session() {
        let (_d, db) = db();
        let mut s = db.session();
        s.execute("SET ef_search = 99", params![]).unwrap();
        s.execute("SET exact = true", params![]).unwrap();
        assert_eq!(s.settings().ef_search, Some(99));
        assert!(s.settings().exact);
        assert_eq!(db.session().settings().ef_search, None);
    }

    #[test]
    fn model_errors_mismatch_and_text_parameters() {
        let (_d, db) = db();
        // No model registered: a clear model error naming the table, at CREATE.
        let err = db
            .execute(
                "CREATE TABLE n (body EMBEDDED_TEXT) WITH (model = 'fake')",
                params![],
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Model(ref m) if m.contains("table n")),
            "{err}"
        );
        install_fakes(&db);
        db.execute(
            "CREATE TABLE n (body EMBEDDED_TEXT) WITH (model = 'fake')",
            params![],
        )
        .unwrap();
        db.execute(
            "INSERT INTO n VALUES ('hello there'), ('bye now')",
            params![],
        )
        .unwrap();
        let rows = db
            .query(
                "SELECT body FROM n ORDER BY similarity(body, ?) LIMIT 1",
                params!["bye"],
            )
            .unwrap();
        assert_eq!(rows.get(0).unwrap().get::<String>(0).unwrap(), "bye now");
        // A different model under the same name is refused, never mixed.
        db.models()
            .insert("fake", Arc::new(FakeEmbedder::new("another")));
        let err = db
            .execute("INSERT INTO n VALUES ('x')", params![])
            .unwrap_err();
        assert!(matches!(err, Error::ModelMismatch { .. }), "{err}");
        let err = db
            .query(
                "SELECT body FROM n ORDER BY similarity(body, 'x') LIMIT 1",
                params![],
            )
            .unwrap_err();
        assert!(matches!(err, Error::ModelMismatch { .. }), "{err}");
    }

    #[test]
    fn relative_image_paths_become_absolute() {
        let (_d, db) = db();
        install_fakes(&db);
        let name = format!("mmdb_rel_{}.jpg", std::process::id());
        std::fs::write(&name, b"x").unwrap();
        db.execute("CREATE TABLE p (image IMAGE)", params![])
            .unwrap();
        let res = db.execute("INSERT INTO p VALUES (?)", params![name.as_str()]);
        std::fs::remove_file(&name).unwrap();
        res.unwrap();
        let rows = db.query("SELECT image FROM p", params![]).unwrap();
        let ImageSource::Path(p) = rows.get(0).unwrap().get::<ImageSource>(0).unwrap() else {
            panic!("expected a path");
        };
        assert_eq!(Path::new(&p), std::env::current_dir().unwrap().join(&name));
    }

    #[test]
    fn filtered_search_returns_k_rows_when_k_match() {
        let (_d, db) = db();
        db.execute(
            "CREATE TABLE v (id INTEGER PRIMARY KEY, bucket INTEGER, emb VECTOR(8))",
            params![],
        )
        .unwrap();
        let mut x = 12345u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1000) as f32 / 1000.0 - 0.5
        };
        // One statement: each statement is one durable batch.
        let values: Vec<String> = (0..3000)
            .map(|i| {
                let v: Vec<String> = (0..8).map(|_| rnd().to_string()).collect();
                format!("({}, [{}])", i % 100, v.join(", "))
            })
            .collect();
        let sql = format!("INSERT INTO v (bucket, emb) VALUES {}", values.join(", "));
        assert_eq!(db.execute(&sql, params![]).unwrap(), 3000);
        db.checkpoint().unwrap();
        let q: Vec<f32> = (0..8).map(|_| rnd()).collect();
        for sql in [
            "SELECT id FROM v WHERE bucket = 7 ORDER BY similarity(emb, ?) LIMIT 10",
            "SELECT id FROM v WHERE bucket < 50 ORDER BY similarity(emb, ?) LIMIT 10",
        ] {
            let got = db.query(sql, params![q.clone()]).unwrap();
            assert_eq!(got.len(), 10, "{sql}");
            let mut s = db.session();
            s.execute("SET exact = true", params![]).unwrap();
            let exact = s.query(sql, params![q.clone()]).unwrap();
            let ids = |r: &mmdb::Rows| {
                r.iter()
                    .map(|x| x.get::<i64>(0).unwrap())
                    .collect::<Vec<_>>()
            };
            let (a, b) = (ids(&got), ids(&exact));
            let overlap = a.iter().filter(|i| b.contains(i)).count();
            assert!(overlap >= 9, "{sql}: recall {overlap}/10");
        }
    }
}

/// Every ```sql block of docs/sql.md runs, in order, on one database; ```sql,error blocks fail.
#[test]
fn docs_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/sql.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("photos")).unwrap();
    for f in ["cat.jpg", "dog.jpg", "q.jpg"] {
        std::fs::write(dir.path().join("photos").join(f), b"x").unwrap();
    }
    let db = Database::open(dir.path().join("db")).unwrap();
    install_fakes(&db);
    let mut session = db.session();
    let photos = format!("'{}/photos/", dir.path().display());
    let mut blocks = 0;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let expect_error = match line.trim() {
            "```sql" => false,
            "```sql,error" => true,
            _ => continue,
        };
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let sql = block.join("\n").replace("'photos/", &photos);
        let res = session.run_script(&sql, |_, _| {});
        match (expect_error, res) {
            (false, Err(e)) => panic!("docs/sql.md example failed: {e}\n{sql}"),
            (true, Ok(())) => panic!("docs/sql.md example should fail:\n{sql}"),
            _ => blocks += 1,
        }
    }
    assert!(blocks >= 12, "only {blocks} examples found");
}

/// Every Rust example of README.md and docs/*.md runs as a doctest: a file with one is included by
/// src/lib.rs (`#[doc = include_str!(..)]`), no example is marked `ignore` or `no_run`, and an
/// included file has no unlabelled block (rustdoc would compile it as Rust).
#[test]
fn rust_examples_in_docs_are_doctests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut examples = 0;
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let included = lib.contains(&format!("include_str!(\"../{rel}\")"));
        let text = std::fs::read_to_string(&f).unwrap();
        let mut open = false;
        for (n, line) in text.lines().enumerate() {
            let Some(info) = line.trim_start().strip_prefix("```") else {
                continue;
            };
            if open {
                open = false;
                continue;
            }
            open = true;
            let info: Vec<&str> = info.split(',').map(str::trim).collect();
            let at = format!("{rel}:{}", n + 1);
            if info == [""] {
                assert!(
                    !included,
                    "{at}: label the block (```text) or rustdoc runs it"
                );
            } else if info[0] == "rust" {
                assert!(
                    included,
                    "{at}: a Rust example; include {rel} in src/lib.rs"
                );
                assert!(
                    !info.contains(&"ignore") && !info.contains(&"no_run"),
                    "{at}: examples must run"
                );
                examples += 1;
            }
        }
    }
    assert!(examples >= 2, "only {examples} Rust examples found");
}
