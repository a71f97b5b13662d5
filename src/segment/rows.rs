//! The rows file of a segment: row ids and rkyv-archived rows, read zero-copy through mmap.
//!
//! Body layout (inside the framed file, see `storage`; body offsets, little-endian):
//! ```text
//! 0        n          u64                 number of rows
//! 8        ids        [u64; n]            row ids, strictly ascending
//! 8+8n     starts     [u64; n]            start of each row archive relative to `data` (16-aligned)
//! 8+16n    lens       [u64; n]            length of each row archive
//! 8+24n    pad to 16
//! data     archives   row i = data[starts[i]..starts[i]+lens[i]], an rkyv archive
//!                     of `StoredRow` (values; VECTOR values live in the vector files)
//! ```
//! Ids and offsets are verified against their block CRCs at open; a row's bytes are verified (block
//! CRCs, then rkyv's validation) the first time it is read.

use std::borrow::Cow;
use std::path::Path;

use rkyv::rancor;

use crate::storage::{FileSystem, FramedFile, FramedWriter, bytes_as_u64};
use crate::{Error, ImageSource, Result, Row, RowId, Value};

const MAGIC: [u8; 8] = *b"\x89MMDBROW";
const VERSION: u32 = 1;

/// A value as archived in a segment.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
pub enum StoredValue {
    /// NULL.
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
    /// BOOLEAN.
    Boolean(bool),
    /// BLOB.
    Blob(Vec<u8>),
    /// IMAGE by path.
    ImagePath(String),
    /// IMAGE by bytes.
    ImageBytes(Vec<u8>),
    /// A VECTOR value, or an embedding, stored in the column's vector file.
    InVectorFile,
}

/// A row as archived in a segment.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
pub struct StoredRow {
    /// One per column.
    pub values: Vec<StoredValue>,
}

/// Writes the rows file `path`: row `k` has id `ids[k]` (ascending) and the values `row(k)`
/// returns. The header (ids, offsets, lengths) comes before the archives, so every row is
/// archived twice, once for its length and once to write it: only one row is in memory at a
/// time (a merge of a million rows would otherwise hold every archive until the header is
/// written).
pub fn write_rows_with<'r>(
    fs: &dyn FileSystem,
    path: &Path,
    ids: &[RowId],
    mut row: impl FnMut(usize) -> Result<Cow<'r, Row>>,
) -> Result<()> {
    let mut lens = Vec::with_capacity(ids.len());
    for k in 0..ids.len() {
        lens.push(archive(row(k)?.as_ref())?.len() as u64);
    }
    let mut w = FramedWriter::create(fs, path, MAGIC, VERSION)?;
    w.write(&(ids.len() as u64).to_le_bytes())?;
    for id in ids {
        w.write(&id.to_le_bytes())?;
    }
    let mut off = 0u64;
    for len in &lens {
        w.write(&off.to_le_bytes())?;
        off += len.next_multiple_of(16);
    }
    for len in &lens {
        w.write(&len.to_le_bytes())?;
    }
    w.align(16)?;
    for (k, &len) in lens.iter().enumerate() {
        let a = archive(row(k)?.as_ref())?;
        if a.len() as u64 != len {
            // The same row archived twice to different lengths: a bug, not bad input.
            return Err(Error::InvalidArgument(format!(
                "row {k} archived to {} bytes, then {len}",
                a.len()
            )));
        }
        w.write(&a)?;
        w.align(16)?;
    }
    w.finish()?;
    Ok(())
}

/// The rkyv archive of `row`.
fn archive(row: &Row) -> Result<rkyv::util::AlignedVec> {
    let stored = StoredRow {
        values: row.values.iter().map(to_stored).collect(),
    };
    rkyv::to_bytes::<rancor::Error>(&stored)
        .map_err(|e| Error::InvalidArgument(format!("cannot archive row: {e}")))
}

fn to_stored(v: &Value) -> StoredValue {
    match v {
        Value::Null => StoredValue::Null,
        Value::Integer(i) => StoredValue::Integer(*i),
        Value::Real(f) => StoredValue::Real(*f),
        Value::Text(s) => StoredValue::Text(s.clone()),
        Value::Boolean(b) => StoredValue::Boolean(*b),
        Value::Blob(b) => StoredValue::Blob(b.clone()),
        Value::Image(ImageSource::Path(p)) => StoredValue::ImagePath(p.clone()),
        Value::Image(ImageSource::Bytes(b)) => StoredValue::ImageBytes(b.clone()),
        Value::Vector(_) => StoredValue::InVectorFile,
    }
}

/// An open rows file.
#[derive(Debug)]
pub struct RowsFile {
    file: FramedFile,
    n: usize,
    data_at: usize,
}

impl RowsFile {
    /// Opens and checks the header, ids and offsets.
    pub fn open(path: &Path) -> Result<RowsFile> {
        let file = FramedFile::open(path, MAGIC, VERSION)?;
        let body = file.body();
        let bad = |d: String| Error::corrupted(path, d);
        let Some(&n) = body.first_chunk::<8>() else {
            return Err(bad("rows body too short".into()));
        };
        file.verify_range(0, 8)?;
        let n = usize::try_from(u64::from_le_bytes(n)).unwrap_or(usize::MAX);
        let index_end = n
            .checked_mul(24)
            .and_then(|x| x.checked_add(8))
            .filter(|&e| e <= body.len())
            .ok_or_else(|| bad(format!("row count {n} does not fit the file")))?;
        file.verify_range(0, index_end)?;
        let data_at = index_end.next_multiple_of(16);
        let body_len = body.len();
        let rf = RowsFile { file, n, data_at };
        let ids = rf.ids();
        if ids.len() != n || rf.starts().len() != n || rf.lens().len() != n {
            return Err(bad("the row index is not 8-byte aligned".into()));
        }
        if !ids.is_sorted_by(|a, b| a < b) {
            return Err(bad("row ids are not ascending".into()));
        }
        let data_len = body_len.saturating_sub(data_at) as u64;
        let past_end = rf
            .starts()
            .iter()
            .zip(rf.lens())
            .any(|(&s, &l)| s.checked_add(l).is_none_or(|e| e > data_len));
        if past_end {
            return Err(bad("a row archive runs past the end of the file".into()));
        }
        Ok(rf)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Row ids, ascending.
    pub fn ids(&self) -> &[u64] {
        self.index(0)
    }

    fn starts(&self) -> &[u64] {
        self.index(1)
    }

    fn lens(&self) -> &[u64] {
        self.index(2)
    }

    /// The `k`-th `[u64; n]` array of the index (ids, starts, lens); `open` checked that the index
    /// fits the body and is aligned (empty otherwise, which `open` rejects).
    fn index(&self, k: usize) -> &[u64] {
        let at = 8 + k * self.n * 8;
        self.file
            .body()
            .get(at..at + self.n * 8)
            .and_then(bytes_as_u64)
            .unwrap_or(&[])
    }

    /// The archived row at position `pos`, validated. VECTOR values come back as
    /// [`StoredValue::InVectorFile`] for the caller to fill.
    pub fn get(&self, pos: usize) -> Result<&ArchivedStoredRow> {
        let (Some(&start), Some(&len)) = (self.starts().get(pos), self.lens().get(pos)) else {
            return Err(Error::corrupted(
                self.file.path(),
                format!("row {pos} requested, the file has {} rows", self.n),
            ));
        };
        // `open` checked that every archive lies inside the body.
        let (at, len) = (self.data_at + start as usize, len as usize);
        self.file.verify_range(at, len)?;
        let bytes = self.file.body().get(at..).and_then(|b| b.get(..len));
        let bytes = bytes.ok_or_else(|| {
            Error::corrupted(
                self.file.path(),
                format!("row {pos} (body byte {at}, {len} bytes) runs past the end"),
            )
        })?;
        rkyv::access::<ArchivedStoredRow, rancor::Error>(bytes).map_err(|e| {
            Error::corrupted(
                self.file.path(),
                format!("row {pos} (body byte {at}) fails validation: {e}"),
            )
        })
    }
}

/// Converts an archived row to a [`Row`]; vectors are left as `Null` for the caller to fill from
/// the vector files. With `want`, only the values of those columns are converted (the others stay
/// `Null`): no strings or blobs are copied for columns nobody reads.
pub fn to_row(r: &ArchivedStoredRow, want: Option<&[usize]>) -> Row {
    let values: Vec<Value> = r
        .values
        .iter()
        .enumerate()
        .map(|(c, v)| {
            if want.is_some_and(|w| !w.contains(&c)) {
                return Value::Null;
            }
            match v {
                ArchivedStoredValue::Null | ArchivedStoredValue::InVectorFile => Value::Null,
                ArchivedStoredValue::Integer(i) => Value::Integer(i.to_native()),
                ArchivedStoredValue::Real(f) => Value::Real(f.to_native()),
                ArchivedStoredValue::Text(s) => Value::Text(s.as_str().to_string()),
                ArchivedStoredValue::Boolean(b) => Value::Boolean(*b),
                ArchivedStoredValue::Blob(b) => Value::Blob(b.as_slice().to_vec()),
                ArchivedStoredValue::ImagePath(p) => {
                    Value::Image(ImageSource::Path(p.as_str().to_string()))
                }
                ArchivedStoredValue::ImageBytes(b) => {
                    Value::Image(ImageSource::Bytes(b.as_slice().to_vec()))
                }
            }
        })
        .collect();
    Row::new(values)
}
