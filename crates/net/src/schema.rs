//! HCN schema 2.0 documents, field for field as hcsshim's `hcn` package sends them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchemaVersion {
    pub major: u32,
    pub minor: u32,
}

impl Default for SchemaVersion {
    fn default() -> Self {
        Self { major: 2, minor: 0 }
    }
}

/// A query for the enumerate calls: `Filter` is itself a JSON document, as a string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostComputeQuery {
    pub schema_version: SchemaVersion,
    pub flags: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter: String,
}

impl HostComputeQuery {
    /// Objects whose `field` equals `value`.
    pub fn matching(field: &str, value: &str) -> Self {
        Self {
            filter: serde_json::json!({ field: value }).to_string(),
            ..Self::default()
        }
    }
}

/// A network compartment (`HostComputeNamespace`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostComputeNamespace {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Host`, `HostDefault`, `Guest` or `GuestDefault`.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(rename = "SchemaVersion", default)]
    pub schema_version: SchemaVersion,
    /// Everything else HCN reports (`NamespaceId`, `Resources`), kept for the guest.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl HostComputeNamespace {
    /// A namespace for one container, in a compartment of its own.
    pub fn for_container(id: Uuid) -> Self {
        Self {
            id: Some(id.to_string()),
            kind: Some("Host".to_owned()),
            ..Self::default()
        }
    }
}

/// Adds an endpoint to, or removes it from, a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyNamespaceSettingRequest {
    /// `Endpoint` or `Container`.
    pub resource_type: String,
    /// `Add`, `Remove`, `Update` or `Refresh`.
    pub request_type: String,
    pub settings: serde_json::Value,
}

impl ModifyNamespaceSettingRequest {
    pub fn add_endpoint(endpoint: Uuid) -> Self {
        Self {
            resource_type: "Endpoint".to_owned(),
            request_type: "Add".to_owned(),
            settings: serde_json::json!({ "EndpointId": endpoint.to_string() }),
        }
    }
}

/// A policy on an endpoint: `Type` names it, `Settings` is its own document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointPolicy {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

/// IP protocol numbers HCN's port mappings take.
pub const PROTOCOL_TCP: u32 = 6;
pub const PROTOCOL_UDP: u32 = 17;

impl EndpointPolicy {
    /// Publishes `internal` (the container's port) on the host's `external` port (NAT).
    pub fn port_mapping(protocol: u32, internal: u16, external: u16) -> Self {
        Self {
            kind: "PortMapping".to_owned(),
            settings: serde_json::json!({
                "Protocol": protocol,
                "InternalPort": internal,
                "ExternalPort": external,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpConfig {
    pub ip_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<u8>,
}

/// An endpoint on a network (`HostComputeEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostComputeEndpoint {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The network's id.
    #[serde(
        rename = "HostComputeNetwork",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network: Option<String>,
    #[serde(
        rename = "HostComputeNamespace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<String>,
    #[serde(rename = "Policies", default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<EndpointPolicy>,
    #[serde(
        rename = "IpConfigurations",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_configurations: Vec<IpConfig>,
    #[serde(
        rename = "MacAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<String>,
    #[serde(rename = "SchemaVersion", default)]
    pub schema_version: SchemaVersion,
    /// Everything else HCN reports (policies, DNS, routes, flags), kept for the guest.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl HostComputeEndpoint {
    /// The first address HCN assigned.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.ip_configurations
            .iter()
            .find_map(|c| c.ip_address.parse().ok())
    }
}

/// The endpoints a namespace holds, from its document as HCN reports it: its
/// `Resources` of `Type` `Endpoint`, each with the endpoint's `ID` in `Data` (what
/// hcsshim's `GetNamespaceEndpointIds` reads). CNI plugins on Windows add their
/// endpoints to the namespace the runtime made; this is how the runtime finds them.
pub fn namespace_endpoint_ids(namespace: &serde_json::Value) -> Vec<Uuid> {
    let Some(resources) = namespace.get("Resources").and_then(|r| r.as_array()) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|r| r.get("Type").and_then(|t| t.as_str()) == Some("Endpoint"))
        .filter_map(|r| {
            let data = r.get("Data")?;
            let id = data.get("ID").or_else(|| data.get("Id"))?.as_str()?;
            Uuid::parse_str(id.trim_matches(['{', '}'])).ok()
        })
        .collect()
}

/// A network as `pane network ls` shows it (`HostComputeNetwork`, the members read).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostComputeNetwork {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    /// `NAT`, `Transparent`, `L2Bridge`, `Overlay`, `ICS`, ...
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Ipams", default)]
    pub ipams: Vec<Ipam>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ipam {
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Subnets", default)]
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subnet {
    #[serde(rename = "IpAddressPrefix", default)]
    pub ip_address_prefix: String,
}

impl HostComputeNetwork {
    /// Its subnets' prefixes.
    pub fn subnets(&self) -> Vec<String> {
        self.ipams
            .iter()
            .flat_map(|i| i.subnets.iter().map(|s| s.ip_address_prefix.clone()))
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_use_hcn_field_names() {
        let id = Uuid::from_u128(1);
        let namespace = serde_json::to_value(HostComputeNamespace::for_container(id)).unwrap();
        assert_eq!(
            namespace,
            serde_json::json!({"ID": id.to_string(), "Type": "Host", "SchemaVersion": {"Major": 2, "Minor": 0}})
        );
        let query = serde_json::to_value(HostComputeQuery::matching("Name", "nat")).unwrap();
        assert_eq!(
            query,
            serde_json::json!({"SchemaVersion": {"Major": 2, "Minor": 0}, "Flags": 0, "Filter": "{\"Name\":\"nat\"}"})
        );
        let policy =
            serde_json::to_value(EndpointPolicy::port_mapping(PROTOCOL_TCP, 80, 8080)).unwrap();
        assert_eq!(
            policy,
            serde_json::json!({"Type": "PortMapping", "Settings": {"Protocol": 6, "InternalPort": 80, "ExternalPort": 8080}})
        );
        let add = serde_json::to_value(ModifyNamespaceSettingRequest::add_endpoint(id)).unwrap();
        assert_eq!(add["ResourceType"], "Endpoint");
        assert_eq!(add["Settings"]["EndpointId"], id.to_string());
    }

    #[test]
    fn a_namespace_lists_its_endpoints_in_its_resources() {
        let reported = serde_json::json!({
            "ID": "5f1ec0de-0000-4000-8000-000000000009",
            "Resources": [
                {"Type": "Container", "Data": {"Id": "abc"}},
                {"Type": "Endpoint", "Data": {"ID": "{5F1EC0DE-0000-4000-8000-000000000001}"}},
                {"Type": "Endpoint", "Data": {"Id": "5f1ec0de-0000-4000-8000-000000000002"}},
                {"Type": "Endpoint", "Data": {"ID": "not-a-guid"}}
            ]
        });
        assert_eq!(
            namespace_endpoint_ids(&reported),
            vec![
                Uuid::from_u128(0x5f1e_c0de_0000_4000_8000_0000_0000_0001),
                Uuid::from_u128(0x5f1e_c0de_0000_4000_8000_0000_0000_0002)
            ]
        );
        assert!(namespace_endpoint_ids(&serde_json::json!({"ID": "x"})).is_empty());
    }

    #[test]
    fn a_network_shows_its_subnets() {
        let network: HostComputeNetwork = serde_json::from_value(serde_json::json!({
            "ID": "b2d6a1c4-0000-4000-8000-000000000002", "Name": "nat", "Type": "NAT",
            "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "172.20.0.0/20"}]}],
            "Flags": 0
        }))
        .unwrap();
        assert_eq!(network.subnets(), vec!["172.20.0.0/20".to_owned()]);
        assert_eq!(network.kind, "NAT");
    }

    #[test]
    fn an_endpoint_as_hcn_reports_it_keeps_what_pane_does_not_model() {
        let reported = serde_json::json!({
            "ID": "5f1ec0de-0000-4000-8000-000000000001",
            "HostComputeNetwork": "b2d6a1c4-0000-4000-8000-000000000002",
            "IpConfigurations": [{"IpAddress": "172.20.1.5", "PrefixLength": 24}],
            "MacAddress": "00-15-5D-01-02-03",
            "Dns": {"ServerList": ["172.20.1.1"]},
            "SchemaVersion": {"Major": 2, "Minor": 0}
        });
        let endpoint: HostComputeEndpoint = serde_json::from_value(reported.clone()).unwrap();
        assert_eq!(endpoint.ip(), Some("172.20.1.5".parse().unwrap()));
        assert_eq!(
            serde_json::to_value(&endpoint).unwrap(),
            reported,
            "round trip"
        );
    }
}
