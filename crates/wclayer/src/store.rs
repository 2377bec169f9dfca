//! The portable layer store: each layer unpacked as plain files under
//! `<root>/<diff-id hex>/` (`Files/`, `Hives/`, `UtilityVM/Files/`, alternate streams as
//! `name:stream` files), with Windows metadata (attributes, security descriptors, times,
//! link targets, whiteouts) in `layer.json` beside them. Used on hosts without HCS, so pull,
//! unpack and chains are real and testable everywhere; on Windows, layers are imported into
//! HCS instead.
//!
//! A layer is unpacked into a scratch directory and renamed into place only once its diff
//! ID checks out, so a refused or interrupted layer leaves nothing behind.

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
            if keep.contains(&name.as_str()) {
                continue;
            }
            if std::fs::remove_dir_all(entry.path()).is_ok() && !name.starts_with('.') {
                removed.push(format!("sha256:{name}"));
            }
        }
        Ok(removed)
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
