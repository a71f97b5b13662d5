//! Per-thread scratch space for graph search, reused across queries.
//!
//! The visited set is an array of generation stamps: "visited" means `marks[id] == epoch`, and a new
//! query only bumps `epoch` (clearing the array once every 65,535 queries) instead of allocating or
//! zeroing `n` entries.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Scored;

/// Scratch of one search: visited stamps and the two heaps.
#[derive(Default)]
pub(super) struct Scratch {
    marks: Vec<u16>,
    epoch: u16,
    /// Nodes to expand, best first.
    pub candidates: BinaryHeap<Scored>,
    /// Best results so far, worst on top.
    pub results: BinaryHeap<Reverse<Scored>>,
    /// Unvisited neighbours of the node being expanded (graph build: a copied neighbour list).
    pub fresh: Vec<u32>,
}

impl Scratch {
    /// Starts a query over `n` nodes: nothing visited, heaps empty.
    pub fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `id` visited; returns whether it was new. Ids `>= n` count as already visited.
    #[inline]
    pub fn visit(&mut self, id: u32) -> bool {
        match self.marks.get_mut(id as usize) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch reset for `n` nodes. A re-entrant call (a filter that
/// searches) gets a fresh scratch instead of panicking on the borrow.
pub(super) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            s.reset(n);
            f(&mut s)
        }
        Err(_) => {
            let mut s = Scratch::default();
            s.reset(n);
            f(&mut s)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_resets_between_queries_and_across_epoch_wrap() {
        for round in 0..70_000u32 {
            with_scratch(4, |s| {
                assert!(s.visit(round % 4));
                assert!(!s.visit(round % 4));
                assert!(!s.visit(9), "out of range counts as visited");
            });
        }
    }
}
