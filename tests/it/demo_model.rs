//! The bundled demo model, loaded through mmdb's CLIP path (the same as real CLIP weights),
//! reaches on freshly generated scenes the Recall@K that PyTorch measured for it
//! (`fixtures/models/mmdb-demo-clip/metrics.json`, block `test`: seed 1, 500 images).

use std::collections::HashMap;
use std::path::Path;

use mmdb::Embedder;
use mmdb::ImageSource;
use mmdb::clip::ClipEmbedder;
use serde_json::Value as Json;

/// Recall points (percent) the Rust path may differ from PyTorch's: resize arithmetic and f32
/// summation order move a few near-tied ranks.
const MARGIN: f64 = 2.0;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Ranks of `gallery` by similarity to `query`, best first.
fn ranking(query: &[f32], gallery: &[Vec<f32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..gallery.len()).collect();
    let scores: Vec<f32> = gallery.iter().map(|g| dot(query, g)).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

#[test]
fn demo_model_reaches_its_stated_recall() {
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/mmdb-demo-clip");
    let stated: Json =
        serde_json::from_slice(&std::fs::read(model_dir.join("metrics.json")).unwrap()).unwrap();
    let test = &stated["test"];
    let data = tempfile::tempdir().unwrap();
    let seed = test["seed"].as_u64().unwrap();
    let images = test["images"].as_u64().unwrap() as usize;
    mmdb::demo::generate(data.path(), images, seed, 1.0).unwrap();

    let model = ClipEmbedder::load_dir(
        &model_dir,
        "mmdb-demo-clip",
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    let coco: Json = serde_json::from_slice(
        &std::fs::read(data.path().join("annotations/captions_val.json")).unwrap(),
    )
    .unwrap();
    let entries = coco["images"].as_array().unwrap();
    let index: HashMap<u64, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, im)| (im["id"].as_u64().unwrap(), i))
        .collect();
    let sources: Vec<ImageSource> = entries
        .iter()
        .map(|im| {
            let path = data
                .path()
                .join("images")
                .join(im["file_name"].as_str().unwrap());
            ImageSource::Path(path.to_string_lossy().into_owned())
        })
        .collect();
    let (texts, owners): (Vec<String>, Vec<usize>) = coco["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let owner = index[&a["image_id"].as_u64().unwrap()];
            (a["caption"].as_str().unwrap().to_string(), owner)
        })
        .unzip();
    let img: Vec<Vec<f32>> = model
        .embed_images(&sources, &mmdb::ImageLimits::default())
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let txt: Vec<Vec<f32>> = model
        .embed_texts(&texts)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    for k in [1usize, 5, 10] {
        // CLIP_benchmark: text->image hit if the caption's image is in the top k; image->text hit
        // if any of the image's captions is.
        let t2i = (0..txt.len())
            .filter(|&t| ranking(&txt[t], &img)[..k].contains(&owners[t]))
            .count() as f64
            * 100.0
            / txt.len() as f64;
        let i2t = (0..img.len())
            .filter(|&i| ranking(&img[i], &txt)[..k].iter().any(|&t| owners[t] == i))
            .count() as f64
            * 100.0
            / img.len() as f64;
        for (name, got) in [("text_to_image", t2i), ("image_to_text", i2t)] {
            let want = test["metrics"][format!("{name}_R@{k}")].as_f64().unwrap();
            assert!(
                (got - want).abs() <= MARGIN,
                "{name} R@{k}: mmdb {got:.2}, PyTorch {want:.2} (margin {MARGIN})"
            );
        }
    }
}
