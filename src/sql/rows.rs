//! Query results: [`Rows`] with column names and types, typed access by index or name.

use crate::{ColumnType, Error, ImageSource, Result, Value};

/// Name and type of a result column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// The column name or alias (or the expression text).
    pub name: String,
    /// The type, `None` when every value is NULL and the type could not be inferred.
    pub ty: Option<ColumnType>,
}

/// The rows a query returned, fully materialised.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub(crate) columns: Vec<ColumnInfo>,
    pub(crate) rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Rows from columns and values (each row as long as `columns`).
    pub fn new(columns: Vec<ColumnInfo>, rows: Vec<Vec<Value>>) -> Rows {
        Rows { columns, rows }
    }

    /// The result columns.
    pub fn columns(&self) -> &[ColumnInfo] {
        &self.columns
    }

    /// The column names.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row was returned.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`.
    pub fn get(&self, i: usize) -> Option<ResultRow<'_>> {
        self.rows.get(i).map(|values| ResultRow {
            columns: &self.columns,
            values,
        })
    }

    /// The rows in order.
    pub fn iter(&self) -> impl Iterator<Item = ResultRow<'_>> + '_ {
        self.rows.iter().map(|values| ResultRow {
            columns: &self.columns,
            values,
        })
    }

    /// The raw values, row by row.
    pub fn into_values(self) -> Vec<Vec<Value>> {
        self.rows
    }
}

/// One result row.
#[derive(Debug, Clone, Copy)]
pub struct ResultRow<'a> {
    columns: &'a [ColumnInfo],
    values: &'a [Value],
}

impl<'a> ResultRow<'a> {
    /// The value of column `idx` (a position or a name, case-insensitive) converted to `T`.
    pub fn get<T: FromValue>(&self, idx: impl RowIndex) -> Result<T> {
        let (column, value) = self.column_value(idx)?;
        T::from_value(value)
            .map_err(|detail| Error::InvalidArgument(format!("column {}: {detail}", column.name)))
    }

    /// The raw value of column `idx`.
    pub fn value(&self, idx: impl RowIndex) -> Result<&'a Value> {
        Ok(self.column_value(idx)?.1)
    }

    /// Column `idx` and its value; a row shorter than its columns ([`Rows::new`] does not check)
    /// is an error.
    fn column_value(&self, idx: impl RowIndex) -> Result<(&'a ColumnInfo, &'a Value)> {
        let i = idx.position(self.columns)?;
        match (self.columns.get(i), self.values.get(i)) {
            (Some(c), Some(v)) => Ok((c, v)),
            _ => Err(Error::InvalidArgument(format!(
                "column index {i} out of range (the row has {} values)",
                self.values.len()
            ))),
        }
    }

    /// All values in column order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

/// A column position or name.
pub trait RowIndex {
    /// The 0-based position among `columns`.
    fn position(&self, columns: &[ColumnInfo]) -> Result<usize>;
}

impl RowIndex for usize {
    fn position(&self, columns: &[ColumnInfo]) -> Result<usize> {
        if *self < columns.len() {
            Ok(*self)
        } else {
            Err(Error::InvalidArgument(format!(
                "column index {self} out of range ({} columns)",
                columns.len()
            )))
        }
    }
}

impl RowIndex for &str {
    fn position(&self, columns: &[ColumnInfo]) -> Result<usize> {
        columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(self))
            .ok_or_else(|| Error::InvalidArgument(format!("no column named {self} in the result")))
    }
}

/// Conversion from a result value; the error text says what was found.
pub trait FromValue: Sized {
    /// Converts `v`, or says why not.
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

fn wrong(v: &Value, want: &str) -> String {
    let got = v.column_type().map_or("NULL".into(), |t| t.to_string());
    format!("cannot read {got} as {want}")
}

macro_rules! from_value {
    ($t:ty, $want:literal, $($pat:pat => $e:expr),+) => {
        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                match v {
                    $($pat => Ok($e),)+
                    other => Err(wrong(other, $want)),
                }
            }
        }
    };
}

from_value!(i64, "i64", Value::Integer(i) => *i);
from_value!(f64, "f64", Value::Real(r) => *r, Value::Integer(i) => *i as f64);
from_value!(f32, "f32", Value::Real(r) => *r as f32, Value::Integer(i) => *i as f32);
from_value!(bool, "bool", Value::Boolean(b) => *b);
from_value!(String, "String", Value::Text(s) => s.clone());
from_value!(Vec<u8>, "bytes", Value::Blob(b) => b.clone());
from_value!(Vec<f32>, "a vector", Value::Vector(v) => v.clone());
from_value!(ImageSource, "an image", Value::Image(s) => s.clone());

impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_by_index_and_name() {
        let rows = Rows::new(
            vec![
                ColumnInfo {
                    name: "id".into(),
                    ty: Some(ColumnType::Integer),
                },
                ColumnInfo {
                    name: "Name".into(),
                    ty: Some(ColumnType::Text),
                },
            ],
            vec![vec![Value::Integer(7), Value::Null]],
        );
        let r = rows.get(0).unwrap();
        assert_eq!(r.get::<i64>(0).unwrap(), 7);
        assert_eq!(r.get::<f64>("ID").unwrap(), 7.0);
        assert_eq!(r.get::<Option<String>>("name").unwrap(), None);
        let err = r.get::<String>("name").unwrap_err().to_string();
        assert!(
            err.contains("column Name: cannot read NULL as String"),
            "{err}"
        );
        assert!(r.get::<i64>(5).is_err());
        assert!(r.get::<i64>("nope").is_err());
    }

    #[test]
    fn a_row_shorter_than_its_columns_is_an_error() {
        // `Rows::new` is public and does not check the shape; `get` indexed out of range before.
        let info = |name: &str| ColumnInfo {
            name: name.into(),
            ty: None,
        };
        let rows = Rows::new(vec![info("a"), info("b")], vec![vec![Value::Integer(1)]]);
        let r = rows.get(0).unwrap();
        assert_eq!(r.get::<i64>("a").unwrap(), 1);
        let err = r.get::<i64>("b").unwrap_err().to_string();
        assert!(err.contains("column index 1 out of range"), "{err}");
        assert!(r.value(1).is_err());
    }
}
