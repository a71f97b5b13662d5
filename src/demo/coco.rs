//! The COCO captions JSON layout (`captions_train2017.json` style) written by the generator.

use serde::Serialize;

use super::scene::Scene;

/// One `images` entry. `scene` is an mmdb extension that COCO readers ignore; it records the
/// ground-truth attributes so demos can filter with `WHERE` and tests can check retrieval.
#[derive(Debug, Serialize)]
pub struct CocoImage {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
    pub scene: Scene,
}

/// One `annotations` entry: a caption of one image.
#[derive(Debug, Serialize)]
pub struct CocoCaption {
    pub id: u64,
    pub image_id: u64,
    pub caption: String,
}

#[derive(Debug, Serialize)]
struct Info {
    description: &'static str,
    version: &'static str,
    seed: u64,
}

/// A whole captions file.
#[derive(Debug, Serialize)]
pub struct CocoCaptions {
    info: Info,
    licenses: [(); 0],
    pub images: Vec<CocoImage>,
    pub annotations: Vec<CocoCaption>,
}

impl CocoCaptions {
    pub fn new(seed: u64) -> Self {
        CocoCaptions {
            info: Info {
                description: "mmdb demo scenes (synthetic shapes)",
                version: "1",
                seed,
            },
            licenses: [],
            images: Vec::new(),
            annotations: Vec::new(),
        }
    }
}
