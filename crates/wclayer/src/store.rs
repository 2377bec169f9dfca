//! The portable layer store: each layer unpacked as plain files under
//! `<root>/<diff-id hex>/` (`Files/`, `Hives/`, `UtilityVM/Files/`, alternate streams as
//! `name:stream` files), with Windows metadata (attributes, security descriptors, times,
//! link targets, whiteouts) in `layer.json` beside them. Used on hosts without HCS, so pull,
//! unpack and chains are real and testable everywhere; on Windows, layers are imported into
//! HCS instead.
//!
//! A layer is unpacked into a scratch directory and renamed into place only once its diff
//! ID checks out, so a refused or interrupted layer leaves nothing behind. The unpacking
//! process holds a lock file beside its scratch directory (`<scratch>.lock`), so `retain`
//! in another process removes only the scratch of an unpack whose process is gone.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::entry::{EntryKind, LayerEntry};
use crate::error::LayerError;
use crate::reader::{LayerReader, LayerSummary};

const METADATA: &str = "layer.json";

/// `layer.json`: what plain files cannot hold.
#[derive(Debug, Serialize, Deserialize)]
pub struct LayerMetadata {
    pub diff_id: String,
    pub uncompressed_bytes: u64,
    pub entries: Vec<LayerEntry>,
}

#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

fn hex_of(diff_id: &str) -> Result<&str, LayerError> {
    diff_id
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| LayerError::Stream(format!("{diff_id:?} is not a sha256 diff ID")))
}

impl LayerStore {
    pub fn open(root: &Path) -> Result<Self, LayerError> {
        std::fs::create_dir_all(root).map_err(LayerError::io("creating the layer store", root))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn path(&self, diff_id: &str) -> Result<PathBuf, LayerError> {
        Ok(self.root.join(hex_of(diff_id)?))
    }

    pub fn has(&self, diff_id: &str) -> bool {
        self.path(diff_id).is_ok_and(|p| p.join(METADATA).is_file())
    }

    /// Unpacks a layer stream (tar, gzip or zstd) and checks it against `diff_id`.
    pub fn unpack(&self, input: impl Read, diff_id: &str) -> Result<LayerSummary, LayerError> {
        let target = self.path(diff_id)?;
        let scratch = self.root.join(format!(
            ".unpacking-{}-{}-{}",
            hex_of(diff_id)?,
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _unpacking = ScratchLock::take(&scratch)?;
        let result = Self::unpack_into(input, &scratch);
        let summary = match result.and_then(|summary| summary.verify(diff_id).map(|()| summary)) {
            Ok(summary) => summary,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        };
        match std::fs::rename(&scratch, &target) {
            Ok(()) => Ok(summary),
            // Another unpack of the same layer finished first; theirs is identical.
            Err(_) if target.join(METADATA).is_file() => {
                let _ = std::fs::remove_dir_all(&scratch);
                Ok(summary)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                Err(LayerError::Io {
                    context: "moving a layer into place",
                    path: target,
                    source: e,
                })
            }
        }
    }

    fn unpack_into(input: impl Read, scratch: &Path) -> Result<LayerSummary, LayerError> {
        std::fs::create_dir_all(scratch)
            .map_err(LayerError::io("creating a layer directory", scratch))?;
        let mut entries = Vec::new();
        let mut summary = LayerReader.read(input, |entry, data| {
            // Paths are validated by the reader: relative, no `..`, under the layer roots,
            // and no symlink is ever created on disk, so joining cannot escape `scratch`.
            let path = scratch.join(&entry.path);
            match &entry.kind {
                EntryKind::Directory => {
                    std::fs::create_dir_all(&path)
                        .map_err(LayerError::io("creating a directory", &path))?;
                }
                EntryKind::File { .. } => {
                    create_parent(&path)?;
                    let mut file = std::fs::File::create(&path)
                        .map_err(LayerError::io("creating a file", &path))?;
                    io::copy(data, &mut file)
                        .map_err(|e| LayerError::entry(&entry.path, format!("truncated: {e}")))?;
                }
                EntryKind::HardLink { target } => {
                    // A link into a parent layer stays in the metadata only: layers are
                    // unpacked independently, and the chain resolves it.
                    let source = scratch.join(target);
                    if source.is_file() {
                        create_parent(&path)?;
                        std::fs::hard_link(source, &path)
                            .map_err(LayerError::io("creating a hard link", &path))?;
                    }
                }
                EntryKind::SymbolicLink { .. } | EntryKind::Whiteout => {}
            }
            entries.push(entry.clone());
            Ok(())
        })?;
        let metadata = LayerMetadata {
            diff_id: summary.diff_id.clone(),
            uncompressed_bytes: summary.uncompressed_bytes,
            entries,
        };
        let path = scratch.join(METADATA);
        let bytes = serde_json::to_vec(&metadata).map_err(|e| LayerError::Stream(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(LayerError::io("writing layer metadata", &path))?;
        summary.entries = metadata.entries.len();
        Ok(summary)
    }

    pub fn metadata(&self, diff_id: &str) -> Result<LayerMetadata, LayerError> {
        let path = self.path(diff_id)?.join(METADATA);
        let bytes =
            std::fs::read(&path).map_err(LayerError::io("reading layer metadata", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LayerError::Stream(format!("{}: {e}", path.display())))
    }

    /// The layer folders of an image, topmost first (the order HCS takes), given its diff
    /// IDs base first (the order image configs list them).
    pub fn chain(&self, diff_ids: &[String]) -> Result<Vec<PathBuf>, LayerError> {
        diff_ids
            .iter()
            .rev()
            .map(|diff_id| {
                if self.has(diff_id) {
                    self.path(diff_id)
                } else {
                    Err(LayerError::Stream(format!(
                        "layer {diff_id} is not unpacked; pull the image again"
                    )))
                }
            })
            .collect()
    }

    /// Removes every layer no image uses (`live` diff IDs) and leftovers of interrupted
    /// unpacks; returns the diff IDs removed.
    pub fn retain(&self, live: &[String]) -> Result<Vec<String>, LayerError> {
        let keep: Vec<&str> = live.iter().filter_map(|d| hex_of(d).ok()).collect();
        let mut removed = Vec::new();
        let entries =
            std::fs::read_dir(&self.root).map_err(LayerError::io("listing layers", &self.root))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let lock_file = Path::new(&name).extension().is_some_and(|e| e == "lock");
            if keep.contains(&name.as_str()) || lock_file {
                continue;
            }
            // A scratch directory goes only with its lock: one whose unpack is running
            // elsewhere is held, and one without a lock file may be an unpack that has not
            // locked yet.
            let _claimed = if name.starts_with(".unpacking-") {
                match ScratchLock::claim(&entry.path()) {
                    Some(claimed) => Some(claimed),
                    None => continue,
                }
            } else {
                None
            };
            if std::fs::remove_dir_all(entry.path()).is_ok() && !name.starts_with('.') {
                removed.push(format!("sha256:{name}"));
            }
        }
        Ok(removed)
    }
}

/// The lock an unpack holds on its scratch directory while it writes it; the OS drops it
/// if the process dies. The lock file goes when the holder lets go.
struct ScratchLock {
    file: std::fs::File,
    path: PathBuf,
}

impl ScratchLock {
    fn path_for(scratch: &Path) -> PathBuf {
        let mut name = scratch.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn take(scratch: &Path) -> Result<Self, LayerError> {
        let path = Self::path_for(scratch);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(LayerError::io("locking a layer unpack", &path))?;
        file.lock()
            .map_err(LayerError::io("locking a layer unpack", &path))?;
        Ok(Self { file, path })
    }

    /// The lock of a scratch directory whose unpack is gone (its process died), if it has
    /// a lock file and nobody holds it.
    fn claim(scratch: &Path) -> Option<Self> {
        let path = Self::path_for(scratch);
        let file = std::fs::OpenOptions::new().write(true).open(&path).ok()?;
        file.try_lock().ok()?;
        Some(Self { file, path })
    }
}

impl Drop for ScratchLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn create_parent(path: &Path) -> Result<(), LayerError> {
    match path.parent() {
        Some(parent) => {
            std::fs::create_dir_all(parent).map_err(LayerError::io("creating a directory", parent))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    #[test]
    fn retain_leaves_a_running_unpack_and_removes_a_dead_ones_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path()).unwrap();
        let running = dir.path().join(".unpacking-aa-1-0");
        let dead = dir.path().join(".unpacking-bb-2-0");
        let _held = ScratchLock::take(&running).unwrap();
        std::fs::create_dir(&running).unwrap();
        // What a killed unpack leaves: its scratch and a lock file nobody holds.
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(ScratchLock::path_for(&dead), b"").unwrap();
        store.retain(&[]).unwrap();
        assert!(running.is_dir(), "another process is unpacking into it");
        assert!(!dead.exists() && !ScratchLock::path_for(&dead).exists());
    }
}
