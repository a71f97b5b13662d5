//! The sqlparser wrapper: splits a script into statements (remembering where each starts) and
//! parses each one, turning parser errors into [`Error::SqlSyntax`] with line and column.
//!
//! The script is tokenized once ([`lexer`](crate::sql::lexer), which reads vector literals itself)
//! and each statement's tokens go to sqlparser's parser with their script locations, so positions
//! in errors and spans refer to the script.

use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use crate::sql::lexer::{ParamSites, is_lifted, tokenize};
use crate::{Error, Result};

/// Nesting limit handed to sqlparser, so deeply nested input is an error and not a stack overflow.
const RECURSION_LIMIT: usize = 64;

/// One parsed statement, where it starts, and what the binder needs from its text.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The sqlparser AST.
    pub ast: Statement,
    /// Line of its first token, 1-based.
    pub line: u64,
    /// Its `?` placeholders and lifted vector literals.
    pub sites: ParamSites,
}

/// The tokens of one statement (without its `;`).
#[derive(Debug)]
struct StatementTokens {
    tokens: Vec<TokenWithSpan>,
    /// Location of its first significant token.
    start: Location,
    sites: ParamSites,
}

/// Splits `sql` at top-level `;` tokens (quotes and comments are respected). Statements made only
/// of whitespace and comments are dropped.
fn split_statements(sql: &str) -> Result<Vec<StatementTokens>> {
    let lexed = tokenize(sql)?;
    let mut vectors = lexed.vectors.into_iter();
    let mut out = Vec::new();
    let empty = || StatementTokens {
        tokens: Vec::new(),
        start: Location::new(1, 1),
        sites: ParamSites::default(),
    };
    let mut current = empty();
    let mut started = false;
    for t in lexed.tokens {
        match &t.token {
            Token::SemiColon | Token::EOF => {
                let done = std::mem::replace(&mut current, empty());
                if std::mem::take(&mut started) {
                    out.push(done);
                }
                continue;
            }
            Token::Whitespace(_) => {}
            other => {
                if !started {
                    started = true;
                    current.start = t.span.start;
                }
                if let Token::Placeholder(p) = other {
                    if p == "?" {
                        current.sites.push_question_mark(t.span.start);
                    } else if is_lifted(p) {
                        // The lexer made one placeholder per lifted vector, in the same order.
                        current.sites.push_vectors(vectors.next());
                    }
                }
            }
        }
        current.tokens.push(t);
    }
    if started {
        out.push(current);
    }
    Ok(out)
}

/// Parses a script into statements.
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>> {
    split_statements(sql)?.into_iter().map(parse_one).collect()
}

/// Parses exactly one statement (a trailing `;` is allowed).
pub fn parse_statement(sql: &str) -> Result<ParsedStatement> {
    let mut stmts = split_statements(sql)?.into_iter();
    match (stmts.next(), stmts.next()) {
        (None, _) => Err(Error::Sql("empty statement".into())),
        (Some(s), None) => parse_one(s),
        (Some(_), Some(second)) => Err(Error::Sql(format!(
            "expected one statement, found {} (the second starts at line {}, column {})",
            2 + stmts.len(),
            second.start.line,
            second.start.column
        ))),
    }
}

/// Parses the tokens of one statement.
fn parse_one(s: StatementTokens) -> Result<ParsedStatement> {
    // Where the statement's text ends, for errors at the end of input.
    let end = s
        .tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map_or(s.start, |t| t.span.end);
    let dialect = GenericDialect {};
    let mut stmts = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(s.tokens)
        .parse_statements()
        .map_err(|e| syntax_error(e, s.start, end))?;
    let ast = match stmts.len() {
        1 => stmts.remove(0),
        0 => return Err(Error::Sql("empty statement".into())),
        _ => return Err(Error::Sql("expected one statement".into())),
    };
    Ok(ParsedStatement {
        ast,
        line: s.start.line,
        sites: s.sites,
    })
}

/// Turns a sqlparser error into [`Error::SqlSyntax`]. sqlparser puts the position of the token in
/// the message ("... at Line: 1, Column: 8"), already counted from the script start; an error at
/// the end of input has none and points just past the statement's last token (`end`).
fn syntax_error(e: ParserError, start: Location, end: Location) -> Error {
    let raw = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => {
            return Error::SqlSyntax {
                line: start.line,
                column: start.column,
                message: "statement nested too deeply".into(),
            };
        }
    };
    let (message, pos) = split_position(&raw);
    let (line, column) = match pos {
        Some(p) => p,
        None if message.ends_with("found: EOF") => (end.line, end.column),
        None => (start.line, start.column),
    };
    Error::SqlSyntax {
        line,
        column,
        message: message.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_with_lines() {
        let sql = "SELECT ';' ; -- a; comment\n\n  INSERT INTO t VALUES (1);\nSELECT 2";
        let s = parse_script(sql).unwrap();
        let texts: Vec<String> = s.iter().map(|x| x.ast.to_string()).collect();
        assert_eq!(
            texts,
            ["SELECT ';'", "INSERT INTO t VALUES (1)", "SELECT 2"]
        );
        assert_eq!((s[1].line, s[2].line), (3, 4));
        let starts = split_statements(sql).unwrap();
        assert_eq!(starts[1].start, Location::new(3, 3));
        assert!(split_statements("  ;; -- nothing\n").unwrap().is_empty());
    }

    #[test]
    fn question_marks_are_numbered_in_text_order() {
        let s = parse_statement("SELECT ?, [1, 2] FROM t WHERE a = ?\n LIMIT ?").unwrap();
        let at = |line, column| s.sites.question_mark(Location::new(line, column));
        assert_eq!((at(1, 8), at(1, 35), at(2, 8)), (Some(0), Some(1), Some(2)));
        assert_eq!(at(1, 9), None);
        assert_eq!(s.sites.vector(Location::new(1, 11)), Some(&[1.0, 2.0][..]));
        // The lifted literal prints as the array it stands for.
        assert_eq!(
            s.ast.to_string(),
            "SELECT ?, [1, 2] FROM t WHERE a = ? LIMIT ?"
        );
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

        /// Vector literals spelled every way, in and around strings, comments, subscripts and
        /// calls: the statements parse to what sqlparser alone makes of the text (compared
        /// printed), or both refuse it.
        #[test]
        fn lifted_literals_parse_as_sqlparser_alone(
            parts in proptest::collection::vec(
                (
                    0..10usize,
                    proptest::collection::vec(
                        "[ \t\n]?[-+]?([0-9]{1,3}(\\.[0-9]{0,2})?|\\.[0-9]{1,2})([eE][-+]?[0-9]{1,2})?[ \n]?",
                        0..4,
                    ),
                ),
                1..5,
            ),
            tail in 0..3usize,
        ) {
            let items: Vec<String> = parts
                .iter()
                .map(|(kind, elems)| {
                    let lit = format!("[{}]", elems.join(","));
                    match kind {
                        0 => format!("f({lit})"),
                        1 => lit,
                        2 => format!("'{lit}'"),
                        3 => format!("x = {lit}"),
                        4 => format!("e{lit}"),
                        5 => format!("/* {lit} */ 1"),
                        6 => format!("1 -- {lit}\n"),
                        7 => format!("ARRAY{lit}"),
                        8 => format!("g(x, {lit}, ?)"),
                        _ => format!("({lit}){lit}"),
                    }
                })
                .collect();
            let last = items.last().cloned().unwrap_or_default();
            let sql = format!(
                "SELECT {}{}",
                items.join(", "),
                match tail {
                    0 => String::new(),
                    1 => " FROM t".into(),
                    _ => format!(" FROM t WHERE y <> {last}"),
                }
            );
            let plain = Parser::parse_sql(&GenericDialect {}, &sql);
            let ours = parse_script(&sql);
            match (plain, ours) {
                (Ok(a), Ok(b)) => {
                    let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
                    let b: Vec<String> = b.iter().map(|s| s.ast.to_string()).collect();
                    proptest::prop_assert_eq!(a, b, "{}", sql);
                }
                (Err(_), Err(_)) => {}
                (a, b) => proptest::prop_assert!(false, "{}: {:?} / {:?}", sql, a.err(), b.err()),
            }
        }
    }

    #[test]
    fn lifted_values_are_the_numbers_written() {
        let s = parse_statement("SELECT f(x, [1, -2.5e1, +.5, 9223372036854775808])").unwrap();
        let at = Location::new(1, 13);
        assert_eq!(
            s.sites.vector(at),
            Some(&[1.0, -25.0, 0.5, 9_223_372_036_854_775_808.0][..])
        );
    }
}
