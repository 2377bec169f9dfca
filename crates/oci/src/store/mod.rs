//! The content store: blobs addressed by digest, and image records naming them.
//!
//! Layout under the store root (created for its owner only, see [`private_dir`]):
//! - `blobs/sha256/<hex>`: verified blobs, written once, never changed;
//! - `ingest/<hex>.partial`: downloads in progress, kept across crashes so they resume;
//!   `ingest/<hex>.lock` is held by the one process writing it;
//! - `leases/`: the blobs pulls in progress use but have not recorded yet;
//! - `images.json`: reference → manifest digest (written atomically under `images.lock`).
//!
//! Nothing is counted by hand: a blob is in use while an image record or a live lease
//! reaches it (manifest, then its config and layers), so removing one of two images that
//! share a layer keeps the layer, and prune deletes exactly what nothing reaches.
//!
//! Several `pane` processes share one store. Each blob has one writer at a time across
//! processes (its ingest lock), a commit never replaces a blob already there, record
//! updates are read-modify-write under a cross-process lock, and prune excludes lease
//! updates while it decides.

mod file_lock;
mod gc;
mod lease;
mod private_dir;
mod records;

pub use file_lock::FileLock;
pub use gc::{HeldLeases, Pruned};
pub use lease::Lease;
pub use private_dir::secure_root;
pub use records::ImageRecord;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::digest::{hex, sha256_digest};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{digest} is not a sha256 digest")]
    BadDigest { digest: String },
    #[error("blob {expected} failed verification: {problem}; the download was discarded")]
    Mismatch { expected: String, problem: String },
    #[error("no image {reference} in the store; `pane images` lists them")]
    NoSuchImage { reference: String },
    #[error("the image records in {path} are unreadable: {source}")]
    Records {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "blob {digest} is already in the store with {existing} bytes, not the {size} verified \
         ones; the store was changed behind pane's back: delete {path} and pull again"
    )]
    Conflict {
        digest: String,
        path: PathBuf,
        existing: u64,
        size: u64,
    },
    #[error("the store at {path} is not safe to use: {problem}")]
    Unsafe { path: PathBuf, problem: String },
}

fn io_error(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        context,
        path,
        source,
    }
}

/// Held while one blob is written: the in-process slot, then the cross-process lock.
#[derive(Debug)]
pub struct DownloadSlot {
    _local: tokio::sync::OwnedMutexGuard<()>,
    _file: FileLock,
}

/// A content store on disk. Clones share the in-process download locks.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    /// One lock per digest, so concurrent pulls of a blob share one download.
    downloads: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Serialises read-modify-write of the image records.
    records: Arc<tokio::sync::Mutex<()>>,
}

/// sha256 hex of a `sha256:<hex>` digest, refusing anything that could escape the store.
fn hex_of(digest: &str) -> Result<&str, StoreError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| StoreError::BadDigest {
            digest: digest.to_owned(),
        })
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        private_dir::secure_root(root)?;
        for dir in [
            root.join("blobs").join("sha256"),
            root.join("ingest"),
            root.join("leases"),
        ] {
            std::fs::create_dir_all(&dir).map_err(io_error("creating the store", &dir))?;
        }
        Ok(Self {
            root: root.to_owned(),
            downloads: Arc::default(),
            records: Arc::default(),
        })
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs").join("sha256").join(hex_of(digest)?))
    }

    pub fn partial_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .root
            .join("ingest")
            .join(format!("{}.partial", hex_of(digest)?)))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// The length of a stored blob.
    pub fn blob_size(&self, digest: &str) -> Result<u64, StoreError> {
        let path = self.blob_path(digest)?;
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(io_error("reading a blob", &path))
    }

    pub async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        tokio::fs::read(&path)
            .await
            .map_err(io_error("reading a blob", &path))
    }

    /// Holds the download slot of `digest`; a second puller, in this process or another,
    /// waits here, then finds the blob.
    pub async fn lock_download(&self, digest: &str) -> Result<DownloadSlot, StoreError> {
        let lock_path = self
            .root
            .join("ingest")
            .join(format!("{}.lock", hex_of(digest)?));
        let lock = {
            let mut locks = self
                .downloads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(locks.entry(digest.to_owned()).or_default())
        };
        let local = lock.lock_owned().await;
        let file = FileLock::acquire(&lock_path)
            .await
            .map_err(io_error("locking a download", &lock_path))?;
        Ok(DownloadSlot {
            _local: local,
            _file: file,
        })
    }

    /// A lease protecting the blobs a pull stores from prune until the pull records them.
    pub async fn lease(&self) -> Result<Lease, StoreError> {
        Lease::take(&self.root.join("leases")).await
    }

    /// Stores a small blob held in memory (manifests, configs), after checking it; whether
    /// this call stored it (not: found it there).
    pub async fn put_bytes(&self, digest: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let actual = sha256_digest(bytes);
        if actual != digest {
            return Err(StoreError::Mismatch {
                expected: digest.to_owned(),
                problem: format!("content hashes to {actual}"),
            });
        }
        // Two pulls of one image store the same manifest and config: one writes, one finds it.
        let _slot = self.lock_download(digest).await?;
        if self.has_blob(digest) {
            return Ok(false);
        }
        let partial = self.partial_path(digest)?;
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(io_error("creating a blob", &partial))?;
        file.write_all(bytes)
            .await
            .map_err(io_error("writing a blob", &partial))?;
        self.commit(digest, file, &partial, bytes.len() as u64)
            .await
    }

    /// Opens the partial download of `digest` to append to it, returning the hasher fed with
    /// what is already there (so an interrupted download resumes where it stopped).
    pub async fn resume(&self, digest: &str) -> Result<Ingest, StoreError> {
        let path = self.partial_path(digest)?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        if let Ok(mut existing) = tokio::fs::File::open(&path).await {
            let mut buffer = vec![0u8; 256 << 10];
            loop {
                let n = existing
                    .read(&mut buffer)
                    .await
                    .map_err(io_error("reading a partial download", &path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                written += n as u64;
            }
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(io_error("opening a partial download", &path))?;
        Ok(Ingest {
            digest: digest.to_owned(),
            path,
            file,
            hasher,
            written,
        })
    }

    /// Copies an opened blob file into the store, verifying it on the way; at most `size`
    /// bytes (and one more, to see that there are no more) are read. Returns whether this
    /// call stored it.
    pub async fn put_opened(
        &self,
        digest: &str,
        source: std::fs::File,
        size: u64,
    ) -> Result<bool, StoreError> {
        let _slot = self.lock_download(digest).await?;
        if self.has_blob(digest) {
            return Ok(false);
        }
        let mut ingest = self.resume(digest).await?;
        ingest.restart().await?;
        let mut file = tokio::fs::File::from_std(source).take(size.saturating_add(1));
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(io_error("reading a blob to import", &ingest.path))?;
            if n == 0 {
                break;
            }
            ingest.write(&buffer[..n]).await?;
        }
        self.finish(ingest, Some(size)).await
    }

    /// Verifies a finished ingest and moves it into place; on mismatch it is deleted.
    /// Returns whether it was moved into place (not: an identical blob was there already).
    pub async fn finish(
        &self,
        ingest: Ingest,
        expected_size: Option<u64>,
    ) -> Result<bool, StoreError> {
        let Ingest {
            digest,
            path,
            file,
            hasher,
            written,
        } = ingest;
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        let size_ok = expected_size.is_none_or(|size| size == written);
        if actual != digest || !size_ok {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            let problem = if size_ok {
                format!("content hashes to {actual}")
            } else {
                format!(
                    "{written} bytes received, {} expected",
                    expected_size.unwrap_or_default()
                )
            };
            return Err(StoreError::Mismatch {
                expected: digest,
                problem,
            });
        }
        self.commit(&digest, file, &path, written).await
    }

    /// fsync, then rename into `blobs/`: a blob is either whole and verified or absent.
    /// The caller holds the blob's download slot, so nobody else writes this partial; its
    /// length is checked once more anyway, and a blob already in place is never replaced.
    async fn commit(
        &self,
        digest: &str,
        file: tokio::fs::File,
        partial: &Path,
        size: u64,
    ) -> Result<bool, StoreError> {
        file.sync_all()
            .await
            .map_err(io_error("syncing a blob", partial))?;
        let on_disk = file
            .metadata()
            .await
            .map_err(io_error("syncing a blob", partial))?
            .len();
        drop(file);
        if on_disk != size {
            let _ = tokio::fs::remove_file(partial).await;
            return Err(StoreError::Mismatch {
                expected: digest.to_owned(),
                problem: format!("{on_disk} bytes on disk after {size} were written and verified"),
            });
        }
        let target = self.blob_path(digest)?;
        if let Ok(existing) = tokio::fs::symlink_metadata(&target).await {
            let _ = tokio::fs::remove_file(partial).await;
            if existing.is_file() && existing.len() == size {
                return Ok(false);
            }
            return Err(StoreError::Conflict {
                digest: digest.to_owned(),
                path: target,
                existing: existing.len(),
                size,
            });
        }
        tokio::fs::rename(partial, &target)
            .await
            .map_err(io_error("moving a blob into place", &target))?;
        Ok(true)
    }
}

/// A download being written: append, then [`ContentStore::finish`].
#[derive(Debug)]
pub struct Ingest {
    digest: String,
    path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
}

impl Ingest {
    /// Bytes already on disk (where a resumed download starts).
    pub fn offset(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .await
            .map_err(io_error("writing a download", &self.path))
    }

    /// Stops writing with every accepted byte on disk. tokio completes a write on a blocking
    /// thread after `write` returns, so a download dropped mid-way could still be growing its
    /// partial file while a later resume in this process measures it.
    pub async fn settle(mut self) {
        let _ = self.file.flush().await;
    }

    /// Deletes the partial download (its bytes were refused).
    pub async fn discard(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }

    /// Starts over (the server ignored a range request).
    pub async fn restart(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .await
            .map_err(io_error("truncating a download", &self.path))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }
}

impl ContentStore {
    /// What the runtime needs from a stored image: its config and layer chain.
    pub async fn image_facts(&self, record: &ImageRecord) -> Result<crate::ImageFacts, StoreError> {
        let invalid = |what: &str, e: serde_json::Error| StoreError::Records {
            path: self.root.join("blobs").join("sha256").join(what),
            source: e,
        };
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(&self.read_blob(&record.manifest).await?)
                .map_err(|e| invalid(&record.manifest, e))?;
        let config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&self.read_blob(&record.config).await?)
                .map_err(|e| invalid(&record.config, e))?;
        Ok(crate::ImageFacts::from_documents(
            record.reference.clone(),
            record.manifest.clone(),
            &manifest,
            &config,
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reference: &str, manifest: &[u8], config: &[u8], layers: &[&[u8]]) -> ImageRecord {
        ImageRecord {
            reference: reference.into(),
            manifest: sha256_digest(manifest),
            index: None,
            config: sha256_digest(config),
            layers: layers.iter().map(|l| sha256_digest(l)).collect(),
            os_version: None,
        }
    }

    #[tokio::test]
    async fn verified_blobs_and_rejected_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = sha256_digest(b"hello");
        store.put_bytes(&digest, b"hello").await.unwrap();
        assert_eq!(store.read_blob(&digest).await.unwrap(), b"hello");
        let err = store
            .put_bytes(&sha256_digest(b"other"), b"hello")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Mismatch { .. }));
        assert!(matches!(
            store.blob_path("sha256:../../etc/passwd"),
            Err(StoreError::BadDigest { .. })
        ));
    }

    #[tokio::test]
    async fn a_partial_download_resumes_and_a_bad_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data = vec![7u8; 100_000];
        let digest = sha256_digest(&data);
        let mut first = store.resume(&digest).await.unwrap();
        first.write(&data[..40_000]).await.unwrap();
        first.settle().await; // interrupted
        let mut second = store.resume(&digest).await.unwrap();
        assert_eq!(second.offset(), 40_000);
        second.write(&data[40_000..]).await.unwrap();
        store.finish(second, Some(100_000)).await.unwrap();
        assert!(store.has_blob(&digest));
        assert!(!store.partial_path(&digest).unwrap().exists());

        let bad = sha256_digest(b"expected");
        let mut ingest = store.resume(&bad).await.unwrap();
        ingest.write(b"tampered").await.unwrap();
        assert!(store.finish(ingest, None).await.is_err());
        assert!(!store.has_blob(&bad) && !store.partial_path(&bad).unwrap().exists());
    }

    #[tokio::test]
    async fn prune_removes_partials_nobody_writes_and_keeps_the_one_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let (stale, live) = (sha256_digest(b"stale"), sha256_digest(b"live"));
        let mut abandoned = store.resume(&stale).await.unwrap();
        abandoned.write(b"sta").await.unwrap();
        abandoned.settle().await;
        let _writing = store.lock_download(&live).await.unwrap();
        let mut current = store.resume(&live).await.unwrap();
        current.write(b"li").await.unwrap();
        let pruned = store.prune().await.unwrap();
        assert_eq!(pruned.partials, 1);
        assert!(!store.partial_path(&stale).unwrap().exists());
        assert!(store.partial_path(&live).unwrap().exists());
    }

    #[tokio::test]
    async fn a_leased_blob_outlives_prune_until_the_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        // A second handle stands for another process: it shares no in-process state.
        let other = ContentStore::open(dir.path()).unwrap();
        let digest = sha256_digest(b"pulled, not yet recorded");
        let lease = store.lease().await.unwrap();
        lease.protect(&digest).await.unwrap();
        store
            .put_bytes(&digest, b"pulled, not yet recorded")
            .await
            .unwrap();
        assert!(other.prune().await.unwrap().blobs.is_empty());
        assert!(store.has_blob(&digest));
        drop(lease);
        assert_eq!(other.prune().await.unwrap().blobs, [digest]);
    }

    #[tokio::test]
    async fn a_release_deletes_what_its_pull_stored_and_nothing_that_was_there_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        // Unrecorded but in use: the layer of a container whose image was untagged (the
        // runtime passes such images to prune as `keep`).
        let before = sha256_digest(b"a running container's layer");
        store
            .put_bytes(&before, b"a running container's layer")
            .await
            .unwrap();
        let fresh = sha256_digest(b"fetched by the failing pull");
        let lease = store.lease().await.unwrap();
        for (digest, bytes) in [
            (&before, &b"a running container's layer"[..]),
            (&fresh, &b"fetched by the failing pull"[..]),
        ] {
            lease.protect(digest).await.unwrap();
            if store.put_bytes(digest, bytes).await.unwrap() {
                lease.stored(digest);
            }
        }
        assert_eq!(
            store.release(lease).await.unwrap(),
            std::slice::from_ref(&fresh)
        );
        assert!(store.has_blob(&before));
        assert!(!store.has_blob(&fresh));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_layer_prune_holding_the_leases_and_a_racing_prune_both_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        // Another handle stands for another process: no in-process lock is shared.
        let other = ContentStore::open(dir.path()).unwrap();
        store
            .add_image(record("a:1", b"m", b"c", &[]))
            .await
            .unwrap();
        let held = store.hold_leases().await.unwrap();
        let racing = tokio::spawn(async move { other.prune().await.map(|p| p.blobs.len()) });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // What a layer prune reads while it holds the leases; taking `images.lock` here,
        // after `gc.lock`, deadlocked against the prune waiting for `gc.lock` with
        // `images.lock` held.
        assert_eq!(held.images().len(), 1);
        assert!(!racing.is_finished(), "prune waits for the held leases");
        drop(held);
        let pruned = tokio::time::timeout(std::time::Duration::from_secs(30), racing)
            .await
            .expect("the racing prune finishes once the leases are let go")
            .unwrap()
            .unwrap();
        assert_eq!(pruned, 0, "the recorded image's blobs are kept");
    }

    #[tokio::test]
    async fn a_dead_pulls_lease_protects_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = sha256_digest(b"orphan");
        store.put_bytes(&digest, b"orphan").await.unwrap();
        // What a killed pull leaves: a list whose lock nobody holds.
        let leases = dir.path().join("leases");
        std::fs::write(leases.join("1-2-3.list"), format!("{digest}\n")).unwrap();
        std::fs::write(leases.join("1-2-3.lock"), b"").unwrap();
        assert_eq!(store.prune().await.unwrap().blobs, [digest]);
        assert!(!leases.join("1-2-3.list").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_updates_from_separate_handles_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let first = ContentStore::open(dir.path()).unwrap();
        let second = ContentStore::open(dir.path()).unwrap();
        first
            .add_image(record("a:1", b"m", b"c", &[]))
            .await
            .unwrap();
        let tags = (0..60).map(|n| {
            let store = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { store.tag("a:1", &format!("a:t{n}")).await })
        });
        for tag in tags.collect::<Vec<_>>() {
            tag.await.unwrap().unwrap();
        }
        assert_eq!(first.images().unwrap().len(), 61);
    }

    #[tokio::test]
    async fn prune_keeps_blobs_another_image_still_uses() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        for blob in [
            &b"m1"[..],
            b"m2",
            b"c1",
            b"c2",
            b"shared",
            b"only1",
            b"stray",
        ] {
            store.put_bytes(&sha256_digest(blob), blob).await.unwrap();
        }
        store
            .add_image(record("a:1", b"m1", b"c1", &[b"shared", b"only1"]))
            .await
            .unwrap();
        store
            .add_image(record("b:1", b"m2", b"c2", &[b"shared"]))
            .await
            .unwrap();
        store.tag("a:1", "a:latest").await.unwrap();
        assert_eq!(store.images().unwrap().len(), 3);

        let pruned = store.prune().await.unwrap();
        assert_eq!(pruned.blobs, [sha256_digest(b"stray")]);
        store.untag("a:1").await.unwrap();
        assert!(
            store.prune().await.unwrap().blobs.is_empty(),
            "a:latest still names image a"
        );
        store.untag("a:latest").await.unwrap();
        let pruned = store.prune().await.unwrap();
        let mut expected = vec![
            sha256_digest(b"m1"),
            sha256_digest(b"c1"),
            sha256_digest(b"only1"),
        ];
        expected.sort();
        assert_eq!(pruned.blobs, expected);
        assert!(
            store.has_blob(&sha256_digest(b"shared")),
            "b:1 still uses the shared layer"
        );
        assert!(matches!(
            store.untag("a:1").await,
            Err(StoreError::NoSuchImage { .. })
        ));
    }
}
