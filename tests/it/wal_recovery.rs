//! Recovery from the WAL: torn tails keep every complete record; damage in the middle is refused.

use std::path::{Path, PathBuf};

use mmdb::{Database, Error, Sync};

use crate::persistence::{row, schema};

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Writes 6 batches of 3 rows without a checkpoint and returns the WAL size after each batch.
fn six_batches(dir: &Path) -> Vec<u64> {
    let db = Database::builder().sync(Sync::Full).open(dir).unwrap();
    db.create_table(schema(8)).unwrap();
    let mut sizes = Vec::new();
    for b in 0..6 {
        db.insert("items", (0..3).map(|i| row(b * 3 + i, 8)).collect())
            .unwrap();
        sizes.push(std::fs::metadata(&wal_files(dir)[0]).unwrap().len());
    }
    drop(db); // no close: everything is only in the WAL
    sizes
}

#[test]
fn torn_tail_recovers_all_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = six_batches(dir.path());
    let wal = wal_files(dir.path()).remove(0);
    let full = std::fs::read(&wal).unwrap();
    let start = sizes[0] as usize - 1;
    // Cut at every byte of the last two records, and a few earlier points.
    let cuts: Vec<usize> = (start..start + 5)
        .chain(sizes[3] as usize - 3..full.len())
        .collect();
    for cut in cuts {
        let copy = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, copy.path().join(p.file_name().unwrap())).unwrap();
        }
        let cwal = copy.path().join(wal.file_name().unwrap());
        std::fs::write(&cwal, &full[..cut]).unwrap();
        let complete = sizes.iter().filter(|&&s| s as usize <= cut).count();
        let db = Database::open(copy.path()).unwrap();
        let snap = db.snapshot("items").unwrap();
        assert_eq!(snap.row_count(), complete * 3, "cut at {cut}");
        for (i, r) in snap.scan().enumerate() {
            let (id, r) = r.unwrap();
            assert_eq!(id, i as u64 + 1);
            let mut want = row(i as i64, 8);
            // Stored normalised.
            if let mmdb::Value::Vector(v) = &mut want.values[2] {
                let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
            }
            assert_eq!(r.values[..2], want.values[..2]);
        }
        // Appending after the recovered tail works, and survives another reopen.
        db.insert("items", vec![row(100, 8)]).unwrap();
        drop(db);
        let db = Database::open(copy.path()).unwrap();
        assert_eq!(
            db.snapshot("items").unwrap().row_count(),
            complete * 3 + 1,
            "cut at {cut}"
        );
    }
}

#[test]
fn flipped_byte_in_the_middle_is_corrupted_naming_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = six_batches(dir.path());
    let wal = wal_files(dir.path()).remove(0);
    let full = std::fs::read(&wal).unwrap();
    // Every byte of records 2..5 (the last record may legitimately be torn).
    for at in (sizes[1] as usize..sizes[4] as usize).step_by(7) {
        let mut bytes = full.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&wal, &bytes).unwrap();
        match Database::open(dir.path()) {
            Err(Error::Corrupted { path, detail }) => {
                assert_eq!(path, wal, "{detail}");
            }
            Err(e) => panic!("byte {at}: expected Corrupted, got {e}"),
            Ok(_) => panic!("byte {at}: damage went unnoticed"),
        }
    }
    // The header too.
    let mut bytes = full.clone();
    bytes[3] ^= 1;
    std::fs::write(&wal, &bytes).unwrap();
    assert!(matches!(
        Database::open(dir.path()),
        Err(Error::Corrupted { .. })
    ));
    std::fs::write(&wal, &full).unwrap();
    assert_eq!(
        Database::open(dir.path())
            .unwrap()
            .snapshot("items")
            .unwrap()
            .row_count(),
        18
    );
}
