//! The database write lock: an exclusive `flock` on `LOCK`, which also holds the holder's pid.
//!
//! The kernel releases the lock when the process dies, so a crash never leaves a stale lock; the
//! pid is only there to name the holder in [`Error::Locked`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::{Error, Result};

/// Name of the lock file inside the database directory.
pub const LOCK_FILE: &str = "LOCK";

/// How long to retry a lock that names this process as holder (see `acquire`).
const SELF_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A held write lock; released on drop.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the lock of database directory `dir`, or fails with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<WriteLock> {
        let path = dir.join(LOCK_FILE);
        let not_regular = || {
            Error::InvalidArgument(format!(
                "{} is not a regular file (a symbolic link?): mmdb writes its pid there and \
                 will not write through it; remove it",
                path.display()
            ))
        };
        if path
            .symlink_metadata()
            .is_ok_and(|m| !m.file_type().is_file())
        {
            return Err(not_regular());
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // The name could have been replaced by a link between the check and the open: the file
        // opened must be the one the name holds now, a regular file.
        let opened = file.metadata().map_err(|e| Error::io(&path, e))?;
        let named = path.symlink_metadata().map_err(|e| Error::io(&path, e))?;
        if !named.file_type().is_file()
            || (opened.dev(), opened.ino()) != (named.dev(), named.ino())
        {
            return Err(not_regular());
        }
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim().to_string();
                    // A lock "held" by this very process right after it closed its database is
                    // usually a child forked in between (by another thread) that still has the
                    // descriptor until it calls exec: wait a little for that to pass.
                    if holder == std::process::id().to_string() && start.elapsed() < SELF_WAIT {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    let holder = match holder.as_str() {
                        "" => "unknown process".to_string(),
                        pid => format!("pid {pid}"),
                    };
                    return Err(Error::Locked {
                        path: dir.to_path_buf(),
                        holder,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(WriteLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _a = WriteLock::acquire(dir.path()).unwrap();
        match WriteLock::acquire(dir.path()) {
            Err(Error::Locked { path, holder }) => {
                assert_eq!(path, dir.path());
                assert_eq!(holder, format!("pid {}", std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn symlinked_lock_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE)).unwrap();
        let e = WriteLock::acquire(dir.path()).unwrap_err();
        assert!(e.to_string().contains("LOCK"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn lock_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(WriteLock::acquire(dir.path()).unwrap());
        WriteLock::acquire(dir.path()).unwrap();
    }
}
