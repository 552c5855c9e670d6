//! An exclusive lock on a directory, against other processes and within this one.
//!
//! `flock` would be simpler, but its lock belongs to the open file description, which a
//! child process inherits between `fork` and `exec`: a lock released by the parent can
//! stay held for a moment by a child it is spawning. POSIX record locks (`F_SETLK`)
//! belong to the process and are never inherited; they do not exclude a second open in
//! the same process, so a registry of held paths does that.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Held while alive; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    key: PathBuf,
}

impl DirLock {
    /// Locks `lock_file` (created if missing); `Ok(None)` when someone holds it.
    pub fn try_acquire(lock_file: &Path) -> io::Result<Option<DirLock>> {
        let key = lock_file
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .map(|p| p.join(lock_file.file_name().unwrap_or_default()))
            .unwrap_or_else(|| lock_file.to_path_buf());
        if !HELD
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone())
        {
            return Ok(None);
        }
        let release = |key: &PathBuf| {
            HELD.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        };
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_file)
        {
            Ok(f) => f,
            Err(e) => {
                release(&key);
                return Err(e);
            }
        };
        // SAFETY: a zeroed `flock` is a valid value; the fd is open for the call.
        let result = unsafe {
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = libc::F_WRLCK as _;
            lock.l_whence = libc::SEEK_SET as _;
            libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock)
        };
        if result != 0 {
            release(&key);
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EAGAIN) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(DirLock { _file: file, key }))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_within_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = DirLock::try_acquire(&path).unwrap();
        assert!(first.is_some());
        assert!(DirLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(DirLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn another_process_is_kept_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let _held = DirLock::try_acquire(&path).unwrap().unwrap();
        // flock(1) would not see a POSIX lock; a second process asking fcntl does.
        let script = format!(
            "import fcntl,sys\nf=open({:?},'w')\ntry:\n fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n sys.exit(3)\n",
            path.display().to_string()
        );
        let status = std::process::Command::new("python3")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(3),
            "the other process must find the lock taken"
        );
    }
}
