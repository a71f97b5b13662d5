//! Exact (brute-force) top-k: the oracle for recall tests and the plan for selective filters.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::distance::{public_score, raw_score};
use super::{LocalFilter, Scored, VectorsView};
use crate::Metric;

/// Exact top-k: scores every (filtered) vector. Results best first; ties broken by lower id.
pub fn search_exact(
    vectors: VectorsView<'_>,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<LocalFilter<'_>>,
) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    into_results(scan(vectors, metric, query, k, filter), metric, k)
}

/// The scan.
fn scan<'a>(
    vectors: VectorsView<'a>,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<LocalFilter<'a>>,
) -> Vec<Scored> {
    // Min-heap of the best k so far: the root is the one to evict.
    let mut top: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
    let n = u32::try_from(vectors.len()).unwrap_or(u32::MAX);
    for id in 0..n {
        if filter.is_some_and(|f| !f(id)) {
            continue;
        }
        let s = Scored::new(raw_score(metric, vectors.get(id as usize), query), id);
        if top.len() < k {
            top.push(Reverse(s));
        } else if top.peek().is_some_and(|w| s > w.0) {
            top.pop();
            top.push(Reverse(s));
        }
    }
    top.into_iter().map(|r| r.0).collect()
}

/// Sorts best first, keeps `k`, converts scores to the public scale.
pub(super) fn into_results(mut hits: Vec<Scored>, metric: Metric, k: usize) -> Vec<(u32, f32)> {
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.truncate(k);
    hits.into_iter()
        .map(|s| (s.id, public_score(metric, s.score)))
        .collect()
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
}
