//! The serialised HNSW graph: mmdb's own layout, read in place from an mmap.
//!
//! Every field is a little-endian `u32` ("word"); sections follow each other with no gaps, so the
//! payload is 4-byte aligned wherever the storage layer puts it at a 4-byte boundary (parsing does
//! not rely on alignment: words are read with `u32::from_le_bytes`).
//!
//! ```text
//! word  0        magic  b"MMHG"
//! word  1        version (1)
//! word  2        n            nodes = vectors of the segment, local ids 0..n
//! word  3        layers L     0 iff n == 0; at most 16
//! word  4        entry        global id of the search entry point (a node of layer L-1)
//! word  5        m            max degree on layers >= 1 (informative)
//! word  6        m0           max degree on layer 0 (informative)
//! word  7        reserved (0)
//! words 8..8+2L  per layer l: count_l, edges_l           (count_0 == n)
//! then, for l = 0..L:
//!   +-----------------------------+  only for l >= 1: the layer's nodes as global ids,
//!   | nodes_l[count_l]            |  strictly ascending, a subset of layer l-1's nodes
//!   +-----------------------------+
//!   | offsets_l[count_l + 1]      |  CSR: node i's neighbours are neigh_l[offsets_l[i]..offsets_l[i+1]]
//!   +-----------------------------+  offsets_l[0] == 0, non-decreasing, last == edges_l
//!   | neigh_l[edges_l]            |  layer 0: global ids (< n); layer l >= 1: local indices (< count_l)
//!   +-----------------------------+
//! ```
//! The total length must be exactly the sum of the sections. A checksum is the storage layer's job
//! (it wraps this payload); [`GraphView::parse`] checks every bound so that corrupt bytes give
//! [`Error::Corrupted`] instead of a panic or an out-of-bounds read during search.

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

use std::path::Path;

use crate::{Error, Result};

/// `b"MMHG"` read as a little-endian word.
pub const MAGIC: u32 = u32::from_le_bytes(*b"MMHG");
/// Current layout version.
pub const VERSION: u32 = 1;
/// Most layers a graph may have (hnsw_rs's own limit).
pub const MAX_LAYERS: usize = 16;
const HEADER_WORDS: usize = 8;

/// Word offsets of one layer's sections.
#[derive(Debug, Clone, Copy, Default)]
struct LayerPos {
    count: u32,
    edges: u32,
    /// Start of `nodes_l` (unused for layer 0).
    nodes: usize,
    offsets: usize,
    neigh: usize,
}

/// A serialised graph read in place.
#[derive(Debug, Clone, Copy)]
pub struct GraphView<'a> {
    bytes: &'a [u8],
    n: u32,
    layers: usize,
    entry: u32,
    pos: [LayerPos; MAX_LAYERS],
}

/// Word `i` of `bytes`. Unchecked beyond the slice's own bounds check: read per search step.
#[inline]
#[expect(
    clippy::indexing_slicing,
    reason = "validated by parse: callers read header words after parse checked the header \
              length, and section words at offsets parse checked against the total length"
)]
fn word(bytes: &[u8], i: usize) -> u32 {
    let (b, _) = bytes[i * 4..i * 4 + 4].as_chunks::<4>();
    u32::from_le_bytes(b[0])
}

/// Words `from..to` as an iterator of u32.
#[inline]
#[expect(
    clippy::indexing_slicing,
    reason = "validated by parse: `from..to` lies inside a section (node list, offsets, or the \
              neighbours between two offsets that parse checked are ordered and <= edges_l)"
)]
fn words(bytes: &[u8], from: usize, to: usize) -> impl Iterator<Item = u32> + '_ {
    // `as_chunks` gives `[u8; 4]` items: one 32-bit load each (indexing four bytes compiled to
    // two 16-bit loads and a shift).
    bytes[from * 4..to * 4]
        .as_chunks::<4>()
        .0
        .iter()
        .map(|b| u32::from_le_bytes(*b))
}

impl<'a> GraphView<'a> {
    /// Checks and borrows graph bytes; `path` names the file in errors. Reads every word once
    /// (sequentially), allocates nothing.
    pub fn parse(bytes: &'a [u8], path: &Path) -> Result<GraphView<'a>> {
        Self::parse_with(bytes, path, true)
    }

    /// Borrows graph bytes that [`parse`](Self::parse) already accepted: checks the header and the
    /// layer table (a few words), not every edge. For readers that parsed the same immutable
    /// bytes before (a segment parses its graph once, then this per query).
    pub fn reparse(bytes: &'a [u8], path: &Path) -> Result<GraphView<'a>> {
        Self::parse_with(bytes, path, false)
    }

    fn parse_with(bytes: &'a [u8], path: &Path, check_edges: bool) -> Result<GraphView<'a>> {
        let bad = |detail: String| Error::corrupted(path, format!("HNSW graph: {detail}"));
        if !bytes.len().is_multiple_of(4) || bytes.len() < HEADER_WORDS * 4 {
            return Err(bad(format!(
                "length {} is not a whole header and words",
                bytes.len()
            )));
        }
        let total = bytes.len() / 4;
        if word(bytes, 0) != MAGIC {
            return Err(bad("bad magic".into()));
        }
        if word(bytes, 1) != VERSION {
            return Err(bad(format!("unsupported version {}", word(bytes, 1))));
        }
        let (n, layers, entry) = (word(bytes, 2), word(bytes, 3) as usize, word(bytes, 4));
        if layers > MAX_LAYERS || (layers == 0) != (n == 0) {
            return Err(bad(format!("{layers} layers for {n} nodes")));
        }
        let mut pos = [LayerPos::default(); MAX_LAYERS];
        let mut at = HEADER_WORDS + 2 * layers;
        if at > total {
            return Err(bad("layer table past the end".into()));
        }
        let mut below = n;
        for (l, slot) in pos.iter_mut().enumerate().take(layers) {
            let (count, edges) = (
                word(bytes, HEADER_WORDS + 2 * l),
                word(bytes, HEADER_WORDS + 2 * l + 1),
            );
            let ok_count = if l == 0 {
                count == n
            } else {
                count >= 1 && count <= below
            };
            if !ok_count {
                return Err(bad(format!("layer {l} has {count} nodes")));
            }
            let (c, e) = (count as usize, edges as usize);
            let nodes = at;
            let offsets = nodes + if l == 0 { 0 } else { c };
            let neigh = offsets + c + 1;
            let end = neigh + e;
            if end > total {
                return Err(bad(format!(
                    "layer {l} runs past the end ({end} > {total} words)"
                )));
            }
            *slot = LayerPos {
                count,
                edges,
                nodes,
                offsets,
                neigh,
            };
            below = count;
            at = end;
        }
        if at != total {
            return Err(bad(format!("{} trailing words", total - at)));
        }
        let view = GraphView {
            bytes,
            n,
            layers,
            entry,
            pos,
        };
        for l in (0..layers).filter(|_| check_edges) {
            view.check_layer(l)
                .map_err(|d| bad(format!("layer {l}: {d}")))?;
        }
        if layers > 0 && view.local_of(layers - 1, entry).is_none() {
            return Err(bad(format!("entry point {entry} is not on the top layer")));
        }
        Ok(view)
    }

    fn check_layer(&self, l: usize) -> std::result::Result<(), String> {
        let p = self.layer(l);
        let c = p.count as usize;
        if l > 0 {
            // Strictly ascending and a subset of the layer below (a merge walk).
            let mut below = (0..self.layer_len(l - 1)).map(|i| self.node_id(l - 1, i as u32));
            let mut prev: Option<u32> = None;
            for g in words(self.bytes, p.nodes, p.nodes + c) {
                if prev.is_some_and(|q| q >= g) || g >= self.n {
                    return Err(format!("node list not ascending or out of range at {g}"));
                }
                if !below.any(|b| b == g) {
                    return Err(format!("node {g} missing from the layer below"));
                }
                prev = Some(g);
            }
        }
        let edges = p.edges;
        let mut prev = 0u32;
        for (i, o) in words(self.bytes, p.offsets, p.offsets + c + 1).enumerate() {
            if (i == 0 && o != 0) || o < prev || o > edges {
                return Err(format!("bad offset {o} at node {i}"));
            }
            prev = o;
        }
        if prev != edges {
            return Err(format!("offsets end at {prev}, not {edges}"));
        }
        let bound = if l == 0 { self.n } else { p.count };
        if let Some(bad) =
            words(self.bytes, p.neigh, p.neigh + edges as usize).find(|&x| x >= bound)
        {
            return Err(format!("neighbour {bad} out of range (< {bound})"));
        }
        Ok(())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True for the graph of an empty segment.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of layers (0 when empty).
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Global id of the entry point (meaningless when empty).
    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// Max degree above layer 0, as recorded (informative).
    pub fn m(&self) -> u32 {
        word(self.bytes, 5)
    }

    /// Max degree on layer 0, as recorded (informative).
    pub fn m0(&self) -> u32 {
        word(self.bytes, 6)
    }

    /// Number of nodes on layer `l`.
    pub fn layer_len(&self, l: usize) -> usize {
        self.layer(l).count as usize
    }

    /// The sections of layer `l`.
    #[inline]
    #[expect(
        clippy::indexing_slicing,
        reason = "callers pass a layer below self.layers <= MAX_LAYERS (parse checked the \
                  count; searches walk only the graph's own layers)"
    )]
    fn layer(&self, l: usize) -> LayerPos {
        self.pos[l]
    }

    /// Global id of the `local`-th node of layer `l`.
    #[inline]
    pub fn node_id(&self, l: usize, local: u32) -> u32 {
        if l == 0 {
            local
        } else {
            word(self.bytes, self.layer(l).nodes + local as usize)
        }
    }

    /// Local index on layer `l` of global id `g`, if the node is on that layer.
    pub fn local_of(&self, l: usize, g: u32) -> Option<u32> {
        let p = self.layer(l);
        if l == 0 {
            return (g < self.n).then_some(g);
        }
        let (mut lo, mut hi) = (0usize, p.count as usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match word(self.bytes, p.nodes + mid).cmp(&g) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// Neighbours of the `local`-th node of layer `l` (global ids on layer 0, local indices above).
    #[inline]
    pub fn neighbours(&self, l: usize, local: u32) -> impl Iterator<Item = u32> + 'a {
        let p = self.layer(l);
        let (from, to) = (
            word(self.bytes, p.offsets + local as usize) as usize,
            word(self.bytes, p.offsets + local as usize + 1) as usize,
        );
        words(self.bytes, p.neigh + from, p.neigh + to)
    }

    /// Asks the CPU to start loading the neighbour list of the `local`-th node of layer `l` (a
    /// hint, as `storage::prefetch`), for the node the search will expand next.
    #[inline]
    pub fn prefetch_neighbours(&self, l: usize, local: u32) {
        let p = self.layer(l);
        let from = word(self.bytes, p.offsets + local as usize) as usize;
        if let Some(x) = self.bytes.get((p.neigh + from) * 4) {
            crate::storage::prefetch(x);
        }
    }
}

/// An in-memory graph, before serialisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphLayers {
    /// Number of nodes.
    pub n: u32,
    /// Global id of the entry point (on the top layer).
    pub entry: u32,
    /// Max degree above layer 0.
    pub m: u32,
    /// Max degree on layer 0.
    pub m0: u32,
    /// Layers from 0 up. Layer 0 lists all `n` nodes.
    pub layers: Vec<Layer>,
}

/// One layer: its nodes (global ids, ascending) and each node's neighbours (global ids).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    /// Global ids, ascending. For layer 0: `0..n`.
    pub nodes: Vec<u32>,
    /// `adj[i]` = neighbours (global ids) of `nodes[i]`.
    pub adj: Vec<Vec<u32>>,
}

impl GraphLayers {
    /// Serialises into the layout above. Upper-layer neighbours are turned into local indices;
    /// a neighbour that is not on the layer is dropped.
    pub fn encode(&self) -> Vec<u8> {
        let mut w: Vec<u32> = vec![
            MAGIC,
            VERSION,
            self.n,
            self.layers.len() as u32,
            self.entry,
            self.m,
            self.m0,
            0,
        ];
        let mut body: Vec<u32> = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let local = |g: u32| {
                if l == 0 {
                    Some(g)
                } else {
                    layer.nodes.binary_search(&g).ok().map(|i| i as u32)
                }
            };
            if l > 0 {
                body.extend_from_slice(&layer.nodes);
            }
            let lists: Vec<Vec<u32>> = layer
                .adj
                .iter()
                .map(|a| a.iter().filter_map(|&g| local(g)).collect())
                .collect();
            let mut off = 0u32;
            body.push(0);
            for a in &lists {
                off += a.len() as u32;
                body.push(off);
            }
            lists.iter().for_each(|a| body.extend_from_slice(a));
            w.push(layer.nodes.len() as u32);
            w.push(off);
        }
        w.extend_from_slice(&body);
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests;
