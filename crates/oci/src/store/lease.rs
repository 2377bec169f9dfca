//! Leases: the blobs a pull in progress has stored or is storing, which prune must keep
//! although no image record reaches them yet (containerd's GC keeps leased content the
//! same way).
//!
//! A lease is two files under `leases/`: `<name>.lock`, locked by the pull for as long as it
//! runs, and `<name>.list`, one digest a line. A lease whose lock nobody holds belongs to a
//! pull that died; prune deletes it. Adding a digest takes `gc.lock` shared and prune takes
//! it exclusively, so a digest is either in a list prune reads, or its blob is written
//! after prune has finished.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::file_lock::{FileLock, SharedLock};
use super::{StoreError, hex_of, io_error};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

const GC_LOCK: &str = "gc.lock";

/// A pull's lease, released when dropped.
#[derive(Debug)]
pub struct Lease {
    dir: PathBuf,
    list: PathBuf,
    lock: Option<FileLock>,
    /// The blobs this lease's holder stored itself, the only ones a release may delete:
    /// a protected blob that was there before belongs to whatever put it there.
    created: std::sync::Mutex<BTreeSet<String>>,
}

impl Lease {
    /// Takes a new lease. Its lock file is made and locked under `gc.lock` shared, so prune,
    /// which reads leases under `gc.lock` exclusive and deletes the lock files nobody
    /// holds, cannot take a lease being made for a dead one.
    pub(super) async fn take(dir: &Path) -> Result<Self, StoreError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let lock_path = dir.join(format!("{name}.lock"));
        let gc = dir.join(GC_LOCK);
        let lock = tokio::task::spawn_blocking(move || {
            let _shared = SharedLock::acquire_blocking(&gc).map_err(io_error("leasing", &gc))?;
            let lock = FileLock::try_acquire(&lock_path)
                .map_err(io_error("taking a lease", &lock_path))?;
            // The name is this process's and unique in it: nobody else can hold its lock.
            lock.ok_or_else(|| StoreError::Io {
                context: "taking a lease",
                path: lock_path.clone(),
                source: std::io::Error::other("the lease's lock is held elsewhere"),
            })
        })
        .await
        .map_err(|e| StoreError::Io {
            context: "taking a lease",
            path: dir.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })??;
        Ok(Self {
            dir: dir.to_owned(),
            list: dir.join(format!("{name}.list")),
            lock: Some(lock),
            created: std::sync::Mutex::default(),
        })
    }

    /// Notes that this lease's holder stored `digest` itself (see [`Lease::created`]).
    pub fn stored(&self, digest: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.insert(digest.to_owned());
        }
    }

    /// The blobs this lease's holder stored itself.
    pub(super) fn created(&self) -> BTreeSet<String> {
        self.created
            .lock()
            .map(|created| created.clone())
            .unwrap_or_default()
    }

    /// Keeps `digest` from prune until this lease ends. Call it before storing the blob.
    pub async fn protect(&self, digest: &str) -> Result<(), StoreError> {
        self.protect_all(&[digest.to_owned()]).await
    }

    /// Keeps each of `digests` from prune until this lease ends, in one entry.
    pub async fn protect_all(&self, digests: &[String]) -> Result<(), StoreError> {
        for digest in digests {
            hex_of(digest)?;
        }
        let gc = self.dir.join(GC_LOCK);
        let list = self.list.clone();
        let mut lines = digests.join("\n");
        lines.push('\n');
        tokio::task::spawn_blocking(move || {
            let _shared = SharedLock::acquire_blocking(&gc).map_err(io_error("leasing", &gc))?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&list)
                .map_err(io_error("leasing", &list))?;
            file.write_all(lines.as_bytes())
                .map_err(io_error("leasing", &list))
        })
        .await
        .map_err(|e| StoreError::Io {
            context: "leasing",
            path: self.list.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// Holds off every new lease entry until dropped (prune's side of `gc.lock`).
    pub(super) async fn exclude_new(dir: &Path) -> Result<FileLock, StoreError> {
        let path = dir.join(GC_LOCK);
        FileLock::acquire(&path)
            .await
            .map_err(io_error("locking the leases", &path))
    }

    /// The lock file that marks this lease live.
    pub(super) fn lock_path(&self) -> Option<&Path> {
        self.lock.as_ref().map(FileLock::path)
    }

    /// The digests of every live lease but `except`'s; dead pulls' leases are deleted on
    /// the way.
    pub(super) fn live_digests(
        dir: &Path,
        except: Option<&Path>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut digests = BTreeSet::new();
        let entries = std::fs::read_dir(dir).map_err(io_error("listing leases", dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".lock") else {
                continue;
            };
            if stem == "gc" || except == Some(entry.path().as_path()) {
                continue;
            }
            let list = dir.join(format!("{stem}.list"));
            match FileLock::try_acquire(&entry.path()) {
                Ok(Some(_dead)) => {
                    let _ = std::fs::remove_file(&list);
                    let _ = std::fs::remove_file(entry.path());
                }
                Ok(None) => digests.extend(read_list(&list)?),
                Err(e) => return Err(io_error("checking a lease", &entry.path())(e)),
            }
        }
        Ok(digests)
    }
}

/// The digests of a lease list; a missing list protects nothing.
fn read_list(list: &Path) -> Result<BTreeSet<String>, StoreError> {
    let text = match std::fs::read_to_string(list) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error("reading a lease", list)(e)),
    };
    Ok(text
        .lines()
        .filter(|line| hex_of(line).is_ok())
        .map(str::to_owned)
        .collect())
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The list goes first: a lease whose list is gone protects nothing, which is what
        // an ending pull means (its blobs are recorded by now, or it failed).
        let _ = std::fs::remove_file(&self.list);
        if let Some(lock) = self.lock.take() {
            let path = lock.path().to_owned();
            drop(lock);
            let _ = std::fs::remove_file(path);
        }
    }
}
