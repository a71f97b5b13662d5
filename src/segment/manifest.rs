//! The manifest: the catalog, the live segments of every table and the WAL checkpoint.
//!
//! One file, `MANIFEST`, framed (magic `\x89MMDBMAN`, version 1, block CRCs; see `storage`),
//! body = JSON of [`Manifest`]. It is only ever replaced whole with an atomic rename, so a reader
//! sees the old or the new version.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::StoredSchema;
use crate::storage::{FileSystem, FramedFile, FramedWriter};
use crate::{Error, Result};

/// Name of the manifest file in the database directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
const MAGIC: [u8; 8] = *b"\x89MMDBMAN";
const VERSION: u32 = 1;

/// Everything a database needs at open besides the WAL tail.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Every WAL record with seq <= this is reflected in the segments listed here.
    pub checkpoint_seq: u64,
    /// Next table id to assign (ids are never reused).
    pub next_table_id: u64,
    /// Next segment id to assign (ids are never reused).
    pub next_segment_id: u64,
    /// The tables.
    pub tables: Vec<TableEntry>,
    /// First sequence number of the WAL file that must exist (`wal-<this>.log`): the file
    /// records after `checkpoint_seq` go to. Absent in databases written before it was recorded
    /// (their WAL files are all read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_first_seq: Option<u64>,
}

/// One table in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    /// Stable table id (WAL records refer to it).
    pub id: u64,
    /// The schema.
    pub schema: StoredSchema,
    /// Next automatic row id.
    pub next_row_id: u64,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentEntry>,
}

/// One live segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentEntry {
    /// Segment id (names its files).
    pub id: u64,
    /// Rows stored in the segment (deleted ones included).
    pub rows: u64,
    /// Generation of its deletion bitmap file; 0 = no deletions.
    pub del_gen: u64,
    /// Columns with a vector file and graph in this segment (columns whose dimension was known
    /// when the segment was built).
    #[serde(default)]
    pub vector_columns: Vec<usize>,
}

impl Manifest {
    /// Reads `dir/MANIFEST`; `Ok(None)` when there is none (a new database).
    pub fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let f = FramedFile::open(&path, MAGIC, VERSION)?;
        f.verify_all()?;
        serde_json::from_slice(f.body())
            .map(Some)
            .map_err(|e| Error::corrupted(&path, format!("manifest does not parse: {e}")))
    }

    /// Atomically replaces `dir/MANIFEST` with this manifest.
    pub fn store(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_vec(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut w = FramedWriter::create(fs, &path, MAGIC, VERSION)?;
        w.write(&json)?;
        w.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let m = Manifest {
            checkpoint_seq: 7,
            next_table_id: 2,
            next_segment_id: 3,
            tables: vec![],
            wal_first_seq: Some(8),
        };
        m.store(&crate::storage::RealFileSystem, dir.path())
            .unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(m));
    }
}
