//! The `mmdb` binary away from the source tree: a copy of it in another folder, run from yet
//! another working directory with its own HOME, still has the demo model (it is compiled in and
//! written out to the user's cache); a table whose model was given as a relative folder still
//! finds it from another working directory; `mmdb demo` refuses a `db` folder it did not make.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mmdb::Database;
use mmdb::cli::{TourOptions, run_tour};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the built binary in `dir/bin`.
fn copied_binary(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let copy = bin.join("mmdb");
    std::fs::copy(env!("CARGO_BIN_EXE_mmdb"), &copy).unwrap();
    copy
}

/// `bin args...` run in `cwd` with HOME `home` and, when given, XDG_CACHE_HOME `cache`.
fn run(bin: &Path, cwd: &Path, home: &Path, cache: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).env("HOME", home);
    match cache {
        Some(c) => cmd.env("XDG_CACHE_HOME", c),
        None => cmd.env_remove("XDG_CACHE_HOME"),
    };
    cmd.output().unwrap()
}

fn demo_model_folders(cache: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache.join("mmdb")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_copied_binary_embeds_with_the_demo_model_from_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = copied_binary(tmp.path());
    let (cwd, home, cache) = (
        tmp.path().join("elsewhere"),
        tmp.path().join("home"),
        tmp.path().join("cache"),
    );
    for d in [&cwd, &home, &cache] {
        std::fs::create_dir_all(d).unwrap();
    }
    let args = [
        "embed",
        "--model",
        "mmdb-demo-clip",
        "--text",
        "a red circle",
    ];
    let out = run(&bin, &cwd, &home, Some(&cache), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(line["dim"], 96, "{line}");
    assert_eq!(line["embedding"].as_array().unwrap().len(), 96);

    // The model went to $XDG_CACHE_HOME/mmdb, one folder, whole.
    let folders = demo_model_folders(&cache);
    assert_eq!(folders.len(), 1, "{folders:?}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(
            folders[0].join(f).is_file(),
            "{f} in {}",
            folders[0].display()
        );
    }
    // A second run reuses it and gives the same vector.
    let again = run(&bin, &cwd, &home, Some(&cache), &args);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), text(&out.stdout));

    // Without XDG_CACHE_HOME: ~/.cache/mmdb.
    let out = run(&bin, &cwd, &home, None, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(demo_model_folders(&home.join(".cache")).len(), 1);
}

#[test]
fn a_relative_model_folder_works_from_another_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = copied_binary(tmp.path());
    let (here, there, home) = (
        tmp.path().join("here"),
        tmp.path().join("there"),
        tmp.path().join("home"),
    );
    for d in [&here, &there, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    // A model folder of one's own, beside the working directory of the CREATE.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/mmdb-demo-clip");
    let mine = here.join("mymodel");
    std::fs::create_dir(&mine).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(source.join(f), mine.join(f)).unwrap();
    }
    let db = tmp.path().join("db");
    let db = db.to_str().unwrap();
    let out = run(
        &bin,
        &here,
        &home,
        None,
        &[
            db,
            "-c",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body EMBEDDED_TEXT) \
             WITH (model = './mymodel');",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(
        &bin,
        &there,
        &home,
        None,
        &[
            db,
            "-c",
            "INSERT INTO notes (body) VALUES ('a small red circle'), ('two green triangles');",
            "-c",
            "SELECT id FROM notes ORDER BY similarity(body, 'two green triangles') LIMIT 1;",
            "-c",
            ".schema notes",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains("|  2 |"), "{stdout}");
    let stored = format!("model = '{}'", mine.display());
    assert!(stdout.contains(&stored), "{stored} not in {stdout}");
}

#[test]
fn the_tour_refuses_a_db_folder_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("db");
    let db = Database::open(&db_dir).unwrap();
    db.execute("CREATE TABLE mine (x INTEGER)", &[]).unwrap();
    db.execute("INSERT INTO mine VALUES (42)", &[]).unwrap();
    db.close().unwrap();

    let mut opts = TourOptions::new(tmp.path());
    opts.images = 8;
    let err = run_tour(&opts, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, mmdb::Error::InvalidArgument(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&db_dir.display().to_string()), "{msg}");
    assert!(!tmp.path().join("data").exists(), "refused before any work");

    // The same through the binary, and a plain file named `db` is refused too.
    let dir = tmp.path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mmdb"))
        .args(["demo", "--dir", dir, "--images", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&db_dir.display().to_string()),
        "{}",
        text(&out.stderr)
    );
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("db"), "notes").unwrap();
    let err = run_tour(&TourOptions::new(other.path()), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("not a database made by"), "{err}");
    assert_eq!(
        std::fs::read_to_string(other.path().join("db")).unwrap(),
        "notes"
    );

    let db = Database::open(&db_dir).unwrap();
    assert_eq!(db.table_names(), ["mine"]);
    let rows = db.query("SELECT x FROM mine", &[]).unwrap();
    assert_eq!(rows.get(0).unwrap().get::<i64>(0).unwrap(), 42);
}
