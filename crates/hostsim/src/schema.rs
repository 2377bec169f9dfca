//! Validation of the JSON documents a client sends, against the HCS schema reference
//! (`virtualization/api/hcs/SchemaReference.md` in MicrosoftDocs/Virtualization-Documentation).
//!
//! Every struct listed here has exactly the members the reference gives it, with their JSON
//! types; a member the reference does not list, a value of the wrong JSON type or a string
//! outside an enum's variants is refused with the path of the member (`Container.Storage.
//! Layers[0].Id`), which the service reports with `HCS_E_INVALID_JSON`. The `VirtualMachine`
//! tree, and the `Settings` of a modify request at the VM resource paths hcsshim and pane use,
//! are in [`crate::schema_vm`], which also says where it follows hcsshim over the reference.
//! A member whose type is a struct neither table has is `Any`, with a comment saying so.
//! Which members are required is the simulator's reading of the reference (identifiers,
//! paths and a system's one body), marked `req` below.

use serde_json::Value;

/// A JSON type of the reference's "JSON type table", or a named struct or enum.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Bool,
    U8,
    U16,
    U32,
    U64,
    I32,
    I64,
    Guid,
    /// `DateTime`: an RFC 3339 string; only its JSON type is checked.
    DateTime,
    Any,
    Struct(&'static str),
    Enum(&'static [&'static str]),
    Array(&'static Ty),
    /// `Map<string, T>`.
    Map(&'static Ty),
    /// `Map<K, T>` whose key is not a string: `K` is an unsigned integer type (the key is
    /// then its decimal digits, as a SCSI LUN `"0"`) or `Guid`.
    Keyed(&'static Ty, &'static Ty),
    /// An HNS enum that is a number on the wire as often as a name: its variant names, or an
    /// unsigned integer. The HNS schema says "all variants listed should be used as string",
    /// but flag and protocol members (`Flags`, `PortMappingPolicySetting.Protocol`) are
    /// numbers in what hcsshim sends to real hosts (protocol 6 for TCP), and HNS takes both.
    NumberOrEnum(&'static [&'static str]),
}

/// One member: name, type, required.
pub(crate) type Member = (&'static str, Ty, bool);

const OPT: bool = false;
const REQ: bool = true;

use Ty::{
    Any, Array, Bool, DateTime, Enum, Guid, I32, I64, Keyed, Map, NumberOrEnum, Str, Struct, U8,
    U16, U32, U64,
};

const PATH_TYPE: Ty = Enum(&["AbsolutePath", "VirtualSmbShareName"]);
const STRING: Ty = Str;

// The members every HNS object has from its parent `Base`.
const BASE_ID: Member = ("ID", Guid, OPT);
const BASE_OWNER: Member = ("Owner", Str, OPT);
const BASE_NAME: Member = ("Name", Str, OPT);
const BASE_VERSION: Member = ("Version", U64, OPT);
const BASE_ADDITIONAL: Member = ("AdditionalParams", Any, OPT);
const BASE_HEALTH: Member = ("Health", Struct("Health"), OPT);
const BASE_SCHEMA: Member = ("SchemaVersion", Struct("Version"), OPT);
const BASE_TELEMETRY: Member = ("Telemetry", Struct("Telemetry"), OPT);
const BASE_STATE: Member = ("State", U16, OPT);

#[allow(clippy::too_many_lines)] // one table, one entry a struct
fn members(name: &str) -> Option<&'static [Member]> {
    Some(match name {
        "ComputeSystem" => &[
            ("Owner", Str, OPT),
            ("SchemaVersion", Struct("Version"), REQ),
            ("HostingSystemId", Str, OPT),
            ("HostedSystem", Struct("HostedSystem"), OPT),
            ("Container", Struct("Container"), OPT),
            ("VirtualMachine", Struct("VirtualMachine"), OPT),
            ("ShouldTerminateOnLastHandleClosed", Bool, OPT),
        ],
        "HostedSystem" => &[
            ("SchemaVersion", Struct("Version"), REQ),
            ("Container", Struct("Container"), REQ),
        ],
        "Version" => &[("Major", U32, REQ), ("Minor", U32, REQ)],
        "Container" => &[
            ("GuestOs", Struct("GuestOs"), OPT),
            ("Storage", Struct("Storage"), OPT),
            ("MappedDirectories", Array(&Struct("MappedDirectory")), OPT),
            ("MappedPipes", Array(&Struct("MappedPipe")), OPT),
            ("Memory", Struct("Container_Memory"), OPT),
            ("Processor", Struct("Container_Processor"), OPT),
            ("Networking", Struct("Networking"), OPT),
            ("HvSocket", Struct("Container_HvSocket"), OPT),
            ("ContainerCredentialGuard", Any, OPT),
            ("RegistryChanges", Struct("RegistryChanges"), OPT),
            ("AssignedDevices", Array(&Struct("Device")), OPT),
            ("AdditionalDeviceNamespace", Any, OPT),
        ],
        "GuestOs" => &[("HostName", Str, OPT)],
        "Storage" => &[
            ("Layers", Array(&Struct("Layer")), OPT),
            ("Path", Str, OPT),
            ("QoS", Struct("StorageQoS"), OPT),
        ],
        "StorageQoS" => &[("IopsMaximum", U64, OPT), ("BandwidthMaximum", U64, OPT)],
        "Layer" => &[
            ("Id", Guid, REQ),
            ("Path", Str, REQ),
            ("PathType", PATH_TYPE, OPT),
            (
                "Cache",
                Enum(&[
                    "Unspecified",
                    "Disabled",
                    "Enabled",
                    "Private",
                    "PrivateAllowSharing",
                ]),
                OPT,
            ),
        ],
        "MappedDirectory" => &[
            ("HostPath", Str, REQ),
            ("HostPathType", PATH_TYPE, OPT),
            ("ContainerPath", Str, REQ),
            ("ReadOnly", Bool, OPT),
            ("SupportCloudFiles", Bool, OPT),
        ],
        "MappedPipe" => &[
            ("ContainerPipeName", Str, REQ),
            ("HostPath", Str, REQ),
            (
                "HostPathType",
                Enum(&["AbsolutePath", "VirtualSmbPipeName"]),
                OPT,
            ),
        ],
        "Container_Memory" => &[("SizeInMB", U64, OPT)],
        "Container_Processor" => &[
            ("Count", U32, OPT),
            ("Weight", I64, OPT),
            ("Maximum", I64, OPT),
        ],
        "Networking" => &[
            ("AllowUnqualifiedDnsQuery", Bool, OPT),
            ("DnsSearchList", Str, OPT),
            ("NetworkSharedContainerName", Str, OPT),
            ("Namespace", Str, OPT),
            ("NetworkAdapters", Array(&Guid), OPT),
        ],
        "Container_HvSocket" => &[
            ("Config", Struct("HvSocketSystemConfig"), OPT),
            ("EnablePowerShellDirect", Bool, OPT),
        ],
        "HvSocketSystemConfig" => &[
            ("DefaultBindSecurityDescriptor", Str, OPT),
            ("DefaultConnectSecurityDescriptor", Str, OPT),
            (
                "ServiceTable",
                Keyed(&Guid, &Struct("HvSocketServiceConfig")),
                OPT,
            ),
        ],
        "HvSocketServiceConfig" => &[
            ("BindSecurityDescriptor", Str, OPT),
            ("ConnectSecurityDescriptor", Str, OPT),
            ("AllowWildcardBinds", Bool, OPT),
            ("Disabled", Bool, OPT), // hcsshim only
        ],
        "RegistryChanges" => &[
            ("AddValues", Array(&Struct("RegistryValue")), OPT),
            ("DeleteKeys", Array(&Struct("RegistryKey")), OPT),
        ],
        "RegistryKey" => &[
            (
                "Hive",
                Enum(&["System", "Software", "Security", "Sam"]),
                REQ,
            ),
            ("Name", Str, REQ),
            ("Volatile", Bool, OPT),
        ],
        "RegistryValue" => &[
            ("Key", Struct("RegistryKey"), REQ),
            ("Name", Str, REQ),
            (
                "Type",
                Enum(&[
                    "None",
                    "String",
                    "ExpandedString",
                    "MultiString",
                    "Binary",
                    "DWord",
                    "QWord",
                    "CustomType",
                ]),
                REQ,
            ),
            ("StringValue", Str, OPT),
            ("BinaryValue", Str, OPT),
            ("DWordValue", U32, OPT),
            ("QWordValue", U64, OPT),
            ("CustomType", U32, OPT),
        ],
        "Device" => &[
            (
                "Type",
                Enum(&["ClassGuid", "DeviceInstance", "GpuMirror"]),
                OPT,
            ),
            ("InterfaceClassGuid", Guid, OPT),
            ("LocationPath", Str, OPT),
        ],
        "ProcessParameters" => &[
            ("ApplicationName", Str, OPT),
            ("CommandLine", Str, OPT),
            ("CommandArgs", Array(&STRING), OPT),
            ("User", Str, OPT),
            ("WorkingDirectory", Str, OPT),
            ("Environment", Map(&STRING), OPT),
            ("RestrictedToken", Bool, OPT),
            ("EmulateConsole", Bool, OPT),
            ("CreateStdInPipe", Bool, OPT),
            ("CreateStdOutPipe", Bool, OPT),
            ("CreateStdErrPipe", Bool, OPT),
            ("ConsoleSize", Array(&U16), OPT),
            ("UseExistingLogin", Bool, OPT),
            ("UseLegacyConsole", Bool, OPT),
        ],
        "SignalProcessOptions" => &[(
            "Signal",
            Enum(&[
                "CtrlC",
                "CtrlBreak",
                "CtrlClose",
                "CtrlLogOff",
                "CtrlShutdown",
            ]),
            OPT,
        )],
        "ProcessModifyRequest" => &[
            ("Operation", Enum(&["ConsoleSize", "CloseHandle"]), REQ),
            ("ConsoleSize", Struct("ConsoleSize"), OPT),
            ("CloseHandle", Struct("CloseHandle"), OPT),
        ],
        "ConsoleSize" => &[("Height", U16, REQ), ("Width", U16, REQ)],
        "CloseHandle" => &[("Handle", Enum(&["StdIn", "StdOut", "StdErr", "All"]), REQ)],
        "SystemQuery" => &[
            ("Ids", Array(&STRING), OPT),
            ("Names", Array(&STRING), OPT),
            ("Types", Array(&Enum(&["Container", "VirtualMachine"])), OPT),
            ("Owners", Array(&STRING), OPT),
        ],
        "System_PropertyQuery" => &[
            (
                "PropertyTypes",
                Array(&Enum(&[
                    "Memory",
                    "Statistics",
                    "ProcessList",
                    "TerminateOnLastHandleClosed",
                    "SharedMemoryRegion",
                    "GuestConnection",
                ])),
                OPT,
            ),
            ("Queries", Map(&Any), OPT),
        ],
        "ModifySettingRequest" => &[
            ("ResourcePath", Str, OPT),
            ("RequestType", Enum(&["Add", "Remove", "Update"]), OPT),
            ("Settings", Any, OPT),
            ("GuestRequest", Any, OPT),
        ],
        "ProcessStatus" => &[
            ("ProcessId", U32, OPT),
            ("Exited", Bool, OPT),
            ("ExitCode", U32, OPT),
            ("LastWaitResult", I32, OPT),
        ],
        // --- HCN (`virtualization/api/hcn/HNS_Schema.md`) ---------------------------------
        "HostComputeQuery" => &[
            ("SchemaVersion", Struct("Version"), OPT),
            ("Flags", NumberOrEnum(&["None", "Detailed"]), OPT),
            ("Filter", Str, OPT),
        ],
        "HostComputeNamespace" => &[
            BASE_ID,
            BASE_OWNER,
            BASE_NAME,
            BASE_VERSION,
            BASE_ADDITIONAL,
            BASE_HEALTH,
            BASE_SCHEMA,
            BASE_TELEMETRY,
            BASE_STATE,
            ("NamespaceId", U32, OPT),
            ("NamespaceGuid", Guid, OPT),
            (
                "Type",
                Enum(&["Host", "HostDefault", "Guest", "GuestDefault"]),
                OPT,
            ),
            ("Resources", Array(&Struct("NamespaceResource")), OPT),
        ],
        "NamespaceResource" => &[
            ("Type", Enum(&["Container", "Endpoint"]), OPT),
            ("Data", Any, OPT),
        ],
        "HostComputeEndpoint" => &[
            BASE_ID,
            BASE_OWNER,
            BASE_NAME,
            BASE_VERSION,
            BASE_ADDITIONAL,
            BASE_HEALTH,
            BASE_SCHEMA,
            BASE_TELEMETRY,
            BASE_STATE,
            ("HostComputeNetwork", Guid, OPT),
            ("HostComputeNamespace", Guid, OPT),
            ("Policies", Array(&Struct("EndpointPolicy")), OPT),
            ("IpConfigurations", Array(&Struct("IpConfig")), OPT),
            ("Dns", Struct("DNS"), OPT),
            ("Routes", Array(&Struct("Route")), OPT),
            ("MacAddress", Str, OPT),
            (
                "Flags",
                NumberOrEnum(&[
                    "None",
                    "RemoteEndpoint",
                    "DisableInterComputeCommunication",
                    "EnableMirroring",
                    "EnableLowInterfaceMetric",
                    "OverrideDNSServerOrder",
                    "EnableDhcp",
                ]),
                OPT,
            ),
        ],
        "EndpointPolicy" => &[
            (
                "Type",
                Enum(&[
                    "PortMapping",
                    "ACL",
                    "QOS",
                    "L2Driver",
                    "OutBoundNAT",
                    "SDNRoute",
                    "L4Proxy",
                    "L4WFPPROXY",
                    "ProviderAddress",
                    "PortName",
                    "EncapOverhead",
                    "InterfaceConstraint",
                    "Encryption",
                    "VLAN",
                    "InterfaceParameters",
                    "Iov",
                    "TierAcl",
                ]),
                REQ,
            ),
            ("Settings", Any, OPT),
        ],
        "PortMappingPolicySetting" => &[
            (
                "Protocol",
                NumberOrEnum(&["Unknown", "ICMPv4", "IGMP", "TCP", "UDP", "ICMPv6"]),
                OPT,
            ),
            ("InternalPort", U16, OPT),
            ("ExternalPort", U16, OPT),
            ("VIP", Str, OPT),
            (
                "Flags",
                NumberOrEnum(&["None", "LocalRoutedVip", "IPv6"]),
                OPT,
            ),
        ],
        "IpConfig" => &[
            ("IpAddress", Str, OPT),
            ("PrefixLength", U8, OPT),
            ("IpSubnetId", Guid, OPT),
        ],
        "DNS" => &[
            ("Domain", Str, OPT),
            ("Search", Array(&STRING), OPT),
            ("ServerList", Array(&STRING), OPT),
            ("Options", Array(&STRING), OPT),
        ],
        "Route" => &[
            ("NextHop", Str, OPT),
            ("DestinationPrefix", Str, OPT),
            ("Metric", U16, OPT),
        ],
        "Health" => &[("Data", Any, OPT), ("Extra", Any, OPT)],
        "Telemetry" => &[("Data", Any, OPT)],
        "ModifyNamespaceSettingRequest" => &[
            ("ResourceUri", Str, OPT),
            (
                "RequestType",
                Enum(&["Add", "Remove", "Update", "Refresh", "Reset"]),
                OPT,
            ),
            ("ResourceType", Enum(&["Container", "Endpoint"]), OPT),
            ("Settings", Any, OPT),
        ],
        "NamespaceEndpointRequest" => &[("EndpointId", Guid, REQ)],
        _ => return crate::schema_vm::members(name),
    })
}

/// Why a document was refused: the member's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Parses `text` and validates it as the struct `root`.
pub fn parse(text: &str, root: &'static str) -> Result<Value, Invalid> {
    let value: Value = serde_json::from_str(text).map_err(|e| Invalid {
        path: root.to_owned(),
        problem: format!("not JSON: {e}"),
    })?;
    validate(&value, Struct(root), root)?;
    Ok(value)
}

/// Validates `value` as `ty`; `path` names it in errors.
pub fn validate(value: &Value, ty: Ty, path: &str) -> Result<(), Invalid> {
    check(value, ty, path, true)
}

/// [`validate`], enforcing required members only if `required`.
fn check(value: &Value, ty: Ty, path: &str, required: bool) -> Result<(), Invalid> {
    let wrong = |expected: &str| {
        Err(Invalid {
            path: path.to_owned(),
            problem: format!("expected {expected}, found {}", kind(value)),
        })
    };
    match ty {
        Any => Ok(()),
        Str | DateTime => {
            if value.is_string() {
                Ok(())
            } else {
                wrong("a string")
            }
        }
        Bool => {
            if value.is_boolean() {
                Ok(())
            } else {
                wrong("a bool")
            }
        }
        U8 => unsigned(value, u64::from(u8::MAX), path),
        U16 => unsigned(value, u64::from(u16::MAX), path),
        U32 => unsigned(value, u64::from(u32::MAX), path),
        U64 => unsigned(value, u64::MAX, path),
        I32 => signed(value, i64::from(i32::MIN), i64::from(i32::MAX), path),
        I64 => signed(value, i64::MIN, i64::MAX, path),
        Guid => match value.as_str() {
            Some(text) if uuid::Uuid::parse_str(text.trim_matches(['{', '}'])).is_ok() => Ok(()),
            Some(text) => Err(Invalid {
                path: path.to_owned(),
                problem: format!("{text:?} is not a GUID"),
            }),
            None => wrong("a GUID string"),
        },
        Enum(variants) => match value.as_str() {
            Some(text) if variants.contains(&text) => Ok(()),
            Some(text) => Err(Invalid {
                path: path.to_owned(),
                problem: format!("{text:?} is not one of {variants:?}"),
            }),
            None => wrong("a string"),
        },
        NumberOrEnum(variants) => match value {
            Value::Number(_) => unsigned(value, u64::from(u32::MAX), path),
            _ => check(value, Enum(variants), path, required),
        },
        Array(item) => {
            let Some(items) = value.as_array() else {
                return wrong("an array");
            };
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| check(v, *item, &format!("{path}[{i}]"), required))
        }
        Map(item) => {
            let Some(entries) = value.as_object() else {
                return wrong("an object");
            };
            entries
                .iter()
                .try_for_each(|(k, v)| check(v, *item, &format!("{path}.{k}"), required))
        }
        Keyed(key, item) => {
            let Some(entries) = value.as_object() else {
                return wrong("an object");
            };
            entries.iter().try_for_each(|(k, v)| {
                let at = format!("{path}.{k}");
                check(&map_key(k, key, &at)?, *key, &at, required)?;
                check(v, *item, &at, required)
            })
        }
        Struct(name) => match value.as_object() {
            Some(object) => check_struct(object, name, path, required),
            None => wrong("an object"),
        },
    }
}

/// A map key as the JSON value its key type `key` is checked against: a `Guid` key is a
/// string, an integer key its decimal digits.
fn map_key(k: &str, key: &Ty, path: &str) -> Result<Value, Invalid> {
    match key {
        Guid => Ok(Value::String(k.to_owned())),
        _ => match k.parse::<u64>() {
            Ok(n) if k.bytes().all(|b| b.is_ascii_digit()) => Ok(Value::from(n)),
            _ => Err(Invalid {
                path: path.to_owned(),
                problem: format!("key {k:?} is not an unsigned integer"),
            }),
        },
    }
}

fn check_struct(
    object: &serde_json::Map<String, Value>,
    name: &str,
    path: &str,
    required: bool,
) -> Result<(), Invalid> {
    let Some(members) = members(name) else {
        return Ok(());
    };
    for (key, member) in object {
        let Some((_, ty, _)) = members.iter().find(|(n, _, _)| n == key) else {
            return Err(Invalid {
                path: format!("{path}.{key}"),
                problem: format!("{name} has no member {key:?}"),
            });
        };
        check(member, *ty, &format!("{path}.{key}"), required)?;
    }
    for (member, _, req) in members {
        if required && *req && !object.contains_key(*member) {
            return Err(Invalid {
                path: format!("{path}.{member}"),
                problem: "required member is missing".to_owned(),
            });
        }
    }
    Ok(())
}

fn unsigned(value: &Value, max: u64, path: &str) -> Result<(), Invalid> {
    match value.as_u64() {
        Some(n) if n <= max => Ok(()),
        _ => Err(Invalid {
            path: path.to_owned(),
            problem: format!("expected an unsigned integer up to {max}, found {value}"),
        }),
    }
}

fn signed(value: &Value, min: i64, max: i64, path: &str) -> Result<(), Invalid> {
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(Invalid {
            path: path.to_owned(),
            problem: format!("expected an integer in {min}..={max}, found {value}"),
        }),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A compute-system document: valid members, and exactly one of `Container`,
/// `VirtualMachine` and `HostedSystem` (documented as mutually exclusive).
pub fn compute_system(text: &str) -> Result<Value, Invalid> {
    let value = parse(text, "ComputeSystem")?;
    let bodies = ["Container", "VirtualMachine", "HostedSystem"]
        .iter()
        .filter(|m| value.get(**m).is_some())
        .count();
    if bodies != 1 {
        return Err(Invalid {
            path: "ComputeSystem".to_owned(),
            problem: format!(
                "needs exactly one of Container, VirtualMachine and HostedSystem, has {bodies}"
            ),
        });
    }
    if value.get("HostedSystem").is_some() && value.get("HostingSystemId").is_none() {
        return Err(Invalid {
            path: "ComputeSystem.HostingSystemId".to_owned(),
            problem: "a HostedSystem needs the id of its hosting system".to_owned(),
        });
    }
    Ok(value)
}

/// A compute system's `ModifySettingRequest`: valid members, and its `Settings` valid for its
/// `ResourcePath` where the simulator knows the path (`schema_vm::settings_at`; elsewhere
/// `Settings` is any value). A `Remove` names what it removes with part of the settings
/// (hcsshim sends a Plan9 share's name and port alone), so it is not held to required members.
pub fn modify_setting_request(text: &str) -> Result<Value, Invalid> {
    let value = parse(text, "ModifySettingRequest")?;
    let resource = value
        .get("ResourcePath")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let (Some(settings), Some(ty)) = (
        value.get("Settings"),
        crate::schema_vm::settings_at(resource),
    ) {
        let required = value.get("RequestType").and_then(Value::as_str) != Some("Remove");
        check(settings, ty, "ModifySettingRequest.Settings", required)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"Owner":"pane","SchemaVersion":{"Major":2,"Minor":1},
        "Container":{"GuestOs":{"HostName":"h"},"Storage":{"Layers":[
        {"Id":"8ac8de36-1a1c-5a1b-a08b-8f3bc2c1f5cd","Path":"C:\\l"}],"Path":"\\\\?\\Volume{x}\\"},
        "Processor":{"Count":2},"Memory":{"SizeInMB":512}}}"#;

    #[test]
    fn a_container_document_passes() {
        compute_system(GOOD).unwrap();
    }

    #[test]
    fn an_unknown_member_is_refused_with_its_path() {
        let bad = GOOD.replace("\"HostName\"", "\"Hostname\"");
        let e = compute_system(&bad).unwrap_err();
        assert_eq!(e.path, "ComputeSystem.Container.GuestOs.Hostname");
    }

    #[test]
    fn a_wrong_type_is_refused() {
        let bad = GOOD.replace("\"Count\":2", "\"Count\":\"2\"");
        let e = compute_system(&bad).unwrap_err();
        assert_eq!(e.path, "ComputeSystem.Container.Processor.Count");
    }

    #[test]
    fn a_bad_guid_and_a_missing_member_are_refused() {
        let bad = GOOD.replace("8ac8de36-1a1c-5a1b-a08b-8f3bc2c1f5cd", "nope");
        assert_eq!(
            compute_system(&bad).unwrap_err().path,
            "ComputeSystem.Container.Storage.Layers[0].Id"
        );
        let bad = GOOD.replace(",\"Path\":\"C:\\\\l\"", "");
        assert_eq!(
            compute_system(&bad).unwrap_err().path,
            "ComputeSystem.Container.Storage.Layers[0].Path"
        );
    }

    #[test]
    fn a_system_has_one_body() {
        let e = compute_system(r#"{"SchemaVersion":{"Major":2,"Minor":1}}"#).unwrap_err();
        assert_eq!(e.path, "ComputeSystem");
    }

    #[test]
    fn enums_are_checked() {
        let e = parse(r#"{"Signal":"CtrlZ"}"#, "SignalProcessOptions").unwrap_err();
        assert_eq!(e.path, "SignalProcessOptions.Signal");
        parse(r#"{"Signal":"CtrlC"}"#, "SignalProcessOptions").unwrap();
    }
}
