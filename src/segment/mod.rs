//! Immutable segments: the rows of a table at a checkpoint, with one vector file and one HNSW graph
//! per vector column, plus deletion bitmaps and the manifest that lists the live segments.
//!
//! Files of segment `id` (all framed: magic, version, block CRCs; see `docs/format.md`):
//! `seg-<id>.rows` (rkyv rows), `seg-<id>.c<col>.vec` and `seg-<id>.c<col>.hnsw` per vector
//! column, `seg-<id>.del<gen>` deletion bitmaps.

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

mod builder;
mod deletes;
pub mod manifest;
mod rows;
mod vectors;

use std::path::{Path, PathBuf};

pub use builder::{BuildCounts, MergeInput, merge_segments};
pub use deletes::DeleteBitmap;
use rows::RowsFile;
use vectors::VectorColumn;

use crate::index::{GraphView, VectorsView, search_exact, search_graph};
use crate::{Error, Metric, Result, Row, RowId, TableSchema, Value};

/// Path of the rows file of segment `id`.
pub fn rows_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:08}.rows"))
}
/// Path of the vector file of column `col` of segment `id`.
pub fn vec_path(dir: &Path, id: u64, col: usize) -> PathBuf {
    dir.join(format!("seg-{id:08}.c{col}.vec"))
}
/// Path of the graph file of column `col` of segment `id`.
pub fn graph_path(dir: &Path, id: u64, col: usize) -> PathBuf {
    dir.join(format!("seg-{id:08}.c{col}.hnsw"))
}
/// Path of the scratch file holding column `col`'s vectors while segment `id` is built (a
/// temporary file: removed after the build, or at the next open).
pub fn scratch_path(dir: &Path, id: u64, col: usize) -> PathBuf {
    dir.join(format!("seg-{id:08}.c{col}.build.tmp"))
}
/// Path of generation `gen` of the deletion bitmap of segment `id`.
pub fn del_path(dir: &Path, id: u64, generation: u64) -> PathBuf {
    dir.join(format!("seg-{id:08}.del{generation}"))
}
/// Whether `name` is a file of segment `id` (for removing a dropped segment).
pub fn is_segment_file(name: &str, id: u64) -> bool {
    parse_file_name(name).is_some_and(|f| f.id == id && !f.tmp)
}

/// A file name that mmdb gives segment files, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFileName {
    /// The segment id.
    pub id: u64,
    /// The generation, for a deletion bitmap.
    pub del_gen: Option<u64>,
    /// A temporary file (`.tmp`) being written.
    pub tmp: bool,
}

/// Parses `seg-<id>.rows`, `seg-<id>.c<col>.vec`, `seg-<id>.c<col>.hnsw` and
/// `seg-<id>.del<gen>`, each optionally with `.tmp`, and `seg-<id>.c<col>.build.tmp`; `None` for any other name (mmdb never
/// removes files it does not name itself).
pub fn parse_file_name(name: &str) -> Option<SegmentFileName> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (name, tmp) = match name.strip_suffix(".tmp") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let (id, kind) = name.strip_prefix("seg-")?.split_once('.')?;
    if id.len() < 8 || !digits(id) {
        return None;
    }
    let id = id.parse().ok()?;
    let del_gen = if kind == "rows" {
        None
    } else if let Some(g) = kind.strip_prefix("del").filter(|g| digits(g)) {
        Some(g.parse().ok()?)
    } else {
        let (col, ext) = kind.strip_prefix('c')?.split_once('.')?;
        let known = ext == "vec" || ext == "hnsw" || (tmp && ext == "build");
        if !digits(col) || !known {
            return None;
        }
        None
    };
    Some(SegmentFileName { id, del_gen, tmp })
}

/// An open immutable segment.
#[derive(Debug)]
pub struct Segment {
    id: u64,
    rows: RowsFile,
    /// Per schema column: its vector files when the column is vector-bearing.
    vectors: Vec<Option<VectorColumn>>,
}

impl Segment {
    /// Opens segment `id` of a table with `schema` in `dir` (maps files; reads only headers and
    /// the id index). `vector_columns` lists the columns that have vector files.
    pub fn open(
        dir: &Path,
        id: u64,
        schema: &TableSchema,
        vector_columns: &[usize],
    ) -> Result<Segment> {
        let rows = RowsFile::open(&rows_path(dir, id))?;
        let mut vectors = Vec::with_capacity(schema.columns.len());
        for (c, col) in schema.columns.iter().enumerate() {
            if !vector_columns.contains(&c) {
                vectors.push(None);
                continue;
            }
            if !col.has_vector() || col.dim == 0 {
                return Err(Error::corrupted(
                    rows_path(dir, id),
                    format!("segment lists vectors for column {c}, which has none"),
                ));
            }
            let (v, g) = (vec_path(dir, id, c), graph_path(dir, id, c));
            vectors.push(Some(VectorColumn::open(&v, &g, col.dim as usize)?));
        }
        Ok(Segment { id, rows, vectors })
    }

    /// Verifies every vector column's files and graph now (what the first search of each would
    /// do); errors stay with the files and reach the searches that read them.
    pub fn verify_vectors(&self) {
        for col in self.vectors.iter().flatten() {
            col.verify();
        }
    }

    /// Columns with vector files.
    pub fn vector_columns(&self) -> Vec<usize> {
        self.vectors
            .iter()
            .enumerate()
            .filter_map(|(c, v)| v.as_ref().map(|_| c))
            .collect()
    }

    /// The segment id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Rows stored (deleted ones included).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Row ids by position, ascending.
    pub fn ids(&self) -> &[u64] {
        self.rows.ids()
    }

    /// Position of row `id`.
    pub fn position(&self, id: RowId) -> Option<usize> {
        self.ids().binary_search(&id).ok()
    }

    /// The row at `pos`, with its vectors and embeddings filled in.
    pub fn row(&self, pos: usize, schema: &TableSchema) -> Result<Row> {
        self.row_columns(pos, schema, None)
    }

    /// The row at `pos` with only the columns in `want` filled in (values, vectors, embeddings);
    /// the others are `Null` without embeddings. `None`: every column, as [`row`](Self::row).
    /// This is what a filter reads: skipping the vectors it does not test is most of the cost.
    pub fn row_columns(
        &self,
        pos: usize,
        schema: &TableSchema,
        want: Option<&[usize]>,
    ) -> Result<Row> {
        let mut row = rows::to_row(self.rows.get(pos)?, want);
        if row.values.len() != schema.columns.len() {
            return Err(Error::corrupted(
                self.rows.path(),
                format!(
                    "row {pos} has {} values, schema has {} columns",
                    row.values.len(),
                    schema.columns.len()
                ),
            ));
        }
        for (c, vc) in self.vectors.iter().enumerate() {
            let Some(vc) = vc else { continue };
            if want.is_some_and(|w| !w.contains(&c)) {
                continue;
            }
            let Some(i) = vc.index_of_row(pos as u32)? else {
                continue;
            };
            let v = vc.vector(i)?.to_vec();
            let is_vector = schema
                .columns
                .get(c)
                .is_some_and(|col| matches!(col.ty, crate::ColumnType::Vector(_)));
            let filled = if is_vector {
                row.values.get_mut(c).map(|x| *x = Value::Vector(v))
            } else {
                row.embeddings.get_mut(c).map(|e| *e = Some(v))
            };
            if filled.is_none() {
                return Err(Error::corrupted(
                    self.rows.path(),
                    format!("row {pos} has no column {c} for its vector"),
                ));
            }
        }
        Ok(row)
    }

    /// The row at `pos` as archived: values only, no vectors or embeddings (VECTOR values are
    /// `Null`). What a merge copies.
    pub fn row_values(&self, pos: usize) -> Result<Row> {
        Ok(rows::to_row(self.rows.get(pos)?, None))
    }

    /// Whether the row at `pos` has a vector in column `col`.
    pub fn has_vector(&self, col: usize, pos: usize) -> Result<bool> {
        match self.vectors.get(col).and_then(|v| v.as_ref()) {
            Some(vc) => Ok(vc.index_of_row(pos as u32)?.is_some()),
            None => Ok(false),
        }
    }

    /// Column `col`'s vectors (stored order, verified), their row positions and graph; `None`
    /// when the column has no vector files or no vectors.
    #[allow(clippy::type_complexity)]
    pub fn column_data(
        &self,
        col: usize,
    ) -> Result<Option<(VectorsView<'_>, &[u32], GraphView<'_>)>> {
        match self.vectors.get(col).and_then(|v| v.as_ref()) {
            Some(vc) if vc.count() > 0 => vc.load().map(Some),
            _ => Ok(None),
        }
    }

    /// Number of vectors in column `col`.
    pub fn vector_count(&self, col: usize) -> usize {
        self.vectors
            .get(col)
            .and_then(|v| v.as_ref())
            .map_or(0, |v| v.count())
    }

    /// Top-k over column `col` as (row position, score), best first, equal scores by row
    /// position. `keep` filters row positions. `exact` scans every vector; otherwise the HNSW
    /// graph with list size `ef`.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        col: usize,
        metric: Metric,
        query: &[f32],
        k: usize,
        ef: usize,
        exact: bool,
        keep: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Vec<(usize, f32)>> {
        let Some(vc) = self.vectors.get(col).and_then(|v| v.as_ref()) else {
            return Ok(Vec::new());
        };
        if vc.count() == 0 {
            return Ok(Vec::new());
        }
        let (vectors, rows, graph): (VectorsView<'_>, &[u32], GraphView<'_>) = vc.load()?;
        // Vectors are stored in graph order; equal scores rank by row position, which is row id
        // order, so that this segment's top k is a prefix of the table's ranking.
        let vectors = vectors.with_ties(rows);
        let filter = |i: u32| rows.get(i as usize).is_some_and(|&r| keep(r as usize));
        let hits = if exact {
            search_exact(vectors, metric, query, k, Some(&filter))
        } else {
            search_graph(&graph, vectors, metric, query, k, ef, Some(&filter))
        };
        // Every hit passed `filter`, which found its row position.
        Ok(hits
            .into_iter()
            .filter_map(|(i, s)| rows.get(i as usize).map(|&r| (r as usize, s)))
            .collect())
    }

    /// Row positions with a vector in column `col` (verified), in the order the vectors are
    /// stored (not ascending).
    pub fn vector_rows(&self, col: usize) -> Result<&[u32]> {
        match self.vectors.get(col).and_then(|v| v.as_ref()) {
            Some(vc) => vc.rows(),
            None => Ok(&[]),
        }
    }
}
