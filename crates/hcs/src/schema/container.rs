use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// A Windows server container (a silo), process-isolated or hosted in a utility VM.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub guest_os: Option<GuestOs>,
    pub storage: Option<Storage>,
    pub mapped_directories: Option<Vec<MappedDirectory>>,
    pub mapped_pipes: Option<Vec<MappedPipe>>,
    pub memory: Option<Memory>,
    pub processor: Option<Processor>,
    pub networking: Option<Networking>,
    pub registry_changes: Option<RegistryChanges>,
    pub assigned_devices: Option<Vec<Device>>,
    pub additional_device_namespace: Option<serde_json::Value>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GuestOs {
    pub host_name: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Storage {
    /// Read-only parent layers, topmost first.
    pub layers: Option<Vec<Layer>>,
    /// The container's scratch volume (`\\?\Volume{…}\`, trailing backslash included).
    pub path: Option<String>,
    #[serde(rename = "QoS")]
    pub qos: Option<StorageQoS>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageQoS {
    pub iops_maximum: Option<u64>,
    pub bandwidth_maximum: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Layer {
    /// `NameToGuid` of the layer folder name.
    pub id: String,
    pub path: String,
    pub path_type: Option<String>,
    pub cache: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappedDirectory {
    pub host_path: String,
    pub host_path_type: Option<String>,
    pub container_path: String,
    pub read_only: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappedPipe {
    pub container_pipe_name: String,
    pub host_path: String,
    pub host_path_type: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Memory {
    #[serde(rename = "SizeInMB")]
    pub size_in_mb: Option<u64>,
}

/// Count, Maximum and Weight are alternatives: hcsshim sets one of them.
#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Processor {
    pub count: Option<u32>,
    /// Share of all host processors, in 1/10000 (1..=10000).
    pub maximum: Option<u32>,
    pub weight: Option<u32>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Networking {
    pub allow_unqualified_dns_query: Option<bool>,
    /// A comma-joined string, not a list.
    pub dns_search_list: Option<String>,
    pub network_shared_container_name: Option<String>,
    /// The HCN namespace GUID.
    pub namespace: Option<String>,
    pub network_adapters: Option<Vec<String>>,
}

/// An assigned device: `ClassGuid` (all devices of an interface class), `DeviceInstance`
/// (one device by location path) or `GpuMirror`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Device {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub interface_class_guid: Option<String>,
    pub location_path: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryChanges {
    pub add_values: Option<Vec<RegistryValue>>,
    pub delete_keys: Option<Vec<RegistryKey>>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryKey {
    /// `System`, `Software`, `Security` or `Sam`.
    pub hive: String,
    pub name: String,
    #[serde(rename = "Volatile")]
    pub is_volatile: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryValue {
    pub key: RegistryKey,
    pub name: String,
    /// `String`, `ExpandedString`, `MultiString`, `Binary`, `DWord`, `QWord`, `CustomType`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub string_value: Option<String>,
    pub binary_value: Option<String>,
    #[serde(rename = "DWordValue")]
    pub dword_value: Option<u32>,
    #[serde(rename = "QWordValue")]
    pub qword_value: Option<u64>,
    pub custom_type: Option<u32>,
}
