//! Disk full, end to end (issue 14): an interactive `mmdb` shell on a small tmpfs inserts until
//! the filesystem is full, space is freed, more inserts are acknowledged, the process is killed
//! with SIGKILL; reopening must work and show every acknowledged row.
//!
//! The shell runs on a terminal: only there does it take one statement at a time, print
//! "1 row changed" and go on after an error (piped stdin is read to the end first and run as a
//! script that stops at the first error). util-linux `script` provides the terminal, and
//! `TERM=dumb` makes the line editor read plain lines (no raw mode, no redrawing).
//!
//! Needs root (to mount the tmpfs) and `script`; without them the test prints `skipped: ...` to
//! stderr and passes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Size of the filesystem the database lives on.
const FS_SIZE: &str = "6m";
/// What deleting the filler frees once the filesystem is full.
const FILLER_BYTES: usize = 1536 * 1024;
/// A payload is this many lines of `LINE_CHARS` letters. The terminal takes lines of at most
/// 4,095 bytes (canonical mode), so a large string literal is sent over several lines; few long
/// lines, because the shell re-tokenises the statement so far after each line.
const PAYLOAD_LINES: usize = 10;
const LINE_CHARS: usize = 4000;
/// Bounds on the fill phase, so a filesystem that never fills fails the test instead of hanging.
const MAX_INSERTS: i64 = 1000;
const FILL_DEADLINE: Duration = Duration::from_secs(120);
/// Longest wait for the shell's answer to one statement.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Inserts after the space is freed.
const AFTER_FREE: i64 = 5;

/// A tmpfs mounted on a directory; unmounted on drop (lazily if still busy).
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &Path) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// How the shell answered one statement.
#[derive(Debug)]
enum Reply {
    Changed,
    Error(String),
}

/// `mmdb DB` on a terminal (`script` holds the terminal's other end). Drop kills both processes.
struct Shell {
    script: Child,
    /// The `mmdb` process (the child of `script`).
    mmdb: u32,
    input: ChildStdin,
    /// Lines of the terminal's output, `\r` removed. stdout and stderr both go to the terminal,
    /// in the order the shell wrote them.
    lines: Receiver<String>,
    killed: bool,
}

impl Shell {
    fn start(db: &Path) -> Shell {
        // `exec`: the shell that `script` starts becomes mmdb. `stty -echo` keeps the input out
        // of the output.
        let cmd = format!(
            "stty -echo; exec '{}' '{}'",
            env!("CARGO_BIN_EXE_mmdb"),
            db.display()
        );
        let mut script = Command::new("script")
            .args(["-q", "-f", "-e", "-c", &cmd, "/dev/null"])
            .env("TERM", "dumb")
            .env("SHELL", "/bin/sh")
            .env("MMDB_HISTORY", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = script.stdin.take().unwrap();
        let mut out = script.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&line).replace(['\r', '\n'], "");
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
            if !pending.is_empty() {
                let _ = tx.send(String::from_utf8_lossy(&pending).replace('\r', ""));
            }
        });
        let script_pid = script.id();
        let mut shell = Shell {
            script,
            mmdb: 0,
            input,
            lines,
            killed: false,
        };
        // The banner's second line: mmdb is running and `stty` is done.
        shell.read_until(|l| l.contains("for usage hints"), "the banner");
        shell.mmdb = child_of(script_pid).expect("mmdb's process under script");
        shell
    }

    /// Output lines up to and including the first one that satisfies `last`.
    fn read_until(&mut self, last: impl Fn(&str) -> bool, what: &str) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok(l) => {
                    let done = last(&l);
                    got.push(l);
                    if done {
                        return got;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} from the shell after {REPLY_TIMEOUT:?}; it printed {got:#?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the shell exited before {what}; it printed {got:#?}")
                }
            }
        }
    }

    /// Sends `sql` (one statement, possibly over several lines), then `SELECT 'ack-<n>-end'`,
    /// whose result marks the end of the first statement's answer.
    fn run(&mut self, n: i64, sql: &str) -> Reply {
        let marker = format!("ack-{n}-end");
        let text = format!("{sql}\nSELECT '{marker}' AS s;\n");
        self.input.write_all(text.as_bytes()).unwrap();
        self.input.flush().unwrap();
        // The marker's row in the result table (an echo of the input would show it quoted).
        let row = format!("| {marker} ");
        let lines = self.read_until(|l| l.contains(&row), &marker);
        if let Some(e) = lines.iter().find(|l| l.contains("Error:")) {
            return Reply::Error(e.clone());
        }
        assert!(
            lines.iter().any(|l| l.contains("1 row changed")),
            "statement {n}: neither acknowledged nor refused: {lines:#?}"
        );
        Reply::Changed
    }

    /// SIGKILL to mmdb, then waits for `script` to notice.
    fn kill_mmdb(&mut self) {
        kill9(self.mmdb);
        self.killed = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.script.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "script outlived mmdb");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if !self.killed && self.mmdb != 0 {
            kill9(self.mmdb);
        }
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

fn kill9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// The process whose parent is `parent` (from `/proc/<pid>/stat`).
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after its `)`.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

/// The payload of key `k`, lines joined by `\n`.
fn payload(k: i64) -> String {
    (0..PAYLOAD_LINES)
        .map(|i| {
            let c = (b'a' + ((k as usize + i) % 26) as u8) as char;
            c.to_string().repeat(LINE_CHARS)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn insert_sql(k: i64) -> String {
    format!("INSERT INTO t VALUES ({k}, '{}');", payload(k))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn rows_acknowledged_after_a_full_disk_survive_a_kill() {
    let started = Instant::now();
    if let Err(e) = Command::new("script").arg("--version").output() {
        eprintln!("skipped: util-linux `script` is needed to give mmdb a terminal ({e})");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let _mount = match Mount::new(mnt.path()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: cannot mount a {FS_SIZE} tmpfs (needs root): {e}");
            return;
        }
    };
    let filler = mnt.path().join("filler");
    std::fs::write(&filler, vec![0xA5u8; FILLER_BYTES]).unwrap();
    let db = mnt.path().join("db");

    let mut shell = Shell::start(&db);
    shell
        .input
        .write_all(b"CREATE TABLE t (k INTEGER, p TEXT);\n")
        .unwrap();
    shell.read_until(|l| l.contains("OK"), "CREATE TABLE's OK");

    // Fill the filesystem.
    let mut acked = Vec::new();
    let mut k = 0;
    let full = loop {
        k += 1;
        assert!(
            k <= MAX_INSERTS && started.elapsed() < FILL_DEADLINE,
            "no insert failed after {} rows in {:?}",
            k - 1,
            started.elapsed()
        );
        match shell.run(k, &insert_sql(k)) {
            Reply::Changed => acked.push(k),
            Reply::Error(e) => {
                assert!(
                    e.contains("No space left"),
                    "insert {k} failed, but not for lack of space: {e}"
                );
                break e;
            }
        }
    };
    eprintln!("filesystem full at insert {k}: {full}");
    let unknown = k;

    // Free space; the next inserts must be acknowledged.
    std::fs::remove_file(&filler).unwrap();
    let mut refused = Vec::new();
    for _ in 0..AFTER_FREE {
        k += 1;
        match shell.run(k, &insert_sql(k)) {
            Reply::Changed => acked.push(k),
            Reply::Error(e) => refused.push((k, e)),
        }
    }
    shell.kill_mmdb();
    drop(shell);

    // Reopen in place, on the filesystem that is still nearly full: every acknowledged row is
    // there. The flush at close may fail for lack of space (the rows stay in the WAL): that is
    // the only error allowed.
    let select = |db: &Path| -> Output {
        Command::new(env!("CARGO_BIN_EXE_mmdb"))
            .arg(db)
            .args([
                "-c",
                ".mode csv",
                "-c",
                "SELECT k, length(p) FROM t ORDER BY k",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let in_place = select(&db);
    assert!(
        in_place.status.success() || text(&in_place.stderr).contains("No space left"),
        "reopening in place after the kill failed ({} acknowledged rows; insert {unknown} \
         failed for lack of space): {}",
        acked.len(),
        text(&in_place.stderr)
    );
    // And a copy on an ordinary disk, after that reopen (and its attempt to flush) on the full
    // one: the database is still whole.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&db).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let out = select(copy.path());
    assert!(
        out.status.success(),
        "reopening a copy failed ({} acknowledged rows; insert {unknown} failed for lack of \
         space): {}",
        acked.len(),
        text(&out.stderr)
    );
    assert_eq!(
        text(&in_place.stdout),
        text(&out.stdout),
        "the same rows in place and in the copy"
    );
    let present: BTreeMap<i64, usize> = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let (k, len) = l.split_once(',').unwrap();
            (k.parse().unwrap(), len.parse().unwrap())
        })
        .collect();
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|k| !present.contains_key(k))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged rows lost: {lost:?} (of {})",
        acked.len()
    );
    let want_len = PAYLOAD_LINES * (LINE_CHARS + 1) - 1;
    for k in &acked {
        assert_eq!(present[k], want_len, "row {k}: payload length");
    }
    // The failed insert's outcome is unknown to the client: present or absent, nothing else.
    let extra: Vec<&i64> = present
        .keys()
        .filter(|k| !acked.contains(k) && **k != unknown)
        .collect();
    assert!(extra.is_empty(), "rows never acknowledged: {extra:?}");
    assert!(
        refused.is_empty(),
        "inserts refused after space was freed: {refused:#?}"
    );
}
