//! Similarity kernels.
//!
//! Written so LLVM auto-vectorises them without `unsafe`: two independent 16-lane accumulators
//! over chunks of 32 values give two AVX-512 registers (four AVX2, eight SSE) of independent
//! chains and break the floating-point dependency of a plain `sum()`, which LLVM may not reorder.
//! (A single 32-lane array made LLVM emit 2-wide loads; checked with `objdump` on the release
//! build: the loops here are `vmulps`/`vaddps` on `zmm` registers in the AVX-512 version.)
//!
//! The instruction set is chosen at run time with the `multiversion` crate: the public [`dot`] and
//! [`l2_sq`] dispatch once per call, and the hot loops (graph search, exact scan, graph build) are
//! themselves multiversioned so the `*_kernel` functions inline into them compiled for the best
//! target the CPU has (AVX-512, AVX2+FMA, SSE4.2 on x86_64; NEON on aarch64). A plain x86_64 build
//! would otherwise only use SSE2 (128-bit registers), a quarter of what an AVX-512 CPU can do.
//! The target list is written out at each use (multiversion's `"simd"` shorthand leaves AVX-512
//! out): keep the copies in `distance`, `search`, `flat` and `insert` the same. Closures inside
//! those functions do not inherit the target features: keep kernel calls out of closures.

use multiversion::multiversion;

use crate::Metric;

const LANES: usize = 16;

/// Dot product of the common prefix of `a` and `b` (runtime-dispatched to the best SIMD target).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "x86_64+sse4.2",
    "aarch64+neon"
))]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_kernel(a, b)
}

/// Squared Euclidean distance of the common prefix of `a` and `b` (runtime-dispatched).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "x86_64+sse4.2",
    "aarch64+neon"
))]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    l2_sq_kernel(a, b)
}

/// [`dot`] without dispatch: inlined into multiversioned callers.
#[inline(always)]
pub(super) fn dot_kernel(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut acc0, mut acc1) = ([0f32; LANES], [0f32; LANES]);
    let (ca, cb) = (a.chunks_exact(2 * LANES), b.chunks_exact(2 * LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc0[i] += x[i] * y[i];
        }
        for i in 0..LANES {
            acc1[i] += x[LANES + i] * y[LANES + i];
        }
    }
    let (ca, cb) = (ra.chunks_exact(LANES), rb.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc1[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce(acc0, acc1) + tail
}

/// [`l2_sq`] without dispatch: inlined into multiversioned callers.
#[inline(always)]
pub(super) fn l2_sq_kernel(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut acc0, mut acc1) = ([0f32; LANES], [0f32; LANES]);
    let (ca, cb) = (a.chunks_exact(2 * LANES), b.chunks_exact(2 * LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc0[i] += d * d;
        }
        for i in 0..LANES {
            let d = x[LANES + i] - y[LANES + i];
            acc1[i] += d * d;
        }
    }
    let (ca, cb) = (ra.chunks_exact(LANES), rb.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc1[i] += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    reduce(acc0, acc1) + tail
}

#[inline(always)]
fn reduce(a: [f32; LANES], b: [f32; LANES]) -> f32 {
    // Lane-wise, then a plain sum: a pairwise tree here made LLVM's SLP vectoriser split the
    // accumulators into 2-wide pieces for the whole loop (seen in the assembly).
    let mut s = [0f32; LANES];
    for i in 0..LANES {
        s[i] = a[i] + b[i];
    }
    s.iter().sum()
}

/// f32 values per cache line.
const LINE: usize = 16;

/// Loads one value from every cache line of `v`, so that the cache misses of several vectors are
/// in flight together before their distances need them (a software prefetch without `unsafe`;
/// hnswlib uses `_mm_prefetch`).
#[inline(always)]
pub(super) fn touch_lines(v: &[f32]) {
    let mut i = 0;
    while i < v.len() {
        std::hint::black_box(v[i]);
        i += LINE;
    }
}

/// The search-internal score: higher is more similar, monotone in the public [`score`].
/// For L2 it is `-distance²` (no square root in the hot loop). Not dispatched: for
/// multiversioned callers.
#[inline(always)]
pub(super) fn raw_score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => dot_kernel(a, b),
        Metric::L2 => -l2_sq_kernel(a, b),
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
    let raw = match metric {
        Metric::Cosine | Metric::Dot => dot(a, b),
        Metric::L2 => -l2_sq(a, b),
    };
    public_score(metric, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn kernels_match_naive_for_all_lengths() {
        for n in [
            0usize, 1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 513,
        ] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
            let d = naive_dot(&a, &b);
            assert!(
                (dot(&a, &b) as f64 - d).abs() < 1e-3 * (1.0 + d.abs()),
                "dot n={n}"
            );
            assert_eq!(
                dot(&a, &b),
                dot_kernel(&a, &b),
                "dispatched = inlined, n={n}"
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
