//! HCS schema v2 types. Field names are `PascalCase` exactly as hcsshim's `schema2` package
//! writes them; absent optional fields are left out of the JSON, because the inbox guest
//! agent rejects fields it does not know.

mod compute_system;
mod container;
mod modify;
mod process;
mod properties;
mod virtual_machine;

pub use compute_system::{ComputeSystem, HostedSystem, SchemaVersion};
pub use container::{
    Container, Device, GuestOs, Layer, MappedDirectory, MappedPipe, Memory, Networking, Processor,
    RegistryChanges, RegistryKey, RegistryValue, Storage, StorageQoS,
};
pub use modify::{GpuConfiguration, ModifySettingRequest};
pub use process::{ConsoleSize, ProcessParameters, ProcessStatus};
pub use properties::{
    MemoryStats, ProcessDetails, ProcessorStats, Properties, PropertyQuery, Statistics,
    StorageStats,
};
pub use virtual_machine::{
    Attachment, Chipset, ComPort, ComputeTopology, Devices, GuestCrashReporting, HvSocket2,
    HvSocketServiceConfig, HvSocketSystemConfig, Scsi, Uefi, UefiBootEntry, VirtualMachine,
    VirtualMachineMemory, VirtualMachineProcessor, VirtualSmb, VirtualSmbShare,
    VirtualSmbShareOptions, WindowsCrashSettings,
};
