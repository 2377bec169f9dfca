//! Guest modify requests: what the host asks the guest to set up inside the utility VM.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The WCOW guest agent's hvsock id for its parent (the host), sent as `ParentAddress`.
pub const WINDOWS_GCS_HV_HOST_ID: Uuid = Uuid::from_u128(0x894c_c2d6_9d79_424f_93fe_4296_9ae6_d8d1);
/// Where the guest sees VSMB shares: defined with the shares themselves, in `pane-hcs`.
pub use pane_hcs::doc::{VSMB_GUEST_ROOT, vsmb_guest_path};

/// `{ResourceType, RequestType, Settings}`: the `GuestRequest` half of a modify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GuestRequest {
    pub resource_type: ResourceType,
    pub request_type: RequestType,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    MappedDirectory,
    MappedVirtualDisk,
    CombinedLayers,
    Network,
    NetworkNamespace,
    HvSocket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestType {
    Add,
    Remove,
    Update,
    PreAdd,
}

/// `HvSocket` Update: tells the guest its own hvsock address and the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HvSocketAddress {
    pub local_address: Uuid,
    pub parent_address: Uuid,
}

/// A SCSI disk the guest mounts at `ContainerPath` (the container scratch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappedVirtualDisk {
    pub container_path: String,
    pub lun: i32,
}

/// The container's root filesystem: read-only layers (VSMB shares) over the mounted scratch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CombinedLayers {
    pub container_root_path: String,
    pub layers: Vec<GuestLayer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_path: Option<String>,
    /// Left out for WCIFS: the Windows Server 2022 guest rejects the field (hcsshim#2714).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GuestLayer {
    pub id: Uuid,
    pub path: String,
}

/// `Network` PreAdd/Add/Remove of one endpoint; `Settings` is the HCN endpoint document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkModifyRequest {
    pub adapter_id: Uuid,
    pub request_type: RequestType,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

impl GuestRequest {
    fn new<T: Serialize>(
        resource_type: ResourceType,
        request_type: RequestType,
        settings: &T,
    ) -> Self {
        Self {
            resource_type,
            request_type,
            // Serialising these plain structs cannot fail; a failure would be a bug here.
            settings: serde_json::to_value(settings).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Step one after the guest connects: tell it the hvsock addresses.
    pub fn hv_socket_update(vm_runtime_id: Uuid) -> Self {
        Self::new(
            ResourceType::HvSocket,
            RequestType::Update,
            &HvSocketAddress {
                local_address: vm_runtime_id,
                parent_address: WINDOWS_GCS_HV_HOST_ID,
            },
        )
    }

    /// Mount the SCSI disk at `lun` in the guest at `c:\mounts\scsi\m<index>`.
    pub fn mount_scsi_disk(container_path: impl Into<String>, lun: i32) -> Self {
        Self::new(
            ResourceType::MappedVirtualDisk,
            RequestType::Add,
            &MappedVirtualDisk {
                container_path: container_path.into(),
                lun,
            },
        )
    }

    pub fn unmount_scsi_disk(container_path: impl Into<String>, lun: i32) -> Self {
        Self::new(
            ResourceType::MappedVirtualDisk,
            RequestType::Remove,
            &MappedVirtualDisk {
                container_path: container_path.into(),
                lun,
            },
        )
    }

    pub fn combine_layers(layers: &CombinedLayers) -> Self {
        Self::new(ResourceType::CombinedLayers, RequestType::Add, layers)
    }

    pub fn remove_combined_layers(container_root_path: impl Into<String>) -> Self {
        let layers = CombinedLayers {
            container_root_path: container_root_path.into(),
            layers: Vec::new(),
            scratch_path: None,
            filter_type: None,
        };
        Self::new(ResourceType::CombinedLayers, RequestType::Remove, &layers)
    }

    /// Add an HCN namespace (its `HostComputeNamespace` JSON) to the guest.
    pub fn add_network_namespace(namespace: serde_json::Value) -> Self {
        Self {
            resource_type: ResourceType::NetworkNamespace,
            request_type: RequestType::Add,
            settings: namespace,
        }
    }

    /// Per endpoint, before the NIC is hot-added to the VM: hand the guest the endpoint.
    /// The outer request is an `Add`; the step is named inside, as hcsshim sends it.
    pub fn network_pre_add(adapter_id: Uuid, endpoint: serde_json::Value) -> Self {
        Self::network(RequestType::PreAdd, adapter_id, endpoint)
    }

    /// Per endpoint, once the NIC is hot-added to the VM: bring the adapter up.
    pub fn network_add(adapter_id: Uuid) -> Self {
        Self::network(RequestType::Add, adapter_id, serde_json::Value::Null)
    }

    fn network(step: RequestType, adapter_id: Uuid, endpoint: serde_json::Value) -> Self {
        Self::new(
            ResourceType::Network,
            RequestType::Add,
            &NetworkModifyRequest {
                adapter_id,
                request_type: step,
                settings: endpoint,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hv_socket_update_names_the_host_id() {
        let vm = Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
        assert_eq!(
            serde_json::to_value(GuestRequest::hv_socket_update(vm)).unwrap(),
            serde_json::json!({
                "ResourceType": "HvSocket",
                "RequestType": "Update",
                "Settings": {
                    "LocalAddress": "11111111-2222-3333-4444-555555555555",
                    "ParentAddress": "894cc2d6-9d79-424f-93fe-42969ae6d8d1"
                }
            })
        );
    }

    #[test]
    fn combined_layers_leave_out_filter_type_and_scratch() {
        let layer = Uuid::parse_str("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").unwrap();
        let request = GuestRequest::combine_layers(&CombinedLayers {
            container_root_path: r"c:\mounts\scsi\m0".into(),
            layers: vec![GuestLayer {
                id: layer,
                path: vsmb_guest_path("s0"),
            }],
            scratch_path: None,
            filter_type: None,
        });
        assert_eq!(
            serde_json::to_value(request).unwrap(),
            serde_json::json!({
                "ResourceType": "CombinedLayers",
                "RequestType": "Add",
                "Settings": {
                    "ContainerRootPath": "c:\\mounts\\scsi\\m0",
                    "Layers": [{
                        "Id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                        "Path": "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\s0"
                    }]
                }
            })
        );
    }

    #[test]
    fn network_steps_are_named_inside_an_add_as_hcsshim_sends_them() {
        let adapter = Uuid::parse_str("12345678-0000-0000-0000-000000000001").unwrap();
        let json = serde_json::to_value(GuestRequest::network_pre_add(
            adapter,
            serde_json::json!({"ID": "ep"}),
        ))
        .unwrap();
        assert_eq!(json["ResourceType"], "Network");
        assert_eq!(json["RequestType"], "Add");
        assert_eq!(json["Settings"]["RequestType"], "PreAdd");
        assert_eq!(json["Settings"]["AdapterId"], adapter.to_string());
        assert_eq!(json["Settings"]["Settings"]["ID"], "ep");
        let add = serde_json::to_value(GuestRequest::network_add(adapter)).unwrap();
        assert_eq!(
            add["Settings"],
            serde_json::json!({"AdapterId": adapter.to_string(), "RequestType": "Add"})
        );
        let scsi =
            serde_json::to_value(GuestRequest::mount_scsi_disk(r"c:\mounts\scsi\m0", 1)).unwrap();
        assert_eq!(
            scsi["Settings"],
            serde_json::json!({"ContainerPath": "c:\\mounts\\scsi\\m0", "Lun": 1})
        );
    }
}
