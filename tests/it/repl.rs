//! The `mmdb` binary: `-c`, piped scripts, exit codes, dot-commands.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mmdb(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmdb"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dash_c_runs_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let out = mmdb(
        &[
            db,
            "-c",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, emb VECTOR(2)); INSERT INTO t (name, emb) VALUES ('a', [1, 0]), ('b', [0, 1]);",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Leaving the shell closes the database: the rows are in a segment, not only in the WAL.
    let segs = std::fs::read_dir(db)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".rows")
        })
        .count();
    assert_eq!(segs, 1);
    let out = mmdb(
        &[
            db,
            "-c",
            "SELECT id, name FROM t ORDER BY similarity(emb, [0, 1]) LIMIT 1;",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "+----+------+\n| id | name |\n+----+------+\n|  2 | b    |\n+----+------+\n1 row\n"
    );
    // The explicit subcommand does the same.
    let out = mmdb(
        &[
            "shell",
            db,
            "-c",
            ".mode csv",
            "-c",
            "SELECT name FROM t ORDER BY id;",
        ],
        None,
    );
    assert_eq!(text(&out.stdout), "name\na\nb\n");
    // Repeated -c without a trailing ';' are separate statements.
    let out = mmdb(
        &[
            db,
            "-c",
            ".mode csv",
            "-c",
            "SELECT name FROM t WHERE id = 1",
            "-c",
            "SELECT name FROM t WHERE id = 2",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "name\na\nname\nb\n");
}

#[test]
fn piped_script_stops_at_the_first_error_with_its_line() {
    let script = "CREATE TABLE t (a INTEGER);\nINSERT INTO t VALUES (1);\n\nSELECT a\n  FROM nope;\nSELECT 'never';\n";
    let out = mmdb(&[], Some(script));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "Error: statement at line 4: no such table: nope"
    );
    assert!(!text(&out.stdout).contains("never"));

    let out = mmdb(&[], Some("SELECT 1;\nSELECT * FROM WHERE;\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("SQL syntax error at line 2, column 15"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_statement_cut_short_is_reported_where_it_ends() {
    let out = mmdb(&["-c", "SELECT * FROM"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("SQL syntax error at line 1, column 14"),
        "{err}"
    );
    // A script that ends inside a statement: the error is at the script's end.
    let out = mmdb(&[], Some("SELECT 1;\n\nSELECT (1,\n  2\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("SQL syntax error at line 4, column 4"),
        "{err}"
    );
}

/// A 20,000-line INSERT (one row per line), piped and through `.read`: every row goes in. A shell
/// that re-read the buffered statement on every line took minutes for a tenth of this.
#[test]
fn a_long_statement_over_many_lines() {
    let rows = 20_000;
    let mut script = String::from(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL);\nINSERT INTO t (id, name, score) VALUES\n",
    );
    for i in 1..=rows {
        let end = if i == rows { ";" } else { "," };
        script.push_str(&format!("  ({i}, 'name; {i}', {i}.5){end}\n"));
    }
    script.push_str(".mode csv\nSELECT count(*), sum(id) FROM t;\n");
    let want = format!("count(*),sum(id)\n{rows},{}\n", rows * (rows + 1) / 2);

    let out = mmdb(&[], Some(&script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.sql");
    std::fs::write(&file, &script).unwrap();
    let out = mmdb(&["-c", &format!(".read {}", file.display())], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want);
}

#[test]
fn dot_commands_in_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let script_file = dir.path().join("more.sql");
    std::fs::write(&script_file, "INSERT INTO t VALUES (2, 'two');\n").unwrap();
    let script = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);\n.read {}\n.tables\n.schema t\n.mode line\nSELECT * FROM t;\n.mode json\nSELECT * FROM t;\n.timer on\nSELECT 1 AS one;\n.quit\nSELECT 'after quit';\n",
        script_file.display()
    );
    let out = mmdb(&[], Some(&script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("t\nCREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT) WITH ("),
        "{stdout}"
    );
    assert!(stdout.contains("  id = 2\nname = two\n"), "{stdout}");
    assert!(
        stdout.contains("[{\"id\":2,\"name\":\"two\"}]\n"),
        "{stdout}"
    );
    assert!(stdout.contains("Run Time: "), "{stdout}");
    assert!(!stdout.contains("after quit"), "{stdout}");

    let out = mmdb(&[], Some(".mode fancy\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("usage: .mode table|csv|json|line"));
}

#[test]
fn checkpoint_and_compact_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let segments = || {
        std::fs::read_dir(&db)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".rows")
            })
            .count()
    };
    let script = "CREATE TABLE t (id INTEGER PRIMARY KEY, emb VECTOR(2));\n\
        INSERT INTO t (emb) VALUES ([1, 0]), ([0, 1]);\n.checkpoint\n\
        INSERT INTO t (emb) VALUES ([1, 1]);\n.checkpoint\n.compact t\n\
        DELETE FROM t WHERE id = 2;\n.checkpoint\n.compact\n\
        SELECT id FROM t ORDER BY id;\n";
    let out = mmdb(&[db.to_str().unwrap()], Some(script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("|  1 |\n|  3 |"),
        "{}",
        text(&out.stdout)
    );
    // The second checkpoint extended the first one's segment; the compactions keep one.
    assert_eq!(segments(), 1);

    let out = mmdb(&[db.to_str().unwrap()], Some(".compact nope\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

#[test]
fn help_lists_the_subcommands() {
    let out = mmdb(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("shell") && help.contains("[DB]") && help.contains("--command"),
        "{help}"
    );
}

/// The interactive path through a pseudo-terminal (util-linux `script`; skipped without it):
/// multi-line input, errors without leaving, the banner of a temporary database, history, Ctrl-D.
#[test]
fn interactive_session_in_a_pty() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` command");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let history = home.path().join("hist");
    let cmd = format!("{} ", env!("CARGO_BIN_EXE_mmdb"));
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("MMDB_HISTORY", &history)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    for chunk in [
        "CREATE TABLE t (a INTEGER,\n b VECTOR(2));\n",
        "INSERT INTO t VALUES (7, [1, 0]);\n",
        // A `;` in a comment does not end the statement.
        "INSERT INTO t -- one row;\n VALUES (8, [0, 1]) /* a;\n",
        "comment */;\n",
        "SELECT * FROM nope;\n",
        "SELECT a FROM t;\n",
        "\x04",
    ] {
        pause();
        input.write_all(chunk.as_bytes()).unwrap();
        input.flush().unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout).replace('\r', "");
    assert!(stdout.contains("a temporary database at"), "{stdout}");
    assert!(stdout.contains("Error: no such table: nope"), "{stdout}");
    assert!(
        stdout.contains("| 7 |") && stdout.contains("| 8 |") && stdout.contains("2 rows"),
        "{stdout}"
    );
    let hist = std::fs::read_to_string(&history).unwrap();
    assert!(
        hist.contains("CREATE TABLE t (a INTEGER,\\n b VECTOR(2));"),
        "{hist}"
    );
}

#[test]
fn read_names_the_file_and_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let script_file = dir.path().join("bad.sql");
    std::fs::write(&script_file, "SELECT 1;\nSELECT bogus(1);\n").unwrap();
    let out = mmdb(&[], Some(&format!(".read {}\n", script_file.display())));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.sql: statement at line 2"), "{err}");
    assert!(err.contains("unknown function bogus()"), "{err}");
    assert_eq!(err.matches("SQL error").count(), 1, "{err}");
}

/// A database whose WAL ends in half a record (what a crash mid-append leaves).
fn db_with_torn_tail(db: &str) -> std::path::PathBuf {
    let d = mmdb::Database::open(db).unwrap();
    d.execute("CREATE TABLE t (k INTEGER)", &[]).unwrap();
    d.execute("INSERT INTO t VALUES (1), (2)", &[]).unwrap();
    drop(d); // no close: the rows are only in the WAL
    let wal = std::fs::read_dir(db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
    f.write_all(&[9u8; 11]).unwrap();
    wal
}

#[test]
fn a_dropped_torn_tail_is_a_warning_and_strict_recovery_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let wal = db_with_torn_tail(db);
    let before = std::fs::read(&wal).unwrap();

    let out = mmdb(
        &[
            db,
            "--wal-recovery",
            "absolute-consistency",
            "-c",
            "SELECT 1",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("absolute-consistency") && err.contains(".log"),
        "{err}"
    );
    assert_eq!(std::fs::read(&wal).unwrap(), before, "nothing changed");

    let out = mmdb(&[db, "--wal-recovery", "sometimes", "-c", "SELECT 1"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("point-in-time"),
        "{}",
        text(&out.stderr)
    );

    let out = mmdb(&[db, "-c", "SELECT count(*) AS n FROM t"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: recovery dropped a torn last record") && err.contains("11 bytes"),
        "{err}"
    );
    assert!(text(&out.stdout).contains('2'), "{}", text(&out.stdout));
}

#[test]
fn dot_open_reopens_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let out = mmdb(
        &[
            db,
            "-c",
            "CREATE TABLE t (k INTEGER); INSERT INTO t VALUES (1)",
            "-c",
            &format!(".open {db}"),
            "-c",
            "INSERT INTO t VALUES (2)",
            "-c",
            "SELECT count(*) AS n FROM t",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains('2'), "{}", text(&out.stdout));
}
