//! Image preprocessing, exactly as `transformers`' `CLIPImageProcessorPil`.
//!
//! decode -> RGB like PIL's `convert("RGB")` -> resize the short side with PIL's bicubic
//! ([`super::resample`]) -> center crop -> rescale -> normalise with the model's mean/std. Settings
//! come from `preprocessor_config.json` when the model folder has one, else CLIP's defaults.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use serde_json::Value as Json;

use super::resample::resize_bicubic_window;
use crate::{Error, ImageErrorKind, ImageLimits, ImageSource, Result, read_image};

/// CLIP's normalisation mean (OpenAI), used when the model has no `preprocessor_config.json`.
pub const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's normalisation std (OpenAI).
pub const CLIP_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Preprocessing settings of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Target of the short side after resizing (default: the model's image size).
    pub shortest_edge: u32,
    /// Crop (height, width) (default: the model's image size).
    pub crop: (u32, u32),
    /// Multiplier from 0-255 to the unit range (default 1/255).
    pub rescale: f64,
    /// Per-channel mean (default [`CLIP_MEAN`]).
    pub mean: [f64; 3],
    /// Per-channel std (default [`CLIP_STD`]).
    pub std: [f64; 3],
}

impl Preprocess {
    /// CLIP's defaults for a model whose vision tower takes `image_size` square inputs.
    pub fn clip_defaults(image_size: u32) -> Preprocess {
        Preprocess {
            shortest_edge: image_size,
            crop: (image_size, image_size),
            rescale: 1.0 / 255.0,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// Reads `preprocessor_config.json` from `dir` if present; CLIP's defaults otherwise.
    pub fn from_dir(dir: &Path, image_size: u32) -> Result<Preprocess> {
        let path = dir.join("preprocessor_config.json");
        let mut p = Preprocess::clip_defaults(image_size);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = |what: &str| Error::Model(format!("{}: {what}", path.display()));
        let j: Json = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let num = |v: &Json| v.as_f64();
        if let Some(size) = j.get("size") {
            p.shortest_edge = match size {
                Json::Number(n) => n.as_u64(),
                _ => size.get("shortest_edge").and_then(Json::as_u64),
            }
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                bad("size must give shortest_edge (other resize modes are not CLIP's)")
            })?;
        }
        if let Some(c) = j.get("crop_size") {
            p.crop = match c {
                Json::Number(n) => n.as_u64().map(|n| (n, n)),
                _ => c
                    .get("height")
                    .and_then(Json::as_u64)
                    .zip(c.get("width").and_then(Json::as_u64)),
            }
            .and_then(|(h, w)| Some((u32::try_from(h).ok()?, u32::try_from(w).ok()?)))
            .ok_or_else(|| bad("crop_size must give height and width"))?;
        }
        for (key, dst) in [("image_mean", &mut p.mean), ("image_std", &mut p.std)] {
            if let Some(v) = j.get(key) {
                let arr: Vec<f64> = v
                    .as_array()
                    .map(|a| a.iter().filter_map(num).collect())
                    .unwrap_or_default();
                if arr.len() != 3 {
                    return Err(bad(&format!("{key} must be 3 numbers")));
                }
                *dst = [arr[0], arr[1], arr[2]];
            }
        }
        if let Some(r) = j.get("rescale_factor").and_then(num) {
            p.rescale = r;
        }
        if let Some(r) = j.get("resample").and_then(Json::as_u64)
            && r != 3
        {
            return Err(bad("resample must be 3 (bicubic), as CLIP's"));
        }
        for flag in [
            "do_resize",
            "do_center_crop",
            "do_rescale",
            "do_normalize",
            "do_convert_rgb",
        ] {
            if j.get(flag).and_then(Json::as_bool) == Some(false) {
                return Err(bad(&format!("{flag}=false is not supported")));
            }
        }
        if p.shortest_edge == 0 || p.crop.0 == 0 || p.crop.1 == 0 || p.std.contains(&0.0) {
            return Err(bad("zero size, crop or std"));
        }
        Ok(p)
    }

    /// Reads ([`read_image`]), decodes and preprocesses one image to CHW f32 values,
    /// `3 * crop.0 * crop.1` long.
    pub fn run(&self, src: &ImageSource, limits: &ImageLimits) -> Result<Vec<f32>> {
        let bytes = read_image(src, limits)?;
        let rgb = self.decode_bytes(&src.name(), &bytes, limits)?;
        Ok(self.pixels(&rgb))
    }

    /// Decodes encoded image `bytes` (already through [`read_image`]) to RGB (PIL's
    /// `convert("RGB")`) under `limits`; `name` names the image in errors. With a decode
    /// deadline the decode runs on its own thread and is abandoned when late: it then finishes
    /// alone, within the memory limit, and its result is dropped.
    pub fn decode_bytes(&self, name: &str, bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage> {
        let Some(deadline) = limits.decode_deadline else {
            return decode_limited(name, bytes, limits);
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (owned, owned_name, l) = (bytes.to_vec(), name.to_string(), *limits);
        std::thread::Builder::new()
            .name("mmdb-decode".into())
            .spawn(move || {
                let _ = tx.send(decode_limited(&owned_name, &owned, &l));
            })
            .map_err(|e| {
                Error::image(
                    name,
                    ImageErrorKind::Undecodable,
                    format!("cannot start a decoder thread: {e}"),
                )
            })?;
        match rx.recv_timeout(deadline) {
            Ok(r) => r,
            Err(_) => Err(Error::image(
                name,
                ImageErrorKind::DecodeDeadline,
                format!(
                    "decoding took longer than the decode deadline ({} ms)",
                    deadline.as_millis()
                ),
            )),
        }
    }

    /// Resize, crop, rescale and normalise an RGB image to CHW f32.
    ///
    /// Only the window of the resized image that the centre crop keeps is computed
    /// ([`resize_bicubic_window`]), pixel for pixel what resizing whole then cropping gives: the
    /// cost follows the crop, not the resized size (for a 10,000,000 x 1 strip, 2.2 billion
    /// pixels wide at 224).
    pub fn pixels(&self, rgb: &RgbImage) -> Vec<f32> {
        let (w, h) = rgb.dimensions();
        let (nw, nh) = resize_target(w, h, self.shortest_edge);
        let (ch, cw) = (i64::from(self.crop.0), i64::from(self.crop.1));
        // transformers' center_crop: offset floor((n - crop) / 2), zero padding when smaller.
        let top = (nh as i64 - ch).div_euclid(2);
        let left = (nw as i64 - cw).div_euclid(2);
        let window = |start: i64, len: i64, n: u64| {
            start.max(0) as u64..((start + len).max(0) as u64).min(n)
        };
        let (xs, ys) = (window(left, cw, nw), window(top, ch, nh));
        let kept = resize_bicubic_window(
            rgb.as_raw(),
            w as usize,
            h as usize,
            nw,
            nh,
            xs.clone(),
            ys.clone(),
        );
        let kept_w = (xs.end - xs.start) as i64;
        let plane = (ch * cw) as usize;
        let mut out = vec![0f32; 3 * plane];
        for y in 0..ch {
            for x in 0..cw {
                let (sy, sx) = (y + top, x + left);
                let inside = sy >= ys.start as i64
                    && sx >= xs.start as i64
                    && sy < ys.end as i64
                    && sx < xs.end as i64;
                for c in 0..3 {
                    let v = if inside {
                        let at = (sy - ys.start as i64) * kept_w + (sx - xs.start as i64);
                        kept[at as usize * 3 + c]
                    } else {
                        0
                    };
                    let scaled = f64::from(v) * self.rescale;
                    let norm = (scaled - self.mean[c]) / self.std[c];
                    out[c * plane + (y * cw + x) as usize] = norm as f32;
                }
            }
        }
        out
    }
}

/// Decodes `bytes` with the `image` crate under `limits`: the header's dimensions against
/// `max_pixels` and the decoded size against `max_decode_bytes` before any pixel is decoded, and
/// the decoder's own buffers under `max_decode_bytes` (`image::Limits::max_alloc`).
fn decode_limited(name: &str, bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage> {
    // Decoder messages can end in a newline (zune-jpeg's do); keep the error on one line.
    let err = |kind, detail: String| Error::image(name, kind, detail.trim_end());
    let from_image = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => err(
            ImageErrorKind::OverMemoryLimit,
            format!(
                "decoding needs more memory than max_image_decode_bytes ({}): {l}",
                limits.max_decode_bytes
            ),
        ),
        other => err(
            ImageErrorKind::Undecodable,
            format!("cannot decode: {other}"),
        ),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(ImageErrorKind::Unreadable, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(err(
            ImageErrorKind::NotAnImage,
            "not a recognised image format (JPEG, PNG, WebP, GIF, BMP, TIFF)".into(),
        ));
    }
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_decode_bytes);
    reader.limits(l);
    let decoder = reader.into_decoder().map_err(from_image)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(err(ImageErrorKind::Undecodable, "empty image".into()));
    }
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(err(
            ImageErrorKind::TooManyPixels,
            format!(
                "{w}x{h} has more than max_image_pixels ({}) pixels (decompression bomb guard)",
                limits.max_pixels
            ),
        ));
    }
    if decoder.total_bytes() > limits.max_decode_bytes {
        return Err(err(
            ImageErrorKind::OverMemoryLimit,
            format!(
                "{w}x{h} decodes to {} bytes, more than max_image_decode_bytes ({})",
                decoder.total_bytes(),
                limits.max_decode_bytes
            ),
        ));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(from_image)?;
    Ok(to_rgb_like_pil(img))
}

/// transformers' `get_resize_output_image_size` for `shortest_edge`: short side to `size`, long
/// side `floor(size * long / short)` (which exceeds `u32` for long thin images).
pub fn resize_target(w: u32, h: u32, size: u32) -> (u64, u64) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = ((f64::from(size) * f64::from(long)) / f64::from(short)).floor() as u64;
    if w <= h {
        (u64::from(size), new_long.max(1))
    } else {
        (new_long.max(1), u64::from(size))
    }
}

/// RGB the way transformers' `convert_to_rgb` makes it (5.x): an image with alpha is composited
/// onto white with PIL's `alpha_composite`; otherwise PIL's `convert("RGB")`. 16-bit colour is
/// reduced to its high byte (PIL opens such files as 8-bit), 16-bit gray clipped at 255 (PIL's
/// `I;16` -> RGB).
fn to_rgb_like_pil(img: DynamicImage) -> RgbImage {
    let high_byte = |img: &DynamicImage| -> Vec<u8> {
        img.to_rgba16()
            .as_raw()
            .iter()
            .map(|&v| (v >> 8) as u8)
            .collect()
    };
    let (w, h) = (img.width(), img.height());
    if img.color().has_alpha() {
        let rgba = match &img {
            DynamicImage::ImageRgba16(_) | DynamicImage::ImageLumaA16(_) => high_byte(&img),
            _ => img.to_rgba8().into_raw(),
        };
        let raw: Vec<u8> = rgba.chunks_exact(4).flat_map(over_white).collect();
        return RgbImage::from_raw(w, h, raw).expect("sized from the source");
    }
    match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageLuma16(i) => {
            let raw: Vec<u8> = i
                .as_raw()
                .iter()
                .flat_map(|&v| [v.min(255) as u8; 3])
                .collect();
            RgbImage::from_raw(w, h, raw).expect("sized from the source")
        }
        DynamicImage::ImageRgb16(_) => {
            let raw: Vec<u8> = high_byte(&img)
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            RgbImage::from_raw(w, h, raw).expect("sized from the source")
        }
        // Luma8 and float images: the image crate matches PIL.
        other => other.to_rgb8(),
    }
}

/// One RGBA pixel over opaque white, Pillow's `ImagingAlphaComposite` integer arithmetic.
fn over_white(p: &[u8]) -> [u8; 3] {
    const BITS: u32 = 7;
    let sa = u32::from(p[3]);
    if sa == 0 {
        return [255; 3];
    }
    let (da, d) = (255u32, 255u32);
    let blend = da * (255 - sa);
    let outa255 = sa * 255 + blend;
    let coef1 = sa * 255 * 255 * (1 << BITS) / outa255;
    let coef2 = 255 * (1 << BITS) - coef1;
    let div255 = |a: u32| ((a >> 8) + a) >> 8;
    let ch = |s: u8| (div255(u32::from(s) * coef1 + d * coef2 + (0x80 << BITS)) >> BITS) as u8;
    [ch(p[0]), ch(p[1]), ch(p[2])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let p = Preprocess::clip_defaults(32);
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.png");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let mut cases = vec![
            (dir.path().to_path_buf(), "a directory"),
            ("/dev/zero".into(), "a device"),
        ];
        if made.is_ok_and(|s| s.success()) {
            cases.push((fifo, "a FIFO"));
        }
        for (path, kind) in cases {
            let src = ImageSource::Path(path.to_string_lossy().into_owned());
            let e = p
                .run(&src, &ImageLimits::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(kind) && e.contains("regular file"), "{e}");
        }
    }

    #[test]
    fn long_thin_images_cost_the_crop_not_the_aspect_ratio() {
        // Resized whole, the first would be 2.24e9 x 224 pixels (a 1.5 TB allocation: the
        // process aborted); only the centre crop is computed.
        let p = Preprocess::clip_defaults(224);
        for (w, h) in [(10_000_000, 1), (1, 10_000_000), (100_000, 3)] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([200, 100, 50]));
            let out = p.pixels(&img);
            assert_eq!(out.len(), 3 * 224 * 224, "{w}x{h}");
            let plane = 224 * 224;
            let want = |c: usize, v: f64| ((v * p.rescale - p.mean[c]) / p.std[c]) as f32;
            for (c, v) in [(0, 200.0), (1, 100.0), (2, 50.0)] {
                assert!(
                    out[c * plane..(c + 1) * plane]
                        .iter()
                        .all(|&x| (x - want(c, v)).abs() < 1e-6),
                    "{w}x{h} channel {c}"
                );
            }
        }
    }

    #[test]
    fn resize_target_floors_the_long_side() {
        assert_eq!(resize_target(97, 61, 56), (89, 56));
        assert_eq!(resize_target(61, 140, 56), (56, 128));
        assert_eq!(resize_target(640, 480, 224), (298, 224));
        assert_eq!(resize_target(10, 10, 224), (224, 224));
        assert_eq!(resize_target(10_000_000, 1, 224), (2_240_000_000, 224));
    }

    #[test]
    fn bad_bytes_and_bombs_are_per_image_errors() {
        let p = Preprocess::clip_defaults(32);
        let l = ImageLimits::default();
        let kind = |r: Result<Vec<f32>>| match r {
            Err(Error::Image { kind, detail, .. }) => {
                assert!(!detail.contains('\n'), "{detail:?}");
                (kind, detail)
            }
            other => panic!("{other:?}"),
        };
        let (k, _) = kind(p.run(&ImageSource::Bytes(b"not an image".to_vec()), &l));
        assert_eq!(k, ImageErrorKind::NotAnImage);
        let mut png = Vec::new();
        RgbImage::new(40, 30)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let truncated = ImageSource::Bytes(png[..png.len() / 2].to_vec());
        assert_eq!(kind(p.run(&truncated, &l)).0, ImageErrorKind::Truncated);
        let mut jpg = Vec::new();
        RgbImage::new(97, 61)
            .write_to(&mut Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        // Cut JPEGs decode "successfully" to grey; the intake refuses them first.
        let cut = ImageSource::Bytes(jpg[..jpg.len() - 40].to_vec());
        assert_eq!(kind(p.run(&cut, &l)).0, ImageErrorKind::Truncated);
        let (k, detail) = kind(p.run(&ImageSource::Bytes(png.clone()), &l.max_pixels(1000)));
        assert_eq!(k, ImageErrorKind::TooManyPixels);
        assert!(detail.contains("decompression bomb"), "{detail}");
        let (k, detail) = kind(p.run(&ImageSource::Bytes(png.clone()), &l.max_decode_bytes(1000)));
        assert_eq!(k, ImageErrorKind::OverMemoryLimit, "{detail}");
        assert_eq!(
            p.run(&ImageSource::Bytes(png), &l).unwrap().len(),
            3 * 32 * 32
        );
        let missing = p.run(&ImageSource::Path("/nonexistent/x.jpg".into()), &l);
        assert!(format!("{missing:?}").contains("/nonexistent/x.jpg"));
        assert_eq!(kind(missing).0, ImageErrorKind::Missing);
    }

    #[test]
    fn a_late_decode_is_abandoned_at_the_deadline() {
        // 16 megapixels of noise take tens of milliseconds to decode on any machine; the
        // deadline is one millisecond.
        let mut state = 1u32;
        let img = RgbImage::from_fn(4000, 4000, |_, _| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgb([(state >> 24) as u8, (state >> 16) as u8, (state >> 8) as u8])
        });
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let p = Preprocess::clip_defaults(16);
        let l = ImageLimits::default().decode_deadline(Some(std::time::Duration::from_millis(1)));
        match p.decode_bytes("noise.png", &png, &l) {
            Err(Error::Image { kind, detail, .. }) => {
                assert_eq!(kind, ImageErrorKind::DecodeDeadline, "{detail}");
                assert!(detail.contains("1 ms"), "{detail}");
            }
            other => panic!("{:?}", other.map(|i| i.dimensions())),
        }
        let generous = l.decode_deadline(Some(std::time::Duration::from_secs(600)));
        assert_eq!(
            p.decode_bytes("noise.png", &png, &generous)
                .unwrap()
                .dimensions(),
            (4000, 4000)
        );
    }

    #[test]
    fn every_supported_format_decodes() {
        use image::ImageFormat as F;
        let p = Preprocess::clip_defaults(16);
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(21, 13, |x, y| {
            image::Rgb([(x * 12) as u8, (y * 19) as u8, 99])
        }));
        for f in [F::Png, F::Jpeg, F::WebP, F::Gif, F::Bmp, F::Tiff] {
            let mut bytes = Vec::new();
            img.write_to(&mut Cursor::new(&mut bytes), f).unwrap();
            let rgb = p
                .decode_bytes("x", &bytes, &ImageLimits::default())
                .unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!(rgb.dimensions(), (21, 13), "{f:?}");
        }
    }

    #[test]
    fn alpha_goes_over_white_and_gray16_clips() {
        let rgba = image::RgbaImage::from_raw(
            3,
            1,
            vec![10, 20, 30, 0, 10, 20, 30, 255, 0, 100, 200, 128],
        )
        .unwrap();
        let rgb = to_rgb_like_pil(DynamicImage::ImageRgba8(rgba));
        // The last pixel checked against Pillow 13: alpha_composite(white, (0,100,200,128)).
        assert_eq!(rgb.as_raw(), &[255, 255, 255, 10, 20, 30, 127, 177, 227]);
        let g =
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 1, vec![100u16, 300]).unwrap();
        let rgb = to_rgb_like_pil(DynamicImage::ImageLuma16(g));
        assert_eq!(rgb.as_raw(), &[100, 100, 100, 255, 255, 255]);
    }
}
