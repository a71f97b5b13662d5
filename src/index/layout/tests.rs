//! Layout round trip and corruption handling.

use std::path::Path;

use super::*;
use crate::index::{VectorsView, search_graph};
use crate::{Error, Metric};

/// 5 nodes; layer 1 = {1, 3}, layer 2 = {3}.
fn sample() -> GraphLayers {
    GraphLayers {
        n: 5,
        entry: 3,
        m: 2,
        m0: 4,
        layers: vec![
            Layer {
                nodes: (0..5).collect(),
                adj: vec![vec![1, 2], vec![0, 3], vec![0, 4, 3], vec![1, 2], vec![2]],
            },
            Layer {
                nodes: vec![1, 3],
                adj: vec![vec![3], vec![1]],
            },
            Layer {
                nodes: vec![3],
                adj: vec![vec![]],
            },
        ],
    }
}

#[test]
fn round_trip_reads_every_list() {
    let g = sample();
    let bytes = g.encode();
    assert_eq!(bytes.len() % 4, 0);
    let v = GraphView::parse(&bytes, Path::new("g")).unwrap();
    assert_eq!((v.len(), v.layers(), v.entry()), (5, 3, 3));
    for (l, layer) in g.layers.iter().enumerate() {
        assert_eq!(v.layer_len(l), layer.nodes.len());
        for (i, want) in layer.adj.iter().enumerate() {
            let got: Vec<u32> = v.neighbours(l, i as u32).map(|x| v.node_id(l, x)).collect();
            assert_eq!(&got, want, "layer {l} node {i}");
            assert_eq!(v.local_of(l, layer.nodes[i]), Some(i as u32));
        }
    }
    assert_eq!(v.local_of(1, 2), None);
    let empty = GraphLayers::default().encode();
    let e = GraphView::parse(&empty, Path::new("g")).unwrap();
    assert!(e.is_empty());
}

fn assert_corrupted(bytes: &[u8], what: &str) {
    match GraphView::parse(bytes, Path::new("seg/col.hnsw")) {
        Err(Error::Corrupted { path, .. }) => assert_eq!(path, Path::new("seg/col.hnsw")),
        other => panic!("{what}: expected Corrupted, got {other:?}"),
    }
}

#[test]
fn truncation_and_bad_header_are_corrupted() {
    let bytes = sample().encode();
    for len in 0..bytes.len() {
        assert_corrupted(&bytes[..len], &format!("truncated to {len}"));
    }
    let mut extra = bytes.clone();
    extra.extend_from_slice(&[0; 4]);
    assert_corrupted(&extra, "trailing word");
    for w in [0usize, 1, 2, 3, 4] {
        let mut b = bytes.clone();
        b[w * 4..w * 4 + 4].copy_from_slice(&77u32.to_le_bytes());
        assert_corrupted(&b, &format!("header word {w}"));
    }
}

/// Every word set to hostile values: parse fails cleanly or, when the result is still a valid
/// graph, searching it neither panics nor returns ids out of range.
#[test]
fn any_damaged_word_is_caught_or_harmless() {
    let bytes = sample().encode();
    let data: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let vectors = VectorsView::new(&data, 2);
    for w in 0..bytes.len() / 4 {
        for val in [0u32, 1, 2, 4, 5, 6, 255, u32::MAX, 1 << 31] {
            let mut b = bytes.clone();
            b[w * 4..w * 4 + 4].copy_from_slice(&val.to_le_bytes());
            if let Ok(v) = GraphView::parse(&b, Path::new("g")) {
                let hits = search_graph(&v, vectors, Metric::L2, &[1.0, 2.0], 5, 8, None);
                assert!(hits.iter().all(|h| h.0 < 5), "word {w} = {val}");
            }
        }
    }
}
