//! `pane plan`: every step pane would take to create a container, with the exact HCS
//! documents and guest requests, computed without touching the host.
//!
//! Values only the host can know (the scratch volume, the VM's `RuntimeId`, `NameToGuid`
//! layer ids, network ids) appear as `<placeholders>` or as ids derived from names.

use pane_gcs::messages::{NULL_CONTAINER_ID, TimeZoneInformation, UvmConfig};
use pane_gcs::settings::GuestRequest;
use pane_hcs::doc::{
    self, HostedContainerInput, LayerRef, ProcessContainerInput, UtilityVmInput, guest_scratch_path,
};
use pane_hcs::schema::{MappedDirectory, ModifySettingRequest, ProcessParameters};
use pane_oci::ImageFacts;
use pane_spec::{IsolationMode, MemorySize, OsVersion, ServiceSpec};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::RuntimeError;
use crate::gpu::{GpuAdapter, select_gpus};
use crate::hyperv_docs;
use crate::id::ContainerId;
use crate::isolation::{Isolation, IsolationDecision, decide_isolation};
use crate::process::init_process;

/// Stands for values only the Windows host can supply.
const SCRATCH_VOLUME: &str = r"\\?\Volume{<scratch volume>}\";
const VM_RUNTIME_ID: &str = "<utility VM RuntimeId>";
/// Names layer ids deterministically until HCS's `NameToGuid` supplies the real ones.
const LAYER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x8a6b_3c2d_1e0f_4a5b_9c8d_7e6f_5a4b_3c2d);

/// Stands in for the id HCS knows a layer by (`NameToGuid` of its folder name, which only a
/// Windows host computes), derived from the layer's chain or diff ID.
pub(crate) fn layer_id(digest: &str) -> String {
    Uuid::new_v5(&LAYER_ID_NAMESPACE, digest.replace(':', "-").as_bytes()).to_string()
}

/// What the plan is computed for.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub id: &'a ContainerId,
    pub spec: &'a ServiceSpec,
    pub image: &'a ImageFacts,
    /// The host's Windows build; `None` when unknown.
    pub host_build: Option<OsVersion>,
    pub host_processors: u32,
    /// The host's display adapters; `None` when unknown (planning off Windows).
    pub gpu_adapters: Option<&'a [GpuAdapter]>,
    /// pane's state directory on the Windows host.
    pub root: &'a str,
    pub owner: &'a str,
    /// Opt in to Hyper-V GPU partitioning, which Microsoft does not support for containers.
    pub experimental_gpu_pv: bool,
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
    /// `hcs`, `gcs`, `layers`, `files`, `network`.
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
                path: format!(r"{}\wclayers\{folder}", input.root),
            }
        })
        .collect()
}

pub fn plan(input: &PlanInput<'_>) -> Result<Plan, RuntimeError> {
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
    let gpus = plan_gpus(input, isolation.isolation, &mut notes)?;
    let container = input.id.to_string();
    let layers = layer_chain(input);
    let container_dir = format!(r"{}\containers\{container}", input.root);
    let mut steps: Vec<Step> = layers
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
        .collect();
    match isolation.isolation {
        Isolation::Process => {
            let gpu = input.spec.resources.gpu.is_some();
            process_steps(input, &layers, &container_dir, &process, gpu, &mut steps);
        }
        Isolation::Hyperv => {
            hyperv_steps(input, &layers, &container_dir, &process, &gpus, &mut steps);
        }
    }
    notes.push(
        "layer ids are derived from folder names here; on the host HCS's NameToGuid supplies them"
            .to_owned(),
    );
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
    isolation: Isolation,
    notes: &mut Vec<String>,
) -> Result<Vec<GpuAdapter>, RuntimeError> {
    let Some(gpu) = &input.spec.resources.gpu else {
        return Ok(Vec::new());
    };
    if isolation == Isolation::Hyperv && !input.experimental_gpu_pv {
        return Err(RuntimeError::Unsupported {
            operation: "GPUs under Hyper-V isolation",
            reason: "Windows supports GPU (DirectX) access for process-isolated containers only; \
                     use `isolation: process`, or opt in to experimental GPU partitioning with --experimental-gpu-pv"
                .to_owned(),
        });
    }
    if let Some(adapters) = input.gpu_adapters {
        return Ok(select_gpus(adapters, gpu, isolation)?);
    }
    // The policy still refuses MPS under Hyper-V even when the adapters are unknown.
    if let Err(e @ crate::gpu::GpuError::MpsUnderHyperv) = select_gpus(&[], gpu, isolation) {
        return Err(e.into());
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
    gpu: bool,
    steps: &mut Vec<Step>,
) {
    let scratch = format!(r"{container_dir}\scratch");
    let hostname = input
        .spec
        .hostname
        .clone()
        .unwrap_or_else(|| input.id.to_string());
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
    let namespace = plan_network(input, steps);
    let document = doc::process_container(&ProcessContainerInput {
        owner: input.owner,
        hostname: &hostname,
        layers,
        scratch_volume: SCRATCH_VOLUME,
        resources: &input.spec.resources,
        host_processors: input.host_processors,
        network_namespace: namespace,
        mounts: &input.spec.mounts,
        gpu,
    });
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
}

/// Network attachment needs the node's overlay; the plan names the namespace it would use.
fn plan_network(input: &PlanInput<'_>, steps: &mut Vec<Step>) -> Option<Uuid> {
    if input.spec.networks.is_empty() {
        return None;
    }
    let namespace = crate::network::namespace_id(input.id);
    steps.push(Step::new(
        "network",
        "HcnCreateNamespace",
        namespace.to_string(),
        "the container's own network compartment",
    ));
    for network in &input.spec.networks {
        steps.push(Step::new(
            "network",
            "HcnCreateEndpoint + HcnModifyNamespace",
            format!(
                "{network} / {}",
                crate::network::endpoint_id(input.id, network)
            ),
            "an endpoint on the node's network (its address from the network's IPAM), added \
             to the namespace",
        ));
    }
    Some(namespace)
}

fn hyperv_steps(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    container_dir: &str,
    process: &ProcessParameters,
    gpus: &[GpuAdapter],
    steps: &mut Vec<Step>,
) {
    let id = input.id.to_string();
    let uvm_id = format!("{id}@vm");
    boot_utility_vm(input, layers, container_dir, &uvm_id, steps);
    let (guest_layers, guest_mounts) = share_with_vm(input, layers, &uvm_id, steps);
    let guest_scratch = mount_container_root(
        container_dir,
        &uvm_id,
        &guest_layers,
        input.spec.resources.storage,
        steps,
    );
    let namespace = plan_network(input, steps);
    if let Some(namespace) = namespace {
        attach_network_in_guest(input, &uvm_id, namespace, steps);
    }
    if !gpus.is_empty() || (input.experimental_gpu_pv && input.spec.resources.gpu.is_some()) {
        let paths: Vec<String> = gpus.iter().filter_map(|g| g.device_path.clone()).collect();
        steps.push(
            Step::new(
                "hcs",
                "HcsModifyComputeSystem",
                &uvm_id,
                "EXPERIMENTAL: GPU partitioning (unsupported by Microsoft for containers)",
            )
            .with(&doc::gpu_partition_request(&paths)),
        );
    }
    let hostname = input.spec.hostname.clone().unwrap_or_else(|| id.clone());
    let hosted = doc::hosted_container(&HostedContainerInput {
        hostname: &hostname,
        layers: &guest_layers,
        scratch_path: &guest_scratch,
        resources: &input.spec.resources,
        network_namespace: namespace,
        mounts: &guest_mounts,
    });
    steps.push(Step::new("gcs", "Create", &id, "the container inside the VM").with(&hosted));
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
}

/// The VM scratch, the VM itself, the guest connection and its cold start.
fn boot_utility_vm(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    container_dir: &str,
    uvm_id: &str,
    steps: &mut Vec<Step>,
) {
    let base = layers.last().map_or_else(
        || format!(r"{}\wclayers\<base>", input.root),
        |l| l.path.clone(),
    );
    let vm_scratch = format!(r"{container_dir}\vm\sandbox.vhdx");
    steps.push(Step::new(
        "files",
        "CopyFile",
        &vm_scratch,
        r"the VM's scratch: a copy of <base>\UtilityVM\SystemTemplate.vhdx",
    ));
    steps.push(Step::new(
        "hcs",
        "HcsGrantVmAccess",
        &vm_scratch,
        "let the VM open its scratch disk",
    ));
    let com1 = format!(r"\\.\pipe\{}-uvm-{}-com1", input.owner, input.id);
    let uvm = doc::utility_vm(&UtilityVmInput {
        owner: input.owner,
        os_files: &format!(r"{base}\UtilityVM\Files"),
        scratch_vhdx: &vm_scratch,
        resources: &input.spec.resources,
        com1_pipe: Some(&com1),
    });
    steps.push(
        Step::new(
            "hcs",
            "HcsCreateComputeSystem",
            uvm_id,
            "the utility VM, booted from the base layer over VSMB",
        )
        .with(&uvm),
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
    let cold_start = UvmConfig {
        system_type: "Container".to_owned(),
        time_zone_information: Some(TimeZoneInformation::utc()),
    };
    steps.push(
        Step::new(
            "gcs",
            "Create",
            NULL_CONTAINER_ID,
            "cold start: the guest needs the time zone first (host's zone on Windows)",
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

/// Read-only layers, then mount sources, each its own VSMB share `s0`, `s1`, …; returns the
/// layers and mounts as the guest sees them.
fn share_with_vm(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    uvm_id: &str,
    steps: &mut Vec<Step>,
) -> (Vec<LayerRef>, Vec<MappedDirectory>) {
    let shares = hyperv_docs::VmShares::new(layers, &input.spec.mounts);
    for share in &shares.requests {
        let why = if share.layer {
            "share a read-only layer with the VM"
        } else {
            "share a mount source with the VM"
        };
        steps.push(Step::new("hcs", "HcsModifyComputeSystem", uvm_id, why).with(&share.request));
    }
    (shares.guest_layers, shares.guest_mounts)
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

/// The container scratch on SCSI LUN 1, mounted in the guest, with the layers combined over
/// it; returns the guest path of the container root.
fn mount_container_root(
    container_dir: &str,
    uvm_id: &str,
    guest_layers: &[LayerRef],
    storage: Option<MemorySize>,
    steps: &mut Vec<Step>,
) -> String {
    let scratch = format!(r"{container_dir}\scratch\sandbox.vhdx");
    let guest_scratch = guest_scratch_path(0);
    push_scratch(steps, &scratch, "the container's writable disk", storage);
    steps.push(Step::new(
        "hcs",
        "HcsGrantVmAccess",
        &scratch,
        "let the VM open the container scratch",
    ));
    let attach = hyperv_docs::scsi_attach(&scratch, hyperv_docs::CONTAINER_SCRATCH_LUN);
    steps.push(
        Step::new(
            "hcs",
            "HcsModifyComputeSystem",
            uvm_id,
            "hot-add the scratch on SCSI LUN 1",
        )
        .with(&attach),
    );
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "mount the scratch in the guest",
        )
        .with(&GuestRequest::mount_scsi_disk(
            &guest_scratch,
            hyperv_docs::CONTAINER_SCRATCH_LUN,
        )),
    );
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "the container root: layers over the scratch (no FilterType: WS2022 guests reject it)",
        )
        .with(&hyperv_docs::combine_layers(&guest_scratch, guest_layers)),
    );
    guest_scratch
}

/// hcsshim's order: the namespace in the guest, then per endpoint `PreAdd`, NIC, `Add`.
fn attach_network_in_guest(
    input: &PlanInput<'_>,
    uvm_id: &str,
    namespace: Uuid,
    steps: &mut Vec<Step>,
) {
    steps.push(
        Step::new(
            "gcs",
            "ModifySettings",
            NULL_CONTAINER_ID,
            "add the network namespace in the guest",
        )
        .with(&GuestRequest::add_network_namespace(
            json!({"ID": namespace.to_string()}),
        )),
    );
    for network in &input.spec.networks {
        let nic = crate::network::nic_id(input.id, network);
        let endpoint = crate::network::endpoint_id(input.id, network).to_string();
        steps.push(
            Step::new(
                "gcs",
                "ModifySettings",
                NULL_CONTAINER_ID,
                "per endpoint: hand the guest the endpoint",
            )
            .with(&GuestRequest::network_pre_add(nic, json!({"ID": endpoint}))),
        );
        let add_nic = ModifySettingRequest {
            resource_path: Some(format!("VirtualMachine/Devices/NetworkAdapters/{nic}")),
            request_type: Some("Add".to_owned()),
            settings: Some(json!({"EndpointId": endpoint, "MacAddress": "<endpoint MAC>"})),
            guest_request: None,
        };
        steps.push(
            Step::new(
                "hcs",
                "HcsModifyComputeSystem",
                uvm_id,
                "per endpoint: hot-add the NIC",
            )
            .with(&add_nic),
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
