//! INTEGER PRIMARY KEY through SQL: a key already taken is a `DuplicateKey` error naming table,
//! column and key; automatic keys stop with `KeysExhausted` at the largest INTEGER instead of
//! turning negative; a refused statement writes nothing.

use mmdb::{Database, Error, params};

fn db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    db.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
        params![],
    )
    .unwrap();
    (dir, db)
}

fn ids(db: &Database) -> Vec<i64> {
    let rows = db
        .query("SELECT id FROM items ORDER BY id", params![])
        .unwrap();
    rows.iter().map(|r| r.get::<i64>(0).unwrap()).collect()
}

#[test]
fn a_key_already_taken_is_a_duplicate_key_error() {
    let (_dir, db) = db();
    db.execute("INSERT INTO items (id, name) VALUES (7, 'a')", params![])
        .unwrap();
    let err = db
        .execute("INSERT INTO items (id, name) VALUES (7, 'b')", params![])
        .unwrap_err();
    match &err {
        Error::DuplicateKey { table, column, key } => {
            assert_eq!((table.as_str(), column.as_str(), *key), ("items", "id", 7));
        }
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("items") && msg.contains('7'), "{msg}");

    // Twice in one statement: the whole statement is refused.
    let err = db
        .execute(
            "INSERT INTO items (id, name) VALUES (8, 'c'), (9, 'd'), (8, 'e')",
            params![],
        )
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateKey { key: 8, .. }), "{err:?}");
    assert_eq!(ids(&db), [7]);

    // The key of a deleted row is free again.
    db.execute("DELETE FROM items WHERE id = 7", params![])
        .unwrap();
    db.execute("INSERT INTO items (id, name) VALUES (7, 'f')", params![])
        .unwrap();
    assert_eq!(ids(&db), [7]);
}

#[test]
fn automatic_keys_stop_at_the_largest_integer() {
    let (dir, db) = db();
    db.execute(
        "INSERT INTO items (id, name) VALUES (9223372036854775807, 'last')",
        params![],
    )
    .unwrap();
    let err = db
        .execute("INSERT INTO items (name) VALUES ('next')", params![])
        .unwrap_err();
    assert!(
        matches!(&err, Error::KeysExhausted { table } if table == "items"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("items") && msg.contains("9223372036854775807"),
        "{msg}"
    );
    assert_eq!(ids(&db), [i64::MAX], "nothing written, nothing negative");

    // A batch mixing a given key and an automatic one is refused whole.
    let err = db
        .execute(
            "INSERT INTO items (id, name) VALUES (1, 'given'), (NULL, 'automatic')",
            params![],
        )
        .unwrap_err();
    assert!(matches!(err, Error::KeysExhausted { .. }), "{err:?}");
    assert_eq!(ids(&db), [i64::MAX]);

    // Given keys still work, and the limit holds after a reopen.
    db.execute(
        "INSERT INTO items (id, name) VALUES (1, 'given')",
        params![],
    )
    .unwrap();
    db.close().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let err = db
        .execute("INSERT INTO items (name) VALUES ('next')", params![])
        .unwrap_err();
    assert!(matches!(err, Error::KeysExhausted { .. }), "{err:?}");
    assert_eq!(ids(&db), [1, i64::MAX]);
}

#[test]
fn automatic_keys_reach_the_largest_integer_itself() {
    let (_dir, db) = db();
    db.execute(
        "INSERT INTO items (id, name) VALUES (9223372036854775806, 'one before')",
        params![],
    )
    .unwrap();
    db.execute("INSERT INTO items (name) VALUES ('last')", params![])
        .unwrap();
    assert_eq!(ids(&db), [i64::MAX - 1, i64::MAX]);
}
