//! Reading one image file of a data set and sorting out the broken ones before they reach the
//! model: the file name must stay inside the images folder, then the image intake
//! ([`read_image`]) applies the rules every entry point shares. The decoder applies the rest
//! (pixels, memory, deadline); the loader reports whatever it refuses under the same kinds.

use std::path::Path;

use serde::Serialize;

use crate::{Error, ImageErrorKind, ImageLimits, ImageSource, read_image};

/// Why an image was skipped: the rule of the image intake ([`ImageErrorKind`]) that refused it,
/// or a path outside the images folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read (permissions, I/O error).
    Unreadable,
    /// A directory, FIFO, device or socket.
    NotARegularFile,
    /// Larger than `max_image_bytes`.
    TooLarge,
    /// The bytes are not an image format mmdb knows.
    NotAnImage,
    /// A JPEG or PNG whose end is missing.
    Truncated,
    /// More pixels than `max_image_pixels` (decompression bomb).
    TooManyPixels,
    /// Decoding needs more memory than `max_image_decode_bytes`.
    OverMemoryLimit,
    /// Decoding took longer than the decode deadline.
    DecodeDeadline,
    /// The decoder or the model failed on it.
    Undecodable,
    /// Its `file_name` points outside the images folder (`..`, an absolute path, a symbolic
    /// link leading out); read only when the load allows it.
    OutsideImages,
}

impl FailureKind {
    /// Every kind, in the order the load summary lists them.
    pub const ALL: [FailureKind; 11] = [
        FailureKind::Missing,
        FailureKind::Unreadable,
        FailureKind::NotARegularFile,
        FailureKind::TooLarge,
        FailureKind::NotAnImage,
        FailureKind::Truncated,
        FailureKind::TooManyPixels,
        FailureKind::OverMemoryLimit,
        FailureKind::DecodeDeadline,
        FailureKind::Undecodable,
        FailureKind::OutsideImages,
    ];

    /// The name written in reports (`truncated`, `too_many_pixels`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::OutsideImages => "outside_images",
            FailureKind::Missing => ImageErrorKind::Missing.name(),
            FailureKind::Unreadable => ImageErrorKind::Unreadable.name(),
            FailureKind::NotARegularFile => ImageErrorKind::NotRegularFile.name(),
            FailureKind::TooLarge => ImageErrorKind::TooLarge.name(),
            FailureKind::NotAnImage => ImageErrorKind::NotAnImage.name(),
            FailureKind::Truncated => ImageErrorKind::Truncated.name(),
            FailureKind::TooManyPixels => ImageErrorKind::TooManyPixels.name(),
            FailureKind::OverMemoryLimit => ImageErrorKind::OverMemoryLimit.name(),
            FailureKind::DecodeDeadline => ImageErrorKind::DecodeDeadline.name(),
            FailureKind::Undecodable => ImageErrorKind::Undecodable.name(),
        }
    }

    /// The kind of an embedding or intake error: its [`ImageErrorKind`] for [`Error::Image`],
    /// [`FailureKind::Undecodable`] for anything else (the model failed).
    pub fn of(e: &Error) -> FailureKind {
        let Error::Image { kind, .. } = e else {
            return FailureKind::Undecodable;
        };
        match kind {
            ImageErrorKind::Missing => FailureKind::Missing,
            ImageErrorKind::Unreadable => FailureKind::Unreadable,
            ImageErrorKind::NotRegularFile => FailureKind::NotARegularFile,
            ImageErrorKind::TooLarge => FailureKind::TooLarge,
            ImageErrorKind::NotAnImage => FailureKind::NotAnImage,
            ImageErrorKind::Truncated => FailureKind::Truncated,
            ImageErrorKind::TooManyPixels => FailureKind::TooManyPixels,
            ImageErrorKind::OverMemoryLimit => FailureKind::OverMemoryLimit,
            ImageErrorKind::DecodeDeadline => FailureKind::DecodeDeadline,
            _ => FailureKind::Undecodable,
        }
    }
}

/// `dir/name` when it stays inside `dir`: no absolute path, no `..`, and (when the file exists)
/// no symbolic link leading out; otherwise `Err` with the reason ([`FailureKind::OutsideImages`]).
pub fn resolve_inside(dir: &Path, name: &str) -> Result<std::path::PathBuf, (FailureKind, String)> {
    use std::path::Component;
    let out = |why: &str| {
        Err((
            FailureKind::OutsideImages,
            format!("{why}: refusing to read outside the images folder (--allow-outside-images)"),
        ))
    };
    let rel = Path::new(name);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return out("absolute, or goes up with `..`");
    }
    let path = dir.join(rel);
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize())
        && !real.starts_with(&root)
    {
        return out("a symbolic link leads out");
    }
    Ok(path)
}

/// Reads `path` through the image intake ([`read_image`]: regular files only, the size limit,
/// the truncation check); `Err((kind, detail))` otherwise. The detail never quotes the file.
pub fn read_checked(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>, (FailureKind, String)> {
    let src = ImageSource::Path(path.to_string_lossy().into_owned());
    match read_image(&src, limits) {
        Ok(bytes) => Ok(bytes.into_owned()),
        Err(e) => {
            let kind = FailureKind::of(&e);
            let detail = match e {
                Error::Image { detail, .. } => detail,
                other => other.to_string(),
            };
            Err((kind, detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PNG signature and an IEND chunk: all the structural check looks at (the engine has
    /// no PNG encoder without the `clip` feature).
    fn png() -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
        out
    }

    #[test]
    fn file_names_stay_inside_the_images_folder() {
        let root = tempfile::tempdir().unwrap();
        let images = root.path().join("images");
        std::fs::create_dir_all(images.join("sub")).unwrap();
        std::fs::write(root.path().join("secret"), b"root:x:0").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), images.join("link.jpg")).unwrap();
        for ok in ["a.jpg", "sub/b.jpg", "./c.jpg", "missing.jpg"] {
            assert!(resolve_inside(&images, ok).is_ok(), "{ok}");
        }
        for bad in ["../secret", "sub/../../secret", "/etc/passwd", "link.jpg"] {
            let (kind, detail) = resolve_inside(&images, bad).unwrap_err();
            assert_eq!(kind, FailureKind::OutsideImages, "{bad}");
            assert!(detail.contains("--allow-outside-images"), "{detail}");
        }
    }

    #[test]
    fn sorts_files() {
        let dir = tempfile::tempdir().unwrap();
        let l = ImageLimits::default();
        let p = dir.path().join("a.png");
        assert_eq!(read_checked(&p, &l).unwrap_err().0, FailureKind::Missing);
        std::fs::write(&p, png()).unwrap();
        assert!(read_checked(&p, &l).is_ok());
        let whole = png();
        std::fs::write(&p, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(read_checked(&p, &l).unwrap_err().0, FailureKind::Truncated);
        std::fs::write(&p, b"root:x:0:0").unwrap();
        let (kind, detail) = read_checked(&p, &l).unwrap_err();
        assert_eq!(kind, FailureKind::NotAnImage);
        assert!(
            !detail.contains("726f6f74") && !detail.contains("root"),
            "{detail}"
        );
        // Directories, devices and FIFOs are refused without reading (a FIFO would block).
        for odd in [dir.path(), Path::new("/dev/zero")] {
            let (kind, detail) = read_checked(odd, &l).unwrap_err();
            assert_eq!(kind, FailureKind::NotARegularFile);
            assert!(detail.contains("not a regular file"), "{detail}");
        }
        std::fs::write(&p, png()).unwrap();
        let (kind, _) = read_checked(&p, &l.max_bytes(5)).unwrap_err();
        assert_eq!(kind, FailureKind::TooLarge);
    }

    #[test]
    fn every_kind_has_its_own_name() {
        let names: std::collections::HashSet<&str> =
            FailureKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), FailureKind::ALL.len());
    }
}
