//! Reading the WAL back at open.

use std::path::{Path, PathBuf};

use super::{
    HEADER, MAGIC, MAX_RECORD, RECORD_HEADER, VERSION, WalOp, decode_op, header_bytes,
    record_header,
};
use crate::{Error, Result};

/// What recovery does with a damaged **last** record of the WAL (see [`crate::DatabaseBuilder::wal_recovery`]).
/// A damaged record followed by intact data is [`crate::Error::Corrupted`] in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WalRecovery {
    /// Drop it as a torn write (the default, the choice SQLite and PostgreSQL make): a crash in
    /// the middle of an append leaves exactly this, and that write was never acknowledged. The
    /// drop is reported by [`crate::Database::health`] (`torn_tail`) and the shell warns.
    #[default]
    TolerateTornTail,
    /// Refuse to open with [`crate::Error::Corrupted`] (RocksDB's "absolute consistency"): for
    /// those who would rather inspect the file than lose even an unacknowledged write.
    AbsoluteConsistency,
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// Operations after the checkpoint, in sequence order.
    pub ops: Vec<(u64, WalOp)>,
    /// The sequence number the next record should get.
    pub next_seq: u64,
    /// The last file and the byte offset just after its last good record (where a writer
    /// truncates a torn tail and appends), if there is a WAL file.
    pub tail: Option<(PathBuf, u64)>,
}

/// WAL files of `dir`, sorted by first sequence number.
pub fn list_wal_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_prefix("wal-")
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            files.push((seq, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every WAL file of `dir` and returns the operations with seq > `checkpoint`.
///
/// A record with seq <= checkpoint is skipped (its effects are in segments). Sequence numbers
/// must continue without gaps after the checkpoint: a gap means a file is missing.
pub fn recover(dir: &Path, checkpoint: u64) -> Result<Recovered> {
    let files = list_wal_files(dir)?;
    let mut ops = Vec::new();
    let mut expect = checkpoint + 1;
    let mut tail = None;
    let n_files = files.len();
    for (i, (first_seq, path)) in files.into_iter().enumerate() {
        let last_file = i + 1 == n_files;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Removed by a concurrent writer's rotation since the listing (read-only opens): its
            // records are all in segments of the manifest that was read; the sequence checks
            // below catch a real gap.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = |d: String| Error::corrupted(&path, d);
        let Some(header) = bytes.first_chunk::<HEADER>() else {
            if last_file {
                // Created by a rotation whose header write was cut short: it holds no record.
                tail = None;
                break;
            }
            return Err(bad(format!("WAL header truncated ({} bytes)", bytes.len())));
        };
        if header[..8] != MAGIC {
            return Err(bad("bad WAL magic".into()));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(bad(format!("unsupported WAL version {version}")));
        }
        if *header != header_bytes(first_seq) {
            return Err(bad(
                "WAL header checksum or first sequence number mismatch".into()
            ));
        }
        if first_seq > expect {
            return Err(bad(format!(
                "WAL starts at sequence {first_seq} but {expect} was expected (a WAL file is missing)"
            )));
        }
        let mut at = HEADER;
        let mut seq = first_seq;
        while at < bytes.len() {
            match read_record(&bytes, at) {
                Ok((rec_seq, payload, end)) => {
                    if rec_seq != seq {
                        return Err(bad(format!(
                            "record at byte {at} has sequence {rec_seq}, expected {seq}"
                        )));
                    }
                    if rec_seq >= expect {
                        let op = decode_op(payload)
                            .map_err(|d| bad(format!("record {rec_seq} at byte {at}: {d}")))?;
                        ops.push((rec_seq, op));
                        expect = rec_seq + 1;
                    }
                    seq += 1;
                    at = end;
                }
                Err(Damage::Torn) if last_file => break,
                Err(Damage::Bad(d))
                    if last_file
                        && bytes
                            .get(at..)
                            .is_some_and(|rest| rest.iter().all(|&b| b == 0)) =>
                {
                    let _ = d;
                    break;
                }
                Err(Damage::Torn) => return Err(bad(format!("record at byte {at} is cut short"))),
                Err(Damage::Bad(d)) => return Err(bad(format!("record at byte {at}: {d}"))),
            }
        }
        expect = expect.max(seq);
        tail = Some((path, at as u64));
    }
    Ok(Recovered {
        ops,
        next_seq: expect,
        tail,
    })
}

enum Damage {
    /// The record runs past the end of the file.
    Torn,
    /// The record is complete but wrong.
    Bad(String),
}

fn read_record(b: &[u8], at: usize) -> std::result::Result<(u64, &[u8], usize), Damage> {
    let Some((h, rest)) = b
        .get(at..)
        .and_then(|r| r.split_first_chunk::<RECORD_HEADER>())
    else {
        return Err(Damage::Torn);
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let seq = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
    if crc32c::crc32c(&h[0..12]).to_le_bytes() != h[12..16] {
        return Err(Damage::Bad("record header checksum mismatch".into()));
    }
    if len as usize > MAX_RECORD {
        return Err(Damage::Bad(format!("impossible record length {len}")));
    }
    let Some(payload) = rest.get(..len as usize) else {
        return Err(Damage::Torn);
    };
    let end = at + RECORD_HEADER + payload.len();
    if record_header(len, seq, payload) != *h {
        // A bad payload on the very last record, ending exactly at the end of the file, is what
        // an interrupted append leaves: torn. Followed by more data it is damage.
        return Err(if end == b.len() {
            Damage::Torn
        } else {
            Damage::Bad("payload checksum mismatch".into())
        });
    }
    Ok((seq, payload, end))
}

#[cfg(test)]
mod tests {
    use super::super::{Sync, WalWriter, wal_path};
    use super::*;
    use crate::{Row, Value};

    fn op(i: i64) -> WalOp {
        WalOp::Insert {
            table: 1,
            rows: vec![(i as u64, Row::new(vec![Value::Integer(i)]))],
        }
    }

    fn write_n(dir: &Path, n: i64) -> PathBuf {
        let mut w = WalWriter::open(dir, Sync::Off, None, 1).unwrap();
        for i in 0..n {
            w.append(&op(i)).unwrap();
        }
        w.path().to_path_buf()
    }

    #[test]
    fn replays_all_then_skips_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        write_n(dir.path(), 5);
        let r = recover(dir.path(), 0).unwrap();
        assert_eq!(r.ops.len(), 5);
        assert_eq!(r.next_seq, 6);
        let r = recover(dir.path(), 3).unwrap();
        assert_eq!(r.ops.iter().map(|o| o.0).collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn every_torn_tail_recovers_complete_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_n(dir.path(), 4);
        let full = std::fs::read(&p).unwrap();
        let ends: Vec<usize> = {
            let r = recover(dir.path(), 0).unwrap();
            assert_eq!(r.ops.len(), 4);
            let mut ends = vec![HEADER];
            let mut at = HEADER;
            while at < full.len() {
                let (_, _, end) = read_record(&full, at).ok().unwrap();
                ends.push(end);
                at = end;
            }
            ends
        };
        for cut in HEADER..full.len() {
            std::fs::write(&p, &full[..cut]).unwrap();
            let r = recover(dir.path(), 0).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(r.ops.len(), complete, "cut at {cut}");
            assert_eq!(r.tail.as_ref().unwrap().1 as usize, ends[complete]);
        }
    }

    #[test]
    fn flipped_byte_before_the_last_record_is_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_n(dir.path(), 4);
        let full = std::fs::read(&p).unwrap();
        let last = full.len() - (full.len() - HEADER) / 4;
        for at in HEADER..last {
            let mut b = full.clone();
            b[at] ^= 0x40;
            std::fs::write(&p, &b).unwrap();
            match recover(dir.path(), 0) {
                Err(Error::Corrupted { path, .. }) => assert_eq!(path, p),
                other => panic!("byte {at}: expected Corrupted, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_file_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), Sync::Off, None, 10).unwrap();
        w.append(&op(1)).unwrap();
        assert!(wal_path(dir.path(), 10).exists());
        assert!(matches!(
            recover(dir.path(), 3),
            Err(Error::Corrupted { .. })
        ));
        assert_eq!(recover(dir.path(), 9).unwrap().ops.len(), 1);
    }
}
