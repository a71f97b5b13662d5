//! The embedded query API on [`Database`]: `execute`, `query`, `prepare`, `session`.
//!
//! ```no_run
//! # fn main() -> mmdb::Result<()> {
//! let db = mmdb::Database::open("photos.mmdb")?;
//! db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT, emb VECTOR(3))", mmdb::params![])?;
//! db.execute("INSERT INTO t (title, emb) VALUES (?, ?)", mmdb::params!["a", vec![0.1f32, 0.2, 0.3]])?;
//! let rows = db.query("SELECT title, similarity(emb, $1) AS score FROM t ORDER BY score LIMIT 5",
//!                     mmdb::params![vec![0.1f32, 0.2, 0.3]])?;
//! for r in rows.iter() {
//!     let title: String = r.get("title")?;
//!     let score: f64 = r.get(1)?;
//!     println!("{title} {score}");
//! }
//! # Ok(()) }
//! ```

use crate::sql::binder::Params;
use crate::sql::parser::{ParsedStatement, parse_statement};
use crate::sql::planner::plan;
use crate::sql::rows::Rows;
use crate::sql::session::{Output, Session};
use crate::{Database, Error, Result, Value};

/// Builds the `&[Value]` parameter list of a statement: `params![1, "cat", vec![0.5f32, 0.5]]`.
#[macro_export]
macro_rules! params {
    () => { &[] as &[$crate::Value] };
    ($($x:expr),+ $(,)?) => { &[$($crate::Value::from($x)),+] as &[$crate::Value] };
}

impl Database {
    /// Runs one SQL statement with `params` bound to its `?` / `$n` placeholders and returns the
    /// number of rows it changed (the number of rows returned for a query). Relative image paths
    /// are resolved against the process's current directory. `SET` only lasts for the call: use
    /// [`Database::session`] to keep settings.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<usize> {
        self.session().execute(sql, params)
    }

    /// Runs one SQL statement that returns rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        self.session().query(sql, params)
    }

    /// Parses and checks a statement once for repeated runs.
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        Statement::new(self.session(), sql)
    }

    /// A session: keeps `SET ef_search` / `SET exact` across statements.
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }
}

impl Session {
    /// Parses and plans `sql` once, for repeated runs with different parameters (with this
    /// session's settings).
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        Statement::new(self.clone(), sql)
    }
}

/// A parsed statement, reusable with different parameters.
#[derive(Debug, Clone)]
pub struct Statement {
    session: Session,
    sql: String,
    parsed: ParsedStatement,
    param_count: usize,
}

impl Statement {
    pub(crate) fn new(session: Session, sql: &str) -> Result<Statement> {
        let parsed = parse_statement(sql)?;
        let mut params = Params::new(&parsed.sites);
        // Planning checks tables and columns now, as sqlite's prepare does.
        plan(&parsed.ast, session.database(), &mut params)?;
        let param_count = params.count;
        Ok(Statement {
            session,
            sql: sql.to_string(),
            parsed,
            param_count,
        })
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many parameters the statement takes.
    pub fn parameter_count(&self) -> usize {
        self.param_count
    }

    /// Runs it and returns the rows changed (or returned).
    pub fn execute(&mut self, params: &[Value]) -> Result<usize> {
        Ok(match self.run(params)? {
            Output::Rows(r) => r.len(),
            Output::Changed(n) => n,
            Output::Done => 0,
        })
    }

    /// Runs a statement that returns rows.
    pub fn query(&mut self, params: &[Value]) -> Result<Rows> {
        match self.run(params)? {
            Output::Rows(r) => Ok(r),
            _ => Err(Error::InvalidArgument(
                "query() ran a statement that returns no rows; use execute()".into(),
            )),
        }
    }

    /// Runs it.
    pub fn run(&mut self, params: &[Value]) -> Result<Output> {
        if params.len() != self.param_count {
            return Err(Error::InvalidArgument(format!(
                "the statement takes {} parameter(s), {} given",
                self.param_count,
                params.len()
            )));
        }
        self.session.run_parsed(&self.parsed, params, false)
    }
}
