//! The vector file of one vector column of a segment, and its HNSW graph file.
//!
//! Vector file body (framed, magic `\x89MMDBVEC`, version 3):
//! ```text
//! 0    dim     u32
//! 4    count   u32                     rows of the segment that have a vector in this column
//! 8    stride  u32                     f32 values from one vector to the next (>= dim)
//! 12   pad to 64
//! 64   data    [f32; count * stride]   in the graph's node order, normalised for cosine; each
//!                                      vector followed by `stride - dim` zeros
//! ..   rows    [u32; count]            segment row position of each vector (distinct)
//! ..   by_row  [u32; count]            the vector indices in ascending row position
//! ```
//! The graph's nodes, and so the vectors, are in [`crate::index::locality_order`]: neighbours sit
//! close together, which makes searches faster than in row order. The stride is
//! [`crate::index::padded_stride`]: 512-d vectors are 2,112 bytes apart, not 2,048, which also
//! makes searches faster (measurements: docs/perf.md#locality-reorder and
//! docs/perf.md#stride-padding). `by_row` finds the vector of a row by binary search. Version 2
//! (still read) had no `stride` (it was `dim`); version 1 (still read) also stored the vectors in
//! row order, with `rows` ascending and no `by_row`.
//!
//! Graph file body (framed, magic `\x89MMDBHNS`, version 1): the bytes of
//! `crate::index::build_graph`, renumbered by `crate::index::renumber`, read in place with
//! `GraphView::parse`.
//!
//! Both files are read at random by searches, so their block CRCs are verified as a whole, once
//! (then the pages are released with `MADV_DONTNEED`): by a background thread started at open
//! (`DatabaseBuilder::verify_in_background`, the default) or else on the first search of the
//! segment's column. Open itself stays a few page faults, and no search ever runs on unverified
//! bytes: a search that arrives first waits for the verification.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::index::{GraphView, VectorsView, padded_stride};
use crate::storage::{FileSystem, FramedFile, FramedWriter, bytes_as_f32, bytes_as_u32};
use crate::{Error, Result};

const VEC_MAGIC: [u8; 8] = *b"\x89MMDBVEC";
const GRAPH_MAGIC: [u8; 8] = *b"\x89MMDBHNS";
/// Version of new vector files; 1 and 2 are still read.
const VEC_VERSION: u32 = 3;
const GRAPH_VERSION: u32 = 1;
const DATA_AT: usize = 64;

/// Writes a vector file: `vectors` (`dim` each) and their row positions `rows` (ascending),
/// stored in `order` (`order[i]` is the input index of the `i`-th stored vector, a permutation).
pub fn write_vectors(
    fs: &dyn FileSystem,
    path: &Path,
    dim: usize,
    vectors: &[f32],
    rows: &[u32],
    order: &[u32],
) -> Result<()> {
    let stride = padded_stride(dim);
    let n = rows.len();
    if Some(vectors.len()) != n.checked_mul(dim) || order.len() != n || u32::try_from(n).is_err() {
        return Err(Error::InvalidArgument(format!(
            "{} vector values, {n} rows and {} stored positions for dimension {dim}",
            vectors.len(),
            order.len()
        )));
    }
    let out_of_range =
        || Error::InvalidArgument(format!("vector order is not a permutation of 0..{n}"));
    // Checked before the file is created, so a bad order leaves no temporary file.
    if order.iter().any(|&i| i as usize >= n) {
        return Err(out_of_range());
    }
    let mut w = FramedWriter::create(fs, path, VEC_MAGIC, VEC_VERSION)?;
    w.write(&(dim as u32).to_le_bytes())?;
    w.write(&(rows.len() as u32).to_le_bytes())?;
    w.write(&(stride as u32).to_le_bytes())?;
    w.align(DATA_AT)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for chunk in order.chunks((1 << 18) / stride.max(1) + 1) {
        buf.clear();
        for &i in chunk {
            let v = (i as usize)
                .checked_mul(dim)
                .and_then(|at| vectors.get(at..))
                .and_then(|v| v.get(..dim))
                .ok_or_else(out_of_range)?;
            for x in v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            buf.resize(buf.len() + (stride - dim) * 4, 0);
        }
        w.write(&buf)?;
    }
    buf.clear();
    let mut stored_at = vec![0u32; order.len()];
    for (stored, &i) in order.iter().enumerate() {
        let (Some(row), Some(at)) = (rows.get(i as usize), stored_at.get_mut(i as usize)) else {
            return Err(out_of_range());
        };
        buf.extend_from_slice(&row.to_le_bytes());
        *at = stored as u32;
    }
    // `rows` ascends in input order, so input order is row order.
    for s in stored_at {
        buf.extend_from_slice(&s.to_le_bytes());
    }
    w.write(&buf)?;
    w.finish()?;
    Ok(())
}

/// Writes a graph file.
pub fn write_graph(fs: &dyn FileSystem, path: &Path, graph: &[u8]) -> Result<()> {
    let mut w = FramedWriter::create(fs, path, GRAPH_MAGIC, GRAPH_VERSION)?;
    w.write(graph)?;
    w.finish()?;
    Ok(())
}

/// An open vector column: its vectors and graph, mapped.
#[derive(Debug)]
pub struct VectorColumn {
    vecs: FramedFile,
    graph: FramedFile,
    dim: usize,
    /// f32 values from one stored vector to the next (`dim` before version 3).
    stride: usize,
    count: usize,
    /// Set once the graph passed the full [`GraphView::parse`]; later loads only re-read its
    /// header (the bytes are immutable). Checking every edge on each query cost most of an
    /// unfiltered search (measurements: docs/perf.md#graph-parse-cache).
    graph_checked: AtomicBool,
}

impl VectorColumn {
    /// Opens both files, checking headers and sizes (not the data: see the module doc).
    pub fn open(vec_path: &Path, graph_path: &Path, dim: usize) -> Result<VectorColumn> {
        let vecs = FramedFile::open_versions(vec_path, VEC_MAGIC, 1..=VEC_VERSION)?;
        let body = vecs.body();
        let bad = |d: String| Error::corrupted(vec_path, d);
        // dim, count and (from version 3) stride: the first three header words.
        let Some(&[d0, d1, d2, d3, c0, c1, c2, c3, s0, s1, s2, s3, ..]) =
            body.first_chunk::<DATA_AT>()
        else {
            return Err(bad("vector body too short".into()));
        };
        vecs.verify_range(0, 8)?;
        let fdim = u32::from_le_bytes([d0, d1, d2, d3]) as usize;
        let count = u32::from_le_bytes([c0, c1, c2, c3]) as usize;
        if fdim != dim {
            return Err(bad(format!("dimension {fdim}, the schema says {dim}")));
        }
        let stride = if vecs.version() >= 3 {
            vecs.verify_range(8, 4)?;
            u32::from_le_bytes([s0, s1, s2, s3]) as usize
        } else {
            dim
        };
        // Any stride from `dim` up reads correctly; more than a kilobyte of padding is not
        // something mmdb writes.
        if stride < dim || stride > dim + 256 {
            return Err(bad(format!("stride {stride} for dimension {dim}")));
        }
        let index_words = if vecs.version() == 1 { 1 } else { 2 };
        let size = count
            .checked_mul(stride * 4 + 4 * index_words)
            .and_then(|s| s.checked_add(DATA_AT));
        if size != Some(body.len()) {
            return Err(bad(format!(
                "{count} vectors of dimension {dim} (stride {stride}) do not match the size"
            )));
        }
        let graph = FramedFile::open(graph_path, GRAPH_MAGIC, GRAPH_VERSION)?;
        Ok(VectorColumn {
            vecs,
            graph,
            dim,
            stride,
            count,
            graph_checked: AtomicBool::new(false),
        })
    }

    /// Verifies both files and the graph structure now, as the first [`load`](Self::load) would
    /// (the background verification after open). A failure is remembered and returned by
    /// every `load`.
    pub fn verify(&self) {
        let _ = self.load();
    }

    /// Verifies both files' checksums (once) and returns the vectors, their row positions and
    /// the graph.
    pub fn load(&self) -> Result<(VectorsView<'_>, &[u32], GraphView<'_>)> {
        self.vecs.verify_all()?;
        self.graph.verify_all()?;
        let (data, rows, _) = self.raw();
        let graph = if self.graph_checked.load(Ordering::Acquire) {
            GraphView::reparse(self.graph.body(), self.graph.path())?
        } else {
            let g = GraphView::parse(self.graph.body(), self.graph.path())?;
            self.graph_checked.store(true, Ordering::Release);
            g
        };
        Ok((
            VectorsView::strided(data, self.dim, self.stride),
            rows,
            graph,
        ))
    }

    /// Number of vectors.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Vector `i` (verifying only the blocks it lies in).
    pub fn vector(&self, i: usize) -> Result<&[f32]> {
        if i >= self.count {
            return Err(Error::corrupted(
                self.vecs.path(),
                format!("vector {i} of {} requested", self.count),
            ));
        }
        // i < count: `open` checked that count * stride * 4 bytes fit the body.
        let at = DATA_AT + i * self.stride * 4;
        self.vecs.verify_range(at, self.dim * 4)?;
        self.raw()
            .0
            .get(i * self.stride..)
            .and_then(|v| v.get(..self.dim))
            .ok_or_else(|| {
                Error::corrupted(
                    self.vecs.path(),
                    format!("vector {i} of {} is past the end of the data", self.count),
                )
            })
    }

    /// Row positions of the vectors, in stored order (verifying their blocks).
    pub fn rows(&self) -> Result<&[u32]> {
        let at = DATA_AT + self.count * self.stride * 4;
        self.vecs.verify_range(at, self.count * 4)?;
        Ok(self.raw().1)
    }

    /// The index of the vector of row position `pos`, if the row has one.
    pub fn index_of_row(&self, pos: u32) -> Result<Option<usize>> {
        let rows = self.rows()?;
        if self.vecs.version() == 1 {
            return Ok(rows.binary_search(&pos).ok());
        }
        let at = DATA_AT + self.count * self.stride * 4 + self.count * 4;
        self.vecs.verify_range(at, self.count * 4)?;
        let by_row = self.raw().2;
        let row_of = |i: u32| rows.get(i as usize).copied().unwrap_or(u32::MAX);
        Ok(by_row
            .binary_search_by_key(&pos, |&i| row_of(i))
            .ok()
            .and_then(|j| by_row.get(j))
            .map(|&i| i as usize)
            .filter(|&i| i < self.count))
    }

    /// Vectors (padding included), row positions and (from version 2) vector indices by row.
    fn raw(&self) -> (&[f32], &[u32], &[u32]) {
        let body = self.vecs.body();
        // `open` checked the body size against count and stride; empty slices otherwise.
        let split = DATA_AT + self.count * self.stride * 4;
        let data = body.get(DATA_AT..split).and_then(bytes_as_f32);
        let index = body.get(split..).and_then(bytes_as_u32);
        let (data, index) = (data.unwrap_or(&[]), index.unwrap_or(&[]));
        let (rows, by_row) = index.split_at(self.count.min(index.len()));
        (data, rows, by_row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 2-d vectors of rows 0, 2 and 5; vector `i` is `[i, -i]` in input order.
    fn input() -> (Vec<f32>, Vec<u32>) {
        (vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0], vec![0, 2, 5])
    }

    /// Opening reads only the graph file's frame, not the graph.
    fn write_empty_graph(path: &Path) {
        write_graph(&crate::storage::RealFileSystem, path, &[]).unwrap();
    }

    /// A graph file that [`VectorColumn::load`] accepts (no nodes: load does not match it to the
    /// vectors; searches would fall back to the exact scan).
    fn write_loadable_graph(path: &Path) {
        let empty = crate::index::build_graph(
            VectorsView::new(&[], 1),
            crate::Metric::L2,
            &crate::HnswParams::default(),
        )
        .unwrap();
        write_graph(&crate::storage::RealFileSystem, path, &empty).unwrap();
    }

    /// Writes a vector file by hand: `version`, the header words, then the body words from
    /// offset 64 (data as f32 bits, then the index words).
    fn write_by_hand(path: &Path, version: u32, header: &[u32], body: impl Iterator<Item = u32>) {
        let mut w = FramedWriter::create(&crate::storage::RealFileSystem, path, VEC_MAGIC, version)
            .unwrap();
        let head: Vec<u8> = header.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write(&head).unwrap();
        w.align(DATA_AT).unwrap();
        w.write(&body.flat_map(u32::to_le_bytes).collect::<Vec<u8>>())
            .unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn stored_order_and_lookup_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let (v, g) = (dir.path().join("v"), dir.path().join("g"));
        let (data, rows) = input();
        write_vectors(
            &crate::storage::RealFileSystem,
            &v,
            2,
            &data,
            &rows,
            &[2, 0, 1],
        )
        .unwrap();
        write_empty_graph(&g);
        let col = VectorColumn::open(&v, &g, 2).unwrap();
        assert_eq!(col.rows().unwrap(), &[5, 0, 2]);
        assert_eq!(col.vector(0).unwrap(), &[2.0, -2.0]);
        for (row, want) in [
            (0, Some(1)),
            (2, Some(2)),
            (5, Some(0)),
            (1, None),
            (9, None),
        ] {
            assert_eq!(col.index_of_row(row).unwrap(), want, "row {row}");
        }
    }

    #[test]
    fn vectors_of_2_kib_are_stored_one_cache_line_apart_more() {
        let dir = tempfile::tempdir().unwrap();
        let (v, g) = (dir.path().join("v"), dir.path().join("g"));
        let dim = 512;
        let data: Vec<f32> = (0..3 * dim).map(|x| x as f32).collect();
        write_vectors(
            &crate::storage::RealFileSystem,
            &v,
            dim,
            &data,
            &[1, 4, 7],
            &[1, 2, 0],
        )
        .unwrap();
        write_loadable_graph(&g);
        let col = VectorColumn::open(&v, &g, dim).unwrap();
        assert_eq!(col.stride, dim + 16);
        assert_eq!(col.vector(0).unwrap(), &data[dim..2 * dim]);
        assert_eq!(col.vector(2).unwrap(), &data[..dim]);
        assert!(
            col.vector(3).is_err(),
            "out of range is an error, not a panic"
        );
        let (view, rows, _) = col.load().unwrap();
        assert_eq!((view.len(), view.dim(), view.stride()), (3, dim, dim + 16));
        assert_eq!(view.get(1), &data[2 * dim..]);
        assert_eq!(rows, &[4, 7, 1]);
        assert_eq!(col.index_of_row(7).unwrap(), Some(1));
        // The padding is zeros.
        assert!(view.data()[dim..dim + 16].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn a_stride_below_the_dimension_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (v, g) = (dir.path().join("v"), dir.path().join("g"));
        write_by_hand(&v, 3, &[2, 1, 1], [0u32; 4].into_iter());
        write_empty_graph(&g);
        let err = VectorColumn::open(&v, &g, 2).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted { detail, .. } if detail.contains("stride 1")),
            "{err}"
        );
    }

    #[test]
    fn version_2_files_without_a_stride_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let (v, g) = (dir.path().join("v"), dir.path().join("g"));
        let (data, _) = input();
        // Stored order 2, 0, 1: rows 5, 0, 2; by_row lists stored indices 1, 2, 0.
        let stored = [2usize, 0, 1]
            .iter()
            .flat_map(|&i| data[2 * i..2 * i + 2].iter().map(|x| x.to_bits()));
        write_by_hand(&v, 2, &[2, 3], stored.chain([5, 0, 2, 1, 2, 0]));
        write_loadable_graph(&g);
        let col = VectorColumn::open(&v, &g, 2).unwrap();
        assert_eq!(col.rows().unwrap(), &[5, 0, 2]);
        assert_eq!(col.vector(0).unwrap(), &[2.0, -2.0]);
        assert_eq!(col.index_of_row(0).unwrap(), Some(1));
        assert_eq!(col.index_of_row(5).unwrap(), Some(0));
        assert_eq!(col.load().unwrap().0.get(2), &[1.0, -1.0]);
    }

    #[test]
    fn version_1_files_in_row_order_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let (v, g) = (dir.path().join("v"), dir.path().join("g"));
        let (data, rows) = input();
        let words = data.iter().map(|x| x.to_bits()).chain(rows.iter().copied());
        write_by_hand(&v, 1, &[2, 3], words);
        write_empty_graph(&g);
        let col = VectorColumn::open(&v, &g, 2).unwrap();
        assert_eq!(col.rows().unwrap(), &[0, 2, 5]);
        assert_eq!(col.index_of_row(5).unwrap(), Some(2));
        assert_eq!(col.index_of_row(3).unwrap(), None);
        assert_eq!(col.vector(2).unwrap(), &[2.0, -2.0]);
    }
}
