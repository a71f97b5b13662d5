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
    /// Drop the first damaged record of the current WAL file and everything after it, even when
    /// intact records follow (RocksDB's "point in time"), reported like a torn tail. For
    /// [`crate::Sync::Off`] databases after an OS crash or power loss, whose WAL pages may have
    /// reached the disk out of order: the database opens at the last write before the damage.
    /// Acknowledged writes after it are lost, which is what `Sync::Off` allows.
    PointInTime,
}

impl WalRecovery {
    /// Parses `tolerate-torn-tail`, `absolute-consistency` or `point-in-time`.
    pub fn parse(s: &str) -> Option<WalRecovery> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "tolerate-torn-tail" => Some(WalRecovery::TolerateTornTail),
            "absolute-consistency" => Some(WalRecovery::AbsoluteConsistency),
            "point-in-time" => Some(WalRecovery::PointInTime),
            _ => None,
        }
    }
}

/// A damaged last record that recovery dropped: what a crash in the middle of an append
/// leaves. That write was never acknowledged (its fsync had not returned).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The WAL file.
    pub path: PathBuf,
    /// Byte offset of the dropped bytes (the end of the last whole record).
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes: u64,
    /// The damage was not a torn last record: more data followed it, dropped too
    /// ([`WalRecovery::PointInTime`]); acknowledged `Sync::Off` writes may be among it.
    pub past_damage: bool,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.past_damage {
            write!(
                f,
                "point-in-time recovery dropped {} bytes of {} from a damaged record at byte {} \
                 on (writes after it are lost)",
                self.bytes,
                self.path.display(),
                self.offset
            )
        } else {
            write!(
                f,
                "recovery dropped a torn last record of {}: {} bytes at byte {} (a write cut \
                 short by a crash, never acknowledged)",
                self.path.display(),
                self.bytes,
                self.offset
            )
        }
    }
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// Operations after the checkpoint, in sequence order.
    pub ops: Vec<(u64, WalOp)>,
    /// The sequence number the next record should get.
    pub next_seq: u64,
    /// The file to append to: its path, first sequence number and the byte offset just after
    /// its last whole record (a writer cuts off anything after it), if there is one.
    pub tail: Option<(PathBuf, u64, u64)>,
    /// The damaged last record dropped, if any.
    pub torn: Option<TornTail>,
    /// WAL files no longer needed (all their records are in segments, or they hold none and the
    /// manifest does not name them: a rotation whose manifest never committed). A writer
    /// removes them.
    pub stale: Vec<PathBuf>,
}

/// The first sequence number named by `wal-<20 digits>.log`.
fn parse_wal_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")
        .and_then(|s| s.strip_suffix(".log"))
        .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
}

/// WAL files of `dir`, sorted by first sequence number.
pub fn list_wal_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_wal_name(name) {
            files.push((seq, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the WAL of `dir` and returns the operations with seq > `checkpoint`.
///
/// `current` is the first sequence number of the WAL file the manifest names (databases
/// written before the manifest named it pass `None`: every file is read). That file must exist
/// with a whole header; older files are stale; newer files must hold no record. A record with
/// seq <= checkpoint is skipped (its effects are in segments). Sequence numbers must continue
/// without gaps after the checkpoint. A damaged last record is dropped or refused per `mode`.
pub fn recover(
    dir: &Path,
    checkpoint: u64,
    current: Option<u64>,
    mode: WalRecovery,
) -> Result<Recovered> {
    let files = list_wal_files(dir)?;
    let mut rec = Recovered {
        ops: Vec::new(),
        next_seq: checkpoint.saturating_add(1),
        tail: None,
        torn: None,
        stale: Vec::new(),
    };
    match current {
        Some(first) => recover_current(dir, files, first, mode, &mut rec)?,
        None => recover_all(files, mode, &mut rec)?,
    }
    Ok(rec)
}

/// Recovery when the manifest names the current WAL file (`wal-<first>.log`): that file, then
/// the newer files in sequence order (a background flush switches appends to a new file before
/// its manifest names it; see `WalWriter::switch`). Older files are stale. A newer file that
/// holds no record is stale too.
fn recover_current(
    dir: &Path,
    files: Vec<(u64, PathBuf)>,
    first: u64,
    mode: WalRecovery,
    rec: &mut Recovered,
) -> Result<()> {
    let want = super::wal_path(dir, first);
    let missing = || {
        Error::corrupted(
            &want,
            "the WAL file is missing (the MANIFEST names it as the current WAL file); \
             acknowledged writes may be in it",
        )
    };
    let mut found = false;
    let mut newer = Vec::new();
    for (seq, path) in files {
        if seq < first {
            rec.stale.push(path);
        } else if seq == first {
            found = true;
        } else {
            match std::fs::metadata(&path) {
                Ok(m) if m.len() <= HEADER as u64 => rec.stale.push(path),
                Ok(_) => newer.push((seq, path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }
    if !found {
        return Err(missing());
    }
    let bytes = match std::fs::read(&want) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(Error::io(&want, e)),
    };
    if bytes.len() < HEADER {
        return Err(Error::corrupted(
            &want,
            format!(
                "the WAL file is shorter than its header ({} bytes): it was truncated, and \
                 acknowledged writes may be lost",
                bytes.len()
            ),
        ));
    }
    if first > rec.next_seq {
        return Err(Error::corrupted(
            &want,
            format!(
                "WAL starts at sequence {first} but {} was expected (records are missing)",
                rec.next_seq
            ),
        ));
    }
    read_file(&want, first, &bytes, newer.is_empty(), mode, rec)?;
    let n = newer.len();
    for (i, (seq, path)) in newer.into_iter().enumerate() {
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if seq != rec.next_seq {
            return Err(Error::corrupted(
                &path,
                format!(
                    "WAL file starts at sequence {seq} but the one before it ends at {} \
                     (a WAL file is missing or damaged)",
                    rec.next_seq.saturating_sub(1)
                ),
            ));
        }
        read_file(&path, seq, &bytes, i + 1 == n, mode, rec)?;
    }
    Ok(())
}

/// Recovery of every WAL file, for manifests that do not name the current one.
fn recover_all(files: Vec<(u64, PathBuf)>, mode: WalRecovery, rec: &mut Recovered) -> Result<()> {
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
        if bytes.len() < HEADER {
            if last_file {
                // Created by a rotation whose header write was cut short: it holds no record.
                rec.tail = None;
                rec.stale.push(path);
                break;
            }
            return Err(Error::corrupted(
                &path,
                format!("WAL header truncated ({} bytes)", bytes.len()),
            ));
        }
        if first_seq > rec.next_seq {
            return Err(Error::corrupted(
                &path,
                format!(
                    "WAL starts at sequence {first_seq} but {} was expected (a WAL file is missing)",
                    rec.next_seq
                ),
            ));
        }
        read_file(&path, first_seq, &bytes, last_file, mode, rec)?;
    }
    Ok(())
}

/// Reads the records of one WAL file (`bytes`, at least a header long) into `rec`; a damaged
/// last record is tolerated only in the `last_file`.
fn read_file(
    path: &Path,
    first_seq: u64,
    bytes: &[u8],
    last_file: bool,
    mode: WalRecovery,
    rec: &mut Recovered,
) -> Result<()> {
    let bad = |d: String| Error::corrupted(path, d);
    let Some(header) = bytes.first_chunk::<HEADER>() else {
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
    let mut at = HEADER;
    let mut seq = first_seq;
    while at < bytes.len() {
        let damage = match read_record(bytes, at) {
            Ok((rec_seq, payload, end)) => {
                if rec_seq != seq {
                    return Err(bad(format!(
                        "record at byte {at} has sequence {rec_seq}, expected {seq}"
                    )));
                }
                if rec_seq >= rec.next_seq {
                    let op = decode_op(payload)
                        .map_err(|d| bad(format!("record {rec_seq} at byte {at}: {d}")))?;
                    rec.ops.push((rec_seq, op));
                    rec.next_seq = rec_seq.saturating_add(1);
                }
                seq = seq.saturating_add(1);
                at = end;
                continue;
            }
            Err(d) => d,
        };
        let torn = match damage {
            Damage::Torn => true,
            // A zero-filled rest: the file was extended but the record never written.
            Damage::Bad(_) => bytes
                .get(at..)
                .is_some_and(|rest| rest.iter().all(|&b| b == 0)),
        };
        // Dropped: a torn last record, or any damage in point-in-time recovery.
        let drop_rest = last_file && (torn || mode == WalRecovery::PointInTime);
        if !drop_rest {
            return Err(bad(match damage {
                Damage::Torn => format!("record at byte {at} is cut short"),
                Damage::Bad(d) => format!("record at byte {at}: {d}"),
            }));
        }
        let dropped = (bytes.len() - at) as u64;
        if mode == WalRecovery::AbsoluteConsistency {
            return Err(bad(format!(
                "damaged last record at byte {at} ({dropped} bytes): refused by \
                 absolute-consistency recovery (the default recovery drops it as a torn write)"
            )));
        }
        rec.torn = Some(TornTail {
            path: path.to_path_buf(),
            offset: at as u64,
            bytes: dropped,
            past_damage: !torn,
        });
        break;
    }
    rec.next_seq = rec.next_seq.max(seq);
    rec.tail = Some((path.to_path_buf(), first_seq, at as u64));
    Ok(())
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

    fn fs() -> std::sync::Arc<dyn crate::storage::FileSystem> {
        std::sync::Arc::new(crate::storage::RealFileSystem)
    }

    fn op(i: i64) -> WalOp {
        WalOp::Insert {
            table: 1,
            rows: vec![(i as u64, Row::new(vec![Value::Integer(i)]))],
        }
    }

    fn write_n(dir: &Path, n: i64) -> PathBuf {
        let mut w = WalWriter::open(fs(), dir, Sync::Off, None, 1, Default::default()).unwrap();
        for i in 0..n {
            w.append(&op(i)).unwrap();
        }
        w.path().to_path_buf()
    }

    #[test]
    fn replays_all_then_skips_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        write_n(dir.path(), 5);
        let r = recover(dir.path(), 0, None, WalRecovery::default()).unwrap();
        assert_eq!(r.ops.len(), 5);
        assert_eq!(r.next_seq, 6);
        let r = recover(dir.path(), 3, None, WalRecovery::default()).unwrap();
        assert_eq!(r.ops.iter().map(|o| o.0).collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn every_torn_tail_recovers_complete_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_n(dir.path(), 4);
        let full = std::fs::read(&p).unwrap();
        let ends: Vec<usize> = {
            let r = recover(dir.path(), 0, None, WalRecovery::default()).unwrap();
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
            let r = recover(dir.path(), 0, None, WalRecovery::default()).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(r.ops.len(), complete, "cut at {cut}");
            assert_eq!(r.tail.as_ref().unwrap().2 as usize, ends[complete]);
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
            match recover(dir.path(), 0, None, WalRecovery::default()) {
                Err(Error::Corrupted { path, .. }) => assert_eq!(path, p),
                other => panic!("byte {at}: expected Corrupted, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_file_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            WalWriter::open(fs(), dir.path(), Sync::Off, None, 10, Default::default()).unwrap();
        w.append(&op(1)).unwrap();
        assert!(wal_path(dir.path(), 10).exists());
        assert!(matches!(
            recover(dir.path(), 3, None, WalRecovery::default()),
            Err(Error::Corrupted { .. })
        ));
        assert_eq!(
            recover(dir.path(), 9, None, WalRecovery::default())
                .unwrap()
                .ops
                .len(),
            1
        );
    }
}
