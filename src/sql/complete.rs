//! Whether buffered SQL text is a whole statement yet (ends with `;` outside quotes and
//! comments), decided as the text arrives: a shell feeds each line once to a
//! [`StatementScanner`] instead of re-reading everything buffered so far, so a script costs time
//! linear in its length however long its statements are.
//!
//! The scanner follows the rules of sqlparser's tokenizer for the `GenericDialect` that
//! `parser.rs` parses with, as far as they decide where a quoted string, quoted identifier or
//! comment starts and ends: `''` inside strings, backslash escapes in `E'...'` and `X'...'`,
//! `R'''...'''`, `Q'[...]'`, `U&'...'`, `$tag$...$tag$`, nested `/* */`, `--` to the end of the
//! line, and the few tokens that swallow the character after them (`#x`, `@x`, `|/`, `//`).
//! A unit test checks it against the tokenizer on random text.

/// What a string's backslash does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backslash {
    /// Nothing: an ordinary character.
    Plain,
    /// Escapes the next character, whatever it is (`E'...'`, `X'...'`).
    EscapesAny,
    /// Escapes only a second backslash (`U&'...'`).
    EscapesItself,
}

/// Where the scanner stands. A state that only says what the previous character was (`Minus`,
/// `Slash`, ...) exists because a character's meaning can depend on the next one, and text may
/// arrive split anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum State {
    /// Between tokens.
    #[default]
    Between,
    /// Inside a word; `prefix` while its text so far may introduce a string (`E'`, `NQ'`, ...).
    Word {
        prefix: Option<Prefix>,
    },
    /// Inside a number; `zero`: it is exactly `0` so far (`0x` starts a hex number).
    Number {
        zero: bool,
        dot: bool,
    },
    /// A number followed by `e` (and `sign`): an exponent if a digit follows, else the `e` starts
    /// a word (sqlparser reads `1e'x'` as `1` and `E'x'`).
    NumberE {
        sign: Option<char>,
    },
    /// In the digits of an exponent: a letter after them starts a new token.
    Exponent,
    HexNumber,
    /// A `.` outside a number: a decimal number if a digit follows, else a period, after which a
    /// letter starts a plain word (sqlparser reads `t.e'x'` as `t . e 'x'`, not as an escape
    /// string).
    Dot,
    /// A `-`: a comment if another `-` follows.
    Minus,
    /// A `/`: a comment if `*` follows; `//` is one operator.
    Slash,
    /// `|` or `||`: `|/` and `||/` are operators (so `|/*` opens no comment).
    Pipe {
        bars: u8,
    },
    /// `#` at the start of a token: it takes the next character into a word unless that is
    /// `-`, `>` or a space.
    Hash,
    /// `@` at the start of a token: it takes the next character into a word unless that is a
    /// quote, `>`, `?`, `@` or a space.
    At,
    /// `@@`: takes the next character unless it is a space.
    AtAt,
    LineComment,
    /// Inside `/* */` comments nested `depth` deep; `last` is a `/` or `*` that may pair with the
    /// next character.
    BlockComment {
        depth: u32,
        last: Option<char>,
    },
    /// Inside a string or quoted identifier closed by `quote` (doubled, it stands for itself).
    Quoted {
        quote: char,
        backslash: Backslash,
        /// The previous character was a backslash that escapes this one.
        escaping: bool,
        /// The previous character was `quote`: the literal ends unless another `quote` follows.
        closing: bool,
    },
    /// `R` followed by `count` (1 or 2) `quote`s: three open a triple-quoted string.
    RawOpen {
        quote: char,
        count: u8,
    },
    /// Inside a triple-quoted string, after `run` consecutive `quote`s.
    Triple {
        quote: char,
        run: u8,
    },
    /// `Q'`: the next character is the delimiter.
    QuoteDelimitedOpen,
    /// Inside `Q'<...>'`: ends at `end` followed by `'`.
    QuoteDelimited {
        end: char,
        closing: bool,
    },
    /// `U&`: a unicode string if `'` follows.
    UnicodeAmp,
    /// `$`: a dollar-quoted string if `$` or a tag and `$` follow, else a placeholder.
    Dollar {
        tag: String,
    },
    /// Inside `$$...$$`; `dollar`: the previous character of the body was `$`.
    DollarBody {
        dollar: bool,
    },
    /// Inside `$tag$...$tag$`: `end` is `$tag$`, `tail` the last characters read.
    TaggedDollarBody {
        end: Vec<char>,
        tail: Vec<char>,
    },
}

/// A word that may still turn out to be a string prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    E,
    X,
    B,
    R,
    N,
    Q,
    NQ,
    U,
}

/// Reads SQL text piece by piece (split anywhere) and says whether all of it so far forms
/// complete statements.
#[derive(Debug, Clone, Default)]
pub struct StatementScanner {
    state: State,
    /// The last token outside comments and whitespace is `;`.
    ends_with_semicolon: bool,
}

impl StatementScanner {
    /// Reads `text`, which continues what was pushed before.
    pub fn push(&mut self, text: &str) {
        for c in text.chars() {
            self.step(c);
        }
    }

    /// True when the text so far holds at least one statement and ends with `;` outside quotes
    /// and comments (a `--` comment may follow it). Unterminated quotes count as incomplete.
    pub fn is_complete(&self) -> bool {
        self.ends_with_semicolon && matches!(self.state, State::Between | State::LineComment)
    }

    fn step(&mut self, c: char) {
        let state = std::mem::take(&mut self.state);
        self.state = match state {
            State::Between => self.start(c, false),
            State::Word { prefix } => self.word(prefix, c),
            State::Number { zero, dot } => match c {
                '0'..='9' => State::Number { zero: false, dot },
                'x' if zero => State::HexNumber,
                '.' if !dot => State::Number {
                    zero: false,
                    dot: true,
                },
                'e' | 'E' => State::NumberE { sign: None },
                // `1L`: a long number; the next character starts a token.
                'L' => State::Between,
                _ => self.start(c, false),
            },
            State::NumberE { .. } if c.is_ascii_digit() => State::Exponent,
            State::NumberE { sign: None } if matches!(c, '+' | '-') => {
                State::NumberE { sign: Some(c) }
            }
            // No exponent: the `e` starts a word (maybe `E'...'`), then the sign and `c` follow.
            State::NumberE { sign } => {
                self.state = word(Prefix::E);
                if let Some(sign) = sign {
                    self.step(sign);
                }
                return self.step(c);
            }
            State::Exponent if c.is_ascii_digit() => State::Exponent,
            State::Exponent if c == 'L' => State::Between,
            State::Exponent => self.start(c, false),
            State::HexNumber if c.is_ascii_hexdigit() => State::HexNumber,
            State::HexNumber => self.start(c, false),
            State::Dot if c.is_ascii_digit() => State::Number {
                zero: false,
                dot: true,
            },
            State::Dot => self.start(c, true),
            State::Minus if c == '-' => State::LineComment,
            State::Minus => self.significant(c),
            State::Slash if c == '*' => State::BlockComment {
                depth: 1,
                last: None,
            },
            State::Slash if c == '/' => {
                self.ends_with_semicolon = false;
                State::Between
            }
            State::Slash => self.significant(c),
            State::Pipe { .. } if c == '/' => State::Between,
            State::Pipe { bars: 1 } if c == '|' => State::Pipe { bars: 2 },
            State::Pipe { .. } => self.start(c, false),
            State::Hash => match c {
                '-' | '>' => State::Between,
                ' ' => self.start(c, false),
                _ => State::Word { prefix: None },
            },
            State::At => match c {
                '>' | '?' => State::Between,
                '@' => State::AtAt,
                ' ' | '\'' | '"' | '`' => self.start(c, false),
                _ => State::Word { prefix: None },
            },
            State::AtAt if c == ' ' => self.start(c, false),
            State::AtAt => State::Word { prefix: None },
            State::LineComment if c == '\n' => State::Between,
            State::LineComment => State::LineComment,
            State::BlockComment { depth, last } => block_comment(depth, last, c),
            State::Quoted {
                quote,
                backslash,
                escaping,
                closing,
            } => {
                let inside = |escaping, closing| State::Quoted {
                    quote,
                    backslash,
                    escaping,
                    closing,
                };
                if escaping && (backslash == Backslash::EscapesAny || c == '\\') {
                    inside(false, false)
                } else if closing && c == quote {
                    // A doubled quote stands for itself.
                    inside(false, false)
                } else if closing {
                    return self.step_from(State::Between, c);
                } else {
                    inside(c == '\\' && backslash != Backslash::Plain, c == quote)
                }
            }
            State::RawOpen { quote, count } if c == quote => match count {
                2 => State::Triple { quote, run: 0 },
                _ => State::RawOpen { quote, count: 2 },
            },
            // Two quotes: the empty string.
            State::RawOpen { count: 2, .. } => self.start(c, false),
            State::RawOpen { quote, .. } => {
                return self.step_from(plain(quote), c);
            }
            State::Triple { quote, run } if c == quote && run == 2 => State::Between,
            State::Triple { quote, run } if c == quote => State::Triple {
                quote,
                run: run + 1,
            },
            State::Triple { quote, .. } => State::Triple { quote, run: 0 },
            // sqlparser refuses whitespace as the delimiter; then this is no string.
            State::QuoteDelimitedOpen if matches!(c, ' ' | '\t' | '\r' | '\n') => {
                self.start(c, false)
            }
            State::QuoteDelimitedOpen => State::QuoteDelimited {
                end: match c {
                    '[' => ']',
                    '{' => '}',
                    '<' => '>',
                    '(' => ')',
                    other => other,
                },
                closing: false,
            },
            State::QuoteDelimited { closing: true, .. } if c == '\'' => State::Between,
            State::QuoteDelimited { end, .. } => State::QuoteDelimited {
                end,
                closing: c == end,
            },
            State::UnicodeAmp if c == '\'' => State::Quoted {
                quote: '\'',
                backslash: Backslash::EscapesItself,
                escaping: false,
                closing: false,
            },
            // `u&x`: the word `u` and the operator `&`.
            State::UnicodeAmp => self.start(c, false),
            State::Dollar { tag } => match c {
                '$' if tag.is_empty() => State::DollarBody { dollar: false },
                '$' => {
                    let mut end = vec!['$'];
                    end.extend(tag.chars());
                    end.push('$');
                    State::TaggedDollarBody {
                        end,
                        tail: Vec::new(),
                    }
                }
                c if c.is_alphanumeric() || c == '_' => {
                    let mut tag = tag;
                    tag.push(c);
                    State::Dollar { tag }
                }
                // A placeholder such as `$1`.
                _ => self.start(c, false),
            },
            State::DollarBody { dollar: true } if c == '$' => State::Between,
            State::DollarBody { .. } => State::DollarBody { dollar: c == '$' },
            State::TaggedDollarBody { end, mut tail } => {
                tail.push(c);
                if tail.len() > end.len() {
                    tail.remove(0);
                }
                if tail == end {
                    State::Between
                } else {
                    State::TaggedDollarBody { end, tail }
                }
            }
        };
    }

    /// Reads `c` in `state` (for a character that ends the token before it).
    fn step_from(&mut self, state: State, c: char) {
        self.state = state;
        self.step(c);
    }

    /// A `-` or `/` turned out to be an operator; `c` starts the next token.
    fn significant(&mut self, c: char) -> State {
        self.ends_with_semicolon = false;
        self.start(c, false)
    }

    /// `c` at the start of a token.
    fn start(&mut self, c: char, after_period: bool) -> State {
        if c.is_whitespace() {
            return State::Between;
        }
        // Whether this is a comment is known only with the next character.
        if c == '-' {
            return State::Minus;
        }
        if c == '/' {
            return State::Slash;
        }
        self.ends_with_semicolon = c == ';';
        if after_period && c.is_ascii_alphabetic() {
            return State::Word { prefix: None };
        }
        match c {
            '\'' | '"' | '`' => plain(c),
            '0' => State::Number {
                zero: true,
                dot: false,
            },
            '1'..='9' => State::Number {
                zero: false,
                dot: false,
            },
            '.' => State::Dot,
            '|' => State::Pipe { bars: 1 },
            '#' => State::Hash,
            '@' => State::At,
            '$' => State::Dollar { tag: String::new() },
            'e' | 'E' => word(Prefix::E),
            'x' | 'X' => word(Prefix::X),
            'b' | 'B' => word(Prefix::B),
            'r' | 'R' => word(Prefix::R),
            'n' | 'N' => word(Prefix::N),
            'q' | 'Q' => word(Prefix::Q),
            'u' | 'U' => word(Prefix::U),
            c if c.is_alphabetic() || c == '_' => State::Word { prefix: None },
            _ => State::Between,
        }
    }

    /// `c` inside a word.
    fn word(&mut self, prefix: Option<Prefix>, c: char) -> State {
        let escaped = |backslash| State::Quoted {
            quote: '\'',
            backslash,
            escaping: false,
            closing: false,
        };
        match (prefix, c) {
            (Some(Prefix::E | Prefix::X), '\'') => escaped(Backslash::EscapesAny),
            (Some(Prefix::B | Prefix::N | Prefix::U), '\'') | (Some(Prefix::B), '"') => plain(c),
            (Some(Prefix::R), '\'' | '"') => State::RawOpen { quote: c, count: 1 },
            (Some(Prefix::Q | Prefix::NQ), '\'') => State::QuoteDelimitedOpen,
            (Some(Prefix::U), '&') => State::UnicodeAmp,
            (Some(Prefix::N), 'q' | 'Q') => word(Prefix::NQ),
            (_, c) if is_identifier_part(c) => State::Word { prefix: None },
            (_, c) => self.start(c, false),
        }
    }
}

/// True when `sql` holds at least one statement and ends with `;` (outside quotes and comments),
/// like SQLite's `sqlite3_complete`: a shell keeps reading lines until then. Unterminated quotes
/// count as incomplete.
///
/// ```
/// assert!(mmdb::is_complete("SELECT ';' FROM t; -- done"));
/// assert!(!mmdb::is_complete("SELECT 1 FROM t WHERE a = 'x;"));
/// ```
pub fn is_complete(sql: &str) -> bool {
    let mut s = StatementScanner::default();
    s.push(sql);
    s.is_complete()
}

fn word(prefix: Prefix) -> State {
    State::Word {
        prefix: Some(prefix),
    }
}

/// Inside a literal opened by `quote` whose backslashes are ordinary characters.
fn plain(quote: char) -> State {
    State::Quoted {
        quote,
        backslash: Backslash::Plain,
        escaping: false,
        closing: false,
    }
}

/// sqlparser's `GenericDialect::is_identifier_part`.
fn is_identifier_part(c: char) -> bool {
    c.is_alphabetic() || c.is_ascii_digit() || matches!(c, '@' | '$' | '#' | '_')
}

fn block_comment(depth: u32, last: Option<char>, c: char) -> State {
    match (last, c) {
        (Some('/'), '*') => State::BlockComment {
            depth: depth + 1,
            last: None,
        },
        (Some('*'), '/') if depth == 1 => State::Between,
        (Some('*'), '/') => State::BlockComment {
            depth: depth - 1,
            last: None,
        },
        (_, '/' | '*') => State::BlockComment {
            depth,
            last: Some(c),
        },
        _ => State::BlockComment { depth, last: None },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};

    use super::*;

    /// What sqlparser's tokenizer says: `None` when it refuses the text for a reason that more
    /// text cannot cure (a bad escape, a stray character), where the scanner may answer either way.
    fn tokenizer_says(sql: &str) -> Option<bool> {
        match Tokenizer::new(&GenericDialect {}, sql).tokenize() {
            Ok(tokens) => {
                let last = tokens
                    .iter()
                    .rev()
                    .find(|t| !matches!(t, Token::Whitespace(_) | Token::EOF));
                Some(matches!(last, Some(Token::SemiColon)))
            }
            Err(e)
                if [
                    "Unterminated string literal",
                    "Unterminated dollar-quoted",
                    "Unexpected EOF while in a multi-line comment",
                    "before EOF",
                ]
                .iter()
                .any(|m| e.message.contains(m)) =>
            {
                Some(false)
            }
            Err(_) => None,
        }
    }

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes_and_comments() {
        for (sql, complete) in [
            ("SELECT 1;", true),
            ("SELECT 1; -- trailing comment", true),
            ("SELECT 1; /* block */ \n", true),
            (";", true),
            ("SELECT 1", false),
            ("", false),
            ("  \n -- only a comment;\n", false),
            ("SELECT 1; SELECT 2", false),
            ("SELECT ';", false),
            ("SELECT 'it''s;'", false),
            ("SELECT 'it''s';", true),
            ("SELECT \"a;\"\"b\";", true),
            ("SELECT `a;", false),
            ("SELECT 1; /* a /* nested */ comment;", false),
            ("SELECT 1 /* a /* nested */ comment */;", true),
            ("SELECT 1 -- ;\n", false),
            ("SELECT 1 -- x\n;", true),
            ("SELECT 1; -", false),
            ("SELECT 1; /", false),
            // `//` and `|/` are operators: no comment opens.
            ("SELECT 4 //* 2;", true),
            ("SELECT E'\\';", false),
            ("SELECT E'\\'';", true),
            ("SELECT X'\\';", false),
            ("SELECT '\\';", true),
            ("SELECT t.e'\\';", true),
            ("SELECT 1e'\\';", false),
            // After an exponent a new token starts: `NQ'/.../'` here, unterminated.
            ("SELECT 0e0Nq'/'''$a$$a$;", false),
            ("SELECT 1Lq'[;]';", true),
            ("SELECT R''';''';", true),
            ("SELECT R'''x'';", false),
            ("SELECT R'';", true),
            ("SELECT Q'[a;'b]';", true),
            ("SELECT NQ'(;)';", true),
            ("SELECT U&'\\\\';", true),
            ("SELECT $$ ; $$;", true),
            ("SELECT $$ ; $;", false),
            ("SELECT $fn$ ; $$ ; $fn$;", true),
            ("SELECT $1;", true),
            ("SELECT 1 #;", false),
            ("SELECT 1 # ;", true),
            ("SELECT @;", false),
            ("SELECT @';", false),
            ("SELECT 0x';", false),
            ("SELECT |/* 4;", true),
        ] {
            assert_eq!(is_complete(sql), complete, "{sql:?}");
            let tokenizer = tokenizer_says(sql);
            assert!(
                tokenizer.is_none_or(|t| t == complete),
                "tokenizer on {sql:?}"
            );
        }
    }

    #[test]
    fn long_text_arrives_in_pieces() {
        let mut s = StatementScanner::default();
        s.push("INSERT INTO t VALUES\n");
        for i in 0..1000 {
            s.push(&format!("  ({i}, 'row; {i}'),\n"));
            assert!(!s.is_complete());
        }
        s.push("  (-1, '/* not a comment');\n");
        assert!(s.is_complete());
        s.push("/* a comment\n");
        assert!(!s.is_complete());
        s.push("  ends here */\n");
        assert!(s.is_complete());
    }

    /// Pieces of SQL that open or close quotes and comments, to meet each rule often.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "'", "''", "\"", "`", ";", ";", "-", "--", "/", "/*", "*/", "*", "$", "$$", "$a$",
            "\\", "\n", " ", "e", "E'", "x", "X'", "b", "B\"", "r", "R'", "R\"", "'''", "n", "Nq'",
            "Q'", "q'[", "]'", "U&'", "u&", "&", ".", "0", "1", "0x", "#", "@", "@@", "|", "||",
            "a", "_", "t.", "(", ")", "SELECT", "L", "+", "9",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// The scanner agrees with sqlparser's tokenizer wherever the tokenizer gives an answer.
        #[test]
        fn agrees_with_the_tokenizer(pieces in prop::collection::vec(piece(), 0..24)) {
            // Ending each text with `;` makes the answer turn on what the `;` is inside.
            for sql in [pieces.concat(), pieces.concat() + ";"] {
                if let Some(want) = tokenizer_says(&sql) {
                    prop_assert_eq!(is_complete(&sql), want, "{:?}", sql);
                }
            }
        }

        /// Text split anywhere gives the same answer as the whole.
        #[test]
        fn pieces_give_the_answer_of_the_whole(
            pieces in prop::collection::vec(piece(), 0..24),
            cut in any::<prop::sample::Index>(),
        ) {
            let sql = pieces.concat();
            let chars: Vec<char> = sql.chars().collect();
            let at = cut.index(chars.len() + 1);
            let mut s = StatementScanner::default();
            s.push(&chars[..at].iter().collect::<String>());
            s.push(&chars[at..].iter().collect::<String>());
            prop_assert_eq!(s.is_complete(), is_complete(&sql), "{:?} cut at {}", sql, at);
        }

        /// Any text: an answer, never a panic.
        #[test]
        fn random_text_never_panics(sql in "\\PC{0,80}") {
            let _ = is_complete(&sql);
        }
    }
}
