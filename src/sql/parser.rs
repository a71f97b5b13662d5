//! The sqlparser wrapper: splits a script into statements (remembering where each starts) and
//! parses each one, turning parser errors into [`Error::SqlSyntax`] with line and column.

use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::{Error, Result};

/// Nesting limit handed to sqlparser, so deeply nested input is an error and not a stack overflow.
const RECURSION_LIMIT: usize = 64;

/// The text of one statement of a script and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementText {
    /// The statement without its terminating `;`.
    pub text: String,
    /// Line of its first token.
    pub line: u64,
    /// Column of its first token.
    pub column: u64,
}

/// One parsed statement and the line it starts on.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The sqlparser AST.
    pub ast: Statement,
    /// Line of its first token, 1-based.
    pub line: u64,
}

/// Splits `sql` at top-level `;` tokens (quotes and comments are respected). Statements made only
/// of whitespace and comments are dropped.
pub fn split_statements(sql: &str) -> Result<Vec<StatementText>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::SqlSyntax {
            line: e.location.line,
            column: e.location.column,
            message: e.message,
        })?;
    let index = LineIndex::new(sql);
    let mut out = Vec::new();
    // (start byte, line, column) of the first significant token of the current statement.
    let mut start: Option<(usize, u64, u64)> = None;
    for t in &tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon | Token::EOF => {
                if let Some((from, line, column)) = start.take() {
                    let to = index.offset(t.span.start.line, t.span.start.column);
                    out.push(StatementText {
                        text: index.slice(from, to)?.trim_end().to_string(),
                        line,
                        column,
                    });
                }
            }
            _ => {
                if start.is_none() {
                    let (l, c) = (t.span.start.line, t.span.start.column);
                    start = Some((index.offset(l, c), l, c));
                }
            }
        }
    }
    if let Some((from, line, column)) = start {
        out.push(StatementText {
            text: index.slice(from, sql.len())?.trim_end().to_string(),
            line,
            column,
        });
    }
    Ok(out)
}

/// Parses a script into statements.
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>> {
    split_statements(sql)?
        .into_iter()
        .map(|s| {
            let ast = parse_one(&s.text, s.line, s.column)?;
            Ok(ParsedStatement { ast, line: s.line })
        })
        .collect()
}

/// Parses exactly one statement (a trailing `;` is allowed).
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let mut stmts = split_statements(sql)?.into_iter();
    match (stmts.next(), stmts.next()) {
        (None, _) => Err(Error::Sql("empty statement".into())),
        (Some(s), None) => parse_one(&s.text, s.line, s.column),
        (Some(_), Some(second)) => Err(Error::Sql(format!(
            "expected one statement, found {} (the second starts at line {}, column {})",
            2 + stmts.len(),
            second.line,
            second.column
        ))),
    }
}

/// Parses the text of one statement that starts at (`line`, `column`) of the original script, so
/// error positions refer to the script.
fn parse_one(text: &str, line: u64, column: u64) -> Result<Statement> {
    let dialect = GenericDialect {};
    let mut stmts = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| syntax_error(e, text, line, column))?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        0 => Err(Error::Sql("empty statement".into())),
        _ => Err(Error::Sql("expected one statement".into())),
    }
}

/// Turns a sqlparser error about `text` (which starts at `line`, `column` of the script) into
/// [`Error::SqlSyntax`]; sqlparser puts the position in the message ("... at Line: 1, Column: 8"),
/// relative to the statement text.
fn syntax_error(e: ParserError, text: &str, line: u64, column: u64) -> Error {
    let raw = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => {
            return Error::SqlSyntax {
                line,
                column,
                message: "statement nested too deeply".into(),
            };
        }
    };
    let (message, pos) = split_position(&raw);
    let (l, c) = match pos {
        // Relative line 1 starts at the statement's column; later lines start at column 1.
        Some((1, c)) => (line, column + c - 1),
        Some((l, c)) => (line + l - 1, c),
        // The end of input has no position in sqlparser's message: point just past the
        // statement's last character.
        None if message.ends_with("found: EOF") => end_of(text, line, column),
        None => (line, column),
    };
    Error::SqlSyntax {
        line: l,
        column: c,
        message: message.to_string(),
    }
}

/// The position just past the end of `text`, which starts at `line`, `column`.
fn end_of(text: &str, line: u64, column: u64) -> (u64, u64) {
    let count = |s: &str| s.chars().count() as u64;
    match text.rsplit_once('\n') {
        None => (line, column + count(text)),
        Some((before, last)) => (
            line + before.matches('\n').count() as u64 + 1,
            count(last) + 1,
        ),
    }
}

/// Splits "message at Line: L, Column: C" into the message and (L, C).
fn split_position(raw: &str) -> (&str, Option<(u64, u64)>) {
    let Some((message, rest)) = raw.rsplit_once(" at Line: ") else {
        return (raw, None);
    };
    let mut parts = rest.splitn(2, ", Column: ");
    let l = parts.next().and_then(|s| s.trim().parse().ok());
    let c = parts.next().and_then(|s| {
        s.trim_end_matches(|ch: char| !ch.is_ascii_digit())
            .parse()
            .ok()
    });
    match (l, c) {
        (Some(l), Some(c)) if l > 0 && c > 0 => (message, Some((l, c))),
        _ => (raw, None),
    }
}

/// Maps sqlparser's (line, column) — column counted in chars — to byte offsets.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn offset(&self, line: u64, column: u64) -> usize {
        let line_start = self.starts.get((line as usize).saturating_sub(1));
        // Line starts follow a `\n`, so they are character boundaries.
        let Some((start, rest)) = line_start.and_then(|&s| Some((s, self.text.get(s..)?))) else {
            return self.text.len();
        };
        let chars = (column as usize).saturating_sub(1);
        rest.char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The text between byte offsets `from` and `to` (both from [`offset`](Self::offset), so on
    /// character boundaries and in order as the tokens are).
    fn slice(&self, from: usize, to: usize) -> Result<&'a str> {
        self.text.get(from..to).ok_or_else(|| Error::SqlSyntax {
            line: 0,
            column: 0,
            message: format!("cannot split the script at bytes {from}..{to}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_with_lines() {
        let sql = "SELECT ';' ; -- a; comment\n\n  INSERT INTO t VALUES (1);\nSELECT 2";
        let s = split_statements(sql).unwrap();
        let texts: Vec<&str> = s.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(
            texts,
            ["SELECT ';'", "INSERT INTO t VALUES (1)", "SELECT 2"]
        );
        assert_eq!((s[1].line, s[1].column), (3, 3));
        assert_eq!(s[2].line, 4);
        assert!(split_statements("  ;; -- nothing\n").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_point_into_the_script() {
        let err = parse_script("SELECT 1;\n  SELECT * FROM\n WHERE x;").unwrap_err();
        match err {
            Error::SqlSyntax {
                line,
                column,
                message,
            } => {
                assert_eq!((line, column), (3, 2), "{message}");
                assert!(message.contains("WHERE"), "{message}");
            }
            other => panic!("{other}"),
        }
        let err = parse_statement("  SELECT * FROM WHERE")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("SQL syntax error at line 1, column 17:"),
            "{err}"
        );
        let err = parse_statement("SELECT 'abc").unwrap_err().to_string();
        assert!(err.contains("line 1, column"), "{err}");
        let err = parse_statement("SELECT 1; SELECT 2;\nSELECT 3")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("found 3 (the second starts at line 1, column 11)"),
            "{err}"
        );
    }

    #[test]
    fn a_statement_cut_short_is_reported_where_it_ends() {
        let at = |sql: &str| match parse_script(sql).unwrap_err() {
            Error::SqlSyntax {
                line,
                column,
                message,
            } => {
                assert!(message.ends_with("found: EOF"), "{message}");
                (line, column)
            }
            other => panic!("{other}"),
        };
        assert_eq!(at("SELECT * FROM"), (1, 14));
        assert_eq!(at("SELECT (1"), (1, 10));
        assert_eq!(at("  SELECT (1; -- a comment"), (1, 12));
        assert_eq!(at("SELECT 1;\nSELECT *\n  FROM\n\n"), (3, 7));
        assert_eq!(at("SELECT 'é', (\n'ü'"), (2, 4));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

        /// Any text: the splitter answers, never panics.
        #[test]
        fn random_text_never_panics(sql in "\\PC{0,80}") {
            let _ = split_statements(&sql);
        }
    }
}
