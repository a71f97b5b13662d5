//! Tokenizing: sqlparser's tokenizer, except that numeric vector literals (`[0.1, -2, 3e-4]`) are
//! read here straight into floats and handed to the parser as one token.
//!
//! sqlparser makes a token, then an expression node, for every element of a literal, and the
//! binder a value for each; for a 512-float query vector that costs more than the search it
//! feeds. Lifting is only a shortcut: a lifted literal binds to exactly the vector the plain path
//! would give, its token prints as the plain path's AST prints the array (so column names and
//! messages do not change), and any text the shortcut is unsure about goes through sqlparser.
//!
//! How the text around a literal is known to be SQL and not the inside of a string or comment:
//! the text before each candidate `[` is tokenized by sqlparser first (into the same buffer, so
//! it keeps its context), and the `[` only counts when that text tokenized cleanly, does not end
//! inside a line comment, and ends in a token after which `[` can only open an array: `(`, `,` or
//! a comparison. An unterminated string or block comment makes that tokenizing fail, and the
//! candidate is passed over.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{
    Location, Span, Token, TokenWithSpan, Tokenizer, TokenizerError, Whitespace,
};

use crate::{Error, Result, Value};

/// A candidate inside a string or comment costs tokenizing its preceding text again; past this
/// many such candidates lifting stops, so text full of quoted brackets stays linear.
const MAX_RETRIES: usize = 8;

/// A vector literal read by the lexer: where its `[` is and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct LiftedVector {
    /// Location of the `[`, the start of the token that stands for it.
    pub at: Location,
    /// The elements, as the binder would have converted them.
    pub values: Vec<f32>,
}

/// The tokens of a script, locations counted from its start, and the vector literals lifted out
/// of it in text order. A lifted literal is a [`Token::Placeholder`] whose text starts with `[`,
/// which sqlparser's tokenizer never produces.
#[derive(Debug, Default)]
pub struct Lexed {
    /// The tokens, whitespace and comments included.
    pub tokens: Vec<TokenWithSpan>,
    /// The lifted literals, in text order.
    pub vectors: Vec<LiftedVector>,
}

/// What a statement's text says that its AST does not: where each `?` sits, so that `?` are
/// numbered by their place in the text whatever order the planner binds clauses in, and the
/// vector literals the lexer read itself (the AST holds a placeholder for each).
#[derive(Debug, Clone, Default)]
pub struct ParamSites {
    /// Locations of the `?` placeholders, in text order.
    question_marks: Vec<Location>,
    /// Lifted vector literals, in text order.
    vectors: Vec<LiftedVector>,
}

impl ParamSites {
    /// Notes a `?` at `at`; they come in text order.
    pub fn push_question_mark(&mut self, at: Location) {
        self.question_marks.push(at);
    }

    /// Notes lifted literals; they come in text order.
    pub fn push_vectors(&mut self, v: impl IntoIterator<Item = LiftedVector>) {
        self.vectors.extend(v);
    }

    /// The 0-based number of the `?` that starts at `at`.
    pub fn question_mark(&self, at: Location) -> Option<usize> {
        self.question_marks.binary_search(&at).ok()
    }

    /// The values of the lifted vector literal that starts at `at`.
    pub fn vector(&self, at: Location) -> Option<&[f32]> {
        let i = self.vectors.binary_search_by(|v| v.at.cmp(&at)).ok()?;
        self.vectors.get(i).map(|v| v.values.as_slice())
    }
}

/// Whether a placeholder token's text stands for a lifted vector literal.
pub fn is_lifted(placeholder: &str) -> bool {
    placeholder.starts_with('[')
}

/// Tokenizes `sql`, lifting numeric vector literals. Errors carry line and column in `sql`.
pub fn tokenize(sql: &str) -> Result<Lexed> {
    let mut out = Lexed::default();
    // Everything before `done` is in `out.tokens`; `done_at` is its location.
    let (mut done, mut done_at) = (0, Location::new(1, 1));
    let mut search = 0;
    let mut retries = 0;
    while let Some(found) = sql.get(search..).and_then(|rest| rest.find('[')) {
        let open = search + found;
        search = open + 1;
        let Some(lit) = read_literal(sql, open) else {
            continue;
        };
        let before = out.tokens.len();
        let Some(prefix) = sql.get(done..open) else {
            break;
        };
        let clean = tokenize_into(prefix, done_at, &mut out.tokens).is_ok();
        if !clean || ends_in_line_comment(&out.tokens) {
            // The `[` is inside a string or comment (or the text has an error): this text is
            // tokenized again with the next candidate, or at the end.
            out.tokens.truncate(before);
            retries += 1;
            if retries > MAX_RETRIES {
                break;
            }
            if clean {
                // Nothing before the end of the comment's line can be a literal.
                search = sql
                    .get(open..)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(sql.len(), |n| open + n);
            }
            continue;
        }
        let at = advance(done_at, prefix);
        (done, done_at) = (open, at);
        if !opens_array(&out.tokens) {
            continue;
        }
        let end = advance(at, sql.get(open..lit.end).unwrap_or_default());
        out.tokens.push(TokenWithSpan {
            token: Token::Placeholder(lit.display),
            span: Span::new(at, end),
        });
        out.vectors.push(LiftedVector {
            at,
            values: lit.values,
        });
        (done, done_at) = (lit.end, end);
        search = lit.end;
    }
    let rest = sql.get(done..).unwrap_or_default();
    tokenize_into(rest, done_at, &mut out.tokens).map_err(|e| Error::SqlSyntax {
        line: e.location.line,
        column: e.location.column,
        message: e.message,
    })?;
    Ok(out)
}

/// Appends the tokens of `text`, which starts at `base` of the script, to `buf` (whose tokens are
/// the context sqlparser's tokenizer looks back at). Locations are made script-relative.
fn tokenize_into(
    text: &str,
    base: Location,
    buf: &mut Vec<TokenWithSpan>,
) -> std::result::Result<(), TokenizerError> {
    let dialect = GenericDialect {};
    Tokenizer::new(&dialect, text)
        .tokenize_with_location_into_buf_with_mapper(buf, |mut t| {
            t.span = Span::new(shift(t.span.start, base), shift(t.span.end, base));
            t
        })
        .map_err(|mut e| {
            e.location = shift(e.location, base);
            e
        })
}

/// A location in a piece of text that starts at `base`, as a location in the whole script.
fn shift(l: Location, base: Location) -> Location {
    match l.line {
        0 => l,
        1 => Location::new(base.line, base.column + l.column - 1),
        n => Location::new(base.line + n - 1, l.column),
    }
}

/// The location after `text`, which starts at `from` (sqlparser counts columns in characters).
fn advance(from: Location, text: &str) -> Location {
    match text.rsplit_once('\n') {
        Some((_, last)) => Location::new(
            from.line + text.matches('\n').count() as u64,
            1 + last.chars().count() as u64,
        ),
        None => Location::new(from.line, from.column + text.chars().count() as u64),
    }
}

/// Whether the last token is a `--` or `#` comment: the text ended inside it (a finished one is
/// followed by its newline).
fn ends_in_line_comment(tokens: &[TokenWithSpan]) -> bool {
    matches!(
        tokens.last(),
        Some(TokenWithSpan {
            token: Token::Whitespace(Whitespace::SingleLineComment { .. }),
            ..
        })
    )
}

/// Whether a `[` after these tokens can only open an array literal (not index a value).
fn opens_array(tokens: &[TokenWithSpan]) -> bool {
    let last = tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)));
    matches!(
        last.map(|t| &t.token),
        Some(
            Token::LParen
                | Token::Comma
                | Token::Eq
                | Token::Neq
                | Token::Lt
                | Token::Gt
                | Token::LtEq
                | Token::GtEq
        )
    )
}

/// A literal read from the text.
struct Literal {
    /// Byte offset after its `]`.
    end: usize,
    /// How sqlparser prints the array it would have parsed: `[1, -0.5, 2e3]`.
    display: String,
    values: Vec<f32>,
}

/// Reads `[n, n, ...]` at byte `open` (a `[`): numbers as sqlparser's tokenizer reads them
/// (`12`, `-1.5`, `.5`, `1.`, `2e-3`), an optional sign right before each, ASCII whitespace
/// around. `None` for anything else (an empty list, an expression, a number that is out of
/// range, a literal followed by something that would join it, such as `.` or `[`): the plain
/// path handles those.
fn read_literal(sql: &str, open: usize) -> Option<Literal> {
    let bytes = sql.as_bytes();
    let mut i = open + 1;
    let skip_ws = |i: &mut usize| {
        while bytes
            .get(*i)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *i += 1;
        }
    };
    let mut display = String::with_capacity(64);
    display.push('[');
    let mut values = Vec::new();
    loop {
        skip_ws(&mut i);
        let start = i;
        let negative = bytes.get(i) == Some(&b'-');
        if matches!(bytes.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let digits_from = i;
        scan_number(bytes, &mut i)?;
        let text = sql.get(digits_from..i)?;
        // Signed as the binder signs a literal: `-0` is the integer 0, `-0.0` the float -0.
        values.push(match number_value(text).ok()? {
            Value::Integer(n) => (if negative { -n } else { n }) as f32,
            Value::Real(r) => (if negative { -r } else { r }) as f32,
            _ => return None,
        });
        if values.len() > 1 {
            display.push_str(", ");
        }
        display.push_str(sql.get(start..i)?);
        skip_ws(&mut i);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b']') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    // What follows must start a token of its own whatever came before it.
    match bytes.get(i) {
        None | Some(b' ' | b'\t' | b'\n' | b'\r' | b')' | b',' | b';') => {}
        _ => return None,
    }
    display.push(']');
    Some(Literal {
        end: i,
        display,
        values,
    })
}

/// Advances `i` over `digits[.digits][e[+-]digits]` or `.digits[e[+-]digits]` (at least one
/// digit before the exponent); `None` when no number starts at `i`. The caller checks that a
/// separator follows, so `1L`, `0x1F` or `1_000` are not read as numbers here.
fn scan_number(bytes: &[u8], i: &mut usize) -> Option<()> {
    let digits = |i: &mut usize| {
        let from = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let mut n = digits(i);
    if bytes.get(*i) == Some(&b'.') {
        *i += 1;
        n += digits(i);
    }
    if n == 0 {
        return None;
    }
    if matches!(bytes.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(bytes.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if digits(i) == 0 {
            return None;
        }
    }
    Some(())
}

/// The value of a number token: an INTEGER when it fits in 64 bits, else a finite REAL.
pub fn number_value(n: &str) -> Result<Value> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Value::Integer(i));
    }
    match n.parse::<f64>() {
        Ok(r) if r.is_finite() => Ok(Value::Real(r)),
        // 1e400 would otherwise be stored as inf without a word.
        Ok(_) => Err(Error::Sql(format!("number {n} is out of range for REAL"))),
        Err(_) => Err(Error::Sql(format!("bad number {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifted(sql: &str) -> Vec<Vec<f32>> {
        tokenize(sql)
            .unwrap()
            .vectors
            .into_iter()
            .map(|v| v.values)
            .collect()
    }

    #[test]
    fn lifts_numeric_literals_in_expression_position() {
        assert_eq!(
            lifted("SELECT similarity(e, [1, -0.5, +.25, 2e-1, 3.]) FROM t"),
            [vec![1.0, -0.5, 0.25, 0.2, 3.0]]
        );
        assert_eq!(
            lifted("INSERT INTO t VALUES ([1,2]),\n([3 , 4 ])"),
            [vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        assert_eq!(lifted("UPDATE t SET e = [1] WHERE e <> [2]").len(), 2);
        let zeros = &lifted("SELECT f([-0, -0.0])")[0];
        assert!(zeros[0].is_sign_positive() && zeros[1].is_sign_negative());
    }

    #[test]
    fn leaves_everything_else_to_sqlparser() {
        for sql in [
            "SELECT '[1, 2]', \"[3]\" FROM t",
            "SELECT 1 -- , [1, 2]\n",
            "SELECT 1 /* ([1, 2]) */",
            "SELECT e[1] FROM t",
            "SELECT f([1, 2][1])",
            "SELECT f([1, 2].x)",
            "SELECT f([])",
            "SELECT f([1, x])",
            "SELECT f([1 + 2])",
            "SELECT f([- 1])",
            "SELECT f([1e400])",
            "SELECT f([0x1F])",
            "SELECT f([1_000])",
            "SELECT f([1e])",
            "SELECT f([[1, 2]])",
            "SELECT ARRAY[1, 2]",
            "SELECT $$ ,[1] $$",
        ] {
            let lexed = tokenize(sql).unwrap();
            let plain = Tokenizer::new(&GenericDialect {}, sql)
                .tokenize_with_location()
                .unwrap();
            assert!(lexed.vectors.is_empty(), "{sql}");
            assert_eq!(lexed.tokens, plain, "{sql}");
        }
        // A literal after a string with an escaped quote: the string is kept whole.
        assert_eq!(lifted("SELECT f(E'\\', [2]', [1])"), [vec![1.0]]);
    }

    #[test]
    fn locations_count_from_the_script_start() {
        let sql = "SELECT f(\n  [1,\n 2]), é, x";
        let lexed = tokenize(sql).unwrap();
        let plain = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        assert_eq!(lexed.vectors[0].at, Location::new(2, 3));
        // The tokens after the literal sit where sqlparser puts them.
        assert_eq!(lexed.tokens.last(), plain.last());
        let bad = format!("{sql}, 'open");
        let err = tokenize(&bad).unwrap_err();
        let plain = Tokenizer::new(&GenericDialect {}, &bad)
            .tokenize_with_location()
            .unwrap_err();
        let Error::SqlSyntax { line, column, .. } = err else {
            panic!("{err}");
        };
        assert_eq!((line, column), (plain.location.line, plain.location.column));
    }

    #[test]
    fn brackets_in_line_comments_stay_cheap() {
        let sql = format!("SELECT 1 -- {}\n, [1]", "([1]".repeat(10_000));
        assert_eq!(lifted(&sql), [vec![1.0]]);
        let many = format!("SELECT 1{}\n, [1]", "\n-- ([1]".repeat(1_000));
        assert!(lifted(&many).is_empty());
    }
}
