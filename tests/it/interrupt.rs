//! Interrupting a write: Ctrl-C sets the session's interrupt flag, and an INSERT or UPDATE that
//! is still embedding its rows stops with `Error::Interrupted` and changes no row.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mmdb::{Database, Embedder, Error, ImageLimits, ImageSource, Result, Session, Value};

/// Embeds texts as small vectors; once armed, its next call sets the session's interrupt flag,
/// as Ctrl-C would while the model runs.
struct Tripwire {
    interrupt: Arc<AtomicBool>,
    armed: AtomicBool,
    texts_seen: AtomicUsize,
}

impl Embedder for Tripwire {
    fn identity(&self) -> &str {
        "tripwire dim=2"
    }
    fn dim(&self) -> usize {
        2
    }
    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Vec<f32>>> {
        self.texts_seen.fetch_add(texts.len(), Ordering::SeqCst);
        if self.armed.swap(false, Ordering::SeqCst) {
            self.interrupt.store(true, Ordering::SeqCst);
        }
        texts
            .iter()
            .map(|t| Ok(vec![1.0, t.len() as f32]))
            .collect()
    }
    fn embed_images(&self, images: &[ImageSource], _: &ImageLimits) -> Vec<Result<Vec<f32>>> {
        images.iter().map(|_| Ok(vec![1.0, 0.0])).collect()
    }
}

/// A database with table `t (id, caption EMBEDDED_TEXT)` using the tripwire model, and a session
/// whose interrupt flag the model sets.
fn setup() -> (tempfile::TempDir, Database, Session, Arc<Tripwire>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let session = db.session();
    let model = Arc::new(Tripwire {
        interrupt: session.interrupt_handle(),
        armed: AtomicBool::new(false),
        texts_seen: AtomicUsize::new(0),
    });
    db.models().insert("tripwire", model.clone());
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, caption EMBEDDED_TEXT) WITH (model = 'tripwire')",
        &[],
    )
    .unwrap();
    (dir, db, session, model)
}

fn insert_sql(from: usize, n: usize) -> String {
    let rows: Vec<String> = (from..from + n)
        .map(|i| format!("({i}, 'caption {i}')"))
        .collect();
    format!("INSERT INTO t (id, caption) VALUES {}", rows.join(", "))
}

fn count(db: &Database, sql: &str) -> i64 {
    db.query(sql, &[]).unwrap().get(0).unwrap().get(0).unwrap()
}

#[test]
fn an_interrupted_insert_writes_nothing_and_stops_embedding() {
    let (_dir, db, mut session, model) = setup();
    session.execute(&insert_sql(1, 10), &[]).unwrap();
    let seen_before = model.texts_seen.load(Ordering::SeqCst);

    model.armed.store(true, Ordering::SeqCst);
    let err = session.execute(&insert_sql(100, 5000), &[]).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 10);
    // It stopped between chunks instead of embedding all 5000 captions first.
    let embedded = model.texts_seen.load(Ordering::SeqCst) - seen_before;
    assert!(embedded < 5000, "embedded {embedded} of 5000 captions");

    // The next statement starts with the flag cleared.
    assert_eq!(session.execute(&insert_sql(100, 5000), &[]).unwrap(), 5000);
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 5010);
}

#[test]
fn an_insert_interrupted_during_its_last_chunk_writes_nothing() {
    let (_dir, db, mut session, model) = setup();
    model.armed.store(true, Ordering::SeqCst);
    let err = session
        .execute("INSERT INTO t (caption) VALUES ('only one')", &[])
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 0);
}

#[test]
fn an_interrupted_update_changes_no_row() {
    let (_dir, db, mut session, model) = setup();
    session.execute(&insert_sql(1, 3000), &[]).unwrap();
    let before: Vec<(i64, String)> = db
        .query("SELECT id, caption FROM t ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect();

    model.armed.store(true, Ordering::SeqCst);
    let err = session
        .execute("UPDATE t SET caption = ? WHERE id > 0", &[Value::from("x")])
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    let after: Vec<(i64, String)> = db
        .query("SELECT id, caption FROM t ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect();
    // Rows are replaced whole (values and vectors), so unchanged captions mean unchanged rows.
    assert_eq!(after, before);
}
