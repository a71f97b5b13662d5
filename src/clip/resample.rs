//! A port of Pillow's bicubic resampling (`libImaging/Resample.c`, 8 bits per channel).
//!
//! Bit-exact parity with `Image.resize(..., BICUBIC)` is what makes mmdb's CLIP embeddings match
//! transformers' (a generic Catmull-Rom resize is off by ~3e-3). Pillow's algorithm: a separable
//! filter with support 2 (a = -0.5) stretched by the downscale factor, coefficients normalised per
//! output pixel then quantised to 22-bit fixed point; the horizontal pass runs first and its output
//! is rounded and clipped to 0-255 before the vertical pass.

const PRECISION_BITS: u32 = 32 - 8 - 2;
const SUPPORT: f64 = 2.0;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point coefficients for a range of output pixels of one axis: per output pixel the first
/// input index, the tap count and `ksize` coefficients.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    k: Vec<i32>,
}

/// Coefficients of output pixels `range` of a resize from `in_size` to `out_size`: for each, the
/// very values a whole-axis computation gives it (each output pixel's taps depend only on its own
/// index), so a window of the output equals that window of the whole resize.
fn precompute(in_size: usize, out_size: u64, range: std::ops::Range<u64>) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let len = (range.end - range.start) as usize;
    let mut bounds = Vec::with_capacity(len);
    let mut k = vec![0i32; len * ksize];
    let mut w = vec![0f64; ksize];
    for (i, xx) in range.enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(n) {
            *wx = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *wx;
        }
        for x in 0..n {
            let v = if ww != 0.0 { w[x] / ww } else { w[x] };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            k[i * ksize + x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, k }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes packed RGB8 `src` (`w * h * 3`) to `nw x nh` like Pillow's `resize(BICUBIC)`.
#[cfg(test)]
pub fn resize_bicubic(src: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
    resize_bicubic_window(src, w, h, nw as u64, nh as u64, 0..nw as u64, 0..nh as u64)
}

/// The window `xs` x `ys` (packed RGB8, `xs.len() * ys.len() * 3`) of `src` (`w * h * 3`)
/// resized to `nw x nh` like Pillow's `resize(BICUBIC)`, pixel for pixel, computing only that
/// window: memory and time follow the window (a centre crop), not the resized size, which for a
/// long thin image is the source's aspect ratio times the crop. The ranges must lie within the
/// output (`xs.end <= nw`, `ys.end <= nh`).
pub fn resize_bicubic_window(
    src: &[u8],
    w: usize,
    h: usize,
    nw: u64,
    nh: u64,
    xs: std::ops::Range<u64>,
    ys: std::ops::Range<u64>,
) -> Vec<u8> {
    let cw = (xs.end - xs.start) as usize;
    let same_w = nw == w as u64;
    let same_h = nh == h as u64;
    let horiz = (!same_w).then(|| precompute(w, nw, xs.clone()));
    let vert = (!same_h).then(|| precompute(h, nh, ys.clone()));
    // Only rows the vertical pass reads are resampled horizontally (as Pillow does).
    let (first, last) = match &vert {
        Some(v) => (
            v.bounds.iter().map(|b| b.0).min().unwrap_or(0),
            v.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0),
        ),
        None => (ys.start as usize, ys.end as usize),
    };
    let rows = last.saturating_sub(first);
    let half = 1i32 << (PRECISION_BITS - 1);

    let mut tmp = vec![0u8; rows * cw * 3];
    for y in 0..rows {
        let row = &src[(y + first) * w * 3..(y + first + 1) * w * 3];
        let out = &mut tmp[y * cw * 3..(y + 1) * cw * 3];
        match &horiz {
            None => out.copy_from_slice(&row[xs.start as usize * 3..xs.end as usize * 3]),
            Some(horiz) => {
                for (xx, &(xmin, n)) in horiz.bounds.iter().enumerate() {
                    let k = &horiz.k[xx * horiz.ksize..xx * horiz.ksize + n];
                    let mut ss = [half; 3];
                    for (x, &kx) in k.iter().enumerate() {
                        let p = &row[(xmin + x) * 3..(xmin + x) * 3 + 3];
                        for c in 0..3 {
                            ss[c] += i32::from(p[c]) * kx;
                        }
                    }
                    for c in 0..3 {
                        out[xx * 3 + c] = clip8(ss[c]);
                    }
                }
            }
        }
    }
    let Some(vert) = vert else {
        return tmp;
    };
    let mut out = vec![0u8; vert.bounds.len() * cw * 3];
    for (yy, &(ymin, n)) in vert.bounds.iter().enumerate() {
        let k = &vert.k[yy * vert.ksize..yy * vert.ksize + n];
        let ymin = ymin - first;
        for xx in 0..cw {
            let mut ss = [half; 3];
            for (y, &ky) in k.iter().enumerate() {
                let p = &tmp[((ymin + y) * cw + xx) * 3..((ymin + y) * cw + xx) * 3 + 3];
                for c in 0..3 {
                    ss[c] += i32::from(p[c]) * ky;
                }
            }
            for c in 0..3 {
                out[(yy * cw + xx) * 3 + c] = clip8(ss[c]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_stay_constant() {
        let src = vec![77u8; 13 * 7 * 3];
        for (nw, nh) in [(5, 3), (26, 14), (13, 20), (1, 1)] {
            let out = resize_bicubic(&src, 13, 7, nw, nh);
            assert_eq!(out.len(), nw * nh * 3);
            assert!(out.iter().all(|&v| v == 77), "{nw}x{nh}");
        }
    }

    /// A deterministic RGB image.
    fn image(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..w * h * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn every_window_equals_that_window_of_the_whole_resize() {
        let sizes = [(1, 1), (1, 9), (9, 1), (5, 7), (13, 4), (31, 17), (3, 40)];
        let mut seed = 1;
        for &(w, h) in &sizes {
            for &(nw, nh) in &[(1, 1), (4, 6), (9, 9), (30, 11), (w, h), (w, 2 * h + 1)] {
                seed += 1;
                let src = image(w, h, seed);
                let full = resize_bicubic(&src, w, h, nw, nh);
                for (x0, x1, y0, y1) in [(0, nw, 0, nh), (0, 1, 0, 1), (nw / 3, nw, nh / 2, nh)] {
                    let win = resize_bicubic_window(
                        &src,
                        w,
                        h,
                        nw as u64,
                        nh as u64,
                        x0 as u64..x1 as u64,
                        y0 as u64..y1 as u64,
                    );
                    let cw = x1 - x0;
                    for y in y0..y1 {
                        for x in x0..x1 {
                            for c in 0..3 {
                                assert_eq!(
                                    win[((y - y0) * cw + (x - x0)) * 3 + c],
                                    full[(y * nw + x) * 3 + c],
                                    "{w}x{h} -> {nw}x{nh}, window {x0}..{x1} x {y0}..{y1}, at {x},{y}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_window_of_a_huge_output_costs_the_window() {
        // 10,000,000 x 1 resized to 2,240,000,000 x 224: only the 224 x 224 centre is computed.
        let (w, h) = (10_000_000usize, 1usize);
        let src = vec![128u8; w * h * 3];
        let (nw, nh) = (2_240_000_000u64, 224u64);
        let x0 = (nw - 224) / 2;
        // A whole-output resize would allocate 1.5 TB here and abort the process.
        let win = resize_bicubic_window(&src, w, h, nw, nh, x0..x0 + 224, 0..224);
        assert_eq!(win.len(), 224 * 224 * 3);
        assert!(win.iter().all(|&v| v == 128));
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(100, 37), (37, 100), (224, 224), (5, 224)] {
            let c = precompute(i, o as u64, 0..o as u64);
            for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                let s: i32 = c.k[xx * c.ksize..xx * c.ksize + n].iter().sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= n as i32,
                    "{i}->{o} at {xx}"
                );
            }
        }
    }
}
