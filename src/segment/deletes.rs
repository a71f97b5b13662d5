//! Deletion bitmaps: which rows of an immutable segment are dead.
//!
//! File `seg-<id>.del<gen>`, framed (magic `\x89MMDBDEL`, version 1), body:
//! `n u64` then `ceil(n/64)` u64 words, bit i of word i/64 set = row position i deleted.
//! A new generation is written for each checkpoint that deleted rows of the segment, so the file
//! named by the committed manifest is never modified.

use std::path::Path;

use crate::storage::{FileSystem, FramedFile, FramedWriter, bytes_as_u64};
use crate::{Error, Result};

const MAGIC: [u8; 8] = *b"\x89MMDBDEL";
const VERSION: u32 = 1;

/// Deleted rows of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteBitmap {
    words: Vec<u64>,
    n: usize,
    count: usize,
}

impl DeleteBitmap {
    /// No row deleted, `n` rows.
    pub fn new(n: usize) -> DeleteBitmap {
        DeleteBitmap {
            words: vec![0; n.div_ceil(64)],
            n,
            count: 0,
        }
    }

    /// Whether row `i` is deleted.
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Marks row `i` deleted; true if it was live.
    pub fn insert(&mut self, i: usize) -> bool {
        match self.words.get_mut(i / 64) {
            Some(w) if i < self.n && *w & (1 << (i % 64)) == 0 => {
                *w |= 1 << (i % 64);
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// Number of deleted rows.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Writes the bitmap to `path`.
    pub fn store(&self, fs: &dyn FileSystem, path: &Path) -> Result<()> {
        let mut w = FramedWriter::create(fs, path, MAGIC, VERSION)?;
        let mut body = Vec::with_capacity(8 + self.words.len() * 8);
        body.extend_from_slice(&(self.n as u64).to_le_bytes());
        for word in &self.words {
            body.extend_from_slice(&word.to_le_bytes());
        }
        w.write(&body)?;
        w.finish()?;
        Ok(())
    }

    /// Reads a bitmap for a segment of `n` rows.
    pub fn load(path: &Path, n: usize) -> Result<DeleteBitmap> {
        let f = FramedFile::open(path, MAGIC, VERSION)?;
        f.verify_all()?;
        let body = f.body();
        let words = bytes_as_u64(body).ok_or_else(|| Error::corrupted(path, "bitmap size"))?;
        let Some((_, words)) = words
            .split_first()
            .filter(|(rows, words)| **rows == n as u64 && words.len() == n.div_ceil(64))
        else {
            return Err(Error::corrupted(
                path,
                format!("bitmap is not for {n} rows"),
            ));
        };
        let words = words.to_vec();
        let count = words.iter().map(|w| w.count_ones() as usize).sum();
        Ok(DeleteBitmap { words, n, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let mut b = DeleteBitmap::new(130);
        assert!(b.insert(0) && b.insert(129) && !b.insert(129) && !b.insert(130));
        b.store(&crate::storage::RealFileSystem, &p).unwrap();
        let back = DeleteBitmap::load(&p, 130).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.count(), 2);
        assert!(DeleteBitmap::load(&p, 129).is_err());
    }
}
