//! Plugin results and errors, and the conversion of a result between the versions
//! pane speaks.
//!
//! A result is kept as the JSON the plugin printed (converted in place), so fields pane
//! does not model pass on to the next plugin untouched; [`CniResult`] is the typed view.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::version::{Version, parse_version};

/// The typed view of a result (the 1.0 shape; older results are converted first).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace the interface is in; absent for a host interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfig {
    /// CIDR notation, such as `10.1.0.5/24`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The error object a plugin prints on failure.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ErrorObject {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

/// The well-known error codes of the specification (0-99 are reserved; 100 and above
/// are the plugin's own).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const CONTAINER_UNKNOWN: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;

    /// The specification's description of a well-known code.
    pub fn describe(code: u32) -> Option<&'static str> {
        Some(match code {
            INCOMPATIBLE_VERSION => "incompatible CNI version",
            UNSUPPORTED_FIELD => "unsupported field in network configuration",
            CONTAINER_UNKNOWN => "container unknown or does not exist",
            INVALID_ENVIRONMENT => "invalid necessary environment variables",
            IO_FAILURE => "I/O failure",
            DECODE_FAILURE => "failed to decode content",
            INVALID_NETWORK_CONFIG => "invalid network config",
            TRY_AGAIN_LATER => "try again later",
            NOT_AVAILABLE => "the plugin is not available",
            LIMITED_CONNECTIVITY => {
                "the plugin is not available, and existing containers may have limited connectivity"
            }
            _ => return None,
        })
    }
}

/// Reads a plugin's ADD output and converts it to `to` (the configuration's version),
/// keeping every field pane does not know.
pub fn convert_result(output: &[u8], to: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(output).map_err(|e| format!("the result is not valid JSON: {e}"))?;
    convert_value(value, to)
}

pub(crate) fn convert_value(value: Value, to: &str) -> Result<Value, String> {
    let Value::Object(mut result) = value else {
        return Err("the result is not a JSON object".into());
    };
    let from_text = match result.get("cniVersion") {
        Some(Value::String(v)) => v.clone(),
        _ => return Err("the result has no `cniVersion`".into()),
    };
    let from = parse_version(&from_text)?;
    if !from.is_supported() {
        return Err(format!(
            "result version {from_text} is not supported (pane reads {})",
            Version::SUPPORTED_TEXT
        ));
    }
    let target = parse_version(to)?;
    // 0.3.0 to 1.1.0 share one shape except the IPs' `version`: 1.0 dropped it, older
    // readers need it.
    if let Some(Value::Array(ips)) = result.get_mut("ips") {
        for ip in ips {
            let Value::Object(ip) = ip else {
                return Err("an entry of `ips` is not an object".into());
            };
            if target.ips_have_version() {
                if !ip.contains_key("version") {
                    let family = match ip.get("address") {
                        Some(Value::String(a)) if a.contains(':') => "6",
                        Some(Value::String(_)) => "4",
                        _ => return Err("an entry of `ips` has no `address`".into()),
                    };
                    ip.insert("version".into(), family.into());
                }
            } else {
                ip.remove("version");
            }
        }
    }
    result.insert("cniVersion".into(), to.into());
    let value = Value::Object(result);
    // Refuse a result whose known fields have the wrong types before anyone relies on it.
    serde_json::from_value::<CniResult>(value.clone())
        .map_err(|e| format!("the result is malformed: {e}"))?;
    Ok(value)
}

/// The typed view of a converted result.
pub fn typed(result: &Value) -> Result<CniResult, String> {
    serde_json::from_value(result.clone()).map_err(|e| format!("the result is malformed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn up_conversion_drops_ip_versions_and_keeps_unknown_fields() {
        let old = json!({
            "cniVersion": "0.3.1",
            "ips": [{ "version": "4", "address": "10.0.0.2/24", "x-vendor": 1 }],
            "vendorTop": "kept",
        });
        let new = convert_value(old, "1.1.0").unwrap();
        assert_eq!(
            new,
            json!({ "cniVersion": "1.1.0", "ips": [{ "address": "10.0.0.2/24", "x-vendor": 1 }], "vendorTop": "kept" })
        );
    }

    #[test]
    fn down_conversion_adds_the_family() {
        let new = json!({ "cniVersion": "1.0.0", "ips": [{ "address": "10.0.0.2/24" }, { "address": "fd00::2/64" }] });
        let old = convert_value(new, "0.3.0").unwrap();
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert_eq!(old["cniVersion"], "0.3.0");
    }

    #[test]
    fn results_without_a_usable_version_or_shape_are_refused() {
        for bad in [
            json!([]),
            json!({ "ips": [] }),
            json!({ "cniVersion": "0.2.0" }),
            json!({ "cniVersion": "2.0.0" }),
            json!({ "cniVersion": "1.0.0", "ips": [{}] }),
            json!({ "cniVersion": "1.0.0", "ips": [{ "address": "10.0.0.2/24", "interface": -1 }] }),
            json!({ "cniVersion": "1.0.0", "dns": { "nameservers": "8.8.8.8" } }),
        ] {
            assert!(convert_value(bad.clone(), "1.0.0").is_err(), "{bad}");
        }
    }
}
