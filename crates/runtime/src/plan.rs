//! `pane plan`: every step pane would take to create a container, with the exact HCS, HCN
//! and guest documents, computed without touching the host. Each document comes from the
//! builders the runtime sends from (`process_docs`, `hyperv_docs`, `network`), so given the
//! same host facts a plan is byte for byte what a create sends.
//!
//! Values only the host can know (the scratch volume, the VM's `RuntimeId`, `NameToGuid`
//! layer ids, a network's HCN id, an endpoint's MAC) appear as `<placeholders>` or as ids
//! derived from names, unless [`HostValues`] supplies them.

use pane_gcs::messages::{NULL_CONTAINER_ID, TimeZoneInformation};
use pane_gcs::settings::GuestRequest;
use pane_hcs::doc::{LayerRef, SharePurpose, SourceKind};
use pane_hcs::schema::ProcessParameters;
use pane_oci::ImageFacts;
use pane_spec::{IsolationMode, MemorySize, OsVersion, ServiceSpec};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend::PublishedPort;
use crate::error::RuntimeError;
use crate::gpu::{GpuAdapter, select_gpus};
use crate::host_files::{HostFiles, MountSource};
use crate::hyperv_docs::{self, HypervDocuments, HypervInput};
use crate::id::ContainerId;
use crate::isolation::{Isolation, IsolationDecision, decide_isolation};
use crate::network;
use crate::process::init_process;
use crate::process_docs::{ProcessDocumentInput, host_path, process_document};

/// Stands for values only the Windows host can supply.
const SCRATCH_VOLUME: &str = r"\\?\Volume{<scratch volume>}\";
const VM_RUNTIME_ID: &str = "<utility VM RuntimeId>";
const ENDPOINT_MAC: &str = "<endpoint MAC>";
const FREE_HOST_PORT: &str = "<a free host port>";
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
    fn new(api: &'static str, call: &str, target: impl Into<String>, why: &str) -> Self {
        Self {
            api,
            call: call.to_owned(),
            target: target.into(),
            why: why.to_owned(),
            document: None,
        }
    }

    fn with<T: Serialize>(mut self, document: &T) -> Self {
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
        return Err(crate::gpu::hyperv_gpu_refusal(isolation));
    }
    if let Some(adapters) = input.gpu_adapters {
        return Ok(select_gpus(adapters, gpu, isolation.isolation)?);
    }
    notes.push(
        "the host's GPUs are unknown; pass --gpu-adapters FILE to plan the selection".to_owned(),
    );
    Ok(Vec::new())
}

fn process_steps(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    container_dir: &str,
    process: &ProcessParameters,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), RuntimeError> {
    let scratch = host_path(container_dir, &["scratch"]);
    push_scratch(
        steps,
        &scratch,
        "the container's writable layer over the image chain",
        input.spec.resources.storage,
    );
    steps.push(Step::new(
        "layers",
        "ActivateLayer + PrepareLayer",
        &scratch,
        "mount the scratch over its parents (parents are never activated)",
    ));
    let network = plan_network(input, steps);
    let (document, clamped) = process_document(&ProcessDocumentInput {
        owner: input.owner,
        spec: input.spec,
        chain: layers,
        scratch_volume: input.host.scratch_volume.unwrap_or(SCRATCH_VOLUME),
        host_processors: input.host_processors,
        network_namespace: network.as_ref().map(|n| n.namespace),
        files: input.files,
    })?;
    notes.extend(clamped.map(|clamp| clamp.to_string()));
    let id = input.id.to_string();
    steps.push(
        Step::new(
            "hcs",
            "HcsCreateComputeSystem",
            &id,
            "the process-isolated container",
        )
        .with(&document),
    );
    steps.push(Step::new(
        "hcs",
        "HcsStartComputeSystem",
        &id,
        "start the silo",
    ));
    steps.push(
        Step::new(
            "hcs",
            "HcsCreateProcess",
            &id,
            "launch the workload with stdout/stderr captured",
        )
        .with(process),
    );
    steps.push(Step::new(
        "hcs",
        "HcsSetProcessCallback",
        &id,
        "the workload's exit is the container's exit code",
    ));
    Ok(())
}

/// The network objects a plan names, and the documents HCN is sent for them.
struct PlannedNetwork {
    namespace: Uuid,
    namespace_request: pane_net::HostComputeNamespace,
    /// Per network joined: its name, the endpoint's id and the endpoint asked for.
    endpoints: Vec<(String, Uuid, Value)>,
}

/// The spec's ports as they are published: a port the spec leaves to the host is chosen
/// at create time.
fn planned_ports(ports: &[pane_spec::PortMapping]) -> Vec<PublishedPort> {
    ports
        .iter()
        .map(|port| PublishedPort {
            container_port: port.container_port,
            host_port: port.host_port.unwrap_or(0),
            protocol: port.protocol,
        })
        .collect()
}

/// The HCN namespace and, per network, an endpoint added to it, in full.
fn plan_network(input: &PlanInput<'_>, steps: &mut Vec<Step>) -> Option<PlannedNetwork> {
    if input.spec.networks.is_empty() {
        return None;
    }
    let namespace = network::namespace_id(input.id);
    let namespace_request = network::namespace_request(namespace);
    steps.push(
        Step::new(
            "network",
            "HcnCreateNamespace",
            namespace.to_string(),
            "the container's own network compartment",
        )
        .with(&namespace_request),
    );
    let published = planned_ports(&input.spec.ports);
    let mut endpoints = Vec::new();
    for (index, name) in input.spec.networks.iter().enumerate() {
        let endpoint = network::endpoint_id(input.id, name);
        let network_id = input
            .host
            .network_id
            .map_or_else(|| format!("<HCN id of network {name}>"), str::to_owned);
        // The spec's ports are published through the first network's endpoint.
        let ports: &[PublishedPort] = if index == 0 { &published } else { &[] };
        let mut request =
            serde_json::to_value(network::endpoint_request(endpoint, &network_id, ports))
                .unwrap_or_default();
        mark_free_ports(&mut request, ports);
        steps.push(
            Step::new(
                "network",
                "HcnCreateEndpoint",
                format!("{name} / {endpoint}"),
                "an endpoint on the node's network (its address from the network's IPAM)",
            )
            .with(&request),
        );
        steps.push(
            Step::new(
                "network",
                "HcnModifyNamespace",
                namespace.to_string(),
                "add the endpoint to the namespace",
            )
            .with(&pane_net::ModifyNamespaceSettingRequest::add_endpoint(
                endpoint,
            )),
        );
        endpoints.push((name.clone(), endpoint, request));
    }
    Some(PlannedNetwork {
        namespace,
        namespace_request,
        endpoints,
    })
}

/// A port mapping whose host port is picked at create time says so.
fn mark_free_ports(endpoint: &mut Value, ports: &[PublishedPort]) {
    let Some(policies) = endpoint.get_mut("Policies").and_then(Value::as_array_mut) else {
        return;
    };
    for (policy, port) in policies.iter_mut().zip(ports) {
        if port.host_port == 0 {
            policy["Settings"]["ExternalPort"] = json!(FREE_HOST_PORT);
        }
    }
}

fn hyperv_steps(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    container_dir: &str,
    process: &ProcessParameters,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), RuntimeError> {
    let id = input.id.to_string();
    let uvm_id = crate::hyperv::utility_vm_id(input.id);
    let documents = HypervDocuments::new(&HypervInput {
        owner: input.owner,
        spec: input.spec,
        chain: layers,
        container_dir,
        host_processors: input.host_processors,
        files: input.files,
    })?;
    notes.extend(documents.cpu_clamped.map(|clamp| clamp.to_string()));
    prepare_disks(input, &documents, &uvm_id, steps);
    boot_utility_vm(input, &documents, &uvm_id, steps, notes);
    for share in &documents.shares.requests {
        let why = match share.purpose {
            SharePurpose::Layer => "share a read-only layer with the VM",
            SharePurpose::Mount => "share a mount source with the VM",
            SharePurpose::Pipe => "map a host pipe into the VM (the container opens it via IPC$)",
        };
        steps.push(Step::new("hcs", "HcsModifyComputeSystem", &uvm_id, why).with(&share.request));
    }
    steps.push(
        Step::new(
            "hcs",
            "HcsModifyComputeSystem",
            &uvm_id,
            "hot-add the container scratch on SCSI LUN 1",
        )
        .with(&documents.attach_scratch),
    );
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "mount the scratch in the guest",
        )
        .with(&documents.mount_scratch),
    );
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "the container root: layers over the scratch (no FilterType: WS2022 guests reject it)",
        )
        .with(&documents.combine_layers),
    );
    let network = plan_network(input, steps);
    if let Some(network) = &network {
        attach_network_in_guest(input, &uvm_id, network, steps, notes);
    }
    let hosted = documents.hosted_container(input.spec, network.as_ref().map(|n| n.namespace));
    steps.push(Step::new("gcs", "Create", &id, "the container inside the VM").with(&hosted));
    steps.push(
        Step::new(
            "gcs",
            "GetProperties",
            &id,
            "the container's SystemGUID, which host hvsock traffic for it is addressed to",
        )
        .with(&crate::hyperv::system_guid_query()),
    );
    steps.push(Step::new(
        "hvsock",
        "IOCTL_HVSOCKET_UPDATE_ADDRESS_INFO",
        r"\\.\HvSocketSystem\AddressInfo\{<SystemGUID>}",
        "route host hvsock traffic for the container into the VM (gMSA and other \
         container-host services), while pane holds the handle",
    ));
    steps.push(Step::new("gcs", "Start", &id, "start it"));
    steps.push(
        Step::new(
            "gcs",
            "ExecuteProcess",
            &id,
            "launch the workload; stdout/stderr relayed over hvsock ports 0x40000001…",
        )
        .with(process),
    );
    steps.push(
        Step::new(
            "gcs",
            "WaitForProcess",
            &id,
            "kept outstanding: the workload's exit is the container's exit code",
        )
        .with(&json!({"TimeoutInMs": u32::MAX})),
    );
    Ok(())
}

/// The container scratch and the VM's own, each opened to the VM, in the runtime's order.
fn prepare_disks(
    input: &PlanInput<'_>,
    documents: &HypervDocuments,
    uvm_id: &str,
    steps: &mut Vec<Step>,
) {
    push_scratch(
        steps,
        &documents.container_scratch,
        "the container's writable disk",
        input.spec.resources.storage,
    );
    let template = host_path(
        &documents.uvm_layer.path,
        &["UtilityVM", "SystemTemplate.vhdx"],
    );
    steps.push(Step::new(
        "files",
        "CopyFile",
        &documents.vm_scratch,
        &format!("the VM's scratch: a copy of {template}"),
    ));
    for (disk, why) in [
        (&documents.vm_scratch, "let the VM open its scratch disk"),
        (
            &documents.container_vhdx,
            "let the VM open the container scratch",
        ),
    ] {
        steps.push(Step::new(
            "hcs",
            "HcsGrantVmAccess",
            disk,
            &format!("{why} ({uvm_id})"),
        ));
    }
}

/// The VM itself, the guest connection and its cold start.
fn boot_utility_vm(
    input: &PlanInput<'_>,
    documents: &HypervDocuments,
    uvm_id: &str,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) {
    steps.push(
        Step::new(
            "hcs",
            "HcsCreateComputeSystem",
            uvm_id,
            "the utility VM, booted over VSMB from the topmost layer with a UtilityVM folder",
        )
        .with(&documents.utility_vm),
    );
    steps.push(Step::new(
        "hcs",
        "HcsGetComputeSystemProperties",
        uvm_id,
        "read RuntimeId: the hvsock VM id (never assumed equal to the system id)",
    ));
    steps.push(Step::new(
        "gcs",
        "listen hvsock",
        format!("{VM_RUNTIME_ID} / acef5661-84a1-4e44-856b-6245e69f4620"),
        "the guest agent dials the host; listen before starting the VM",
    ));
    steps.push(Step::new(
        "hcs",
        "HcsStartComputeSystem",
        uvm_id,
        "boot the VM; accept the guest within 120 s",
    ));
    steps.push(
        Step::new(
            "gcs",
            "NegotiateProtocol",
            NULL_CONTAINER_ID,
            "protocol version 4 only",
        )
        .with(&json!({"MinimumVersion": 4, "MaximumVersion": 4})),
    );
    let unknown = TimeZoneInformation {
        standard_name: "<host time zone>".to_owned(),
        daylight_name: "<host time zone>".to_owned(),
        ..TimeZoneInformation::default()
    };
    if input.host_time_zone.is_none() && input.spec.time_zone == pane_spec::TimeZoneMode::Host {
        notes.push(
            "the utility VM takes the host's time zone, unknown off Windows; `time_zone: utc` \
             in the spec gives it UTC"
                .to_owned(),
        );
    }
    let cold_start = hyperv_docs::cold_start(input.spec, input.host_time_zone.unwrap_or(&unknown));
    steps.push(
        Step::new(
            "gcs",
            "Create",
            NULL_CONTAINER_ID,
            "cold start: the guest's time zone (the host's unless the spec says utc)",
        )
        .with(&cold_start),
    );
    steps.push(Step::new("gcs", "Start", NULL_CONTAINER_ID, "cold start"));
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "tell the guest its hvsock addresses",
        )
        .with(&GuestRequest::hv_socket_update(Uuid::nil())),
    );
}

/// The scratch layer's creation, and its growth when the spec asks for more storage than
/// the 20 GiB it is created with.
fn push_scratch(steps: &mut Vec<Step>, scratch: &str, why: &str, storage: Option<MemorySize>) {
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

/// hcsshim's order: the namespace in the guest, then per endpoint `PreAdd`, NIC, `Add`.
fn attach_network_in_guest(
    input: &PlanInput<'_>,
    uvm_id: &str,
    network: &PlannedNetwork,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) {
    notes.push(
        "the guest is handed the namespace and endpoints as HCN returns them; the plan shows \
         the documents HCN is asked for"
            .to_owned(),
    );
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "add the network namespace in the guest (when the guest supports it)",
        )
        .with(&GuestRequest::add_network_namespace(
            serde_json::to_value(&network.namespace_request).unwrap_or_default(),
        )),
    );
    for (name, endpoint, request) in &network.endpoints {
        let nic = network::nic_id(input.id, name);
        steps.push(
            Step::new(
                "gcs",
                "ModifySettings",
                NULL_CONTAINER_ID,
                "per endpoint: hand the guest the endpoint",
            )
            .with(&GuestRequest::network_pre_add(nic, request.clone())),
        );
        let mac = input.host.endpoint_mac.unwrap_or(ENDPOINT_MAC);
        steps.push(
            Step::new(
                "hcs",
                "HcsModifyComputeSystem",
                uvm_id,
                "per endpoint: hot-add the NIC",
            )
            .with(&hyperv_docs::add_network_adapter(nic, *endpoint, Some(mac))),
        );
        steps.push(
            Step::new(
                "gcs",
                "ModifySettings",
                NULL_CONTAINER_ID,
                "per endpoint: bring the adapter up",
            )
            .with(&GuestRequest::network_add(nic)),
        );
    }
}
