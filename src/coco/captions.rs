//! COCO captions JSON and the optional split files that select a subset of its images.
//!
//! COCO captions (`captions_val2017.json`): `images: [{id, file_name, width, height}]`,
//! `annotations: [{id, image_id, caption}]`; other fields are ignored.
//!
//! Split files (see [`Split::read`]):
//! - Karpathy's `dataset_coco.json`: `{"images": [{"cocoid", "filename", "split", ...}]}`; the images
//!   whose `split` equals the requested name (`test` for the 5k test set) are kept, matched by `cocoid`;
//! - the list layout used by CLIP_benchmark / BLIP (`coco_karpathy_test.json`):
//!   `[{"image": "val2014/COCO_val2014_000000391895.jpg", "caption": [...]}]`, matched by file name;
//! - a text file with one image id or file name per line.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// One image of a COCO captions file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CocoImage {
    /// COCO image id.
    pub id: i64,
    /// File name relative to the images folder.
    pub file_name: String,
    /// Width in pixels as stated by the annotation file.
    #[serde(default)]
    pub width: i64,
    /// Height in pixels as stated by the annotation file.
    #[serde(default)]
    pub height: i64,
}

/// One caption annotation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CocoCaption {
    /// Annotation id.
    pub id: i64,
    /// The image it describes.
    pub image_id: i64,
    /// The caption text.
    pub caption: String,
}

/// A parsed COCO captions file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CocoCaptions {
    /// The images, in file order.
    pub images: Vec<CocoImage>,
    /// The captions, in file order.
    pub annotations: Vec<CocoCaption>,
}

impl CocoCaptions {
    /// Reads and checks a COCO captions JSON file: image and annotation ids are unique.
    pub fn read(path: &Path) -> Result<CocoCaptions> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut parsed: CocoCaptions = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidArgument(format!(
                "{} is not a COCO captions file (images/annotations): {e}",
                path.display()
            ))
        })?;
        let mut seen = HashSet::new();
        if let Some(dup) = parsed.images.iter().find(|i| !seen.insert(i.id)) {
            return Err(Error::InvalidArgument(format!(
                "{}: image id {} appears twice",
                path.display(),
                dup.id
            )));
        }
        seen.clear();
        if let Some(dup) = parsed.annotations.iter().find(|a| !seen.insert(a.id)) {
            return Err(Error::InvalidArgument(format!(
                "{}: annotation id {} appears twice",
                path.display(),
                dup.id
            )));
        }
        // Captions are trimmed once here so every later use sees the same text.
        for a in &mut parsed.annotations {
            a.caption = a.caption.trim().to_string();
        }
        Ok(parsed)
    }

    /// Caption indices grouped by image id, in file order.
    pub fn captions_by_image(&self) -> HashMap<i64, Vec<usize>> {
        let mut by: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, a) in self.annotations.iter().enumerate() {
            by.entry(a.image_id).or_default().push(i);
        }
        by
    }

    /// Keeps only the images selected by `split` (and their captions).
    pub fn retain_split(&mut self, split: &Split) {
        self.images.retain(|img| split.contains(img));
        let kept: HashSet<i64> = self.images.iter().map(|i| i.id).collect();
        self.annotations.retain(|a| kept.contains(&a.image_id));
    }
}

/// A set of images selected by a split file, by COCO id or by file name (without folder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// Selected COCO image ids.
    pub ids: HashSet<i64>,
    /// Selected file names (base names).
    pub file_names: HashSet<String>,
}

#[derive(Deserialize)]
struct KarpathyFile {
    images: Vec<KarpathyImage>,
}

#[derive(Deserialize)]
struct KarpathyImage {
    #[serde(default)]
    cocoid: Option<i64>,
    #[serde(default)]
    filename: Option<String>,
    split: String,
}

#[derive(Deserialize)]
struct ListEntry {
    image: String,
}

impl Split {
    /// Reads a split file (layout detected from its content) and keeps the images of split `name`
    /// (used by the Karpathy layout only; the other layouts list one split).
    pub fn read(path: &Path, name: &str) -> Result<Split> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let trimmed = text.trim_start();
        let bad = |e: serde_json::Error| {
            Error::InvalidArgument(format!("{} is not a known split file: {e}", path.display()))
        };
        let mut split = Split::default();
        if trimmed.starts_with('{') {
            let k: KarpathyFile = serde_json::from_str(trimmed).map_err(bad)?;
            for img in k.images.into_iter().filter(|i| i.split == name) {
                match (img.cocoid, img.filename) {
                    (Some(id), _) => {
                        split.ids.insert(id);
                    }
                    (None, Some(f)) => {
                        split.file_names.insert(base_name(&f).to_string());
                    }
                    (None, None) => {}
                }
            }
            if split.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "split file {} has no image in split {name:?}",
                    path.display()
                )));
            }
        } else if trimmed.starts_with('[') {
            let list: Vec<ListEntry> = serde_json::from_str(trimmed).map_err(bad)?;
            for e in list {
                split.file_names.insert(base_name(&e.image).to_string());
            }
        } else {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                match line.parse::<i64>() {
                    Ok(id) => split.ids.insert(id),
                    Err(_) => split.file_names.insert(base_name(line).to_string()),
                };
            }
        }
        if split.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "split file {} lists no image",
                path.display()
            )));
        }
        Ok(split)
    }

    /// True when no image is selected.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.file_names.is_empty()
    }

    /// Whether `img` belongs to the split.
    pub fn contains(&self, img: &CocoImage) -> bool {
        self.ids.contains(&img.id) || self.file_names.contains(base_name(&img.file_name))
    }
}

fn base_name(p: &str) -> &str {
    p.rsplit(['/', '\\']).next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn parses_captions_and_rejects_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let ok = write(
            dir.path(),
            "c.json",
            r#"{"info":{},"images":[{"id":7,"file_name":"a.jpg","width":3,"height":4}],
               "annotations":[{"id":1,"image_id":7,"caption":" A cat. "}]}"#,
        );
        let c = CocoCaptions::read(&ok).unwrap();
        assert_eq!(c.images[0].file_name, "a.jpg");
        assert_eq!(c.annotations[0].caption, "A cat.");
        assert_eq!(c.captions_by_image()[&7], vec![0]);

        let dup = write(
            dir.path(),
            "d.json",
            r#"{"images":[{"id":7,"file_name":"a.jpg"},{"id":7,"file_name":"b.jpg"}],"annotations":[]}"#,
        );
        let err = CocoCaptions::read(&dup).unwrap_err().to_string();
        assert!(err.contains("image id 7 appears twice"), "{err}");

        let bad = write(dir.path(), "e.json", r#"{"images": 3}"#);
        let err = CocoCaptions::read(&bad).unwrap_err().to_string();
        assert!(err.contains("e.json"), "{err}");
    }

    #[test]
    fn reads_the_three_split_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let img = |id, f: &str| CocoImage {
            id,
            file_name: f.into(),
            width: 0,
            height: 0,
        };
        let k = write(
            dir.path(),
            "k.json",
            r#"{"images":[{"cocoid":1,"filename":"x1.jpg","split":"test"},
                          {"cocoid":2,"filename":"x2.jpg","split":"train"}]}"#,
        );
        let s = Split::read(&k, "test").unwrap();
        assert!(s.contains(&img(1, "zz.jpg")) && !s.contains(&img(2, "x2.jpg")));
        assert!(Split::read(&k, "nope").is_err());

        let l = write(
            dir.path(),
            "l.json",
            r#"[{"image":"val2014/x9.jpg","caption":["a"]}]"#,
        );
        let s = Split::read(&l, "test").unwrap();
        assert!(s.contains(&img(42, "x9.jpg")) && !s.contains(&img(9, "x8.jpg")));

        let t = write(dir.path(), "t.txt", "3\nfolder/y.png\n\n");
        let s = Split::read(&t, "test").unwrap();
        assert!(s.contains(&img(3, "q.jpg")) && s.contains(&img(4, "y.png")));
        assert!(!s.contains(&img(4, "q.jpg")));
    }
}
