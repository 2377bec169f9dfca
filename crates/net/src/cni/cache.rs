//! The per-attachment cache: for each (network, container, interface), the exact
//! configuration list, arguments and result of its ADD, so a later CHECK or DEL (after a
//! restart, or after the configuration file changed) sends the plugins what ADD used.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::read_bounded;

/// A cache entry is a configuration and a result; more than this is not ours.
const MAX_ENTRY_BYTES: u64 = 4 * 1024 * 1024;

/// What is kept for one attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    pub network_name: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub if_name: String,
    pub netns: String,
    /// The configuration list as ADD used it.
    pub config: Value,
    #[serde(default)]
    pub cni_args: Vec<(String, String)>,
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The chain's result; `None` while ADD runs (a record of intent: if pane dies
    /// mid-ADD, the entry still says what to DEL).
    #[serde(default)]
    pub result: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
#[error("attachment cache {}: {message}", path.display())]
pub struct CacheError {
    pub path: PathBuf,
    pub message: String,
}

/// The cache directory (the caller's, e.g. `<root>/cni/cache`).
#[derive(Debug, Clone)]
pub struct AttachmentCache {
    dir: PathBuf,
}

impl AttachmentCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<dir>/results/<network>+<container>+<ifname>.json`. Network and container names
    /// cannot hold `+`, so the name parses back unambiguously; all three are validated
    /// before they get here, so none can leave the directory.
    pub fn path_of(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir
            .join("results")
            .join(format!("{network}+{container_id}+{ifname}.json"))
    }

    pub fn load(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CacheError> {
        let path = self.path_of(network, container_id, ifname);
        if !path.exists() {
            return Ok(None);
        }
        Self::read(&path).map(Some)
    }

    fn read(path: &Path) -> Result<CachedAttachment, CacheError> {
        let error = |message: String| CacheError {
            path: path.to_path_buf(),
            message,
        };
        let bytes = read_bounded(path, MAX_ENTRY_BYTES).map_err(error)?;
        serde_json::from_slice(&bytes).map_err(|e| error(format!("not a cache entry: {e}")))
    }

    /// Writes the entry atomically: a temporary file in the same directory, flushed to
    /// disk, renamed over the old entry. A reader sees the old entry or the new one.
    pub fn store(&self, entry: &CachedAttachment) -> Result<(), CacheError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path_of(&entry.network_name, &entry.container_id, &entry.if_name);
        let error = |message: String| CacheError {
            path: path.clone(),
            message,
        };
        let dir = self.dir.join("results");
        fs::create_dir_all(&dir).map_err(|e| error(format!("cannot create the directory: {e}")))?;
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| error(e.to_string()))?;
        let temp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(error(format!("cannot write: {e}")));
        }
        Ok(())
    }

    /// Removes the entry; one already gone is no error.
    pub fn remove(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), CacheError> {
        let path = self.path_of(network, container_id, ifname);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError {
                path,
                message: format!("cannot remove: {e}"),
            }),
        }
    }

    /// Every cached attachment of `network` (for GC, or for DEL of attachments whose
    /// container is gone). Entries that cannot be read are reported, not skipped.
    pub fn list(&self, network: &str) -> Result<Vec<CachedAttachment>, CacheError> {
        self.list_where(&format!("{network}+"))
    }

    /// Every cached attachment, of every network.
    pub fn list_all(&self) -> Result<Vec<CachedAttachment>, CacheError> {
        self.list_where("")
    }

    fn list_where(&self, prefix: &str) -> Result<Vec<CachedAttachment>, CacheError> {
        let dir = self.dir.join("results");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(CacheError {
                    path: dir,
                    message: format!("cannot list: {e}"),
                });
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CacheError {
                path: dir.clone(),
                message: format!("cannot list: {e}"),
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(prefix) && name.ends_with(".json") {
                found.push(Self::read(&entry.path())?);
            }
        }
        found.sort_by(|a, b| {
            (&a.network_name, &a.container_id, &a.if_name).cmp(&(
                &b.network_name,
                &b.container_id,
                &b.if_name,
            ))
        });
        Ok(found)
    }
}
