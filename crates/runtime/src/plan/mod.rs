//! `pane plan`: every step pane would take to create a container, with the exact HCS, HCN
//! and guest documents, computed without touching the host. Each document comes from the
//! builders the runtime sends from (`crate::documents`, `crate::networking`), so given the
//! same host facts a plan is byte for byte what a create sends. The steps of each isolation
//! are in `process.rs` and `hyperv.rs`, the networks' in `network.rs`.
//!
//! Values only the host can know (the scratch volume, the VM's `RuntimeId`, `NameToGuid`
//! layer ids, a network's HCN id, an endpoint's MAC) appear as `<placeholders>` or as ids
//! derived from names, unless [`HostValues`] supplies them.

use pane_gcs::messages::TimeZoneInformation;
use pane_hcs::doc::{LayerRef, SourceKind};
use pane_hcs::schema::ProcessParameters;
use pane_oci::ImageFacts;
use pane_spec::{IsolationMode, MemorySize, OsVersion, ServiceSpec};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::documents::host_files::{HostFiles, MountSource};
use crate::documents::host_path;
use crate::documents::workload::init_process;
use crate::error::RuntimeError;
use crate::gpu::{GpuAdapter, select_gpus};
use crate::id::ContainerId;
use crate::isolation::{Isolation, IsolationDecision, decide_isolation};

mod hyperv;
mod network;
mod process;

use hyperv::hyperv_steps;
use process::process_steps;

/// Stands for values only the Windows host can supply.
pub(super) const SCRATCH_VOLUME: &str = r"\\?\Volume{<scratch volume>}\";
pub(super) const VM_RUNTIME_ID: &str = "<utility VM RuntimeId>";
pub(super) const ENDPOINT_MAC: &str = "<endpoint MAC>";
pub(super) const FREE_HOST_PORT: &str = "<a free host port>";
/// Names layer ids deterministically until HCS's `NameToGuid` supplies the real ones.
const LAYER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x8a6b_3c2d_1e0f_4a5b_9c8d_7e6f_5a4b_3c2d);

/// Stands in for the id HCS knows a layer by (`NameToGuid` of its folder name, which only a
/// Windows host computes), derived from the layer's chain or diff ID.
pub(crate) fn layer_id(digest: &str) -> String {
    Uuid::new_v5(&LAYER_ID_NAMESPACE, digest.replace(':', "-").as_bytes()).to_string()
}

/// Values a plan takes from the host when it knows them; placeholders otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostValues<'a> {
    /// The image's layer folders and ids, topmost first, as the host's layer store has them.
    pub chain: Option<&'a [LayerRef]>,
    /// The volume the activated scratch layer is mounted at.
    pub scratch_volume: Option<&'a str>,
    /// The MAC address HCN gives each endpoint.
    pub endpoint_mac: Option<&'a str>,
    /// The HCN id of each network joined.
    pub network_id: Option<&'a str>,
}

/// What the plan is computed for.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub id: &'a ContainerId,
    pub spec: &'a ServiceSpec,
    pub image: &'a ImageFacts,
    /// The host's Windows build; `None` when unknown.
    pub host_build: Option<OsVersion>,
    /// Logical processors of the host, in all processor groups.
    pub host_processors: u32,
    /// The host's time zone; `None` when unknown (planning off Windows).
    pub host_time_zone: Option<&'a TimeZoneInformation>,
    /// The host's display adapters; `None` when unknown (planning off Windows).
    pub gpu_adapters: Option<&'a [GpuAdapter]>,
    /// What the mount sources and layer folders are on the host.
    pub files: &'a dyn HostFiles,
    /// pane's state directory on the Windows host.
    pub root: &'a str,
    pub owner: &'a str,
    pub host: HostValues<'a>,
    /// The CNI networks a `networks:` name may refer to; without them every name is
    /// planned as an HCN network.
    pub cni: Option<&'a crate::networking::cni::CniNetworks>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub container: String,
    pub image: String,
    pub manifest: String,
    pub image_build: Option<String>,
    pub host_build: Option<String>,
    pub isolation: IsolationDecision,
    pub gpus: Vec<GpuAdapter>,
    pub process: ProcessParameters,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

/// One call pane makes, with the document it sends.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `hcs`, `gcs`, `layers`, `files`, `network`, `hvsock`.
    pub api: &'static str,
    pub call: String,
    pub target: String,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
}

impl Step {
    pub(super) fn new(api: &'static str, call: &str, target: impl Into<String>, why: &str) -> Self {
        Self {
            api,
            call: call.to_owned(),
            target: target.into(),
            why: why.to_owned(),
            document: None,
        }
    }

    pub(super) fn with<T: Serialize>(mut self, document: &T) -> Self {
        self.document = serde_json::to_value(document).ok();
        self
    }
}

/// The chain's folders on the host, topmost first (the order HCS takes): imported layers
/// live under `wclayers\<chain ID hex>`, as the image service imports them.
fn layer_chain(input: &PlanInput<'_>) -> Vec<LayerRef> {
    if let Some(chain) = input.host.chain {
        return chain.to_vec();
    }
    let diff_ids: Vec<String> = input
        .image
        .layers
        .iter()
        .map(|l| l.diff_id.clone())
        .collect();
    pane_wclayer::hcs_store::chain_ids(&diff_ids)
        .iter()
        .rev()
        .map(|chain_id| {
            let folder = chain_id.trim_start_matches("sha256:");
            LayerRef {
                id: layer_id(chain_id),
                path: host_path(input.root, &["wclayers", folder]),
            }
        })
        .collect()
}

/// The layers' imports, base first (each skipped when already imported).
fn import_steps(layers: &[LayerRef]) -> Vec<Step> {
    layers
        .iter()
        .rev()
        .enumerate()
        .map(|(index, layer)| {
            if index == 0 {
                Step::new(
                    "layers",
                    "BackupWrite + ProcessBaseImage",
                    &layer.path,
                    "write the base layer's files in place, then build its VHDs, hives and \
                     utility VM template (skipped when already imported)",
                )
            } else {
                Step::new(
                    "layers",
                    "ImportLayer",
                    &layer.path,
                    "import the layer, staged during the pull, over the layers beneath it \
                     (skipped when already imported)",
                )
            }
        })
        .collect()
}

/// The host's answers where it has them. A plan needs no host: a mount source this
/// machine does not have (the plan is for another host) is planned as the folder its path
/// names, and the plan says so.
#[derive(Debug)]
struct Described<'a> {
    host: &'a dyn HostFiles,
    assumed: std::sync::Mutex<Vec<String>>,
}

impl HostFiles for Described<'_> {
    fn mount_source(&self, path: &str) -> Result<MountSource, String> {
        Ok(self.host.mount_source(path).unwrap_or_else(|_| {
            if let Ok(mut assumed) = self.assumed.lock() {
                assumed.push(path.to_owned());
            }
            MountSource {
                resolved: path.to_owned(),
                kind: SourceKind::Directory,
            }
        }))
    }

    fn has_utility_vm(&self, layer: &str) -> bool {
        self.host.has_utility_vm(layer)
    }
}

pub fn plan(input: &PlanInput<'_>) -> Result<Plan, RuntimeError> {
    let files = Described {
        host: input.files,
        assumed: std::sync::Mutex::default(),
    };
    let input = &PlanInput {
        files: &files,
        ..*input
    };
    let image_build = input
        .image
        .os_version
        .as_deref()
        .map(str::parse::<OsVersion>)
        .transpose()
        .map_err(|e| {
            RuntimeError::invalid(
                "image os.version",
                e.to_string(),
                "rebuild the image with a valid os.version",
            )
        })?;
    let isolation = decide_isolation(
        input.spec.isolation,
        image_build.as_ref(),
        input.host_build.as_ref(),
    );
    let process = init_process(input.spec, input.image)?;
    let mut notes: Vec<String> = input.image.platform_note.iter().cloned().collect();
    let gpus = plan_gpus(input, isolation, &mut notes)?;
    let container = input.id.to_string();
    let layers = layer_chain(input);
    let container_dir = host_path(input.root, &["containers", &container]);
    let mut steps = import_steps(&layers);
    match isolation.isolation {
        Isolation::Process => {
            process_steps(
                input,
                &layers,
                &container_dir,
                &process,
                &mut steps,
                &mut notes,
            )?;
        }
        Isolation::Hyperv => {
            hyperv_steps(
                input,
                &layers,
                &container_dir,
                &process,
                &mut steps,
                &mut notes,
            )?;
        }
    }
    let assumed = files
        .assumed
        .lock()
        .map(|assumed| assumed.clone())
        .unwrap_or_default();
    if !assumed.is_empty() {
        notes.push(format!(
            "not on this machine, so planned as the folders they name: {}",
            assumed.join(", ")
        ));
    }
    if input.host.chain.is_none() {
        notes.push(
            "layer ids are derived from folder names here; on the host HCS's NameToGuid supplies \
             them"
                .to_owned(),
        );
    }
    if input.spec.isolation == IsolationMode::Auto && input.host_build.is_none() {
        notes.push(
            "the host build is unknown; pass --host-build to plan for a specific host".to_owned(),
        );
    }
    Ok(Plan {
        container,
        image: input.image.reference.clone(),
        manifest: input.image.manifest_digest.clone(),
        image_build: input.image.os_version.clone(),
        host_build: input.host_build.map(|b| b.to_string()),
        isolation,
        gpus,
        process,
        steps,
        notes,
    })
}

fn plan_gpus(
    input: &PlanInput<'_>,
    isolation: IsolationDecision,
    notes: &mut Vec<String>,
) -> Result<Vec<GpuAdapter>, RuntimeError> {
    let Some(gpu) = &input.spec.resources.gpu else {
        return Ok(Vec::new());
    };
    if isolation.isolation == Isolation::Hyperv {
        return Err(crate::error::hyperv_gpu_refusal(isolation));
    }
    if let Some(adapters) = input.gpu_adapters {
        return Ok(select_gpus(adapters, gpu, isolation.isolation)?);
    }
    notes.push(
        "the host's GPUs are unknown; pass --gpu-adapters FILE to plan the selection".to_owned(),
    );
    Ok(Vec::new())
}

/// The scratch layer's creation, and its growth when the spec asks for more storage than
/// the 20 GiB it is created with.
pub(super) fn push_scratch(
    steps: &mut Vec<Step>,
    scratch: &str,
    why: &str,
    storage: Option<MemorySize>,
) {
    steps.push(Step::new("layers", "CreateScratchLayer", scratch, why));
    if let Some(storage) = storage {
        steps.push(Step::new(
            "layers",
            "ExpandSandboxSize",
            scratch,
            &format!("grow the scratch disk to {storage} (resources.storage)"),
        ));
    }
}
