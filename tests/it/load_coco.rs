//! `coco::load` on the committed coco-mini fixture: broken images are reported and skipped, the rest
//! loads, and a second run (or a run after a cancel) resumes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mmdb::Embedder;
use mmdb::coco::{self, FailureKind, LoadOptions};
use mmdb::{Database, Error, ImageSource, Result, Value};

/// A deterministic embedder: an image's vector is the RGB colour of its top-left pixel (0..1), a
/// text's vector comes from `texts` or, if absent, from its length. Optionally sets `cancel` after
/// `cancel_after` image batches, as a Ctrl-C during a load would.
pub struct FakeEmbedder {
    pub identity: String,
    pub texts: HashMap<String, Vec<f32>>,
    pub image_batches: AtomicUsize,
    pub cancel: Option<(usize, Arc<AtomicBool>)>,
}

impl FakeEmbedder {
    pub fn new(texts: &[(&str, [f32; 3])]) -> FakeEmbedder {
        FakeEmbedder {
            identity: "fake-rgb dim=3".into(),
            texts: texts
                .iter()
                .map(|(t, v)| (t.to_string(), v.to_vec()))
                .collect(),
            image_batches: AtomicUsize::new(0),
            cancel: None,
        }
    }
}

impl Embedder for FakeEmbedder {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn dim(&self) -> usize {
        3
    }
    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Vec<f32>>> {
        texts
            .iter()
            .map(|t| {
                Ok(self
                    .texts
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| vec![t.len() as f32, 1.0, 0.5]))
            })
            .collect()
    }
    fn embed_images(
        &self,
        images: &[ImageSource],
        limits: &mmdb::ImageLimits,
    ) -> Vec<Result<Vec<f32>>> {
        let n = self.image_batches.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, flag)) = &self.cancel
            && n >= *after
        {
            flag.store(true, Ordering::SeqCst);
        }
        images
            .iter()
            .map(|src| {
                let bytes = mmdb::read_image(src, limits)?;
                let img = image::load_from_memory(&bytes).map_err(|e| {
                    Error::image("fake", mmdb::ImageErrorKind::Undecodable, e.to_string())
                })?;
                let p = img.to_rgb8().get_pixel(0, 0).0;
                Ok(p.iter().map(|&c| c as f32 / 255.0).collect())
            })
            .collect()
    }
}

pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/coco-mini")
}

fn open(path: &Path, embedder: FakeEmbedder) -> Database {
    let db = Database::open(path).unwrap();
    db.models().insert("fake", Arc::new(embedder));
    db
}

fn options() -> LoadOptions {
    let mut o = LoadOptions::new(fixture().join("captions.json"), fixture().join("images"));
    o.model = "fake".into();
    o.batch_size = 2;
    o
}

fn count(db: &Database, table: &str) -> usize {
    db.snapshot(table).unwrap().row_count()
}

#[test]
fn loads_good_images_reports_broken_ones_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let never = AtomicBool::new(false);
    let db = open(&db_path, FakeEmbedder::new(&[]));
    let r = coco::load(&db, &options(), &coco::NoProgress, &never).unwrap();
    assert_eq!(
        (r.images_total, r.images_loaded, r.captions_loaded),
        (7, 4, 8),
        "{r}"
    );
    assert!(!r.interrupted);
    let kinds: Vec<(i64, FailureKind)> = r
        .image_failures
        .iter()
        .map(|f| (f.image_id, f.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (5, FailureKind::Missing),
            (6, FailureKind::Truncated),
            (7, FailureKind::NotAnImage)
        ]
    );
    assert_eq!(r.report_path, dir.path().join("db.coco-load-report.tsv"));
    let tsv = std::fs::read_to_string(&r.report_path).unwrap();
    assert_eq!(tsv.lines().count(), 4, "{tsv}");
    for needle in ["missing\t5\t", "truncated\t6\t", "not_an_image\t7\t"] {
        assert!(tsv.contains(needle), "{needle} not in {tsv}");
    }
    assert!(
        r.to_string()
            .contains("skipped 3 images (missing 1, not_an_image 1, truncated 1)"),
        "{r}"
    );

    // The rows hold what the fixture says.
    let snap = db.snapshot("coco").unwrap();
    let row = snap.get(1).unwrap().expect("image 1 loaded");
    assert_eq!(row.values[1], Value::Text("000000000001.jpg".into()));
    assert_eq!(
        (&row.values[2], &row.values[3]),
        (&Value::Integer(16), &Value::Integer(12))
    );
    match &row.values[4] {
        Value::Image(ImageSource::Path(p)) => {
            assert!(p.ends_with("coco-mini/images/000000000001.jpg"), "{p}")
        }
        other => panic!("image column holds {other:?}"),
    }
    let red = row.embeddings[4].as_ref().unwrap();
    assert!(red[0] > 0.99 && red[1] < 0.05 && red[2] < 0.05, "{red:?}");
    let caps = db.snapshot("coco_captions").unwrap();
    let cap = caps.get(101).unwrap().expect("caption 101");
    assert_eq!(cap.values[1], Value::Integer(1));
    assert_eq!(cap.values[2], Value::Text("a red square".into()));
    assert!(
        caps.get(109).unwrap().is_none(),
        "captions of the missing image are not loaded"
    );
    drop((snap, caps));

    // Second run: nothing new, the broken ones are reported again.
    let r2 = coco::load(&db, &options(), &coco::NoProgress, &never).unwrap();
    assert_eq!(
        (
            r2.images_loaded,
            r2.captions_loaded,
            r2.images_already_loaded
        ),
        (0, 0, 4),
        "{r2}"
    );
    assert_eq!(r2.image_failures.len(), 3);
    db.close().unwrap();

    // Durable across a reopen.
    let db = open(&db_path, FakeEmbedder::new(&[]));
    assert_eq!((count(&db, "coco"), count(&db, "coco_captions")), (4, 8));
}

#[test]
fn a_cancelled_load_keeps_its_batches_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let cancel = Arc::new(AtomicBool::new(false));
    let mut fake = FakeEmbedder::new(&[]);
    fake.cancel = Some((1, cancel.clone()));
    let db = open(&db_path, fake);
    let r = coco::load(&db, &options(), &coco::NoProgress, &cancel).unwrap();
    // The flag rose during the first batch (ids 1, 2): that batch completes, then the load stops.
    assert!(r.interrupted);
    assert_eq!((r.images_loaded, r.captions_loaded), (2, 4), "{r}");
    // Without closing (as after a kill): reopen must see exactly the acknowledged rows.
    drop(db);
    let db = open(&db_path, FakeEmbedder::new(&[]));
    assert_eq!((count(&db, "coco"), count(&db, "coco_captions")), (2, 4));
    let never = AtomicBool::new(false);
    let r = coco::load(&db, &options(), &coco::NoProgress, &never).unwrap();
    assert_eq!(
        (r.images_already_loaded, r.images_loaded, r.captions_loaded),
        (2, 2, 4),
        "{r}"
    );
    assert_eq!((count(&db, "coco"), count(&db, "coco_captions")), (4, 8));
}

#[test]
fn a_split_file_selects_images() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("db"), FakeEmbedder::new(&[]));
    let mut o = options();
    o.split = Some(fixture().join("karpathy_split.json"));
    o.table = "test5k".into();
    let r = coco::load(&db, &o, &coco::NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!(
        (r.images_total, r.images_loaded, r.image_failures.len()),
        (4, 3, 1),
        "{r}"
    );
    let ids: Vec<u64> = db
        .snapshot("test5k")
        .unwrap()
        .scan()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(count(&db, "test5k_captions"), 6);
}

#[test]
fn refuses_a_foreign_table_and_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("db"), FakeEmbedder::new(&[]));
    let never = AtomicBool::new(false);
    db.create_table(mmdb::TableSchema::new(
        "other",
        vec![mmdb::Column::new("x", mmdb::ColumnType::Integer)],
    ))
    .unwrap();
    let mut o = options();
    o.table = "other".into();
    let err = coco::load(&db, &o, &coco::NoProgress, &never)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not the COCO layout"), "{err}");

    coco::load(&db, &options(), &coco::NoProgress, &never).unwrap();
    let mut other = FakeEmbedder::new(&[]);
    other.identity = "another-model dim=3".into();
    db.models().insert("fake2", Arc::new(other));
    let mut o = options();
    o.model = "fake2".into();
    let err = coco::load(&db, &o, &coco::NoProgress, &never).unwrap_err();
    assert!(matches!(err, Error::ModelMismatch { .. }), "{err}");

    let mut o = options();
    o.captions = dir.path().join("nope.json");
    let err = coco::load(&db, &o, &coco::NoProgress, &never)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.json"), "{err}");
}

#[test]
#[cfg(feature = "clip")]
fn loads_through_the_real_clip_pool() {
    // The randomly initialised tiny CLIP: meaningless vectors, but the real decode/embed path.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clip-tiny");
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut o = options();
    o.model = model.to_string_lossy().into_owned();
    let r = coco::load(&db, &o, &coco::NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!((r.images_loaded, r.captions_loaded), (4, 8), "{r}");
    let kinds: Vec<FailureKind> = r.image_failures.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            FailureKind::Missing,
            FailureKind::Truncated,
            FailureKind::NotAnImage
        ]
    );
    let schema = db.table_schema("coco").unwrap();
    assert_eq!(schema.columns[4].dim, 48, "the tiny model projects to 48");
    assert!(schema.model_identity.is_some());

    // With K covering every row, both directions must hit every query.
    let mut opts = coco::RecallOptions::new();
    opts.k = vec![1, 8];
    opts.compare_exact = true;
    let rep = coco::bench_recall(&db, &opts).unwrap();
    assert_eq!((rep.images, rep.captions), (4, 8));
    assert_eq!(rep.scores.text_to_image[1], 100.0);
    assert_eq!(rep.scores.image_to_text[1], 100.0);
    assert!((0.0..=100.0).contains(&rep.scores.text_to_image[0]));
}

#[test]
#[cfg(feature = "cli")]
fn the_cli_entries_load_then_benchmark_read_only() {
    use mmdb::cli::coco::{BenchRecallArgs, LoadCocoArgs, run_bench_recall, run_load_coco};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let load = LoadCocoArgs {
        db: db.clone(),
        captions: fixture().join("captions.json"),
        images: fixture().join("images"),
        model: Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/clip-tiny")
                .to_string_lossy()
                .into(),
        ),
        table: "coco".into(),
        split: None,
        split_name: "test".into(),
        batch_size: 3,
        allow_outside_images: false,
        max_image_bytes: None,
        max_image_pixels: None,
        decode_deadline_ms: None,
    };
    run_load_coco(&load).unwrap();
    // Again without --model: the table's model is reused and nothing new is loaded.
    run_load_coco(&LoadCocoArgs {
        model: None,
        ..load
    })
    .unwrap();
    assert!(dir.path().join("db.coco-load-report.tsv").exists());
    let json = dir.path().join("recall.json");
    let bench = BenchRecallArgs {
        db,
        table: "coco".into(),
        k: vec![1, 8],
        exact: true,
        ef: None,
        compare_exact: false,
        json: Some(json.clone()),
    };
    run_bench_recall(&bench).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["images"], 4);
    assert_eq!(v["scores"]["text_to_image"][1], 100.0);
}

#[test]
fn file_names_leading_out_of_the_images_folder_are_skipped_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let good = fixture().join("images/000000000002.png");
    std::fs::copy(&good, images.join("in.png")).unwrap();
    std::fs::copy(&good, dir.path().join("outside.png")).unwrap();
    let captions = dir.path().join("captions.json");
    std::fs::write(
        &captions,
        r#"{"images":[{"id":1,"file_name":"in.png"},{"id":2,"file_name":"../outside.png"}],
            "annotations":[{"id":10,"image_id":1,"caption":"a"},{"id":20,"image_id":2,"caption":"b"}]}"#,
    )
    .unwrap();
    let never = AtomicBool::new(false);
    let db = open(&dir.path().join("db"), FakeEmbedder::new(&[]));
    let mut o = LoadOptions::new(&captions, &images);
    o.model = "fake".into();
    let r = coco::load(&db, &o, &coco::NoProgress, &never).unwrap();
    assert_eq!(r.images_loaded, 1, "{r}");
    let kinds: Vec<_> = r
        .image_failures
        .iter()
        .map(|f| (f.image_id, f.kind))
        .collect();
    assert_eq!(kinds, [(2, FailureKind::OutsideImages)]);
    assert!(r.to_string().contains("(outside_images 1)"), "{r}");

    o.allow_outside_images = true;
    let r = coco::load(&db, &o, &coco::NoProgress, &never).unwrap();
    assert_eq!(r.images_loaded, 1, "the escaping image, now allowed: {r}");

    // A table name that cannot name the report is refused before any work.
    o.table = "sub/dir".into();
    let e = coco::load(&db, &o, &coco::NoProgress, &never).unwrap_err();
    assert!(e.to_string().contains("sub/dir"), "{e}");
    assert!(!db.table_names().iter().any(|t| t.contains("sub")));
}
