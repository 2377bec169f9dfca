use pane_spec::{Mount, Resources};
use uuid::Uuid;

use super::resources::{container_memory, container_processor};
use super::{
    DISPLAY_ADAPTER_CLASS_GUID, LayerRef, PIPE_PREFIX, guest_os, is_pipe, networking, non_empty,
    stop_timeout_registry, storage,
};
use crate::schema::{ComputeSystem, Container, Device, MappedDirectory, MappedPipe, SchemaVersion};

/// What a process-isolated container document is built from.
#[derive(Debug, Clone)]
pub struct ProcessContainerInput<'a> {
    pub owner: &'a str,
    /// The spec's host name; HCS picks one when it gives none.
    pub hostname: Option<&'a str>,
    /// Read-only layers, topmost first, as HCS expects.
    pub layers: &'a [LayerRef],
    /// The activated scratch layer's volume, `\\?\Volume{…}\`.
    pub scratch_volume: &'a str,
    pub resources: &'a Resources,
    /// Logical processors on the host, in all processor groups.
    pub host_processors: u32,
    pub network_namespace: Option<Uuid>,
    /// DNS search domains (from the network's CNI result); HCS takes them as one
    /// comma-joined string.
    pub dns_search: &'a [String],
    /// The spec's mounts, their file and folder sources already resolved through links:
    /// HCS mis-resolves a mapped file whose path holds a link, so hcsshim resolves them.
    pub mounts: &'a [Mount],
    /// Assign the host's display adapters (DirectX) to the container.
    pub gpu: bool,
}

/// The `HcsCreateComputeSystem` document for a process-isolated container.
pub fn process_container(input: &ProcessContainerInput<'_>) -> ComputeSystem {
    let (pipes, directories): (Vec<&Mount>, Vec<&Mount>) =
        input.mounts.iter().partition(|m| is_pipe(&m.source));
    let container = Container {
        guest_os: guest_os(input.hostname),
        storage: Some(storage(input.layers, input.scratch_volume)),
        mapped_directories: non_empty(
            directories
                .iter()
                .map(|m| MappedDirectory {
                    host_path: m.source.clone(),
                    host_path_type: None,
                    container_path: m.target.clone(),
                    read_only: m.read_only.then_some(true),
                })
                .collect(),
        ),
        mapped_pipes: non_empty(
            pipes
                .iter()
                .map(|m| MappedPipe {
                    container_pipe_name: m
                        .target
                        .get(PIPE_PREFIX.len()..)
                        .unwrap_or_default()
                        .to_owned(),
                    host_path: m.source.clone(),
                    host_path_type: None,
                })
                .collect(),
        ),
        memory: container_memory(input.resources.memory),
        processor: container_processor(input.resources.cpu, input.host_processors).value,
        networking: networking(input.network_namespace, input.dns_search),
        registry_changes: Some(stop_timeout_registry()),
        assigned_devices: input.gpu.then(|| {
            // Process isolation can only assign the whole interface class: the container sees
            // every display adapter of the host, whichever the GPU selection picked.
            vec![Device {
                kind: Some("ClassGuid".to_owned()),
                interface_class_guid: Some(DISPLAY_ADAPTER_CLASS_GUID.to_owned()),
                location_path: None,
            }]
        }),
        additional_device_namespace: None,
    };
    ComputeSystem {
        owner: Some(input.owner.to_owned()),
        schema_version: Some(SchemaVersion::V2_1),
        container: Some(container),
        // hcsshim sets ShouldTerminateOnLastHandleClosed; pane leaves it unset so containers
        // outlive the `pane` process that created them and are adopted after a restart.
        ..ComputeSystem::default()
    }
}
