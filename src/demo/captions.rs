//! Five caption paraphrases per scene: different templates and synonyms, same content.
//!
//! The first caption is the canonical short form ("a small red circle on the left"); the others
//! vary wording and mention the background, so queries may be phrased either way.

use rand::Rng;

use super::scene::{SHAPES, Scene};

/// Captions written per image, as in COCO.
pub const CAPTIONS_PER_IMAGE: usize = 5;

fn pick<'a>(rng: &mut impl Rng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

fn size_word(rng: &mut impl Rng, size: &str) -> &'static str {
    match size {
        "large" => pick(rng, &["large", "big"]),
        _ => pick(rng, &["small", "little", "tiny"]),
    }
}

fn position_phrase(rng: &mut impl Rng, position: &str) -> &'static str {
    match position {
        "left" => pick(rng, &["on the left", "on the left side", "at the left"]),
        "right" => pick(rng, &["on the right", "on the right side", "at the right"]),
        "top" => pick(rng, &["at the top", "near the top", "in the upper part"]),
        "bottom" => pick(
            rng,
            &["at the bottom", "near the bottom", "in the lower part"],
        ),
        _ => pick(rng, &["in the center", "in the middle", "in the centre"]),
    }
}

fn texture_word(rng: &mut impl Rng, texture: &str) -> &'static str {
    match texture {
        "striped" => pick(rng, &["striped"]),
        "checkered" => pick(rng, &["checkered", "checked"]),
        "dotted" => pick(rng, &["dotted", "spotted"]),
        "noisy" => pick(rng, &["noisy", "grainy"]),
        _ => pick(rng, &["plain", "uniform"]),
    }
}

fn number_word(count: u32) -> &'static str {
    match count {
        2 => "two",
        3 => "three",
        _ => "several",
    }
}

/// "a" or "an" for the word that follows.
fn article(next: &str) -> &'static str {
    if next.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Writes the five captions of `scene`; `rng` chooses synonyms.
pub fn captions(scene: &Scene, rng: &mut impl Rng) -> [String; CAPTIONS_PER_IMAGE] {
    let colour = scene.colour;
    let (shape, shapes) = SHAPES[scene.shape_index];
    let tone = scene.tone;
    let bg = |rng: &mut _| format!("{tone} {} background", texture_word(rng, scene.texture));
    match scene.position {
        Some(position) => {
            let one = |rng: &mut _| {
                let size = size_word(rng, scene.size);
                let place = position_phrase(rng, position);
                (size, place)
            };
            let (s0, p0) = one(rng);
            let (s1, p1) = one(rng);
            let (s2, p2) = one(rng);
            let (s3, p3) = one(rng);
            let (s4, p4) = one(rng);
            let b2 = bg(rng);
            let b3 = bg(rng);
            let b4 = bg(rng);
            [
                format!("{} {s0} {colour} {shape} {p0}", article(s0)),
                format!("there is {} {s1} {colour} {shape} {p1}", article(s1)),
                format!(
                    "{} {colour} {shape} of {s2} size {p2} on {} {b2}",
                    article(colour),
                    article(&b2)
                ),
                format!(
                    "an image of {} {s3} {colour} {shape} {p3} on {} {b3}",
                    article(s3),
                    article(&b3)
                ),
                format!(
                    "{} {b4} with {} {s4} {colour} {shape} {p4}",
                    article(&b4),
                    article(s4)
                ),
            ]
        }
        None => {
            let n = number_word(scene.count);
            let s0 = size_word(rng, scene.size);
            let s2 = size_word(rng, scene.size);
            let s4 = size_word(rng, scene.size);
            let b2 = bg(rng);
            let b3 = bg(rng);
            let b4 = bg(rng);
            [
                format!("{n} {s0} {colour} {shapes}"),
                format!("there are {n} {colour} {shapes}"),
                format!("{n} {s2} {colour} {shapes} on {} {b2}", article(&b2)),
                format!("an image of {n} {colour} {shapes} on {} {b3}", article(&b3)),
                format!("{} {b4} with {n} {s4} {colour} {shapes}", article(&b4)),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn articles_follow_the_next_word() {
        assert_eq!(article("orange"), "an");
        assert_eq!(article("red"), "a");
    }

    #[test]
    fn every_caption_names_colour_and_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let scene = Scene::random(&mut rng, 96);
            for caption in captions(&scene, &mut rng) {
                assert!(caption.contains(scene.colour), "{caption}");
                let (one, many) = SHAPES[scene.shape_index];
                let shape = if scene.count == 1 { one } else { many };
                assert!(caption.split(' ').any(|w| w == shape), "{caption}");
                if scene.count > 1 {
                    assert!(caption.contains(number_word(scene.count)), "{caption}");
                }
            }
        }
    }
}
