//! The demo data generator: deterministic bytes, valid COCO captions JSON.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use mmdb::demo::{CAPTIONS_PER_IMAGE, IMAGE_SIDE, generate};
use serde_json::Value as Json;

/// Every file under `dir`, by relative path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["images", "annotations"] {
        for entry in fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{sub}/{}", path.file_name().unwrap().to_string_lossy());
            files.insert(name, fs::read(&path).unwrap());
        }
    }
    files
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), 12, 42, 0.25).unwrap();
    generate(b.path(), 12, 42, 0.25).unwrap();
    generate(c.path(), 12, 43, 0.25).unwrap();
    let (sa, sb, sc) = (snapshot(a.path()), snapshot(b.path()), snapshot(c.path()));
    assert_eq!(sa.len(), 12 + 2);
    assert_eq!(sa, sb, "same seed must give identical files");
    assert_eq!(sa.keys().collect::<Vec<_>>(), sc.keys().collect::<Vec<_>>());
    let differing = sa.iter().filter(|(k, v)| sc[*k] != **v).count();
    assert!(
        differing >= 12,
        "another seed changed only {differing} of 14 files"
    );
}

#[test]
fn writes_valid_coco_captions() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), 10, 7, 0.3).unwrap();
    assert_eq!((summary.train_images, summary.val_images), (7, 3));
    assert_eq!(summary.captions, 10 * CAPTIONS_PER_IMAGE);

    let mut image_ids = HashSet::new();
    let mut caption_ids = HashSet::new();
    for (name, expected) in [("captions_train.json", 7), ("captions_val.json", 3)] {
        let text = fs::read_to_string(dir.path().join("annotations").join(name)).unwrap();
        let json: Json = serde_json::from_str(&text).unwrap();
        let images = json["images"].as_array().unwrap();
        assert_eq!(images.len(), expected, "{name}");
        let mut per_image = BTreeMap::new();
        for image in images {
            let id = image["id"].as_u64().unwrap();
            assert!(image_ids.insert(id), "image id {id} repeated");
            assert_eq!(image["width"].as_u64(), Some(IMAGE_SIDE as u64));
            assert_eq!(image["height"].as_u64(), Some(IMAGE_SIDE as u64));
            let file = dir
                .path()
                .join("images")
                .join(image["file_name"].as_str().unwrap());
            let decoded = image::open(&file).unwrap();
            assert_eq!(
                (decoded.width(), decoded.height()),
                (IMAGE_SIDE, IMAGE_SIDE)
            );
            per_image.insert(id, 0);
        }
        for ann in json["annotations"].as_array().unwrap() {
            assert!(
                caption_ids.insert(ann["id"].as_u64().unwrap()),
                "caption id repeated"
            );
            let caption = ann["caption"].as_str().unwrap();
            assert!(
                caption.split(' ').count() >= 3,
                "caption too short: {caption}"
            );
            *per_image
                .get_mut(&ann["image_id"].as_u64().unwrap())
                .expect("caption of a known image") += 1;
        }
        assert!(
            per_image.values().all(|&n| n == CAPTIONS_PER_IMAGE),
            "{per_image:?}"
        );
    }
    assert_eq!(image_ids.len(), 10);
}

#[test]
fn first_caption_names_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 20, 3, 0.0).unwrap();
    let text = fs::read_to_string(dir.path().join("annotations/captions_train.json")).unwrap();
    let json: Json = serde_json::from_str(&text).unwrap();
    let anns = json["annotations"].as_array().unwrap();
    for image in json["images"].as_array().unwrap() {
        let scene = &image["scene"];
        let first = anns.iter().find(|a| a["image_id"] == image["id"]).unwrap();
        let caption = first["caption"].as_str().unwrap();
        assert!(
            caption.contains(scene["colour"].as_str().unwrap()),
            "{caption} vs {scene}"
        );
        assert!(
            caption.contains(scene["shape"].as_str().unwrap()),
            "{caption} vs {scene}"
        );
        if let Some(position) = scene["position"].as_str() {
            let named = match position {
                "center" => caption.contains("cent") || caption.contains("middle"),
                "top" => caption.contains("top") || caption.contains("upper"),
                "bottom" => caption.contains("bottom") || caption.contains("lower"),
                side => caption.contains(side),
            };
            assert!(named, "{caption} vs {scene}");
        }
    }
}

#[test]
fn rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let zero = generate(dir.path(), 0, 0, 0.1).unwrap_err();
    assert!(matches!(zero, mmdb::Error::InvalidArgument(_)), "{zero}");
    let fraction = generate(dir.path(), 5, 0, 1.5).unwrap_err();
    assert!(
        matches!(fraction, mmdb::Error::InvalidArgument(_)),
        "{fraction}"
    );
    // An output path that is a file: an I/O error naming it, no panic.
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let io = generate(&file, 2, 0, 0.0).unwrap_err();
    assert!(
        matches!(io, mmdb::Error::Io { .. }) && io.to_string().contains("plain-file"),
        "{io}"
    );
}
