//! Reading one image file of a data set and sorting out the broken ones before they reach the model.
//!
//! The checks are cheap and structural (magic bytes, JPEG end-of-image marker, PNG `IEND` chunk) so a
//! file is decoded once, by the embedder; anything the embedder still cannot decode is reported by
//! the loader as [`FailureKind::Undecodable`].

use std::path::Path;

use serde::Serialize;

/// Why an image was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read (permissions, I/O error).
    Unreadable,
    /// The bytes are not an image format mmdb knows.
    NotAnImage,
    /// A JPEG or PNG whose end is missing.
    Truncated,
    /// The embedder could not decode or embed it.
    Undecodable,
    /// Its `file_name` points outside the images folder (`..`, an absolute path, a symbolic
    /// link leading out); read only when the load allows it.
    OutsideImages,
}

impl FailureKind {
    /// The name written in reports.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Missing => "missing",
            FailureKind::Unreadable => "unreadable",
            FailureKind::NotAnImage => "not_an_image",
            FailureKind::Truncated => "truncated",
            FailureKind::Undecodable => "undecodable",
            FailureKind::OutsideImages => "outside_images",
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

/// Reads `path` and checks it looks like a whole image; `Err((kind, detail))` otherwise.
pub fn read_checked(path: &Path) -> Result<Vec<u8>, (FailureKind, String)> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => (FailureKind::Missing, "file not found".to_string()),
        _ => (FailureKind::Unreadable, e.to_string()),
    };
    // A FIFO would block the load forever and a device never end: regular files only.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err((
            FailureKind::Unreadable,
            "not a regular file (a directory, FIFO or device)".to_string(),
        ));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    check_bytes(&bytes)?;
    Ok(bytes)
}

/// The structural checks of [`read_checked`] on bytes already read.
pub fn check_bytes(bytes: &[u8]) -> Result<(), (FailureKind, String)> {
    let format = image::guess_format(bytes).map_err(|_| {
        // No bytes of the file in the message: reports must not leak what a non-image holds.
        (
            FailureKind::NotAnImage,
            format!("unknown format ({} bytes)", bytes.len()),
        )
    })?;
    // Some writers pad files; padding after the end marker is harmless.
    let end = bytes
        .iter()
        .rposition(|&b| !matches!(b, 0 | b'\n' | b'\r' | b' '))
        .map_or(0, |i| i + 1);
    let body = &bytes[..end];
    match format {
        image::ImageFormat::Jpeg if !body.ends_with(&[0xff, 0xd9]) => Err((
            FailureKind::Truncated,
            format!("JPEG without end-of-image marker ({} bytes)", bytes.len()),
        )),
        image::ImageFormat::Png if !body.ends_with(b"IEND\xae\x42\x60\x82") => Err((
            FailureKind::Truncated,
            format!("PNG without IEND chunk ({} bytes)", bytes.len()),
        )),
        image::ImageFormat::Jpeg
        | image::ImageFormat::Png
        | image::ImageFormat::Gif
        | image::ImageFormat::WebP
        | image::ImageFormat::Bmp
        | image::ImageFormat::Tiff => Ok(()),
        other => Err((
            FailureKind::NotAnImage,
            format!("unsupported image format {other:?}"),
        )),
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
        let p = dir.path().join("a.png");
        assert_eq!(read_checked(&p).unwrap_err().0, FailureKind::Missing);
        std::fs::write(&p, png()).unwrap();
        assert!(read_checked(&p).is_ok());
        let whole = png();
        std::fs::write(&p, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(read_checked(&p).unwrap_err().0, FailureKind::Truncated);
        std::fs::write(&p, b"root:x:0:0").unwrap();
        let (kind, detail) = read_checked(&p).unwrap_err();
        assert_eq!(kind, FailureKind::NotAnImage);
        assert!(
            !detail.contains("726f6f74") && !detail.contains("root"),
            "{detail}"
        );
        // Directories, devices and FIFOs are refused without reading (a FIFO would block).
        for odd in [dir.path(), Path::new("/dev/zero")] {
            let (kind, detail) = read_checked(odd).unwrap_err();
            assert_eq!(kind, FailureKind::Unreadable);
            assert!(detail.contains("not a regular file"), "{detail}");
        }
        // A JPEG with trailing padding after its end marker is whole.
        assert!(check_bytes(&[0xff, 0xd8, 0xff, 0xe0, 0, 0, 0xff, 0xd9, 0, 0]).is_ok());
        assert_eq!(
            check_bytes(&[0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])
                .unwrap_err()
                .0,
            FailureKind::Truncated
        );
    }
}
