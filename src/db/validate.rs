//! Checking rows against a schema before anything is written: a batch is rejected whole.

use crate::{ColumnType, Error, Metric, Result, Row, TableSchema, Value};

/// Checks and normalises `row` for `schema`: types, NOT NULL, vector dimensions and finiteness;
/// INTEGER into REAL is widened; cosine vectors are normalised. Errors call it row `number`
/// (see [`Error::TypeMismatch`]).
pub fn check_row(schema: &TableSchema, number: usize, row: &mut Row) -> Result<()> {
    let mismatch = |col: &str, detail: String| Error::TypeMismatch {
        table: schema.name.clone(),
        column: col.to_string(),
        row: number,
        detail,
    };
    if row.values.len() != schema.columns.len() {
        return Err(mismatch(
            "*",
            format!(
                "expected {} values, got {}",
                schema.columns.len(),
                row.values.len()
            ),
        ));
    }
    if row.embeddings.is_empty() {
        row.embeddings = vec![None; row.values.len()];
    } else if row.embeddings.len() != row.values.len() {
        return Err(mismatch(
            "*",
            format!(
                "expected {} embedding slots, got {}",
                row.values.len(),
                row.embeddings.len()
            ),
        ));
    }
    for (i, col) in schema.columns.iter().enumerate() {
        let name = col.name.as_str();
        let value = &mut row.values[i];
        if value.is_null() {
            if !col.nullable {
                return Err(mismatch(name, "NULL in a NOT NULL column".into()));
            }
            if row.embeddings[i].is_some() {
                return Err(mismatch(name, "embedding given for a NULL value".into()));
            }
            continue;
        }
        if let (ColumnType::Real, Value::Integer(n)) = (col.ty, &*value) {
            *value = Value::Real(*n as f64);
        }
        let ok = matches!(
            (col.ty, &*value),
            (ColumnType::Integer, Value::Integer(_))
                | (ColumnType::Real, Value::Real(_))
                | (ColumnType::Text, Value::Text(_))
                | (ColumnType::Boolean, Value::Boolean(_))
                | (ColumnType::Blob, Value::Blob(_))
                | (ColumnType::Image, Value::Image(_))
                | (ColumnType::Vector(_), Value::Vector(_))
        );
        if !ok {
            let got = value
                .column_type()
                .map(|t| t.to_string())
                .unwrap_or_default();
            return Err(mismatch(name, format!("expected {}, got {got}", col.ty)));
        }
        let embedded = col.ty == ColumnType::Image || (col.ty == ColumnType::Text && col.embedded);
        if let Value::Vector(v) = value {
            if row.embeddings[i].is_some() {
                return Err(mismatch(
                    name,
                    "VECTOR columns carry no separate embedding".into(),
                ));
            }
            check_vector(v, col.dim, col.metric).map_err(|d| mismatch(name, d))?;
        } else if embedded {
            let Some(e) = row.embeddings[i].as_mut() else {
                return Err(mismatch(
                    name,
                    "missing embedding (compute it before inserting)".into(),
                ));
            };
            if col.dim == 0 {
                return Err(mismatch(
                    name,
                    "embedding dimension unknown: set the table's model identity first".into(),
                ));
            }
            check_vector(e, col.dim, col.metric).map_err(|d| mismatch(name, d))?;
        } else if row.embeddings[i].is_some() {
            return Err(mismatch(
                name,
                format!("{} columns carry no embedding", col.ty),
            ));
        }
    }
    Ok(())
}

/// Checks dimension and finiteness; normalises for cosine.
pub fn check_vector(v: &mut [f32], dim: u32, metric: Metric) -> std::result::Result<(), String> {
    if v.len() != dim as usize {
        return Err(format!(
            "expected a vector of dimension {dim}, got {}",
            v.len()
        ));
    }
    if let Some(p) = v.iter().position(|x| !x.is_finite()) {
        return Err(format!("non-finite value {} at position {p}", v[p]));
    }
    if metric == Metric::Cosine {
        normalise(v).ok_or_else(|| "zero vector cannot be normalised for cosine".to_string())?;
    } else {
        // Refused now rather than accepted into the WAL and failing every checkpoint later.
        let sq: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
        if sq > crate::index::MAX_SQUARED_NORM {
            return Err(format!(
                "norm {:e} is too large for the index (at most {:e}): distances would overflow",
                sq.sqrt(),
                crate::index::MAX_SQUARED_NORM.sqrt()
            ));
        }
    }
    Ok(())
}

/// Scales `v` to unit length; `None` for a zero (or underflowing) vector.
pub fn normalise(v: &mut [f32]) -> Option<()> {
    let norm = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    for x in v.iter_mut() {
        *x = (*x as f64 / norm) as f32;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;

    fn schema() -> TableSchema {
        let mut c = Column::new("n", ColumnType::Integer);
        c.nullable = false;
        TableSchema::new(
            "t",
            vec![
                c,
                Column::new("r", ColumnType::Real),
                Column::new("v", ColumnType::Vector(2)),
            ],
        )
    }

    #[test]
    fn checks_and_normalises() {
        let s = schema();
        let mut r = Row::new(vec![
            Value::Integer(1),
            Value::Integer(2),
            Value::Vector(vec![3.0, 4.0]),
        ]);
        check_row(&s, 0, &mut r).unwrap();
        assert_eq!(r.values[1], Value::Real(2.0));
        assert_eq!(r.values[2], Value::Vector(vec![0.6, 0.8]));
        let mut bad = Row::new(vec![Value::Null, Value::Null, Value::Null]);
        let e = check_row(&s, 3, &mut bad).unwrap_err();
        assert!(
            matches!(e, Error::TypeMismatch { ref column, row: 3, .. } if column == "n"),
            "{e}"
        );
        let mut bad = Row::new(vec![
            Value::Integer(1),
            Value::Null,
            Value::Vector(vec![1.0]),
        ]);
        assert!(check_row(&s, 0, &mut bad).is_err());
        let mut bad = Row::new(vec![
            Value::Integer(1),
            Value::Null,
            Value::Vector(vec![f32::NAN, 1.0]),
        ]);
        assert!(check_row(&s, 0, &mut bad).is_err());
        // Cosine vectors of any finite norm are normalised; other metrics refuse norms the
        // index cannot score.
        let mut big = Row::new(vec![
            Value::Integer(1),
            Value::Null,
            Value::Vector(vec![1e16, 0.0]),
        ]);
        check_row(&s, 0, &mut big).unwrap();
        let mut l2 = schema();
        l2.columns[2].metric = Metric::L2;
        let mut big = Row::new(vec![
            Value::Integer(1),
            Value::Null,
            Value::Vector(vec![1e16, 0.0]),
        ]);
        let e = check_row(&l2, 4, &mut big).unwrap_err();
        assert!(
            matches!(e, Error::TypeMismatch { ref column, row: 4, .. } if column == "v"),
            "{e}"
        );
        assert!(e.to_string().contains("too large"), "{e}");
        let mut ok = Row::new(vec![
            Value::Integer(1),
            Value::Null,
            Value::Vector(vec![1e14, 0.0]),
        ]);
        check_row(&l2, 0, &mut ok).unwrap();
    }
}
