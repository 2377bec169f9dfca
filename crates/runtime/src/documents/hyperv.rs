//! The Hyper-V documents `pane plan` shows and the runtime sends, built here and only here:
//! the utility VM, the VSMB shares and mapped pipes for the layers and mounts, the
//! container scratch on SCSI, the guest's combined layers, its cold start and the hosted
//! container, and the names HCS and the guest know them by (the utility VM's id, the
//! `SystemGUID` query). A plan is then exactly what a create sends, given the same host
//! facts.

use pane_gcs::messages::{TimeZoneInformation, UvmConfig};
use pane_gcs::settings::{CombinedLayers, GuestLayer, GuestRequest};
use pane_hcs::doc::{
    self, CpuClamp, HostedContainerInput, LayerRef, SCSI_CONTROLLERS, UtilityVmInput, VmMount,
    VmShares,
};
use pane_hcs::schema::{Attachment, ComputeSystem, HostedSystem, ModifySettingRequest};
use pane_spec::{ServiceSpec, TimeZoneMode};
use uuid::Uuid;

use super::host_files::HostFiles;
use super::{host_path, mount_error};
use crate::error::RuntimeError;
use crate::id::ContainerId;

/// The container scratch disk's LUN on the first SCSI controller (LUN 0 is the VM's own).
pub const CONTAINER_SCRATCH_LUN: i32 = 1;

/// What a Hyper-V container's documents are built from.
#[derive(Debug)]
pub struct HypervInput<'a> {
    pub owner: &'a str,
    pub spec: &'a ServiceSpec,
    /// The image's layers, topmost first.
    pub chain: &'a [LayerRef],
    /// The container's folder on the host: the VM's and the container's scratch go there.
    pub container_dir: &'a str,
    /// Logical processors on the host, in all processor groups.
    pub host_processors: u32,
    pub files: &'a dyn HostFiles,
}

/// Every document of a Hyper-V create that does not depend on the running VM.
#[derive(Debug, Clone)]
pub struct HypervDocuments {
    /// The layer whose `UtilityVM` folder is booted and whose template is the VM's scratch.
    pub uvm_layer: LayerRef,
    /// The VM's own scratch disk, a copy of `uvm_layer`'s `UtilityVM\SystemTemplate.vhdx`.
    pub vm_scratch: String,
    pub utility_vm: ComputeSystem,
    /// The spec's CPU did not fit the host; the VM got what there is.
    pub cpu_clamped: Option<CpuClamp>,
    /// The VM's processors, which the hosted container's limits are measured against.
    pub vm_processors: u32,
    /// The layers and mounts shared with the VM, and how the guest sees them.
    pub shares: VmShares,
    /// The container's scratch folder and its disk, hot-added on SCSI.
    pub container_scratch: String,
    pub container_vhdx: String,
    pub attach_scratch: ModifySettingRequest,
    /// Where the guest mounts the container scratch.
    pub guest_scratch: String,
    pub mount_scratch: GuestRequest,
    pub combine_layers: GuestRequest,
}

impl HypervDocuments {
    pub fn new(input: &HypervInput<'_>) -> Result<Self, RuntimeError> {
        let uvm_layer = utility_vm_layer(input.chain, input.files)
            .ok_or_else(|| {
                RuntimeError::invalid(
                    "image",
                    "has no layers",
                    "use a Windows base image (nanoserver, servercore)",
                )
            })?
            .clone();
        let vm_scratch = host_path(input.container_dir, &["vm", "sandbox.vhdx"]);
        let fitted = doc::uvm_processor(input.spec.resources.cpu, input.host_processors);
        let utility_vm = doc::utility_vm(&UtilityVmInput {
            owner: input.owner,
            os_files: &host_path(&uvm_layer.path, &["UtilityVM", "Files"]),
            scratch_vhdx: &vm_scratch,
            resources: &input.spec.resources,
            host_processors: input.host_processors,
        });
        let mounts = vm_mounts(input.spec, input.files)?;
        let shares = VmShares::new(input.chain, &mounts);
        let container_scratch = host_path(input.container_dir, &["scratch"]);
        let container_vhdx = host_path(&container_scratch, &["sandbox.vhdx"]);
        let guest_scratch = doc::guest_scratch_path(0);
        Ok(Self {
            vm_processors: fitted.value.count.unwrap_or(1),
            cpu_clamped: fitted.clamped,
            attach_scratch: scsi_attach(&container_vhdx, CONTAINER_SCRATCH_LUN),
            mount_scratch: GuestRequest::mount_scsi_disk(&guest_scratch, CONTAINER_SCRATCH_LUN),
            combine_layers: combine_layers(&guest_scratch, &shares.guest_layers),
            uvm_layer,
            vm_scratch,
            utility_vm,
            shares,
            container_scratch,
            container_vhdx,
            guest_scratch,
        })
    }

    /// The container inside the VM, in the network namespace given, with the DNS search
    /// domains its networks gave.
    pub fn hosted_container(
        &self,
        spec: &ServiceSpec,
        namespace: Option<Uuid>,
        dns_search: &[String],
    ) -> HostedSystem {
        doc::hosted_container(&HostedContainerInput {
            hostname: spec.hostname.as_deref(),
            layers: &self.shares.guest_layers,
            scratch_path: &self.guest_scratch,
            resources: &spec.resources,
            vm_processors: self.vm_processors,
            network_namespace: namespace,
            dns_search,
            mounts: &self.shares.guest_mounts,
            pipes: &self.shares.guest_pipes,
        })
    }
}

/// The utility VM's compute-system id, as hcsshim names it.
pub fn utility_vm_id(id: &ContainerId) -> String {
    format!("{id}@vm")
}

/// The guest property query for a hosted container's `SystemGUID` (the id the host routes
/// its hvsock traffic by).
pub fn system_guid_query() -> serde_json::Value {
    serde_json::json!({"PropertyTypes": ["SystemGUID"]})
}

/// The spec's mounts with what the host says their sources are.
fn vm_mounts(spec: &ServiceSpec, files: &dyn HostFiles) -> Result<Vec<VmMount>, RuntimeError> {
    spec.mounts
        .iter()
        .enumerate()
        .map(|(index, mount)| {
            let kind = doc::SourceKind::of(&mount.source, || {
                files.mount_source(&mount.source).map(|source| source.kind)
            })
            .map_err(|reason| mount_error(index, reason))?;
            Ok(VmMount {
                mount: mount.clone(),
                kind,
            })
        })
        .collect()
}

/// The utility VM's cold start: the time zone the guest keeps its clock in, the host's
/// unless the spec asks for UTC (hcsshim's default and its opt-out).
pub fn cold_start(spec: &ServiceSpec, host_time_zone: &TimeZoneInformation) -> UvmConfig {
    UvmConfig {
        system_type: "Container".to_owned(),
        time_zone_information: Some(match spec.time_zone {
            TimeZoneMode::Host => host_time_zone.clone(),
            TimeZoneMode::Utc => TimeZoneInformation::utc(),
        }),
    }
}

/// Hot-adds a VHDX on the first SCSI controller at `lun`.
pub fn scsi_attach(vhdx: &str, lun: i32) -> ModifySettingRequest {
    ModifySettingRequest {
        resource_path: Some(format!(
            "VirtualMachine/Devices/Scsi/{}/Attachments/{lun}",
            SCSI_CONTROLLERS[0]
        )),
        request_type: Some("Add".to_owned()),
        settings: serde_json::to_value(Attachment {
            kind: "VirtualDisk".to_owned(),
            path: vhdx.to_owned(),
            ..Attachment::default()
        })
        .ok(),
        guest_request: None,
    }
}

/// A network adapter for endpoint `endpoint`, hot-added to the VM as `nic`.
pub fn add_network_adapter(nic: Uuid, endpoint: Uuid, mac: Option<&str>) -> ModifySettingRequest {
    ModifySettingRequest {
        resource_path: Some(format!("VirtualMachine/Devices/NetworkAdapters/{nic}")),
        request_type: Some("Add".to_owned()),
        settings: Some({
            // hcsshim leaves an unknown MAC out; the schema's MacAddress is a string, not null.
            let mut settings = serde_json::json!({ "EndpointId": endpoint.to_string() });
            if let Some(mac) = mac {
                settings["MacAddress"] = mac.into();
            }
            settings
        }),
        guest_request: None,
    }
}

/// The container root in the guest: the layers over the mounted scratch. No `FilterType`:
/// Windows Server 2022 guests reject it.
pub fn combine_layers(guest_scratch: &str, guest_layers: &[LayerRef]) -> GuestRequest {
    GuestRequest::combine_layers(&CombinedLayers {
        container_root_path: guest_scratch.to_owned(),
        layers: guest_layers
            .iter()
            .map(|l| GuestLayer {
                id: Uuid::parse_str(&l.id).unwrap_or_default(),
                path: l.path.clone(),
            })
            .collect(),
        scratch_path: None,
        filter_type: None,
    })
}

/// The layer the utility VM boots from: the topmost that carries a `UtilityVM` folder (a
/// servicing layer can ship a newer utility VM, which its import prepares over a clone of
/// the parent's), else the base layer.
pub fn utility_vm_layer<'a>(chain: &'a [LayerRef], files: &dyn HostFiles) -> Option<&'a LayerRef> {
    chain
        .iter()
        .find(|layer| files.has_utility_vm(&layer.path))
        .or_else(|| chain.last())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::host_files::LocalFiles;

    #[test]
    fn the_topmost_layer_with_a_utility_vm_boots_it() {
        let dir = tempfile::tempdir().unwrap();
        let layer = |name: &str, uvm: bool| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(if uvm {
                path.join("UtilityVM")
            } else {
                path.clone()
            })
            .unwrap();
            LayerRef {
                id: name.to_owned(),
                path: path.display().to_string(),
            }
        };
        let base = layer("base", true);
        let app = layer("app", false);
        let servicing = layer("servicing", true);
        let chain = [app.clone(), servicing.clone(), base.clone()];
        let files = LocalFiles;
        assert_eq!(utility_vm_layer(&chain, &files).unwrap().id, "servicing");
        assert_eq!(
            utility_vm_layer(&[app.clone(), base], &files).unwrap().id,
            "base"
        );
        // No folder says so (a chain not on this disk): the base layer, as before.
        let missing = LayerRef {
            id: "far".into(),
            path: dir.path().join("nowhere").display().to_string(),
        };
        assert_eq!(utility_vm_layer(&[app, missing], &files).unwrap().id, "far");
        assert!(utility_vm_layer(&[], &files).is_none());
    }
}
