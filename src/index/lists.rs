//! Neighbour lists of a graph under construction (`insert`'s builder).
//!
//! Layer 0, which every node is on and every beam search reads, lives in one flat array of
//! fixed-size slots, hnswlib's layout: per node a count and `2m` ids. Reading a list is one cache
//! miss on its slot, not the three pointer hops of a `Vec` of `Vec`s behind a mutex, and a
//! node's list costs `4 (2m + 1)` bytes with no allocation. Upper layers (about one node in
//! `m`) keep a small `Vec` per layer behind a mutex.
//!
//! Concurrency: writers of a node's layer-0 list hold that node's lock (one byte per node).
//! Readers do not lock: they load the count, then that many ids, each an atomic load. A reader
//! racing a writer that rewrites a list may see a mix of the old and the new ids. Every id it
//! sees is a node of the graph, so a build search can only lose or gain a candidate, never read
//! out of bounds; hnswlib's readers lock instead, which costs an atomic read-modify-write on a
//! line that other threads write.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

/// Marks a node without upper-layer lists in `upper_of`.
const NO_UPPER: u32 = u32::MAX;

pub(super) struct BuildLists {
    /// Layer-0 capacity (`2m`).
    m0: usize,
    /// Per node `1 + m0` words: the count, then the ids.
    l0: Vec<AtomicU32>,
    /// Guards writes to each node's layer-0 slot.
    locks: Vec<Mutex<()>>,
    /// Index into `upper` of each node's upper lists, or [`NO_UPPER`].
    upper_of: Vec<u32>,
    /// `upper[i][l - 1]`: a node's list on layer `l >= 1`.
    upper: Vec<Mutex<Vec<Vec<u32>>>>,
}

impl BuildLists {
    /// Empty lists for nodes of `levels`, layer-0 capacity `m0`, upper capacity `m`.
    pub fn new(levels: &[u8], m: usize, m0: usize) -> BuildLists {
        let n = levels.len();
        let mut upper_of = vec![NO_UPPER; n];
        let mut upper = Vec::new();
        for (node, &level) in levels.iter().enumerate() {
            if level > 0 {
                upper_of[node] = upper.len() as u32;
                let lists = (0..level).map(|_| Vec::with_capacity(m)).collect();
                upper.push(Mutex::new(lists));
            }
        }
        BuildLists {
            m0,
            l0: (0..n * (m0 + 1)).map(|_| AtomicU32::new(0)).collect(),
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            upper_of,
            upper,
        }
    }

    /// Node `node`'s layer-0 slot: the count word, then `m0` ids.
    #[inline(always)]
    fn slot(&self, node: u32) -> &[AtomicU32] {
        let start = node as usize * (self.m0 + 1);
        self.l0.get(start..start + self.m0 + 1).unwrap_or(&[])
    }

    #[inline(always)]
    fn upper_lists(&self, node: u32) -> Option<&Mutex<Vec<Vec<u32>>>> {
        let i = *self.upper_of.get(node as usize)?;
        self.upper.get(i as usize)
    }

    /// Starts loading `node`'s layer-0 list into the cache.
    #[inline(always)]
    pub fn prefetch_l0(&self, node: u32) {
        if let Some(first) = self.slot(node).first() {
            crate::storage::prefetch(first);
        }
    }

    /// Copies `node`'s list on layer `l` into `out` (empty if the node is not on the layer).
    #[inline(always)]
    pub fn copy(&self, node: u32, l: usize, out: &mut Vec<u32>) {
        out.clear();
        if l == 0 {
            let slot = self.slot(node);
            let Some((count, ids)) = slot.split_first() else {
                return;
            };
            let len = (count.load(Ordering::Acquire) as usize).min(ids.len());
            out.extend(ids.iter().take(len).map(|x| x.load(Ordering::Relaxed)));
        } else if let Some(lists) = self.upper_lists(node)
            && let Some(list) = lists.lock().get(l - 1)
        {
            out.extend_from_slice(list);
        }
    }

    /// Replaces `node`'s list on layer `l` (on layer 0, ids beyond its `2m` slots are dropped).
    pub fn set(&self, node: u32, l: usize, list: &[u32]) {
        if l == 0 {
            let _guard = self.locks.get(node as usize).map(|m| m.lock());
            self.write_l0(node, list);
        } else if let Some(lists) = self.upper_lists(node)
            && let Some(slot) = lists.lock().get_mut(l - 1)
        {
            slot.clear();
            slot.extend_from_slice(list);
        }
    }

    /// Writes a layer-0 list; the caller holds the node's lock. Ids first, then the count, so a
    /// reader that sees the count sees ids at least as new (see the module doc).
    #[inline(always)]
    fn write_l0(&self, node: u32, list: &[u32]) {
        let slot = self.slot(node);
        let Some((count, ids)) = slot.split_first() else {
            return;
        };
        let len = list.len().min(ids.len());
        for (dst, &id) in ids.iter().zip(list) {
            dst.store(id, Ordering::Relaxed);
        }
        count.store(len as u32, Ordering::Release);
    }

    /// Adds `q` to `e`'s list on layer `l` if it is not there. When the list is full,
    /// `shrink(list with q appended)` picks the new list instead.
    #[inline(always)]
    pub fn add(
        &self,
        e: u32,
        q: u32,
        l: usize,
        cap: usize,
        scratch: &mut Vec<u32>,
        shrink: impl FnOnce(&[u32]) -> Vec<u32>,
    ) {
        if l == 0 {
            let _guard = self.locks.get(e as usize).map(|m| m.lock());
            self.copy(e, 0, scratch);
            if scratch.contains(&q) {
                return;
            }
            if scratch.len() < cap.min(self.m0) {
                if let Some((count, ids)) = self.slot(e).split_first()
                    && let Some(dst) = ids.get(scratch.len())
                {
                    dst.store(q, Ordering::Relaxed);
                    count.store(scratch.len() as u32 + 1, Ordering::Release);
                }
                return;
            }
            scratch.push(q);
            let kept = shrink(scratch);
            self.write_l0(e, &kept);
        } else if let Some(lists) = self.upper_lists(e) {
            let mut lists = lists.lock();
            let Some(list) = lists.get_mut(l - 1) else {
                return;
            };
            if list.contains(&q) {
                return;
            }
            if list.len() < cap {
                list.push(q);
                return;
            }
            list.push(q);
            *list = shrink(list);
        }
    }

    /// The nodes on layer `l` (ascending) and their lists there, for `levels`.
    pub fn layer(&self, levels: &[u8], l: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
        let nodes: Vec<u32> = (0..levels.len() as u32)
            .filter(|&i| levels.get(i as usize).is_some_and(|&lv| lv as usize >= l))
            .collect();
        let mut list = Vec::new();
        let adj = nodes
            .iter()
            .map(|&node| {
                self.copy(node, l, &mut list);
                list.clone()
            })
            .collect();
        (nodes, adj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random sets and adds (one thread) against a model of plain vectors: every list reads back
    /// as the model's, on every layer, and `layer` lists exactly the nodes on it.
    #[test]
    fn lists_match_a_model_under_random_sets_and_adds() {
        let (n, m) = (200usize, 4usize);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let levels: Vec<u8> = (0..n).map(|_| rng.random_range(0..3u8)).collect();
        let lists = BuildLists::new(&levels, m, 2 * m);
        let mut model: Vec<Vec<Vec<u32>>> = levels
            .iter()
            .map(|&l| vec![Vec::new(); l as usize + 1])
            .collect();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let node = rng.random_range(0..n as u32);
            let l = rng.random_range(0..=levels[node as usize] as usize);
            let cap = if l == 0 { 2 * m } else { m };
            let want = &mut model[node as usize][l];
            if rng.random_bool(0.1) {
                let len = rng.random_range(0..=cap);
                let list: Vec<u32> = (0..len).map(|_| rng.random_range(0..n as u32)).collect();
                lists.set(node, l, &list);
                *want = list;
            } else {
                let q = rng.random_range(0..n as u32);
                // Shrinking keeps the last `cap / 2` entries: any rule will do for the model.
                let shrink = |full: &[u32]| full[full.len() - cap / 2..].to_vec();
                lists.add(node, q, l, cap, &mut scratch, shrink);
                if !want.contains(&q) {
                    want.push(q);
                    if want.len() > cap {
                        *want = shrink(want);
                    }
                }
            }
            lists.copy(node, l, &mut out);
            assert_eq!(&out, &model[node as usize][l], "node {node} layer {l}");
        }
        for l in 0..3 {
            let (nodes, adj) = lists.layer(&levels, l);
            let want_nodes: Vec<u32> = (0..n as u32)
                .filter(|&i| levels[i as usize] as usize >= l)
                .collect();
            assert_eq!(nodes, want_nodes);
            for (node, list) in nodes.iter().zip(&adj) {
                assert_eq!(Some(list), model[*node as usize].get(l));
            }
        }
        // A node not on a layer reads an empty list and ignores writes there.
        if let Some(flat) = (0..n as u32).find(|&i| levels[i as usize] == 0) {
            lists.set(flat, 1, &[1, 2]);
            lists.copy(flat, 1, &mut out);
            assert!(out.is_empty());
        }
    }
}
