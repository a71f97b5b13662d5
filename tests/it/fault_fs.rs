//! `FaultFs`: a [`FileSystem`] for fault tests that models what POSIX promises to keep across a
//! power loss, and fails chosen operations.
//!
//! Writes go through to real files in one directory (mmdb reads and maps them directly), but no
//! real fsync happens: durability is modelled in memory.
//!
//! - Each file is an inode with `current` bytes (what reads see) and `durable` bytes (what
//!   survives power loss). `sync_data`/`sync_all` make `durable` = `current`.
//! - Names: a current and a durable map from name to inode. `create` (a new inode, also over an
//!   existing name), `rename` and `remove_file` change the current map and are queued; `sync_dir`
//!   makes the durable map the current one. A file's fsync does not make its name durable.
//! - [`FaultFs::power_loss`] writes the durable image to a new directory: the durable names plus
//!   an in-order prefix of the queued name changes, each file with its durable bytes, and in a
//!   torn variant a prefix of the unsynced bytes that extend a file (a partly written back
//!   append).
//! - Faults: every seam operation gets a number ([`FaultFs::ops`]); [`FaultFs::fail_at`] fails
//!   one with `EIO` or `ENOSPC`, or fills the disk (`ENOSPC` for every later write and create
//!   until [`FaultFs::free_space`]). A failing write first writes a random prefix of its bytes; a
//!   failing rename, remove or truncate may or may not have happened. A failing fsync keeps
//!   `durable` and, as Linux does, marks the pages it failed to write clean: those bytes never
//!   become durable through a later fsync, only if written again (PostgreSQL's fsync lesson).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use mmdb::{FileSystem, WritableFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
/// The write lock is not written through the seam and means nothing after a power loss.
const LOCK: &str = "LOCK";
/// How many recent operations [`FaultFs::recent_ops`] keeps for failure messages.
const RECENT: usize = 40;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with `EIO`.
    Eio,
    /// The operation fails with `ENOSPC`.
    Enospc,
    /// The operation fails with `ENOSPC`, and so does every later write and create until
    /// [`FaultFs::free_space`].
    DiskFull,
}

/// What a [`FaultFs::power_loss`] kept, for failure messages.
#[derive(Debug, Clone)]
pub struct PowerLoss {
    /// Queued name changes that reached the disk, of `pending`.
    pub applied: usize,
    /// Queued name changes (not yet made durable by `sync_dir`).
    pub pending: usize,
    /// Whether unsynced appends were partly kept.
    pub torn: bool,
    /// The files of the image with their lengths.
    pub files: Vec<(String, usize)>,
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Per byte of `current`: a failed fsync dropped it (the page is clean but not on disk), so
    /// no later fsync writes it; cleared when the byte is written again.
    lost: Vec<bool>,
}

impl Inode {
    fn durable(content: Vec<u8>) -> Inode {
        Inode {
            lost: vec![false; content.len()],
            durable: content.clone(),
            current: content,
        }
    }

    fn write(&mut self, buf: &[u8], offset: usize) {
        let end = offset + buf.len();
        if self.current.len() < end {
            self.current.resize(end, 0);
            self.lost.resize(end, false);
        }
        self.current[offset..end].copy_from_slice(buf);
        self.lost[offset..end].fill(false);
    }

    fn set_len(&mut self, len: usize) {
        self.current.resize(len, 0);
        self.lost.resize(len, false);
    }

    fn sync(&mut self) {
        let old = std::mem::take(&mut self.durable);
        self.durable = self
            .current
            .iter()
            .zip(&self.lost)
            .enumerate()
            .map(|(i, (&b, &lost))| {
                if lost {
                    old.get(i).copied().unwrap_or(0)
                } else {
                    b
                }
            })
            .collect();
    }

    fn fail_sync(&mut self) {
        for (i, lost) in self.lost.iter_mut().enumerate() {
            if self.durable.get(i) != self.current.get(i) {
                *lost = true;
            }
        }
    }

    /// The bytes that extend `durable` in `current` and could reach the disk in a power loss.
    fn unsynced_extension(&self) -> &[u8] {
        let d = self.durable.len();
        if self.current.len() <= d || self.current[..d] != self.durable[..] {
            return &[];
        }
        let end = self.lost[d..]
            .iter()
            .position(|&l| l)
            .map_or(self.current.len(), |p| d + p);
        &self.current[d..end]
    }
}

#[derive(Debug, Clone)]
enum NameOp {
    Link { name: String, ino: usize },
    Rename { from: String, to: String },
    Remove { name: String },
}

fn apply(names: &mut BTreeMap<String, usize>, op: &NameOp) {
    match op {
        NameOp::Link { name, ino } => {
            names.insert(name.clone(), *ino);
        }
        NameOp::Rename { from, to } => {
            if let Some(ino) = names.remove(from) {
                names.insert(to.clone(), ino);
            }
        }
        NameOp::Remove { name } => {
            names.remove(name);
        }
    }
}

#[derive(Debug)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    pending: Vec<NameOp>,
    ops: u64,
    fail_at: Option<(u64, Fault)>,
    disk_full: bool,
    injected: u64,
    rng: StdRng,
    recent: VecDeque<String>,
}

impl State {
    /// Counts one operation and says whether it fails. `space` marks operations that need free
    /// space (writes, creates), which a full disk refuses.
    fn next(&mut self, what: String, space: bool) -> Option<io::Error> {
        let n = self.ops;
        self.ops += 1;
        let mut err = None;
        if let Some((at, fault)) = self.fail_at
            && at == n
        {
            self.fail_at = None;
            if fault == Fault::DiskFull {
                self.disk_full = true;
            }
            err = Some(if fault == Fault::Eio { EIO } else { ENOSPC });
        } else if space && self.disk_full {
            err = Some(ENOSPC);
        }
        if err.is_some() {
            self.injected += 1;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        let verdict = match err {
            Some(EIO) => " -> EIO",
            Some(_) => " -> ENOSPC",
            None => "",
        };
        self.recent.push_back(format!("#{n} {what}{verdict}"));
        err.map(io::Error::from_raw_os_error)
    }

    fn link_new(&mut self, name: &str, inode: Inode) -> usize {
        let ino = self.inodes.len();
        self.inodes.push(inode);
        self.names.insert(name.to_owned(), ino);
        ino
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; its state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name of `path` in the directory; panics on a path outside it (a test bug).
    fn name(&self, path: &Path) -> String {
        let parent = path.parent().unwrap_or(Path::new(""));
        assert!(
            parent == self.dir || parent.canonicalize().ok() == self.dir.canonicalize().ok(),
            "FaultFs of {} used for {}",
            self.dir.display(),
            path.display()
        );
        path.file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned()
    }
}

/// The file system of fault tests (see the module doc). Clone it to keep a handle beside the
/// database.
#[derive(Debug, Clone)]
pub struct FaultFs(Arc<Shared>);

impl FaultFs {
    /// A model of `dir` whose files are all durable as they are now.
    pub fn new(dir: &Path) -> FaultFs {
        FaultFs::with_seed(dir, 0)
    }

    /// As [`FaultFs::new`], with the seed of the random choices faults make (how much of a
    /// failing write lands, whether a failing rename happened).
    pub fn with_seed(dir: &Path, seed: u64) -> FaultFs {
        let mut state = State {
            inodes: Vec::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            pending: Vec::new(),
            ops: 0,
            fail_at: None,
            disk_full: false,
            injected: 0,
            rng: StdRng::seed_from_u64(seed),
            recent: VecDeque::new(),
        };
        for entry in std::fs::read_dir(dir).expect("read FaultFs directory") {
            let entry = entry.expect("directory entry");
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !entry.file_type().expect("file type").is_file() || name == LOCK {
                continue;
            }
            let content = std::fs::read(entry.path()).expect("read file");
            state.link_new(&name, Inode::durable(content));
        }
        state.durable_names = state.names.clone();
        FaultFs(Arc::new(Shared {
            dir: dir.to_owned(),
            state: Mutex::new(state),
        }))
    }

    /// This file system as the database takes it.
    pub fn seam(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    /// The directory modelled.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// How many operations have been counted: the next one has this number.
    pub fn ops(&self) -> u64 {
        self.0.lock().ops
    }

    /// How many operations failed by injection so far.
    pub fn injected(&self) -> u64 {
        self.0.lock().injected
    }

    /// Fails operation number `n` (see [`FaultFs::ops`]) with `fault`, replacing an armed one.
    pub fn fail_at(&self, n: u64, fault: Fault) {
        self.0.lock().fail_at = Some((n, fault));
    }

    /// Ends a [`Fault::DiskFull`].
    pub fn free_space(&self) {
        self.0.lock().disk_full = false;
    }

    /// Disarms a pending fault and frees space.
    pub fn clear_faults(&self) {
        let mut s = self.0.lock();
        s.fail_at = None;
        s.disk_full = false;
    }

    /// Whether a fault is armed and has not fired yet.
    pub fn fault_pending(&self) -> bool {
        self.0.lock().fail_at.is_some()
    }

    /// The last operations, numbered, with the injected failures, for failure messages.
    pub fn recent_ops(&self) -> Vec<String> {
        self.0.lock().recent.iter().cloned().collect()
    }

    /// Writes into the empty directory `into` what a power loss now would leave on disk,
    /// choosing with `seed` how many queued name changes land and whether appends tear. The
    /// database must be dropped first: this file system does not follow the new directory.
    pub fn power_loss(&self, seed: u64, into: &Path) -> io::Result<PowerLoss> {
        let s = self.0.lock();
        let mut rng = StdRng::seed_from_u64(seed);
        let applied = rng.random_range(0..=s.pending.len());
        let torn = rng.random_bool(0.5);
        let mut names = s.durable_names.clone();
        for op in &s.pending[..applied] {
            apply(&mut names, op);
        }
        let mut files = Vec::new();
        for (name, &ino) in &names {
            if name == LOCK {
                continue;
            }
            let inode = &s.inodes[ino];
            let mut bytes = inode.durable.clone();
            if torn {
                let ext = inode.unsynced_extension();
                bytes.extend_from_slice(&ext[..rng.random_range(0..=ext.len())]);
            }
            std::fs::write(into.join(name), &bytes)?;
            files.push((name.clone(), bytes.len()));
        }
        Ok(PowerLoss {
            applied,
            pending: s.pending.len(),
            torn,
            files,
        })
    }
}

impl FileSystem for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let name = self.0.name(path);
        let mut s = self.0.lock();
        if let Some(e) = s.next(format!("create {name}"), true) {
            return Err(e);
        }
        // A new inode on disk too, so that handles and maps of the old file keep its bytes as
        // the model does.
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let ino = s.link_new(&name, Inode::default());
        s.pending.push(NameOp::Link { name, ino });
        Ok(Box::new(FaultFile {
            fs: self.0.clone(),
            ino,
            file,
        }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let name = self.0.name(path);
        let mut s = self.0.lock();
        if let Some(e) = s.next(format!("open_write {name}"), false) {
            return Err(e);
        }
        let file = OpenOptions::new().write(true).open(path)?;
        let ino = match s.names.get(&name) {
            Some(&ino) => ino,
            None => {
                // Written before this model existed: take it as durable.
                let content = std::fs::read(path)?;
                let ino = s.link_new(&name, Inode::durable(content));
                s.durable_names.insert(name, ino);
                ino
            }
        };
        Ok(Box::new(FaultFile {
            fs: self.0.clone(),
            ino,
            file,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_name, to_name) = (self.0.name(from), self.0.name(to));
        let mut s = self.0.lock();
        let err = match s.next(format!("rename {from_name} -> {to_name}"), false) {
            // Whether a failed change happened is unknown to the caller.
            Some(e) if s.rng.random_bool(0.5) => return Err(e),
            other => other,
        };
        std::fs::rename(from, to)?;
        if let Some(ino) = s.names.remove(&from_name) {
            s.names.insert(to_name.clone(), ino);
        }
        s.pending.push(NameOp::Rename {
            from: from_name,
            to: to_name,
        });
        err.map_or(Ok(()), Err)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let name = self.0.name(path);
        let mut s = self.0.lock();
        let err = match s.next(format!("remove {name}"), false) {
            Some(e) if s.rng.random_bool(0.5) => return Err(e),
            other => other,
        };
        std::fs::remove_file(path)?;
        s.names.remove(&name);
        s.pending.push(NameOp::Remove { name });
        err.map_or(Ok(()), Err)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        if let Some(e) = s.next(format!("sync_dir {}", dir.display()), false) {
            return Err(e);
        }
        s.durable_names = s.names.clone();
        s.pending.clear();
        Ok(())
    }
}

/// A file open for writing through a [`FaultFs`]: the real file plus its inode in the model.
#[derive(Debug)]
struct FaultFile {
    fs: Arc<Shared>,
    ino: usize,
    file: File,
}

impl FaultFile {
    fn write_through(&self, s: &mut State, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)?;
        s.inodes[self.ino].write(buf, offset as usize);
        Ok(())
    }

    fn sync(&self, what: &str) -> io::Result<()> {
        let mut s = self.fs.lock();
        if let Some(e) = s.next(format!("{what} inode {}", self.ino), false) {
            s.inodes[self.ino].fail_sync();
            return Err(e);
        }
        s.inodes[self.ino].sync();
        Ok(())
    }
}

impl WritableFile for FaultFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        let what = format!("write inode {} {}@{offset}", self.ino, buf.len());
        if let Some(e) = s.next(what, true) {
            let part = s.rng.random_range(0..=buf.len());
            self.write_through(&mut s, &buf[..part], offset)?;
            return Err(e);
        }
        self.write_through(&mut s, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync("sync_data")
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync("sync_all")
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        let err = match s.next(format!("set_len inode {} {len}", self.ino), false) {
            Some(e) if s.rng.random_bool(0.5) => return Err(e),
            other => other,
        };
        self.file.set_len(len)?;
        s.inodes[self.ino].set_len(len as usize);
        err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// The image a power loss with `seed` leaves: name -> content.
    fn crash(fs: &FaultFs, seed: u64) -> BTreeMap<String, Vec<u8>> {
        let into = dir();
        fs.power_loss(seed, into.path()).unwrap();
        std::fs::read_dir(into.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    fn images(fs: &FaultFs) -> Vec<BTreeMap<String, Vec<u8>>> {
        (0..64).map(|seed| crash(fs, seed)).collect()
    }

    #[test]
    fn unsynced_data_and_names_are_lost() {
        let d = dir();
        let fs = FaultFs::new(d.path());
        let f = fs.create(&d.path().join("a")).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        // Reads see the bytes at once.
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"hello");
        let seen = images(&fs);
        assert!(seen.iter().any(|img| img.is_empty()));
        // The name may land with the directory's queued changes, its bytes may not.
        for img in &seen {
            assert!(img.is_empty() || b"hello".starts_with(&img["a"]), "{img:?}");
        }

        fs.sync_dir(d.path()).unwrap();
        let seen = images(&fs);
        assert!(seen.iter().all(|img| img.contains_key("a")));
        assert!(seen.iter().any(|img| img["a"].is_empty()));
        // Only the torn variant keeps part of the append.
        assert!(seen.iter().any(|img| (1..5).contains(&img["a"].len())));
        for seed in 0..16 {
            let into = dir();
            let kept = fs.power_loss(seed, into.path()).unwrap();
            assert_eq!((kept.applied, kept.pending), (0, 0));
            let len = std::fs::read(into.path().join("a")).unwrap().len();
            assert_eq!(kept.files, [("a".to_owned(), len)]);
            assert!(kept.torn || len == 0);
        }

        f.sync_data().unwrap();
        assert!(images(&fs).iter().all(|img| img["a"] == b"hello"));
    }

    #[test]
    fn overwrites_are_not_torn() {
        let d = dir();
        std::fs::write(d.path().join("a"), b"old!").unwrap();
        let fs = FaultFs::new(d.path());
        let f = fs.open_write(&d.path().join("a")).unwrap();
        f.write_all_at(b"new!!", 0).unwrap();
        assert!(images(&fs).iter().all(|img| img["a"] == b"old!"));
        f.set_len(2).unwrap();
        f.sync_all().unwrap();
        assert!(images(&fs).iter().all(|img| img["a"] == b"ne"));
    }

    #[test]
    fn renames_need_sync_dir() {
        let d = dir();
        std::fs::write(d.path().join("MANIFEST"), b"v1").unwrap();
        std::fs::write(d.path().join(LOCK), b"").unwrap();
        let fs = FaultFs::new(d.path());
        let tmp = d.path().join("MANIFEST.tmp");
        let f = fs.create(&tmp).unwrap();
        f.write_all_at(b"v2", 0).unwrap();
        f.sync_data().unwrap();
        fs.rename(&tmp, &d.path().join("MANIFEST")).unwrap();
        assert_eq!(std::fs::read(d.path().join("MANIFEST")).unwrap(), b"v2");
        assert!(!tmp.exists());

        let seen = images(&fs);
        for img in &seen {
            assert!(!img.contains_key(LOCK));
            // Queued changes land in order: the create, then perhaps the rename.
            let m = &img["MANIFEST"];
            match img.get("MANIFEST.tmp") {
                Some(t) => assert!(m == b"v1" && t == b"v2", "{img:?}"),
                None => assert!(m == b"v1" || m == b"v2", "{img:?}"),
            }
        }
        assert!(seen.iter().any(|img| img["MANIFEST"] == b"v1"));
        assert!(seen.iter().any(|img| img["MANIFEST"] == b"v2"));

        fs.sync_dir(d.path()).unwrap();
        for img in images(&fs) {
            assert_eq!(img.keys().collect::<Vec<_>>(), ["MANIFEST"]);
            assert_eq!(img["MANIFEST"], b"v2");
        }

        fs.remove_file(&d.path().join("MANIFEST")).unwrap();
        assert!(images(&fs).iter().any(|img| img.contains_key("MANIFEST")));
        fs.sync_dir(d.path()).unwrap();
        assert!(images(&fs).iter().all(|img| img.is_empty()));
    }

    #[test]
    fn create_over_a_name_is_a_new_file() {
        let d = dir();
        std::fs::write(d.path().join("a"), b"durable").unwrap();
        let fs = FaultFs::new(d.path());
        let f = fs.create(&d.path().join("a")).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        // Until the directory is synced the old file may be what the name holds.
        let seen = images(&fs);
        assert!(seen.iter().any(|img| img["a"] == b"durable"));
        assert!(seen.iter().any(|img| img["a"] == b"x"));
        fs.sync_dir(d.path()).unwrap();
        assert!(images(&fs).iter().all(|img| img["a"] == b"x"));
    }

    #[test]
    fn a_failed_fsync_loses_the_pages_for_good() {
        let d = dir();
        let fs = FaultFs::new(d.path());
        let path = d.path().join("wal");
        let f = fs.create(&path).unwrap();
        fs.sync_dir(d.path()).unwrap();
        f.write_all_at(b"aaaa", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"bb", 2).unwrap();
        f.write_all_at(b"cc", 4).unwrap();
        fs.fail_at(fs.ops(), Fault::Eio);
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        assert!(images(&fs).iter().all(|img| img["wal"] == b"aaaa"));
        // The page cache still has the bytes, a retried fsync succeeds, yet the disk keeps the
        // old bytes and zeros where the failed ones were.
        assert_eq!(std::fs::read(&path).unwrap(), b"aabbcc");
        f.write_all_at(b"d", 6).unwrap();
        f.sync_data().unwrap();
        assert!(images(&fs).iter().all(|img| img["wal"] == b"aaaa\0\0d"));
        // Written again, they reach the disk.
        f.write_all_at(b"bbcc", 2).unwrap();
        f.sync_data().unwrap();
        assert!(images(&fs).iter().all(|img| img["wal"] == b"aabbccd"));
    }

    #[test]
    fn faults_hit_the_numbered_operation() {
        let d = dir();
        let fs = FaultFs::with_seed(d.path(), 7);
        assert_eq!(fs.ops(), 0);
        let f = fs.create(&d.path().join("a")).unwrap();
        f.write_all_at(b"0123456789", 0).unwrap();
        f.sync_all().unwrap();
        f.set_len(4).unwrap();
        fs.sync_dir(d.path()).unwrap();
        fs.rename(&d.path().join("a"), &d.path().join("b")).unwrap();
        fs.remove_file(&d.path().join("b")).unwrap();
        drop(fs.open_write(&d.path().join("b")).unwrap_err());
        assert_eq!(fs.ops(), 8);
        assert_eq!(fs.injected(), 0);

        let f = fs.create(&d.path().join("c")).unwrap();
        fs.fail_at(fs.ops() + 1, Fault::Enospc);
        assert!(fs.fault_pending());
        f.write_all_at(b"xy", 0).unwrap();
        let e = f.write_all_at(&[7; 100], 2).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        assert!(!fs.fault_pending());
        assert_eq!(fs.injected(), 1);
        // A random prefix of the failing write landed.
        let got = std::fs::read(d.path().join("c")).unwrap();
        assert!(
            got.len() >= 2 && got[2..].iter().all(|&b| b == 7),
            "{got:?}"
        );
        // One-shot: the next write works.
        f.write_all_at(b"z", 0).unwrap();
        assert!(fs.recent_ops().last().unwrap().starts_with("#11 write"));
        assert!(fs.recent_ops().iter().any(|op| op.ends_with("-> ENOSPC")));
    }

    #[test]
    fn a_full_disk_refuses_writes_and_creates_until_freed() {
        let d = dir();
        let fs = FaultFs::new(d.path());
        let f = fs.create(&d.path().join("a")).unwrap();
        fs.fail_at(fs.ops(), Fault::DiskFull);
        let enospc = |r: io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(ENOSPC));
        enospc(f.write_all_at(b"abc", 0));
        enospc(f.write_all_at(b"abc", 0));
        enospc(fs.create(&d.path().join("b")).map(drop));
        // What needs no space still works.
        f.sync_data().unwrap();
        fs.sync_dir(d.path()).unwrap();
        assert_eq!(fs.injected(), 3);
        fs.free_space();
        f.write_all_at(b"abc", 0).unwrap();
        fs.create(&d.path().join("b")).unwrap();
        assert_eq!(fs.injected(), 3);
    }

    #[test]
    fn failed_name_changes_may_have_happened() {
        let mut outcomes = [false, false];
        for seed in 0..16 {
            let d = dir();
            std::fs::write(d.path().join("a"), b"a").unwrap();
            let fs = FaultFs::with_seed(d.path(), seed);
            fs.fail_at(0, Fault::Eio);
            let e = fs.rename(&d.path().join("a"), &d.path().join("b"));
            assert_eq!(e.unwrap_err().raw_os_error(), Some(EIO));
            let moved = d.path().join("b").exists();
            assert_ne!(moved, d.path().join("a").exists());
            outcomes[usize::from(moved)] = true;
        }
        assert_eq!(outcomes, [true, true]);
    }
}
