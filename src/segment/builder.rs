//! Building a segment: from rows (a flush, a bulk load), from other segments (a merge), or both.
//!
//! A merge reads the inputs' rows and vectors from their mapped files and writes the new
//! segment's files; the HNSW graph of each vector column starts from the graph of the input
//! with the most vectors in it (its kept nodes and links, renumbered, links to dropped rows
//! repaired) and inserts the other vectors (`index::build_graph_from`), instead of building
//! the whole graph again. Rows are read from the inputs and written one at a time, and the
//! vectors of one column go through a mapped scratch file, so a merge's heap holds neither;
//! per row it keeps its id and source, and per vector a few words of bookkeeping.

use std::borrow::Cow;
use std::path::Path;

use super::{
    DeleteBitmap, Segment, graph_path, rows::write_rows_with, rows_path, scratch_path, vec_path,
    vectors,
};
use crate::index::{
    GraphView, VectorsView, build_graph, build_graph_from, locality_order, renumber,
};
use crate::storage::{FileSystem, Mmap, WritableFile, bytes_as_f32};
use crate::{ColumnType, Error, Result, Row, RowId, TableSchema, Value};

/// One input of [`merge_segments`]: a segment and its deleted rows (dropped by the merge).
#[derive(Debug, Clone, Copy)]
pub struct MergeInput<'a> {
    /// The segment.
    pub seg: &'a Segment,
    /// Its rows to leave out.
    pub deleted: &'a DeleteBitmap,
}

/// How much graph work a build or merge did, over all vector columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildCounts {
    /// Vectors inserted into a graph (a from-scratch build inserts every vector).
    pub inserted: u64,
    /// Vectors kept, with their links, from an input's graph.
    pub reused: u64,
}

/// Where a row of the new segment comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Input `i`, row position `pos`.
    Input(usize, usize),
    /// `rows[i]`.
    New(usize),
}

/// Writes segment `id` holding the live rows of `inputs` and `rows` (validated; ids unique
/// across all of them), and opens it. Every file is fsynced and renamed into place before this
/// returns; the segment is live once a manifest lists it. See the module doc for how graphs are reused.
pub fn merge_segments(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u64,
    schema: &TableSchema,
    inputs: &[MergeInput<'_>],
    rows: &[(RowId, &Row)],
) -> Result<(Segment, BuildCounts)> {
    let mut counts = BuildCounts::default();
    let mut order: Vec<(RowId, Source)> = Vec::with_capacity(
        rows.len()
            + inputs
                .iter()
                .map(|i| i.seg.len() - i.deleted.count())
                .sum::<usize>(),
    );
    for (i, input) in inputs.iter().enumerate() {
        for (pos, &rid) in input.seg.ids().iter().enumerate() {
            if !input.deleted.contains(pos) {
                order.push((rid, Source::Input(i, pos)));
            }
        }
    }
    order.extend(
        rows.iter()
            .enumerate()
            .map(|(i, (rid, _))| (*rid, Source::New(i))),
    );
    order.sort_unstable_by_key(|o| o.0);
    if let Some(dup) = order
        .iter()
        .zip(order.iter().skip(1))
        .find(|(a, b)| a.0 == b.0)
    {
        return Err(Error::InvalidArgument(format!(
            "row id {} is in two inputs of segment {id}",
            dup.0.0
        )));
    }
    write_merged_rows(fs, &rows_path(dir, id), schema, inputs, rows, &order)?;
    let mut vector_columns = Vec::new();
    for (c, col) in schema.columns.iter().enumerate() {
        if !col.has_vector() || col.dim == 0 {
            continue;
        }
        vector_columns.push(c);
        let (inserted, reused) = write_column(fs, dir, id, schema, c, inputs, rows, &order)?;
        counts.inserted += inserted;
        counts.reused += reused;
    }
    Ok((Segment::open(dir, id, schema, &vector_columns)?, counts))
}

/// Writes the rows file: input rows read from their archives (vectors stay in the vector
/// files: a VECTOR value is written as "in the vector file" when the input has one), one row
/// at a time (see [`write_rows_with`]).
fn write_merged_rows(
    fs: &dyn FileSystem,
    path: &Path,
    schema: &TableSchema,
    inputs: &[MergeInput<'_>],
    rows: &[(RowId, &Row)],
    order: &[(RowId, Source)],
) -> Result<()> {
    let ids: Vec<RowId> = order.iter().map(|o| o.0).collect();
    write_rows_with(fs, path, &ids, |k| {
        let src = order
            .get(k)
            .map(|o| o.1)
            .ok_or_else(|| Error::InvalidArgument(format!("no row {k}")))?;
        match src {
            Source::New(i) => rows
                .get(i)
                .map(|r| Cow::Borrowed(r.1))
                .ok_or_else(|| Error::InvalidArgument(format!("no new row {i}"))),
            Source::Input(i, pos) => {
                let seg = input_seg(inputs, i)?;
                let mut row = seg.row_values(pos)?;
                for (c, v) in row.values.iter_mut().enumerate() {
                    let is_vector = matches!(
                        schema.columns.get(c).map(|col| col.ty),
                        Some(ColumnType::Vector(_))
                    );
                    if is_vector && seg.has_vector(c, pos)? {
                        // Written as "in the vector file"; the contents are not read.
                        *v = Value::Vector(Vec::new());
                    }
                }
                Ok(Cow::Owned(row))
            }
        }
    })
}

/// Writes the vector and graph files of column `c`; returns the vectors inserted into the
/// graph and those reused from an input's graph.
#[allow(clippy::too_many_arguments)]
fn write_column(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u64,
    schema: &TableSchema,
    c: usize,
    inputs: &[MergeInput<'_>],
    rows: &[(RowId, &Row)],
    order: &[(RowId, Source)],
) -> Result<(u64, u64)> {
    let col = schema
        .columns
        .get(c)
        .ok_or_else(|| Error::InvalidArgument(format!("no column {c}")))?;
    let dim = col.dim as usize;
    // Each input's vectors (stored order), their row positions and graph.
    let mut loaded = Vec::with_capacity(inputs.len());
    for input in inputs {
        loaded.push(input.seg.column_data(c)?);
    }
    // Per input: row position -> stored index of its vector (u32::MAX: none).
    let by_pos: Vec<Vec<u32>> = inputs
        .iter()
        .zip(&loaded)
        .map(|(input, l)| {
            let mut m = vec![u32::MAX; input.seg.len()];
            if let Some((_, vrows, _)) = l {
                for (stored, &pos) in vrows.iter().enumerate() {
                    if let Some(x) = m.get_mut(pos as usize) {
                        *x = stored as u32;
                    }
                }
            }
            m
        })
        .collect();
    // The new segment's vectors in row order go to a scratch file, then are read through a
    // map: a merge of a million 512-d rows would otherwise copy 2 GB onto the heap.
    let mut scratch = Scratch::create(fs, &scratch_path(dir, id, c))?;
    let mut positions = Vec::with_capacity(order.len());
    // Per input: stored index -> local id in the new segment (None: dropped).
    let mut maps: Vec<Vec<Option<u32>>> = loaded
        .iter()
        .map(|l| vec![None; l.as_ref().map_or(0, |(v, _, _)| v.len())])
        .collect();
    for (out_pos, &(_, src)) in order.iter().enumerate() {
        let v = match src {
            Source::Input(i, pos) => {
                let stored = by_pos
                    .get(i)
                    .and_then(|m| m.get(pos))
                    .copied()
                    .unwrap_or(u32::MAX);
                let view = loaded.get(i).and_then(|l| l.as_ref()).map(|l| l.0);
                let slot = maps.get_mut(i).and_then(|m| m.get_mut(stored as usize));
                match (view, slot) {
                    (Some(view), Some(slot)) => {
                        *slot = Some(positions.len() as u32);
                        Some(view.get(stored as usize))
                    }
                    _ => None,
                }
            }
            Source::New(i) => rows
                .get(i)
                .and_then(|r| r.1.vector(c))
                .filter(|v| v.len() == dim),
        };
        if let Some(v) = v {
            scratch.push(v)?;
            positions.push(out_pos as u32);
        }
    }
    let data = scratch.map()?;
    let data = bytes_as_f32(data.bytes()).unwrap_or(&[]);
    // The graph is built (or extended) in row order, then renumbered (and the vectors stored)
    // in an order that puts neighbours close together (see `index::reorder`).
    let mut reused = 0;
    let (graph, order) = if positions.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let view = VectorsView::new(data, dim);
        let base = loaded
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|(v, _, g)| (i, v.len(), g)))
            .max_by_key(|(_, n, _)| *n);
        let base_map = base.and_then(|(i, _, g)| Some((g, maps.get(i)?)));
        let built = match base_map {
            Some((g, map)) if map.iter().any(Option::is_some) => {
                // Dot graphs are built again (see `build_graph_from`).
                if col.metric != crate::Metric::Dot {
                    reused = map.iter().filter(|m| m.is_some()).count() as u64;
                }
                build_graph_from(view, col.metric, &schema.hnsw, g, map)?
            }
            _ => build_graph(view, col.metric, &schema.hnsw)?,
        };
        let path = graph_path(dir, id, c);
        let parsed = GraphView::parse(&built, &path)?;
        let order = locality_order(&parsed);
        (renumber(&parsed, &order), order)
    };
    vectors::write_vectors(fs, &vec_path(dir, id, c), dim, data, &positions, &order)?;
    vectors::write_graph(fs, &graph_path(dir, id, c), &graph)?;
    Ok((positions.len() as u64 - reused, reused))
}

fn input_seg<'a>(inputs: &[MergeInput<'a>], i: usize) -> Result<&'a Segment> {
    inputs
        .get(i)
        .map(|x| x.seg)
        .ok_or_else(|| Error::InvalidArgument(format!("no merge input {i}")))
}

/// A file of vectors written once, then mapped for reading; removed when dropped (best effort:
/// a leftover `.tmp` file is removed at the next open).
struct Scratch<'a> {
    fs: &'a dyn FileSystem,
    path: std::path::PathBuf,
    file: Box<dyn WritableFile>,
    len: u64,
    buf: Vec<u8>,
    map: Option<Mmap>,
}

impl<'a> Scratch<'a> {
    const FLUSH_AT: usize = 1 << 20;

    fn create(fs: &'a dyn FileSystem, path: &Path) -> Result<Scratch<'a>> {
        let file = fs.create(path).map_err(|e| Error::io(path, e))?;
        Ok(Scratch {
            fs,
            path: path.to_path_buf(),
            file,
            len: 0,
            buf: Vec::with_capacity(Self::FLUSH_AT),
            map: None,
        })
    }

    fn push(&mut self, v: &[f32]) -> Result<()> {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        if self.buf.len() >= Self::FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.len)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Everything pushed, mapped (not durable: nothing refers to this file after a crash).
    fn map(&mut self) -> Result<&Mmap> {
        self.flush()?;
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.map.insert(Mmap::map(&f, &self.path)?))
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        self.map = None;
        let _ = crate::storage::remove_file(self.fs, &self.path);
    }
}
