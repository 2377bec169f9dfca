//! The JSON bodies of bridge messages, field for field as hcsshim's `prot` package.
//!
//! Where the protocol carries "a JSON document inside a JSON string" (container configs,
//! process parameters, property queries and results) the field is a [`JsonString`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The container id of requests aimed at the utility VM itself rather than a container.
pub const NULL_CONTAINER_ID: &str = "00000000-0000-0000-0000-000000000000";
/// The only bridge protocol version Windows guests and hcsshim speak.
pub const PROTOCOL_VERSION: u32 = 4;

/// A value sent as a JSON string holding its JSON encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonString<T>(pub T);

impl<T: Serialize> Serialize for JsonString<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for JsonString<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(PhantomData<T>);
        impl<T: DeserializeOwned> serde::de::Visitor<'_> for Visitor<T> {
            type Value = JsonString<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string holding JSON")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                serde_json::from_str(text)
                    .map(JsonString)
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor(PhantomData))
    }
}

/// Sent with every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBase {
    #[serde(rename = "ContainerId")]
    pub container_id: String,
    /// hcsshim leaves it all-zero; pane does too, so guest logs line up with hcsshim's.
    #[serde(rename = "ActivityId", default)]
    pub activity_id: Uuid,
}

impl RequestBase {
    pub fn new(container_id: impl Into<String>) -> Self {
        Self {
            container_id: container_id.into(),
            activity_id: Uuid::nil(),
        }
    }

    pub fn null_container() -> Self {
        Self::new(NULL_CONTAINER_ID)
    }
}

/// Returned with every response. A non-zero `Result` is an HRESULT failure.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseBase {
    #[serde(default)]
    pub result: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    #[serde(rename = "ActivityId", default, skip_serializing_if = "Uuid::is_nil")]
    pub activity_id: Uuid,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_records: Vec<ErrorRecord>,
}

impl ResponseBase {
    pub fn failure(hresult: i32, message: impl Into<String>) -> Self {
        Self {
            result: hresult,
            error_message: message.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorRecord {
    #[serde(default)]
    pub result: i32,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack_trace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file_name: String,
    #[serde(default)]
    pub line: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function_name: String,
}

/// Requests that carry only the base (`Start`, `ShutdownGraceful`, `ShutdownForced`,
/// `DeleteContainerState`, `DumpStacks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRequest {
    #[serde(flatten)]
    pub base: RequestBase,
}

/// Responses that carry only the base.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BaseResponse {
    #[serde(flatten)]
    pub base: ResponseBase,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NegotiateProtocolRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    pub minimum_version: u32,
    pub maximum_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NegotiateProtocolResponse {
    #[serde(flatten)]
    pub base: ResponseBase,
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub capabilities: Capabilities,
}

// One JSON boolean per capability: the wire format, not a state machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capabilities {
    #[serde(default)]
    pub send_host_create_message: bool,
    #[serde(default)]
    pub send_host_start_message: bool,
    #[serde(default)]
    pub hv_socket_config_on_startup: bool,
    #[serde(default)]
    pub send_lifecycle_notifications: bool,
    #[serde(default)]
    pub modify_service_settings_supported: bool,
    #[serde(default)]
    pub supported_schema_versions: Vec<SchemaVersion>,
    /// `Linux` for Linux guests; empty means Windows.
    #[serde(default)]
    pub runtime_os_type: String,
    #[serde(default)]
    pub guest_defined_capabilities: WindowsGuestCapabilities,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchemaVersion {
    pub major: u32,
    pub minor: u32,
}

#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WindowsGuestCapabilities {
    #[serde(default)]
    pub namespace_add_request_supported: bool,
    #[serde(default)]
    pub signal_process_supported: bool,
    #[serde(default)]
    pub dump_stacks_supported: bool,
    #[serde(default)]
    pub delete_container_state_supported: bool,
    #[serde(default)]
    pub update_container_supported: bool,
    #[serde(default)]
    pub log_forwarding_supported: bool,
    #[serde(default)]
    pub host_process_container_supported: bool,
}

/// `Create`: the container document travels as a JSON string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    pub container_config: JsonString<serde_json::Value>,
}

/// The cold-start document for the null container: the guest needs the host's time zone
/// before anything else (without it the inbox guest agent has been seen to crash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UvmConfig {
    /// Always `Container`.
    pub system_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone_information: Option<TimeZoneInformation>,
}

/// hcsschema `TimeZoneInformation`, with zero values left out as Go's omitempty does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeZoneInformation {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bias: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub standard_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_date: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub standard_bias: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub daylight_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daylight_date: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub daylight_bias: i32,
}

impl TimeZoneInformation {
    /// UTC as hcsshim sends it: the names, and empty transition dates.
    pub fn utc() -> Self {
        Self {
            standard_name: "Coordinated Universal Time".to_owned(),
            standard_date: Some(SystemTime::default()),
            daylight_name: "Coordinated Universal Time".to_owned(),
            daylight_date: Some(SystemTime::default()),
            ..Self::default()
        }
    }
}

/// hcsschema `SystemTime`: a transition date of a time zone, zero fields left out as
/// hcsshim writes them (UTC's dates are `{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemTime {
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub year: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub month: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub day_of_week: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub day: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub hour: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub minute: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub second: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub milliseconds: u16,
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &i32) -> bool {
    *value == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteProcessRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    pub settings: ExecuteProcessSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteProcessSettings {
    pub process_parameters: JsonString<pane_hcs::schema::ProcessParameters>,
    /// Windows guests: the hvsock service id the guest dials for each pipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_relay_settings: Option<StdioRelaySettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StdioRelaySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_in: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_out: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_err: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecuteProcessResponse {
    #[serde(flatten)]
    pub base: ResponseBase,
    #[serde(rename = "ProcessId", default)]
    pub process_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitForProcessRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    #[serde(rename = "ProcessId")]
    pub process_id: u32,
    /// `u32::MAX` waits forever, as hcsshim's outstanding wait does.
    pub timeout_in_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitForProcessResponse {
    #[serde(flatten)]
    pub base: ResponseBase,
    #[serde(default)]
    pub exit_code: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignalProcessRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    #[serde(rename = "ProcessId")]
    pub process_id: u32,
    /// `None` terminates the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<SignalOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignalOptions {
    pub signal: WindowsSignal,
}

/// Console control events a Windows guest can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowsSignal {
    CtrlC,
    CtrlBreak,
    CtrlClose,
    CtrlLogOff,
    CtrlShutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResizeConsoleRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    #[serde(rename = "ProcessId")]
    pub process_id: u32,
    pub height: u16,
    pub width: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPropertiesRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    /// A schema v2 `PropertyQuery`, e.g. `{"PropertyTypes":["SystemGUID"]}`.
    pub query: JsonString<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPropertiesResponse {
    #[serde(flatten)]
    pub base: ResponseBase,
    pub properties: JsonString<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifySettingsRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    /// A real object here, unlike the string-encoded documents elsewhere.
    pub request: crate::settings::GuestRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DumpStacksResponse {
    #[serde(flatten)]
    pub base: ResponseBase,
    #[serde(default)]
    pub guest_stacks: String,
}

/// `UpdateContainer` and `LifecycleNotification`: defined by the protocol, never sent by
/// hcsshim's host. Their bodies are passed through as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassThroughRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    #[serde(flatten)]
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// `ModifyServiceSettings` (log forwarding control).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyServiceSettingsRequest {
    #[serde(flatten)]
    pub base: RequestBase,
    pub property_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
}

/// The guest's notification about a container: it exited, or reached a lifecycle step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerNotification {
    #[serde(flatten)]
    pub base: RequestBase,
    /// `GracefulExit`, `ForcedExit`, `UnexpectedExit`, `Reboot`, `Constructed`, `Started`,
    /// `Paused` or `Unknown`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `None`, `Construct`, `Start`, `Pause`, `Resume`, `Shutdown` or `Terminate`.
    pub operation: String,
    #[serde(default)]
    pub result: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_info: String,
}

impl ContainerNotification {
    /// Whether the container is gone.
    pub fn is_exit(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "GracefulExit" | "ForcedExit" | "UnexpectedExit"
        )
    }
}

#[cfg(test)]
mod tests {
    use pane_hcs::schema::ProcessParameters;

    use super::*;

    #[test]
    fn documents_travel_as_json_strings() {
        let request = CreateRequest {
            base: RequestBase::null_container(),
            container_config: JsonString(serde_json::json!({"SystemType": "Container"})),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ContainerId": NULL_CONTAINER_ID,
                "ActivityId": "00000000-0000-0000-0000-000000000000",
                "ContainerConfig": "{\"SystemType\":\"Container\"}"
            })
        );
        let back: CreateRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn execute_process_nests_a_string_encoded_parameter_document() {
        let service = Uuid::parse_str("40000001-facb-11e6-bd58-64006a7986d3").unwrap();
        let request = ExecuteProcessRequest {
            base: RequestBase::new("c1"),
            settings: ExecuteProcessSettings {
                process_parameters: JsonString(ProcessParameters {
                    command_line: "cmd /c ver".into(),
                    create_std_out_pipe: true,
                    ..ProcessParameters::default()
                }),
                stdio_relay_settings: Some(StdioRelaySettings {
                    std_out: Some(service),
                    ..Default::default()
                }),
            },
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json["Settings"]["ProcessParameters"],
            "{\"CommandLine\":\"cmd /c ver\",\"CreateStdOutPipe\":true}"
        );
        assert_eq!(
            json["Settings"]["StdioRelaySettings"],
            serde_json::json!({"StdOut": service.to_string()})
        );
    }

    #[test]
    fn responses_read_hresults_and_error_records() {
        let response: WaitForProcessResponse = serde_json::from_str(
            r#"{"Result":-2147023728,"ErrorMessage":"not found","ErrorRecords":[{"Result":-2147023728,"Message":"no such process"}],"ExitCode":0}"#,
        )
        .unwrap();
        assert_eq!(response.base.result, -2_147_023_728);
        assert_eq!(response.base.error_records[0].message, "no such process");
        let ok: BaseResponse = serde_json::from_str(r#"{"Result":0}"#).unwrap();
        assert_eq!(ok.base.result, 0);
    }

    #[test]
    fn signal_options_are_left_out_for_terminate() {
        let terminate = SignalProcessRequest {
            base: RequestBase::new("c"),
            process_id: 4,
            options: None,
        };
        assert!(
            serde_json::to_value(&terminate)
                .unwrap()
                .get("Options")
                .is_none()
        );
        let ctrl_c = SignalProcessRequest {
            options: Some(SignalOptions {
                signal: WindowsSignal::CtrlShutdown,
            }),
            ..terminate
        };
        assert_eq!(
            serde_json::to_value(&ctrl_c).unwrap()["Options"],
            serde_json::json!({"Signal": "CtrlShutdown"})
        );
    }

    #[test]
    fn utc_time_zone_omits_zero_fields() {
        let config = UvmConfig {
            system_type: "Container".into(),
            time_zone_information: Some(TimeZoneInformation::utc()),
        };
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::json!({
                "SystemType": "Container",
                "TimeZoneInformation": {
                    "StandardName": "Coordinated Universal Time",
                    "StandardDate": {},
                    "DaylightName": "Coordinated Universal Time",
                    "DaylightDate": {}
                }
            })
        );
    }
}
