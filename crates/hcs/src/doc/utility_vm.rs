use std::collections::BTreeMap;

use pane_spec::Resources;

use super::SCSI_CONTROLLERS;
use super::resources::{uvm_memory_mb, uvm_processor};
use crate::schema::{
    Attachment, Chipset, ComputeSystem, ComputeTopology, Devices, HvSocket2, HvSocketServiceConfig,
    HvSocketSystemConfig, RegistryChanges, RegistryKey, RegistryValue, SchemaVersion, Scsi, Uefi,
    UefiBootEntry, VirtualMachine, VirtualMachineMemory, VirtualSmb, VirtualSmbShare,
    VirtualSmbShareOptions,
};

/// SYSTEM and Administrators only: who may bind or connect hvsock services of the VM.
pub const HV_SOCKET_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";
/// The guest's log-forwarding service.
pub const LOGGING_SERVICE_ID: &str = "172dad59-976d-45f2-8b6c-6d1b13f2ac4d";
const BOOT_LOADER: &str = r"\EFI\Microsoft\Boot\bootmgfw.efi";
const DIRECT_FILE_MAPPING_MB: u64 = 1024;

/// What a utility VM document is built from.
#[derive(Debug, Clone)]
pub struct UtilityVmInput<'a> {
    pub owner: &'a str,
    /// The base layer's `UtilityVM\Files`, shared read-only as `os` and booted from.
    pub os_files: &'a str,
    /// The VM's own scratch disk (a copy of the base layer's `SystemTemplate.vhdx`).
    pub scratch_vhdx: &'a str,
    pub resources: &'a Resources,
    /// Logical processors on the host, in all processor groups: the VM gets no more.
    pub host_processors: u32,
}

/// The `HcsCreateComputeSystem` document for a Windows utility VM booted over VSMB.
pub fn utility_vm(input: &UtilityVmInput<'_>) -> ComputeSystem {
    let hv_socket = HvSocketSystemConfig {
        default_bind_security_descriptor: Some(HV_SOCKET_SDDL.to_owned()),
        default_connect_security_descriptor: None,
        service_table: Some(BTreeMap::from([(
            LOGGING_SERVICE_ID.to_owned(),
            HvSocketServiceConfig {
                bind_security_descriptor: Some(HV_SOCKET_SDDL.to_owned()),
                connect_security_descriptor: Some(HV_SOCKET_SDDL.to_owned()),
                allow_wildcard_binds: Some(true),
                disabled: None,
            },
        )])),
    };
    let scratch = Attachment {
        kind: "VirtualDisk".to_owned(),
        path: input.scratch_vhdx.to_owned(),
        ..Attachment::default()
    };
    let devices = Devices {
        // hcsshim connects COM1 only for a debugger or console log; pane offers neither.
        com_ports: None,
        // Boot depends on the VM scratch being controller 0, LUN 0.
        scsi: Some(BTreeMap::from([(
            SCSI_CONTROLLERS[0].to_owned(),
            Scsi {
                attachments: BTreeMap::from([("0".to_owned(), scratch)]),
            },
        )])),
        hv_socket: Some(HvSocket2 {
            hv_socket_config: Some(hv_socket),
        }),
        virtual_smb: Some(VirtualSmb {
            shares: Some(vec![VirtualSmbShare {
                name: "os".to_owned(),
                path: input.os_files.to_owned(),
                allowed_files: None,
                options: Some(VirtualSmbShareOptions {
                    take_backup_privilege: Some(true),
                    ..read_only_share_options()
                }),
            }]),
            direct_file_mapping_in_mb: Some(DIRECT_FILE_MAPPING_MB),
        }),
        guest_crash_reporting: None,
        network_adapters: None,
    };
    let memory_mb = uvm_memory_mb(input.resources.memory);
    let virtual_machine = VirtualMachine {
        stop_on_reset: Some(true),
        chipset: Some(Chipset {
            uefi: Some(Uefi {
                boot_this: Some(UefiBootEntry {
                    device_type: Some("VmbFs".to_owned()),
                    device_path: Some(BOOT_LOADER.to_owned()),
                    ..UefiBootEntry::default()
                }),
                ..Uefi::default()
            }),
            use_utc: None,
        }),
        compute_topology: Some(ComputeTopology {
            memory: Some(VirtualMachineMemory {
                size_in_mb: Some(memory_mb),
                allow_overcommit: Some(true),
                enable_hot_hint: Some(true),
                ..VirtualMachineMemory::default()
            }),
            processor: Some(uvm_processor(input.resources.cpu, input.host_processors).value),
        }),
        devices: Some(devices),
        registry_changes: Some(RegistryChanges {
            add_values: Some(vec![RegistryValue {
                key: RegistryKey {
                    hive: "System".to_owned(),
                    name: r"CurrentControlSet\Services\gns".to_owned(),
                    is_volatile: None,
                },
                name: "EnableCompartmentNamespace".to_owned(),
                kind: "DWord".to_owned(),
                dword_value: Some(1),
                ..RegistryValue::default()
            }]),
            delete_keys: None,
        }),
    };
    ComputeSystem {
        owner: Some(input.owner.to_owned()),
        schema_version: Some(SchemaVersion::V2_1),
        virtual_machine: Some(virtual_machine),
        // As for containers: unset, so the VM outlives the `pane` process (hcsshim sets true).
        ..ComputeSystem::default()
    }
}

/// hcsshim's default options for a read-only VSMB share (layers and the `os` share).
pub fn read_only_share_options() -> VirtualSmbShareOptions {
    VirtualSmbShareOptions {
        read_only: Some(true),
        share_read: Some(true),
        cache_io: Some(true),
        pseudo_oplocks: Some(true),
        ..VirtualSmbShareOptions::default()
    }
}
