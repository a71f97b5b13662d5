//! COCO: bulk loading of COCO-captions-format data sets and the Recall@K benchmark.
pub mod captions;
mod image_file;
mod npy_file;
#[cfg(test)]
mod probe {
    #[test]
    fn truncated_jpeg_probe() {
        let b = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/coco-mini/images/000000000006.jpg")).unwrap();
        let r = image::load_from_memory(&b);
        eprintln!("PROBE: {:?}", r.as_ref().map(|i| (i.width(), i.height())).map_err(|e| e.to_string()));
    }
}
