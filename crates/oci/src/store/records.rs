//! The image records (`images.json`): reference to manifest, config and layers. Every
//! change is a read-modify-write under `images.lock`, written to a temporary file of this
//! writer's own, fsynced and renamed, so neither a crash nor a concurrent `pane` loses one.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::file_lock::{FileLock, SharedLock};
use super::{ContentStore, StoreError, io_error};

/// One image the store knows by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub reference: String,
    /// The platform manifest the image resolved to on this host.
    pub manifest: String,
    /// The index it came from, when the reference named a multi-platform image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    pub config: String,
    pub layers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl ImageRecord {
    pub(super) fn blobs(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.manifest)
            .chain(&self.index)
            .chain(std::iter::once(&self.config))
            .chain(&self.layers)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Records {
    pub(super) images: BTreeMap<String, ImageRecord>,
}

/// Held while the image records are read, changed and written back.
#[derive(Debug)]
pub(super) struct RecordsGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    _file: FileLock,
}

impl ContentStore {
    pub(super) fn records_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    pub(super) fn load_records(&self) -> Result<Records, StoreError> {
        let path = self.records_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Records { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Records::default()),
            Err(e) => Err(StoreError::Io {
                context: "reading image records",
                path,
                source: e,
            }),
        }
    }

    /// Takes the records for a read-modify-write, in this process and across processes.
    pub(super) async fn lock_records(&self) -> Result<RecordsGuard<'_>, StoreError> {
        let local = self.records.lock().await;
        let path = self.root.join("images.lock");
        let file = FileLock::acquire(&path)
            .await
            .map_err(io_error("locking the image records", &path))?;
        Ok(RecordsGuard {
            _local: local,
            _file: file,
        })
    }

    /// Write, fsync, rename: a crash leaves the old records or the new, never half of one.
    /// The temporary name is this writer's own, so no other writer can rename it away.
    pub(super) fn save_records(&self, records: &Records) -> Result<(), StoreError> {
        let path = self.records_path();
        let bytes = serde_json::to_vec_pretty(records).map_err(|source| StoreError::Records {
            path: path.clone(),
            source,
        })?;
        let (mut file, temporary) = crate::temp_name::create_beside(&path)
            .map_err(io_error("writing image records", &path))?;
        let mut write = || -> io::Result<()> {
            io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            crate::temp_name::replace(&temporary, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            io_error("writing image records", &path)(e)
        })
    }

    /// Records an image under its reference, returning the record it replaced.
    pub async fn add_image(&self, record: ImageRecord) -> Result<Option<ImageRecord>, StoreError> {
        let _guard = self.lock_records().await?;
        let mut records = self.load_records()?;
        let previous = records.images.insert(record.reference.clone(), record);
        self.save_records(&records)?;
        Ok(previous)
    }

    pub fn image(&self, reference: &str) -> Result<ImageRecord, StoreError> {
        self.read_records()?
            .images
            .remove(reference)
            .ok_or_else(|| StoreError::NoSuchImage {
                reference: reference.to_owned(),
            })
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        Ok(self.read_records()?.images.into_values().collect())
    }

    /// The records, read under `images.lock` shared. Without it, a reader holding
    /// `images.json` open made a writer's rename over it fail with access denied where
    /// Windows replaces a file by `MoveFileExW` (seen under wine: 1 in 14 runs of forty
    /// concurrent `pane tag`). Not for callers holding [`ContentStore::lock_records`]: the
    /// shared lock would wait for their own exclusive one.
    fn read_records(&self) -> Result<Records, StoreError> {
        let path = self.root.join("images.lock");
        let _shared = SharedLock::acquire_blocking(&path)
            .map_err(io_error("reading image records", &path))?;
        self.load_records()
    }

    /// Names `target` as another reference to `source`'s image.
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), StoreError> {
        let _guard = self.lock_records().await?;
        let mut records = self.load_records()?;
        let mut record =
            records
                .images
                .get(source)
                .cloned()
                .ok_or_else(|| StoreError::NoSuchImage {
                    reference: source.to_owned(),
                })?;
        target.clone_into(&mut record.reference);
        records.images.insert(target.to_owned(), record);
        self.save_records(&records)
    }

    /// Removes a reference; its blobs stay until [`ContentStore::prune`].
    pub async fn untag(&self, reference: &str) -> Result<ImageRecord, StoreError> {
        let _guard = self.lock_records().await?;
        let mut records = self.load_records()?;
        let record = records
            .images
            .remove(reference)
            .ok_or_else(|| StoreError::NoSuchImage {
                reference: reference.to_owned(),
            })?;
        self.save_records(&records)?;
        Ok(record)
    }

    /// Total size of an image's blobs.
    pub fn image_size(&self, record: &ImageRecord) -> u64 {
        record
            .blobs()
            .filter_map(|d| self.blob_path(d).ok())
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}
