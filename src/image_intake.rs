//! The one intake every image passes before a decoder sees it, whichever way it came in: a path or
//! blob in SQL (`INSERT`, `UPDATE`), an `image()` query argument, `load-coco`, `mmdb embed`.
//!
//! [`read_image`] reads regular files only (a FIFO would block forever, `/dev/zero` never end),
//! refuses files and blobs over [`ImageLimits::max_bytes`], and refuses JPEG and PNG data that
//! ends before the image does ([`check_complete`]): a JPEG decoder fills a cut scan with grey
//! and reports success, so without this check a half picture would be embedded. The decoder
//! (`clip::preprocess`) then applies the other limits: pixels, decode memory and the deadline.
//! A custom [`Embedder`](crate::Embedder) receives the same [`ImageLimits`] and can call
//! [`read_image`] itself.

use std::borrow::Cow;
use std::io::Read;
use std::time::Duration;

use crate::error::{Error, ImageErrorKind, Result};
use crate::value::ImageSource;

/// Pillow's `Image.MAX_IMAGE_PIXELS`: above it Pillow warns (`DecompressionBombWarning`), above
/// twice it Pillow refuses (`DecompressionBombError`).
pub const PILLOW_MAX_IMAGE_PIXELS: u64 = 89_478_485;
/// Default [`ImageLimits::max_pixels`]: Pillow's refusal threshold, twice
/// [`PILLOW_MAX_IMAGE_PIXELS`], so mmdb embeds every image `transformers` embeds.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 2 * PILLOW_MAX_IMAGE_PIXELS;
/// Default [`ImageLimits::max_bytes`]: 256 MiB, above any camera JPEG or PNG.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 256 << 20;
/// Default [`ImageLimits::max_decode_bytes`]: 1 GiB, room for an RGB image of
/// [`DEFAULT_MAX_IMAGE_PIXELS`] (537 MB) with its decoder's buffers.
pub const DEFAULT_MAX_IMAGE_DECODE_BYTES: u64 = 1 << 30;
/// The decode deadline bulk loads (`load-coco`, `mmdb embed`) use unless told otherwise.
pub const DEFAULT_BULK_DECODE_DEADLINE: Duration = Duration::from_secs(30);

/// Limits on one image, checked for every image mmdb reads. Set per database with
/// [`DatabaseBuilder::image_limits`](crate::DatabaseBuilder::image_limits), per session with
/// `SET max_image_bytes | max_image_pixels | max_image_decode_bytes | image_decode_deadline_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageLimits {
    /// Largest file or blob read, in bytes (default [`DEFAULT_MAX_IMAGE_BYTES`]).
    pub max_bytes: u64,
    /// Most pixels (width x height, read from the header before decoding) (default
    /// [`DEFAULT_MAX_IMAGE_PIXELS`]).
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate, the `image` crate's `Limits::max_alloc` (default
    /// [`DEFAULT_MAX_IMAGE_DECODE_BYTES`]).
    pub max_decode_bytes: u64,
    /// Longest one decode may take before the image is refused
    /// ([`ImageErrorKind::DecodeDeadline`]) and the load goes on (default `None`: no deadline;
    /// bulk loads use [`DEFAULT_BULK_DECODE_DEADLINE`]). The abandoned decode finishes on its
    /// own thread, inside the memory limit.
    pub decode_deadline: Option<Duration>,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_bytes: DEFAULT_MAX_IMAGE_BYTES,
            max_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            max_decode_bytes: DEFAULT_MAX_IMAGE_DECODE_BYTES,
            decode_deadline: None,
        }
    }
}

impl ImageLimits {
    /// Sets [`ImageLimits::max_bytes`].
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`ImageLimits::max_pixels`].
    pub fn max_pixels(mut self, n: u64) -> Self {
        self.max_pixels = n;
        self
    }

    /// Sets [`ImageLimits::max_decode_bytes`].
    pub fn max_decode_bytes(mut self, n: u64) -> Self {
        self.max_decode_bytes = n;
        self
    }

    /// Sets [`ImageLimits::decode_deadline`].
    pub fn decode_deadline(mut self, d: Option<Duration>) -> Self {
        self.decode_deadline = d;
        self
    }

    /// These limits with [`DEFAULT_BULK_DECODE_DEADLINE`] when they set no deadline.
    pub fn for_bulk_load(mut self) -> Self {
        self.decode_deadline
            .get_or_insert(DEFAULT_BULK_DECODE_DEADLINE);
        self
    }
}

/// The bytes of `src`, checked: a regular file (symbolic links followed), at most
/// `limits.max_bytes`, a format mmdb decodes, and not cut short ([`check_complete`]).
pub fn read_image<'a>(src: &'a ImageSource, limits: &ImageLimits) -> Result<Cow<'a, [u8]>> {
    let name = src.name();
    let too_large = |len: u64| {
        Error::image(
            &name,
            ImageErrorKind::TooLarge,
            format!(
                "{len} bytes, more than max_image_bytes ({})",
                limits.max_bytes
            ),
        )
    };
    let bytes = match src {
        ImageSource::Bytes(b) => Cow::Borrowed(&b[..]),
        ImageSource::Path(p) => {
            let io = |e: std::io::Error| {
                let kind = match e.kind() {
                    std::io::ErrorKind::NotFound => ImageErrorKind::Missing,
                    _ => ImageErrorKind::Unreadable,
                };
                Error::image(&name, kind, format!("cannot read: {e}"))
            };
            let meta = std::fs::metadata(p).map_err(io)?;
            if !meta.is_file() {
                return Err(Error::image(
                    &name,
                    ImageErrorKind::NotRegularFile,
                    format!(
                        "not a regular file ({}): images are read from regular files only",
                        file_kind(&meta)
                    ),
                ));
            }
            if meta.len() > limits.max_bytes {
                return Err(too_large(meta.len()));
            }
            // The file may grow between the stat and the read: read one byte past the limit.
            let mut out = Vec::with_capacity(meta.len() as usize);
            std::fs::File::open(p)
                .and_then(|f| f.take(limits.max_bytes + 1).read_to_end(&mut out))
                .map_err(io)?;
            Cow::Owned(out)
        }
    };
    if bytes.len() as u64 > limits.max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    check_complete(&bytes).map_err(|(kind, detail)| Error::image(&name, kind, detail))?;
    Ok(bytes)
}

/// Checks that `bytes` are an image format mmdb decodes and, for JPEG and PNG, that the data
/// reaches the end of the image: the segments of a JPEG up to its end-of-image marker, the
/// chunks of a PNG up to `IEND` (data after the end is ignored, as decoders do: phones append
/// videos to JPEGs). Other formats' decoders fail on cut data themselves. No byte of the input
/// is quoted in the error: reports must not leak what a non-image file holds.
pub fn check_complete(bytes: &[u8]) -> std::result::Result<(), (ImageErrorKind, String)> {
    use image::ImageFormat as F;
    let format = image::guess_format(bytes).map_err(|_| {
        (
            ImageErrorKind::NotAnImage,
            format!(
                "not a recognised image format (JPEG, PNG, WebP, GIF, BMP, TIFF) ({} bytes)",
                bytes.len()
            ),
        )
    })?;
    let cut = |what: &str| {
        Err((
            ImageErrorKind::Truncated,
            format!("{what} ({} bytes): the file is cut short", bytes.len()),
        ))
    };
    match format {
        F::Jpeg if !jpeg_complete(bytes) => cut("JPEG without its end-of-image marker"),
        F::Png if !png_complete(bytes) => cut("PNG without its IEND chunk"),
        F::Jpeg | F::Png | F::Gif | F::WebP | F::Bmp | F::Tiff => Ok(()),
        other => Err((
            ImageErrorKind::NotAnImage,
            format!("unsupported image format {other:?}"),
        )),
    }
}

/// Whether the JPEG's segments reach an end-of-image marker before the data ends. Structure the
/// walk does not understand counts as complete: the decoder judges it.
fn jpeg_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        // A marker: 0xFF (fill bytes allowed), then its code.
        if i >= b.len() {
            return false;
        }
        if b[i] != 0xFF {
            return true;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = b.get(i) else {
            return false;
        };
        i += 1;
        match code {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let Some(len) = b.get(i..i + 2) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return true;
                }
                i += len;
                if code == 0xDA {
                    // Entropy-coded data up to the next marker that is not a stuffed 0xFF00 or a
                    // restart marker.
                    loop {
                        match b.get(i..i + 2) {
                            None => return false,
                            Some([0xFF, 0x00 | 0xD0..=0xD7 | 0xFF]) => i += 1,
                            Some([0xFF, _]) => break,
                            Some(_) => i += 1,
                        }
                    }
                }
            }
        }
    }
}

/// Whether the PNG's chunks reach a whole `IEND` chunk before the data ends.
fn png_complete(b: &[u8]) -> bool {
    let mut i = 8; // after the signature
    loop {
        let Some(head) = b.get(i..i + 8) else {
            return false;
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = i.saturating_add(12).saturating_add(len);
        if end > b.len() {
            return false;
        }
        if &head[4..8] == b"IEND" {
            return true;
        }
        i = end;
    }
}

/// What kind of file `meta` describes, for an error message.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG's structure (signature, IHDR, IEND) without a real encoder: the engine's `image`
    /// has no codecs without the `clip` feature.
    fn png() -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(b"\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90\x77\x53\xde");
        out.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
        out
    }

    /// SOI, an APP0 segment, a scan with stuffed bytes and a restart marker, EOI.
    fn jpeg() -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46];
        out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x01]);
        out.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0x78]);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    #[test]
    fn every_cut_of_a_jpeg_or_png_is_truncated_and_the_whole_is_not() {
        for whole in [jpeg(), png()] {
            assert_eq!(check_complete(&whole), Ok(()));
            // Data after the end is ignored, as decoders ignore it.
            let mut tail = whole.clone();
            tail.extend_from_slice(b"ftypmp42 appended video");
            assert_eq!(check_complete(&tail), Ok(()));
            // Shorter than the signatures, a file is not recognised as an image at all.
            for cut in 8..whole.len() {
                let (kind, detail) = check_complete(&whole[..cut]).unwrap_err();
                assert_eq!(kind, ImageErrorKind::Truncated, "cut at {cut}: {detail}");
            }
        }
    }

    #[test]
    fn a_jpeg_whose_thumbnail_ends_early_is_still_cut() {
        // An APP1 segment holding a whole thumbnail JPEG (with its own EOI) does not end the
        // walk: only the outer EOI does.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD8, 0xFF, 0xD9];
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22]);
        assert_eq!(check_complete(&j).unwrap_err().0, ImageErrorKind::Truncated);
        j.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(check_complete(&j), Ok(()));
    }

    #[test]
    fn non_images_are_named_without_their_bytes() {
        let (kind, detail) = check_complete(b"root:x:0:0:root").unwrap_err();
        assert_eq!(kind, ImageErrorKind::NotAnImage);
        assert!(!detail.contains("root"), "{detail}");
        assert_eq!(
            check_complete(b"").unwrap_err().0,
            ImageErrorKind::NotAnImage
        );
    }

    #[test]
    fn only_regular_files_within_the_size_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ImageLimits::default();
        let read = |p: &std::path::Path, l: &ImageLimits| {
            read_image(&ImageSource::Path(p.to_string_lossy().into_owned()), l)
                .map(|b| b.len())
                .map_err(|e| match e {
                    Error::Image { kind, detail, .. } => (kind, detail),
                    other => panic!("{other}"),
                })
        };
        let fifo = dir.path().join("f.png");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let mut odd = vec![(dir.path().to_path_buf(), "a directory")];
        odd.push(("/dev/zero".into(), "a device"));
        if made.is_ok_and(|s| s.success()) {
            odd.push((fifo, "a FIFO"));
        }
        for (path, what) in odd {
            let (kind, detail) = read(&path, &limits).unwrap_err();
            assert_eq!(kind, ImageErrorKind::NotRegularFile);
            assert!(detail.contains(what), "{detail}");
        }
        let p = dir.path().join("a.png");
        assert_eq!(read(&p, &limits).unwrap_err().0, ImageErrorKind::Missing);
        std::fs::write(&p, png()).unwrap();
        assert_eq!(read(&p, &limits), Ok(png().len()));
        let small = limits.max_bytes(10);
        let (kind, detail) = read(&p, &small).unwrap_err();
        assert_eq!(kind, ImageErrorKind::TooLarge);
        assert!(detail.contains("max_image_bytes (10)"), "{detail}");
        let blob = ImageSource::Bytes(png());
        assert!(read_image(&blob, &limits).is_ok());
        assert!(matches!(
            read_image(&blob, &small),
            Err(Error::Image {
                kind: ImageErrorKind::TooLarge,
                ..
            })
        ));
    }

    #[test]
    fn bulk_loads_get_a_deadline_unless_one_is_set() {
        let l = ImageLimits::default();
        assert_eq!(l.decode_deadline, None);
        assert_eq!(
            l.for_bulk_load().decode_deadline,
            Some(DEFAULT_BULK_DECODE_DEADLINE)
        );
        let short = l.decode_deadline(Some(Duration::from_millis(5)));
        assert_eq!(short.for_bulk_load(), short);
    }
}
