//! Model spec -> a folder in Hugging Face layout.
//!
//! A spec is a folder path (anything that exists as a directory, or starts with `/`, `.` or `~`), or
//! a hub id `org/name` looked up in the Hugging Face cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`;
//! `models--org--name/snapshots/<rev>/`, preferring the revision `refs/main` points at) and, with the
//! default `download` feature and unless `HF_HUB_OFFLINE=1`, downloaded there when missing.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Files a model folder must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// Fetched when present, never required.
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub const OPTIONAL_FILES: [&str; 1] = ["preprocessor_config.json"];
/// The small demo model bundled with mmdb (relative to the repository root).
pub const DEMO_MODEL: &str = "fixtures/models/mmdb-demo-clip";

/// The name that resolves to the bundled demo model.
pub const DEMO_MODEL_NAME: &str = "mmdb-demo-clip";

/// The folder holding the model named by `spec`. [`DEMO_MODEL_NAME`] names the bundled demo model
/// in this source tree (so a table created with it keeps working from any current directory).
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    if spec == DEMO_MODEL_NAME {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_MODEL);
        return check_folder(&dir, spec);
    }
    resolve_in(spec, &cache_dirs(), offline())
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
         bundled demo model `{DEMO_MODEL}`",
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
    fn the_not_found_message_says_where_and_what_to_do() {
        let e = not_found("org/m", &[PathBuf::from("/c")], "offline").to_string();
        assert!(e.contains("/c/models--org--m"), "{e}");
        assert!(e.contains(DEMO_MODEL), "{e}");
        assert!(e.contains("local folder"), "{e}");
    }
}
