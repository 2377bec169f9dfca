//! Cross-process locks on lock files: `flock` on Unix, `LockFileEx` on Windows (through
//! std's `File::lock`). The OS releases a lock when its holder dies, so a `pane` killed
//! mid-pull never wedges the next one.
//!
//! Lock files are never deleted while they could be in use: deleting a lock file lets a
//! late opener lock the deleted inode while a new opener locks a fresh file, and both would
//! then "hold" the lock. They are empty, so keeping them costs an inode each.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often an async waiter retries a held lock. Polling keeps waiters off the blocking
/// pool, which a long download would otherwise occupy for its whole length.
const RETRY: Duration = Duration::from_millis(20);

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

/// A shared lock, held until dropped.
#[derive(Debug)]
pub struct SharedLock {
    _file: File,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl FileLock {
    /// Waits for the lock without blocking the async runtime.
    pub async fn acquire(path: &Path) -> io::Result<Self> {
        let file = open(path)?;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Self {
                        _file: file,
                        path: path.to_owned(),
                    });
                }
                Err(TryLockError::WouldBlock) => tokio::time::sleep(RETRY).await,
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
    }

    /// Waits for the lock, blocking the thread.
    pub fn acquire_blocking(path: &Path) -> io::Result<Self> {
        let file = open(path)?;
        file.lock()?;
        Ok(Self {
            _file: file,
            path: path.to_owned(),
        })
    }

    /// The lock if nobody holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self {
                _file: file,
                path: path.to_owned(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SharedLock {
    /// Waits for a shared hold, blocking the thread (holders of shared locks only ever
    /// hold them for a moment).
    pub fn acquire_blocking(path: &Path) -> io::Result<Self> {
        let file = open(path)?;
        file.lock_shared()?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_lock_is_refused_until_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let held = FileLock::acquire(&path).await.unwrap();
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }
}
