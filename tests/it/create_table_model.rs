//! CREATE TABLE and the table's model: a table with IMAGE or EMBEDDED_TEXT columns loads its model
//! at CREATE (a bad one is an error there and creates nothing) and records its identity; a model
//! folder given by a relative path is stored absolute; other specs are stored as written.

use std::path::Path;
use std::sync::{Arc, Mutex};

use mmdb::{DEFAULT_MODEL, Database, Embedder, Error, ModelLoader, params};

use crate::sql_logic::FakeEmbedder;

/// A loader that knows every spec but `nosuch` and remembers the specs it was asked for.
fn recording_loader(asked: Arc<Mutex<Vec<String>>>) -> Arc<ModelLoader> {
    Arc::new(move |spec: &str| {
        asked.lock().unwrap().push(spec.to_string());
        if spec == "nosuch" {
            return Err(Error::Model(format!("no model called {spec}")));
        }
        Ok(Arc::new(FakeEmbedder::new(spec)) as Arc<dyn Embedder>)
    })
}

fn open(dir: &Path) -> (Database, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let db = Database::builder()
        .model_loader(recording_loader(asked.clone()))
        .open(dir)
        .unwrap();
    (db, asked)
}

#[test]
fn a_model_that_does_not_load_fails_the_create_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open(dir.path());
    for sql in [
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, image IMAGE) WITH (model = 'nosuch')",
        "CREATE TABLE notes (body EMBEDDED_TEXT) WITH (model = 'nosuch')",
    ] {
        let err = db.execute(sql, params![]).unwrap_err();
        assert!(matches!(err, Error::Model(_)), "{sql}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("nosuch"), "{msg}");
    }
    assert!(db.table_names().is_empty());
    db.close().unwrap();
    let (db, _) = open(dir.path());
    assert!(db.table_names().is_empty(), "nothing reached the catalog");

    // The same name with a model that loads is created.
    db.execute(
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, image IMAGE) WITH (model = 'good')",
        params![],
    )
    .unwrap();
    assert_eq!(db.table_names(), ["photos"]);
}

#[test]
fn create_records_the_identity_and_dimension_of_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (db, asked) = open(dir.path());
    db.execute(
        "CREATE TABLE photos (image IMAGE, caption EMBEDDED_TEXT, v VECTOR(3)) WITH (model = 'good')",
        params![],
    )
    .unwrap();
    let schema = db.table_schema("photos").unwrap();
    assert_eq!(schema.model_identity.as_deref(), Some("good dim=16 fake"));
    let dims: Vec<u32> = schema.columns.iter().map(|c| c.dim).collect();
    assert_eq!(dims, [16, 16, 3]);

    // Inserting uses the model loaded at CREATE.
    db.execute(
        "INSERT INTO photos (caption) VALUES ('a red car')",
        params![],
    )
    .unwrap();
    // No model option: the default model is loaded.
    db.execute("CREATE TABLE plain (caption EMBEDDED_TEXT)", params![])
        .unwrap();
    assert_eq!(*asked.lock().unwrap(), ["good", DEFAULT_MODEL]);
}

#[test]
fn tables_without_model_columns_and_existing_tables_load_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, asked) = open(dir.path());
    db.execute(
        "CREATE TABLE v (id INTEGER PRIMARY KEY, emb VECTOR(3), note TEXT) WITH (model = 'nosuch')",
        params![],
    )
    .unwrap();
    db.execute(
        "CREATE TABLE p (image IMAGE) WITH (model = 'good')",
        params![],
    )
    .unwrap();
    asked.lock().unwrap().clear();
    // IF NOT EXISTS over an existing table is a no-op, whatever model it names.
    db.execute(
        "CREATE TABLE IF NOT EXISTS p (image IMAGE) WITH (model = 'nosuch')",
        params![],
    )
    .unwrap();
    let err = db
        .execute(
            "CREATE TABLE p (image IMAGE) WITH (model = 'nosuch')",
            params![],
        )
        .unwrap_err();
    assert!(matches!(err, Error::TableExists(_)), "{err:?}");
    assert!(asked.lock().unwrap().is_empty(), "{asked:?}");
}

#[test]
fn a_relative_model_folder_is_stored_absolute_and_other_specs_as_written() {
    // Cargo runs tests in the package root; these folders exist relative to it.
    for rel in ["tests/slt", "./tests/it"] {
        assert!(Path::new(rel).is_dir(), "run from the package root: {rel}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (db, asked) = open(dir.path());
    let stored = |table: &str| db.table_schema(table).unwrap().model.unwrap();
    let same_folder = |a: &str, b: &str| {
        Path::new(a).canonicalize().unwrap() == Path::new(b).canonicalize().unwrap()
    };

    // `tests/slt` is spelt like a hub id (`org/name`): an existing folder wins.
    for (table, rel) in [("a", "tests/slt"), ("b", "./tests/it")] {
        db.execute(
            &format!("CREATE TABLE {table} (caption EMBEDDED_TEXT) WITH (model = '{rel}')"),
            params![],
        )
        .unwrap();
        let spec = stored(table);
        assert!(Path::new(&spec).is_absolute(), "{spec}");
        assert!(same_folder(&spec, rel), "{spec} is not {rel}");
        assert!(
            db.table_schema(table)
                .unwrap()
                .create_sql()
                .contains(&format!("model = '{spec}'")),
            ".schema shows the stored spec"
        );
    }
    // Hub ids and names that are no folder here stay as written.
    for (table, spec) in [
        ("c", "openai/clip-vit-base-patch32"),
        ("d", "good"),
        ("e", "~/models/clip"),
    ] {
        db.execute(
            &format!("CREATE TABLE {table} (caption EMBEDDED_TEXT) WITH (model = '{spec}')"),
            params![],
        )
        .unwrap();
        assert_eq!(stored(table), spec);
    }
    // The loader was asked for the stored specs, so an INSERT finds the model loaded at CREATE.
    let seen = asked.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[0], stored("a"));
    db.execute("INSERT INTO a (caption) VALUES ('x')", params![])
        .unwrap();
    assert_eq!(asked.lock().unwrap().len(), 5, "no second load");
}
