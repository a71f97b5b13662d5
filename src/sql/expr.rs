//! Bound expressions (names resolved to column indexes) and their evaluation on one row.
//!
//! NULL follows SQL's three-valued logic: comparisons with NULL are NULL and `WHERE` keeps a row
//! only when its condition is true.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use crate::sql::query_vec::{QueryArg, SimKind, score};
use crate::sql::value_fmt::{sql_literal, widen_f32};
use crate::{ColumnType, Error, ImageSource, Metric, Result, Row, RowId, Value};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `||`
    Concat,
    /// `=`
    Eq,
    /// `<>` / `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Concat => "||",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        }
    }
}

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `lower(text)`
    Lower,
    /// `upper(text)`
    Upper,
    /// `length(text | blob | vector)`
    Length,
    /// `abs(number)`
    Abs,
    /// `round(number [, digits])`
    Round,
    /// `coalesce(a, b, ...)`
    Coalesce,
}

impl Func {
    /// The function of that (lower-case) name.
    pub fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            "length" => Func::Length,
            "abs" => Func::Abs,
            "round" => Func::Round,
            "coalesce" => Func::Coalesce,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Length => "length",
            Func::Abs => "abs",
            Func::Round => "round",
            Func::Coalesce => "coalesce",
        }
    }
}

/// A bound expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Literal(Value),
    /// Column `index` of the table, with its name for display.
    Column(usize, String),
    /// The row id (`rowid`).
    RowId,
    /// Parameter `n` (0-based).
    Param(usize),
    /// A vector literal `[a, b, ...]`.
    Vector(Vec<Expr>),
    /// `NOT e`
    Not(Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e IS [NOT] NULL` (the flag is `NOT`).
    IsNull(Box<Expr>, bool),
    /// `e [NOT] IN (list)`
    InList(Box<Expr>, Vec<Expr>, bool),
    /// `e [NOT] BETWEEN low AND high`
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    /// `e [NOT] LIKE pattern` (ASCII case-insensitive, as in SQLite).
    Like(Box<Expr>, Box<Expr>, bool),
    /// `similarity(col, q)` / `distance(col, q)`: query vector `query` of the plan.
    Similarity {
        /// Column index.
        column: usize,
        /// Column name, for display.
        name: String,
        /// Metric of the column.
        metric: Metric,
        /// Index of the query in the plan's query list.
        query: usize,
        /// Display form of the query argument.
        arg: QueryArg,
        /// similarity or distance.
        kind: SimKind,
    },
    /// A scalar function call.
    Func(Func, Vec<Expr>),
    /// The result of aggregate `n` of the plan (only in projections of aggregate queries).
    Agg(usize, String),
}

/// What an expression reads besides the row.
pub struct EvalCtx<'a> {
    /// Bound parameter values.
    pub params: &'a [Value],
    /// Resolved query vectors, by index.
    pub queries: &'a [Vec<f32>],
    /// Aggregate results, by index.
    pub aggs: &'a [Value],
}

impl EvalCtx<'_> {
    /// A context without parameters, queries or aggregates (for constants).
    pub const EMPTY: EvalCtx<'static> = EvalCtx {
        params: &[],
        queries: &[],
        aggs: &[],
    };
}

impl Expr {
    /// Evaluates the expression on row `id`.
    pub fn eval(&self, id: RowId, row: &Row, ctx: &EvalCtx<'_>) -> Result<Value> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Column(i, _) => row.values.get(*i).cloned().unwrap_or(Value::Null),
            Expr::RowId => Value::Integer(id as i64),
            Expr::Param(n) => ctx.params.get(*n).cloned().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "parameter {} is not bound ({} given)",
                    n + 1,
                    ctx.params.len()
                ))
            })?,
            Expr::Vector(items) => {
                let mut v = Vec::with_capacity(items.len());
                for e in items {
                    v.push(match e.eval(id, row, ctx)? {
                        Value::Integer(i) => i as f32,
                        Value::Real(r) => r as f32,
                        other => {
                            return Err(Error::Sql(format!(
                                "vector elements must be numbers, got {}",
                                sql_literal(&other)
                            )));
                        }
                    });
                }
                Value::Vector(v)
            }
            Expr::Not(e) => match truth(&e.eval(id, row, ctx)?)? {
                Some(b) => Value::Boolean(!b),
                None => Value::Null,
            },
            Expr::Neg(e) => match e.eval(id, row, ctx)? {
                Value::Integer(i) => Value::Integer(i.checked_neg().ok_or_else(overflow)?),
                Value::Real(r) => Value::Real(-r),
                Value::Null => Value::Null,
                other => return Err(Error::Sql(format!("cannot negate {}", sql_literal(&other)))),
            },
            Expr::Binary(op, a, b) => binary(*op, a, b, id, row, ctx)?,
            Expr::IsNull(e, not) => Value::Boolean(e.operand(id, row, ctx)?.is_null() != *not),
            Expr::InList(e, list, not) => {
                let v = e.operand(id, row, ctx)?;
                let v = v.as_ref();
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let w = item.operand(id, row, ctx)?;
                    match compare(v, &w)? {
                        Some(Ordering::Equal) => return Ok(Value::Boolean(!*not)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Boolean(*not)
                }
            }
            Expr::Between(e, lo, hi, not) => {
                let v = e.operand(id, row, ctx)?;
                let ge =
                    compare(&v, lo.operand(id, row, ctx)?.as_ref())?.map(|o| o != Ordering::Less);
                let le = compare(&v, hi.operand(id, row, ctx)?.as_ref())?
                    .map(|o| o != Ordering::Greater);
                match and3(ge, le) {
                    Some(b) => Value::Boolean(b != *not),
                    None => Value::Null,
                }
            }
            Expr::Like(e, p, not) => match (e.eval(id, row, ctx)?, p.eval(id, row, ctx)?) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (Value::Text(s) | Value::Image(ImageSource::Path(s)), Value::Text(p)) => {
                    Value::Boolean(like(&s, &p) != *not)
                }
                (a, b) => {
                    return Err(Error::Sql(format!(
                        "LIKE needs text, got {} LIKE {}",
                        sql_literal(&a),
                        sql_literal(&b)
                    )));
                }
            },
            Expr::Similarity {
                column,
                metric,
                query,
                kind,
                ..
            } => {
                let Some(v) = row.vector(*column) else {
                    return Ok(Value::Null);
                };
                let q = ctx
                    .queries
                    .get(*query)
                    .ok_or_else(|| Error::Sql("similarity query vector was not resolved".into()))?;
                if q.len() != v.len() {
                    return Err(Error::Sql(format!(
                        "similarity: query vector has {} dimensions, column has {}",
                        q.len(),
                        v.len()
                    )));
                }
                Value::Real(widen_f32(score(*metric, *kind, v, q)))
            }
            Expr::Func(f, args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(id, row, ctx))
                    .collect::<Result<Vec<_>>>()?;
                call(*f, vals)?
            }
            Expr::Agg(n, _) => ctx.aggs.get(*n).cloned().unwrap_or(Value::Null),
        })
    }

    /// Like [`eval`](Self::eval) but borrows columns and literals instead of cloning them: the
    /// filter of a search runs on every candidate row, so comparisons should not allocate.
    fn operand<'r>(&'r self, id: RowId, row: &'r Row, ctx: &EvalCtx<'_>) -> Result<Cow<'r, Value>> {
        Ok(match self {
            Expr::Literal(v) => Cow::Borrowed(v),
            Expr::Column(i, _) => row
                .values
                .get(*i)
                .map_or(Cow::Owned(Value::Null), Cow::Borrowed),
            other => Cow::Owned(other.eval(id, row, ctx)?),
        })
    }

    /// Evaluates a condition: true only when the value is TRUE (NULL and FALSE drop the row).
    pub fn eval_condition(&self, id: RowId, row: &Row, ctx: &EvalCtx<'_>) -> Result<bool> {
        Ok(truth(&self.eval(id, row, ctx)?)?.unwrap_or(false))
    }

    /// The static type of the expression, when known.
    pub fn ty(&self, columns: &[crate::Column]) -> Option<ColumnType> {
        match self {
            Expr::Literal(v) => v.column_type(),
            Expr::Column(i, _) => columns.get(*i).map(|c| c.ty),
            Expr::RowId => Some(ColumnType::Integer),
            Expr::Param(_) | Expr::Agg(..) => None,
            Expr::Vector(v) => Some(ColumnType::Vector(v.len() as u32)),
            Expr::Not(_)
            | Expr::IsNull(..)
            | Expr::InList(..)
            | Expr::Between(..)
            | Expr::Like(..) => Some(ColumnType::Boolean),
            Expr::Neg(e) => e.ty(columns),
            Expr::Binary(op, a, b) => match op {
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                    match (a.ty(columns), b.ty(columns)) {
                        (Some(ColumnType::Integer), Some(ColumnType::Integer)) => {
                            Some(ColumnType::Integer)
                        }
                        _ => Some(ColumnType::Real),
                    }
                }
                BinOp::Concat => Some(ColumnType::Text),
                _ => Some(ColumnType::Boolean),
            },
            Expr::Similarity { .. } => Some(ColumnType::Real),
            Expr::Func(f, args) => match f {
                Func::Lower | Func::Upper => Some(ColumnType::Text),
                Func::Length => Some(ColumnType::Integer),
                Func::Abs => args.first().and_then(|a| a.ty(columns)),
                Func::Round => Some(ColumnType::Real),
                Func::Coalesce => args.iter().find_map(|a| a.ty(columns)),
            },
        }
    }

    /// Whether the expression reads the row (columns, row id or similarity).
    pub fn reads_row(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            found |= matches!(e, Expr::Column(..) | Expr::RowId | Expr::Similarity { .. })
        });
        found
    }

    /// Whether the expression reads a parameter.
    pub fn reads_params(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Param(_)));
        found
    }

    /// The table columns this expression reads (values, vectors or embeddings), ascending.
    pub fn columns(&self) -> Vec<usize> {
        let mut cols = Vec::new();
        self.walk(&mut |e| match e {
            Expr::Column(c, _) | Expr::Similarity { column: c, .. } => cols.push(*c),
            _ => {}
        });
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// Calls `f` on this expression and every sub-expression.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Vector(v) | Expr::Func(_, v) => v.iter().for_each(|e| e.walk(f)),
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) => e.walk(f),
            Expr::Binary(_, a, b) | Expr::Like(a, b, _) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::InList(e, l, _) => {
                e.walk(f);
                l.iter().for_each(|x| x.walk(f));
            }
            Expr::Between(a, b, c, _) => {
                a.walk(f);
                b.walk(f);
                c.walk(f);
            }
            _ => {}
        }
    }
}

fn overflow() -> Error {
    Error::Sql("integer overflow".into())
}

/// SQL truth of a value: NULL is unknown; only booleans (and integers, as in SQLite) have one.
fn truth(v: &Value) -> Result<Option<bool>> {
    match v {
        Value::Null => Ok(None),
        Value::Boolean(b) => Ok(Some(*b)),
        Value::Integer(i) => Ok(Some(*i != 0)),
        other => Err(Error::Sql(format!(
            "expected a boolean condition, got {}",
            sql_literal(other)
        ))),
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn binary(op: BinOp, a: &Expr, b: &Expr, id: RowId, row: &Row, ctx: &EvalCtx<'_>) -> Result<Value> {
    // AND / OR short-circuit and follow three-valued logic.
    if matches!(op, BinOp::And | BinOp::Or) {
        let l = truth(&a.eval(id, row, ctx)?)?;
        let stop = if op == BinOp::And {
            Some(false)
        } else {
            Some(true)
        };
        if l == stop {
            return Ok(Value::Boolean(l == Some(true)));
        }
        let r = truth(&b.eval(id, row, ctx)?)?;
        let out = if op == BinOp::And {
            and3(l, r)
        } else {
            match (l, r) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }
        };
        return Ok(out.map_or(Value::Null, Value::Boolean));
    }
    let l = a.operand(id, row, ctx)?;
    let r = b.operand(id, row, ctx)?;
    let (l, r) = (l.as_ref(), r.as_ref());
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let cmp = |want: fn(Ordering) -> bool| -> Result<Value> {
        Ok(compare(l, r)?.map_or(Value::Null, |o| Value::Boolean(want(o))))
    };
    match op {
        BinOp::Eq => cmp(|o| o == Ordering::Equal),
        BinOp::NotEq => cmp(|o| o != Ordering::Equal),
        BinOp::Lt => cmp(|o| o == Ordering::Less),
        BinOp::LtEq => cmp(|o| o != Ordering::Greater),
        BinOp::Gt => cmp(|o| o == Ordering::Greater),
        BinOp::GtEq => cmp(|o| o != Ordering::Less),
        BinOp::Concat => Ok(Value::Text(format!("{}{}", text_of(l), text_of(r)))),
        _ => arithmetic(op, l, r),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => crate::sql::value_fmt::display_value(other, usize::MAX),
    }
}

fn arithmetic(op: BinOp, l: &Value, r: &Value) -> Result<Value> {
    match (l, r) {
        (Value::Integer(a), Value::Integer(b)) => {
            let (a, b) = (*a, *b);
            let v = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div | BinOp::Mod if b == 0 => {
                    return Err(Error::Sql("division by zero".into()));
                }
                BinOp::Div => a.checked_div(b),
                BinOp::Mod => a.checked_rem(b),
                _ => unreachable!("arithmetic called with {op:?}"),
            };
            v.map(Value::Integer).ok_or_else(overflow)
        }
        _ => {
            let (Some(a), Some(b)) = (as_f64(l), as_f64(r)) else {
                return Err(Error::Sql(format!(
                    "cannot compute {} {} {}",
                    sql_literal(l),
                    op.symbol(),
                    sql_literal(r)
                )));
            };
            Ok(Value::Real(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div if b == 0.0 => return Err(Error::Sql("division by zero".into())),
                BinOp::Div => a / b,
                BinOp::Mod => a % b,
                _ => unreachable!("arithmetic called with {op:?}"),
            }))
        }
    }
}

/// A number as f64 (INTEGER or REAL).
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    }
}

/// Compares two values of comparable types; `None` when either is NULL.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>> {
    Ok(Some(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => return Ok(None),
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        // An image path compares as its text, so `WHERE image = '/photos/a.jpg'` works.
        (Value::Image(ImageSource::Path(x)), Value::Text(y)) => x.as_str().cmp(y.as_str()),
        (Value::Text(x), Value::Image(ImageSource::Path(y))) => x.as_str().cmp(y.as_str()),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => {
                return Err(Error::Sql(format!(
                    "cannot compare {} with {}",
                    type_name(a),
                    type_name(b)
                )));
            }
        },
    }))
}

/// Total order used by ORDER BY: NULLs first (as in SQLite), then by value.
pub fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => compare(a, b).ok().flatten().unwrap_or(Ordering::Equal),
    }
}

fn type_name(v: &Value) -> String {
    v.column_type().map_or("NULL".into(), |t| t.to_string())
}

/// SQL LIKE: `%` any run, `_` one character, ASCII case-insensitive.
fn like(s: &str, p: &str) -> bool {
    let s: Vec<char> = s.chars().map(|c| c.to_ascii_lowercase()).collect();
    let p: Vec<char> = p.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative matcher with backtracking to the last `%`: O(len(s) * len(p)) at worst.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&sc) = s.get(i) {
        let pc = p.get(j).copied();
        if pc.is_some_and(|c| c == '_' || c == sc) {
            i += 1;
            j += 1;
        } else if pc == Some('%') {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    p.iter().skip(j).all(|&c| c == '%')
}

fn call(f: Func, args: Vec<Value>) -> Result<Value> {
    let arity_err = || Error::Sql(format!("wrong number of arguments to {}()", f.name()));
    if f == Func::Coalesce {
        return Ok(args
            .into_iter()
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null));
    }
    let mut it = args.into_iter();
    let a = it.next().ok_or_else(arity_err)?;
    let b = it.next();
    if it.next().is_some() || (b.is_some() && f != Func::Round) {
        return Err(arity_err());
    }
    if a.is_null() {
        return Ok(Value::Null);
    }
    let bad = |a: &Value| Error::Sql(format!("{}() cannot take {}", f.name(), sql_literal(a)));
    Ok(match (f, &a) {
        (Func::Lower, Value::Text(s)) => Value::Text(s.to_lowercase()),
        (Func::Upper, Value::Text(s)) => Value::Text(s.to_uppercase()),
        (Func::Length, Value::Text(s)) => Value::Integer(s.chars().count() as i64),
        (Func::Length, Value::Blob(b)) => Value::Integer(b.len() as i64),
        (Func::Length, Value::Vector(v)) => Value::Integer(v.len() as i64),
        (Func::Abs, Value::Integer(i)) => Value::Integer(i.checked_abs().ok_or_else(overflow)?),
        (Func::Abs, Value::Real(r)) => Value::Real(r.abs()),
        (Func::Round, _) => {
            let x = as_f64(&a).ok_or_else(|| bad(&a))?;
            let digits = match b {
                None | Some(Value::Null) => 0,
                Some(Value::Integer(d)) => d.clamp(-20, 20) as i32,
                Some(other) => return Err(bad(&other)),
            };
            let scale = 10f64.powi(digits);
            Value::Real((x * scale).round() / scale)
        }
        _ => return Err(bad(&a)),
    })
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(v) => f.write_str(&sql_literal(v)),
            Expr::Column(_, name) => f.write_str(name),
            Expr::RowId => f.write_str("rowid"),
            Expr::Param(n) => write!(f, "${}", n + 1),
            Expr::Vector(items) => {
                f.write_str("[")?;
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Binary(op, a, b) => {
                let paren = |e: &Expr| matches!(e, Expr::Binary(o, ..) if *o == BinOp::Or || *o == BinOp::And && *op != BinOp::And);
                let side = |e: &Expr| {
                    if paren(e) {
                        format!("({e})")
                    } else {
                        e.to_string()
                    }
                };
                write!(f, "{} {} {}", side(a), op.symbol(), side(b))
            }
            Expr::IsNull(e, not) => write!(f, "{e} IS {}NULL", if *not { "NOT " } else { "" }),
            Expr::InList(e, l, not) => {
                let items: Vec<String> = l.iter().map(|x| x.to_string()).collect();
                write!(
                    f,
                    "{e} {}IN ({})",
                    if *not { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            Expr::Between(e, lo, hi, not) => {
                write!(
                    f,
                    "{e} {}BETWEEN {lo} AND {hi}",
                    if *not { "NOT " } else { "" }
                )
            }
            Expr::Like(e, p, not) => write!(f, "{e} {}LIKE {p}", if *not { "NOT " } else { "" }),
            Expr::Similarity {
                name, arg, kind, ..
            } => write!(f, "{}({name}, {arg})", kind.name()),
            Expr::Func(func, args) => {
                let items: Vec<String> = args.iter().map(|x| x.to_string()).collect();
                write!(f, "{}({})", func.name(), items.join(", "))
            }
            Expr::Agg(_, text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    fn eval(e: &Expr) -> Result<Value> {
        e.eval(0, &Row::default(), &EvalCtx::EMPTY)
    }

    #[test]
    fn three_valued_logic() {
        let null_and_false = Expr::Binary(BinOp::And, lit(Value::Null), lit(Value::Boolean(false)));
        assert_eq!(eval(&null_and_false).unwrap(), Value::Boolean(false));
        let null_or_true = Expr::Binary(BinOp::Or, lit(Value::Null), lit(Value::Boolean(true)));
        assert_eq!(eval(&null_or_true).unwrap(), Value::Boolean(true));
        let null_eq = Expr::Binary(BinOp::Eq, lit(Value::Null), lit(Value::Integer(1)));
        assert_eq!(eval(&null_eq).unwrap(), Value::Null);
    }

    #[test]
    fn like_patterns() {
        assert!(like("Hello world", "hello%"));
        assert!(like("abc", "a_c"));
        assert!(like("abc", "%"));
        assert!(!like("abc", "a_"));
        assert!(like("a%b", "a%%b"));
        assert!(like("mississippi", "%iss%pi"));
        assert!(like("", ""));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
        assert!(!like("a", ""));
        assert!(like("ab%", "ab%"));
        assert!(!like("abc", "%b"));
    }

    #[test]
    fn arithmetic_errors_are_errors() {
        let div0 = Expr::Binary(BinOp::Div, lit(Value::Integer(1)), lit(Value::Integer(0)));
        assert!(matches!(eval(&div0), Err(Error::Sql(_))));
        let ovf = Expr::Binary(
            BinOp::Add,
            lit(Value::Integer(i64::MAX)),
            lit(Value::Integer(1)),
        );
        assert!(matches!(eval(&ovf), Err(Error::Sql(_))));
        let mixed = Expr::Binary(
            BinOp::Lt,
            lit(Value::Integer(1)),
            lit(Value::Text("a".into())),
        );
        assert!(
            eval(&mixed)
                .unwrap_err()
                .to_string()
                .contains("cannot compare")
        );
    }
}
