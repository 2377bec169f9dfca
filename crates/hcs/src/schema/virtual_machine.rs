use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::RegistryChanges;

/// A utility VM.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualMachine {
    /// Power off instead of rebooting, so a guest reboot ends the system.
    pub stop_on_reset: Option<bool>,
    pub chipset: Option<Chipset>,
    pub compute_topology: Option<ComputeTopology>,
    pub devices: Option<Devices>,
    pub registry_changes: Option<RegistryChanges>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Chipset {
    pub uefi: Option<Uefi>,
    pub use_utc: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Uefi {
    pub enable_debugger: Option<bool>,
    pub apply_secure_boot_template: Option<String>,
    pub secure_boot_template_id: Option<String>,
    pub boot_this: Option<UefiBootEntry>,
    pub console: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UefiBootEntry {
    /// `VmbFs` (boot from a VSMB share), `ScsiDrive`, …
    pub device_type: Option<String>,
    pub device_path: Option<String>,
    pub disk_number: Option<u32>,
    pub optional_data: Option<String>,
    pub vmb_fs_root_path: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputeTopology {
    pub memory: Option<VirtualMachineMemory>,
    pub processor: Option<VirtualMachineProcessor>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualMachineMemory {
    #[serde(rename = "SizeInMB")]
    pub size_in_mb: Option<u64>,
    pub backing: Option<String>,
    /// Virtual-address backed: the host commits memory as the guest touches it.
    pub allow_overcommit: Option<bool>,
    pub enable_hot_hint: Option<bool>,
    pub enable_cold_hint: Option<bool>,
    pub enable_cold_discard_hint: Option<bool>,
    pub enable_deferred_commit: Option<bool>,
    #[serde(rename = "LowMmioGapInMB")]
    pub low_mmio_gap_in_mb: Option<u64>,
    #[serde(rename = "HighMmioBaseInMB")]
    pub high_mmio_base_in_mb: Option<u64>,
    #[serde(rename = "HighMmioGapInMB")]
    pub high_mmio_gap_in_mb: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualMachineProcessor {
    pub count: Option<u32>,
    pub limit: Option<u64>,
    pub weight: Option<u64>,
    pub reservation: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Devices {
    /// Keyed by port number as a string (`"0"` is COM1).
    pub com_ports: Option<BTreeMap<String, ComPort>>,
    /// Keyed by controller GUID.
    pub scsi: Option<BTreeMap<String, Scsi>>,
    pub hv_socket: Option<HvSocket2>,
    pub virtual_smb: Option<VirtualSmb>,
    pub guest_crash_reporting: Option<GuestCrashReporting>,
    pub network_adapters: Option<BTreeMap<String, serde_json::Value>>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComPort {
    pub named_pipe: Option<String>,
    pub optimize_for_debugger: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Scsi {
    /// Keyed by LUN as a string.
    #[serde(default)]
    pub attachments: BTreeMap<String, Attachment>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attachment {
    /// `VirtualDisk`, `PassThru` or `ExtensibleVirtualDisk`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub path: String,
    pub read_only: Option<bool>,
    pub caching_mode: Option<String>,
    pub ignore_flushes: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HvSocket2 {
    pub hv_socket_config: Option<HvSocketSystemConfig>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HvSocketSystemConfig {
    pub default_bind_security_descriptor: Option<String>,
    pub default_connect_security_descriptor: Option<String>,
    /// Keyed by service GUID.
    pub service_table: Option<BTreeMap<String, HvSocketServiceConfig>>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HvSocketServiceConfig {
    pub bind_security_descriptor: Option<String>,
    pub connect_security_descriptor: Option<String>,
    pub allow_wildcard_binds: Option<bool>,
    pub disabled: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualSmb {
    pub shares: Option<Vec<VirtualSmbShare>>,
    #[serde(rename = "DirectFileMappingInMB")]
    pub direct_file_mapping_in_mb: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualSmbShare {
    pub name: String,
    pub path: String,
    pub allowed_files: Option<Vec<String>>,
    pub options: Option<VirtualSmbShareOptions>,
}

// One JSON boolean per share option: the wire format.
#[allow(clippy::struct_excessive_bools)]
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualSmbShareOptions {
    pub read_only: Option<bool>,
    pub share_read: Option<bool>,
    pub cache_io: Option<bool>,
    pub no_oplocks: Option<bool>,
    pub take_backup_privilege: Option<bool>,
    pub use_share_root_identity: Option<bool>,
    pub no_directmap: Option<bool>,
    pub no_locks: Option<bool>,
    pub no_dirnotify: Option<bool>,
    pub vm_shared_memory: Option<bool>,
    pub restrict_file_access: Option<bool>,
    #[serde(rename = "ForceLevelIIOplocks")]
    pub force_level_ii_oplocks: Option<bool>,
    pub reparse_base_layer: Option<bool>,
    pub pseudo_oplocks: Option<bool>,
    pub non_cache_io: Option<bool>,
    pub pseudo_dirnotify: Option<bool>,
    pub single_file_mapping: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GuestCrashReporting {
    pub windows_crash_settings: Option<WindowsCrashSettings>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WindowsCrashSettings {
    pub dump_file_name: Option<String>,
    pub max_dump_size: Option<u64>,
    pub dump_type: Option<String>,
}
