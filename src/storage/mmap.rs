//! Read-only memory maps (and the CPU prefetch hint for mapped data): the only module of mmdb with
//! `unsafe` code.
//!
//! Segment files are immutable once their writer's `finish()` renamed them into place, and mmdb never
//! opens them for writing again, so the mapped bytes do not change under a reader.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

use crate::{Error, Result};

/// A read-only map of a whole file (an empty file maps to an empty slice).
#[derive(Debug)]
pub struct Mmap {
    map: Option<memmap2::Mmap>,
}

impl Mmap {
    /// Maps `file` (named `path` in errors) read-only.
    pub fn map(file: &File, path: &Path) -> Result<Mmap> {
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Ok(Mmap { map: None });
        }
        // SAFETY: mmdb maps only files it finished writing and never modifies afterwards (they are
        // replaced by rename, never rewritten in place; a segment build's scratch file is written
        // whole before it is mapped and removed only after the map is dropped), so the mapped
        // memory stays valid and unchanged for the life of the map, and model weights (`model.safetensors`), which it
        // never writes and maps only while copying them into tensors. Another program truncating
        // or rewriting such a file meanwhile would cause SIGBUS; that is outside mmdb's contract,
        // as for every mmap-based store (and for candle's own mmap loader).
        let map =
            unsafe { memmap2::MmapOptions::new().map(file) }.map_err(|e| Error::io(path, e))?;
        Ok(Mmap { map: Some(map) })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Tells the kernel the pages may be dropped (after a checksum pass), so verifying a file
    /// does not leave it all resident.
    pub fn dont_need(&self) {
        if let Some(m) = &self.map {
            // SAFETY: the map is a read-only, file-backed shared mapping; MADV_DONTNEED only drops
            // the page-cache view, and later accesses fault the same bytes back in from the file.
            // No Rust reference observes a change of contents.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Hints random access (HNSW traversal): avoid useless read-ahead.
    pub fn advise_random(&self) {
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::Random);
        }
    }
}

/// Asks the CPU to start loading the cache line holding `*at` (a hint: no fault, no effect on
/// results). Graph search calls it for vectors and neighbour lists it is about to read, so their
/// cache misses overlap instead of stalling one after the other (hnswlib's `_mm_prefetch`).
#[inline(always)]
pub fn prefetch<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache: it never faults, reads nothing into the program
    // and writes nothing, whatever the address (here a valid reference anyway). It is `unsafe`
    // only because it needs SSE, which every x86_64 CPU has (part of the target's baseline).
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((at as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Views little-endian f32 bytes as `&[f32]`. `None` when misaligned or the length is not a
/// multiple of 4.
pub fn bytes_as_f32(bytes: &[u8]) -> Option<&[f32]> {
    if !bytes.len().is_multiple_of(4) || bytes.as_ptr().align_offset(4) != 0 {
        return None;
    }
    // SAFETY: the pointer is 4-aligned and the length a multiple of 4 (both checked above), every
    // bit pattern is a valid f32, and the slice borrows `bytes` so it cannot outlive the map.
    // mmdb only runs on little-endian targets (checked at compile time in `storage`).
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) })
}

/// Views little-endian u32 bytes as `&[u32]` (same rules as [`bytes_as_f32`]).
pub fn bytes_as_u32(bytes: &[u8]) -> Option<&[u32]> {
    if !bytes.len().is_multiple_of(4) || bytes.as_ptr().align_offset(4) != 0 {
        return None;
    }
    // SAFETY: as in `bytes_as_f32`: aligned, whole elements, any bit pattern is a valid u32.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u32>(), bytes.len() / 4) })
}

/// Views little-endian u64 bytes as `&[u64]` (same rules, 8-byte alignment).
pub fn bytes_as_u64(bytes: &[u8]) -> Option<&[u64]> {
    if !bytes.len().is_multiple_of(8) || bytes.as_ptr().align_offset(8) != 0 {
        return None;
    }
    // SAFETY: as in `bytes_as_f32`: aligned, whole elements, any bit pattern is a valid u64.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u64>(), bytes.len() / 8) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_check_alignment_and_length() {
        let v: Vec<u64> = vec![1, 2];
        let b: &[u8] = bytemuck_bytes(&v);
        assert_eq!(bytes_as_u64(b), Some(&[1u64, 2][..]));
        assert!(bytes_as_u32(&b[1..5]).is_none());
        assert!(bytes_as_f32(&b[..3]).is_none());
    }

    fn bytemuck_bytes(v: &[u64]) -> &[u8] {
        // SAFETY: u64 has no padding; the byte view borrows `v`.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 8) }
    }
}
