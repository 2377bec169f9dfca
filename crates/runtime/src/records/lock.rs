//! One writer per container across every pane process sharing a root: an exclusive lock
//! on `<root>/locks/containers/<id>.lock`, held while a create, start, stop or remove
//! runs (reconcile only tries it, and leaves a held container alone), so two `pane rm` of
//! one container, or a `stop` racing a `start`, take turns. The lock is the operating
//! system's (`flock` on Unix, `LockFileEx` on Windows), so a holder that dies, even by
//! `kill -9`, releases it with its last handle.
//!
//! Lock files are never deleted: a waiter may already hold the file open, and a deleted
//! file's lock would no longer exclude a process that opens the path afresh. Each is a
//! few bytes (the holder's pid, for the message a waiter gives up with).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::RuntimeError;
use crate::id::ContainerId;

/// How long an operation waits for another process's operation on the same container
/// (a stop's own grace period is ten seconds by default; a remove of a Hyper-V container
/// may take longer).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(25);

/// The lock directory and how long to wait for a holder.
#[derive(Debug, Clone)]
pub struct ContainerLocks {
    dir: PathBuf,
    wait: Duration,
}

/// A held container lock; dropping it releases the lock.
#[derive(Debug)]
pub struct ContainerLock {
    _file: File,
}

impl ContainerLocks {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            wait: DEFAULT_WAIT,
        }
    }

    #[must_use]
    pub fn waiting_at_most(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn path(&self, id: &ContainerId) -> PathBuf {
        // Container ids are validated names (no separators), so this stays in `dir`.
        self.dir.join(format!("{id}.lock"))
    }

    /// Takes the lock of `id` if nobody holds it.
    pub fn try_lock(&self, id: &ContainerId) -> Result<Option<ContainerLock>, RuntimeError> {
        let path = self.path(id);
        let state_error = |e: std::io::Error| RuntimeError::State {
            path: path.display().to_string(),
            reason: format!("cannot use the container's lock file: {e}"),
        };
        std::fs::create_dir_all(&self.dir).map_err(state_error)?;
        let file = open(&path).map_err(state_error)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ContainerLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(state_error(e)),
        }
    }

    /// Takes the lock of `id`, waiting while another operation (of this process or
    /// another) holds it.
    pub async fn lock(&self, id: &ContainerId) -> Result<ContainerLock, RuntimeError> {
        let path = self.path(id);
        let state_error = |e: std::io::Error| RuntimeError::State {
            path: path.display().to_string(),
            reason: format!("cannot use the container's lock file: {e}"),
        };
        std::fs::create_dir_all(&self.dir).map_err(state_error)?;
        let mut file = open(&path).map_err(state_error)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < self.wait => {
                    tokio::time::sleep(POLL).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(RuntimeError::Busy {
                        id: id.to_string(),
                        holder: holder_of(&mut file),
                        waited: self.wait,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(state_error(e)),
            }
        }
        // Who holds it, for a waiter's message; a failure here costs only that message.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()));
        Ok(ContainerLock { _file: file })
    }
}

fn open(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The pid the holder wrote. Windows refuses reads of a range another handle locked, so
/// there the holder is not known.
fn holder_of(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(16).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let locks = ContainerLocks::new(dir.path().to_owned());
        let id = ContainerId::new("web", 1);
        let first = locks.lock(&id).await.unwrap();
        let waiting = {
            let locks = locks.clone();
            let id = id.clone();
            tokio::spawn(async move { locks.lock(&id).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the second took a held lock");
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // Other containers are not held up.
        let _other = locks.lock(&ContainerId::new("web", 2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_waiter_gives_up_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let locks =
            ContainerLocks::new(dir.path().to_owned()).waiting_at_most(Duration::from_millis(100));
        let id = ContainerId::new("web", 1);
        let _held = locks.lock(&id).await.unwrap();
        let err = locks.lock(&id).await.unwrap_err();
        let RuntimeError::Busy { holder, .. } = &err else {
            panic!("{err}");
        };
        if cfg!(unix) {
            assert_eq!(*holder, Some(std::process::id()));
        }
        assert!(err.to_string().contains("web-1"), "{err}");
    }
}
