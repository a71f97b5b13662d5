//! Result rendering for the shell: aligned tables, CSV, JSON lines and `name = value` lines.

use std::fmt::Write as _;

use crate::sql::{display_value, widen_f32};
use crate::{ImageSource, Rows, Value};

/// How results are printed (`.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Aligned table with borders and a row count.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// A JSON array of objects, one row per line.
    Json,
    /// One `column = value` line per column, rows separated by a blank line.
    Line,
}

impl Mode {
    /// Parses a `.mode` argument.
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "table" | "box" => Mode::Table,
            "csv" => Mode::Csv,
            "json" => Mode::Json,
            "line" => Mode::Line,
            _ => return None,
        })
    }
}

/// Vector components shown in table mode (the rest is summarised).
const TABLE_VECTOR_ITEMS: usize = 4;

/// Renders `rows` in `mode`. Table mode ends with the row count.
pub fn render(rows: &Rows, mode: Mode) -> String {
    match mode {
        Mode::Table => table(rows),
        Mode::Csv => csv(rows),
        Mode::Json => json(rows),
        Mode::Line => line(rows),
    }
}

fn is_number(v: &Value) -> bool {
    matches!(v, Value::Integer(_) | Value::Real(_))
}

fn table(rows: &Rows) -> String {
    let names = rows.column_names();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.values()
                .iter()
                .map(|v| display_value(v, TABLE_VECTOR_ITEMS).replace('\n', "\\n"))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let border: String = widths.iter().fold("+".to_string(), |mut s, w| {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
        s
    });
    let mut out = String::new();
    out.push_str(&border);
    out.push('\n');
    out.push('|');
    for (i, n) in names.iter().enumerate() {
        let _ = write!(out, " {:<w$} |", n, w = widths[i]);
    }
    out.push('\n');
    out.push_str(&border);
    out.push('\n');
    for (row, r) in cells.iter().zip(rows.iter()) {
        out.push('|');
        for (i, c) in row.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if is_number(&r.values()[i]) {
                let _ = write!(out, " {}{c} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {c}{} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    }
    if !cells.is_empty() {
        out.push_str(&border);
        out.push('\n');
    }
    let n = rows.len();
    let _ = writeln!(out, "{n} row{}", if n == 1 { "" } else { "s" });
    out
}

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => return String::new(),
        other => display_value(other, usize::MAX),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv(rows: &Rows) -> String {
    let mut out = String::new();
    let header: Vec<String> = rows
        .column_names()
        .iter()
        .map(|n| csv_field(&Value::Text(n.to_string())))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in rows.iter() {
        let fields: Vec<String> = r.values().iter().map(csv_field).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// A value as JSON: vectors as arrays, blobs as hex strings, image bytes summarised.
pub fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Integer(i) => J::from(*i),
        Value::Real(r) => serde_json::Number::from_f64(*r).map_or(J::Null, J::Number),
        Value::Text(s) => J::from(s.as_str()),
        Value::Boolean(b) => J::from(*b),
        Value::Image(ImageSource::Path(p)) => J::from(p.as_str()),
        Value::Blob(_) | Value::Image(_) => J::from(display_value(v, 0)),
        Value::Vector(x) => J::Array(
            x.iter()
                .map(|f| serde_json::Number::from_f64(widen_f32(*f)).map_or(J::Null, J::Number))
                .collect(),
        ),
    }
}

fn json(rows: &Rows) -> String {
    let names = rows.column_names();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            // Built by hand to keep the column order (serde_json's map sorts keys).
            let fields: Vec<String> = names
                .iter()
                .zip(r.values())
                .map(|(n, v)| format!("{}:{}", serde_json::Value::from(*n), json_value(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    if lines.is_empty() {
        return "[]\n".into();
    }
    format!("[{}]\n", lines.join(",\n"))
}

fn line(rows: &Rows) -> String {
    let names = rows.column_names();
    let w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (n, v) in names.iter().zip(r.values()) {
            let _ = writeln!(out, "{n:>w$} = {}", display_value(v, usize::MAX));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::ColumnInfo;

    fn sample() -> Rows {
        Rows::new(
            vec![
                ColumnInfo {
                    name: "id".into(),
                    ty: None,
                },
                ColumnInfo {
                    name: "name".into(),
                    ty: None,
                },
                ColumnInfo {
                    name: "emb".into(),
                    ty: None,
                },
            ],
            vec![
                vec![
                    Value::Integer(1),
                    Value::Text("a, \"b\"".into()),
                    Value::Vector(vec![0.5; 6]),
                ],
                vec![Value::Integer(22), Value::Null, Value::Null],
            ],
        )
    }

    #[test]
    fn table_is_aligned_with_a_row_count() {
        let t = render(&sample(), Mode::Table);
        let expected = "\
+----+--------+------------------------------------+
| id | name   | emb                                |
+----+--------+------------------------------------+
|  1 | a, \"b\" | [0.5, 0.5, 0.5, 0.5, ... (6 dims)] |
| 22 | NULL   | NULL                               |
+----+--------+------------------------------------+
2 rows
";
        assert_eq!(t, expected);
        let widths: Vec<usize> = t.lines().take(6).map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{t}");
    }

    #[test]
    fn csv_json_line() {
        assert_eq!(
            render(&sample(), Mode::Csv),
            "id,name,emb\n1,\"a, \"\"b\"\"\",\"[0.5, 0.5, 0.5, 0.5, 0.5, 0.5]\"\n22,,\n"
        );
        let j = render(&sample(), Mode::Json);
        assert!(
            j.starts_with("[{\"id\":1,\"name\":\"a, \\\"b\\\"\",\"emb\":[0.5,"),
            "{j}"
        );
        assert!(
            j.ends_with("{\"id\":22,\"name\":null,\"emb\":null}]\n"),
            "{j}"
        );
        assert_eq!(
            render(&sample(), Mode::Line).lines().next(),
            Some("  id = 1")
        );
    }

    #[test]
    fn json_vectors_show_the_f32_digits() {
        let rows = Rows::new(
            vec![ColumnInfo {
                name: "v".into(),
                ty: None,
            }],
            vec![vec![Value::Vector(vec![0.707_106_77, 1.0])]],
        );
        assert_eq!(render(&rows, Mode::Json), "[{\"v\":[0.70710677,1.0]}]\n");
    }
}
