//! Models plug into the engine from outside: a loader installed with
//! `DatabaseBuilder::model_loader` serves every spec a table names, is called once per spec, and
//! its errors reach the caller naming the spec, at CREATE TABLE. Without the `clip` feature the
//! built-in loader refuses, naming the feature.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mmdb::{Database, Embedder, Error, ModelLoader, Value};

use crate::sql_logic::FakeEmbedder;

fn counting_loader(calls: Arc<AtomicUsize>) -> Arc<ModelLoader> {
    Arc::new(move |spec: &str| {
        calls.fetch_add(1, Ordering::SeqCst);
        if spec == "broken" {
            return Err(Error::Model(format!("{spec}: no such model here")));
        }
        Ok(Arc::new(FakeEmbedder::new(spec)) as Arc<dyn Embedder>)
    })
}

#[test]
fn an_installed_loader_serves_every_table_once_per_spec() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let db = Database::builder()
        .model_loader(counting_loader(calls.clone()))
        .open(dir.path())
        .unwrap();
    db.execute(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body EMBEDDED_TEXT) WITH (model = 'mine')",
        &[],
    )
    .unwrap();
    for body in ["red apples", "green pears", "red cherries"] {
        db.execute(
            "INSERT INTO notes (body) VALUES (?)",
            &[Value::Text(body.into())],
        )
        .unwrap();
    }
    let rows = db
        .query(
            "SELECT body FROM notes ORDER BY similarity(body, 'red apples') LIMIT 1",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.get(0).unwrap().get::<String>("body").unwrap(),
        "red apples"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "loaded once, then cached");
    let schema = db.table_schema("notes").unwrap();
    assert_eq!(schema.model_identity.as_deref(), Some("mine dim=16 fake"));

    // CREATE TABLE loads the model: one that fails is reported there, and no table is made.
    let err = db
        .execute(
            "CREATE TABLE other (body EMBEDDED_TEXT) WITH (model = 'broken')",
            &[],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken"), "{err}");
    assert_eq!(db.table_names(), ["notes"]);
}

#[cfg(not(feature = "clip"))]
#[test]
fn without_clip_the_built_in_loader_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let err = db
        .execute("CREATE TABLE photos (image IMAGE)", &[])
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("clip") && msg.contains("model_loader"),
        "{msg}"
    );
    assert!(db.table_names().is_empty());
}
