//! The interactive REPL (rustyline): history file, multi-line input until `;`, completion of
//! keywords, dot-commands and table names, Ctrl-C to cancel, Ctrl-D to exit.

use std::borrow::Cow;
use std::io::Stdout;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::cli::shell::{Flow, Shell};
use crate::sql::StatementScanner;

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "ORDER",
    "BY",
    "LIMIT",
    "OFFSET",
    "ASC",
    "DESC",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "LIKE",
    "IS",
    "NULL",
    "AS",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "CREATE",
    "TABLE",
    "IF",
    "EXISTS",
    "DROP",
    "SHOW",
    "TABLES",
    "DESCRIBE",
    "EXPLAIN",
    "WITH",
    "PRIMARY",
    "KEY",
    "INTEGER",
    "REAL",
    "TEXT",
    "EMBEDDED_TEXT",
    "BOOLEAN",
    "BLOB",
    "IMAGE",
    "VECTOR",
    "TRUE",
    "FALSE",
    "similarity",
    "distance",
    "image",
    "row",
    "count",
    "min",
    "max",
    "avg",
    "sum",
    "ef_search",
    "exact",
];

const DOT_COMMANDS: &[&str] = &[
    ".help",
    ".tables",
    ".schema",
    ".timer",
    ".mode",
    ".read",
    ".checkpoint",
    ".compact",
    ".open",
    ".quit",
];

/// Completion and multi-line validation.
struct ShellHelper {
    tables: Arc<Mutex<Vec<String>>>,
    /// The input the validator last read and the scanner's state after it. Rustyline hands the
    /// validator the whole input on every Enter; when that input extends the last one (lines
    /// typed or pasted one by one) only the new part is read.
    scanned: Mutex<(String, StatementScanner)>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let lower = word.to_ascii_lowercase();
        let mut out: Vec<Pair> = Vec::new();
        let mut add = |cand: &str, upper: bool| {
            if cand.to_ascii_lowercase().starts_with(&lower) {
                // Keep the user's case for keywords typed in lower case.
                let text = if upper && word.chars().next().is_some_and(|c| c.is_lowercase()) {
                    cand.to_ascii_lowercase()
                } else {
                    cand.to_string()
                };
                out.push(Pair {
                    display: text.clone(),
                    replacement: text,
                });
            }
        };
        if start == 0 && word.starts_with('.') {
            DOT_COMMANDS.iter().for_each(|c| add(c, false));
        } else {
            self.tables.lock().iter().for_each(|t| add(t, false));
            KEYWORDS.iter().for_each(|k| add(k, true));
        }
        Ok((start, out))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let t = input.trim();
        if t.is_empty() || t.starts_with('.') {
            return Ok(ValidationResult::Valid(None));
        }
        let mut scanned = self.scanned.lock();
        let (text, scanner) = &mut *scanned;
        let rest = match input.strip_prefix(text.as_str()) {
            Some(rest) => rest,
            None => {
                text.clear();
                *scanner = StatementScanner::default();
                input
            }
        };
        scanner.push(rest);
        text.push_str(rest);
        if scanner.is_complete() {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for ShellHelper {}

/// Where the history is kept: `$MMDB_HISTORY`, else `~/.mmdb_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MMDB_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".mmdb_history"))
}

/// Runs the interactive loop until `.quit` or Ctrl-D.
pub fn run(shell: &mut Shell<Stdout>) -> crate::Result<()> {
    let tables = Arc::new(Mutex::new(shell.database().table_names()));
    let mut ed: Editor<ShellHelper, DefaultHistory> = Editor::new()
        .map_err(|e| crate::Error::InvalidArgument(format!("cannot start the line editor: {e}")))?;
    ed.set_helper(Some(ShellHelper {
        tables: tables.clone(),
        scanned: Mutex::new((String::new(), StatementScanner::default())),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = ed.load_history(h);
    }
    // Ctrl-C while a statement runs stops it; at the prompt rustyline reports it instead.
    let flag = shell.interrupt_handle();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    shell.chatty = true;
    loop {
        match ed.readline("mmdb> ") {
            Ok(input) => {
                if input.trim().is_empty() {
                    continue;
                }
                let _ = ed.add_history_entry(input.as_str());
                match shell.run_script(&input, 1) {
                    Ok(Flow::Quit) => break,
                    Ok(Flow::Continue) => {}
                    Err(e) => eprintln!("Error: {}", e.error),
                }
                *tables.lock() = shell.database().table_names();
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = ed.save_history(h);
    }
    Ok(())
}
