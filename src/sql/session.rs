//! A session: a database handle plus the settings `SET` changes (`ef_search`, `exact`) and an
//! interrupt flag. It runs statements and scripts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sql::binder::Params;
use crate::sql::ddl::type_name;
use crate::sql::embedding::EmbedCtx;
use crate::sql::expr::{EvalCtx, Expr};
use crate::sql::parser::{ParsedStatement, parse_script, parse_statement};
use crate::sql::plan::{ImageSetting, Plan, SelectPlan, Setting};
use crate::sql::planner::{Catalog, plan};
use crate::sql::query_resolve::resolve_queries;
use crate::sql::rows::{ColumnInfo, Rows};
use crate::sql::select_exec::run_select;
use crate::sql::settings::Settings;
use crate::sql::write_exec::{run_delete, run_insert, run_update};
use crate::{ColumnType, Database, Error, Result, Row, RowFilter, RowId, TableSchema, Value};

/// What a statement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Rows (SELECT, SHOW TABLES, DESCRIBE, EXPLAIN).
    Rows(Rows),
    /// Rows inserted, updated or deleted.
    Changed(usize),
    /// A statement that returns nothing (CREATE, DROP, SET).
    Done,
}

/// A statement that failed inside a script: the line it starts on and the error.
#[derive(Debug)]
pub struct ScriptError {
    /// Line of the statement, 1-based.
    pub line: u64,
    /// The error.
    pub error: Error,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            // Syntax errors carry their own position.
            Error::SqlSyntax { .. } => write!(f, "{}", self.error),
            e => write!(f, "statement at line {}: {e}", self.line),
        }
    }
}

/// A database handle with session settings. Cheap to create; not shared between threads.
#[derive(Debug, Clone)]
pub struct Session {
    db: Database,
    settings: Settings,
    interrupt: Arc<AtomicBool>,
}

impl Catalog for Database {
    fn schema(&self, name: &str) -> Result<TableSchema> {
        self.table_schema(name)
    }
}

impl Session {
    /// A session on `db` with default settings.
    pub fn new(db: Database) -> Session {
        Session {
            settings: Settings {
                image_limits: db.image_limits(),
                ..Settings::default()
            },
            db,
            interrupt: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// A flag that, when set (e.g. from a Ctrl-C handler), makes the running statement stop with
    /// [`Error::Interrupted`]. It is cleared when the next statement starts.
    pub fn interrupt_handle(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// Makes `flag` the interrupt flag of this session (a shell keeps one flag across `.open`).
    pub fn set_interrupt_handle(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = flag;
    }

    /// Runs one statement and returns the number of rows changed (rows returned for a query).
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize> {
        Ok(match self.run(sql, params)? {
            Output::Rows(r) => r.len(),
            Output::Changed(n) => n,
            Output::Done => 0,
        })
    }

    /// Runs one statement that returns rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows> {
        match self.run(sql, params)? {
            Output::Rows(r) => Ok(r),
            _ => Err(Error::InvalidArgument(
                "query() ran a statement that returns no rows; use execute()".into(),
            )),
        }
    }

    /// Runs one statement.
    pub fn run(&mut self, sql: &str, params: &[Value]) -> Result<Output> {
        let stmt = parse_statement(sql)?;
        self.run_parsed(&stmt, params, true)
    }

    /// Runs every statement of `sql` in order, giving each output to `each` together with the
    /// statement's line; stops at the first error.
    pub fn run_script(
        &mut self,
        sql: &str,
        mut each: impl FnMut(u64, Output),
    ) -> std::result::Result<(), ScriptError> {
        let stmts = parse_script(sql).map_err(|error| ScriptError { line: 0, error })?;
        for s in stmts {
            let out = self
                .run_parsed(&s, &[], true)
                .map_err(|error| ScriptError {
                    line: s.line,
                    error,
                })?;
            each(s.line, out);
        }
        Ok(())
    }

    /// Plans and runs a parsed statement; `check_params` refuses a wrong parameter count.
    pub(crate) fn run_parsed(
        &mut self,
        stmt: &ParsedStatement,
        params: &[Value],
        check_params: bool,
    ) -> Result<Output> {
        self.interrupt.store(false, Ordering::Relaxed);
        let mut counter = Params::new(&stmt.sites);
        let p = plan(&stmt.ast, &self.db, &mut counter)?;
        if check_params && counter.count != params.len() {
            return Err(Error::InvalidArgument(format!(
                "the statement takes {} parameter(s), {} given",
                counter.count,
                params.len()
            )));
        }
        self.run_plan(&p, params)
    }

    fn run_plan(&mut self, p: &Plan, params: &[Value]) -> Result<Output> {
        let db = &self.db;
        // INSERT and UPDATE read the flag while they embed; they write nothing when it is set.
        let embed = EmbedCtx {
            limits: &self.settings.image_limits,
            interrupt: &self.interrupt,
        };
        Ok(match p {
            Plan::CreateTable {
                schema,
                if_not_exists,
            } => {
                match db.create_table_with_model(schema.clone()) {
                    Err(Error::TableExists(_)) if *if_not_exists => {}
                    other => other?,
                }
                Output::Done
            }
            Plan::DropTable { names, if_exists } => {
                for n in names {
                    match db.drop_table(n) {
                        Err(Error::NoSuchTable(_)) if *if_exists => {}
                        other => other?,
                    }
                }
                Output::Done
            }
            Plan::ShowTables => Output::Rows(Rows::new(
                vec![ColumnInfo {
                    name: "name".into(),
                    ty: Some(ColumnType::Text),
                }],
                db.table_names()
                    .into_iter()
                    .map(|n| vec![Value::Text(n)])
                    .collect(),
            )),
            Plan::Describe(t) => Output::Rows(describe(&db.table_schema(t)?)),
            Plan::Insert {
                schema,
                columns,
                rows,
            } => Output::Changed(run_insert(db, schema, columns, rows, params, &embed)?),
            Plan::Update {
                schema,
                assignments,
                filter,
                queries,
            } => Output::Changed(run_update(
                db,
                schema,
                assignments,
                filter.as_ref(),
                queries,
                params,
                &embed,
            )?),
            Plan::Delete {
                schema,
                filter,
                queries,
            } => Output::Changed(run_delete(
                db,
                schema,
                filter.as_ref(),
                queries,
                params,
                &self.settings.image_limits,
            )?),
            Plan::Select(s) => {
                Output::Rows(run_select(db, s, params, &self.settings, &self.interrupt)?)
            }
            Plan::Explain(inner) => {
                let text = match inner.as_ref() {
                    Plan::Select(s) => self.explain_select(s, params)?,
                    other => other.to_string(),
                };
                Output::Rows(Rows::new(
                    vec![ColumnInfo {
                        name: "plan".into(),
                        ty: Some(ColumnType::Text),
                    }],
                    text.lines()
                        .map(|l| vec![Value::Text(l.to_string())])
                        .collect(),
                ))
            }
            Plan::Set(Setting::EfSearch(ef)) => {
                self.settings.ef_search = *ef;
                Output::Done
            }
            Plan::Set(Setting::Exact(x)) => {
                self.settings.exact = *x;
                Output::Done
            }
            Plan::Set(Setting::Image(name, v)) => {
                let l = &mut self.settings.image_limits;
                let db_l = self.db.image_limits();
                match name {
                    ImageSetting::MaxBytes => l.max_bytes = v.unwrap_or(db_l.max_bytes),
                    ImageSetting::MaxPixels => l.max_pixels = v.unwrap_or(db_l.max_pixels),
                    ImageSetting::MaxDecodeBytes => {
                        l.max_decode_bytes = v.unwrap_or(db_l.max_decode_bytes)
                    }
                    ImageSetting::DecodeDeadlineMs => {
                        l.decode_deadline = match v {
                            None => db_l.decode_deadline,
                            Some(0) => None,
                            Some(ms) => Some(std::time::Duration::from_millis(*ms)),
                        }
                    }
                }
                Output::Done
            }
        })
    }

    /// The plan text with the storage engine's estimate for the search or scan.
    fn explain_select(&self, s: &SelectPlan, params: &[Value]) -> Result<String> {
        let counts = s.counts(params)?;
        let Some(schema) = &s.schema else {
            return Ok(s.render(None, Some(counts)));
        };
        let snap = self.db.snapshot(&schema.name)?;
        let storage = match &s.search {
            Some(vs) => {
                let queries = resolve_queries(
                    &self.db,
                    &snap,
                    s,
                    params,
                    true,
                    &self.settings.image_limits,
                )?;
                let ctx = EvalCtx {
                    params,
                    queries: &queries,
                    aggs: &[],
                };
                let keep = |id: RowId, row: &Row| {
                    s.filter
                        .as_ref()
                        .is_none_or(|f| f.eval_condition(id, row, &ctx).unwrap_or(false))
                };
                let filter_columns = s.filter.as_ref().map(Expr::columns);
                let filter = filter_columns
                    .as_deref()
                    .map(|c| (&keep as RowFilter<'_>, c));
                let query = queries.get(vs.query).ok_or_else(|| {
                    Error::Sql(format!("vector search query {} was not resolved", vs.query))
                })?;
                let req = self
                    .settings
                    .search_request(vs.column, query, counts.k(), filter);
                // The plan's own line already names the column and k.
                let p = snap.plan_search(&req);
                format!(
                    "path={} ef={} est_rows={} selectivity={:.3}",
                    p.path, p.ef, p.estimated_rows, p.estimated_selectivity
                )
            }
            None => format!("rows={}", snap.row_count()),
        };
        Ok(s.render(Some(&storage), Some(counts)))
    }
}

/// DESCRIBE output: one row per column.
fn describe(schema: &TableSchema) -> Rows {
    let text = |s: &str| Value::Text(s.to_string());
    let cols = ["column", "type", "nullable", "key", "metric", "dim"]
        .iter()
        .map(|n| ColumnInfo {
            name: n.to_string(),
            ty: Some(if *n == "nullable" {
                ColumnType::Boolean
            } else if *n == "dim" {
                ColumnType::Integer
            } else {
                ColumnType::Text
            }),
        })
        .collect();
    let rows = schema
        .columns
        .iter()
        .map(|c| {
            let pk = schema.primary_key.as_deref() == Some(&c.name);
            vec![
                text(&c.name),
                text(&type_name(c)),
                Value::Boolean(c.nullable && !pk),
                if pk { text("PRIMARY KEY") } else { Value::Null },
                if c.has_vector() {
                    text(c.metric.name())
                } else {
                    Value::Null
                },
                if c.has_vector() {
                    Value::Integer(c.dim as i64)
                } else {
                    Value::Null
                },
            ]
        })
        .collect();
    Rows::new(cols, rows)
}
