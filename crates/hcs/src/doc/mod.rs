//! Builders for the documents pane gives HCS and the guest, from a validated spec.
//!
//! Field values follow hcsshim (`internal/hcsoci/hcsdoc_wcow.go`, `internal/uvm/create_wcow.go`)
//! unless a comment on the field says why pane differs.

mod hosted;
mod process;
mod resources;
mod utility_vm;
mod vm_shares;

use crate::schema::{
    GuestOs, Layer, Networking, RegistryChanges, RegistryKey, RegistryValue, Storage,
};

pub use hosted::{HostedContainerInput, hosted_container};
pub use process::{ProcessContainerInput, process_container};
pub use resources::{
    CpuClamp, Fitted, container_memory, container_processor, hosted_processor, uvm_memory_mb,
    uvm_processor,
};
pub use utility_vm::{UtilityVmInput, read_only_share_options, utility_vm};
pub use vm_shares::{
    SharePurpose, SourceKind, VSMB_GUEST_ROOT, VmMount, VmRequest, VmShares, vsmb_guest_path,
};

/// Where a named pipe's path starts, on the host and in a container.
pub const PIPE_PREFIX: &str = r"\\.\pipe\";

/// Whether `path` names a named pipe (`\\.\pipe\NAME`) rather than a file or folder.
pub fn is_pipe(path: &str) -> bool {
    path.get(..PIPE_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PIPE_PREFIX))
}

/// `GUID_DEVINTERFACE_DISPLAY_ADAPTER`: assigning this interface class gives a process-isolated
/// container the host's GPUs for DirectX (what `docker run --device class/…` does).
pub const DISPLAY_ADAPTER_CLASS_GUID: &str = "5B45201D-F2F2-4F3B-85BB-30FF1F953599";
/// SCSI controller keys: v5 GUIDs of "0".."3" in hcsshim's namespace.
pub const SCSI_CONTROLLERS: [&str; 4] = [
    "df6d0690-79e5-55b6-a5ec-c1e2f77f580a",
    "0110f83b-de10-5172-a266-78bca56bf50a",
    "b5d2d8d4-3a75-51bf-945b-3444dc6b8579",
    "305891a9-b251-5dfe-91a2-c25d9212275b",
];
/// Where the guest mounts the container scratch disk that is hot-added as SCSI LUN n+1.
pub fn guest_scratch_path(index: u32) -> String {
    format!(r"c:\mounts\scsi\m{index}")
}

/// A read-only layer as HCS names it: its `NameToGuid` id and its folder (or guest path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub id: String,
    pub path: String,
}

/// Read-only layers (topmost first) over the scratch at `path`.
fn storage(layers: &[LayerRef], path: &str) -> Storage {
    Storage {
        layers: Some(
            layers
                .iter()
                .map(|l| Layer {
                    id: l.id.clone(),
                    path: l.path.clone(),
                    ..Layer::default()
                })
                .collect(),
        ),
        path: Some(path.to_owned()),
        qos: None,
    }
}

/// The container joins the HCN namespace; unqualified DNS names resolve, as with Docker.
/// The container's networking: its namespace, and the DNS search domains its networks
/// gave (HCS takes them as one comma-joined string).
fn networking(namespace: Option<uuid::Uuid>, dns_search: &[String]) -> Option<Networking> {
    namespace.map(|namespace| Networking {
        allow_unqualified_dns_query: Some(true),
        namespace: Some(namespace.to_string()),
        dns_search_list: (!dns_search.is_empty()).then(|| dns_search.join(",")),
        ..Networking::default()
    })
}

/// The host name is set only when the spec gives one (validated there), and then as given,
/// as hcsshim does; otherwise Windows names the container itself.
fn guest_os(hostname: Option<&str>) -> Option<GuestOs> {
    hostname.map(|name| GuestOs {
        host_name: Some(name.to_owned()),
    })
}

/// hcsshim raises the service stop timeout in every container, process-isolated or hosted,
/// so a graceful stop lets Windows services (servercore's) take pane's stop timeout instead
/// of the default 5 seconds.
fn stop_timeout_registry() -> RegistryChanges {
    RegistryChanges {
        add_values: Some(vec![RegistryValue {
            key: RegistryKey {
                hive: "System".to_owned(),
                name: r"ControlSet001\Control".to_owned(),
                is_volatile: None,
            },
            name: "WaitToKillServiceTimeout".to_owned(),
            kind: "String".to_owned(),
            string_value: Some(i32::MAX.to_string()),
            ..RegistryValue::default()
        }]),
        delete_keys: None,
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// The owner tag pane writes when none is configured; a daemon's name replaces it.
pub const DEFAULT_OWNER: &str = "pane";
