//! Deterministic demo data: synthetic scenes of shapes written as a COCO captions dataset.
//!
//! Each image shows one object (a shape, a colour, small or large, at the left, right, top,
//! bottom or centre) or two or three small identical objects, on a light or dark background that
//! is plain, striped, checkered, dotted or noisy. Five caption paraphrases describe it.
//!
//! ```text
//! OUT/images/000001.png ...            96x96 RGB PNGs
//! OUT/annotations/captions_train.json  {info, licenses, images: [{id, file_name, width, height,
//! OUT/annotations/captions_val.json     scene}], annotations: [{id, image_id, caption}]}
//! ```
//!
//! The same `(images, seed, val_fraction)` give the same bytes on every machine: every image
//! draws from its own ChaCha8 stream (`seed`, stream = image index), so the output does not
//! depend on thread scheduling. The last `round(images * val_fraction)` images form the val split.

mod captions;
mod coco;
mod draw;
mod scene;

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{Error, Result};
use coco::{CocoCaption, CocoCaptions, CocoImage};

pub use captions::CAPTIONS_PER_IMAGE;
use scene::Scene;

/// Side of every generated image in pixels.
pub const IMAGE_SIDE: u32 = 96;

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Images in `captions_train.json`.
    pub train_images: usize,
    /// Images in `captions_val.json`.
    pub val_images: usize,
    /// Captions written over both splits.
    pub captions: usize,
}

/// Writes `images` scenes under `out_dir` (created if missing) as a COCO captions dataset.
///
/// `val_fraction` in `[0, 1]` of the images (the last ones) go to the val split.
/// Existing files of the same names are overwritten.
pub fn generate(out_dir: &Path, images: usize, seed: u64, val_fraction: f64) -> Result<Summary> {
    if images == 0 {
        return Err(Error::InvalidArgument(
            "demo data needs at least one image".into(),
        ));
    }
    if !(0.0..=1.0).contains(&val_fraction) {
        return Err(Error::InvalidArgument(format!(
            "val fraction must be within [0, 1], got {val_fraction}"
        )));
    }
    let image_dir = out_dir.join("images");
    let ann_dir = out_dir.join("annotations");
    for dir in [&image_dir, &ann_dir] {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }

    let width = images.to_string().len().max(6);
    let drawn: Vec<(CocoImage, [String; CAPTIONS_PER_IMAGE])> = (0..images)
        .into_par_iter()
        .map(|index| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(index as u64);
            let scene = Scene::random(&mut rng, IMAGE_SIDE);
            let texts = captions::captions(&scene, &mut rng);
            let pixels = draw::render(&scene, IMAGE_SIDE, &mut rng);
            let id = index as u64 + 1;
            let file_name = format!("{id:0width$}.png");
            let path = image_dir.join(&file_name);
            let mut png = Cursor::new(Vec::new());
            pixels
                .write_to(&mut png, image::ImageFormat::Png)
                .map_err(|e| {
                    Error::image(
                        path.display().to_string(),
                        crate::ImageErrorKind::Undecodable,
                        format!("PNG encoding failed: {e}"),
                    )
                })?;
            fs::write(&path, png.into_inner()).map_err(|e| Error::io(&path, e))?;
            let entry = CocoImage {
                id,
                file_name,
                width: IMAGE_SIDE,
                height: IMAGE_SIDE,
                scene,
            };
            Ok((entry, texts))
        })
        .collect::<Result<_>>()?;

    let val_images = ((images as f64) * val_fraction).round() as usize;
    let train_images = images - val_images;
    let mut splits = [CocoCaptions::new(seed), CocoCaptions::new(seed)];
    let mut caption_id = 0u64;
    for (index, (entry, texts)) in drawn.into_iter().enumerate() {
        let split = &mut splits[usize::from(index >= train_images)];
        for caption in texts {
            caption_id += 1;
            split.annotations.push(CocoCaption {
                id: caption_id,
                image_id: entry.id,
                caption,
            });
        }
        split.images.push(entry);
    }
    for (split, name) in splits
        .iter()
        .zip(["captions_train.json", "captions_val.json"])
    {
        let path = ann_dir.join(name);
        let json =
            serde_json::to_vec(split).map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    }
    Ok(Summary {
        out_dir: out_dir.to_path_buf(),
        train_images,
        val_images,
        captions: images * CAPTIONS_PER_IMAGE,
    })
}
