//! The module graph of `docs/ARCHITECTURE.md`, checked: this test parses every file under `src/`
//! and fails on a reference (a `use`, a path in code, or a `crate::`/`super::` path inside a
//! macro call) from one unit to another that the table below does not allow. A unit is a
//! top-level module, except inside `sql/`, whose files are units of their own (its pipeline has an
//! order too). Root re-exports (`crate::Error`) count as the module that defines them.
//!
//! To add an edge, add it to [`ALLOWED`] and to `docs/ARCHITECTURE.md` in the same change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// What each unit may use, lowest layer first. Everything may use `error` and `value`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("value", &[]),
    ("storage", &[]),
    ("schema", &[]),
    ("index", &["storage", "schema"]),
    ("catalog", &["schema"]),
    ("segment", &["storage", "index", "schema", "catalog"]),
    ("wal", &["storage", "schema"]),
    ("memtable", &["index", "schema"]),
    // The rules every image passes before a decoder (regular files, size, truncation) and the
    // limits the decoder applies.
    ("image_intake", &[]),
    ("embedder", &["image_intake"]),
    (
        "db",
        &[
            "storage",
            "schema",
            "catalog",
            "index",
            "segment",
            "wal",
            "memtable",
            "embedder",
            "image_intake",
        ],
    ),
    // The SQL pipeline, in order: formatting and parsing, expressions, plans, binding and
    // planning, then execution (embedding, query vectors, settings, select, write), the session,
    // and the API on `Database` at the top.
    ("sql", &["sql::*"]),
    ("sql::value_fmt", &[]),
    // Tokenizing with vector literals read directly, and what a statement's text says that its
    // AST does not (`?` positions, lifted literals).
    ("sql::lexer", &[]),
    ("sql::parser", &["sql::lexer"]),
    ("sql::rows", &["schema"]),
    ("sql::query_vec", &["sql::value_fmt", "index"]),
    ("sql::expr", &["sql::query_vec", "sql::value_fmt", "schema"]),
    (
        "sql::plan",
        &["sql::expr", "sql::query_vec", "sql::value_fmt", "schema"],
    ),
    ("sql::ddl", &["schema"]),
    (
        "sql::binder",
        &[
            "sql::expr",
            "sql::lexer",
            "sql::plan",
            "sql::query_vec",
            "sql::value_fmt",
            "schema",
        ],
    ),
    (
        "sql::planner",
        &[
            "sql::binder",
            "sql::ddl",
            "sql::expr",
            "sql::plan",
            "sql::query_vec",
            "sql::value_fmt",
            "schema",
        ],
    ),
    (
        "sql::embedding",
        &["db", "embedder", "image_intake", "schema"],
    ),
    (
        "sql::query_resolve",
        &[
            "sql::embedding",
            "sql::expr",
            "sql::plan",
            "sql::query_vec",
            "sql::value_fmt",
            "db",
            "image_intake",
            "schema",
        ],
    ),
    ("sql::settings", &["db", "image_intake"]),
    (
        "sql::select_exec",
        &[
            "sql::expr",
            "sql::plan",
            "sql::query_resolve",
            "sql::rows",
            "sql::settings",
            "sql::value_fmt",
            "db",
            "schema",
        ],
    ),
    (
        "sql::write_exec",
        &[
            "sql::binder",
            "sql::ddl",
            "sql::embedding",
            "sql::expr",
            "sql::query_resolve",
            "sql::query_vec",
            "sql::value_fmt",
            "db",
            "image_intake",
            "schema",
        ],
    ),
    (
        "sql::session",
        &[
            "sql::binder",
            "sql::ddl",
            "sql::embedding",
            "sql::expr",
            "sql::parser",
            "sql::plan",
            "sql::planner",
            "sql::query_resolve",
            "sql::rows",
            "sql::select_exec",
            "sql::settings",
            "sql::write_exec",
            "db",
            "schema",
        ],
    ),
    (
        "sql::api",
        &[
            "sql::binder",
            "sql::parser",
            "sql::planner",
            "sql::rows",
            "sql::session",
            "db",
        ],
    ),
    // Above the engine: bulk loading (any embedder), CLIP, the demo data, the binary's code.
    (
        "coco",
        &["db", "embedder", "image_intake", "schema", "sql::*"],
    ),
    // `storage` for the mmap of `model.safetensors` (all `unsafe` stays in `storage/mmap.rs`).
    ("clip", &["embedder", "image_intake", "storage"]),
    ("demo", &[]),
    ("cli", &["*"]),
];

/// Whether `from` may use `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to || to == "error" || to == "value" {
        return true;
    }
    let Some((_, list)) = ALLOWED.iter().find(|(u, _)| *u == from) else {
        return false;
    };
    // `x::*` allows `x` and everything in it; a file of `sql/` may use `sql/mod.rs`.
    list.iter().any(|a| match a.strip_suffix("::*") {
        Some(top) => to == top || to.strip_prefix(top).is_some_and(|r| r.starts_with("::")),
        None => *a == "*" || *a == to,
    }) || (from.starts_with("sql::") && to == "sql")
}

/// The unit of a module path.
fn unit(module: &[String]) -> String {
    match module {
        [] => "lib".into(),
        [top, sub, ..] if top == "sql" => format!("sql::{sub}"),
        [top, ..] => top.clone(),
    }
}

/// The module path of a file under `src/` (`src/db/mod.rs` is `db`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// Collects the modules a file refers to.
struct Refs<'a> {
    /// The module the visitor is in (the file's, plus inline `mod` blocks).
    here: Vec<String>,
    /// Root re-exports: name -> defining module.
    reexports: &'a BTreeMap<String, Vec<String>>,
    /// Top-level module names.
    tops: &'a BTreeSet<String>,
    found: BTreeSet<Vec<String>>,
}

impl Refs<'_> {
    /// Resolves a path given as segment names to the module it names (as far as known).
    fn resolve(&mut self, segs: &[String]) {
        let (mut base, rest) = match segs.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &segs[1..]),
            Some("super") => {
                let mut base = self.here.clone();
                let mut i = 0;
                while segs.get(i).map(String::as_str) == Some("super") {
                    base.pop();
                    i += 1;
                }
                (base, &segs[i..])
            }
            _ => return,
        };
        if base.is_empty() {
            let Some(first) = rest.first() else { return };
            if let Some(m) = self.reexports.get(first) {
                self.found.insert(m.clone());
                return;
            }
            if !self.tops.contains(first) {
                return;
            }
        }
        // Keep at most two levels: the unit needs no more.
        for s in rest.iter().take(2usize.saturating_sub(base.len()).max(1)) {
            if s.chars().next().is_some_and(char::is_lowercase) {
                base.push(s.clone());
            } else {
                break;
            }
        }
        self.found.insert(base);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.resolve(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.resolve(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.resolve(&prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// `crate :: a :: b` and `super :: a` sequences inside macro arguments.
    fn tokens(&mut self, ts: TokenStream) {
        let toks: Vec<TokenTree> = ts.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            if let TokenTree::Group(g) = &toks[i] {
                self.tokens(g.stream());
            }
            if let TokenTree::Ident(id) = &toks[i]
                && (id == "crate" || id == "super")
            {
                let mut segs = vec![id.to_string()];
                let mut j = i + 1;
                while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                    (toks.get(j), toks.get(j + 1))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    match toks.get(j + 2) {
                        Some(TokenTree::Ident(n)) => segs.push(n.to_string()),
                        _ => break,
                    }
                    j += 3;
                }
                self.resolve(&segs);
                i = j;
                continue;
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segs);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.here.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.here.pop();
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `pub use module::{A, B}` lines of `lib.rs`: root names and their modules.
fn root_reexports(lib: &syn::File) -> BTreeMap<String, Vec<String>> {
    fn walk(prefix: &mut Vec<String>, t: &syn::UseTree, out: &mut BTreeMap<String, Vec<String>>) {
        match t {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(prefix, &p.tree, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                out.insert(n.ident.to_string(), prefix[..1].to_vec());
            }
            syn::UseTree::Rename(r) => {
                out.insert(r.rename.to_string(), prefix[..1].to_vec());
            }
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| walk(prefix, t, out)),
            syn::UseTree::Glob(_) => {}
        }
    }
    let mut out = BTreeMap::new();
    for item in &lib.items {
        if let syn::Item::Use(u) = item {
            walk(&mut Vec::new(), &u.tree, &mut out);
        }
    }
    out
}

#[test]
fn no_module_reaches_outside_the_allowed_edges() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let parse = |p: &Path| -> syn::File {
        let text = std::fs::read_to_string(p).unwrap();
        syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let lib = parse(&src.join("lib.rs"));
    let reexports = root_reexports(&lib);
    let tops: BTreeSet<String> = lib
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    for (u, _) in ALLOWED {
        let top = u.split("::").next().unwrap_or_default();
        assert!(
            tops.contains(top),
            "ALLOWED names {u}, which lib.rs does not declare"
        );
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    let mut edges = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        // The binary reaches the library through `mmdb::`, like any user.
        if rel == Path::new("main.rs") || rel == Path::new("lib.rs") {
            continue;
        }
        let module = module_of(rel);
        let mut refs = Refs {
            here: module.clone(),
            reexports: &reexports,
            tops: &tops,
            found: BTreeSet::new(),
        };
        refs.visit_file(&parse(&file));
        let from = unit(&module);
        for target in refs.found {
            let to = unit(&target);
            if to == "lib" {
                continue;
            }
            edges.insert((from.clone(), to.clone()));
            if !allowed(&from, &to) {
                bad.push(format!("{}: {from} -> {to}", rel.display()));
            }
        }
    }
    assert!(
        !edges.is_empty(),
        "found no edges at all: the parser is broken"
    );
    assert!(
        bad.is_empty(),
        "imports outside the allowed module graph (docs/ARCHITECTURE.md):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_every_kind_of_reference() {
    let tops: BTreeSet<String> = ["db", "sql", "wal"].iter().map(|s| s.to_string()).collect();
    let reexports = BTreeMap::from([("Database".to_string(), vec!["db".to_string()])]);
    let file: syn::File = syn::parse_str(
        "use crate::wal::{WalWriter, Sync};
         use super::select_exec;
         fn f() { let x = crate::Database::open(\"p\"); format!(\"{}\", crate::sql::parser::f()); }
         mod tests { use super::super::write_exec::*; }",
    )
    .unwrap();
    let mut refs = Refs {
        here: vec!["sql".into(), "session".into()],
        reexports: &reexports,
        tops: &tops,
        found: BTreeSet::new(),
    };
    refs.visit_file(&file);
    let units: BTreeSet<String> = refs.found.iter().map(|m| unit(m)).collect();
    let want: BTreeSet<String> = [
        "wal",
        "sql::select_exec",
        "db",
        "sql::parser",
        "sql::write_exec",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(units, want);
    assert!(!allowed("memtable", "db"));
    assert!(allowed("sql::api", "sql::session"));
    assert!(!allowed("sql::session", "sql::api"));
    assert!(allowed("cli", "clip"));
}
