//! The store of layers imported into HCS: one folder per layer under `<root>/<chain-id hex>`.
//!
//! An imported Windows layer depends on the layers beneath it (its `Files` holds placeholders
//! into its parents), so the same diff can make different layers over different parents;
//! folders are keyed by chain ID (the OCI image spec's digest of the layer and everything
//! beneath it), as Docker keys its Windows layers. HCS names a layer by `NameToGuid` of its
//! folder name, so a folder is never renamed once imported.
//!
//! `<hex>.json` beside a folder records a finished import. A folder without it is what a
//! crash in the middle of an import left, and is destroyed before the next import or by
//! [`HcsLayerStore::retain`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::LayerError;
use crate::import::legacy::{StagedLayer, stage_layer};

/// The chain ID of a layer whose parent chain has `parent` as its chain ID (none for a base
/// layer): `sha256(parent + " " + diff_id)`, or the diff ID itself for a base layer.
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_owned(),
        Some(parent) => {
            let digest = Sha256::digest(format!("{parent} {diff_id}").as_bytes());
            format!("sha256:{}", crate::reader::hex(&digest))
        }
    }
}

/// The chain IDs of an image's layers, given its diff IDs base first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = chain_id(out.last().map(String::as_str), diff_id);
        out.push(next);
    }
    out
}

/// What `<hex>.json` records of a finished import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub chain_id: String,
    pub diff_id: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct HcsLayerStore {
    root: PathBuf,
}

/// One import or staging of a layer at a time in this process: two images pulled together
/// can share a layer, and both would build the same folder. (Two pane processes are not
/// kept apart: there is no cross-process lock yet.)
fn layer_lock(folder: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(locks.entry(folder.to_owned()).or_default())
}

fn folder_name(chain_id: &str) -> Result<&str, LayerError> {
    chain_id
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| LayerError::Stream(format!("{chain_id:?} is not a sha256 chain ID")))
}

impl HcsLayerStore {
    pub fn open(root: &Path) -> Result<Self, LayerError> {
        std::fs::create_dir_all(root).map_err(LayerError::io("creating the layer store", root))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn path(&self, chain_id: &str) -> Result<PathBuf, LayerError> {
        Ok(self.root.join(folder_name(chain_id)?))
    }

    fn record_path(&self, chain_id: &str) -> Result<PathBuf, LayerError> {
        Ok(self.root.join(format!("{}.json", folder_name(chain_id)?)))
    }

    /// The layer's import finished.
    pub fn has(&self, chain_id: &str) -> bool {
        self.record_path(chain_id).is_ok_and(|p| p.is_file())
            && self.path(chain_id).is_ok_and(|p| p.is_dir())
    }

    /// Records a finished import: written to a temporary name and renamed, so a crash
    /// leaves either no record or a whole one.
    pub fn record(&self, record: &ImportRecord) -> Result<(), LayerError> {
        let path = self.record_path(&record.chain_id)?;
        let temporary = path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|e| LayerError::Stream(e.to_string()))?;
        std::fs::write(&temporary, bytes)
            .map_err(LayerError::io("recording an import", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(LayerError::io("recording an import", &path))
    }

    /// The imported layers that are not finished imports or not among `live` chain IDs:
    /// `(chain ID or folder name, folder)`.
    pub fn unused(&self, live: &[String]) -> Result<Vec<(String, PathBuf)>, LayerError> {
        let keep: Vec<&str> = live.iter().filter_map(|c| folder_name(c).ok()).collect();
        let mut unused = Vec::new();
        let entries =
            std::fs::read_dir(&self.root).map_err(LayerError::io("listing layers", &self.root))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() {
                continue;
            }
            let finished = self.root.join(format!("{name}.json")).is_file();
            if finished && keep.contains(&name.as_str()) {
                continue;
            }
            let label = if name.starts_with('.') {
                name
            } else {
                format!("sha256:{name}")
            };
            unused.push((label, entry.path()));
        }
        Ok(unused)
    }

    /// Where a layer over parents is staged before its import.
    pub fn staged_path(&self, chain_id: &str) -> Result<PathBuf, LayerError> {
        Ok(self
            .root
            .join(format!(".staged-{}", folder_name(chain_id)?)))
    }

    /// The layer was staged (completely) and waits for its import.
    pub fn is_staged(&self, chain_id: &str) -> bool {
        self.staged_path(chain_id)
            .is_ok_and(|p| StagedLayer::load(&p).is_some())
    }

    /// Stages a layer that has parents as the import folder `ImportLayer` reads, checking
    /// it against `diff_id`. Needs no parent layers, so it runs as soon as the layer is
    /// downloaded, beside the other downloads; [`Self::import`] then takes the staging.
    /// Returns `false` when there was nothing to do (imported or staged already).
    pub fn stage(
        &self,
        input: impl std::io::Read,
        chain_id: &str,
        diff_id: &str,
    ) -> Result<bool, LayerError> {
        let staging = self.staged_path(chain_id)?;
        let lock = layer_lock(&self.path(chain_id)?);
        let _held = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.has(chain_id) || self.is_staged(chain_id) {
            return Ok(false);
        }
        // An unfinished staging (no record) from an interrupted run.
        let _ = std::fs::remove_dir_all(&staging);
        stage_layer(input, diff_id, &staging)?;
        Ok(true)
    }

    /// Imports layer `chain_id` over `parents` (their folders, topmost first): a base layer
    /// (no parents) straight from `input`; any other from its staging, staged from `input`
    /// now if it was not staged during the pull. `input` is only read when needed. A folder
    /// an interrupted import left is destroyed first.
    #[cfg(windows)]
    pub fn import(
        &self,
        input: impl std::io::Read,
        chain_id: &str,
        diff_id: &str,
        parents: &[PathBuf],
    ) -> Result<(), LayerError> {
        let layer = self.path(chain_id)?;
        let lock = layer_lock(&layer);
        let _held = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.has(chain_id) {
            return Ok(());
        }
        if layer.exists() {
            destroy_folder(&layer)?;
        }
        let size = if parents.is_empty() {
            crate::import::import_base_layer(input, diff_id, &layer)?.uncompressed_bytes
        } else {
            let staging = self.staged_path(chain_id)?;
            let mut staged = if let Some(staged) = StagedLayer::load(&staging) {
                staged
            } else {
                let _ = std::fs::remove_dir_all(&staging);
                stage_layer(input, diff_id, &staging)?.1
            };
            crate::import::import_staged_layer(&mut staged, &layer, parents)?;
            let _ = std::fs::remove_dir_all(&staging);
            staged.size
        };
        self.record(&ImportRecord {
            chain_id: chain_id.to_owned(),
            diff_id: diff_id.to_owned(),
            size,
        })
    }

    /// Destroys every layer not among `live` chain IDs, and what interrupted imports left;
    /// returns what it removed. A layer a running container still uses cannot be destroyed
    /// (HCS holds it open); it stays and is tried again next time.
    #[cfg(windows)]
    pub fn retain(&self, live: &[String]) -> Result<Vec<String>, LayerError> {
        let mut removed = Vec::new();
        for (label, folder) in self.unused(live)? {
            let record = folder.with_extension("json");
            if destroy_folder(&folder).is_ok() {
                let _ = std::fs::remove_file(record);
                removed.push(label);
            }
        }
        Ok(removed)
    }
}

/// `DestroyLayer`, then whatever is left of the folder (a staging folder vmcompute never
/// knew about is removed directly).
#[cfg(windows)]
fn destroy_folder(folder: &Path) -> Result<(), LayerError> {
    let destroyed = crate::sys::destroy(folder);
    match std::fs::remove_dir_all(folder) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => destroyed.and(Err(LayerError::io("removing a layer folder", folder)(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const TOP: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn chain_ids_follow_the_image_spec() {
        // Computed independently: printf '%s %s' BASE TOP | sha256sum
        let expected = "sha256:9932074217c35353d2e03a3f5a86549f7c67bfeb0ba53e23d69f4d4c8f7958f5";
        assert_eq!(
            chain_ids(&[BASE.to_owned(), TOP.to_owned()]),
            [BASE, expected]
        );
        assert_eq!(chain_id(None, BASE), BASE);
    }

    #[test]
    fn unfinished_and_unused_folders_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = HcsLayerStore::open(dir.path()).unwrap();
        for id in [BASE, TOP] {
            std::fs::create_dir(store.path(id).unwrap()).unwrap();
        }
        store
            .record(&ImportRecord {
                chain_id: BASE.to_owned(),
                diff_id: BASE.to_owned(),
                size: 1,
            })
            .unwrap();
        assert!(store.has(BASE));
        assert!(
            !store.has(TOP),
            "a folder without its record is an interrupted import"
        );
        std::fs::create_dir(dir.path().join(".staging-x-1")).unwrap();
        let mut unused: Vec<String> = store
            .unused(&[BASE.to_owned(), TOP.to_owned()])
            .unwrap()
            .into_iter()
            .map(|(label, _)| label)
            .collect();
        unused.sort();
        assert_eq!(unused, [".staging-x-1".to_owned(), TOP.to_owned()]);
        let all: Vec<String> = store
            .unused(&[])
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(all.len(), 3);
        assert!(store.path("sha256:../x").is_err());
    }
}
