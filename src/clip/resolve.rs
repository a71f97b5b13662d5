//! Model spec -> a folder in Hugging Face layout.
//!
//! A spec is a folder path (anything that exists as a directory, or starts with `/`, `.` or `~`),
//! the name [`DEMO_MODEL_NAME`] of the demo model compiled into mmdb, or a hub id `org/name`
//! looked up in the Hugging Face cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`;
//! `models--org--name/snapshots/<rev>/`, preferring the revision `refs/main` points at) and, with the
//! default `download` feature and unless `HF_HUB_OFFLINE=1`, downloaded there when missing. An
//! existing folder wins over a name or hub id spelt the same.
//!
//! The demo model travels inside the binary (an installed or copied `mmdb` has no source tree to
//! read it from) and is written out on first use to `$XDG_CACHE_HOME/mmdb/mmdb-demo-clip-<hash>/`
//! (else `~/.cache/mmdb/...`), the hash naming its content so that builds with different demo
//! models never share a folder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Files a model folder must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// Fetched when present, never required.
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub const OPTIONAL_FILES: [&str; 1] = ["preprocessor_config.json"];
/// Where the demo model's source files live in mmdb's repository (the binary carries a copy).
pub const DEMO_MODEL: &str = "fixtures/models/mmdb-demo-clip";

/// The name that resolves to the bundled demo model.
pub const DEMO_MODEL_NAME: &str = "mmdb-demo-clip";

/// The demo model's files, compiled in.
const DEMO_FILES: [(&str, &[u8]); 4] = [
    (
        "config.json",
        include_bytes!("../../fixtures/models/mmdb-demo-clip/config.json"),
    ),
    (
        "model.safetensors",
        include_bytes!("../../fixtures/models/mmdb-demo-clip/model.safetensors"),
    ),
    (
        "tokenizer.json",
        include_bytes!("../../fixtures/models/mmdb-demo-clip/tokenizer.json"),
    ),
    (
        "preprocessor_config.json",
        include_bytes!("../../fixtures/models/mmdb-demo-clip/preprocessor_config.json"),
    ),
];

/// The folder holding the model named by `spec`. [`DEMO_MODEL_NAME`] names the demo model
/// compiled into mmdb, unless a folder of that name exists in the working directory.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    if spec == DEMO_MODEL_NAME && !Path::new(spec).is_dir() {
        return demo_model_dir(&demo_cache_root()?);
    }
    resolve_in(spec, &cache_dirs(), offline())
}

/// `$XDG_CACHE_HOME/mmdb`, else `$HOME/.cache/mmdb`.
fn demo_cache_root() -> Result<PathBuf> {
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    // The XDG spec ignores a relative XDG_CACHE_HOME.
    if let Some(dir) = env("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("mmdb"));
    }
    match env("HOME").filter(|d| !d.as_os_str().is_empty()) {
        Some(home) => Ok(home.join(".cache/mmdb")),
        None => Err(Error::Model(format!(
            "model {DEMO_MODEL_NAME}: no folder to write it to (set XDG_CACHE_HOME or HOME)"
        ))),
    }
}

/// The first 16 hex digits of the SHA-256 of the demo model's file names and contents.
fn demo_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut h = Sha256::new();
        for (name, bytes) in DEMO_FILES {
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// The demo model's folder under `root`, written there first when absent or not byte for byte
/// the compiled-in files. It appears whole or not at all: the files are written and synced in a
/// temporary folder that is then renamed, so a crash or a concurrent first use never leaves a
/// half-written model under the final name.
fn demo_model_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join(format!("{DEMO_MODEL_NAME}-{}", demo_hash()));
    if holds_demo_files(&dir) {
        return Ok(dir);
    }
    fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = root.join(format!(
        ".{DEMO_MODEL_NAME}-{}.tmp-{}-{nanos}",
        demo_hash(),
        std::process::id()
    ));
    let written = write_demo_files(&tmp).and_then(|()| {
        // A folder that differs from the compiled-in files (damaged, edited) is replaced.
        if dir.exists() && !holds_demo_files(&dir) {
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        match fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            // Another process put it there first.
            Err(_) if holds_demo_files(&dir) => Ok(()),
            Err(e) => Err(Error::io(&dir, e)),
        }
    });
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written?;
    // Makes the rename durable; a cache that loses it is written again on next use.
    if let Ok(d) = fs::File::open(root) {
        let _ = d.sync_all();
    }
    Ok(dir)
}

fn write_demo_files(tmp: &Path) -> Result<()> {
    fs::create_dir(tmp).map_err(|e| Error::io(tmp, e))?;
    for (name, bytes) in DEMO_FILES {
        let path = tmp.join(name);
        let mut f = fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&path, e))?;
        f.sync_all().map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Whether `dir` holds every demo file with exactly the compiled-in bytes.
fn holds_demo_files(dir: &Path) -> bool {
    DEMO_FILES.iter().all(|(name, bytes)| {
        let path = dir.join(name);
        fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64)
            && fs::read(&path).is_ok_and(|b| b == *bytes)
    })
}

fn resolve_in(spec: &str, caches: &[PathBuf], offline: bool) -> Result<PathBuf> {
    let path = expand_home(spec);
    if path.is_dir() || !looks_like_hub_id(spec) {
        return check_folder(&path, spec);
    }
    for cache in caches {
        if let Some(dir) = find_in_cache(cache, spec) {
            return Ok(dir);
        }
    }
    if offline {
        return Err(not_found(spec, caches, "HF_HUB_OFFLINE is set"));
    }
    download_or_explain(spec, caches)
}

fn looks_like_hub_id(spec: &str) -> bool {
    let mut parts = spec.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !p.starts_with('.')
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn expand_home(spec: &str) -> PathBuf {
    match (spec.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(spec),
    }
}

fn check_folder(dir: &Path, spec: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Model(format!(
            "model {spec}: no such folder {} (give a folder with {} or a hub id like \
             openai/clip-vit-base-patch32)",
            dir.display(),
            REQUIRED_FILES.join(", ")
        )));
    }
    let missing: Vec<&str> = REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Model(format!(
            "model folder {} lacks {}",
            dir.display(),
            missing.join(", ")
        )));
    }
    Ok(dir.to_path_buf())
}

/// The hub cache folders to search, in order (duplicates removed).
pub fn cache_dirs() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut dirs = Vec::new();
    if let Some(d) = env("HF_HUB_CACHE") {
        dirs.push(d);
    }
    if let Some(d) = env("HF_HOME") {
        dirs.push(d.join("hub"));
    }
    if let Some(home) = env("HOME") {
        dirs.push(home.join(".cache/huggingface/hub"));
    }
    dirs.dedup();
    dirs
}

/// `cache/models--org--name/snapshots/<rev>` holding every required file.
fn find_in_cache(cache: &Path, id: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let complete = |d: &Path| REQUIRED_FILES.iter().all(|f| d.join(f).is_file());
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let d = snapshots.join(rev.trim());
        if complete(&d) {
            return Some(d);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| complete(d))
        .collect();
    found.sort();
    found.pop()
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn not_found(id: &str, caches: &[PathBuf], why: &str) -> Error {
    let looked: Vec<String> = caches
        .iter()
        .map(|c| {
            c.join(format!("models--{}", id.replace('/', "--")))
                .display()
                .to_string()
        })
        .collect();
    Error::Model(format!(
        "model {id} is not in the Hugging Face cache (looked in {}) and {why}. Point the table's \
         model option at a local folder holding {} (e.g. `model = '/path/to/clip'`), or use the \
         demo model built into mmdb, `{DEMO_MODEL_NAME}`",
        if looked.is_empty() {
            "no cache folder: HOME, HF_HOME and HF_HUB_CACHE unset".into()
        } else {
            looked.join(", ")
        },
        REQUIRED_FILES.join(", ")
    ))
}

#[cfg(feature = "download")]
fn download_or_explain(id: &str, caches: &[PathBuf]) -> Result<PathBuf> {
    let Some(cache) = caches.first() else {
        return Err(not_found(
            id,
            caches,
            "there is no cache folder to download into",
        ));
    };
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache.clone())
        .with_progress(false)
        .build()
        .map_err(|e| not_found(id, caches, &format!("the hub client failed: {e}")))?;
    let repo = api.model(id.to_string());
    let mut dir = None;
    for f in REQUIRED_FILES {
        let p = repo
            .get(f)
            .map_err(|e| not_found(id, caches, &format!("downloading {f} failed ({e})")))?;
        dir = p.parent().map(Path::to_path_buf);
    }
    for f in OPTIONAL_FILES {
        // Absent in some repos: CLIP's defaults apply then.
        let _ = repo.get(f);
    }
    dir.ok_or_else(|| not_found(id, caches, "the download gave no folder"))
}

#[cfg(not(feature = "download"))]
fn download_or_explain(id: &str, caches: &[PathBuf]) -> Result<PathBuf> {
    Err(not_found(
        id,
        caches,
        "mmdb was built without the `download` feature",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(looks_like_hub_id("openai/clip-vit-base-patch32"));
        assert!(!looks_like_hub_id("./models/clip"));
        assert!(!looks_like_hub_id("/abs/clip"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("clip"));
    }

    #[test]
    fn cache_layout_is_found_and_refs_main_preferred() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--org--m");
        for rev in ["aaa", "bbb"] {
            let d = repo.join("snapshots").join(rev);
            std::fs::create_dir_all(&d).unwrap();
            for f in REQUIRED_FILES {
                std::fs::write(d.join(f), "{}").unwrap();
            }
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "aaa\n").unwrap();
        assert_eq!(
            find_in_cache(tmp.path(), "org/m").unwrap(),
            repo.join("snapshots/aaa")
        );
        std::fs::remove_file(repo.join("snapshots/aaa/tokenizer.json")).unwrap();
        assert_eq!(
            find_in_cache(tmp.path(), "org/m").unwrap(),
            repo.join("snapshots/bbb")
        );
        assert!(find_in_cache(tmp.path(), "org/other").is_none());
    }

    #[test]
    fn missing_folders_and_files_are_named() {
        let e = resolve_model("/nonexistent/clip").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/clip"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let e = resolve_model(tmp.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks config.json"), "{e}");
    }

    #[test]
    fn offline_and_not_cached_is_a_clear_error_and_cached_resolves() {
        let tmp = tempfile::tempdir().unwrap();
        let caches = [tmp.path().to_path_buf()];
        let e = resolve_in("org/m", &caches, true).unwrap_err().to_string();
        assert!(
            e.contains("models--org--m") && e.contains("HF_HUB_OFFLINE"),
            "{e}"
        );
        let snap = tmp.path().join("models--org--m/snapshots/r1");
        std::fs::create_dir_all(&snap).unwrap();
        for f in REQUIRED_FILES {
            std::fs::write(snap.join(f), "{}").unwrap();
        }
        assert_eq!(resolve_in("org/m", &caches, true).unwrap(), snap);
    }

    #[test]
    fn the_demo_model_is_written_out_once_and_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cache/mmdb");
        let dir = demo_model_dir(&root).unwrap();
        assert!(dir.starts_with(&root), "{}", dir.display());
        assert_eq!(check_folder(&dir, DEMO_MODEL_NAME).unwrap(), dir);
        for (name, bytes) in DEMO_FILES {
            let source = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(DEMO_MODEL)
                .join(name);
            assert_eq!(fs::read(source).unwrap(), bytes, "{name}");
        }
        let modified = |d: &Path| {
            fs::metadata(d.join("model.safetensors"))
                .unwrap()
                .modified()
                .unwrap()
        };
        let first = modified(&dir);
        assert_eq!(demo_model_dir(&root).unwrap(), dir);
        assert_eq!(modified(&dir), first, "an intact copy is reused");

        // A damaged copy (same length, one byte changed) is replaced; no temporary folder stays.
        let weights = dir.join("model.safetensors");
        let mut bytes = fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&weights, bytes).unwrap();
        assert_eq!(demo_model_dir(&root).unwrap(), dir);
        assert!(holds_demo_files(&dir));
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn the_not_found_message_says_where_and_what_to_do() {
        let e = not_found("org/m", &[PathBuf::from("/c")], "offline").to_string();
        assert!(e.contains("/c/models--org--m"), "{e}");
        assert!(e.contains(&format!("`{DEMO_MODEL_NAME}`")), "{e}");
        assert!(!e.contains("fixtures/"), "{e}");
        assert!(e.contains("local folder"), "{e}");
    }
}
