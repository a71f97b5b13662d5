//! `coco::bench_recall` on a three-image set whose Recall@K is worked out by hand.
//!
//! Images (fake embedder: the pixel colour): A = red (1,0,0), B = green (0,1,0), C = blue (0,0,1).
//! Captions and their vectors (cosine, so only directions matter):
//!
//! | caption | image | vector          | images by score      | rank of own image |
//! |---------|-------|-----------------|----------------------|-------------------|
//! | c1      | A     | (1, 0, 0)       | A 1, B 0, C 0        | 1                 |
//! | c2      | A     | (.62, .78, 0)   | B .78, A .62, C 0    | 2                 |
//! | c3      | B     | (0, 1, 0)       | B 1                  | 1                 |
//! | c4      | B     | (.1, .2, .97)   | C .97, B .2, A .1    | 2                 |
//! | c5      | C     | (.55, .835, 0)  | B .835, A .55, C 0   | 3                 |
//! | c6      | C     | (.6, 0, .8)     | C .8, A .6, B 0      | 1                 |
//!
//! text→image: R@1 = 3/6 = 50%, R@2 = 5/6 = 83.3%, R@3 = 100%.
//! image→text (first caption of the image's own in the ranking of all six, by cosine):
//! A: c1 (1.0) first → rank 1. B: c3 (1.0) first → rank 1. C: c4 (.97/|c4| = .978, B's) then c6 (.8,
//! C's) → rank 2. So R@1 = 2/3 = 66.7%, R@2 = R@3 = 100%.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use mmdb::Database;
use mmdb::coco::{self, LoadOptions, NpyImportOptions, RecallOptions};

use crate::load_coco::FakeEmbedder;

const CAPTIONS: [(i64, i64, &str, [f32; 3]); 6] = [
    (11, 1, "c1", [1.0, 0.0, 0.0]),
    (12, 1, "c2", [0.62, 0.78, 0.0]),
    (21, 2, "c3", [0.0, 1.0, 0.0]),
    (22, 2, "c4", [0.1, 0.2, 0.97]),
    (31, 3, "c5", [0.55, 0.835, 0.0]),
    (32, 3, "c6", [0.6, 0.0, 0.8]),
];
const COLOURS: [(i64, [u8; 3]); 3] = [(1, [255, 0, 0]), (2, [0, 255, 0]), (3, [0, 0, 255])];

const T2I: [f64; 3] = [50.0, 500.0 / 6.0, 100.0];
const I2T: [f64; 3] = [200.0 / 3.0, 100.0, 100.0];

fn write_set(dir: &Path) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut images = Vec::new();
    for (id, rgb) in COLOURS {
        let name = format!("{id}.png");
        image::RgbImage::from_pixel(4, 4, image::Rgb(rgb))
            .save(dir.join("images").join(&name))
            .unwrap();
        images.push(serde_json::json!({"id": id, "file_name": name, "width": 4, "height": 4}));
    }
    let annotations: Vec<_> = CAPTIONS
        .iter()
        .map(|(id, image, text, _)| serde_json::json!({"id": id, "image_id": image, "caption": text}))
        .collect();
    let json = serde_json::json!({"images": images, "annotations": annotations});
    std::fs::write(dir.join("captions.json"), json.to_string()).unwrap();
}

fn fake() -> FakeEmbedder {
    let texts: Vec<(&str, [f32; 3])> = CAPTIONS.iter().map(|c| (c.2, c.3)).collect();
    FakeEmbedder::new(&texts)
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-9, "{what}: got {got:?}, want {want:?}");
    }
}

#[test]
fn recall_matches_the_hand_worked_answer_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path());
    let db = Database::open(dir.path().join("db")).unwrap();
    db.models().insert("fake", Arc::new(fake()));
    let mut o = LoadOptions::new(dir.path().join("captions.json"), dir.path().join("images"));
    o.model = "fake".into();
    let r = coco::load(&db, &o, &coco::NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!((r.images_loaded, r.captions_loaded), (3, 6), "{r}");

    let mut opts = RecallOptions::new();
    opts.k = vec![1, 2, 3];
    opts.compare_exact = true;
    let rep = coco::bench_recall(&db, &opts).unwrap();
    assert_eq!(
        (rep.images, rep.captions, rep.captions_without_image),
        (3, 6, 0)
    );
    assert_close(&rep.scores.text_to_image, &T2I, "hnsw text→image");
    assert_close(&rep.scores.image_to_text, &I2T, "hnsw image→text");
    let exact = rep.exact.as_ref().expect("compare_exact");
    assert_close(&exact.text_to_image, &T2I, "exact text→image");
    assert_close(&exact.image_to_text, &I2T, "exact image→text");
    let table = rep.to_string();
    assert!(
        table.contains("66.7   100.0   100.0      50.0    83.3   100.0"),
        "{table}"
    );
    assert!(table.contains("difference"), "{table}");

    opts.exact = true;
    opts.compare_exact = false;
    opts.ef = None;
    let rep = coco::bench_recall(&db, &opts).unwrap();
    assert_eq!(rep.scores.path, "exact");
    assert_close(&rep.scores.text_to_image, &T2I, "exact-only text→image");

    let json = dir.path().join("r.json");
    rep.write_json(&json).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["k"], serde_json::json!([1, 2, 3]));
    assert_eq!(v["scores"]["text_to_image"][0], serde_json::json!(50.0));

    opts.k = vec![0];
    assert!(coco::bench_recall(&db, &opts).is_err());
}

#[test]
fn imported_npy_embeddings_give_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let emb = dir.path().join("emb");
    for sub in ["img_emb", "text_emb", "metadata"] {
        std::fs::create_dir_all(emb.join(sub)).unwrap();
    }
    // clip-retrieval pairs: one row per caption, the image embedding repeated.
    let colour = |image: i64| {
        let rgb = COLOURS.iter().find(|c| c.0 == image).unwrap().1;
        rgb.iter().map(|&c| c as f32 / 255.0).collect::<Vec<f32>>()
    };
    let img: Vec<Vec<f32>> = CAPTIONS.iter().map(|c| colour(c.1)).collect();
    let text: Vec<Vec<f32>> = CAPTIONS.iter().map(|c| c.3.to_vec()).collect();
    coco::write_npy_f32(&emb.join("img_emb/img_emb_0.npy"), &img).unwrap();
    coco::write_npy_f32(&emb.join("text_emb/text_emb_0.npy"), &text).unwrap();
    let meta: String = CAPTIONS
        .iter()
        .map(|(_, image, t, _)| {
            format!("{{\"image_path\": \"/data/{image}.png\", \"caption\": \"{t}\"}}\n")
        })
        .collect();
    std::fs::write(emb.join("metadata/metadata_0.jsonl"), meta).unwrap();

    let db = Database::open(dir.path().join("db")).unwrap();
    let mut o = NpyImportOptions::new(&emb);
    o.identity = Some("fake-rgb dim=3".into());
    o.batch_size = 4; // an image's captions straddle batches
    let r = coco::import_npy(&db, &o).unwrap();
    assert_eq!((r.images, r.captions, r.shards), (3, 6, 1));
    // Straight into segments through the bulk path: nothing in the memtable, one segment each.
    for t in ["coco", "coco_captions"] {
        let snap = db.snapshot(t).unwrap();
        assert_eq!((snap.segment_count(), snap.memtable_rows()), (1, 0), "{t}");
    }

    let mut opts = RecallOptions::new();
    opts.k = vec![1, 2, 3];
    opts.exact = true;
    let rep = coco::bench_recall(&db, &opts).unwrap();
    assert_close(&rep.scores.text_to_image, &T2I, "npy text→image");
    assert_close(&rep.scores.image_to_text, &I2T, "npy image→text");

    // A second import into the same tables is refused; a shape mismatch names the file.
    assert!(
        coco::import_npy(&db, &o)
            .unwrap_err()
            .to_string()
            .contains("already has rows")
    );
    coco::write_npy_f32(&emb.join("text_emb/text_emb_0.npy"), &text[..5]).unwrap();
    o.table = "again".into();
    let err = coco::import_npy(&db, &o).unwrap_err().to_string();
    assert!(
        err.contains("text_emb_0.npy") && err.contains("(5, 3)"),
        "{err}"
    );
    std::fs::rename(
        emb.join("metadata/metadata_0.jsonl"),
        emb.join("metadata/metadata_0.parquet"),
    )
    .unwrap();
    let err = coco::import_npy(&db, &o).unwrap_err().to_string();
    assert!(
        err.contains("parquet") && err.contains("metadata_0.parquet"),
        "{err}"
    );
}
