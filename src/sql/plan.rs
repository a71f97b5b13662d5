//! Logical plans: what the planner produces and the executor runs. `Display` renders the plan
//! tree that `EXPLAIN` prints (tests compare it as text).

use std::fmt;

use crate::sql::expr::{EvalCtx, Expr};
use crate::sql::query_vec::{QueryArg, SimKind};
use crate::sql::value_fmt::sql_literal;
use crate::{Error, Metric, Result, Row, TableSchema, Value};

/// A planned statement.
#[derive(Debug, Clone)]
pub enum Plan {
    /// CREATE TABLE.
    CreateTable {
        /// The new table.
        schema: TableSchema,
        /// IF NOT EXISTS.
        if_not_exists: bool,
    },
    /// DROP TABLE.
    DropTable {
        /// Table names.
        names: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// SHOW TABLES.
    ShowTables,
    /// DESCRIBE t.
    Describe(String),
    /// INSERT INTO t [(cols)] VALUES ...
    Insert {
        /// The table.
        schema: TableSchema,
        /// Target column of each value position.
        columns: Vec<usize>,
        /// The rows, one expression per target column.
        rows: Vec<Vec<Expr>>,
    },
    /// UPDATE t SET ... [WHERE ...]
    Update {
        /// The table.
        schema: TableSchema,
        /// Column index and new value.
        assignments: Vec<(usize, Expr)>,
        /// Rows to change.
        filter: Option<Expr>,
        /// Query vectors used by the expressions.
        queries: Vec<QueryArg>,
    },
    /// DELETE FROM t [WHERE ...]
    Delete {
        /// The table.
        schema: TableSchema,
        /// Rows to delete.
        filter: Option<Expr>,
        /// Query vectors used by the filter.
        queries: Vec<QueryArg>,
    },
    /// SELECT.
    Select(Box<SelectPlan>),
    /// EXPLAIN of a plan.
    Explain(Box<Plan>),
    /// SET name = value.
    Set(Setting),
}

/// A session setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `SET ef_search = N` (`DEFAULT`: the table's own).
    EfSearch(Option<usize>),
    /// `SET exact = true|false`.
    Exact(bool),
    /// `SET max_image_bytes | max_image_pixels | max_image_decode_bytes |
    /// image_decode_deadline_ms = N` (`None`: `DEFAULT`, the database's limit).
    Image(ImageSetting, Option<u64>),
}

/// Which image limit a `SET` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSetting {
    /// `max_image_bytes`.
    MaxBytes,
    /// `max_image_pixels`.
    MaxPixels,
    /// `max_image_decode_bytes`.
    MaxDecodeBytes,
    /// `image_decode_deadline_ms` (0: no deadline).
    DecodeDeadlineMs,
}

/// A SELECT over at most one table.
#[derive(Debug, Clone)]
pub struct SelectPlan {
    /// The table, `None` for `SELECT` without `FROM`.
    pub schema: Option<TableSchema>,
    /// WHERE.
    pub filter: Option<Expr>,
    /// Query arguments of every similarity()/distance() in the statement, by index.
    pub queries: Vec<QueryArg>,
    /// Set when `ORDER BY similarity(...) [DESC] LIMIT k` (or `distance ASC`) can be answered by
    /// the storage engine's top-k search.
    pub search: Option<VectorSearch>,
    /// Output expressions and their names.
    pub projection: Vec<(Expr, String)>,
    /// Aggregates (non-empty: the query returns one row).
    pub aggregates: Vec<Aggregate>,
    /// ORDER BY keys: expression and descending flag.
    pub order_by: Vec<(Expr, bool)>,
    /// LIMIT.
    pub limit: Option<Count>,
    /// OFFSET (`Fixed(0)` when absent).
    pub offset: Count,
}

/// A LIMIT or OFFSET count.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    /// A number written in the SQL (or a constant expression of numbers).
    Fixed(usize),
    /// An expression of parameters (`?`, `$2`), read each time the statement runs.
    Param(Expr),
}

impl Count {
    /// The count, reading parameters from `params`; `what` is `LIMIT` or `OFFSET`.
    pub fn value(&self, params: &[Value], what: &str) -> Result<usize> {
        match self {
            Count::Fixed(n) => Ok(*n),
            Count::Param(e) => {
                let ctx = EvalCtx {
                    params,
                    queries: &[],
                    aggs: &[],
                };
                match e.eval(0, &Row::default(), &ctx)? {
                    Value::Integer(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
                    v => Err(Error::InvalidArgument(format!(
                        "{what} {e} must be a non-negative integer, got {}",
                        sql_literal(&v)
                    ))),
                }
            }
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Fixed(n) => write!(f, "{n}"),
            Count::Param(e) => write!(f, "{e}"),
        }
    }
}

/// LIMIT and OFFSET of a run, parameters read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// LIMIT.
    pub limit: Option<usize>,
    /// OFFSET.
    pub offset: usize,
}

impl Counts {
    /// How many rows a top-k search must find: LIMIT + OFFSET.
    pub fn k(&self) -> usize {
        self.limit.unwrap_or(usize::MAX).saturating_add(self.offset)
    }
}

/// A top-k search on a vector column.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSearch {
    /// Column index.
    pub column: usize,
    /// Column name.
    pub name: String,
    /// Its metric.
    pub metric: Metric,
    /// Index of the query in [`SelectPlan::queries`]. It finds LIMIT + OFFSET rows
    /// ([`Counts::k`]).
    pub query: usize,
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// count(*) or count(e) (non-NULL values).
    Count,
    /// sum(e)
    Sum,
    /// avg(e)
    Avg,
    /// min(e)
    Min,
    /// max(e)
    Max,
}

/// One aggregate of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub func: AggFunc,
    /// Its argument, `None` for `count(*)`.
    pub arg: Option<Expr>,
}

impl SelectPlan {
    /// LIMIT and OFFSET for a run with `params`.
    pub fn counts(&self, params: &[Value]) -> Result<Counts> {
        Ok(Counts {
            limit: self
                .limit
                .as_ref()
                .map(|l| l.value(params, "LIMIT"))
                .transpose()?,
            offset: self.offset.value(params, "OFFSET")?,
        })
    }

    /// Renders the plan; `storage` is the storage engine's line for the vector search or scan
    /// (path, ef, estimated rows) when known, `counts` the LIMIT and OFFSET of a run (else
    /// parameters show as `$n`).
    pub fn render(&self, storage: Option<&str>, counts: Option<Counts>) -> String {
        let (limit, offset, k) = match counts {
            Some(c) => (
                c.limit.map(|l| l.to_string()),
                c.offset.to_string(),
                c.k().to_string(),
            ),
            None => {
                let limit = self.limit.as_ref().map(Count::to_string);
                let k = match (&limit, &self.offset) {
                    (Some(l), Count::Fixed(0)) => l.clone(),
                    (Some(l), o) => format!("{l}+{o}"),
                    (None, _) => "none".into(),
                };
                (limit, self.offset.to_string(), k)
            }
        };
        let mut lines = Vec::new();
        if self.limit.is_some() || self.offset != Count::Fixed(0) {
            let limit = limit.unwrap_or_else(|| "none".into());
            lines.push(format!("Limit: limit={limit} offset={offset}"));
        }
        let names: Vec<String> = self
            .projection
            .iter()
            .map(|(e, n)| {
                let text = e.to_string();
                if &text == n {
                    text
                } else {
                    format!("{text} AS {n}")
                }
            })
            .collect();
        lines.push(format!("Projection: {}", names.join(", ")));
        if !self.aggregates.is_empty() {
            let aggs: Vec<String> = self.aggregates.iter().map(|a| a.to_string()).collect();
            lines.push(format!("Aggregate: {}", aggs.join(", ")));
        }
        // A vector search returns rows best first: no separate sort.
        if !self.order_by.is_empty() && self.search.is_none() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|(e, desc)| format!("{e} {}", if *desc { "DESC" } else { "ASC" }))
                .collect();
            lines.push(format!("Sort: {}", keys.join(", ")));
        }
        let filter = self
            .filter
            .as_ref()
            .map(|f| format!(" filter=({f})"))
            .unwrap_or_default();
        match (&self.schema, &self.search) {
            (None, _) => lines.push("Values: one row".into()),
            (Some(s), Some(v)) => {
                // The planner takes `v.query` from a similarity() bound into `self.queries`; a
                // plan built otherwise still renders.
                let q = self
                    .queries
                    .get(v.query)
                    .map_or_else(|| format!("<missing query {}>", v.query), |q| q.to_string());
                let mut line = format!(
                    "VectorSearch: table={} column={} metric={} query={q} k={k}{filter}",
                    s.name,
                    v.name,
                    v.metric.name(),
                );
                if let Some(st) = storage {
                    line.push_str(&format!(" [{st}]"));
                }
                lines.push(line);
            }
            (Some(s), None) => {
                let mut line = format!("Scan: table={}{filter}", s.name);
                if let Some(st) = storage {
                    line.push_str(&format!(" [{st}]"));
                }
                lines.push(line);
            }
        }
        let mut out = String::new();
        for (depth, l) in lines.iter().enumerate() {
            out.push_str(&"  ".repeat(depth));
            out.push_str(l);
            out.push('\n');
        }
        out.pop();
        out
    }

    /// Whether the first ORDER BY key is a similarity or distance in its "closest first" direction.
    pub fn similarity_order(&self) -> Option<(usize, usize, SimKind)> {
        match self.order_by.first()? {
            (
                Expr::Similarity {
                    column,
                    query,
                    kind,
                    ..
                },
                desc,
            ) if (*kind == SimKind::Similarity) == *desc => Some((*column, *query, *kind)),
            _ => None,
        }
    }
}

impl fmt::Display for AggFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
        })
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            None => write!(f, "{}(*)", self.func),
            Some(e) => write!(f, "{}({e})", self.func),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::CreateTable { schema, .. } => write!(f, "CreateTable: {}", schema.name),
            Plan::DropTable { names, .. } => write!(f, "DropTable: {}", names.join(", ")),
            Plan::ShowTables => f.write_str("ShowTables"),
            Plan::Describe(t) => write!(f, "Describe: {t}"),
            Plan::Insert { schema, rows, .. } => {
                write!(f, "Insert: table={} rows={}", schema.name, rows.len())
            }
            Plan::Update {
                schema,
                assignments,
                filter,
                ..
            } => {
                let sets: Vec<String> = assignments
                    .iter()
                    .map(|(i, e)| match schema.columns.get(*i) {
                        Some(c) => format!("{} = {e}", c.name),
                        None => format!("<missing column {i}> = {e}"),
                    })
                    .collect();
                write!(f, "Update: table={} set {}", schema.name, sets.join(", "))?;
                match filter {
                    Some(e) => write!(f, " filter=({e})"),
                    None => Ok(()),
                }
            }
            Plan::Delete { schema, filter, .. } => {
                write!(f, "Delete: table={}", schema.name)?;
                match filter {
                    Some(e) => write!(f, " filter=({e})"),
                    None => Ok(()),
                }
            }
            Plan::Select(s) => f.write_str(&s.render(None, None)),
            Plan::Explain(p) => write!(f, "Explain\n{p}"),
            Plan::Set(s) => write!(f, "Set: {s:?}"),
        }
    }
}
