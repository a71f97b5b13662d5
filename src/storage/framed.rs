//! The framed file format shared by every immutable mmdb file (segment rows, vectors, graphs,
//! deletion bitmaps, the manifest).
//!
//! ```text
//! offset 0    header, 64 bytes
//!             magic     [u8; 8]   e.g. "\x89MMDBROW"
//!             version   u32       format version of this kind of file (1)
//!             reserved  [u8; 52]  zero; pads the body to a 64-byte boundary
//! offset 64   body, body_len bytes (layout depends on the kind of file)
//!             block CRC table: u32 CRC32C per BLOCK (1 MiB) of body, the last block short
//! end-32      footer, 32 bytes
//!             body_len  u64
//!             n_blocks  u32
//!             table_crc u32       CRC32C of the block CRC table, body_len and n_blocks
//!             version   u32
//!             reserved  u32       zero
//!             magic     [u8; 8]   same as the header
//! ```
//! Opening checks header, footer and the table CRC (a few small reads). The body's block CRCs are
//! checked on demand: [`FramedFile::verify_range`] for the blocks a reader touches (rows) and
//! [`FramedFile::verify_all`] for files read at random (vectors, graph), once per open file. A
//! mismatch is [`Error::Corrupted`] naming the file and the block.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{FileSystem, Mmap, WritableFile, fsync_dir, parent, tmp_path, unknown};
use crate::{Error, Result};

const HEADER: usize = 64;
const FOOTER: usize = 32;
/// Checksum block size of the body.
pub const BLOCK: usize = 1 << 20;

/// The 8-byte magic that starts and ends a framed file; its last bytes name the kind of file.
pub type Magic = [u8; 8];

/// Writes a framed file to a temporary name; [`finish`](Self::finish) makes it durable and renames
/// it into place. Dropping an unfinished writer removes the temporary file (best effort: what is
/// left is removed at the next open), so that a full disk is not filled further by failed
/// attempts.
pub struct FramedWriter<'a> {
    fs: &'a dyn FileSystem,
    file: Box<dyn WritableFile>,
    /// Bytes not yet handed to the file.
    buf: Vec<u8>,
    /// File offset of `buf`'s first byte.
    at: u64,
    path: PathBuf,
    tmp: PathBuf,
    magic: Magic,
    version: u32,
    body_len: u64,
    block_fill: usize,
    crc: u32,
    crcs: Vec<u32>,
    /// Renamed into place: nothing to clean up on drop.
    done: bool,
}

impl Drop for FramedWriter<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.fs.remove_file(&self.tmp);
        }
    }
}

/// How many bytes the writer gathers before handing them to the file.
const WRITE_BUFFER: usize = 1 << 20;

impl<'a> FramedWriter<'a> {
    /// Starts writing `path` (created via `path.tmp`) through `fs`.
    pub fn create(
        fs: &'a dyn FileSystem,
        path: &Path,
        magic: Magic,
        version: u32,
    ) -> Result<FramedWriter<'a>> {
        let tmp = tmp_path(path);
        let file = fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&magic);
        header[8..12].copy_from_slice(&version.to_le_bytes());
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        buf.extend_from_slice(&header);
        Ok(FramedWriter {
            fs,
            file,
            buf,
            at: 0,
            path: path.to_path_buf(),
            tmp,
            magic,
            version,
            body_len: 0,
            block_fill: 0,
            crc: 0,
            crcs: Vec::new(),
            done: false,
        })
    }

    /// Appends `bytes` to the file (buffered).
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if bytes.len() >= WRITE_BUFFER {
            self.file
                .write_all_at(bytes, self.at)
                .map_err(|e| Error::io(&self.tmp, e))?;
            self.at += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all_at(&self.buf, self.at)
                .map_err(|e| Error::io(&self.tmp, e))?;
            self.at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Appends body bytes.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.put(bytes)?;
        self.body_len += bytes.len() as u64;
        while !bytes.is_empty() {
            let (head, rest) = bytes.split_at((BLOCK - self.block_fill).min(bytes.len()));
            self.crc = crc32c::crc32c_append(self.crc, head);
            self.block_fill += head.len();
            bytes = rest;
            if self.block_fill == BLOCK {
                self.crcs.push(self.crc);
                self.crc = 0;
                self.block_fill = 0;
            }
        }
        Ok(())
    }

    /// Pads the body with zeros to a multiple of `align` bytes.
    pub fn align(&mut self, align: usize) -> Result<()> {
        let pad = (align - (self.body_len as usize % align)) % align;
        self.write(&vec![0u8; pad])
    }

    /// Writes the CRC table and footer, fsyncs, renames into place and fsyncs the directory.
    /// A failed write is [`Error::Io`] (the file is not in place); a failed fsync or rename is
    /// [`Error::OutcomeUnknown`].
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.block_fill > 0 {
            self.crcs.push(self.crc);
        }
        let mut table = Vec::with_capacity(self.crcs.len() * 4 + 12);
        for c in &self.crcs {
            table.extend_from_slice(&c.to_le_bytes());
        }
        table.extend_from_slice(&self.body_len.to_le_bytes());
        table.extend_from_slice(&(self.crcs.len() as u32).to_le_bytes());
        let table_crc = crc32c::crc32c(&table);
        let mut footer = Vec::with_capacity(FOOTER);
        footer.extend_from_slice(&table_crc.to_le_bytes());
        footer.extend_from_slice(&self.version.to_le_bytes());
        footer.extend_from_slice(&0u32.to_le_bytes());
        footer.extend_from_slice(&self.magic);
        self.put(&table)?;
        self.put(&footer)?;
        self.flush()?;
        self.file.sync_all().map_err(|e| unknown(&self.tmp, e))?;
        self.fs
            .rename(&self.tmp, &self.path)
            .map_err(|e| unknown(&self.path, e))?;
        self.done = true;
        fsync_dir(self.fs, parent(&self.path))?;
        Ok(self.path.clone())
    }
}

/// An open, mapped framed file.
#[derive(Debug)]
pub struct FramedFile {
    map: Mmap,
    version: u32,
    path: PathBuf,
    body_len: usize,
    crcs_at: usize,
    n_blocks: usize,
    /// One bit per block already verified.
    verified: Vec<AtomicU64>,
    all_verified: OnceLock<std::result::Result<(), String>>,
}

impl FramedFile {
    /// Opens and maps `path`, checking magic, version and the footer's checksum.
    pub fn open(path: &Path, magic: Magic, version: u32) -> Result<FramedFile> {
        FramedFile::open_versions(path, magic, version..=version)
    }

    /// [`FramedFile::open`] for a kind of file whose readers accept several format versions;
    /// [`FramedFile::version`] tells which one this file has.
    pub fn open_versions(
        path: &Path,
        magic: Magic,
        versions: std::ops::RangeInclusive<u32>,
    ) -> Result<FramedFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let map = Mmap::map(&file, path)?;
        let b = map.bytes();
        let bad = |d: String| Error::corrupted(path, d);
        let too_short = || bad(format!("file too short ({} bytes)", b.len()));
        if b.len() < HEADER + FOOTER {
            return Err(too_short());
        }
        let (Some(h), Some(f)) = (b.first_chunk::<HEADER>(), b.last_chunk::<FOOTER>()) else {
            return Err(too_short());
        };
        if h[..8] != magic {
            return Err(bad(format!(
                "bad magic {:?}, expected {:?}",
                &h[..8],
                magic
            )));
        }
        let version = u32le(&h[8..12]);
        if !versions.contains(&version) {
            let expected = match (versions.start(), versions.end()) {
                (a, b) if a == b => format!("{a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(bad(format!(
                "unsupported format version {version}, expected {expected}"
            )));
        }
        if h[12..].iter().any(|&x| x != 0) {
            return Err(bad("reserved header bytes are not zero".into()));
        }
        if f[24..32] != magic {
            return Err(bad("bad magic in footer (file truncated?)".into()));
        }
        if u32le(&f[16..20]) != version || u32le(&f[20..24]) != 0 {
            return Err(bad("footer version or reserved bytes do not match".into()));
        }
        let body_len = usize::try_from(u64le(&f[..8])).unwrap_or(usize::MAX);
        let n_blocks = u32le(&f[8..12]) as usize;
        let table_crc = u32le(&f[12..16]);
        let crcs_at = HEADER.saturating_add(body_len);
        let expected_len = crcs_at
            .checked_add(n_blocks.saturating_mul(4))
            .and_then(|x| x.checked_add(FOOTER));
        if expected_len != Some(b.len()) || n_blocks != body_len.div_ceil(BLOCK) {
            return Err(bad(format!(
                "footer says body {body_len} bytes in {n_blocks} blocks, file is {} bytes",
                b.len()
            )));
        }
        // The CRC covers the block CRC table and the footer's first 12 bytes (body_len, n_blocks).
        let table = b.get(crcs_at..b.len() - FOOTER + 12).ok_or_else(|| {
            bad(format!(
                "block checksum table at byte {crcs_at} is past the end"
            ))
        })?;
        if crc32c::crc32c(table) != table_crc {
            return Err(bad("checksum mismatch in the block checksum table".into()));
        }
        let verified = (0..n_blocks.div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Ok(FramedFile {
            map,
            version,
            path: path.to_path_buf(),
            body_len,
            crcs_at,
            n_blocks,
            verified,
            all_verified: OnceLock::new(),
        })
    }

    /// The file's format version (see [`FramedFile::open_versions`]).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The body, not yet verified: call [`verify_range`](Self::verify_range) or
    /// [`verify_all`](Self::verify_all) before trusting it.
    #[expect(
        clippy::indexing_slicing,
        reason = "`open` checked that the map is HEADER + body_len + the CRC table + FOOTER \
                  bytes long, and the map is immutable"
    )]
    pub fn body(&self) -> &[u8] {
        &self.map.bytes()[HEADER..HEADER + self.body_len]
    }

    /// Checks the CRC of every block overlapping body bytes `start..start+len` (each block once).
    pub fn verify_range(&self, start: usize, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = start.saturating_add(len).min(self.body_len);
        for block in start / BLOCK..end.div_ceil(BLOCK) {
            self.verify_block(block)?;
        }
        Ok(())
    }

    fn verify_block(&self, block: usize) -> Result<()> {
        let (word, bit) = (block / 64, 1u64 << (block % 64));
        let start = block.saturating_mul(BLOCK);
        let end = start.saturating_add(BLOCK).min(self.body_len);
        let at = self.crcs_at.saturating_add(block.saturating_mul(4));
        let (Some(flags), Some(data), Some(want)) = (
            self.verified.get(word),
            self.body().get(start..end),
            self.map
                .bytes()
                .get(at..)
                .and_then(|t| t.first_chunk::<4>()),
        ) else {
            return Err(Error::corrupted(
                &self.path,
                format!("block {block} is past the last of {} blocks", self.n_blocks),
            ));
        };
        if flags.load(Ordering::Acquire) & bit != 0 {
            return Ok(());
        }
        let want = u32::from_le_bytes(*want);
        if crc32c::crc32c(data) != want {
            return Err(Error::corrupted(
                &self.path,
                format!("checksum mismatch in block {block} (body bytes {start}..{end})"),
            ));
        }
        flags.fetch_or(bit, Ordering::AcqRel);
        Ok(())
    }

    /// Verifies the whole body once (later calls return the first result), then lets the kernel
    /// drop the pages so a verification pass does not stay resident.
    pub fn verify_all(&self) -> Result<()> {
        let r = self.all_verified.get_or_init(|| {
            for block in 0..self.n_blocks {
                if let Err(e) = self.verify_block(block) {
                    return Err(e.to_string());
                }
            }
            self.map.dont_need();
            self.map.advise_random();
            Ok(())
        });
        r.clone()
            .map_err(|d| match self.verify_range(0, self.body_len) {
                Err(e) => e,
                Ok(()) => Error::corrupted(&self.path, d),
            })
    }
}

/// The little-endian u32 that `b` starts with (0 when `b` is shorter: callers pass 4-byte slices
/// of fixed-size arrays).
fn u32le(b: &[u8]) -> u32 {
    b.first_chunk().map_or(0, |w| u32::from_le_bytes(*w))
}

/// The little-endian u64 that `b` starts with (0 when shorter, as [`u32le`]).
fn u64le(b: &[u8]) -> u64 {
    b.first_chunk().map_or(0, |w| u64::from_le_bytes(*w))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Magic = *b"\x89MMDBTST";

    fn write(path: &Path, body: &[u8]) {
        let mut w = FramedWriter::create(&crate::storage::RealFileSystem, path, M, 1).unwrap();
        w.write(body).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn roundtrip_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let body: Vec<u8> = (0..BLOCK * 2 + 17).map(|i| (i % 251) as u8).collect();
        write(&p, &body);
        let f = FramedFile::open(&p, M, 1).unwrap();
        assert_eq!(f.body(), &body[..]);
        f.verify_all().unwrap();
    }

    #[test]
    fn flipped_byte_is_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, &vec![7u8; BLOCK + 10]);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[HEADER + BLOCK + 3] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let f = FramedFile::open(&p, M, 1).unwrap();
        f.verify_range(0, 10).unwrap();
        let e = f.verify_range(BLOCK, 5).unwrap_err();
        assert!(
            matches!(e, Error::Corrupted { ref path, .. } if path == &p),
            "{e}"
        );
        assert!(f.verify_all().is_err());
        bytes[0] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            FramedFile::open(&p, M, 1),
            Err(Error::Corrupted { .. })
        ));
    }

    #[test]
    fn truncated_is_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"hello world");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            FramedFile::open(&p, M, 1),
            Err(Error::Corrupted { .. })
        ));
    }
}
