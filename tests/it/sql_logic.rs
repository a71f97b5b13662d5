//! sqllogictest scripts (`tests/slt/*.slt`) run against a fresh database each, with a fake,
//! deterministic embedder registered for the default model and for `model = 'fake'`.

use std::path::Path;
use std::sync::Arc;

use mmdb::embed::{DEFAULT_MODEL, Embedder};
use mmdb::{Database, Error, ImageSource, Output, Session, Value};
use sqllogictest::{DBOutput, DefaultColumnType};

/// Bag-of-words vectors: each word adds 1 to bucket hash(word) % DIM, so texts sharing words are
/// similar. Image paths embed the words of their file stem (a missing file is an error); image
/// bytes embed their UTF-8 text.
pub struct FakeEmbedder {
    identity: String,
}

const DIM: usize = 16;

impl FakeEmbedder {
    pub fn new(name: &str) -> FakeEmbedder {
        FakeEmbedder { identity: format!("{name} dim={DIM} fake") }
    }

    fn words(text: &str) -> Vec<f32> {
        let mut v = vec![0.0; DIM];
        for w in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let h = w.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
            v[(h % DIM as u64) as usize] += 1.0;
        }
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        v
    }
}

impl Embedder for FakeEmbedder {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn dim(&self) -> usize {
        DIM
    }
    fn embed_texts(&self, texts: &[String]) -> Vec<mmdb::Result<Vec<f32>>> {
        texts.iter().map(|t| Ok(Self::words(t))).collect()
    }
    fn embed_images(&self, images: &[ImageSource]) -> Vec<mmdb::Result<Vec<f32>>> {
        images
            .iter()
            .map(|img| match img {
                ImageSource::Path(p) => {
                    if !Path::new(p).exists() {
                        return Err(Error::Image { source_name: p.clone(), detail: "no such file".into() });
                    }
                    let stem = Path::new(p).file_stem().map(|s| s.to_string_lossy().into_owned());
                    Ok(Self::words(&stem.unwrap_or_default()))
                }
                ImageSource::Bytes(b) => Ok(Self::words(&String::from_utf8_lossy(b))),
            })
            .collect()
    }
}

/// Registers fake embedders on `db` for the default model, `fake` and `other` (a different
/// identity, for mismatch tests).
pub fn install_fakes(db: &Database) {
    db.models().insert(DEFAULT_MODEL, Arc::new(FakeEmbedder::new(DEFAULT_MODEL)));
    db.models().insert("fake", Arc::new(FakeEmbedder::new("fake")));
}

struct SltDb {
    session: Session,
    _dir: tempfile::TempDir,
}

fn render(v: &Value) -> String {
    match v {
        Value::Real(r) => format!("{r:.3}"),
        Value::Text(s) if s.is_empty() => "(empty)".into(),
        other => mmdb::sql::display_value(other, usize::MAX),
    }
}

impl sqllogictest::DB for SltDb {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        Ok(match self.session.run(sql, &[])? {
            Output::Rows(rows) => DBOutput::Rows {
                types: rows
                    .columns()
                    .iter()
                    .map(|c| match c.ty {
                        Some(mmdb::ColumnType::Integer) => DefaultColumnType::Integer,
                        Some(mmdb::ColumnType::Real) => DefaultColumnType::FloatingPoint,
                        Some(_) => DefaultColumnType::Text,
                        None => DefaultColumnType::Any,
                    })
                    .collect(),
                rows: rows.iter().map(|r| r.values().iter().map(render).collect()).collect(),
            },
            Output::Changed(n) => DBOutput::StatementComplete(n as u64),
            Output::Done => DBOutput::StatementComplete(0),
        })
    }
}

fn run_slt(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("tests/slt").join(name);
    // Image paths in the scripts are relative to tests/slt/images (created here; the fake
    // embedder only needs the files to exist).
    let images = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slt-images");
    std::fs::create_dir_all(&images).unwrap();
    for f in ["cat_on_sofa.jpg", "dog_in_park.jpg", "red_car.png", "cat_and_dog.jpg"] {
        std::fs::write(images.join(f), b"not really an image").unwrap();
    }
    let mut runner = sqllogictest::Runner::new(|| async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("db")).unwrap();
        install_fakes(&db);
        Ok(SltDb { session: db.session(), _dir: dir })
    });
    runner.add_label("mmdb");
    runner.set_var("IMAGES".into(), images.to_string_lossy().into_owned());
    if let Err(e) = runner.run_file(&file) {
        panic!("{}: {}", file.display(), e.display(true));
    }
}

macro_rules! slt {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            run_slt(concat!(stringify!($name), ".slt"));
        }
    )*};
}

slt!(ddl, dml, select, aggregates, vector_search, embedded, errors);
