//! Exact (brute-force) top-k: the oracle for recall tests and the plan for selective filters.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::distance::{public_score, raw_score};
use super::{LocalFilter, Scored, VectorsView};
use crate::Metric;

/// Exact top-k: scores every (filtered) vector. Results best first; equal scores by tie key
/// (see the module doc), so the top k is a prefix of the top k + 1.
pub fn search_exact(
    vectors: VectorsView<'_>,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<LocalFilter<'_>>,
) -> Vec<(u32, f32)> {
    // There are never more results than vectors; `k` can be far larger (a LIMIT beyond the
    // table) and must not size an allocation.
    let k = k.min(vectors.len());
    if k == 0 {
        return Vec::new();
    }
    ranked(scan(vectors, metric, query, k, filter), k)
}

/// The scan, on public scores: the square root of L2 can make two different squared distances
/// equal, and results are merged with other sources on the public score.
fn scan<'a>(
    vectors: VectorsView<'a>,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<LocalFilter<'a>>,
) -> Vec<Scored> {
    // Min-heap of the best k so far: the root is the one to evict.
    let mut top: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(k.saturating_add(1));
    let n = u32::try_from(vectors.len()).unwrap_or(u32::MAX);
    for id in 0..n {
        if filter.is_some_and(|f| !f(id)) {
            continue;
        }
        let score = public_score(metric, raw_score(metric, vectors.get(id as usize), query));
        if top.len() < k {
            top.push(Reverse(vectors.scored(score, id)));
        } else if top
            .peek()
            .is_some_and(|w| w.0.rank_of(score, || vectors.tie_key(id)) == Ordering::Greater)
        {
            top.pop();
            top.push(Reverse(vectors.scored(score, id)));
        }
    }
    top.into_iter().map(|r| r.0).collect()
}

/// Candidates carrying public scores, best first, the first `k` of them.
pub(super) fn ranked(mut hits: Vec<Scored>, k: usize) -> Vec<(u32, f32)> {
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.truncate(k);
    hits.into_iter().map(|s| (s.id, s.score)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_orders_best_first_with_filter_and_ties() {
        let data = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.6, 0.8];
        let v = VectorsView::new(&data, 2);
        let q = [1.0, 0.0];
        let all = search_exact(v, Metric::Cosine, &q, 10, None);
        assert_eq!(
            all.iter().map(|h| h.0).collect::<Vec<_>>(),
            vec![0, 2, 3, 1]
        );
        let odd = |i: u32| i % 2 == 1;
        let f = search_exact(v, Metric::Cosine, &q, 1, Some(&odd));
        assert_eq!(f, vec![(3, 0.6)]);
        assert!(search_exact(v, Metric::L2, &q, 0, None).is_empty());
        let empty = VectorsView::new(&[], 2);
        assert!(search_exact(empty, Metric::L2, &q, 3, None).is_empty());
    }

    #[test]
    fn equal_scores_rank_by_tie_key_and_k_is_a_prefix() {
        // Five equal vectors whose tie keys run against their positions.
        let data = [1.0f32; 10];
        let keys = [40, 30, 20, 10, 0];
        let v = VectorsView::new(&data, 2).with_ties(&keys);
        let q = [1.0, 1.0];
        let all: Vec<u32> = search_exact(v, Metric::Dot, &q, 5, None)
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(all, vec![4, 3, 2, 1, 0]);
        for k in 1..=5 {
            let top: Vec<u32> = search_exact(v, Metric::Dot, &q, k, None)
                .iter()
                .map(|h| h.0)
                .collect();
            assert_eq!(top, all[..k], "k={k}");
        }
    }

    #[test]
    fn a_huge_k_returns_every_vector() {
        let data = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let v = VectorsView::new(&data, 2);
        for k in [usize::MAX, 1 << 46, i64::MAX as usize] {
            assert_eq!(search_exact(v, Metric::L2, &[1.0, 0.0], k, None).len(), 3);
            let even = |i: u32| i.is_multiple_of(2);
            assert_eq!(
                search_exact(v, Metric::L2, &[1.0, 0.0], k, Some(&even)).len(),
                2
            );
        }
    }
}
