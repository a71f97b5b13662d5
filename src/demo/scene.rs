//! What a demo image shows: a random scene description drawn from a seeded RNG.
//!
//! Every attribute is nameable in a caption, so a model that reads captions can learn colour,
//! shape, size, position, count and background from pixels alone.

use rand::Rng;
use serde::Serialize;

/// Object colours: saturated so they stand out on both light and dark grey backgrounds.
pub const COLOURS: [(&str, [u8; 3]); 8] = [
    ("red", [215, 35, 35]),
    ("green", [40, 170, 60]),
    ("blue", [40, 80, 225]),
    ("yellow", [240, 210, 30]),
    ("orange", [245, 135, 25]),
    ("purple", [140, 55, 195]),
    ("pink", [245, 120, 185]),
    ("brown", [140, 85, 35]),
];

/// Shape names (singular, plural).
pub const SHAPES: [(&str, &str); 6] = [
    ("circle", "circles"),
    ("square", "squares"),
    ("triangle", "triangles"),
    ("star", "stars"),
    ("diamond", "diamonds"),
    ("cross", "crosses"),
];

/// Where a single object sits, as a centre in fractions of the image side.
pub const POSITIONS: [(&str, [f32; 2]); 5] = [
    ("left", [0.25, 0.5]),
    ("right", [0.75, 0.5]),
    ("top", [0.5, 0.25]),
    ("bottom", [0.5, 0.75]),
    ("center", [0.5, 0.5]),
];

/// Background textures.
pub(crate) const TEXTURES: [&str; 5] = ["plain", "striped", "checkered", "dotted", "noisy"];

/// Object radii in fractions of the image side: small, large.
const SMALL_RADIUS: (f32, f32) = (0.09, 0.12);
const LARGE_RADIUS: (f32, f32) = (0.19, 0.23);

/// One object drawn in a scene, in pixel units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub(crate) centre: [f32; 2],
    pub(crate) radius: f32,
}

/// The nameable content of one image; serialised into the COCO `images` entry as `scene`.
#[derive(Debug, Clone, Serialize)]
pub struct Scene {
    /// Shape name, singular (`circle`).
    pub shape: &'static str,
    /// Colour name (`red`).
    pub colour: &'static str,
    /// `small` or `large`.
    pub size: &'static str,
    /// `None` when several objects are scattered.
    pub position: Option<&'static str>,
    /// How many identical objects (1 to 3).
    pub count: u32,
    /// Background texture, one of [`TEXTURES`].
    pub texture: &'static str,
    /// `light` or `dark`.
    pub tone: &'static str,
    #[serde(skip)]
    pub(crate) shape_index: usize,
    #[serde(skip)]
    pub(crate) rgb: [u8; 3],
    #[serde(skip)]
    pub(crate) objects: Vec<Placed>,
}

impl Scene {
    /// Draws a random scene for an image `side` pixels square.
    pub(crate) fn random(rng: &mut impl Rng, side: u32) -> Scene {
        let side = side as f32;
        let shape_index = rng.random_range(0..SHAPES.len());
        let (colour, rgb) = COLOURS[rng.random_range(0..COLOURS.len())];
        let texture = TEXTURES[rng.random_range(0..TEXTURES.len())];
        let tone = if rng.random_bool(0.5) {
            "light"
        } else {
            "dark"
        };
        // Two thirds single objects: they carry size and position; the rest teach counting.
        let count = match rng.random_range(0..6) {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let (size, position, objects) = if count == 1 {
            let large = rng.random_bool(0.5);
            let (lo, hi) = if large { LARGE_RADIUS } else { SMALL_RADIUS };
            let radius = rng.random_range(lo..hi) * side;
            let (name, at) = POSITIONS[rng.random_range(0..POSITIONS.len())];
            let jitter = 0.04 * side;
            let centre = [
                at[0] * side + rng.random_range(-jitter..jitter),
                at[1] * side + rng.random_range(-jitter..jitter),
            ];
            let size = if large { "large" } else { "small" };
            (size, Some(name), vec![Placed { centre, radius }])
        } else {
            ("small", None, scatter(rng, side, count as usize))
        };
        Scene {
            shape: SHAPES[shape_index].0,
            colour,
            size,
            position,
            count,
            texture,
            tone,
            shape_index,
            rgb,
            objects,
        }
    }
}

/// Places `n` small objects without overlap (rejection sampling, then a fixed fallback layout).
fn scatter(rng: &mut impl Rng, side: f32, n: usize) -> Vec<Placed> {
    let radius = rng.random_range(SMALL_RADIUS.0..SMALL_RADIUS.1) * side;
    let margin = radius * 1.1;
    for _ in 0..200 {
        let placed: Vec<Placed> = (0..n)
            .map(|_| Placed {
                centre: [
                    rng.random_range(margin..side - margin),
                    rng.random_range(margin..side - margin),
                ],
                radius,
            })
            .collect();
        let apart = placed.iter().enumerate().all(|(i, a)| {
            placed[..i].iter().all(|b| {
                let (dx, dy) = (a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]);
                (dx * dx + dy * dy).sqrt() > 2.4 * radius
            })
        });
        if apart {
            return placed;
        }
    }
    // Never reached in practice for n <= 3; keeps the function total.
    (0..n)
        .map(|i| Placed {
            centre: [side * (i as f32 + 0.5) / n as f32, side * 0.5],
            radius: radius.min(side / (2.4 * n as f32)),
        })
        .collect()
}
