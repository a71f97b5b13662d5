//! Similarity kernels.
//!
//! Written with `pulp` (the SIMD layer of `gemm`/`faer`, already in the build through candle):
//! explicit vector registers, chosen at run time for the CPU (AVX2+FMA on x86_64, AVX-512 too
//! when built with the `avx512` feature, which turns on pulp's `x86-v4`; NEON on aarch64; scalar
//! otherwise), without `unsafe` in mmdb. Four independent accumulators of one
//! register each hide the latency of the fused multiply-adds.
//!
//! Before this, the kernels were plain loops left to LLVM's auto-vectoriser. That was fragile:
//! inlined into the graph walk, and even on its own, the loop came out as 2- and 4-wide pieces
//! (`vmovsd` / `xmm`), several times the instructions of the 8-wide loop here; measured with
//! `perf annotate` on the hnsw bench.

use std::sync::LazyLock;

use pulp::{Arch, Simd, WithSimd};

use crate::Metric;

/// The instruction set, detected once.
static ARCH: LazyLock<Arch> = LazyLock::new(Arch::new);

/// Dot product of the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    ARCH.dispatch(Kernel {
        a: &a[..n],
        b: &b[..n],
        l2: false,
    })
}

/// Squared Euclidean distance of the common prefix of `a` and `b`.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    ARCH.dispatch(Kernel {
        a: &a[..n],
        b: &b[..n],
        l2: true,
    })
}

/// One kernel call: `a` and `b` have the same length.
struct Kernel<'a> {
    a: &'a [f32],
    b: &'a [f32],
    /// Squared distance instead of the dot product.
    l2: bool,
}

impl WithSimd for Kernel<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let (va, ta) = S::as_simd_f32s(self.a);
        let (vb, tb) = S::as_simd_f32s(self.b);
        let zero = simd.splat_f32s(0.0);
        let mut acc = [zero; 4];
        let (a4, ra) = va.as_chunks::<4>();
        let (b4, rb) = vb.as_chunks::<4>();
        if self.l2 {
            for (x, y) in a4.iter().zip(b4) {
                for i in 0..4 {
                    let d = simd.sub_f32s(x[i], y[i]);
                    acc[i] = simd.mul_add_e_f32s(d, d, acc[i]);
                }
            }
            for (x, y) in ra.iter().zip(rb) {
                let d = simd.sub_f32s(*x, *y);
                acc[0] = simd.mul_add_e_f32s(d, d, acc[0]);
            }
        } else {
            for (x, y) in a4.iter().zip(b4) {
                for i in 0..4 {
                    acc[i] = simd.mul_add_e_f32s(x[i], y[i], acc[i]);
                }
            }
            for (x, y) in ra.iter().zip(rb) {
                acc[0] = simd.mul_add_e_f32s(*x, *y, acc[0]);
            }
        }
        let sum = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
        let mut tail = 0f32;
        for (x, y) in ta.iter().zip(tb) {
            tail += if self.l2 { (x - y) * (x - y) } else { x * y };
        }
        simd.reduce_sum_f32s(sum) + tail
    }
}

/// f32 values per cache line.
pub(super) const LINE: usize = 16;

/// The search-internal score: higher is more similar, monotone in the public [`score`].
/// For L2 it is `-distance²` (no square root in the hot loop).
#[inline(always)]
pub(super) fn raw_score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
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
