//! The `VirtualMachine` tree of the HCS schema reference, and the `Settings` of the modify
//! requests that reach into it, consulted by [`crate::schema`]'s table.
//!
//! Names are the reference's (`Topology`, `VirtualMachine_Memory`, `VirtualMachine_Processor`,
//! `VirtualMachine_HvSocket`; hcsshim calls the last three `Memory2`, `Processor2` and
//! `HvSocket2`, newer hcsshim `VirtualMachineMemory` and `VirtualMachineProcessor`). Where
//! hcsshim's `internal/hcs/schema2` sends a member the reference does not list, the member is
//! accepted, since real hosts take what hcsshim sends; each such member says so. Where the two
//! differ only in an integer's width or sign (hcsshim's `int32` for the reference's `uint16`),
//! the reference's type is kept: it is the host's own, and hcsshim's values fit it.

use crate::schema::Member;
use crate::schema::Ty::{
    self, Any, Array, Bool, Enum, Guid, I64, Keyed, Map, Str, Struct, U8, U16, U32, U64,
};

const OPT: bool = false;
const REQ: bool = true;

const STRING: Ty = Str;

const CACHING_MODE: Ty = Enum(&["Uncached", "Cached", "ReadOnlyCached"]);
const IMAGE_FORMAT: Ty = Enum(&["Vhdx", "Vhd1"]);

#[allow(clippy::too_many_lines)] // one table, one entry a struct
pub(crate) fn members(name: &str) -> Option<&'static [Member]> {
    Some(match name {
        "VirtualMachine" => &[
            // hcsshim only, not in the reference: `Version`, `DebugOptions`,
            // `SecuritySettings`, `ResourcePartitionId`, `MigrationOptions`.
            ("Version", Struct("Version"), OPT),
            ("StopOnReset", Bool, OPT),
            ("Chipset", Struct("Chipset"), OPT),
            ("ComputeTopology", Struct("Topology"), OPT),
            ("Devices", Struct("Devices"), OPT),
            ("GuestState", Struct("GuestState"), OPT),
            ("RestoreState", Struct("RestoreState"), OPT),
            ("RegistryChanges", Struct("RegistryChanges"), OPT),
            ("StorageQoS", Struct("StorageQoS"), OPT),
            ("DebugOptions", Struct("DebugOptions"), OPT),
            ("GuestConnection", Struct("GuestConnection"), OPT),
            ("SecuritySettings", Any, OPT), // hcsshim's SecuritySettings, not added
            ("ResourcePartitionId", Str, OPT),
            ("MigrationOptions", Any, OPT), // hcsshim's MigrationInitializeOptions, not added
        ],
        // hcsshim only.
        "DebugOptions" => &[
            ("BugcheckSavedStateFileName", Str, OPT),
            ("BugcheckNoCrashdumpSavedStateFileName", Str, OPT),
            ("TripleFaultSavedStateFileName", Str, OPT),
            ("FirmwareDumpFileName", Str, OPT),
        ],
        "Chipset" => &[
            ("Uefi", Struct("Uefi"), OPT),
            ("IsNumLockDisabled", Bool, OPT),
            ("BaseBoardSerialNumber", Str, OPT),
            ("ChassisSerialNumber", Str, OPT),
            ("ChassisAssetTag", Str, OPT),
            ("UseUtc", Bool, OPT),
            ("LinuxKernelDirect", Struct("LinuxKernelDirect"), OPT),
            ("FirmwareFile", Any, OPT), // hcsshim only (FirmwareFile), not added
        ],
        "Uefi" => &[
            ("EnableDebugger", Bool, OPT),
            ("SecureBootTemplateId", Guid, OPT),
            ("ApplySecureBootTemplate", Enum(&["Skip", "Apply"]), OPT),
            ("BootThis", Struct("UefiBootEntry"), OPT),
            (
                "Console",
                Enum(&["Default", "Disabled", "ComPort1", "ComPort2"]),
                OPT,
            ),
            ("StopOnBootFailure", Bool, OPT),
        ],
        "UefiBootEntry" => &[
            (
                "DeviceType",
                Enum(&["ScsiDrive", "VmbFs", "Network", "File"]),
                OPT,
            ),
            ("DevicePath", Str, OPT),
            ("DiskNumber", U16, OPT), // hcsshim: int32
            ("OptionalData", Str, OPT),
            ("VmbFsRootPath", Str, OPT),
        ],
        "LinuxKernelDirect" => &[
            ("KernelFilePath", Str, OPT),
            ("InitRdPath", Str, OPT),
            ("KernelCmdLine", Str, OPT),
        ],
        "Topology" => &[
            ("Memory", Struct("VirtualMachine_Memory"), OPT),
            ("Processor", Struct("VirtualMachine_Processor"), OPT),
            ("Numa", Any, OPT), // hcsshim only (Numa), not added
        ],
        // hcsshim's Memory2 / VirtualMachineMemory.
        "VirtualMachine_Memory" => &[
            ("SizeInMB", U64, OPT),
            ("AllowOvercommit", Bool, OPT),
            ("BackingPageSize", Enum(&["Small", "Large"]), OPT),
            ("PinBackingPages", Bool, OPT),
            ("ForbidSmallBackingPages", Bool, OPT),
            ("EnableHotHint", Bool, OPT),
            ("EnableColdHint", Bool, OPT),
            ("EnableColdDiscardHint", Bool, OPT),
            ("EnableDeferredCommit", Bool, OPT),
            ("LowMmioGapInMB", U64, OPT),
            ("HighMmioBaseInMB", U64, OPT),
            ("HighMmioGapInMB", U64, OPT),
            // hcsshim only:
            ("EnableEpf", Bool, OPT),
            ("Backing", Enum(&["Physical", "Virtual", "Hybrid"]), OPT),
            ("SlitType", Any, OPT), // hcsshim's VirtualSlitType, not added
        ],
        // hcsshim's Processor2 / VirtualMachineProcessor; its Count, Limit and Weight are
        // int32 there.
        "VirtualMachine_Processor" => &[
            ("Count", U32, OPT),
            ("Limit", U64, OPT),
            ("Weight", U64, OPT),
            ("ExposeVirtualizationExtensions", Bool, OPT),
            ("EnablePerfmonPmu", Bool, OPT),
            ("EnablePerfmonPebs", Bool, OPT),
            ("EnablePerfmonLbr", Bool, OPT),
            ("EnablePerfmonIpt", Bool, OPT),
            // hcsshim only:
            ("Reservation", U64, OPT),
            ("CpuGroup", Struct("CpuGroup"), OPT),
            ("NumaProcessorsSettings", Any, OPT), // hcsshim's NumaProcessors, not added
        ],
        "CpuGroup" => &[("Id", Guid, OPT)],
        "Devices" => &[
            ("ComPorts", Keyed(&U32, &Struct("ComPort")), OPT),
            ("VirtioSerial", Struct("VirtioSerial"), OPT),
            ("Scsi", Map(&Struct("Scsi")), OPT),
            ("VirtualPMem", Struct("VirtualPMemController"), OPT),
            ("NetworkAdapters", Map(&Struct("NetworkAdapter")), OPT),
            ("VideoMonitor", Struct("VideoMonitor"), OPT),
            ("Keyboard", Struct("Keyboard"), OPT),
            ("Mouse", Struct("Mouse"), OPT),
            ("HvSocket", Struct("VirtualMachine_HvSocket"), OPT),
            ("EnhancedModeVideo", Struct("EnhancedModeVideo"), OPT),
            ("GuestCrashReporting", Struct("GuestCrashReporting"), OPT),
            ("VirtualSmb", Struct("VirtualSmb"), OPT),
            ("Plan9", Struct("Plan9"), OPT),
            ("Battery", Struct("Battery"), OPT),
            ("FlexibleIov", Map(&Struct("FlexibleIoDevice")), OPT),
            ("SharedMemory", Struct("SharedMemoryConfiguration"), OPT),
            ("VirtualPci", Map(&Struct("VirtualPciDevice")), OPT),
        ],
        "ComPort" => &[("NamedPipe", Str, OPT), ("OptimizeForDebugger", Bool, OPT)],
        "VirtioSerial" => &[("Ports", Keyed(&U32, &Struct("VirtioSerialPort")), OPT)],
        "VirtioSerialPort" => &[("NamedPipe", Str, OPT), ("Name", Str, OPT)],
        "Scsi" => &[("Attachments", Keyed(&U32, &Struct("Attachment")), OPT)],
        "Attachment" => &[
            // `ExtensibleVirtualDisk`: hcsshim only.
            (
                "Type",
                Enum(&["VirtualDisk", "Iso", "PassThru", "ExtensibleVirtualDisk"]),
                OPT,
            ),
            ("Path", Str, REQ),
            ("CachingMode", CACHING_MODE, OPT),
            ("ReadOnly", Bool, OPT),
            ("SupportCompressedVolumes", Bool, OPT),
            // hcsshim only:
            ("IgnoreFlushes", Bool, OPT),
            ("NoWriteHardening", Bool, OPT),
            ("DisableExpansionOptimization", Bool, OPT),
            ("IgnoreRelativeLocator", Bool, OPT),
            ("CaptureIoAttributionContext", Bool, OPT),
            ("AlwaysAllowSparseFiles", Bool, OPT),
            ("ExtensibleVirtualDiskType", Str, OPT),
        ],
        "VirtualPMemController" => &[
            ("Devices", Keyed(&U8, &Struct("VirtualPMemDevice")), OPT),
            ("MaximumCount", U8, OPT), // hcsshim: uint32
            ("MaximumSizeBytes", U64, OPT),
            ("Backing", Enum(&["Virtual", "Physical"]), OPT),
        ],
        "VirtualPMemDevice" => &[
            ("HostPath", Str, OPT),
            ("ReadOnly", Bool, OPT),
            ("ImageFormat", IMAGE_FORMAT, OPT),
            ("SizeBytes", U64, OPT),
            ("Mappings", Keyed(&U64, &Struct("VirtualPMemMapping")), OPT),
        ],
        "VirtualPMemMapping" => &[("HostPath", Str, OPT), ("ImageFormat", IMAGE_FORMAT, OPT)],
        "NetworkAdapter" => &[
            ("EndpointId", Guid, REQ),
            ("MacAddress", Str, OPT),
            // hcsshim only; the reference's IovSettings is an empty struct, hcsshim's has
            // members.
            ("IovSettings", Any, OPT),
        ],
        "VideoMonitor" => &[
            ("HorizontalResolution", U16, OPT), // hcsshim: int32
            ("VerticalResolution", U16, OPT),   // hcsshim: int32
            ("ConnectionOptions", Struct("RdpConnectionOptions"), OPT),
        ],
        "RdpConnectionOptions" => &[("AccessSids", Array(&STRING), OPT), ("NamedPipe", Str, OPT)],
        "EnhancedModeVideo" => &[("ConnectionOptions", Struct("RdpConnectionOptions"), OPT)],
        // Empty structs: `{}`.
        "Keyboard" | "Mouse" | "Battery" => &[],
        "VirtualMachine_HvSocket" => &[("HvSocketConfig", Struct("HvSocketSystemConfig"), OPT)],
        "GuestCrashReporting" => &[("WindowsCrashSettings", Struct("WindowsCrashReporting"), OPT)],
        "WindowsCrashReporting" => &[
            ("DumpFileName", Str, OPT),
            ("MaxDumpSize", I64, OPT),
            ("DumpType", Str, OPT), // hcsshim only
        ],
        "VirtualSmb" => &[
            ("Shares", Array(&Struct("VirtualSmbShare")), OPT),
            ("DirectFileMappingInMB", I64, OPT),
        ],
        "VirtualSmbShare" => &[
            ("Name", Str, REQ),
            ("Path", Str, REQ),
            ("AllowedFiles", Array(&STRING), OPT),
            ("Options", Struct("VirtualSmbShareOptions"), OPT),
        ],
        "VirtualSmbShareOptions" => &[
            ("ReadOnly", Bool, OPT),
            ("ShareRead", Bool, OPT),
            ("CacheIo", Bool, OPT),
            ("NoOplocks", Bool, OPT),
            ("TakeBackupPrivilege", Bool, OPT),
            ("UseShareRootIdentity", Bool, OPT),
            ("NoDirectmap", Bool, OPT),
            ("NoLocks", Bool, OPT),
            ("NoDirnotify", Bool, OPT),
            ("VmSharedMemory", Bool, OPT),
            ("RestrictFileAccess", Bool, OPT),
            ("ForceLevelIIOplocks", Bool, OPT),
            ("ReparseBaseLayer", Bool, OPT),
            ("PseudoOplocks", Bool, OPT),
            ("NonCacheIo", Bool, OPT),
            ("PseudoDirnotify", Bool, OPT),
            ("SingleFileMapping", Bool, OPT),
            ("SupportCloudFiles", Bool, OPT),
        ],
        "Plan9" => &[("Shares", Array(&Struct("Plan9Share")), OPT)],
        "Plan9Share" => &[
            ("Name", Str, REQ),
            ("AccessName", Str, OPT),
            ("Path", Str, REQ),
            ("Port", U32, OPT),
            ("AllowedFiles", Array(&STRING), OPT),
            ("Flags", U32, OPT), // hcsshim only: Plan9ShareFlags, a bit mask
        ],
        "FlexibleIoDevice" => &[
            ("EmulatorId", Guid, OPT),
            ("HostingModel", Enum(&["Internal", "External"]), OPT),
            ("Configuration", Array(&STRING), OPT),
        ],
        "SharedMemoryConfiguration" => &[("Regions", Array(&Struct("SharedMemoryRegion")), OPT)],
        "SharedMemoryRegion" => &[
            ("SectionName", Str, OPT),
            ("StartOffset", U64, OPT),
            ("Length", U64, OPT),
            ("AllowGuestWrite", Bool, OPT),
            ("HiddenFromGuest", Bool, OPT),
        ],
        "VirtualPciDevice" => &[("Functions", Array(&Struct("VirtualPciFunction")), OPT)],
        "VirtualPciFunction" => &[
            ("DeviceInstancePath", Str, REQ),
            ("VirtualFunction", U16, OPT),
        ],
        "GuestState" => &[
            ("GuestStateFilePath", Str, OPT),
            // hcsshim only: "FileMode", "BlockStorage", ...
            ("GuestStateFileType", Str, OPT),
            ("RuntimeStateFilePath", Str, OPT),
            ("ForceTransientState", Bool, OPT),
        ],
        "RestoreState" => &[
            ("SaveStateFilePath", Str, OPT),
            ("TemplateSystemId", Str, OPT),
        ],
        "GuestConnection" => &[("UseVsock", Bool, OPT), ("UseConnectedSuspend", Bool, OPT)],
        "IdleProcessorsRequest" => &[("IdleProcessorCount", U32, OPT)],
        "GpuConfiguration" => &[
            (
                "AssignmentMode",
                Enum(&["Disabled", "Default", "List", "Mirror"]),
                OPT,
            ),
            ("AssignmentRequest", Map(&U16), OPT),
            ("AllowVendorExtension", Bool, OPT),
        ],
        _ => return None,
    })
}

/// The type of a `ModifySettingRequest`'s `Settings` at `resource_path`, for the resource
/// paths hcsshim and pane modify a VM at; `None` where the simulator does not know the path
/// (its `Settings` are then accepted as any value).
pub(crate) fn settings_at(resource_path: &str) -> Option<Ty> {
    let parts: Vec<&str> = resource_path.split('/').collect();
    Some(match parts.as_slice() {
        ["VirtualMachine", "Devices", "Scsi", _, "Attachments", _] => Struct("Attachment"),
        ["VirtualMachine", "Devices", "VirtualSmb", "Shares"] => Struct("VirtualSmbShare"),
        ["VirtualMachine", "Devices", "NetworkAdapters", _] => Struct("NetworkAdapter"),
        ["VirtualMachine", "Devices", "ComPorts", _] => Struct("ComPort"),
        [
            "VirtualMachine",
            "Devices",
            "HvSocket",
            "HvSocketConfig",
            "ServiceTable",
            _,
        ] => Struct("HvSocketServiceConfig"),
        ["VirtualMachine", "Devices", "SharedMemory", "Regions"] => Struct("SharedMemoryRegion"),
        ["VirtualMachine", "Devices", "FlexibleIov", _] => Struct("FlexibleIoDevice"),
        ["VirtualMachine", "Devices", "Plan9", "Shares"] => Struct("Plan9Share"),
        ["VirtualMachine", "Devices", "VirtualPMem", "Devices", _] => Struct("VirtualPMemDevice"),
        [
            "VirtualMachine",
            "Devices",
            "VirtualPMem",
            "Devices",
            _,
            "Mappings",
            _,
        ] => Struct("VirtualPMemMapping"),
        ["VirtualMachine", "Devices", "VirtualPci", _] => Struct("VirtualPciDevice"),
        ["VirtualMachine", "ComputeTopology", "Memory", "SizeInMB"] => U64,
        ["VirtualMachine", "ComputeTopology", "Processor", "CpuGroup"] => Struct("CpuGroup"),
        [
            "VirtualMachine",
            "ComputeTopology",
            "Processor",
            "IdledProcessors",
        ] => Struct("IdleProcessorsRequest"),
        ["VirtualMachine", "ComputeTopology", "Gpu"] => Struct("GpuConfiguration"),
        _ => return None,
    })
}
