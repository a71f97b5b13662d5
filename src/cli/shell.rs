//! The shell's core, shared by the interactive REPL, `-c` and piped scripts: runs SQL and
//! dot-commands, prints results in the current mode, keeps the session settings.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::ScriptError;
use crate::cli::render::{Mode, render};
use crate::sql::StatementScanner;
use crate::{Database, Error, Output, Session};

/// What the caller should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// `.quit` was given.
    Quit,
}

/// Help text for `.help`.
pub const HELP: &str = "\
SQL statements end with ';' and may span lines. Dot-commands:
  .help                   this text
  .tables                 list tables
  .schema [TABLE]         CREATE statements of all tables or one
  .timer on|off           print how long each statement took
  .mode table|csv|json|line   result format
  .read FILE              run the SQL script in FILE
  .checkpoint             write recent rows to segments now (also done on exit)
  .compact [TABLE]        merge a table's segments, dropping deleted rows (all tables if none)
  .open PATH              close this database and open (or create) PATH
  .quit                   exit (also Ctrl-D)
Ctrl-C cancels the current input or the running statement (an interrupted write writes nothing).
Example: SELECT * FROM photos ORDER BY similarity(image, 'a cute cat') LIMIT 10;";

/// A shell session writing to `out`.
pub struct Shell<W: Write> {
    session: Session,
    interrupt: Arc<AtomicBool>,
    /// Result format.
    pub mode: Mode,
    /// Print timings.
    pub timer: bool,
    /// Print "N rows changed" / "OK" after statements without rows (interactive use).
    pub chatty: bool,
    out: W,
    /// The maintenance failure last warned about (each new one is printed once).
    warned_maintenance: Option<String>,
}

impl<W: Write> Shell<W> {
    /// A shell on `db`, printing to `out`.
    pub fn new(db: Database, out: W) -> Shell<W> {
        let session = db.session();
        let interrupt = session.interrupt_handle();
        Shell {
            session,
            interrupt,
            mode: Mode::Table,
            timer: false,
            chatty: false,
            out,
            warned_maintenance: None,
        }
        .warn_at_open()
    }

    /// Warns (on stderr) about what recovery dropped when the database opened.
    fn warn_at_open(self) -> Self {
        if let Some(torn) = self.database().health().torn_tail {
            eprintln!("warning: {torn}");
        }
        self
    }

    /// Warns (on stderr) when a background flush or compaction starts failing, or writes are
    /// refused after an I/O error.
    fn warn_health(&mut self) {
        let h = self.database().health();
        if h.maintenance_error != self.warned_maintenance {
            if let Some(e) = &h.maintenance_error {
                eprintln!(
                    "warning: background flush failed; committed rows are safe in the WAL and it \
                     will be retried: {e}"
                );
            }
            self.warned_maintenance = h.maintenance_error;
        }
    }

    /// The flag a Ctrl-C handler sets to stop the running statement.
    pub fn interrupt_handle(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// The database.
    pub fn database(&self) -> &Database {
        self.session.database()
    }

    /// Runs a script: SQL statements and dot-commands (a dot-command is a line starting with `.`
    /// outside a statement). Stops at the first error, which names the statement's line.
    pub fn run_script(&mut self, text: &str, first_line: u64) -> Result<Flow, ScriptError> {
        let mut buf = String::new();
        // Fed each line once, so a long statement is not re-read from its start on every line.
        let mut scanner = StatementScanner::default();
        let mut start = 0u64;
        for (i, line) in text.lines().enumerate() {
            let n = first_line + i as u64;
            if buf.trim().is_empty() && line.trim_start().starts_with('.') {
                buf.clear();
                let flow = self
                    .dot(line.trim())
                    .map_err(|error| ScriptError { line: n, error })?;
                if flow == Flow::Quit {
                    return Ok(Flow::Quit);
                }
                continue;
            }
            if buf.trim().is_empty() {
                buf.clear();
                scanner = StatementScanner::default();
                start = n;
            }
            buf.push_str(line);
            buf.push('\n');
            scanner.push(line);
            scanner.push("\n");
            if scanner.is_complete() {
                self.run_sql(&buf, start)?;
                buf.clear();
                scanner = StatementScanner::default();
            }
        }
        if !buf.trim().is_empty() {
            self.run_sql(&buf, start)?;
        }
        Ok(Flow::Continue)
    }

    /// Runs the SQL statements in `sql`, which starts at line `first_line` of its script.
    pub fn run_sql(&mut self, sql: &str, first_line: u64) -> Result<(), ScriptError> {
        let mut failed = None;
        let offset = first_line.saturating_sub(1);
        let mut outputs = Vec::new();
        let started = Instant::now();
        let res = {
            let session = &mut self.session;
            session.run_script(sql, |line, out| {
                outputs.push((line, out, started.elapsed()))
            })
        };
        if let Err(mut e) = res {
            e.line += offset;
            if let Error::SqlSyntax { line, .. } = &mut e.error {
                *line += offset;
            }
            failed = Some(e);
        }
        let mut last = std::time::Duration::ZERO;
        for (_, out, at) in outputs {
            let took = at - last;
            last = at;
            self.print_output(out, took);
        }
        self.warn_health();
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn print_output(&mut self, out: Output, took: std::time::Duration) {
        let text = match out {
            Output::Rows(rows) => render(&rows, self.mode),
            Output::Changed(n) if self.chatty => {
                format!("{n} row{} changed\n", if n == 1 { "" } else { "s" })
            }
            Output::Done if self.chatty => "OK\n".into(),
            _ => String::new(),
        };
        let _ = self.out.write_all(text.as_bytes());
        if self.timer {
            let _ = writeln!(self.out, "Run Time: {:.3} ms", took.as_secs_f64() * 1e3);
        }
        let _ = self.out.flush();
    }

    /// Runs one dot-command line.
    pub fn dot(&mut self, line: &str) -> Result<Flow, Error> {
        let mut parts = line.split_whitespace();
        let cmd = parts.next().unwrap_or("");
        let args: Vec<&str> = parts.collect();
        let arg = |i: usize| args.get(i).copied();
        let usage = |u: &str| Error::InvalidArgument(format!("usage: {u}"));
        match cmd {
            ".help" => self.print(&format!("{HELP}\n")),
            ".quit" | ".exit" => return Ok(Flow::Quit),
            ".tables" => {
                let names = self.database().table_names();
                let text = if names.is_empty() {
                    String::new()
                } else {
                    names.join("\n") + "\n"
                };
                self.print(&text);
            }
            ".schema" => {
                let names = match arg(0) {
                    Some(t) => vec![self.database().table_schema(t)?.name],
                    None => self.database().table_names(),
                };
                let mut text = String::new();
                for n in names {
                    text.push_str(&self.database().table_schema(&n)?.create_sql());
                    text.push('\n');
                }
                self.print(&text);
            }
            ".timer" => match arg(0) {
                Some("on") => self.timer = true,
                Some("off") => self.timer = false,
                _ => return Err(usage(".timer on|off")),
            },
            ".mode" => match arg(0).and_then(Mode::parse) {
                Some(m) => self.mode = m,
                None => return Err(usage(".mode table|csv|json|line")),
            },
            ".read" => {
                let Some(path) = arg(0) else {
                    return Err(usage(".read FILE"));
                };
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                let flow = self.run_script(&text, 1).map_err(|e| match e.error {
                    Error::SqlSyntax { .. } => Error::Sql(format!("{path}: {e}")),
                    // Not "SQL error: f: ...: SQL error: ..." twice.
                    Error::Sql(m) => {
                        Error::Sql(format!("{path}: statement at line {}: {m}", e.line))
                    }
                    other => Error::Sql(format!("{path}: statement at line {}: {other}", e.line)),
                })?;
                return Ok(flow);
            }
            ".checkpoint" => self.database().checkpoint()?,
            ".compact" => {
                let names = match arg(0) {
                    Some(t) => vec![t.to_string()],
                    None => self.database().table_names(),
                };
                for n in names {
                    self.database().compact(&n)?;
                }
            }
            ".open" => {
                let Some(path) = arg(0) else {
                    return Err(usage(".open PATH"));
                };
                self.open(Path::new(path))?;
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown command {other}: enter .help for the list"
                )));
            }
        }
        Ok(Flow::Continue)
    }

    /// Replaces the database with the one at `path` (created if missing). Settings reset.
    pub fn open(&mut self, path: &Path) -> Result<(), Error> {
        // Reopening this very database (what an I/O error asks for): release its lock first.
        // Its close writes nothing after such an error, and always releases the lock.
        if path
            .canonicalize()
            .is_ok_and(|p| p == self.database().path())
            && let Err(e) = self.database().clone().close()
        {
            eprintln!(
                "warning: closing {} before reopening it: {e}",
                path.display()
            );
        }
        let db = Database::open(path)?;
        if let Some(torn) = db.health().torn_tail {
            eprintln!("warning: {torn}");
        }
        self.warned_maintenance = None;
        let old = std::mem::replace(&mut self.session, db.session());
        // Keep the same interrupt flag, so an installed Ctrl-C handler still reaches queries.
        self.session.set_interrupt_handle(self.interrupt.clone());
        // Like leaving the shell: the old database's recent rows go to a segment.
        old.database().clone().close()
    }

    /// Closes the database cleanly (memtable flushed to a segment, WAL synced), as a shell does
    /// on exit; a database that is only dropped replays its whole WAL on every open.
    pub fn close(self) -> Result<(), Error> {
        self.session.database().clone().close()
    }

    fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }
}

/// A fresh temporary database directory for `mmdb` without a path.
pub fn temp_db_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("mmdb-{}-{nanos}", std::process::id()))
}
