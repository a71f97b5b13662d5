//! CLIP encoding speed on the ViT-B/32 architecture (random weights).
//!
//! Needs the model folder written by `python3 scripts/clip_golden.py --config vit-b-32 --out DIR`,
//! given as `MMDB_CLIP_BENCH_MODEL=DIR`; without it the bench prints why and does nothing. Threads:
//! `RAYON_NUM_THREADS` (candle's CPU kernels use the global rayon pool). Compare with
//! `python3 benches/clip_torch.py DIR --threads N`.
//!
//! Measures: image encoding at batch 1/8/32 (preprocessed pixels, model only), text encoding at
//! batch 1, and the end-to-end pool path (decode + preprocess + encode of 64 image blobs), with the
//! default (one single-threaded worker per core) and with one bulk worker on all cores.

use std::path::PathBuf;
use std::time::Duration;

use candle_core::{DType, Device};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmdb::ImageSource;
use mmdb::clip::{ClipEmbedder, EmbedPool, Lane, PoolOptions};

/// The allocator of the `mmdb` binary, so the numbers are what its bulk loads and queries get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn model_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("MMDB_CLIP_BENCH_MODEL")?);
    dir.join("model.safetensors").is_file().then_some(dir)
}

fn bench(c: &mut Criterion) {
    let Some(dir) = model_dir() else {
        eprintln!(
            "benches/clip: skipped. Set MMDB_CLIP_BENCH_MODEL to a folder made by \
             `python3 scripts/clip_golden.py --config vit-b-32 --out /tmp/clip-vit-b-32`"
        );
        return;
    };
    let m = ClipEmbedder::load_dir(&dir, "vit-b-32", &Device::Cpu, DType::F32).unwrap();
    let images: Vec<PathBuf> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let pixels: Vec<Vec<f32>> = images
        .iter()
        .map(|p| {
            m.preprocess()
                .run(
                    &ImageSource::Path(p.display().to_string()),
                    &mmdb::ImageLimits::default(),
                )
                .unwrap()
        })
        .collect();
    let threads = rayon::current_num_threads();

    let mut g = c.benchmark_group(format!("clip_vit_b_32_cpu_threads{threads}"));
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    for bs in [1usize, 8, 32] {
        let batch: Vec<Vec<f32>> = pixels.iter().cycle().take(bs).cloned().collect();
        g.throughput(Throughput::Elements(bs as u64));
        g.measurement_time(Duration::from_secs(if bs == 1 { 5 } else { 15 }));
        g.bench_function(format!("image_batch{bs}"), |b| {
            b.iter(|| m.encode_pixels(&batch).unwrap())
        });
    }
    let ids = m
        .tokenizer()
        .encode("a photo of a cat sitting on a red sofa")
        .unwrap();
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("text_batch1", |b| {
        b.iter(|| m.encode_ids(std::slice::from_ref(&ids)).unwrap())
    });

    // End to end through the pool (decode + preprocess + encode), cache off: the default (data
    // parallel: one single-threaded worker per core) and one bulk worker using every core.
    let blobs: Vec<ImageSource> = images
        .iter()
        .cycle()
        .take(64)
        .map(|p| ImageSource::Bytes(std::fs::read(p).unwrap()))
        .collect();
    let one_worker = PoolOptions {
        bulk_workers_per_device: 1,
        bulk_worker_threads: 0,
        ..PoolOptions::default()
    };
    for (name, opts) in [
        ("default_data_parallel", PoolOptions::default()),
        ("one_worker_all_threads", one_worker),
    ] {
        let opts = PoolOptions {
            cache_entries: 0,
            ..opts
        };
        let pool = EmbedPool::from_replicas(vec![m.clone()], opts).unwrap();
        g.throughput(Throughput::Elements(64));
        g.measurement_time(Duration::from_secs(30));
        g.bench_function(format!("pool_{name}_image_blobs64"), |b| {
            b.iter(|| {
                let r = pool.embed_images_in(Lane::Bulk, &blobs, &mmdb::ImageLimits::default());
                assert!(r.iter().all(|r| r.is_ok()));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
