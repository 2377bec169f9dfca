//! Builders for the documents pane gives HCS and the guest, from a validated spec.
//!
//! Field values follow hcsshim (`internal/hcsoci/hcsdoc_wcow.go`, `internal/uvm/create_wcow.go`)
//! unless a comment on the field says why pane differs.

mod hosted;
mod hostname;
mod process;
mod resources;
mod utility_vm;

use crate::schema::{Layer, Networking, Storage};

pub use hosted::{HostedContainerInput, hosted_container};
pub use hostname::netbios_name;
pub use process::{ProcessContainerInput, process_container};
pub use resources::{container_memory, container_processor, uvm_memory_mb, uvm_processor_count};
pub use utility_vm::{UtilityVmInput, gpu_partition_request, read_only_share_options, utility_vm};

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
fn networking(namespace: Option<uuid::Uuid>) -> Option<Networking> {
    namespace.map(|namespace| Networking {
        allow_unqualified_dns_query: Some(true),
        namespace: Some(namespace.to_string()),
        ..Networking::default()
    })
}

/// The owner tag pane writes when none is configured; a daemon's name replaces it.
pub const DEFAULT_OWNER: &str = "pane";
