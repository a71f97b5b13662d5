//! Binary encoding of WAL operations and rows (little-endian, length-prefixed).
//!
//! ```text
//! op      := kind u8, table u64, count u32, item*
//!            kind 1 insert / 3 update: item := id u64, row
//!            kind 2 delete:            item := id u64
//! row     := n u32, value*n, embedding*n
//! value   := tag u8 + payload: 0 null | 1 i64 | 2 f64 | 3 text (len u32, utf-8) | 4 bool u8
//!            | 5 blob (len u32, bytes) | 6 image path (like text) | 7 image bytes (like blob)
//!            | 8 vector (len u32, f32*len)
//! embedding := 0 | 1 + (len u32, f32*len)
//! ```

use crate::{ImageSource, Row, RowId, Value};

/// One logged operation on one table.
#[derive(Debug, Clone, PartialEq)]
pub enum WalOp {
    /// New rows with their assigned ids.
    Insert {
        /// Table id (stable across renames and drops, never reused).
        table: u64,
        /// The rows.
        rows: Vec<(RowId, Row)>,
    },
    /// Rows removed.
    Delete {
        /// Table id.
        table: u64,
        /// Ids removed.
        ids: Vec<RowId>,
    },
    /// Rows replaced whole, keeping their ids.
    Update {
        /// Table id.
        table: u64,
        /// The new rows.
        rows: Vec<(RowId, Row)>,
    },
}

impl WalOp {
    /// The table the operation applies to.
    pub fn table(&self) -> u64 {
        match self {
            WalOp::Insert { table, .. }
            | WalOp::Delete { table, .. }
            | WalOp::Update { table, .. } => *table,
        }
    }
}

/// Appends the encoding of `op` to `out`.
pub fn encode_op(op: &WalOp, out: &mut Vec<u8>) {
    match op {
        WalOp::Insert { table, rows } | WalOp::Update { table, rows } => {
            out.push(if matches!(op, WalOp::Insert { .. }) {
                1
            } else {
                3
            });
            out.extend_from_slice(&table.to_le_bytes());
            out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
            for (id, row) in rows {
                out.extend_from_slice(&id.to_le_bytes());
                encode_row(row, out);
            }
        }
        WalOp::Delete { table, ids } => {
            out.push(2);
            out.extend_from_slice(&table.to_le_bytes());
            out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for id in ids {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
}

/// Decodes one operation; `Err` describes what is malformed.
pub fn decode_op(bytes: &[u8]) -> Result<WalOp, String> {
    let mut r = Reader { b: bytes, at: 0 };
    let kind = r.u8()?;
    let table = r.u64()?;
    let n = r.u32()? as usize;
    let op = match kind {
        1 | 3 => {
            let mut rows = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let id = r.u64()?;
                rows.push((id, decode_row(&mut r)?));
            }
            if kind == 1 {
                WalOp::Insert { table, rows }
            } else {
                WalOp::Update { table, rows }
            }
        }
        2 => {
            let mut ids = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                ids.push(r.u64()?);
            }
            WalOp::Delete { table, ids }
        }
        k => return Err(format!("unknown operation kind {k}")),
    };
    if r.at != bytes.len() {
        return Err(format!(
            "{} trailing bytes after operation",
            bytes.len() - r.at
        ));
    }
    Ok(op)
}

fn encode_row(row: &Row, out: &mut Vec<u8>) {
    out.extend_from_slice(&(row.values.len() as u32).to_le_bytes());
    for v in &row.values {
        match v {
            Value::Null => out.push(0),
            Value::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Text(s) => put_bytes(out, 3, s.as_bytes()),
            Value::Boolean(b) => {
                out.push(4);
                out.push(*b as u8);
            }
            Value::Blob(b) => put_bytes(out, 5, b),
            Value::Image(ImageSource::Path(p)) => put_bytes(out, 6, p.as_bytes()),
            Value::Image(ImageSource::Bytes(b)) => put_bytes(out, 7, b),
            Value::Vector(v) => {
                out.push(8);
                put_f32s(out, v);
            }
        }
    }
    for i in 0..row.values.len() {
        match row.embeddings.get(i).and_then(|e| e.as_ref()) {
            None => out.push(0),
            Some(e) => {
                out.push(1);
                put_f32s(out, e);
            }
        }
    }
}

fn decode_row(r: &mut Reader<'_>) -> Result<Row, String> {
    let n = r.u32()? as usize;
    let mut values = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        values.push(match r.u8()? {
            0 => Value::Null,
            1 => Value::Integer(r.u64()? as i64),
            2 => Value::Real(f64::from_bits(r.u64()?)),
            3 => Value::Text(r.string()?),
            4 => Value::Boolean(r.u8()? != 0),
            5 => Value::Blob(r.bytes()?.to_vec()),
            6 => Value::Image(ImageSource::Path(r.string()?)),
            7 => Value::Image(ImageSource::Bytes(r.bytes()?.to_vec())),
            8 => Value::Vector(r.f32s()?),
            t => return Err(format!("unknown value tag {t}")),
        });
    }
    let mut embeddings = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        embeddings.push(match r.u8()? {
            0 => None,
            1 => Some(r.f32s()?),
            t => return Err(format!("bad embedding flag {t}")),
        });
    }
    Ok(Row { values, embeddings })
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self.b.get(self.at..).and_then(|rest| rest.get(..n));
        let s = s.ok_or_else(|| format!("truncated at byte {} (need {n} more)", self.at))?;
        self.at += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self
            .b
            .get(self.at..)
            .and_then(|rest| rest.first_chunk::<N>());
        let s = s.ok_or_else(|| format!("truncated at byte {} (need {N} more)", self.at))?;
        self.at += N;
        Ok(*s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("invalid UTF-8 before byte {}", self.at))
    }
    fn f32s(&mut self) -> Result<Vec<f32>, String> {
        let n = self.u32()? as usize;
        let b = self.take(n.checked_mul(4).ok_or("vector length overflow")?)?;
        Ok(b.as_chunks::<4>()
            .0
            .iter()
            .map(|c| f32::from_le_bytes(*c))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Real),
            ".{0,12}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Boolean),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Blob),
            ".{0,12}".prop_map(|s| Value::Image(ImageSource::Path(s))),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|b| Value::Image(ImageSource::Bytes(b))),
            proptest::collection::vec(-1e6f32..1e6, 0..8).prop_map(Value::Vector),
        ]
    }

    fn row() -> impl Strategy<Value = Row> {
        proptest::collection::vec(
            (
                value(),
                proptest::option::of(proptest::collection::vec(-1f32..1.0, 0..5)),
            ),
            0..6,
        )
        .prop_map(|cols| {
            let (values, embeddings) = cols.into_iter().unzip();
            Row { values, embeddings }
        })
    }

    proptest! {
        #[test]
        fn ops_roundtrip(table in any::<u64>(), rows in proptest::collection::vec((any::<u64>(), row()), 0..5),
                         ids in proptest::collection::vec(any::<u64>(), 0..5)) {
            for op in [WalOp::Insert { table, rows: rows.clone() }, WalOp::Update { table, rows: rows.clone() },
                       WalOp::Delete { table, ids: ids.clone() }] {
                let mut b = Vec::new();
                encode_op(&op, &mut b);
                let back = decode_op(&b).unwrap();
                // NaN != NaN: compare encodings instead of values.
                let mut b2 = Vec::new();
                encode_op(&back, &mut b2);
                prop_assert_eq!(b, b2);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_op(&bytes);
        }
    }
}
