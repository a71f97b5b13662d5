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

/// Fixed-point coefficients for one axis: per output pixel the first input index, the tap count and
/// `ksize` coefficients.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    k: Vec<i32>,
}

fn precompute(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
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
            k[xx * ksize + x] = if v < 0.0 {
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
pub fn resize_bicubic(src: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
    let horiz = precompute(w, nw);
    let vert = precompute(h, nh);
    // Only rows the vertical pass reads are resampled horizontally (as Pillow does).
    let first = vert.bounds.first().map_or(0, |b| b.0);
    let last = vert.bounds.last().map_or(0, |b| b.0 + b.1);
    let rows = last - first;
    let half = 1i32 << (PRECISION_BITS - 1);

    let tmp: Vec<u8> = if nw == w {
        src[first * w * 3..last * w * 3].to_vec()
    } else {
        let mut tmp = vec![0u8; rows * nw * 3];
        for y in 0..rows {
            let row = &src[(y + first) * w * 3..(y + first + 1) * w * 3];
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
                    tmp[(y * nw + xx) * 3 + c] = clip8(ss[c]);
                }
            }
        }
        tmp
    };
    if nh == h {
        return tmp;
    }
    let mut out = vec![0u8; nh * nw * 3];
    for (yy, &(ymin, n)) in vert.bounds.iter().enumerate() {
        let k = &vert.k[yy * vert.ksize..yy * vert.ksize + n];
        let ymin = ymin - first;
        for xx in 0..nw {
            let mut ss = [half; 3];
            for (y, &ky) in k.iter().enumerate() {
                let p = &tmp[((ymin + y) * nw + xx) * 3..((ymin + y) * nw + xx) * 3 + 3];
                for c in 0..3 {
                    ss[c] += i32::from(p[c]) * ky;
                }
            }
            for c in 0..3 {
                out[(yy * nw + xx) * 3 + c] = clip8(ss[c]);
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

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(100, 37), (37, 100), (224, 224), (5, 224)] {
            let c = precompute(i, o);
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
