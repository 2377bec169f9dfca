//! The plan of a Hyper-V create, in the order the runtime takes it: the disks, the utility
//! VM booted and connected to, the layers and mounts shared with it, the network handed to
//! its guest, and the container created in it.

use pane_gcs::messages::{NULL_CONTAINER_ID, TimeZoneInformation};
use pane_gcs::settings::GuestRequest;
use pane_hcs::doc::{LayerRef, SharePurpose};
use pane_hcs::schema::ProcessParameters;
use serde_json::json;
use uuid::Uuid;

use super::network::{PlannedNetwork, plan_network};
use super::{ENDPOINT_MAC, VM_RUNTIME_ID, push_scratch};
use super::{PlanInput, Step};
use crate::documents::host_path;
use crate::documents::hyperv::{
    self, HypervDocuments, HypervInput, system_guid_query, utility_vm_id,
};
use crate::error::RuntimeError;
use crate::networking;

pub(super) fn hyperv_steps(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    container_dir: &str,
    process: &ProcessParameters,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), RuntimeError> {
    let id = input.id.to_string();
    let uvm_id = utility_vm_id(input.id);
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
    let network = plan_network(input, steps)?;
    if let Some(network) = &network {
        attach_network_in_guest(input, &uvm_id, network, steps, notes);
        if network.through_cni {
            notes.push(
                "the endpoints the CNI plugins attach to the namespace are handed to the guest the same way (PreAdd, a NIC, Add) once ADD made them".to_owned(),
            );
        }
    }
    let hosted = documents.hosted_container(input.spec, network.as_ref().map(|n| n.namespace), &[]);
    steps.push(Step::new("gcs", "Create", &id, "the container inside the VM").with(&hosted));
    steps.push(
        Step::new(
            "gcs",
            "GetProperties",
            &id,
            "the container's SystemGUID, which host hvsock traffic for it is addressed to",
        )
        .with(&system_guid_query()),
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
    let cold_start = hyperv::cold_start(input.spec, input.host_time_zone.unwrap_or(&unknown));
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
        let nic = networking::nic_id(input.owner, input.id, name);
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
            .with(&hyperv::add_network_adapter(nic, *endpoint, Some(mac))),
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
