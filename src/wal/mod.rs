//! The write-ahead log: every acknowledged batch is a record here before it reaches the memtable.
//!
//! Files are `wal-<first seq, 20 digits>.log` in the database directory. Layout:
//! ```text
//! header, 32 bytes: magic "\x89MMDBWAL" | version u32 (1) | reserved u32 | first_seq u64
//!                   | header_crc u32 (CRC32C of the first 24 bytes) | reserved u32
//! record*:          len u32 (payload bytes) | seq u64 | header_crc u32 | payload_crc u32
//!                   | payload (see `codec`)
//!                   header_crc = CRC32C(len, seq), payload_crc = CRC32C(payload)
//! ```
//! Sequence numbers increase by one across files. The manifest records the last sequence number
//! whose effects are in segments; replay skips records up to it, so replay is idempotent, and the
//! WAL is rotated (a new file, old ones removed) only after the manifest that covers them commits.
//!
//! Recovery tolerates a torn tail (what a crash mid-append leaves) in the last file: fewer bytes
//! than a record header, a record whose (checksummed) header is intact but whose payload runs past
//! the end of the file or ends exactly there with a bad payload checksum, or a zero-filled rest.
//! The header has its own checksum so that a damaged length can never pass for a torn tail and
//! hide the records after it. Any other bad record (a bad header checksum, a bad payload followed
//! by more data, a gap in sequence numbers, a bad file header) is [`crate::Error::Corrupted`]
//! naming the file and byte offset.

// Parsers of files and user input: no unwrap, expect, panic or unchecked indexing outside
// tests; an `#[expect]` names the invariant where one truly holds.
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod codec;
mod recovery;
mod writer;

pub use codec::{WalOp, decode_op, encode_op};
pub use recovery::{Recovered, TornTail, WalRecovery, list_wal_files, recover};
pub use writer::{Poison, Sync, WalWriter, remove_wal_before};

const MAGIC: [u8; 8] = *b"\x89MMDBWAL";
const VERSION: u32 = 1;
/// Bytes of a WAL file's header.
pub const HEADER: usize = 32;
const RECORD_HEADER: usize = 20;
/// Largest payload accepted (a larger length field is damage, not data).
const MAX_RECORD: usize = 1 << 31;

/// Path of the WAL file whose first record is `first_seq`.
pub fn wal_path(dir: &std::path::Path, first_seq: u64) -> std::path::PathBuf {
    dir.join(format!("wal-{first_seq:020}.log"))
}

fn header_bytes(first_seq: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The 20-byte header of a record with `payload`.
fn record_header(len: u32, seq: u64, payload: &[u8]) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    let hcrc = crc32c::crc32c(&h[0..12]);
    h[12..16].copy_from_slice(&hcrc.to_le_bytes());
    h[16..20].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    h
}
