//! Binding: sqlparser expressions → [`Expr`], resolving names against one table's schema.

use sqlparser::ast::{
    self, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator,
};
use sqlparser::tokenizer::Location;

use crate::sql::expr::{BinOp, EvalCtx, Expr, Func};
use crate::sql::lexer::{ParamSites, is_lifted, number_value};
use crate::sql::plan::{AggFunc, Aggregate};
use crate::sql::query_vec::{QueryArg, SimKind};
use crate::sql::value_fmt::unhex;
use crate::{Error, ImageSource, Result, Row, TableSchema, Value};

/// Numbers the `?` / `$n` placeholders of one statement: a `?` by its place among the statement's
/// `?` in the text (clauses are bound in whatever order planning needs), `$n` / `?n` as written.
#[derive(Debug)]
pub struct Params<'s> {
    sites: &'s ParamSites,
    /// Number of parameters the statement takes (highest index + 1).
    pub count: usize,
}

impl<'s> Params<'s> {
    /// Numbering for the statement whose text gave `sites`.
    pub fn new(sites: &'s ParamSites) -> Self {
        Params { sites, count: 0 }
    }

    fn bind(&mut self, text: &str, at: Location) -> Result<usize> {
        let n = if text == "?" {
            self.sites.question_mark(at).ok_or_else(|| {
                Error::Sql(format!(
                    "parameter ? at line {}, column {} is not in the statement's text",
                    at.line, at.column
                ))
            })?
        } else if let Some(d) = text.strip_prefix('$').or_else(|| text.strip_prefix('?')) {
            match d.parse::<usize>() {
                Ok(n) if n >= 1 => n - 1,
                _ => {
                    return Err(Error::Sql(format!(
                        "bad parameter {text}: use ? or $1, $2, ..."
                    )));
                }
            }
        } else {
            return Err(Error::NotSupported(format!(
                "named parameter {text}: use ? or $1"
            )));
        };
        self.count = self.count.max(n + 1);
        Ok(n)
    }
}

/// Binds expressions of one statement.
pub struct Binder<'a, 's> {
    /// The table in scope, if any.
    pub schema: Option<&'a TableSchema>,
    /// The table's alias (`FROM photos p`): then only `p.col` qualifies a column, as in SQL.
    pub alias: Option<String>,
    /// Placeholders seen so far.
    pub params: &'a mut Params<'s>,
    /// Query arguments of similarity()/distance().
    pub queries: Vec<QueryArg>,
    /// Aggregates found; `None` where aggregates are not allowed.
    pub aggregates: Option<Vec<Aggregate>>,
}

impl<'a, 's> Binder<'a, 's> {
    /// A binder for `schema` (or none), sharing `params`.
    pub fn new(schema: Option<&'a TableSchema>, params: &'a mut Params<'s>) -> Self {
        Binder {
            schema,
            alias: None,
            params,
            queries: Vec::new(),
            aggregates: None,
        }
    }

    /// Binds `e`.
    pub fn bind(&mut self, e: &ast::Expr) -> Result<Expr> {
        use ast::Expr as A;
        Ok(match e {
            A::Identifier(id) => self.column(&id.value)?,
            A::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] if self.qualifies(&t.value) => self.column(&c.value)?,
                _ => {
                    let name: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
                    let hidden = match (parts.as_slice(), self.schema, &self.alias) {
                        ([t, _], Some(s), Some(alias)) if s.name.eq_ignore_ascii_case(&t.value) => {
                            format!(" (table {} is called {alias} in this statement)", s.name)
                        }
                        _ => String::new(),
                    };
                    return Err(Error::Sql(format!(
                        "unknown column {}{hidden}",
                        name.join(".")
                    )));
                }
            },
            A::Value(v) => self.value(v)?,
            A::Nested(e) => self.bind(e)?,
            A::UnaryOp { op, expr } => {
                let inner = self.bind(expr)?;
                match op {
                    UnaryOperator::Not => Expr::Not(Box::new(inner)),
                    UnaryOperator::Minus => match inner {
                        Expr::Literal(Value::Integer(i)) if i != i64::MIN => {
                            Expr::Literal(Value::Integer(-i))
                        }
                        Expr::Literal(Value::Real(r)) => Expr::Literal(Value::Real(-r)),
                        other => Expr::Neg(Box::new(other)),
                    },
                    UnaryOperator::Plus => inner,
                    other => return Err(Error::NotSupported(format!("operator {other}"))),
                }
            }
            A::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => BinOp::Add,
                    BinaryOperator::Minus => BinOp::Sub,
                    BinaryOperator::Multiply => BinOp::Mul,
                    BinaryOperator::Divide => BinOp::Div,
                    BinaryOperator::Modulo => BinOp::Mod,
                    BinaryOperator::StringConcat => BinOp::Concat,
                    BinaryOperator::Eq => BinOp::Eq,
                    BinaryOperator::NotEq => BinOp::NotEq,
                    BinaryOperator::Lt => BinOp::Lt,
                    BinaryOperator::LtEq => BinOp::LtEq,
                    BinaryOperator::Gt => BinOp::Gt,
                    BinaryOperator::GtEq => BinOp::GtEq,
                    BinaryOperator::And => BinOp::And,
                    BinaryOperator::Or => BinOp::Or,
                    other => return Err(Error::NotSupported(format!("operator {other}"))),
                };
                Expr::Binary(op, Box::new(self.bind(left)?), Box::new(self.bind(right)?))
            }
            A::IsNull(e) => Expr::IsNull(Box::new(self.bind(e)?), false),
            A::IsNotNull(e) => Expr::IsNull(Box::new(self.bind(e)?), true),
            A::In {
                expr,
                target,
                negated,
                ..
            } => match target {
                ast::InTarget::List(list) => {
                    let list = list.iter().map(|x| self.bind(x)).collect::<Result<_>>()?;
                    Expr::InList(Box::new(self.bind(expr)?), list, *negated)
                }
                _ => {
                    return Err(Error::NotSupported(
                        "subqueries (IN with a subquery)".into(),
                    ));
                }
            },
            A::Between {
                expr,
                negated,
                low,
                high,
            } => Expr::Between(
                Box::new(self.bind(expr)?),
                Box::new(self.bind(low)?),
                Box::new(self.bind(high)?),
                *negated,
            ),
            A::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            }
            | A::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => Expr::Like(
                Box::new(self.bind(expr)?),
                Box::new(self.bind(pattern)?),
                *negated,
            ),
            A::Array(arr) => Expr::Vector(
                arr.elem
                    .iter()
                    .map(|x| self.bind(x))
                    .collect::<Result<_>>()?,
            ),
            A::Function(f) => self.function(f)?,
            A::Subquery(_) | A::Exists { .. } => {
                return Err(Error::NotSupported("subqueries".into()));
            }
            other => return Err(Error::NotSupported(format!("expression {other}"))),
        })
    }

    /// Whether `name` names the table in scope: its alias if it has one, else its name.
    pub fn qualifies(&self, name: &str) -> bool {
        match (&self.alias, self.schema) {
            (Some(alias), _) => alias.eq_ignore_ascii_case(name),
            (None, Some(s)) => s.name.eq_ignore_ascii_case(name),
            (None, None) => false,
        }
    }

    fn column(&self, name: &str) -> Result<Expr> {
        let Some(schema) = self.schema else {
            return Err(Error::Sql(format!(
                "unknown column {name} (no table in FROM)"
            )));
        };
        let found = schema
            .columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.eq_ignore_ascii_case(name));
        match found {
            Some((i, c)) => Ok(Expr::Column(i, c.name.clone())),
            None if name.eq_ignore_ascii_case("rowid") => Ok(Expr::RowId),
            None => Err(Error::NoSuchColumn {
                table: schema.name.clone(),
                column: name.to_string(),
            }),
        }
    }

    fn value(&mut self, v: &ast::ValueWithSpan) -> Result<Expr> {
        use ast::Value as V;
        let at = v.span.start;
        Ok(Expr::Literal(match &v.value {
            V::Number(n, _) => number_value(n)?,
            V::SingleQuotedString(s) | V::DoubleQuotedString(s) => Value::Text(s.clone()),
            V::Boolean(b) => Value::Boolean(*b),
            V::Null => Value::Null,
            V::HexStringLiteral(h) => {
                Value::Blob(unhex(h).ok_or_else(|| Error::Sql(format!("bad blob literal X'{h}'")))?)
            }
            V::Placeholder(p) if is_lifted(p) => {
                let values = self.params.sites.vector(at).ok_or_else(|| {
                    Error::Sql(format!(
                        "vector literal at line {}, column {} is not in the statement's text",
                        at.line, at.column
                    ))
                })?;
                Value::Vector(values.to_vec())
            }
            V::Placeholder(p) => return Ok(Expr::Param(self.params.bind(p, at)?)),
            other => return Err(Error::NotSupported(format!("literal {other}"))),
        }))
    }

    fn function(&mut self, f: &ast::Function) -> Result<Expr> {
        let name = f.name.to_string().to_ascii_lowercase();
        if f.over.is_some() {
            return Err(Error::NotSupported("window functions".into()));
        }
        if f.filter.is_some() || !f.within_group.is_empty() {
            return Err(Error::NotSupported(format!(
                "FILTER / WITHIN GROUP on {name}()"
            )));
        }
        let (args, star, distinct) = match &f.args {
            FunctionArguments::None => (Vec::new(), false, false),
            FunctionArguments::Subquery(_) => return Err(Error::NotSupported("subqueries".into())),
            FunctionArguments::List(list) => {
                if !list.clauses.is_empty() {
                    return Err(Error::NotSupported(format!("clauses in {name}()")));
                }
                let mut args = Vec::new();
                let mut star = false;
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                        other => return Err(Error::NotSupported(format!("argument {other}"))),
                    }
                }
                (args, star, list.duplicate_treatment.is_some())
            }
        };
        if distinct {
            return Err(Error::NotSupported(format!("DISTINCT in {name}()")));
        }
        let agg = match name.as_str() {
            "count" => Some(AggFunc::Count),
            "sum" => Some(AggFunc::Sum),
            "avg" => Some(AggFunc::Avg),
            "min" => Some(AggFunc::Min),
            "max" => Some(AggFunc::Max),
            _ => None,
        };
        if let Some(func) = agg {
            let arg = match (star, args.as_slice()) {
                (true, []) if func == AggFunc::Count => None,
                (false, [a]) => Some(self.bind_inside_aggregate(a)?),
                _ => return Err(Error::Sql(format!("{name}() takes one argument"))),
            };
            let aggregate = Aggregate { func, arg };
            let text = aggregate.to_string();
            let Some(list) = self.aggregates.as_mut() else {
                return Err(Error::Sql(format!("aggregate {text} is not allowed here")));
            };
            list.push(aggregate);
            return Ok(Expr::Agg(list.len() - 1, text));
        }
        if star {
            return Err(Error::Sql(format!("{name}(*) is not a function")));
        }
        match name.as_str() {
            "similarity" | "distance" => {
                let kind = if name == "similarity" {
                    SimKind::Similarity
                } else {
                    SimKind::Distance
                };
                self.similarity(kind, &args)
            }
            "image" => match args.as_slice() {
                [a] => Ok(Expr::Literal(Value::Image(image_source(a)?))),
                _ => Err(Error::Sql(
                    "image() takes one argument: a path or X'..' bytes".into(),
                )),
            },
            _ => {
                let Some(func) = Func::by_name(&name) else {
                    return Err(Error::Sql(format!("unknown function {name}()")));
                };
                let args = args.iter().map(|a| self.bind(a)).collect::<Result<_>>()?;
                Ok(Expr::Func(func, args))
            }
        }
    }

    fn bind_inside_aggregate(&mut self, e: &ast::Expr) -> Result<Expr> {
        let saved = self.aggregates.take();
        let out = self.bind(e);
        self.aggregates = saved;
        out
    }

    fn similarity(&mut self, kind: SimKind, args: &[&ast::Expr]) -> Result<Expr> {
        let fname = kind.name();
        let [col, q] = args else {
            return Err(Error::Sql(format!(
                "{fname}() takes two arguments: a column and a query"
            )));
        };
        let (column, name) = match self.bind(col)? {
            Expr::Column(i, n) => (i, n),
            other => {
                return Err(Error::Sql(format!(
                    "the first argument of {fname}() must be a column, got {other}"
                )));
            }
        };
        // A column was just bound against `self.schema`, so both lookups succeed.
        let Some((schema, c)) = self
            .schema
            .and_then(|s| s.columns.get(column).map(|c| (s, c)))
        else {
            return Err(Error::Sql(format!(
                "{fname}(): column {name} is not in the table in scope"
            )));
        };
        if !c.has_vector() {
            return Err(Error::Sql(format!(
                "{fname}(): column {}.{name} is {} and has no vector (use VECTOR, IMAGE or EMBEDDED_TEXT)",
                schema.name, c.ty
            )));
        }
        let arg = self.query_arg(fname, q)?;
        let query = match self.queries.iter().position(|a| *a == arg) {
            Some(i) => i,
            None => {
                self.queries.push(arg.clone());
                self.queries.len() - 1
            }
        };
        Ok(Expr::Similarity {
            column,
            name,
            metric: c.metric,
            query,
            arg,
            kind,
        })
    }

    fn query_arg(&mut self, fname: &str, q: &ast::Expr) -> Result<QueryArg> {
        use ast::Expr as A;
        let bad = || {
            Error::Sql(format!(
                "the query of {fname}() must be a text, image('path'), image(X'..'), a vector \
                 [..], a parameter or row(id); got {q}"
            ))
        };
        if let A::Function(f) = q {
            let fname2 = f.name.to_string().to_ascii_lowercase();
            let inner = match &f.args {
                FunctionArguments::List(l) => match l.args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => e,
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            };
            return match fname2.as_str() {
                "image" => Ok(QueryArg::Image(image_source(inner)?)),
                "row" => match const_eval(&self.bind(inner)?)? {
                    Value::Integer(id) if id >= 0 => Ok(QueryArg::Row(id as u64)),
                    _ => Err(Error::Sql(
                        "row() takes a row id (a non-negative integer)".into(),
                    )),
                },
                _ => Err(bad()),
            };
        }
        match self.bind(q)? {
            Expr::Param(n) => Ok(QueryArg::Param(n)),
            Expr::Literal(Value::Text(t)) => Ok(QueryArg::Text(t)),
            Expr::Literal(Value::Blob(b)) => Ok(QueryArg::Image(ImageSource::Bytes(b))),
            Expr::Literal(Value::Vector(v)) => Ok(QueryArg::Vector(v)),
            e @ Expr::Vector(_) => match const_eval(&e)? {
                Value::Vector(v) => Ok(QueryArg::Vector(v)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// Evaluates an expression that must not read a row or parameters.
pub fn const_eval(e: &Expr) -> Result<Value> {
    if e.reads_row() {
        return Err(Error::Sql(format!("{e} must be a constant")));
    }
    e.eval(0, &Row::default(), &EvalCtx::EMPTY)
}

/// The argument of `image(...)`: a path string (made absolute against the current directory) or
/// blob bytes.
fn image_source(e: &ast::Expr) -> Result<ImageSource> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(p) => Ok(ImageSource::Path(absolute_path(p)?)),
            ast::Value::HexStringLiteral(h) => {
                Ok(ImageSource::Bytes(unhex(h).ok_or_else(|| {
                    Error::Sql(format!("bad blob literal X'{h}'"))
                })?))
            }
            _ => Err(Error::Sql(format!(
                "image() takes a path or X'..' bytes, got {e}"
            ))),
        },
        _ => Err(Error::Sql(format!(
            "image() takes a path or X'..' bytes, got {e}"
        ))),
    }
}

/// Resolves a relative image path against the current directory (stored paths are absolute).
pub fn absolute_path(p: &str) -> Result<String> {
    if p.is_empty() {
        return Err(Error::InvalidArgument("empty image path".into()));
    }
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    Ok(abs.to_string_lossy().into_owned())
}
