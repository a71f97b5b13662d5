//! Renders a [`Scene`] into pixels: a textured grey background and anti-aliased shapes.

use image::{Rgb, RgbImage};
use rand::Rng;

use super::scene::{Placed, Scene};

/// Sub-samples per pixel side for anti-aliased edges (4x4 = 16 samples).
const SUPERSAMPLE: u32 = 4;

/// Draws `scene` on a `side` x `side` image; `rng` only adds colour jitter and texture details.
pub fn render(scene: &Scene, side: u32, rng: &mut impl Rng) -> RgbImage {
    let mut img = background(scene, side, rng);
    let rgb: [u8; 3] = std::array::from_fn(|c| {
        (scene.rgb[c] as i32 + rng.random_range(-15..=15)).clamp(0, 255) as u8
    });
    for object in &scene.objects {
        fill(&mut img, object, scene.shape_index, rgb);
    }
    img
}

fn background(scene: &Scene, side: u32, rng: &mut impl Rng) -> RgbImage {
    let base: i32 = if scene.tone == "light" {
        rng.random_range(185..=230)
    } else {
        rng.random_range(35..=80)
    };
    // A faint tint so backgrounds are not all the same grey.
    let tint: [i32; 3] = [
        rng.random_range(-8..=8),
        rng.random_range(-8..=8),
        rng.random_range(-8..=8),
    ];
    // Second texture shade: darker on light backgrounds, lighter on dark ones.
    let alt = if scene.tone == "light" {
        base - 45
    } else {
        base + 45
    };
    let period: i32 = rng.random_range(8..=12);
    let orientation = rng.random_range(0..3);
    let mut img = RgbImage::new(side, side);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (xi, yi) = (x as i32, y as i32);
        let level = match scene.texture {
            "striped" => {
                let t = match orientation {
                    0 => xi,
                    1 => yi,
                    _ => xi + yi,
                };
                if (t / (period / 2).max(1)) % 2 == 0 {
                    base
                } else {
                    alt
                }
            }
            "checkered" => {
                if ((xi / period) + (yi / period)) % 2 == 0 {
                    base
                } else {
                    alt
                }
            }
            "dotted" => {
                let (dx, dy) = (xi % period - period / 2, yi % period - period / 2);
                if dx * dx + dy * dy <= 4 { alt } else { base }
            }
            "noisy" => base + rng.random_range(-35..=35),
            _ => base,
        };
        *px = Rgb(std::array::from_fn(|c| {
            (level + tint[c]).clamp(0, 255) as u8
        }));
    }
    img
}

/// Paints one object, blending by the fraction of sub-samples inside the shape.
fn fill(img: &mut RgbImage, object: &Placed, shape: usize, rgb: [u8; 3]) {
    let (w, h) = img.dimensions();
    let [cx, cy] = object.centre;
    let r = object.radius;
    let x0 = (cx - r - 1.0).floor().max(0.0) as u32;
    let y0 = (cy - r - 1.0).floor().max(0.0) as u32;
    let x1 = ((cx + r + 1.0).ceil() as u32).min(w);
    let y1 = ((cy + r + 1.0).ceil() as u32).min(h);
    let step = 1.0 / SUPERSAMPLE as f32;
    for y in y0..y1 {
        for x in x0..x1 {
            let mut inside = 0u32;
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    let px = x as f32 + (sx as f32 + 0.5) * step;
                    let py = y as f32 + (sy as f32 + 0.5) * step;
                    if contains(shape, (px - cx) / r, (py - cy) / r) {
                        inside += 1;
                    }
                }
            }
            if inside > 0 {
                let a = inside as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32;
                let px = img.get_pixel_mut(x, y);
                for (out, &paint) in px.0.iter_mut().zip(&rgb) {
                    *out = (a * paint as f32 + (1.0 - a) * *out as f32).round() as u8;
                }
            }
        }
    }
}

/// Whether the point (u, v), in units of the object radius with v pointing down, is inside the
/// shape numbered as in [`super::scene::SHAPES`]. Sizes are tuned so shapes cover similar areas.
fn contains(shape: usize, u: f32, v: f32) -> bool {
    match shape {
        0 => u * u + v * v <= 1.0,
        1 => u.abs() <= 0.85 && v.abs() <= 0.85,
        // Upward triangle: apex at v = -1, base at v = 0.75.
        2 => v <= 0.75 && u.abs() <= (v + 1.0) / 1.75 * 1.05,
        3 => {
            // Five-pointed star, one tip up: radius interpolated between valleys and tips.
            let rho = (u * u + v * v).sqrt();
            let k = 5.0;
            let angle = v.atan2(u) + std::f32::consts::FRAC_PI_2;
            let t = (angle * k / std::f32::consts::TAU).rem_euclid(1.0);
            let tip = 1.0 - 2.0 * (t - 0.5).abs();
            let tip = 1.0 - tip; // 1 at tips (t = 0 or 1), 0 in the valleys (t = 0.5)
            rho <= 0.45 + 0.6 * tip
        }
        4 => u.abs() / 0.8 + v.abs() <= 1.0,
        _ => (u.abs() <= 0.33 && v.abs() <= 0.95) || (v.abs() <= 0.33 && u.abs() <= 0.95),
    }
}
