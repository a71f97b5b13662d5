//! Similarity kernels.
//!
//! Written so LLVM auto-vectorises them without `unsafe` or target features: 16 independent
//! accumulators over `chunks_exact(16)` give the vectoriser four (SSE2) or two (AVX2) full registers
//! and break the floating-point dependency chain of a plain `sum()`, which LLVM may not reorder.
//! (Checked in the release assembly: the loop body is packed `mulps`/`addps` on xmm registers.)

use crate::Metric;

const LANES: usize = 16;

/// Dot product of the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce(acc) + tail
}

/// Squared Euclidean distance of the common prefix of `a` and `b`.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    reduce(acc) + tail
}

#[inline]
fn reduce(acc: [f32; LANES]) -> f32 {
    // Pairwise, so the reduction also vectorises.
    let mut h = [0f32; LANES / 2];
    for i in 0..LANES / 2 {
        h[i] = acc[i] + acc[i + LANES / 2];
    }
    let mut q = [0f32; LANES / 4];
    for i in 0..LANES / 4 {
        q[i] = h[i] + h[i + LANES / 4];
    }
    (q[0] + q[2]) + (q[1] + q[3])
}

/// The search-internal score: higher is more similar, monotone in the public [`score`].
/// For L2 it is `-distance²` (no square root in the hot loop).
#[inline]
pub fn raw_score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => dot(a, b),
        Metric::L2 => -l2_sq(a, b),
    }
}

/// Turns a [`raw_score`] into the public score.
#[inline]
pub fn public_score(metric: Metric, raw: f32) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => raw,
        Metric::L2 => -(-raw).max(0.0).sqrt(),
    }
}

/// The similarity score of `a` and `b` under `metric` (higher is more similar).
/// For [`Metric::Cosine`] both vectors must already be normalised.
pub fn score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    public_score(metric, raw_score(metric, a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn kernels_match_naive_for_all_lengths() {
        for n in [0usize, 1, 3, 15, 16, 17, 31, 32, 33, 100, 128, 513] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
            let d = naive_dot(&a, &b);
            assert!(
                (dot(&a, &b) as f64 - d).abs() < 1e-3 * (1.0 + d.abs()),
                "dot n={n}"
            );
            let l: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum();
            assert!(
                (l2_sq(&a, &b) as f64 - l).abs() < 1e-3 * (1.0 + l),
                "l2 n={n}"
            );
        }
    }

    #[test]
    fn scores_are_higher_for_closer_vectors() {
        let q = [1.0, 0.0];
        let near = [0.8, 0.6];
        let far = [0.0, 1.0];
        for m in [Metric::Cosine, Metric::Dot, Metric::L2] {
            assert!(score(m, &q, &near) > score(m, &q, &far), "{m:?}");
        }
        assert_eq!(score(Metric::L2, &[0.0, 0.0], &[3.0, 4.0]), -5.0);
        assert_eq!(score(Metric::Dot, &[2.0, 1.0], &[3.0, 4.0]), 10.0);
    }

    #[test]
    fn mismatched_lengths_do_not_panic() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0]), 1.0);
        assert_eq!(l2_sq(&[], &[1.0]), 0.0);
    }
}
