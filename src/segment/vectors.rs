//! The vector file of one vector column of a segment, and its HNSW graph file.
//!
//! Vector file body (framed, magic `\x89MMDBVEC`, version 1):
//! ```text
//! 0    dim    u32
//! 4    count  u32                  rows of the segment that have a vector in this column
//! 8    pad to 64
//! 64   data   [f32; count * dim]   row-major, normalised for cosine
//! ..   rows   [u32; count]         segment row position of each vector, ascending
//! ```
//! Graph file body (framed, magic `\x89MMDBHNS`, version 1): the bytes of
//! `crate::index::build_graph`, read in place with `GraphView::parse`.
//!
//! Both files are read at random by searches, so their block CRCs are verified as a whole, once
//! (then the pages are released with `MADV_DONTNEED`): by a background thread started at open
//! (`DatabaseBuilder::verify_in_background`, the default) or else on the first search of the
//! segment's column. Open itself stays a few page faults, and no search ever runs on unverified
//! bytes: a search that arrives first waits for the verification.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::index::{GraphView, VectorsView};
use crate::storage::{FramedFile, FramedWriter, bytes_as_f32, bytes_as_u32};
use crate::{Error, Result};

const VEC_MAGIC: [u8; 8] = *b"\x89MMDBVEC";
const GRAPH_MAGIC: [u8; 8] = *b"\x89MMDBHNS";
const VERSION: u32 = 1;
const DATA_AT: usize = 64;

/// Writes a vector file.
pub fn write_vectors(path: &Path, dim: usize, vectors: &[f32], rows: &[u32]) -> Result<()> {
    let mut w = FramedWriter::create(path, VEC_MAGIC, VERSION)?;
    w.write(&(dim as u32).to_le_bytes())?;
    w.write(&(rows.len() as u32).to_le_bytes())?;
    w.align(DATA_AT)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for chunk in vectors.chunks(1 << 18) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        w.write(&buf)?;
    }
    buf.clear();
    for r in rows {
        buf.extend_from_slice(&r.to_le_bytes());
    }
    w.write(&buf)?;
    w.finish()?;
    Ok(())
}

/// Writes a graph file.
pub fn write_graph(path: &Path, graph: &[u8]) -> Result<()> {
    let mut w = FramedWriter::create(path, GRAPH_MAGIC, VERSION)?;
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
    count: usize,
    /// Set once the graph passed the full [`GraphView::parse`]; later loads only re-read its
    /// header (the bytes are immutable). Checking every edge on each query cost about 1 ms at
    /// 100,000 nodes, most of an unfiltered search.
    graph_checked: AtomicBool,
}

impl VectorColumn {
    /// Opens both files, checking headers and sizes (not the data: see the module doc).
    pub fn open(vec_path: &Path, graph_path: &Path, dim: usize) -> Result<VectorColumn> {
        let vecs = FramedFile::open(vec_path, VEC_MAGIC, VERSION)?;
        let body = vecs.body();
        let bad = |d: String| Error::corrupted(vec_path, d);
        if body.len() < DATA_AT {
            return Err(bad("vector body too short".into()));
        }
        vecs.verify_range(0, 8)?;
        let fdim = u32::from_le_bytes(body[0..4].try_into().unwrap_or_default()) as usize;
        let count = u32::from_le_bytes(body[4..8].try_into().unwrap_or_default()) as usize;
        if fdim != dim {
            return Err(bad(format!("dimension {fdim}, the schema says {dim}")));
        }
        if DATA_AT + count * dim * 4 + count * 4 != body.len() {
            return Err(bad(format!(
                "{count} vectors of dimension {dim} do not match the size"
            )));
        }
        let graph = FramedFile::open(graph_path, GRAPH_MAGIC, VERSION)?;
        Ok(VectorColumn {
            vecs,
            graph,
            dim,
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
        let (data, rows) = self.raw();
        let graph = if self.graph_checked.load(Ordering::Acquire) {
            GraphView::reparse(self.graph.body(), self.graph.path())?
        } else {
            let g = GraphView::parse(self.graph.body(), self.graph.path())?;
            self.graph_checked.store(true, Ordering::Release);
            g
        };
        Ok((
            VectorsView {
                data,
                dim: self.dim,
            },
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
        let at = DATA_AT + i * self.dim * 4;
        self.vecs.verify_range(at, self.dim * 4)?;
        Ok(&self.raw().0[i * self.dim..(i + 1) * self.dim])
    }

    /// Row positions of the vectors (verifying their blocks).
    pub fn rows(&self) -> Result<&[u32]> {
        let at = DATA_AT + self.count * self.dim * 4;
        self.vecs.verify_range(at, self.count * 4)?;
        Ok(self.raw().1)
    }

    fn raw(&self) -> (&[f32], &[u32]) {
        let body = self.vecs.body();
        let split = DATA_AT + self.count * self.dim * 4;
        let data = bytes_as_f32(&body[DATA_AT..split]).unwrap_or(&[]);
        let rows = bytes_as_u32(&body[split..]).unwrap_or(&[]);
        (data, rows)
    }
}
