use pane_spec::{Mount, Resources};
use uuid::Uuid;

use super::resources::{container_memory, container_processor};
use super::{DISPLAY_ADAPTER_CLASS_GUID, LayerRef, netbios_name, networking, storage};
use crate::schema::{
    ComputeSystem, Container, Device, GuestOs, MappedDirectory, MappedPipe, RegistryChanges,
    RegistryKey, RegistryValue, SchemaVersion,
};

const PIPE_PREFIX: &str = r"\\.\pipe\";

/// What a process-isolated container document is built from.
#[derive(Debug, Clone)]
pub struct ProcessContainerInput<'a> {
    pub owner: &'a str,
    /// The spec's host name, or the container id; cleaned to a NetBIOS name.
    pub hostname: &'a str,
    /// Read-only layers, topmost first, as HCS expects.
    pub layers: &'a [LayerRef],
    /// The activated scratch layer's volume, `\\?\Volume{…}\`.
    pub scratch_volume: &'a str,
    pub resources: &'a Resources,
    /// Logical processors on the host, for fractional CPU limits.
    pub host_processors: u32,
    pub network_namespace: Option<Uuid>,
    pub mounts: &'a [Mount],
    /// Assign the host's display adapters (DirectX) to the container.
    pub gpu: bool,
}

/// The `HcsCreateComputeSystem` document for a process-isolated container.
pub fn process_container(input: &ProcessContainerInput<'_>) -> ComputeSystem {
    let (pipes, directories): (Vec<&Mount>, Vec<&Mount>) = input
        .mounts
        .iter()
        .partition(|m| m.source.to_ascii_lowercase().starts_with(PIPE_PREFIX));
    let container = Container {
        guest_os: Some(GuestOs {
            host_name: Some(netbios_name(input.hostname)),
        }),
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
        processor: container_processor(input.resources.cpu, input.host_processors),
        networking: networking(input.network_namespace),
        registry_changes: Some(RegistryChanges {
            add_values: Some(vec![wait_to_kill_service_timeout()]),
            delete_keys: None,
        }),
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

/// hcsshim always raises the service stop timeout so Windows services in the container are
/// not killed mid-shutdown.
fn wait_to_kill_service_timeout() -> RegistryValue {
    RegistryValue {
        key: RegistryKey {
            hive: "System".to_owned(),
            name: r"ControlSet001\Control".to_owned(),
            is_volatile: None,
        },
        name: "WaitToKillServiceTimeout".to_owned(),
        kind: "String".to_owned(),
        string_value: Some(i32::MAX.to_string()),
        ..RegistryValue::default()
    }
}

pub(super) fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
