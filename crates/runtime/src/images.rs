//! The runtime's images: the verified content store, the unpacked layer store beside it,
//! pulls as a pull policy asks (one pull per reference at a time, however many creates ask
//! for it), and the layer chain a container is built over.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pane_hcs::doc::LayerRef;
use pane_oci::credentials::CredentialSource;
use pane_oci::pull::{LayerPosition, LayerSink, PullObserver, PullOptions, Puller, Quiet};
use pane_oci::registry::{RegistryClient, RegistryOptions};
use pane_oci::{ContentStore, ImageFacts, ImageRecord, StoreError};
use pane_spec::{ImageReference, OsVersion, PullPolicy};
use pane_wclayer::HostLayers;
#[cfg(not(windows))]
use pane_wclayer::LayerStore;

use crate::error::RuntimeError;

/// How images are fetched on this host.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// Chooses among an index's Windows builds.
    pub host_build: Option<OsVersion>,
    /// `host:port` of registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Docker `config.json` for credentials; `None` uses `$DOCKER_CONFIG` or the home one.
    pub docker_config: Option<PathBuf>,
    /// Layers downloaded at once.
    pub concurrency: usize,
    pub allow_foreign_layers: bool,
    /// The longest wait for a registry's next bytes. A stalled registry fails the pull, so
    /// the creates waiting on its per-image slot get the error instead of waiting forever.
    pub read_timeout: std::time::Duration,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            host_build: None,
            insecure_registries: Vec::new(),
            docker_config: None,
            concurrency: 3,
            allow_foreign_layers: false,
            read_timeout: pane_oci::registry::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// Unpacks pulled layers into the portable layer store, each checked against its diff ID.
#[cfg(not(windows))]
struct PortableLayers(LayerStore);

#[cfg(not(windows))]
impl LayerSink for PortableLayers {
    fn unpack(&self, input: &mut dyn Read, layer: &LayerPosition<'_>) -> Result<(), String> {
        if self.0.has(layer.diff_id) {
            return Ok(());
        }
        self.0
            .unpack(input, layer.diff_id)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Takes pulled layers into HCS as they download: a base layer is imported at once; a layer
/// over parents is staged (decompressed into the import folder `ImportLayer` reads), which
/// needs no parents, so it overlaps the other downloads. [`ImageService::chain`] then
/// imports the staged layers in order.
#[cfg(windows)]
struct HcsLayers(pane_wclayer::HcsLayerStore);

#[cfg(windows)]
impl LayerSink for HcsLayers {
    fn unpack(&self, input: &mut dyn Read, layer: &LayerPosition<'_>) -> Result<(), String> {
        let chain = pane_wclayer::hcs_store::chain_ids(layer.chain);
        let chain_id = chain.last().ok_or("a layer without a chain")?;
        if layer.chain.len() == 1 {
            self.0.import(input, chain_id, layer.diff_id, &[])
        } else {
            self.0.stage(input, chain_id, layer.diff_id).map(drop)
        }
        .map_err(|e| e.to_string())
    }
}

/// Unpacks a stored layer blob into the portable store, unless it is there already.
#[cfg(not(windows))]
fn unpack_blob(layers: &LayerStore, blob: &Path, diff_id: &str) -> Result<(), String> {
    if layers.has(diff_id) {
        return Ok(());
    }
    let file = std::fs::File::open(blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    layers
        .unpack(file, diff_id)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The result of the latest pull of one reference, kept so callers who were waiting for it
/// take it instead of pulling again.
struct LatestPull {
    started: Instant,
    finished: Instant,
    /// The facts, or why the pull failed: callers that were already waiting when a pull
    /// failed take its failure instead of each trying (and timing out) in turn.
    outcome: Result<ImageFacts, String>,
}

type PullSlot = Arc<tokio::sync::Mutex<Option<LatestPull>>>;

pub struct ImageService {
    content: ContentStore,
    /// Unpacked layers and, on Windows, layers imported into HCS.
    layers: HostLayers,
    settings: ImageSettings,
    pulls: Mutex<HashMap<String, PullSlot>>,
}

impl std::fmt::Debug for ImageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageService")
            .field("content", &self.content)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn store_error(e: StoreError) -> RuntimeError {
    match e {
        StoreError::NoSuchImage { reference } => RuntimeError::ImageNotFound { image: reference },
        other => RuntimeError::State {
            path: "content store".into(),
            reason: other.to_string(),
        },
    }
}

fn layer_error(e: &pane_wclayer::LayerError) -> RuntimeError {
    RuntimeError::State {
        path: "layer store".into(),
        reason: e.to_string(),
    }
}

impl ImageService {
    /// The stores under `root` (`content/` and `layers/`, as the `pane` command keeps them).
    pub fn open(root: &Path, settings: ImageSettings) -> Result<Self, RuntimeError> {
        // The root first: a layer planted under `layers/` is trusted as unpacked.
        pane_oci::store::secure_root(root).map_err(store_error)?;
        Ok(Self {
            content: ContentStore::open(&root.join("content")).map_err(store_error)?,
            layers: HostLayers::open(root).map_err(|e| layer_error(&e))?,
            settings,
            pulls: Mutex::default(),
        })
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Where a pull puts each layer as it arrives: the portable layer store, or on Windows
    /// the HCS layer store (imported or staged for import).
    pub fn layer_sink(&self) -> Arc<dyn LayerSink> {
        #[cfg(windows)]
        return Arc::new(HcsLayers(self.layers.imported.clone()));
        #[cfg(not(windows))]
        Arc::new(PortableLayers(self.layers.unpacked.clone()))
    }

    /// The image as `policy` asks: `never` takes only the local one, `if_not_present` pulls
    /// when there is none, `always` resolves the reference again. Callers asking for one
    /// reference at the same time share a pull.
    pub async fn ensure(
        &self,
        reference: &ImageReference,
        policy: PullPolicy,
        credentials: Option<CredentialSource>,
    ) -> Result<ImageFacts, RuntimeError> {
        let asked = Instant::now();
        if policy != PullPolicy::Always
            && let Some(facts) = self.local(reference).await?
        {
            return Ok(facts);
        }
        if policy == PullPolicy::Never {
            return Err(RuntimeError::ImageNotLocal {
                image: reference.to_string(),
            });
        }
        let slot = self.slot(reference);
        let mut latest = slot.lock().await;
        // A pull that started after this call asked is as fresh as one this call would make;
        // a pull that failed while this call waited for it is this call's failure too.
        if let Some(done) = latest.as_ref()
            && (done.started >= asked || (done.outcome.is_err() && done.finished >= asked))
        {
            return done
                .outcome
                .clone()
                .map_err(|reason| RuntimeError::PullFailed {
                    image: reference.to_string(),
                    reason: format!("the pull this call waited for failed: {reason}"),
                });
        }
        if policy == PullPolicy::IfNotPresent
            && let Some(facts) = self.local(reference).await?
        {
            return Ok(facts);
        }
        let started = Instant::now();
        let outcome = self.pull(reference, credentials, &Quiet).await;
        *latest = Some(LatestPull {
            started,
            finished: Instant::now(),
            outcome: outcome
                .as_ref()
                .map(Clone::clone)
                .map_err(ToString::to_string),
        });
        outcome
    }

    fn slot(&self, reference: &ImageReference) -> PullSlot {
        let mut pulls = self
            .pulls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(pulls.entry(reference.to_string()).or_default())
    }

    /// Pulls `reference` now; layers are unpacked as they arrive.
    pub async fn pull(
        &self,
        reference: &ImageReference,
        credentials: Option<CredentialSource>,
        observer: &dyn PullObserver,
    ) -> Result<ImageFacts, RuntimeError> {
        let failed = |reason: String| RuntimeError::PullFailed {
            image: reference.to_string(),
            reason,
        };
        let mut credentials = credentials.unwrap_or_else(CredentialSource::standard);
        if let Some(path) = &self.settings.docker_config
            && credentials.inline.is_none()
        {
            credentials.docker_config = Some(path.clone());
        }
        let client = RegistryClient::new(RegistryOptions {
            insecure: self.settings.insecure_registries.clone(),
            credentials,
            read_timeout: self.settings.read_timeout,
            ..RegistryOptions::default()
        })
        .map_err(|e| failed(e.to_string()))?;
        let puller = Puller::new(client, self.content.clone()).unpacking_into(self.layer_sink());
        let options = PullOptions {
            host_build: self.settings.host_build,
            concurrency: self.settings.concurrency,
            allow_foreign_layers: self.settings.allow_foreign_layers,
            ..PullOptions::default()
        };
        let record = puller
            .pull(reference, &options, observer)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let facts = self
            .content
            .image_facts(&record)
            .await
            .map_err(store_error)?;
        // A pull ends with a runnable image: on Windows the layers are imported now, in
        // chain order (each import needs its parents); elsewhere this finds them unpacked.
        self.chain(&facts).await?;
        Ok(facts)
    }

    /// The local image of `reference`, if the store has one.
    pub async fn local(
        &self,
        reference: &ImageReference,
    ) -> Result<Option<ImageFacts>, RuntimeError> {
        match self.content.image(&reference.to_string()) {
            Ok(record) => Ok(Some(
                self.content
                    .image_facts(&record)
                    .await
                    .map_err(store_error)?,
            )),
            Err(StoreError::NoSuchImage { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The stored image a container was created from, by its manifest digest, so a
    /// container keeps working after its tag moves or is removed.
    async fn record_of(
        &self,
        reference: &str,
        manifest: &str,
    ) -> Result<ImageRecord, RuntimeError> {
        let bytes = self
            .content
            .read_blob(manifest)
            .await
            .map_err(store_error)?;
        let parsed: oci_spec::image::ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| RuntimeError::State {
                path: manifest.to_owned(),
                reason: format!("the stored manifest does not parse: {e}"),
            })?;
        Ok(ImageRecord {
            reference: reference.to_owned(),
            manifest: manifest.to_owned(),
            index: None,
            config: parsed.config().digest().to_string(),
            layers: parsed
                .layers()
                .iter()
                .map(|l| l.digest().to_string())
                .collect(),
            os_version: None,
        })
    }

    /// The facts of the image a container was created from (see `record_of`).
    pub async fn facts_of(
        &self,
        reference: &str,
        manifest: &str,
    ) -> Result<ImageFacts, RuntimeError> {
        let record = self.record_of(reference, manifest).await?;
        self.content.image_facts(&record).await.map_err(store_error)
    }

    /// The image's layer folders, topmost first (the order HCS takes). Layers not yet in
    /// the host's layer store (loaded with `pane image load`, or pulled before an
    /// interrupted import) are unpacked or imported from their blobs now.
    pub async fn chain(&self, image: &ImageFacts) -> Result<Vec<LayerRef>, RuntimeError> {
        let content = self.content.clone();
        let wanted: Vec<(String, String)> = image
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.diff_id.clone()))
            .collect();
        #[cfg(windows)]
        let task = {
            let imported = self.layers.imported.clone();
            move || import_chain(&imported, &content, &wanted)
        };
        #[cfg(not(windows))]
        let task = {
            let layers = self.layers.unpacked.clone();
            move || unpack_chain(&layers, &content, &wanted)
        };
        tokio::task::spawn_blocking(task)
            .await
            .map_err(|e| RuntimeError::State {
                path: "layer store".into(),
                reason: format!("the layer task failed: {e}"),
            })?
    }

    /// Removes every image blob and unpacked layer that no image reference, no container
    /// (given as `(reference, manifest)`) and no pull in progress uses.
    pub async fn prune(
        &self,
        containers: &[(String, String)],
    ) -> Result<ImagesPruned, RuntimeError> {
        let mut keep = Vec::new();
        for (reference, manifest) in containers {
            if let Ok(record) = self.record_of(reference, manifest).await {
                keep.push(record);
            }
        }
        let pruned = self
            .content
            .prune_except(&keep)
            .await
            .map_err(store_error)?;
        // Held until the layers are gone: the layers of pulls in progress are in it, and no
        // pull can lease more meanwhile.
        let held = self.content.hold_leases().await.map_err(store_error)?;
        let leased = held.digests();
        let mut live_images: Vec<Vec<String>> = Vec::new();
        for record in held.images().iter().chain(&keep) {
            let facts = self
                .content
                .image_facts(record)
                .await
                .map_err(store_error)?;
            live_images.push(facts.layers.into_iter().map(|l| l.diff_id).collect());
        }
        let layers = self.layers.clone();
        let removed_layers =
            tokio::task::spawn_blocking(move || layers.retain(&live_images, &leased))
                .await
                .map_err(|e| RuntimeError::State {
                    path: "layer store".into(),
                    reason: format!("the prune task failed: {e}"),
                })?
                .map_err(|e| layer_error(&e))?;
        drop(held);
        Ok(ImagesPruned {
            content: pruned,
            layers: removed_layers,
        })
    }
}

/// What an image prune removed.
#[derive(Debug, Clone, Default)]
pub struct ImagesPruned {
    /// Blobs and partial downloads.
    pub content: pane_oci::store::Pruned,
    /// Unpacked (and on Windows imported) layers, by diff ID or chain ID.
    pub layers: Vec<String>,
}

/// Unpacks the image's layers the portable store does not have yet (`wanted` is
/// `(blob digest, diff ID)`, base first); returns the chain topmost first.
#[cfg(not(windows))]
fn unpack_chain(
    layers: &LayerStore,
    content: &ContentStore,
    wanted: &[(String, String)],
) -> Result<Vec<LayerRef>, RuntimeError> {
    for (digest, diff_id) in wanted {
        let blob = content.blob_path(digest).map_err(store_error)?;
        unpack_blob(layers, &blob, diff_id).map_err(|reason| RuntimeError::State {
            path: blob.display().to_string(),
            reason: format!("layer {diff_id} cannot be unpacked: {reason}"),
        })?;
    }
    let diff_ids: Vec<String> = wanted.iter().map(|(_, d)| d.clone()).collect();
    let folders = layers.chain(&diff_ids).map_err(|e| layer_error(&e))?;
    Ok(diff_ids
        .iter()
        .rev()
        .zip(folders)
        .map(|(diff_id, folder)| LayerRef {
            id: crate::plan::layer_id(diff_id),
            path: folder.display().to_string(),
        })
        .collect())
}

/// A failed import: a host call that refused it is the host's error (with its HRESULT),
/// not a fault of pane's stored blob; anything else is the blob's, fixed by a new pull.
#[cfg(windows)]
fn import_error(diff_id: &str, blob: &Path, e: pane_wclayer::LayerError) -> RuntimeError {
    match e {
        pane_wclayer::LayerError::Windows {
            call,
            path,
            hresult,
        } if matches!(
            call,
            "ImportLayer" | "ProcessBaseImage" | "ProcessUtilityImage"
        ) =>
        {
            RuntimeError::Host {
                step: format!("importing layer {diff_id}: {call}"),
                hresult: Some(hresult),
                message: format!(
                    "{} (layer folder {})",
                    pane_hcs::hresult::HResult(hresult)
                        .describe()
                        .map_or("the host refused the import", |(_, text)| text),
                    path.display()
                ),
            }
        }
        pane_wclayer::LayerError::Unavailable(why) => RuntimeError::Host {
            step: format!("importing layer {diff_id}"),
            hresult: None,
            message: format!(
                "vmcompute.dll is not usable ({why}); enable the Windows Containers feature"
            ),
        },
        other => RuntimeError::State {
            path: blob.display().to_string(),
            reason: format!("layer {diff_id} cannot be imported: {other}; pull the image again"),
        },
    }
}

/// Imports the image's layers that HCS does not have yet, base first, each over the ones
/// beneath it; returns the chain topmost first with the ids HCS gives the folders.
#[cfg(windows)]
fn import_chain(
    imported: &pane_wclayer::HcsLayerStore,
    content: &ContentStore,
    wanted: &[(String, String)],
) -> Result<Vec<LayerRef>, RuntimeError> {
    let diff_ids: Vec<String> = wanted.iter().map(|(_, d)| d.clone()).collect();
    let chain = pane_wclayer::hcs_store::chain_ids(&diff_ids);
    let mut folders: Vec<PathBuf> = Vec::with_capacity(wanted.len());
    for (index, ((digest, diff_id), chain_id)) in wanted.iter().zip(&chain).enumerate() {
        if !imported.has(chain_id) {
            let blob = content.blob_path(digest).map_err(store_error)?;
            // A layer staged during the pull is imported from its staging, not its blob.
            let input: Box<dyn std::io::Read> = if index > 0 && imported.is_staged(chain_id) {
                Box::new(std::io::empty())
            } else {
                let file = std::fs::File::open(&blob).map_err(|e| RuntimeError::State {
                    path: blob.display().to_string(),
                    reason: format!("layer {diff_id} is not downloaded: {e}; pull the image again"),
                })?;
                Box::new(std::io::BufReader::new(file))
            };
            tracing::info!(layer = %diff_id, position = index + 1, of = wanted.len(), "importing layer into HCS");
            let parents: Vec<PathBuf> = folders.iter().rev().cloned().collect();
            imported
                .import(input, chain_id, diff_id, &parents)
                .map_err(|e| import_error(diff_id, &blob, e))?;
        }
        folders.push(imported.path(chain_id).map_err(|e| layer_error(&e))?);
    }
    folders
        .iter()
        .rev()
        .map(|folder| {
            Ok(LayerRef {
                id: pane_wclayer::sys::layer_id(folder).map_err(|e| layer_error(&e))?,
                path: folder.display().to_string(),
            })
        })
        .collect()
}
