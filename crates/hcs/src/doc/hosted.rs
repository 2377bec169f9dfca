use pane_spec::Resources;
use uuid::Uuid;

use super::process::non_empty;
use super::resources::{container_memory, uvm_processor_count};
use super::{LayerRef, netbios_name, networking, storage};
use crate::schema::{Container, GuestOs, HostedSystem, MappedDirectory, SchemaVersion};

/// What the hosted container document (sent to the guest with `Create`) is built from.
#[derive(Debug, Clone)]
pub struct HostedContainerInput<'a> {
    pub hostname: &'a str,
    /// Read-only layers as the guest sees them (VSMB share paths), topmost first.
    pub layers: &'a [LayerRef],
    /// Where the guest mounted the container scratch disk (`c:\mounts\scsi\m0`).
    pub scratch_path: &'a str,
    pub resources: &'a Resources,
    pub network_namespace: Option<Uuid>,
    /// Mounts with their sources already translated to VSMB guest paths.
    pub mounts: &'a [MappedDirectory],
}

/// The `HostedSystem` document: a container inside the utility VM. It carries only fields
/// the Windows Server 2022 inbox guest agent accepts.
pub fn hosted_container(input: &HostedContainerInput<'_>) -> HostedSystem {
    let container = Container {
        guest_os: Some(GuestOs {
            host_name: Some(netbios_name(input.hostname)),
        }),
        storage: Some(storage(input.layers, input.scratch_path)),
        mapped_directories: non_empty(input.mounts.to_vec()),
        memory: container_memory(input.resources.memory),
        // Inside its own VM the container may use all of the VM's processors; a count keeps
        // the limit meaningful without a host-relative percentage.
        processor: input.resources.cpu.map(|cpu| crate::schema::Processor {
            count: Some(uvm_processor_count(Some(cpu))),
            ..crate::schema::Processor::default()
        }),
        networking: networking(input.network_namespace),
        ..Container::default()
    };
    HostedSystem {
        schema_version: Some(SchemaVersion::V2_1),
        container: Some(container),
    }
}
