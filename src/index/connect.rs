//! Makes every node reachable on layer 0 from the entry point.
//!
//! HNSW graphs can leave a few nodes with no incoming edge (their would-be in-neighbours pruned
//! them); hnsw_rs's parallel insertion also races on its first points (two threads can both find
//! no entry point and return without linking). An unreachable node is a row that unfiltered graph
//! search can never return, so each one gets an incoming edge: from a reachable out-neighbour when
//! it has one, else from its nearest reachable node (an exact scan; rare).

use super::VectorsView;

/// Adds edges to `adj` (layer 0, global ids) until all nodes are reachable from `entry`.
/// `vectors` are the build vectors. Returns how many nodes had to be linked.
pub(super) fn connect_layer0(adj: &mut [Vec<u32>], entry: u32, vectors: VectorsView<'_>) -> usize {
    let n = adj.len();
    let mut linked = 0;
    loop {
        let reached = reachable(adj, entry);
        let unreached: Vec<u32> = (0..n as u32).filter(|&u| !reached[u as usize]).collect();
        if unreached.is_empty() {
            return linked;
        }
        let mut progress = false;
        for &u in &unreached {
            if let Some(&v) = adj[u as usize].iter().find(|&&v| reached[v as usize]) {
                adj[v as usize].push(u);
                linked += 1;
                progress = true;
            }
        }
        if progress {
            continue;
        }
        // No unreached node points into the reached part: link each to its nearest reached node.
        for &u in &unreached {
            let d = |v: usize| super::l2_sq(vectors.get(u as usize), vectors.get(v));
            let nearest = (0..n)
                .filter(|&v| reached[v])
                .min_by(|&a, &b| d(a).total_cmp(&d(b)))
                .unwrap_or(entry as usize);
            adj[nearest].push(u);
            adj[u as usize].push(nearest as u32);
            linked += 1;
        }
    }
}

/// Adds the reverse of every edge `u -> v` to `v`'s list while it has fewer than `max` entries.
/// hnsw_rs's neighbour heuristic drops exact duplicates (`dist <= dist`), which leaves rows of
/// identical vectors with one edge each: reverse edges make such chains walkable both ways, so
/// that search from any start node, not only the entry point, reaches them.
#[cfg(feature = "__internals")]
pub(super) fn add_reverse_edges(adj: &mut [Vec<u32>], max: usize) {
    for u in 0..adj.len() {
        for i in 0..adj[u].len() {
            let v = adj[u][i] as usize;
            if adj[v].len() < max && !adj[v].contains(&(u as u32)) {
                adj[v].push(u as u32);
            }
        }
    }
}

fn reachable(adj: &[Vec<u32>], entry: u32) -> Vec<bool> {
    let mut seen = vec![false; adj.len()];
    let mut stack = vec![entry];
    seen[entry as usize] = true;
    while let Some(u) = stack.pop() {
        for &v in &adj[u as usize] {
            if !std::mem::replace(&mut seen[v as usize], true) {
                stack.push(v);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolated_and_dangling_nodes_get_linked() {
        let data = [0.0f32, 1.0, 2.0, 3.0, 10.0];
        let v = VectorsView::new(&data, 1);
        // 0 <-> 1; 2 -> 1 (no way in); 3 -> 2; 4 isolated.
        let mut adj = vec![vec![1], vec![0], vec![1], vec![2], vec![]];
        let linked = connect_layer0(&mut adj, 0, v);
        assert_eq!(reachable(&adj, 0), vec![true; 5]);
        assert_eq!(linked, 3);
        assert!(
            adj[3].contains(&4),
            "4 linked from its nearest reached node"
        );
    }
}
