//! Prune: deleting the blobs that no image record and no live lease reaches, and the
//! partial downloads nobody writes any more; and releasing a failed pull's blobs.

use std::collections::BTreeSet;

use serde::Serialize;

use super::file_lock::FileLock;
use super::{ContentStore, ImageRecord, Lease, StoreError, io_error};

/// The image records and the digests every live lease holds, kept so while this lives: no
/// record changes and no pull can lease more until it is dropped. What is derived from
/// blobs (unpacked and imported layers, leased by diff ID and chain ID) is pruned under it,
/// so a layer a pull has unpacked but not yet recorded is not taken from under it.
///
/// It holds `images.lock`, then `gc.lock`, the order prune and release take them in: the
/// other order deadlocked against a concurrent `rmi`.
#[derive(Debug)]
pub struct HeldLeases<'a> {
    _leases: FileLock,
    _records: super::records::RecordsGuard<'a>,
    digests: BTreeSet<String>,
    images: Vec<ImageRecord>,
}

impl HeldLeases<'_> {
    pub fn digests(&self) -> Vec<String> {
        self.digests.iter().cloned().collect()
    }

    /// The image records, as they stay while this is held. (`ContentStore::images` would
    /// wait for this very lock.)
    pub fn images(&self) -> &[ImageRecord] {
        &self.images
    }
}

/// What prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub blobs: Vec<String>,
    pub bytes: u64,
    /// Partial downloads nobody was writing.
    pub partials: usize,
}

impl ContentStore {
    /// Deletes every blob no image record reaches, and stale partial downloads.
    pub async fn prune(&self) -> Result<Pruned, StoreError> {
        self.prune_except(&[]).await
    }

    /// As [`ContentStore::prune`], also keeping the images of `keep` (those of containers
    /// whose reference was removed while they exist).
    pub async fn prune_except(&self, keep: &[ImageRecord]) -> Result<Pruned, StoreError> {
        let _guard = self.lock_records().await?;
        // While prune decides, no pull can lease another blob (it waits), and every blob a
        // pull has leased so far is kept.
        let _leases = Lease::exclude_new(&self.root.join("leases")).await?;
        let leased = Lease::live_digests(&self.root.join("leases"), None)?;
        let records = self.load_records()?;
        let live: BTreeSet<&String> = records
            .images
            .values()
            .chain(keep)
            .flat_map(ImageRecord::blobs)
            .chain(&leased)
            .collect();
        let mut pruned = Pruned::default();
        let dir = self.root.join("blobs").join("sha256");
        let entries = std::fs::read_dir(&dir).map_err(io_error("listing blobs", &dir))?;
        for entry in entries.flatten() {
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if live.contains(&digest) {
                continue;
            }
            let size = entry.metadata().map_or(0, |m| m.len());
            if std::fs::remove_file(entry.path()).is_ok() {
                pruned.bytes += size;
                pruned.blobs.push(digest);
            }
        }
        pruned.blobs.sort();
        pruned.partials = self.remove_stale_partials()?;
        Ok(pruned)
    }

    /// Holds the records and off new lease entries, and gives what the records and the live
    /// leases hold (see [`HeldLeases`]).
    pub async fn hold_leases(&self) -> Result<HeldLeases<'_>, StoreError> {
        let records = self.lock_records().await?;
        let dir = self.root.join("leases");
        let leases = Lease::exclude_new(&dir).await?;
        let digests = Lease::live_digests(&dir, None)?;
        let images = self.load_records()?.images.into_values().collect();
        Ok(HeldLeases {
            _leases: leases,
            _records: records,
            digests,
            images,
        })
    }

    /// Ends a failed pull's lease, deleting the blobs it stored itself that nothing else
    /// uses (no image record, no other pull's lease), so a refused pull leaves the store as
    /// it was. A blob it only protected was there before it and is kept, whoever uses it
    /// (an image record, or a container whose image was untagged: prune's `keep`).
    pub async fn release(&self, lease: Lease) -> Result<Vec<String>, StoreError> {
        let _guard = self.lock_records().await?;
        let _leases = Lease::exclude_new(&self.root.join("leases")).await?;
        let own = lease.created();
        let others = Lease::live_digests(&self.root.join("leases"), lease.lock_path())?;
        let records = self.load_records()?;
        let recorded: BTreeSet<&String> = records
            .images
            .values()
            .flat_map(ImageRecord::blobs)
            .collect();
        let mut removed = Vec::new();
        for digest in own {
            if recorded.contains(&digest) || others.contains(&digest) {
                continue;
            }
            let path = self.blob_path(&digest)?;
            if std::fs::remove_file(&path).is_ok() {
                removed.push(digest);
            }
        }
        drop(lease);
        Ok(removed)
    }

    /// Deletes partial downloads whose ingest lock nobody holds (their writer is gone).
    fn remove_stale_partials(&self) -> Result<usize, StoreError> {
        let dir = self.root.join("ingest");
        let entries = std::fs::read_dir(&dir).map_err(io_error("listing downloads", &dir))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".partial") else {
                continue;
            };
            let lock = dir.join(format!("{hex}.lock"));
            if let Ok(Some(_held)) = FileLock::try_acquire(&lock)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
