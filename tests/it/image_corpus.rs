//! The broken-image corpus. [`write_corpus`] generates the files users hand mmdb by accident or
//! by malice: JPEGs and PNGs cut at several places, other formats cut, wrong extensions, header
//! bombs, a photo between Pillow's two pixel thresholds, thin strips both ways, CMYK, 16-bit and
//! grey+alpha, an animated GIF, WebP, an EXIF-rotated JPEG, a JPEG with data after its end, zero
//! bytes, a FIFO, a symbolic-link loop, a dangling link, a directory, unicode and spaces in names.
//! Every entry point is tried against every case: SQL INSERT of a path and of a blob, UPDATE,
//! `image()` in a query, `load-coco` and `mmdb embed`. Each case must be the error of its
//! expected kind or the right embedding (equal to a reference file's where one exists), the same
//! at every entry point; nothing panics, aborts or blocks. The 10,000,000-pixel strips run in a
//! subprocess under `ulimit -v`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use mmdb::coco::{self, LoadOptions};
use mmdb::{Database, Error, ImageErrorKind as K, Value};

/// What a case must give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// An embedding; with `Some(file)`, the same one as that corpus file's.
    Embeds(Option<&'static str>),
    /// An [`Error::Image`] of this kind.
    Refused(K),
    /// An [`Error::Image`] whose kind the format's decoder decides (cut GIF, WebP, BMP, TIFF).
    RefusedAny,
}

struct Case {
    name: String,
    expect: Expect,
    /// A regular file (so its bytes can also go in as a blob).
    regular: bool,
}

fn encode(img: &DynamicImage, f: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), f).unwrap();
    out
}

/// A 40x30 picture with a gradient and a bright square (many colours).
fn scene() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(40, 30, |x, y| {
        if (10..20).contains(&x) && (5..15).contains(&y) {
            Rgb([250, 240, 20])
        } else {
            Rgb([(x * 6) as u8, (y * 8) as u8, 120])
        }
    }))
}

/// A picture of 12 flat blocks: few enough colours for a GIF palette to keep it exact.
fn blocks(shift: u8) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(40, 30, |x, y| {
        let (bx, by) = ((x / 10) as u8, (y / 10) as u8);
        Rgb([bx * 60 + shift, by * 90, 200 - bx * 40])
    }))
}

/// The PNG chunk CRC (ISO 3309), for patched headers.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// `png` with its IHDR claiming `w` x `h` (CRC fixed, so only the size is a lie).
fn png_claiming(png: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = png.to_vec();
    out[16..20].copy_from_slice(&w.to_be_bytes());
    out[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

/// `jpg` with its frame header (SOF0) claiming `w` x `h`.
fn jpeg_claiming(jpg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = jpg.to_vec();
    let sof = out
        .windows(2)
        .position(|p| p == [0xFF, 0xC0])
        .expect("a baseline JPEG");
    out[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    out
}

/// `jpg` with an EXIF segment saying "rotate 90 degrees" (orientation 6) after SOI.
fn with_exif_orientation(jpg: &[u8]) -> Vec<u8> {
    // "Exif\0\0", a little-endian TIFF header, one IFD entry: tag 0x0112, SHORT, count 1, 6.
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpg[2..]);
    out
}

/// Writes the corpus into `dir` and lists its cases.
fn write_corpus(dir: &Path) -> Vec<Case> {
    use Expect::*;
    let mut cases = Vec::new();
    let mut file = |name: &str, bytes: &[u8], expect: Expect| {
        std::fs::write(dir.join(name), bytes).unwrap();
        cases.push(Case {
            name: name.to_string(),
            expect,
            regular: true,
        });
    };
    let png = encode(&scene(), ImageFormat::Png);
    let jpg = encode(&scene(), ImageFormat::Jpeg);
    file("ok.png", &png, Embeds(None));
    file("ok.jpg", &jpg, Embeds(None));
    for cut in [
        jpg.len() / 4,
        jpg.len() / 2,
        jpg.len() * 9 / 10,
        jpg.len() - 2,
    ] {
        file(
            &format!("cut-{cut}.jpg"),
            &jpg[..cut],
            Refused(K::Truncated),
        );
    }
    for cut in [20, png.len() / 2, png.len() - 4] {
        file(
            &format!("cut-{cut}.png"),
            &png[..cut],
            Refused(K::Truncated),
        );
    }
    for f in [
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ] {
        let whole = encode(&scene(), f);
        let ext = f.extensions_str()[0];
        file(
            &format!("cut-half.{ext}"),
            &whole[..whole.len() / 2],
            RefusedAny,
        );
    }
    file("png-named.jpg", &png, Embeds(Some("ok.png")));
    file(
        "text.png",
        b"root:x:0:0:root:/root:/bin/bash\n",
        Refused(K::NotAnImage),
    );
    file("empty.jpg", b"", Refused(K::NotAnImage));
    file(
        "bomb.png",
        &png_claiming(&png, 100_000, 100_000),
        Refused(K::TooManyPixels),
    );
    // Just above Pillow's refusal threshold (2 x 89,478,485 pixels).
    file(
        "over-pillow.png",
        &png_claiming(&png, 13_380, 13_380),
        Refused(K::TooManyPixels),
    );
    file(
        "bomb.jpg",
        &jpeg_claiming(&jpg, 60_000, 60_000),
        Refused(K::TooManyPixels),
    );
    let mut gif = encode(&blocks(0), ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    file("bomb.gif", &gif, Refused(K::TooManyPixels));
    // 90 megapixels: above Pillow's warning, below its refusal; transformers embeds it.
    let big = image::GrayImage::from_fn(10_000, 9_000, |x, y| {
        image::Luma([((x / 500 + y / 500) * 12) as u8])
    });
    file(
        "photo-10000x9000.png",
        &encode(&DynamicImage::ImageLuma8(big), ImageFormat::Png),
        Embeds(None),
    );
    for (name, w, h) in [
        ("strip-wide.png", 100_000, 1),
        ("strip-tall.png", 1, 100_000),
    ] {
        let strip = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 251) as u8, (y % 241) as u8, 7]));
        file(
            name,
            &encode(&DynamicImage::ImageRgb8(strip), ImageFormat::Png),
            Embeds(None),
        );
    }
    let mut cmyk = Vec::new();
    let pixels: Vec<u8> = scene()
        .to_rgb8()
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    jpeg_encoder::Encoder::new(&mut cmyk, 90)
        .encode(&pixels, 40, 30, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    file("cmyk.jpg", &cmyk, Embeds(None));
    // Progressive (many scans, tables between them) and restart markers inside the scan: the
    // truncation walk must reach their end-of-image markers, and still see every cut.
    let rgb: Vec<u8> = scene().to_rgb8().into_raw();
    for (name, progressive, restart) in [("progressive.jpg", true, 0), ("restarts.jpg", false, 2)] {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
        enc.set_progressive(progressive);
        enc.set_restart_interval(restart);
        enc.encode(&rgb, 40, 30, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        file(name, &out, Embeds(None));
        for cut in [out.len() / 3, out.len() * 2 / 3, out.len() - 1] {
            file(
                &format!("cut-{cut}-{name}"),
                &out[..cut],
                Refused(K::Truncated),
            );
        }
    }
    // 16-bit channels whose high byte is the 8-bit picture: PIL reads the high byte.
    let rgb16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(40, 30, |x, y| {
        let p = scene().to_rgb8().get_pixel(x, y).0;
        image::Rgb(p.map(|c| u16::from(c) * 257))
    });
    file(
        "rgb16.png",
        &encode(&DynamicImage::ImageRgb16(rgb16), ImageFormat::Png),
        Embeds(Some("ok.png")),
    );
    let la =
        image::GrayAlphaImage::from_fn(40, 30, |x, y| image::LumaA([(x * 6) as u8, (y * 8) as u8]));
    file(
        "gray-alpha.png",
        &encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png),
        Embeds(None),
    );
    let g16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(40, 30, |x, _| {
        image::Luma([x as u16 * 7])
    });
    file(
        "gray16.png",
        &encode(&DynamicImage::ImageLuma16(g16), ImageFormat::Png),
        Embeds(None),
    );
    file(
        "blocks.png",
        &encode(&blocks(0), ImageFormat::Png),
        Embeds(None),
    );
    let mut anim = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut anim);
        let frames = [blocks(0), blocks(30)].map(|f| image::Frame::new(f.to_rgba8()));
        enc.encode_frames(frames).unwrap();
    }
    // PIL embeds the first frame.
    file("animated.gif", &anim, Embeds(Some("blocks.png")));
    file(
        "lossless.webp",
        &encode(&blocks(0), ImageFormat::WebP),
        Embeds(Some("blocks.png")),
    );
    // transformers does not apply EXIF orientation (PIL's open does not): neither does mmdb.
    file(
        "exif-rotated.jpg",
        &with_exif_orientation(&jpg),
        Embeds(Some("ok.jpg")),
    );
    let mut motion = jpg.clone();
    motion.extend_from_slice(b"\0\0\0\x18ftypmp42 a phone's appended video");
    file("motion-photo.jpg", &motion, Embeds(Some("ok.jpg")));
    file("café photo ü.png", &png, Embeds(Some("ok.png")));

    let mut odd = |name: &str, expect: Expect| {
        cases.push(Case {
            name: name.to_string(),
            expect,
            regular: false,
        })
    };
    let fifo = dir.join("fifo.png");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    odd("fifo.png", Refused(K::NotRegularFile));
    std::fs::create_dir(dir.join("folder.jpg")).unwrap();
    odd("folder.jpg", Refused(K::NotRegularFile));
    std::os::unix::fs::symlink("loop.png", dir.join("loop.png")).unwrap();
    odd("loop.png", Refused(K::Unreadable));
    std::os::unix::fs::symlink("nowhere.png", dir.join("dangling.png")).unwrap();
    odd("dangling.png", Refused(K::Missing));
    cases
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/clip-tiny")
        .to_string_lossy()
        .into_owned()
}

/// Whether two embeddings of the same pixels agree: equal up to the summation order of the
/// batch they were encoded in (a bulk load batches images, a single INSERT does not).
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

/// The outcome of one case at one entry point: a vector, or the error's kind.
type Outcome = Result<Vec<f32>, K>;

/// Checks `got` against the case, given the vectors the SQL path gave the reference files.
fn check(entry: &str, case: &Case, got: &Outcome, reference: &dyn Fn(&str) -> Option<Vec<f32>>) {
    let what = format!("{entry}: {}", case.name);
    match (case.expect, got) {
        (Expect::Embeds(twin), Ok(v)) => {
            assert!(v.iter().all(|x| x.is_finite()), "{what}: {v:?}");
            if let Some(r) = twin.and_then(reference) {
                assert!(same(v, &r), "{what}: differs from {twin:?}:\n{v:?}\n{r:?}");
            }
        }
        (Expect::Refused(want), Err(kind)) => assert_eq!(*kind, want, "{what}"),
        (Expect::RefusedAny, Err(_)) => {}
        (want, got) => panic!("{what}: expected {want:?}, got {got:?}"),
    }
}

/// The kind of an image error, checking it is one line and names `name`.
fn image_kind(e: Error, name: &str) -> K {
    match e {
        Error::Image {
            kind,
            source_name,
            detail,
        } => {
            assert!(!detail.contains('\n'), "{detail:?}");
            assert!(
                source_name.contains(name),
                "{source_name} should name {name}"
            );
            kind
        }
        other => panic!("{name}: not an image error: {other}"),
    }
}

/// The embedding of the row of `photos` named `name`.
fn vector(db: &Database, name: &str) -> Option<Vec<f32>> {
    let rows = db
        .query(
            "SELECT id FROM photos WHERE name = ?",
            &[Value::Text(name.into())],
        )
        .unwrap();
    let id = rows.get(0)?.get::<i64>("id").ok()?;
    let row = db.snapshot("photos").unwrap().get(id as u64).unwrap()?;
    row.vector(2).map(<[f32]>::to_vec)
}

#[test]
fn every_entry_point_refuses_or_embeds_every_corpus_file_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let cases = write_corpus(&dir);
    let path = |c: &Case| dir.join(&c.name).to_string_lossy().into_owned();
    let db = Database::open(tmp.path().join("db")).unwrap();
    db.execute(
        &format!(
            "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT, img IMAGE) WITH (model = '{}')",
            model()
        ),
        &[],
    )
    .unwrap();

    // SQL INSERT of a path: the reference vectors come from here.
    let mut by_path = std::collections::HashMap::new();
    for c in &cases {
        let before = db.query("SELECT count(*) AS n FROM photos", &[]).unwrap();
        let r = db.execute(
            "INSERT INTO photos (name, img) VALUES (?, ?)",
            &[Value::Text(c.name.clone()), Value::Text(path(c))],
        );
        let got: Outcome = match r {
            Ok(1) => Ok(vector(&db, &c.name).expect("an embedding")),
            Ok(n) => panic!("{}: {n} rows", c.name),
            Err(e) => {
                let after = db.query("SELECT count(*) AS n FROM photos", &[]).unwrap();
                assert_eq!(before, after, "{}: a refused INSERT wrote a row", c.name);
                Err(image_kind(e, &c.name))
            }
        };
        by_path.insert(c.name.clone(), got);
    }
    let reference = |name: &str| by_path.get(name).and_then(|r| r.clone().ok());
    for c in &cases {
        check("INSERT path", c, &by_path[&c.name], &reference);
    }
    // One bad image fails a multi-row INSERT whole.
    let n = |db: &Database| db.query("SELECT id FROM photos", &[]).unwrap().len();
    let rows_before = n(&db);
    let e = db
        .execute(
            "INSERT INTO photos (name, img) VALUES ('a', ?), ('b', ?)",
            &[
                Value::Text(dir.join("ok.png").to_string_lossy().into()),
                Value::Text(dir.join("cut-20.png").to_string_lossy().into()),
            ],
        )
        .unwrap_err();
    assert_eq!(image_kind(e, "cut-20.png"), K::Truncated);
    assert_eq!(n(&db), rows_before);

    // SQL INSERT of the same bytes as a blob.
    for c in cases.iter().filter(|c| c.regular) {
        let bytes = std::fs::read(dir.join(&c.name)).unwrap();
        let blob_name = format!("blob {}", c.name);
        let r = db.execute(
            "INSERT INTO photos (name, img) VALUES (?, ?)",
            &[Value::Text(blob_name.clone()), Value::Blob(bytes)],
        );
        let got = r
            .map(|_| vector(&db, &blob_name).expect("an embedding"))
            .map_err(|e| image_kind(e, "<blob"));
        check("INSERT blob", c, &got, &reference);
        if let (Ok(v), Ok(want)) = (&got, &by_path[&c.name]) {
            assert!(same(v, want), "blob and path of {} differ", c.name);
        }
    }

    // image() as a query: the error, or the nearest row is an image with the same vector.
    for c in &cases {
        let sql = format!(
            "SELECT name FROM photos ORDER BY similarity(img, image('{}')) LIMIT 1",
            path(c)
        );
        let got = match db.query(&sql, &[]) {
            Ok(rows) => {
                assert_eq!(rows.len(), 1, "{}", c.name);
                let top: String = rows.get(0).unwrap().get("name").unwrap();
                Ok(reference(&top).or_else(|| vector(&db, &top)).unwrap())
            }
            Err(e) => Err(image_kind(e, &c.name)),
        };
        match (&got, &by_path[&c.name]) {
            // The nearest row's vector equals the query's own when the query embeds.
            (Ok(top), Ok(own)) => assert!(same(top, own), "image() {}", c.name),
            (Err(_), _) => check("image()", c, &got, &reference),
            (Ok(_), Err(k)) => panic!("image() embedded {} that INSERT refused ({k:?})", c.name),
        }
    }

    // UPDATE: a refused image leaves the row as it was.
    db.execute(
        "INSERT INTO photos (name, img) VALUES ('anchor', ?)",
        &[Value::Text(dir.join("ok.jpg").to_string_lossy().into())],
    )
    .unwrap();
    for c in &cases {
        let before = vector(&db, "anchor").unwrap();
        let r = db.execute(
            "UPDATE photos SET img = ? WHERE name = 'anchor'",
            &[Value::Text(path(c))],
        );
        let got = match r {
            Ok(1) => Ok(vector(&db, "anchor").unwrap()),
            Ok(n) => panic!("{}: UPDATE changed {n} rows", c.name),
            Err(e) => {
                assert_eq!(vector(&db, "anchor").unwrap(), before, "{}", c.name);
                Err(image_kind(e, &c.name))
            }
        };
        check("UPDATE", c, &got, &reference);
    }

    // load-coco: every case listed in one captions file; the load finishes and reports each
    // refused image under the same kind, and embeds the rest to the same vectors.
    let images: Vec<serde_json::Value> = cases
        .iter()
        .enumerate()
        .map(
            |(i, c)| serde_json::json!({"id": i + 1, "file_name": c.name, "width": 1, "height": 1}),
        )
        .collect();
    let annotations: Vec<serde_json::Value> = (0..cases.len())
        .map(|i| serde_json::json!({"id": 1000 + i, "image_id": i + 1, "caption": format!("picture {i}")}))
        .collect();
    let captions = tmp.path().join("captions.json");
    std::fs::write(
        &captions,
        serde_json::json!({"images": images, "annotations": annotations}).to_string(),
    )
    .unwrap();
    let mut o = LoadOptions::new(&captions, &dir);
    o.model = model();
    o.batch_size = 7;
    let r = coco::load(&db, &o, &coco::NoProgress, &AtomicBool::new(false)).unwrap();
    let refused = cases
        .iter()
        .filter(|c| !matches!(c.expect, Expect::Embeds(_)))
        .count();
    assert_eq!(r.image_failures.len(), refused, "{r}");
    assert_eq!(r.images_loaded, cases.len() - refused, "{r}");
    let snap = db.snapshot("coco").unwrap();
    for (i, c) in cases.iter().enumerate() {
        let id = (i + 1) as i64;
        let got = match r.image_failures.iter().find(|f| f.image_id == id) {
            Some(f) => {
                let k = [
                    K::Missing,
                    K::Unreadable,
                    K::NotRegularFile,
                    K::TooLarge,
                    K::NotAnImage,
                    K::Truncated,
                    K::TooManyPixels,
                    K::OverMemoryLimit,
                    K::DecodeDeadline,
                    K::Undecodable,
                ]
                .into_iter()
                .find(|k| k.name() == f.kind.name())
                .unwrap_or_else(|| panic!("{}: kind {:?}", c.name, f.kind));
                assert!(!f.detail.contains("root:x"), "{}", f.detail);
                Err(k)
            }
            None => Ok(snap
                .get(id as u64)
                .unwrap()
                .unwrap()
                .vector(4)
                .unwrap()
                .to_vec()),
        };
        check("load-coco", c, &got, &reference);
        if let (Ok(v), Ok(want)) = (&got, &by_path[&c.name]) {
            assert!(same(v, want), "load-coco and INSERT of {} differ", c.name);
        }
    }
    let tsv = std::fs::read_to_string(&r.report_path).unwrap();
    assert!(
        tsv.contains("too_many_pixels\t") && tsv.contains("not_a_regular_file\t"),
        "{tsv}"
    );
}

#[test]
fn limits_are_settable_per_session_and_per_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let png = encode(&scene(), ImageFormat::Png);
    std::fs::write(dir.join("ok.png"), &png).unwrap();
    let p = Value::Text(dir.join("ok.png").to_string_lossy().into());
    let create = format!(
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT, img IMAGE) WITH (model = '{}')",
        model()
    );
    let insert = "INSERT INTO photos (name, img) VALUES ('x', ?)";
    let kind = |r: mmdb::Result<usize>| image_kind(r.unwrap_err(), "ok.png");

    let db = Database::open(tmp.path().join("db")).unwrap();
    db.execute(&create, &[]).unwrap();
    let mut s = db.session();
    for (set, want) in [
        ("SET max_image_bytes = 100", K::TooLarge),
        ("SET max_image_pixels = 1000", K::TooManyPixels),
        ("SET max_image_decode_bytes = 1000", K::OverMemoryLimit),
    ] {
        s.execute(set, &[]).unwrap();
        assert_eq!(
            kind(s.execute(insert, std::slice::from_ref(&p))),
            want,
            "{set}"
        );
        let name = set.split_whitespace().nth(1).unwrap();
        s.execute(&format!("SET {name} = DEFAULT"), &[]).unwrap();
        s.execute(insert, std::slice::from_ref(&p)).unwrap();
    }
    for bad in [
        "SET max_image_bytes = 0",
        "SET max_image_pixels = -1",
        "SET max_image_decode_bytes = 'big'",
        "SET image_decode_deadline_ms = -5",
    ] {
        let e = s.execute(bad, &[]).unwrap_err().to_string();
        assert!(e.contains("positive integer"), "{bad}: {e}");
    }
    s.execute("SET image_decode_deadline_ms = 0", &[]).unwrap();
    s.execute(insert, std::slice::from_ref(&p)).unwrap();
    drop(s);
    db.close().unwrap();

    // The builder's limits are every session's defaults, and `DEFAULT` returns to them.
    let db = Database::builder()
        .image_limits(mmdb::ImageLimits::default().max_pixels(1000))
        .open(tmp.path().join("db"))
        .unwrap();
    assert_eq!(
        kind(db.session().execute(insert, std::slice::from_ref(&p))),
        K::TooManyPixels
    );
    let mut s = db.session();
    s.execute("SET max_image_pixels = 1000000", &[]).unwrap();
    s.execute(insert, std::slice::from_ref(&p)).unwrap();
    s.execute("SET max_image_pixels = DEFAULT", &[]).unwrap();
    assert_eq!(
        kind(s.execute(insert, std::slice::from_ref(&p))),
        K::TooManyPixels
    );
}

/// A load with a decode deadline shorter than any decode reports the late images and finishes.
#[test]
fn load_coco_skips_images_past_the_decode_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    // 16 megapixels of noise: tens of milliseconds to decode anywhere; the deadline is 1 ms.
    let mut state = 7u32;
    let noise = RgbImage::from_fn(4000, 4000, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        Rgb([(state >> 24) as u8, (state >> 16) as u8, (state >> 8) as u8])
    });
    std::fs::write(
        dir.join("noise.png"),
        encode(&DynamicImage::ImageRgb8(noise), ImageFormat::Png),
    )
    .unwrap();
    let captions = tmp.path().join("captions.json");
    std::fs::write(
        &captions,
        r#"{"images":[{"id":1,"file_name":"noise.png"}],
            "annotations":[{"id":10,"image_id":1,"caption":"static"}]}"#,
    )
    .unwrap();
    let db = Database::open(tmp.path().join("db")).unwrap();
    let mut o = LoadOptions::new(&captions, &dir);
    o.model = model();
    o.image_limits = Some(
        mmdb::ImageLimits::default().decode_deadline(Some(std::time::Duration::from_millis(1))),
    );
    let r = coco::load(&db, &o, &coco::NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.images_loaded, 0, "{r}");
    assert_eq!(r.image_failures.len(), 1, "{r}");
    assert_eq!(r.image_failures[0].kind.name(), "decode_deadline", "{r}");
    assert!(r.to_string().contains("decode_deadline 1"), "{r}");
}

/// `mmdb embed` on the whole corpus in one process (a FIFO among the inputs must not block it),
/// and the 10,000,000-pixel strips under a virtual-memory limit: before the crop window they
/// needed a 1.5 TB allocation and aborted.
#[cfg(feature = "cli")]
#[test]
fn mmdb_embed_reports_each_bad_file_and_strips_fit_under_ulimit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let cases = write_corpus(&dir);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mmdb"));
    cmd.args(["embed", "--model", &model()]);
    for c in &cases {
        cmd.arg("--image").arg(dir.join(&c.name));
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len());
    for (c, l) in cases.iter().zip(&lines) {
        let embeds = l.get("embedding").is_some();
        assert_eq!(
            embeds,
            matches!(c.expect, Expect::Embeds(_)),
            "{}: {l}",
            c.name
        );
        if !embeds {
            let e = l["error"].as_str().unwrap();
            assert!(e.contains(&c.name) && !e.contains("root:x"), "{e}");
        }
    }

    let mut strips = Vec::new();
    for (name, w, h) in [("wide.png", 10_000_000, 1), ("tall.png", 1, 10_000_000)] {
        let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x + y) % 256) as u8]));
        let p: PathBuf = tmp.path().join(name);
        std::fs::write(&p, encode(&DynamicImage::ImageLuma8(img), ImageFormat::Png)).unwrap();
        strips.push(p);
    }
    // 1 GiB of address space (the pair runs in 256 MiB here; a decoded strip is 30 MB of RGB).
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 1048576 && exec "$0" embed --model "$1" --image "$2" --image "$3""#)
        .arg(env!("CARGO_BIN_EXE_mmdb"))
        .arg(model())
        .args(&strips)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("\"embedding\""))
            .count(),
        2,
        "{stdout}"
    );
}
