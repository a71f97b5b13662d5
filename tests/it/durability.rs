//! Durability under faults other than a crash: failed writes, fsyncs, truncates and renames on
//! each write path (through a file system that fails chosen operations), lost and stray files,
//! torn tails and the recovery modes, values that could never be checkpointed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmdb::{Database, Error, FileSystem, RealFileSystem, Sync, Value, WalRecovery, WritableFile};
use parking_lot::Mutex;

use crate::persistence::{row, schema};

const DIM: u32 = 4;
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Write,
    Sync,
    SetLen,
    Rename,
    Remove,
    SyncDir,
}

/// Fails operations of kind `op` on paths whose file name contains `name`.
#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    name: &'static str,
    errno: i32,
    /// How many more times it fails (`u32::MAX`: until cleared).
    times: u32,
    /// A failing write first writes half of its bytes.
    partial: bool,
}

/// The real file system with failures on demand.
#[derive(Debug, Default)]
struct Flaky {
    rules: Mutex<Vec<Rule>>,
}

impl Flaky {
    fn fail(&self, op: Op, name: &'static str, errno: i32, times: u32) {
        self.rules.lock().push(Rule {
            op,
            name,
            errno,
            times,
            partial: true,
        });
    }

    fn clear(&self) {
        self.rules.lock().clear();
    }

    fn check(&self, op: Op, path: &Path) -> io::Result<bool> {
        let name = path.file_name().unwrap().to_string_lossy();
        let mut rules = self.rules.lock();
        for r in rules.iter_mut() {
            if r.op == op && r.times > 0 && name.contains(r.name) {
                r.times = r.times.saturating_sub(u32::from(r.times != u32::MAX));
                if op == Op::Write && r.partial {
                    return Ok(true);
                }
                return Err(io::Error::from_raw_os_error(r.errno));
            }
        }
        Ok(false)
    }

    fn errno(&self, op: Op, path: &Path) -> i32 {
        self.rules
            .lock()
            .iter()
            .find(|r| r.op == op && path.to_string_lossy().contains(r.name))
            .map_or(ENOSPC, |r| r.errno)
    }
}

#[derive(Debug)]
struct FlakyFile {
    fs: Arc<Flaky>,
    path: PathBuf,
    inner: Box<dyn WritableFile>,
}

impl WritableFile for FlakyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.fs.check(Op::Write, &self.path)? {
            let errno = self.fs.errno(Op::Write, &self.path);
            self.inner.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fs.check(Op::Sync, &self.path)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.fs.check(Op::Sync, &self.path)?;
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.check(Op::SetLen, &self.path)?;
        self.inner.set_len(len)
    }
}

#[derive(Debug, Clone)]
struct FlakyFs(Arc<Flaky>);

impl FileSystem for FlakyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.0.check(Op::Create, path)?;
        let inner = RealFileSystem.create(path)?;
        Ok(Box::new(FlakyFile {
            fs: self.0.clone(),
            path: path.to_path_buf(),
            inner,
        }))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let inner = RealFileSystem.open_write(path)?;
        Ok(Box::new(FlakyFile {
            fs: self.0.clone(),
            path: path.to_path_buf(),
            inner,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.check(Op::Rename, to)?;
        RealFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.check(Op::Remove, path)?;
        RealFileSystem.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.check(Op::SyncDir, &dir.join("dir"))?;
        RealFileSystem.sync_dir(dir)
    }
}

fn open_flaky(dir: &Path, sync: Sync, memtable: usize) -> (Database, Arc<Flaky>) {
    let flaky = Arc::new(Flaky::default());
    // Maintenance in the writing thread: each fault fires in the step that armed it.
    let db = Database::builder()
        .sync(sync)
        .memtable_max_bytes(memtable)
        .background_maintenance(false)
        .file_system(Arc::new(FlakyFs(flaky.clone())))
        .open(dir)
        .unwrap();
    (db, flaky)
}

/// The `k` column of every row, in id order.
fn keys(db: &Database) -> Vec<i64> {
    db.snapshot("items")
        .unwrap()
        .scan()
        .map(|r| match r.unwrap().1.values[0] {
            Value::Integer(k) => k,
            ref v => panic!("k is {v:?}"),
        })
        .collect()
}

fn insert(db: &Database, k: i64) -> mmdb::Result<()> {
    db.insert("items", vec![row(k, DIM)]).map(|_| ())
}

fn reopen_keys(dir: &Path) -> Vec<i64> {
    let db = Database::open(dir).unwrap();
    let k = keys(&db);
    db.close().unwrap();
    k
}

#[test]
fn a_failed_wal_write_is_cut_off_and_writing_goes_on() {
    for sync in [Sync::Full, Sync::Normal, Sync::Off] {
        let dir = tempfile::tempdir().unwrap();
        let (db, flaky) = open_flaky(dir.path(), sync, 64 << 20);
        db.create_table(schema(DIM)).unwrap();
        insert(&db, 1).unwrap();
        flaky.fail(Op::Write, "wal-", ENOSPC, 1);
        let e = insert(&db, 2).unwrap_err();
        assert!(
            matches!(e, Error::Io { ref source, .. } if source.raw_os_error() == Some(ENOSPC)),
            "{sync:?}: {e}"
        );
        // Nothing committed, nothing poisoned: the next writes land after the last whole record.
        insert(&db, 3).unwrap();
        insert(&db, 4).unwrap();
        assert_eq!(keys(&db), [1, 3, 4]);
        assert_eq!(db.health().needs_reopen, None);
        drop(db);
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(keys(&db), [1, 3, 4], "{sync:?}");
        assert_eq!(db.health().torn_tail, None, "{sync:?}");
    }
}

#[test]
fn a_failed_truncate_after_a_failed_write_leaves_the_outcome_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (db, flaky) = open_flaky(dir.path(), Sync::Full, 64 << 20);
    db.create_table(schema(DIM)).unwrap();
    insert(&db, 1).unwrap();
    flaky.fail(Op::Write, "wal-", EIO, 1);
    flaky.fail(Op::SetLen, "wal-", EIO, 1);
    let e = insert(&db, 2).unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e}");
    assert!(e.to_string().contains("may or may not be durable"), "{e}");
    let e = insert(&db, 3).unwrap_err();
    assert!(matches!(e, Error::NeedsReopen { .. }), "{e}");
    drop(db);
    // The half record is a torn tail: dropped, and the database opens.
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(keys(&db), [1]);
    assert!(db.health().torn_tail.is_some());
}

#[test]
fn a_failed_fsync_refuses_writes_until_reopen_and_reads_go_on() {
    for sync in [Sync::Full, Sync::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let (db, flaky) = open_flaky(dir.path(), sync, 64 << 20);
        db.create_table(schema(DIM)).unwrap();
        insert(&db, 1).unwrap();
        flaky.fail(Op::Sync, "wal-", EIO, 1);
        let e = insert(&db, 2).unwrap_err();
        assert!(matches!(e, Error::OutcomeUnknown { .. }), "{sync:?}: {e}");
        // No retry of the fsync, even though the disk works again: refused until reopen.
        for attempt in [
            insert(&db, 3),
            db.create_table(mmdb::TableSchema::new("other", schema(DIM).columns)),
            db.checkpoint(),
            db.delete("items", &[1]).map(|_| ()),
        ] {
            let e = attempt.unwrap_err();
            assert!(matches!(e, Error::NeedsReopen { .. }), "{sync:?}: {e}");
            assert!(e.to_string().contains("reopen"), "{e}");
        }
        assert!(db.health().needs_reopen.is_some());
        assert!(keys(&db).starts_with(&[1]), "reads keep working");
        db.close().unwrap();
        let k = reopen_keys(dir.path());
        // Row 2's outcome was unknown: present or absent, nothing else.
        assert!(k == [1] || k == [1, 2], "{sync:?}: {k:?}");
    }
}

#[test]
fn a_failing_flush_never_fails_a_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny memtable: every write tries to flush.
    let (db, flaky) = open_flaky(dir.path(), Sync::Full, 1);
    db.create_table(schema(DIM)).unwrap();
    flaky.fail(Op::Create, "seg-", ENOSPC, u32::MAX);
    for k in 0..5 {
        insert(&db, k).expect("a write is acknowledged when it is durable");
    }
    let h = db.health();
    let e = h.maintenance_error.expect("the failed flush is reported");
    assert!(e.contains("seg-"), "{e}");
    assert_eq!(h.needs_reopen, None);
    assert!(
        db.checkpoint().is_err(),
        "an explicit checkpoint reports it"
    );
    flaky.clear();
    db.checkpoint().unwrap();
    assert_eq!(db.health().maintenance_error, None);
    insert(&db, 5).unwrap();
    drop(db);
    assert_eq!(reopen_keys(dir.path()), [0, 1, 2, 3, 4, 5]);
}

#[test]
fn every_failing_step_of_a_checkpoint_keeps_the_database_whole() {
    // Each durable operation a checkpoint (and a compaction) makes, failed in turn.
    let steps: &[(Op, &str)] = &[
        (Op::Create, "seg-"),
        (Op::Write, "seg-"),
        (Op::Sync, "seg-"),
        (Op::Rename, "seg-"),
        (Op::Create, "wal-"),
        (Op::Write, "wal-"),
        (Op::Sync, "wal-"),
        (Op::Create, "MANIFEST"),
        (Op::Write, "MANIFEST"),
        (Op::Sync, "MANIFEST"),
        (Op::Rename, "MANIFEST"),
        (Op::SyncDir, "dir"),
        (Op::Remove, "wal-"),
        (Op::Remove, "seg-"),
    ];
    for &(op, name) in steps {
        for sync in [Sync::Full, Sync::Off] {
            let dir = tempfile::tempdir().unwrap();
            let (db, flaky) = open_flaky(dir.path(), sync, 64 << 20);
            db.create_table(schema(DIM)).unwrap();
            for k in 0..6 {
                insert(&db, k).unwrap();
            }
            db.checkpoint().unwrap();
            db.delete("items", &[2]).unwrap();
            insert(&db, 6).unwrap();
            flaky.fail(op, name, EIO, 1);
            let r = db.compact("items");
            let mut want = vec![0, 2, 3, 4, 5, 6];
            assert_eq!(keys(&db), want, "{op:?} {name}: reads unchanged");
            let poisoned = db.health().needs_reopen.is_some();
            match &r {
                Ok(()) => assert!(!poisoned),
                Err(Error::Io { .. }) => assert!(!poisoned, "{op:?} {name}"),
                Err(Error::OutcomeUnknown { .. }) => assert!(poisoned, "{op:?} {name}"),
                Err(e) => panic!("{op:?} {name}: {e}"),
            }
            if !poisoned {
                insert(&db, 7).unwrap();
                want.push(7);
            }
            drop(db);
            let got = reopen_keys(dir.path());
            assert_eq!(got, want, "{op:?} {name} {sync:?}: {r:?}");
            // And again, after the cleanup of the first reopen.
            assert_eq!(reopen_keys(dir.path()), want);
        }
    }
}

#[test]
fn a_failed_catalog_change_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (db, flaky) = open_flaky(dir.path(), Sync::Full, 64 << 20);
    flaky.fail(Op::Write, "MANIFEST", ENOSPC, 1);
    assert!(matches!(
        db.create_table(schema(DIM)),
        Err(Error::Io { .. })
    ));
    assert!(db.table_names().is_empty());
    db.create_table(schema(DIM)).unwrap();
    flaky.fail(Op::Rename, "MANIFEST", EIO, 1);
    let e = db.drop_table("items").unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e}");
    drop(db);
    // The rename failed before it happened: the table is still there.
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.table_names(), ["items"]);
}

/// A database with checkpointed rows 0..4 (one segment, deletion bitmap: k = 1, row id 2, deleted) and rows
/// 4..6 only in the WAL.
fn db_with_wal_tail(dir: &Path) {
    let db = Database::open(dir).unwrap();
    db.create_table(schema(DIM)).unwrap();
    for k in 0..4 {
        insert(&db, k).unwrap();
    }
    db.checkpoint().unwrap();
    db.delete("items", &[2]).unwrap();
    db.checkpoint().unwrap();
    insert(&db, 4).unwrap();
    insert(&db, 5).unwrap();
    drop(db);
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    v.sort();
    v
}

/// The WAL file of `dir` (there is one after an open).
fn wal_file(dir: &Path) -> PathBuf {
    dir.join(
        names(dir)
            .into_iter()
            .find(|n| n.starts_with("wal-"))
            .unwrap(),
    )
}

fn corrupted_names(r: mmdb::Result<Database>, file: &str) -> String {
    match r {
        Err(Error::Corrupted { path, detail }) => {
            assert!(path.to_string_lossy().contains(file), "{path:?}: {detail}");
            detail
        }
        Err(e) => panic!("expected Corrupted naming {file}, got {e}"),
        Ok(_) => panic!("expected Corrupted naming {file}, it opened"),
    }
}

#[test]
fn lost_files_are_refused_by_name_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    db_with_wal_tail(dir.path());
    // Read-only: a close would flush the WAL tail into segment 1, which has the bitmap.
    let ro = Database::open_read_only(dir.path()).unwrap();
    assert_eq!(keys(&ro), [0, 2, 3, 4, 5]);
    drop(ro);
    db_with_wal_tail_again(dir.path());
    let all = names(dir.path());
    let wal = all.iter().find(|n| n.starts_with("wal-")).unwrap().clone();
    let bitmap = all.iter().find(|n| n.contains(".del")).unwrap().clone();
    let copy = |f: &dyn Fn(&Path)| {
        let d = tempfile::tempdir().unwrap();
        for n in &all {
            std::fs::copy(dir.path().join(n), d.path().join(n)).unwrap();
        }
        f(d.path());
        d
    };

    let d = copy(&|d| std::fs::remove_file(d.join(&wal)).unwrap());
    let detail = corrupted_names(Database::open(d.path()), &wal);
    assert!(detail.contains("missing"), "{detail}");
    corrupted_names(Database::open_read_only(d.path()), &wal);

    let d = copy(&|d| std::fs::write(d.join(&wal), b"").unwrap());
    let detail = corrupted_names(Database::open(d.path()), &wal);
    assert!(detail.contains("shorter than its header"), "{detail}");

    for lost in [&bitmap, "seg-00000001.rows", "seg-00000001.c2.vec"] {
        let d = copy(&|d| std::fs::remove_file(d.join(lost)).unwrap());
        let before = names(d.path());
        let detail = corrupted_names(Database::open(d.path()), lost);
        assert!(detail.contains("missing"), "{detail}");
        assert_eq!(names(d.path()), before, "nothing deleted");
    }

    for also_wal in [false, true] {
        let d = copy(&|d| {
            std::fs::remove_file(d.join("MANIFEST")).unwrap();
            if also_wal {
                std::fs::remove_file(d.join(&wal)).unwrap();
            }
        });
        let before = names(d.path());
        let detail = corrupted_names(Database::open(d.path()), "MANIFEST");
        assert!(detail.contains("nothing was deleted"), "{detail}");
        corrupted_names(Database::open_read_only(d.path()), "MANIFEST");
        assert_eq!(names(d.path()), before, "nothing deleted");
    }
}

/// Reopens for write once more (which removes stale files), without a checkpoint.
fn db_with_wal_tail_again(dir: &Path) {
    let db = Database::open(dir).unwrap();
    drop(db);
}

#[test]
fn files_mmdb_did_not_name_are_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    db_with_wal_tail(dir.path());
    let strays = [
        "notes.tmp",
        "seg-notes.txt",
        "seg-1.rows",
        "seg-00000009.rows.bak",
        "wal-7.log",
        "MANIFEST.old",
    ];
    for s in strays {
        std::fs::write(dir.path().join(s), b"mine").unwrap();
    }
    // What a crash leaves behind, and what a rotation whose manifest never committed leaves.
    std::fs::write(dir.path().join("seg-00000099.rows.tmp"), b"x").unwrap();
    std::fs::write(dir.path().join("seg-00000099.rows"), b"x").unwrap();
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"x").unwrap();
    std::fs::write(dir.path().join("wal-00000000000000009999.log"), [0u8; 10]).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(keys(&db), [0, 2, 3, 4, 5]);
    db.close().unwrap();
    let left = names(dir.path());
    for s in strays {
        assert!(left.iter().any(|n| n == s), "{s} was removed: {left:?}");
    }
    for gone in [
        "seg-00000099.rows.tmp",
        "seg-00000099.rows",
        "MANIFEST.tmp",
        "wal-00000000000000009999.log",
    ] {
        assert!(!left.iter().any(|n| n == gone), "{gone} left: {left:?}");
    }
}

#[test]
fn a_later_wal_file_with_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    db_with_wal_tail(dir.path());
    let bytes = std::fs::read(wal_file(dir.path())).unwrap();
    std::fs::write(dir.path().join("wal-00000000000000009999.log"), &bytes).unwrap();
    corrupted_names(Database::open(dir.path()), "wal-00000000000000009999.log");
}

#[test]
fn a_torn_tail_is_reported_and_refused_in_absolute_consistency_mode() {
    let dir = tempfile::tempdir().unwrap();
    db_with_wal_tail(dir.path());
    let wal = wal_file(dir.path());
    let mut bytes = std::fs::read(&wal).unwrap();
    let whole = bytes.len() as u64;
    // Half a record header: what a crash during an append leaves.
    bytes.extend_from_slice(&[7u8; 9]);
    std::fs::write(&wal, &bytes).unwrap();

    let strict = Database::builder()
        .wal_recovery(WalRecovery::AbsoluteConsistency)
        .open(dir.path());
    let detail = corrupted_names(strict, "wal-");
    assert!(detail.contains("absolute-consistency"), "{detail}");
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        bytes,
        "strict mode changes nothing"
    );

    let db = Database::open(dir.path()).unwrap();
    let torn = db.health().torn_tail.expect("the drop is reported");
    assert_eq!(
        (torn.path.as_path(), torn.offset, torn.bytes),
        (wal.as_path(), whole, 9)
    );
    assert!(torn.to_string().contains("never acknowledged"), "{torn}");
    assert_eq!(keys(&db), [0, 2, 3, 4, 5]);
    insert(&db, 6).unwrap();
    drop(db);
    let db = Database::builder()
        .wal_recovery(WalRecovery::AbsoluteConsistency)
        .open(dir.path())
        .unwrap();
    assert_eq!(db.health().torn_tail, None);
    assert_eq!(keys(&db), [0, 2, 3, 4, 5, 6]);
}

#[test]
fn point_in_time_recovery_opens_at_the_last_write_before_damage() {
    let dir = tempfile::tempdir().unwrap();
    db_with_wal_tail(dir.path());
    let wal = wal_file(dir.path());
    let mut bytes = std::fs::read(&wal).unwrap();
    let len = bytes.len();
    // Damage the last record's payload, then add a whole record's worth of bytes after it: no
    // longer a torn tail (what out-of-order writeback can leave with Sync::Off).
    bytes[len - 3] ^= 0x10;
    let tail = bytes[32..].to_vec();
    bytes.extend_from_slice(&tail);
    std::fs::write(&wal, &bytes).unwrap();
    let detail = corrupted_names(Database::open(dir.path()), "wal-");
    assert!(detail.contains("payload checksum"), "{detail}");
    let db = Database::builder()
        .wal_recovery(WalRecovery::PointInTime)
        .open(dir.path())
        .unwrap();
    let torn = db.health().torn_tail.unwrap();
    assert!(
        torn.past_damage && torn.to_string().contains("point-in-time"),
        "{torn}"
    );
    assert_eq!(keys(&db), [0, 2, 3, 4]);
    insert(&db, 9).unwrap();
    drop(db);
    assert_eq!(reopen_keys(dir.path()), [0, 2, 3, 4, 9]);
}

#[test]
fn vectors_no_index_could_score_are_refused_at_insert() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .memtable_max_bytes(1)
        .open(dir.path())
        .unwrap();
    db.execute(
        "CREATE TABLE v (k INTEGER, e VECTOR(2)) WITH (metric = 'l2')",
        &[],
    )
    .unwrap();
    db.execute("INSERT INTO v VALUES (1, [1, 2])", &[]).unwrap();
    let e = db
        .execute("INSERT INTO v VALUES (2, [3, 4]), (3, [1e16, 0])", &[])
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("v.e") && msg.contains("row 2") && msg.contains("too large"),
        "{msg}"
    );
    // The batch is refused whole, and flushes keep working.
    db.execute("INSERT INTO v VALUES (4, [5, 6])", &[]).unwrap();
    assert_eq!(db.health().maintenance_error, None);
    let rows = db.query("SELECT k FROM v ORDER BY k", &[]).unwrap();
    assert_eq!(rows.len(), 2);
}
