//! A streaming reader of 2-D `.npy` matrices (NumPy format versions 1.0-3.0).
//!
//! Layout: magic `\x93NUMPY`, major and minor version bytes, header length (u16 LE for 1.0, u32 LE
//! for 2.0/3.0), an ASCII Python dict `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`
//! padded with spaces, then the `n * d` values row-major. Accepted dtypes: `<f2` (clip-retrieval's
//! default), `<f4`, `<f8`. Rows are read in chunks so multi-GB shards never sit in memory whole.

// Parsers of files and user input: no unwrap, expect, panic or unchecked indexing outside
// tests; an `#[expect]` names the invariant where one truly holds.
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Element type of a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F16,
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// An open `.npy` file positioned at its next unread row.
pub struct NpyReader {
    path: PathBuf,
    reader: BufReader<File>,
    dtype: Dtype,
    rows: usize,
    dim: usize,
    next_row: usize,
}

impl NpyReader {
    /// Opens `path` and parses its header; the file must hold a 2-D little-endian float matrix whose
    /// byte length matches its shape.
    pub fn open(path: &Path) -> Result<NpyReader> {
        let bad = |detail: String| {
            Error::corrupted(path, format!("not a 2-D float .npy matrix: {detail}"))
        };
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut pre = [0u8; 8];
        reader
            .read_exact(&mut pre)
            .map_err(|_| bad("shorter than the 8-byte preamble".into()))?;
        if &pre[..6] != b"\x93NUMPY" {
            return Err(bad("missing the \\x93NUMPY magic".into()));
        }
        let header_len = match pre[6] {
            1 => {
                let mut b = [0u8; 2];
                reader.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
                u16::from_le_bytes(b) as usize
            }
            2 | 3 => {
                let mut b = [0u8; 4];
                reader.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
                u32::from_le_bytes(b) as usize
            }
            v => return Err(bad(format!("unsupported format version {v}"))),
        };
        if header_len > 1 << 20 {
            return Err(bad(format!("header of {header_len} bytes")));
        }
        let mut header = vec![0u8; header_len];
        reader
            .read_exact(&mut header)
            .map_err(|_| bad("truncated header".into()))?;
        let header = String::from_utf8_lossy(&header);
        let (dtype, fortran, shape) = parse_header(&header).map_err(bad)?;
        if fortran {
            return Err(bad(
                "fortran_order matrices are not supported (save with C order)".into(),
            ));
        }
        let (rows, dim) = match *shape.as_slice() {
            [n, d] => (n, d),
            _ => return Err(bad(format!("shape {shape:?} is not 2-D (rows, dim)"))),
        };
        if dim == 0 {
            return Err(bad("dimension 0".into()));
        }
        // The shape comes from the file: its byte size may not fit in 64 bits.
        let data_start = pre.len() as u64 + if pre[6] == 1 { 2 } else { 4 } + header_len as u64;
        let expected = rows
            .checked_mul(dim)
            .and_then(|x| x.checked_mul(dtype.size()))
            .and_then(|x| u64::try_from(x).ok())
            .and_then(|x| x.checked_add(data_start))
            .ok_or_else(|| {
                bad(format!(
                    "shape ({rows}, {dim}) of {}-byte values is too large (its byte size \
                     overflows), the file has {file_len} bytes",
                    dtype.size()
                ))
            })?;
        if file_len != expected {
            return Err(bad(format!(
                "shape ({rows}, {dim}) needs {expected} bytes, the file has {file_len}"
            )));
        }
        Ok(NpyReader {
            path: path.to_path_buf(),
            reader,
            dtype,
            rows,
            dim,
            next_row: 0,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Reads up to `n` more rows as f32 (fewer at the end, none when done).
    pub fn read_rows(&mut self, n: usize) -> Result<Vec<Vec<f32>>> {
        let n = n.min(self.rows - self.next_row);
        // `open` checked that rows * dim * size fits (it is the file's data length) and n <= rows.
        let width = self.dim * self.dtype.size();
        let mut buf = vec![0u8; n * width];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        let out = buf
            .chunks_exact(width)
            .map(|row| match self.dtype {
                Dtype::F16 => row
                    .as_chunks::<2>()
                    .0
                    .iter()
                    .map(|b| f16_to_f32(u16::from_le_bytes(*b)))
                    .collect(),
                Dtype::F32 => row
                    .as_chunks::<4>()
                    .0
                    .iter()
                    .map(|b| f32::from_le_bytes(*b))
                    .collect(),
                Dtype::F64 => row
                    .as_chunks::<8>()
                    .0
                    .iter()
                    .map(|b| f64::from_le_bytes(*b) as f32)
                    .collect(),
            })
            .collect();
        self.next_row += n;
        Ok(out)
    }
}

/// Parses the header dict into (dtype, fortran_order, shape).
fn parse_header(h: &str) -> std::result::Result<(Dtype, bool, Vec<usize>), String> {
    let value_of = |key: &str| -> std::result::Result<&str, String> {
        let pat = format!("'{key}'");
        let (_, rest) = h
            .split_once(pat.as_str())
            .ok_or_else(|| format!("header lacks {pat}: {h}"))?;
        let rest = rest.trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| format!("bad header: {h}"))
    };
    let descr = value_of("descr")?;
    let descr = descr.split(['\'', '"']).nth(1).unwrap_or("");
    let dtype = match descr {
        "<f2" => Dtype::F16,
        "<f4" => Dtype::F32,
        "<f8" => Dtype::F64,
        other => return Err(format!("dtype {other:?} (accepted: <f2, <f4, <f8)")),
    };
    let fortran = value_of("fortran_order")?.starts_with("True");
    let shape = value_of("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| format!("bad shape in header: {h}"))?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad shape {inner:?}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((dtype, fortran, dims))
}

/// IEEE 754 half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        // Subnormal half: value = mant * 2^-24, exactly representable as a normal f32.
        (0, m) => {
            let v = m as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Writes a `<f4` matrix (tests and tools that need a file in this format).
pub fn write_f32(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let dim = rows.first().map_or(0, Vec::len);
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}",
        rows.len()
    );
    // Pad so the data starts on a 64-byte boundary, newline-terminated, as NumPy does.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for r in rows {
        for v in r {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let rows = vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.5]];
        write_f32(&p, &rows).unwrap();
        let mut r = NpyReader::open(&p).unwrap();
        assert_eq!((r.rows(), r.dim()), (2, 3));
        assert_eq!(r.read_rows(1).unwrap(), vec![rows[0].clone()]);
        assert_eq!(r.read_rows(5).unwrap(), vec![rows[1].clone()]);
        assert!(r.read_rows(5).unwrap().is_empty());

        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        let err = NpyReader::open(&p).err().unwrap().to_string();
        assert!(err.contains("m.npy") && err.contains("needs"), "{err}");

        std::fs::write(&p, b"hello world").unwrap();
        let err = NpyReader::open(&p).err().unwrap().to_string();
        assert!(err.contains("magic"), "{err}");

        // A shape whose byte size overflows is an error naming the file, not a panic or a wrap.
        for shape in ["(4611686018427387904, 16)", "(18446744073709551615, 1)"] {
            let header =
                format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(header.len() as u16).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            std::fs::write(&p, &b).unwrap();
            let err = NpyReader::open(&p).err().unwrap().to_string();
            assert!(err.contains("m.npy") && err.contains("too large"), "{err}");
        }

        let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";
        assert!(parse_header(h).unwrap_err().contains("<i8"));
        let h = "{'descr': '<f2', 'fortran_order': False, 'shape': (7,), }";
        assert_eq!(parse_header(h).unwrap(), (Dtype::F16, false, vec![7]));
    }
}
