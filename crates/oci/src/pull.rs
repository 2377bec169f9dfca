//! Pulling an image into the content store: resolve the reference, choose the platform for
//! this host, fetch and verify the manifest and config, then the layers, several at once,
//! each hashed as it streams to disk and resumed with a range request if the connection
//! drops. Concurrent pulls of one blob share a single download.

use std::time::Duration;

use futures_util::StreamExt as _;
use oci_spec::image::ImageManifest;
use pane_spec::{ImageReference, OsVersion};
use reqwest::StatusCode;

use crate::digest::sha256_digest;
use crate::document::{DocumentKind, check_manifest_blobs, classify};
use crate::platform::{PlatformCandidate, PlatformError, parse_index, select_platform};
use crate::registry::{RegistryClient, RegistryError};
use crate::store::{ContentStore, ImageRecord, Ingest, Lease, StoreError};
use crate::stream_unpack::{StreamingUnpack, UnpackTarget};

/// Restarts of one layer's download after a dropped connection.
const RESUME_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("the manifest of {reference} is not valid: {problem}")]
    BadManifest { reference: String, problem: String },
    #[error("the manifest of {reference} hashes to {actual}, not {expected}")]
    ManifestDigest {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error(
        "layer {digest} is non-distributable (served from {url}); allow foreign layers with \
         --allow-nondistributable-artifacts to fetch it from there"
    )]
    ForeignLayer { digest: String, url: String },
    #[error(
        "layer {digest}: the registry sent more than the {size} bytes its descriptor declares; \
         the download was stopped and discarded"
    )]
    Oversized { digest: String, size: u64 },
    #[error("layer {digest} could not be unpacked: {reason}")]
    Unpack { digest: String, reason: String },
    #[error("layer {digest}: the connection kept dropping ({attempts} attempts): {last}")]
    Interrupted {
        digest: String,
        attempts: u32,
        last: String,
    },
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The host's Windows build, for choosing among an index's entries.
    pub host_build: Option<OsVersion>,
    pub architecture: String,
    /// Layers downloaded at once.
    pub concurrency: usize,
    /// Fetch non-distributable layers from their `urls`.
    pub allow_foreign_layers: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            host_build: None,
            architecture: "amd64".to_owned(),
            concurrency: 3,
            allow_foreign_layers: false,
        }
    }
}

/// Progress of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEvent {
    Started {
        digest: String,
        size: u64,
        resumed_from: u64,
    },
    Progress {
        digest: String,
        bytes: u64,
    },
    Done {
        digest: String,
        cached: bool,
    },
}

/// Receives progress; `pane pull` draws bars from it.
pub trait PullObserver: Send + Sync {
    fn platform(&self, _note: &str) {}
    fn layer(&self, event: LayerEvent);
}

/// Receives each layer once it is stored and verified, with its diff ID, so unpacking runs
/// beside the downloads of the other layers. Blocking work is fine: it runs on the blocking
/// pool.
pub trait LayerSink: Send + Sync {
    /// Takes the layer's uncompressed or compressed stream (tar, gzip or zstd), checking it
    /// against `layer.diff_id`. A sink that has the layer already may return without reading.
    fn unpack(
        &self,
        input: &mut dyn std::io::Read,
        layer: &LayerPosition<'_>,
    ) -> Result<(), String>;
}

/// A layer and where it sits in its image, for sinks whose result depends on the layers
/// beneath (an HCS layer is built over its parents).
#[derive(Debug, Clone, Copy)]
pub struct LayerPosition<'a> {
    /// The layer's diff ID, which the sink verifies the blob against.
    pub diff_id: &'a str,
    /// The diff IDs of this layer and every layer beneath it, base first.
    pub chain: &'a [String],
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl PullObserver for Quiet {
    fn layer(&self, _event: LayerEvent) {}
}

pub struct Puller {
    client: RegistryClient,
    store: ContentStore,
    sink: Option<std::sync::Arc<dyn LayerSink>>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("client", &self.client)
            .field("store", &self.store)
            .field("unpacks", &self.sink.is_some())
            .finish()
    }
}

impl Puller {
    pub fn new(client: RegistryClient, store: ContentStore) -> Self {
        Self {
            client,
            store,
            sink: None,
        }
    }

    /// Unpacks every layer into `sink` as soon as it is downloaded.
    #[must_use]
    pub fn unpacking_into(mut self, sink: std::sync::Arc<dyn LayerSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// Pulls `reference` into the store. A failed pull leaves the store as it found it: the
    /// blobs it stored that nothing else uses are deleted again.
    pub async fn pull(
        &self,
        reference: &ImageReference,
        options: &PullOptions,
        observer: &dyn PullObserver,
    ) -> Result<ImageRecord, PullError> {
        // Prune keeps what this pull stores until the image record reaches it.
        let lease = self.store.lease().await?;
        let pulled = self.pull_leased(reference, options, observer, &lease).await;
        if pulled.is_err()
            && let Err(e) = self.store.release(lease).await
        {
            tracing::warn!(error = %e, "a failed pull's blobs could not be removed; `pane image prune` removes them");
        }
        pulled
    }

    async fn pull_leased(
        &self,
        reference: &ImageReference,
        options: &PullOptions,
        observer: &dyn PullObserver,
        lease: &Lease,
    ) -> Result<ImageRecord, PullError> {
        let (registry, repository) = (reference.registry(), reference.repository());
        let name = reference.to_string();
        let wanted = reference.digest().map_or_else(
            || reference.tag().unwrap_or("latest").to_owned(),
            ToString::to_string,
        );
        let top = self.client.manifest(registry, repository, &wanted).await?;
        let top_digest = sha256_digest(&top.bytes);
        if let Some(expected) = reference.digest().map(ToString::to_string)
            && expected != top_digest
        {
            return Err(PullError::ManifestDigest {
                reference: name,
                expected,
                actual: top_digest,
            });
        }
        let bad_manifest = |problem: String| PullError::BadManifest {
            reference: name.clone(),
            problem,
        };
        let top_kind = classify(&top.bytes, &[&top.media_type], None).map_err(bad_manifest)?;
        let (index, manifest_digest, manifest_bytes) = if top_kind == DocumentKind::Index {
            let (digest, bytes) = self
                .choose_from_index(reference, &top.bytes, options, observer)
                .await?;
            lease.protect(&top_digest).await?;
            if self.store.put_bytes(&top_digest, &top.bytes).await? {
                lease.stored(&top_digest);
            }
            (Some(top_digest), digest, bytes)
        } else {
            (None, top_digest, top.bytes)
        };
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| PullError::BadManifest {
                reference: name.clone(),
                problem: e.to_string(),
            })?;
        check_manifest_blobs(&manifest).map_err(bad_manifest)?;
        lease.protect(&manifest_digest).await?;
        if self
            .store
            .put_bytes(&manifest_digest, &manifest_bytes)
            .await?
        {
            lease.stored(&manifest_digest);
        }

        let job = PullJob {
            registry,
            repository,
            options,
            observer,
            lease,
        };
        let config_digest = manifest.config().digest().to_string();
        lease.protect(&config_digest).await?;
        for layer in manifest.layers() {
            lease.protect(layer.digest().as_ref()).await?;
        }
        let config = self.config(&job, &manifest).await?.map_err(bad_manifest)?;

        let layers = layer_jobs(&manifest, &config);
        let layer_digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        let diff_ids = &all_diff_ids(&layers);
        if let Some(diff_ids) = diff_ids {
            // The layers unpacked or imported from these blobs, kept from a concurrent
            // layer prune until the image is recorded (see `ContentStore::hold_leases`).
            let mut derived = diff_ids.to_vec();
            derived.extend(crate::digest::chain_ids(diff_ids));
            lease.protect_all(&derived).await?;
        }
        let results: Vec<Result<(), PullError>> = futures_util::stream::iter(layers)
            // Owned jobs keep the future `Send` for callers on a multi-thread runtime (a
            // borrowed iterator trips rustc's higher-ranked lifetime inference here).
            .map(|layer| {
                let job = &job;
                async move { self.fetch_and_unpack(job, &layer, diff_ids.as_ref()).await }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, PullError>>()?;

        let record = ImageRecord {
            reference: name,
            manifest: manifest_digest,
            index,
            config: config_digest,
            layers: layer_digests,
            os_version: config
                .get("os.version")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        };
        self.store.add_image(record.clone()).await?;
        Ok(record)
    }

    /// The image config, fetched (up to its declared size) unless it is stored; the inner
    /// error says why it is not a config.
    async fn config(
        &self,
        job: &PullJob<'_>,
        manifest: &ImageManifest,
    ) -> Result<Result<serde_json::Value, String>, PullError> {
        let digest = manifest.config().digest().to_string();
        if !self.store.has_blob(&digest) {
            let bytes = self
                .client
                .document_blob(
                    job.registry,
                    job.repository,
                    &digest,
                    manifest.config().size(),
                )
                .await?;
            if self.store.put_bytes(&digest, &bytes).await? {
                job.lease.stored(&digest);
            }
        }
        // A stored blob is read only if it has the size the descriptor declares, under the
        // document cap: the digest may name any blob already here, a base layer of GiBs too.
        let declared = manifest.config().size();
        let stored = self.store.blob_size(&digest)?;
        if stored != declared || declared > crate::registry::MAX_DOCUMENT_BYTES {
            return Ok(Err(format!(
                "config {digest}: the descriptor declares {declared} bytes, the stored blob has \
                 {stored} (an image config is at most {} bytes)",
                crate::registry::MAX_DOCUMENT_BYTES
            )));
        }
        let bytes = self.store.read_blob(&digest).await?;
        Ok(serde_json::from_slice(&bytes).map_err(|e| format!("config: {e}")))
    }

    /// Downloads a layer, unpacking it as it arrives when it is a fresh download, or from
    /// the stored blob otherwise.
    async fn fetch_and_unpack(
        &self,
        job: &PullJob<'_>,
        layer: &LayerJob,
        diff_ids: Option<&std::sync::Arc<[String]>>,
    ) -> Result<(), PullError> {
        let target = self.unpack_target(layer, diff_ids);
        let unpacked = self.fetch_layer(job, layer, target).await?;
        if unpacked {
            Ok(())
        } else {
            self.unpack(layer, diff_ids.cloned()).await
        }
    }

    /// Where `layer` is unpacked, when this puller unpacks and the config names every
    /// layer's diff ID.
    fn unpack_target(
        &self,
        layer: &LayerJob,
        diff_ids: Option<&std::sync::Arc<[String]>>,
    ) -> Option<UnpackTarget> {
        Some(UnpackTarget {
            sink: self.sink.clone()?,
            diff_ids: diff_ids?.clone(),
            index: layer.index,
        })
    }

    /// Unpacks a stored layer from its blob (one that was not unpacked while downloading).
    async fn unpack(
        &self,
        layer: &LayerJob,
        diff_ids: Option<std::sync::Arc<[String]>>,
    ) -> Result<(), PullError> {
        if self.sink.is_none() {
            return Ok(());
        }
        let failure = |reason: String| PullError::Unpack {
            digest: layer.digest.clone(),
            reason,
        };
        let target = self
            .unpack_target(layer, diff_ids.as_ref())
            .ok_or_else(|| {
                failure("the image config does not give a diff ID for every layer".to_owned())
            })?;
        let blob = self.store.blob_path(&layer.digest)?;
        tokio::task::spawn_blocking(move || {
            let file =
                std::fs::File::open(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
            target.unpack(&mut std::io::BufReader::with_capacity(256 << 10, file))
        })
        .await
        .map_err(|e| failure(e.to_string()))?
        .map_err(failure)
    }

    /// Picks the index entry for this host and fetches (and verifies) its manifest.
    async fn choose_from_index(
        &self,
        reference: &ImageReference,
        index: &[u8],
        options: &PullOptions,
        observer: &dyn PullObserver,
    ) -> Result<(String, Vec<u8>), PullError> {
        let entries = parse_index(index).map_err(|e| PullError::BadManifest {
            reference: reference.to_string(),
            problem: e.to_string(),
        })?;
        let candidates: Vec<PlatformCandidate> =
            entries.iter().map(|e| e.platform.clone()).collect();
        let choice = select_platform(
            &candidates,
            &options.architecture,
            options.host_build.as_ref(),
        )?;
        if let Some(note) = &choice.note {
            observer.platform(note);
        }
        let entry = &entries[choice.index];
        let chosen = &entry.digest;
        // Checked here, not left to `manifest`, which takes anything without a `:` for a
        // tag: an entry's "digest" must never name another manifest of the repository.
        crate::registry::validate_digest(chosen)?;
        let fetched = self
            .client
            .manifest(reference.registry(), reference.repository(), chosen)
            .await?;
        let actual = sha256_digest(&fetched.bytes);
        if &actual != chosen {
            return Err(PullError::ManifestDigest {
                reference: reference.to_string(),
                expected: chosen.clone(),
                actual,
            });
        }
        let bad_manifest = |problem: String| PullError::BadManifest {
            reference: reference.to_string(),
            problem,
        };
        if let Some(size) = entry.size
            && size != fetched.bytes.len() as u64
        {
            return Err(bad_manifest(format!(
                "the index describes {chosen} as {size} bytes, the registry sent {}",
                fetched.bytes.len()
            )));
        }
        let declared = [
            entry.media_type.as_deref().unwrap_or_default(),
            fetched.media_type.as_str(),
        ];
        classify(&fetched.bytes, &declared, Some(DocumentKind::Manifest)).map_err(bad_manifest)?;
        Ok((actual, fetched.bytes))
    }

    /// Asks for `layer` from `offset` on: from the registry, or from its foreign URL.
    async fn request_layer(
        &self,
        job: &PullJob<'_>,
        layer: &LayerJob,
        offset: u64,
    ) -> Result<reqwest::Response, RegistryError> {
        match layer.urls.first() {
            Some(url) => self.client.foreign(url, offset).await,
            None => {
                self.client
                    .blob(job.registry, job.repository, &layer.digest, offset)
                    .await
            }
        }
    }

    async fn fetch_layer(
        &self,
        job: &PullJob<'_>,
        layer: &LayerJob,
        target: Option<UnpackTarget>,
    ) -> Result<bool, PullError> {
        let digest = &layer.digest;
        // A second pull of the same blob waits here, then finds it stored.
        let _slot = self.store.lock_download(digest).await?;
        if self.store.has_blob(digest) {
            job.observer.layer(LayerEvent::Done {
                digest: digest.clone(),
                cached: true,
            });
            return Ok(false);
        }
        let foreign = layer.urls.first();
        if let (Some(url), false) = (foreign, job.options.allow_foreign_layers) {
            return Err(PullError::ForeignLayer {
                digest: digest.clone(),
                url: url.clone(),
            });
        }
        let resumes = self
            .store
            .partial_path(digest)
            .ok()
            .and_then(|partial| std::fs::metadata(partial).ok())
            .is_some_and(|m| m.len() > 0);
        match self.download(job, layer, target).await {
            // The partial may have come from another registry, one that sent the wrong
            // bytes on purpose and dropped the connection: a resumed download that fails
            // its digest is fetched once more from its first byte (the failed check has
            // deleted the partial), so such a partial cannot fail every later pull.
            Err(PullError::Store(StoreError::Mismatch { problem, .. })) if resumes => {
                tracing::warn!(%digest, %problem, "a resumed download failed verification; downloading it again from the start");
                self.download(job, layer, None).await
            }
            outcome => outcome,
        }
    }

    /// Downloads `layer` into the store, resuming its partial download if there is one;
    /// the caller holds the blob's download slot.
    async fn download(
        &self,
        job: &PullJob<'_>,
        layer: &LayerJob,
        target: Option<UnpackTarget>,
    ) -> Result<bool, PullError> {
        let digest = &layer.digest;
        let mut ingest = self.store.resume(digest).await?;
        job.observer.layer(LayerEvent::Started {
            digest: digest.clone(),
            size: layer.size,
            resumed_from: ingest.offset(),
        });
        // A fresh download is unpacked as it arrives; a resumed one after it is stored.
        let mut streaming = target
            .filter(|_| ingest.offset() == 0)
            .map(StreamingUnpack::start);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let offset = ingest.offset();
            let response = self.request_layer(job, layer, offset).await?;
            let interrupted = match answer_to_range(&response, offset) {
                RangeAnswer::Refused(problem) => {
                    let refusal = Err(PullError::Registry(RegistryError::Protocol(format!(
                        "layer {digest}: {problem}"
                    ))));
                    return refuse_download(ingest, streaming, refusal).await;
                }
                // Counted as an attempt, so a server answering 416 to every range cannot
                // keep the pull going round.
                RangeAnswer::Unresumable => {
                    restart(&mut ingest, &mut streaming).await?;
                    Some("the registry could not resume (416); starting over".to_owned())
                }
                answer => {
                    if answer == RangeAnswer::Whole {
                        restart(&mut ingest, &mut streaming).await?;
                    }
                    let received = receive(
                        &self.client,
                        response,
                        &mut ingest,
                        streaming.as_mut(),
                        layer,
                        job.observer,
                    )
                    .await;
                    match received {
                        Err(refusal) => {
                            return refuse_download(ingest, streaming, Err(refusal)).await;
                        }
                        Ok(None) if ingest.offset() >= layer.size => break,
                        Ok(None) => Some(format!(
                            "the body ended after {} of {} bytes",
                            ingest.offset(),
                            layer.size
                        )),
                        Ok(failure) => failure,
                    }
                }
            };
            let last = interrupted.unwrap_or_default();
            if attempt >= RESUME_ATTEMPTS {
                ingest.settle().await;
                return Err(PullError::Interrupted {
                    digest: digest.clone(),
                    attempts: attempt,
                    last,
                });
            }
            tracing::debug!(%digest, attempt, offset = ingest.offset(), error = %last, "download interrupted; resuming");
            tokio::time::sleep(Duration::from_millis(100) * attempt).await;
        }
        if self.store.finish(ingest, Some(layer.size)).await? {
            job.lease.stored(digest);
        }
        job.observer.layer(LayerEvent::Done {
            digest: digest.clone(),
            cached: false,
        });
        match streaming {
            Some(stream) => {
                stream.finish().await.map_err(|reason| PullError::Unpack {
                    digest: digest.clone(),
                    reason,
                })?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Starts a download over from its first byte; a streaming unpack cannot follow, so it is
/// abandoned and the layer unpacked from the stored blob once it is whole.
async fn restart(
    ingest: &mut Ingest,
    streaming: &mut Option<StreamingUnpack>,
) -> Result<(), PullError> {
    ingest.restart().await?;
    if let Some(stream) = streaming.take() {
        stream.abandon();
    }
    Ok(())
}

/// What a blob response means for a download that asked from `offset`.
#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// The bytes from `offset` on: a whole body for 0, a partial one starting at `offset`.
    Continues,
    /// The whole blob although a range was asked for.
    Whole,
    /// 416 to a range: the download starts again from the first byte.
    Unresumable,
    /// An answer a blob download cannot use; why.
    Refused(String),
}

fn answer_to_range(response: &reqwest::Response, offset: u64) -> RangeAnswer {
    let status = response.status();
    match (offset, status) {
        (0, StatusCode::OK) => RangeAnswer::Continues,
        (0, StatusCode::RANGE_NOT_SATISFIABLE) => RangeAnswer::Refused(
            "the registry answered 416 (range not satisfiable) to a request for the whole blob"
                .to_owned(),
        ),
        (_, StatusCode::OK) => RangeAnswer::Whole,
        (_, StatusCode::RANGE_NOT_SATISFIABLE) => RangeAnswer::Unresumable,
        (_, StatusCode::PARTIAL_CONTENT) if offset > 0 => {
            let range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok());
            match range.and_then(content_range_start) {
                Some(start) if start == offset => RangeAnswer::Continues,
                Some(start) => RangeAnswer::Refused(format!(
                    "asked for the bytes from {offset}, the registry sent them from {start}"
                )),
                None => RangeAnswer::Refused(format!(
                    "the registry answered 206 without a usable Content-Range ({range:?})"
                )),
            }
        }
        _ => RangeAnswer::Refused(format!(
            "the registry answered {status} to a blob download; pane expects 200{}",
            if offset > 0 { " or 206" } else { "" }
        )),
    }
}

/// The first byte of `Content-Range: bytes <first>-<last>/<length>`.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (first, _) = range.split_once('-')?;
    first.trim().parse().ok()
}

/// Ends a download whose bytes were refused: it leaves nothing behind, not even its partial.
async fn refuse_download(
    ingest: Ingest,
    streaming: Option<StreamingUnpack>,
    refusal: Result<Option<String>, PullError>,
) -> Result<bool, PullError> {
    ingest.discard().await;
    if let Some(stream) = streaming {
        stream.abandon();
    }
    refusal.map(|_| false)
}

/// Appends a response body to the download, and hands it to the streaming unpack if there
/// is one; returns why the body stopped early, if it did. A body that would take the blob
/// past its declared size is refused before those bytes are written, and a stall or a
/// trickle is final (resuming a registry that stopped answering only waits again).
async fn receive(
    client: &RegistryClient,
    response: reqwest::Response,
    ingest: &mut Ingest,
    mut streaming: Option<&mut StreamingUnpack>,
    layer: &LayerJob,
    observer: &dyn PullObserver,
) -> Result<Option<String>, PullError> {
    let digest = &layer.digest;
    let oversized = || PullError::Oversized {
        digest: digest.clone(),
        size: layer.size,
    };
    let remaining = layer.size.saturating_sub(ingest.offset());
    if response
        .content_length()
        .is_some_and(|length| length > remaining)
    {
        return Err(oversized());
    }
    let url = response.url().to_string();
    let mut pace = client.body_pace();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let bytes = match chunk {
            Ok(bytes) => bytes,
            Err(e) if e.is_timeout() => return Err(client.request_error(&url, e).into()),
            Err(e) => return Ok(Some(e.to_string())),
        };
        // Final like a stall: resuming a registry that trickles only trickles again.
        pace.arrived(&url, bytes.len())?;
        if ingest.offset() + bytes.len() as u64 > layer.size {
            return Err(oversized());
        }
        ingest.write(&bytes).await?;
        if let Some(stream) = streaming.as_deref_mut() {
            stream.feed(&bytes).await;
        }
        observer.layer(LayerEvent::Progress {
            digest: digest.clone(),
            bytes: ingest.offset(),
        });
    }
    Ok(None)
}

/// The manifest's layers, base first, with their diff IDs from the config.
fn layer_jobs(manifest: &ImageManifest, config: &serde_json::Value) -> Vec<LayerJob> {
    manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(index, l)| LayerJob {
            index,
            digest: l.digest().to_string(),
            size: l.size(),
            urls: l.urls().clone().unwrap_or_default(),
            diff_id: config["rootfs"]["diff_ids"][index]
                .as_str()
                .map(str::to_owned),
        })
        .collect()
}

/// Every layer's diff ID, base first, when the config gives one for each.
fn all_diff_ids(layers: &[LayerJob]) -> Option<std::sync::Arc<[String]>> {
    layers
        .iter()
        .map(|l| l.diff_id.clone())
        .collect::<Option<Vec<String>>>()
        .map(Into::into)
}

/// What every step of one pull shares.
struct PullJob<'a> {
    registry: &'a str,
    repository: &'a str,
    options: &'a PullOptions,
    observer: &'a dyn PullObserver,
    /// Protects what the pull stores, and notes what it stored itself.
    lease: &'a Lease,
}

#[derive(Debug)]
struct LayerJob {
    /// Position in the manifest, base first.
    index: usize,
    digest: String,
    size: u64,
    urls: Vec<String>,
    /// From the config's `rootfs.diff_ids`, for the unpacker to verify against.
    diff_id: Option<String>,
}
