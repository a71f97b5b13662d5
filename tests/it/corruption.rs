//! A flipped byte in any file of a segment, the deletion bitmap or the manifest is reported as
//! `Corrupted` naming that file: at open or on the first read that touches it, never a panic and
//! never a silently wrong answer.

use std::path::{Path, PathBuf};

use mmdb::{Database, Error, Result, SearchRequest, Sync};

use crate::persistence::{row, schema};

/// Opens and reads everything: scan, get, exact and graph searches. `background`: whether the
/// vector and graph checksums are verified by the background thread from open (the default) or
/// by the first search.
fn read_all(dir: &Path) -> Result<usize> {
    read_all_with(dir, false)
}

fn read_all_with(dir: &Path, background: bool) -> Result<usize> {
    let db = Database::builder()
        .read_only(true)
        .verify_in_background(background)
        .open(dir)?;
    let snap = db.snapshot("items")?;
    let mut n = 0;
    for r in snap.scan() {
        r?;
        n += 1;
    }
    let q = crate::persistence::vector(5, 16);
    for exact in [true, false] {
        let hits = snap.search(&SearchRequest::new(2, &q, 5).exact(exact))?;
        assert_eq!(hits.len(), 5);
    }
    Ok(n)
}

/// Replaces `file`'s contents by a rename, as mmdb replaces files: a map of the old file (a
/// verifier thread of an earlier open may still hold one) stays valid.
fn replace(file: &Path, bytes: &[u8]) {
    let tmp = file.with_extension("flip-tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn make_db(dir: &Path) {
    let db = Database::builder().sync(Sync::Off).open(dir).unwrap();
    db.create_table(schema(16)).unwrap();
    db.insert("items", (0..300).map(|i| row(i, 16)).collect())
        .unwrap();
    db.delete("items", &[3, 4, 5]).unwrap();
    db.checkpoint().unwrap();
    db.delete("items", &[7]).unwrap();
    db.close().unwrap();
}

#[test]
fn flipped_byte_in_any_file_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    make_db(dir.path());
    assert_eq!(read_all(dir.path()).unwrap(), 296);
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("seg-") || n == "MANIFEST"
        })
        .collect();
    let kinds = ["rows", "vec", "hnsw", "del", "MANIFEST"];
    for kind in kinds {
        assert!(
            files.iter().any(|f| f.to_str().unwrap().contains(kind)),
            "no {kind} file in {files:?}"
        );
    }
    let mut checked = 0;
    for file in &files {
        let orig = std::fs::read(file).unwrap();
        let len = orig.len();
        // Header, footer, CRC table and a spread of body bytes.
        let mut offsets: Vec<usize> = (0..16).chain(len.saturating_sub(48)..len).collect();
        offsets.extend((0..len).step_by((len / 40).max(1)));
        for at in offsets {
            let mut bytes = orig.clone();
            bytes[at] ^= 0x04;
            replace(file, &bytes);
            match read_all(dir.path()) {
                Err(Error::Corrupted { path, detail }) => {
                    assert_eq!(&path, file, "byte {at}: {detail}");
                }
                Err(e) => panic!("{}: byte {at}: expected Corrupted, got {e}", file.display()),
                Ok(_) => panic!("{}: byte {at}: damage went unnoticed", file.display()),
            }
            checked += 1;
        }
        replace(file, &orig);
    }
    assert!(checked > 200);
    assert_eq!(read_all(dir.path()).unwrap(), 296);

    // With the background verification (the default), damage to the vectors or the graph is
    // reported by the search just the same.
    for file in files.iter().filter(|f| {
        let s = f.to_str().unwrap();
        s.contains("vec") || s.contains("hnsw")
    }) {
        let orig = std::fs::read(file).unwrap();
        let mut bytes = orig.clone();
        bytes[orig.len() / 2] ^= 0x04;
        replace(file, &bytes);
        match read_all_with(dir.path(), true) {
            Err(Error::Corrupted { path, .. }) => assert_eq!(&path, file),
            other => panic!("{}: expected Corrupted, got {other:?}", file.display()),
        }
        replace(file, &orig);
    }
    assert_eq!(read_all_with(dir.path(), true).unwrap(), 296);
}

#[test]
fn truncated_segment_file_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    make_db(dir.path());
    let rows = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rows"))
        .unwrap();
    let bytes = std::fs::read(&rows).unwrap();
    std::fs::write(&rows, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Database::open(dir.path()),
        Err(Error::Corrupted { path, .. }) if path == rows
    ));
}
