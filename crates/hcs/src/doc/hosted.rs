use pane_spec::Resources;
use uuid::Uuid;

use super::resources::{container_memory, hosted_processor};
use super::{LayerRef, guest_os, networking, non_empty, stop_timeout_registry, storage};
use crate::schema::{Container, HostedSystem, MappedDirectory, MappedPipe, SchemaVersion};

/// What the hosted container document (sent to the guest with `Create`) is built from.
#[derive(Debug, Clone)]
pub struct HostedContainerInput<'a> {
    /// The spec's host name; the guest picks one when it gives none.
    pub hostname: Option<&'a str>,
    /// Read-only layers as the guest sees them (VSMB share paths), topmost first.
    pub layers: &'a [LayerRef],
    /// Where the guest mounted the container scratch disk (`c:\mounts\scsi\m0`).
    pub scratch_path: &'a str,
    pub resources: &'a Resources,
    /// The utility VM's processors, which the container's limits are measured against.
    pub vm_processors: u32,
    pub network_namespace: Option<Uuid>,
    /// DNS search domains (from the network's CNI result).
    pub dns_search: &'a [String],
    /// Mounts with their sources already translated to VSMB guest paths.
    pub mounts: &'a [MappedDirectory],
    /// Host pipes mapped into the VM, as the guest reaches them (`…\IPC$\<name>`).
    pub pipes: &'a [MappedPipe],
}

/// The `HostedSystem` document: a container inside the utility VM, with the fields hcsshim
/// gives a hosted container (`hcsoci/hcsdoc_wcow.go`), `RegistryChanges` included: the
/// inbox guest agent accepts it, and without it services get 5 s to stop.
pub fn hosted_container(input: &HostedContainerInput<'_>) -> HostedSystem {
    let container = Container {
        guest_os: guest_os(input.hostname),
        storage: Some(storage(input.layers, input.scratch_path)),
        mapped_directories: non_empty(input.mounts.to_vec()),
        mapped_pipes: non_empty(input.pipes.to_vec()),
        memory: container_memory(input.resources.memory),
        processor: hosted_processor(input.resources.cpu, input.vm_processors),
        networking: networking(input.network_namespace, input.dns_search),
        registry_changes: Some(stop_timeout_registry()),
        ..Container::default()
    };
    HostedSystem {
        schema_version: Some(SchemaVersion::V2_1),
        container: Some(container),
    }
}
