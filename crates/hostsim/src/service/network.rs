//! computenetwork's objects (HCN, `virtualization/api/hcn/` in MicrosoftDocs/Virtualization-
//! Documentation): one pre-existing `nat` network, the namespaces and endpoints clients
//! create, and the port mappings endpoints publish. State lives here, in the service, so
//! it survives a client that dies; HCN objects outlive their handles (only a delete
//! removes them), so the DLL's handles are only names and nothing here counts them.
//!
//! Documents are validated against `HNS_Schema.md` (see [`crate::schema`]) and refused with
//! `HCN_E_INVALID_JSON` and the member's path. Where the reference is silent the choice is
//! the simulator's and said so below.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::hresult::{
    ALREADY_EXISTS, E_INVALIDARG, HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS,
    HCN_E_ENDPOINT_NOT_ATTACHED, HCN_E_ENDPOINT_NOT_FOUND, HCN_E_INVALID_ENDPOINT,
    HCN_E_INVALID_INTERNAL_PORT, HCN_E_INVALID_JSON, HCN_E_INVALID_POLICY, HCN_E_NETWORK_NOT_FOUND,
    HCN_E_REQUEST_UNSUPPORTED, HCN_E_SUBNET_NOT_FOUND, HCN_PORT_IN_USE, NOT_FOUND,
};
use crate::protocol::Response;
use crate::schema;

/// `HCN_E_INVALID_IP`: an address asked for outside the network's subnet.
const HCN_E_INVALID_IP: u32 = 0x803B_001E;
/// `HCN_E_ADDR_INVALID_OR_RESERVED`: an address asked for that is taken.
const HCN_E_ADDR_INVALID_OR_RESERVED: u32 = 0x803B_002F;

/// The network every simulated host has, as Docker's Windows install leaves one.
pub const NAT_NAME: &str = "nat";
pub const NAT_SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(172, 20, 0, 0), 20);
pub const NAT_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 1);
/// A fixed id, so test scripts can name it.
pub const NAT_ID: Uuid = Uuid::from_u128(0x7a1c_0e2b_5d4f_4e6a_9b3c_2f1e_0d9c_8b7a);

const SCHEMA_VERSION: (u32, u32) = (2, 0);

/// HCN writes GUIDs upper case (`Get-HnsEndpoint`); clients must not care.
fn guid(id: Uuid) -> String {
    id.to_string().to_uppercase()
}

fn schema_version() -> Value {
    json!({ "Major": SCHEMA_VERSION.0, "Minor": SCHEMA_VERSION.1 })
}

struct Network {
    name: String,
    subnet: (Ipv4Addr, u8),
    gateway: Ipv4Addr,
}

struct Namespace {
    compartment: u32,
    kind: String,
    name: Option<String>,
    owner: Option<String>,
    endpoints: Vec<Uuid>,
}

struct PortMapping {
    protocol: u64,
    external: u16,
    vip: String,
}

struct Endpoint {
    network: Uuid,
    namespace: Option<Uuid>,
    name: Option<String>,
    owner: Option<String>,
    ip: Ipv4Addr,
    mac: String,
    policies: Vec<Value>,
    ports: Vec<PortMapping>,
}

#[derive(Default)]
struct State {
    networks: BTreeMap<Uuid, Network>,
    namespaces: BTreeMap<Uuid, Namespace>,
    endpoints: BTreeMap<Uuid, Endpoint>,
    compartments: u32,
}

/// The host's HCN state.
pub struct Networks {
    state: Mutex<State>,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Networks")
    }
}

impl Default for Networks {
    fn default() -> Self {
        let mut state = State::default();
        state.networks.insert(
            NAT_ID,
            Network {
                name: NAT_NAME.to_owned(),
                subnet: NAT_SUBNET,
                gateway: NAT_GATEWAY,
            },
        );
        Self {
            state: Mutex::new(state),
        }
    }
}

fn invalid_json(e: &schema::Invalid) -> Response {
    Response::error(
        HCN_E_INVALID_JSON,
        &format!("Invalid JSON document string: {e}"),
    )
}

fn parse_id(call: &str, id: Option<&str>) -> Result<Uuid, Response> {
    let text = id.unwrap_or_default();
    Uuid::parse_str(text.trim_matches(['{', '}'])).map_err(|_| {
        Response::error(
            E_INVALIDARG,
            &format!("{call}: {text:?} is not an object id"),
        )
    })
}

/// An optional query: absent or empty is no query.
fn query(text: Option<&str>) -> Result<Value, Response> {
    match text {
        None => Ok(Value::Null),
        Some(t) if t.trim().is_empty() => Ok(Value::Null),
        Some(t) => schema::parse(t, "HostComputeQuery").map_err(|e| invalid_json(&e)),
    }
}

fn network_not_found(id: &str) -> Response {
    Response::error(
        HCN_E_NETWORK_NOT_FOUND,
        &format!("The network was not found: {id}"),
    )
}

fn endpoint_not_found(id: &str) -> Response {
    Response::error(
        HCN_E_ENDPOINT_NOT_FOUND,
        &format!("The endpoint was not found: {id}"),
    )
}

/// hcsshim treats `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)` as a namespace that is not there.
fn namespace_not_found(id: &str) -> Response {
    Response::error(NOT_FOUND, &format!("Element not found: namespace {id}"))
}

fn protocol_number(value: Option<&Value>) -> u64 {
    match value {
        None => 6,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => match s.as_str() {
            "ICMPv4" => 1,
            "IGMP" => 2,
            "TCP" => 6,
            "UDP" => 17,
            "ICMPv6" => 58,
            _ => 0,
        },
        Some(_) => 0,
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn in_subnet(ip: Ipv4Addr, (base, prefix): (Ipv4Addr, u8)) -> bool {
    u32::from(ip) & mask(prefix) == u32::from(base) & mask(prefix)
}

impl State {
    fn network_document(id: Uuid, network: &Network) -> Value {
        let (base, prefix) = network.subnet;
        json!({
            "ID": guid(id),
            "Name": network.name,
            "Type": "NAT",
            "Ipams": [{
                "Type": "Static",
                "Subnets": [{
                    "IpAddressPrefix": format!("{base}/{prefix}"),
                    "Routes": [{"NextHop": network.gateway.to_string(), "DestinationPrefix": "0.0.0.0/0"}],
                }],
            }],
            "Flags": 0,
            "SchemaVersion": schema_version(),
        })
    }

    fn namespace_document(id: Uuid, namespace: &Namespace) -> Value {
        let resources: Vec<Value> = namespace
            .endpoints
            .iter()
            .map(|e| json!({"Type": "Endpoint", "Data": {"ID": guid(*e)}}))
            .collect();
        let mut document = json!({
            "ID": guid(id),
            "NamespaceId": namespace.compartment,
            "Type": namespace.kind,
            "Resources": resources,
            "SchemaVersion": schema_version(),
        });
        if let Some(name) = &namespace.name {
            document["Name"] = json!(name);
        }
        if let Some(owner) = &namespace.owner {
            document["Owner"] = json!(owner);
        }
        document
    }

    fn endpoint_document(&self, id: Uuid, endpoint: &Endpoint) -> Value {
        let (prefix, gateway) = self
            .networks
            .get(&endpoint.network)
            .map_or((0, Ipv4Addr::UNSPECIFIED), |n| (n.subnet.1, n.gateway));
        let mut document = json!({
            "ID": guid(id),
            "HostComputeNetwork": guid(endpoint.network),
            "Policies": endpoint.policies,
            "IpConfigurations": [{"IpAddress": endpoint.ip.to_string(), "PrefixLength": prefix}],
            "Dns": {"ServerList": [gateway.to_string()]},
            "Routes": [{"NextHop": gateway.to_string(), "DestinationPrefix": "0.0.0.0/0"}],
            "MacAddress": endpoint.mac,
            "Flags": 0,
            "SchemaVersion": schema_version(),
        });
        if let Some(namespace) = endpoint.namespace {
            document["HostComputeNamespace"] = json!(guid(namespace));
        }
        if let Some(name) = &endpoint.name {
            document["Name"] = json!(name);
        }
        if let Some(owner) = &endpoint.owner {
            document["Owner"] = json!(owner);
        }
        document
    }

    fn free_address(&self, network: &Network) -> Option<Ipv4Addr> {
        let (base, prefix) = network.subnet;
        let first = u32::from(base) & mask(prefix);
        let last = first | !mask(prefix);
        ((first + 1)..last)
            .map(Ipv4Addr::from)
            .find(|ip| *ip != network.gateway && !self.endpoints.values().any(|e| e.ip == *ip))
    }
}

impl Networks {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serves one computenetwork call.
    pub fn call(
        &self,
        call: &str,
        id: Option<&str>,
        parent: Option<&str>,
        settings: Option<&str>,
    ) -> Response {
        let result = match call {
            "HcnEnumerateNetworks" => self.enumerate_networks(settings),
            "HcnOpenNetwork" => self.open(call, id, |s, id| {
                s.networks
                    .contains_key(&id)
                    .then_some(())
                    .ok_or_else(|| network_not_found(&id.to_string()))
            }),
            "HcnQueryNetworkProperties" => self.query_network(id, settings),
            "HcnCreateNamespace" => self.create_namespace(id, settings),
            "HcnOpenNamespace" => self.open(call, id, |s, id| {
                s.namespaces
                    .contains_key(&id)
                    .then_some(())
                    .ok_or_else(|| namespace_not_found(&id.to_string()))
            }),
            "HcnModifyNamespace" => self.modify_namespace(id, settings),
            "HcnQueryNamespaceProperties" => self.query_namespace(id, settings),
            "HcnDeleteNamespace" => self.delete_namespace(id),
            "HcnCreateEndpoint" => self.create_endpoint(parent, id, settings),
            "HcnOpenEndpoint" => self.open(call, id, |s, id| {
                s.endpoints
                    .contains_key(&id)
                    .then_some(())
                    .ok_or_else(|| endpoint_not_found(&id.to_string()))
            }),
            "HcnQueryEndpointProperties" => self.query_endpoint(id, settings),
            "HcnDeleteEndpoint" => self.delete_endpoint(id),
            "HcnList" => Ok(self.list()),
            _ => Err(Response::error(
                E_INVALIDARG,
                &format!("{call}: not a computenetwork call the simulator knows"),
            )),
        };
        result.unwrap_or_else(|e| e)
    }

    fn open(
        &self,
        call: &str,
        id: Option<&str>,
        exists: impl FnOnce(&State, Uuid) -> Result<(), Response>,
    ) -> Result<Response, Response> {
        let id = parse_id(call, id)?;
        exists(&self.state(), id)?;
        Ok(Response::ok())
    }

    /// Every namespace and endpoint, for `pane-hostsim-ctl hcn-list`.
    fn list(&self) -> Response {
        let state = self.state();
        let namespaces: Vec<Value> = state
            .namespaces
            .iter()
            .map(|(id, n)| State::namespace_document(*id, n))
            .collect();
        let endpoints: Vec<Value> = state
            .endpoints
            .iter()
            .map(|(id, e)| state.endpoint_document(*id, e))
            .collect();
        Response::document(json!({"Namespaces": namespaces, "Endpoints": endpoints}).to_string())
    }

    fn enumerate_networks(&self, settings: Option<&str>) -> Result<Response, Response> {
        let query = query(settings)?;
        let filter = match query.get("Filter").and_then(Value::as_str) {
            None => serde_json::Map::new(),
            Some(f) if f.trim().is_empty() => serde_json::Map::new(),
            Some(f) => match serde_json::from_str::<Value>(f) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(invalid_json(&schema::Invalid {
                        path: "HostComputeQuery.Filter".to_owned(),
                        problem: "the filter is not a JSON object".to_owned(),
                    }));
                }
            },
        };
        let state = self.state();
        let ids: Vec<String> = state
            .networks
            .iter()
            .map(|(id, n)| State::network_document(*id, n))
            .filter(|document| filter.iter().all(|(k, v)| document.get(k) == Some(v)))
            .filter_map(|document| {
                document
                    .get("ID")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        Ok(Response::document(json!(ids).to_string()))
    }

    fn query_network(
        &self,
        id: Option<&str>,
        settings: Option<&str>,
    ) -> Result<Response, Response> {
        let id = parse_id("HcnQueryNetworkProperties", id)?;
        query(settings)?;
        let state = self.state();
        let network = state
            .networks
            .get(&id)
            .ok_or_else(|| network_not_found(&id.to_string()))?;
        Ok(Response::document(
            State::network_document(id, network).to_string(),
        ))
    }

    fn create_namespace(
        &self,
        id: Option<&str>,
        settings: Option<&str>,
    ) -> Result<Response, Response> {
        let id = parse_id("HcnCreateNamespace", id)?;
        let document = schema::parse(settings.unwrap_or_default(), "HostComputeNamespace")
            .map_err(|e| invalid_json(&e))?;
        if document
            .get("Resources")
            .is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty()))
        {
            // The simulator's choice: endpoints join through HcnModifyNamespace only.
            return Err(Response::error(
                HCN_E_REQUEST_UNSUPPORTED,
                "HcnCreateNamespace: add endpoints with HcnModifyNamespace",
            ));
        }
        let text = |key: &str| document.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut state = self.state();
        let id = if id.is_nil() { Uuid::new_v4() } else { id };
        if state.namespaces.contains_key(&id) {
            return Err(Response::error(
                ALREADY_EXISTS,
                &format!("HcnCreateNamespace: a namespace {id} exists already"),
            ));
        }
        state.compartments += 1;
        let namespace = Namespace {
            compartment: state.compartments,
            kind: text("Type").unwrap_or_else(|| "Host".to_owned()),
            name: text("Name"),
            owner: text("Owner"),
            endpoints: Vec::new(),
        };
        let document = State::namespace_document(id, &namespace);
        state.namespaces.insert(id, namespace);
        Ok(Response::document(document.to_string()))
    }

    fn modify_namespace(
        &self,
        id: Option<&str>,
        settings: Option<&str>,
    ) -> Result<Response, Response> {
        let id = parse_id("HcnModifyNamespace", id)?;
        let request = schema::parse(
            settings.unwrap_or_default(),
            "ModifyNamespaceSettingRequest",
        )
        .map_err(|e| invalid_json(&e))?;
        let resource = request.get("ResourceType").and_then(Value::as_str);
        let kind = request.get("RequestType").and_then(Value::as_str);
        if resource != Some("Endpoint") || !matches!(kind, Some("Add" | "Remove")) {
            return Err(Response::error(
                HCN_E_REQUEST_UNSUPPORTED,
                &format!(
                    "HcnModifyNamespace: {} {} is not simulated (Endpoint Add and Remove are)",
                    kind.unwrap_or("(no RequestType)"),
                    resource.unwrap_or("(no ResourceType)")
                ),
            ));
        }
        let settings = request.get("Settings").cloned().unwrap_or(Value::Null);
        schema::validate(
            &settings,
            schema::Ty::Struct("NamespaceEndpointRequest"),
            "ModifyNamespaceSettingRequest.Settings",
        )
        .map_err(|e| invalid_json(&e))?;
        let endpoint_id = settings
            .get("EndpointId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s.trim_matches(['{', '}'])).ok())
            .ok_or_else(|| Response::error(E_INVALIDARG, "EndpointId is not a GUID"))?;
        let mut state = self.state();
        if !state.namespaces.contains_key(&id) {
            return Err(namespace_not_found(&id.to_string()));
        }
        let attached = state
            .endpoints
            .get(&endpoint_id)
            .ok_or_else(|| endpoint_not_found(&endpoint_id.to_string()))?
            .namespace;
        if kind == Some("Add") {
            if let Some(other) = attached {
                return Err(Response::error(
                    HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS,
                    &format!(
                        "This requested operation is invalid as endpoint is already part of a network namespace: {endpoint_id} is in {other}"
                    ),
                ));
            }
            if let Some(e) = state.endpoints.get_mut(&endpoint_id) {
                e.namespace = Some(id);
            }
            if let Some(n) = state.namespaces.get_mut(&id) {
                n.endpoints.push(endpoint_id);
            }
        } else {
            if attached != Some(id) {
                return Err(Response::error(
                    HCN_E_ENDPOINT_NOT_ATTACHED,
                    &format!("endpoint {endpoint_id} is not in namespace {id}"),
                ));
            }
            if let Some(e) = state.endpoints.get_mut(&endpoint_id) {
                e.namespace = None;
            }
            if let Some(n) = state.namespaces.get_mut(&id) {
                n.endpoints.retain(|e| *e != endpoint_id);
            }
        }
        Ok(Response::ok())
    }

    fn query_namespace(
        &self,
        id: Option<&str>,
        settings: Option<&str>,
    ) -> Result<Response, Response> {
        let id = parse_id("HcnQueryNamespaceProperties", id)?;
        query(settings)?;
        let state = self.state();
        let namespace = state
            .namespaces
            .get(&id)
            .ok_or_else(|| namespace_not_found(&id.to_string()))?;
        Ok(Response::document(
            State::namespace_document(id, namespace).to_string(),
        ))
    }

    /// The simulator's choice: the namespace's endpoints stay, outside any namespace.
    fn delete_namespace(&self, id: Option<&str>) -> Result<Response, Response> {
        let id = parse_id("HcnDeleteNamespace", id)?;
        let mut state = self.state();
        let namespace = state
            .namespaces
            .remove(&id)
            .ok_or_else(|| namespace_not_found(&id.to_string()))?;
        for endpoint in namespace.endpoints {
            if let Some(e) = state.endpoints.get_mut(&endpoint) {
                e.namespace = None;
            }
        }
        Ok(Response::ok())
    }

    #[allow(clippy::too_many_lines)] // validation, address, ports, one after the other
    fn create_endpoint(
        &self,
        network: Option<&str>,
        id: Option<&str>,
        settings: Option<&str>,
    ) -> Result<Response, Response> {
        let network_id = parse_id("HcnCreateEndpoint", network)?;
        let id = parse_id("HcnCreateEndpoint", id)?;
        let document = schema::parse(settings.unwrap_or_default(), "HostComputeEndpoint")
            .map_err(|e| invalid_json(&e))?;
        if let Some(named) = document.get("HostComputeNetwork").and_then(Value::as_str)
            && Uuid::parse_str(named.trim_matches(['{', '}'])).ok() != Some(network_id)
        {
            return Err(Response::error(
                HCN_E_INVALID_ENDPOINT,
                &format!(
                    "HostComputeEndpoint.HostComputeNetwork {named} is not the network {network_id} the endpoint is created on"
                ),
            ));
        }
        if document.get("HostComputeNamespace").is_some() {
            // The simulator's choice: endpoints join a namespace through HcnModifyNamespace.
            return Err(Response::error(
                HCN_E_REQUEST_UNSUPPORTED,
                "HcnCreateEndpoint: add the endpoint to its namespace with HcnModifyNamespace",
            ));
        }
        let policies: Vec<Value> = document
            .get("Policies")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut ports: Vec<PortMapping> = Vec::new();
        for (index, policy) in policies.iter().enumerate() {
            if policy.get("Type").and_then(Value::as_str) != Some("PortMapping") {
                continue;
            }
            let path = format!("HostComputeEndpoint.Policies[{index}].Settings");
            let Some(settings) = policy.get("Settings") else {
                return Err(Response::error(
                    HCN_E_INVALID_POLICY,
                    &format!("{path}: a PortMapping policy needs its settings"),
                ));
            };
            schema::validate(
                settings,
                schema::Ty::Struct("PortMappingPolicySetting"),
                &path,
            )
            .map_err(|e| invalid_json(&e))?;
            let port = |key: &str| {
                settings
                    .get(key)
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0)
            };
            if port("InternalPort") == 0 {
                return Err(Response::error(
                    HCN_E_INVALID_INTERNAL_PORT,
                    &format!("{path}: The internal port must exist and cannot be zero"),
                ));
            }
            let mapping = PortMapping {
                protocol: protocol_number(settings.get("Protocol")),
                external: port("ExternalPort"),
                vip: settings
                    .get("VIP")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            };
            if mapping.external != 0
                && ports.iter().any(|p| {
                    p.protocol == mapping.protocol
                        && p.external == mapping.external
                        && p.vip == mapping.vip
                })
            {
                return Err(port_in_use(&mapping, "this endpoint"));
            }
            ports.push(mapping);
        }
        let mut state = self.state();
        let Some(network) = state.networks.get(&network_id) else {
            return Err(network_not_found(&network_id.to_string()));
        };
        let id = if id.is_nil() { Uuid::new_v4() } else { id };
        if state.endpoints.contains_key(&id) {
            return Err(Response::error(
                ALREADY_EXISTS,
                &format!("HcnCreateEndpoint: an endpoint {id} exists already"),
            ));
        }
        for mapping in ports.iter().filter(|p| p.external != 0) {
            if let Some((other, _)) = state.endpoints.iter().find(|(_, e)| {
                e.ports.iter().any(|p| {
                    p.protocol == mapping.protocol
                        && p.external == mapping.external
                        && (p.vip == mapping.vip || p.vip.is_empty() || mapping.vip.is_empty())
                })
            }) {
                return Err(port_in_use(mapping, &format!("endpoint {other}")));
            }
        }
        let requested = document
            .get("IpConfigurations")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("IpAddress"))
            .and_then(Value::as_str);
        let ip = match requested {
            Some(text) => {
                let ip: Ipv4Addr = text.parse().map_err(|_| {
                    Response::error(
                        HCN_E_INVALID_IP,
                        &format!("{text:?} is not an IPv4 address"),
                    )
                })?;
                if !in_subnet(ip, network.subnet) || ip == network.gateway {
                    return Err(Response::error(
                        HCN_E_INVALID_IP,
                        &format!("{ip} is not part of any configured subnet"),
                    ));
                }
                if state.endpoints.values().any(|e| e.ip == ip) {
                    return Err(Response::error(
                        HCN_E_ADDR_INVALID_OR_RESERVED,
                        &format!("{ip} is in use"),
                    ));
                }
                ip
            }
            None => state.free_address(network).ok_or_else(|| {
                Response::error(
                    HCN_E_SUBNET_NOT_FOUND,
                    "the network's subnet has no free address",
                )
            })?,
        };
        let bytes = id.as_bytes();
        let mac = format!(
            "00-15-5D-{:02X}-{:02X}-{:02X}",
            bytes[13], bytes[14], bytes[15]
        );
        let text = |key: &str| document.get(key).and_then(Value::as_str).map(str::to_owned);
        let endpoint = Endpoint {
            network: network_id,
            namespace: None,
            name: text("Name"),
            owner: text("Owner"),
            ip,
            mac,
            policies,
            ports,
        };
        let document = state.endpoint_document(id, &endpoint);
        state.endpoints.insert(id, endpoint);
        Ok(Response::document(document.to_string()))
    }

    fn query_endpoint(
        &self,
        id: Option<&str>,
        settings: Option<&str>,
    ) -> Result<Response, Response> {
        let id = parse_id("HcnQueryEndpointProperties", id)?;
        query(settings)?;
        let state = self.state();
        let endpoint = state
            .endpoints
            .get(&id)
            .ok_or_else(|| endpoint_not_found(&id.to_string()))?;
        Ok(Response::document(
            state.endpoint_document(id, endpoint).to_string(),
        ))
    }

    /// The simulator's choice: an endpoint in a namespace leaves it as it goes.
    fn delete_endpoint(&self, id: Option<&str>) -> Result<Response, Response> {
        let id = parse_id("HcnDeleteEndpoint", id)?;
        let mut state = self.state();
        let endpoint = state
            .endpoints
            .remove(&id)
            .ok_or_else(|| endpoint_not_found(&id.to_string()))?;
        if let Some(namespace) = endpoint.namespace
            && let Some(n) = state.namespaces.get_mut(&namespace)
        {
            n.endpoints.retain(|e| *e != id);
        }
        Ok(Response::ok())
    }
}

fn port_in_use(mapping: &PortMapping, holder: &str) -> Response {
    Response::error(
        HCN_PORT_IN_USE,
        &format!(
            "The process cannot access the file because it is being used by another process: external port {} (protocol {}) is published by {holder}",
            mapping.external, mapping.protocol
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: &Networks, call: &str, id: Option<&str>, settings: Option<&str>) -> Response {
        n.call(call, id, None, settings)
    }

    fn endpoint(n: &Networks, id: Uuid, ports: &str) -> Response {
        let settings = format!(
            r#"{{"Name":"e","HostComputeNetwork":"{NAT_ID}","Policies":[{ports}],"SchemaVersion":{{"Major":2,"Minor":0}}}}"#
        );
        n.call(
            "HcnCreateEndpoint",
            Some(&id.to_string()),
            Some(&NAT_ID.to_string()),
            Some(&settings),
        )
    }

    const PORT_8080: &str =
        r#"{"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}}"#;

    #[test]
    fn the_nat_network_is_found_by_name() {
        let n = Networks::default();
        let found = call(
            &n,
            "HcnEnumerateNetworks",
            None,
            Some(
                r#"{"SchemaVersion":{"Major":2,"Minor":0},"Flags":0,"Filter":"{\"Name\":\"nat\"}"}"#,
            ),
        );
        let ids: Vec<String> = serde_json::from_str(&found.document.unwrap()).unwrap();
        assert_eq!(ids, vec![guid(NAT_ID)]);
        let none = call(
            &n,
            "HcnEnumerateNetworks",
            None,
            Some(r#"{"Filter":"{\"Name\":\"other\"}"}"#),
        );
        assert_eq!(none.document.as_deref(), Some("[]"));
        let props = call(
            &n,
            "HcnQueryNetworkProperties",
            Some(&NAT_ID.to_string()),
            None,
        );
        let doc: Value = serde_json::from_str(&props.document.unwrap()).unwrap();
        assert_eq!(doc["Type"], "NAT");
        assert_eq!(
            doc["Ipams"][0]["Subnets"][0]["IpAddressPrefix"],
            "172.20.0.0/20"
        );
        let missing = call(
            &n,
            "HcnOpenNetwork",
            Some(&Uuid::from_u128(9).to_string()),
            None,
        );
        assert_eq!(missing.hresult, HCN_E_NETWORK_NOT_FOUND);
    }

    #[test]
    fn endpoints_get_addresses_join_namespaces_and_leave() {
        let n = Networks::default();
        let (ns, ep) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let created = call(
            &n,
            "HcnCreateNamespace",
            Some(&ns.to_string()),
            Some(
                r#"{"ID":"00000000-0000-0000-0000-000000000001","Type":"Host","SchemaVersion":{"Major":2,"Minor":0}}"#,
            ),
        );
        assert_eq!(created.hresult, 0, "{created:?}");
        let made = endpoint(&n, ep, PORT_8080);
        let doc: Value = serde_json::from_str(&made.document.unwrap()).unwrap();
        let ip: Ipv4Addr = doc["IpConfigurations"][0]["IpAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(in_subnet(ip, NAT_SUBNET) && ip != NAT_GATEWAY);
        let add = format!(
            r#"{{"ResourceType":"Endpoint","RequestType":"Add","Settings":{{"EndpointId":"{ep}"}}}}"#
        );
        assert_eq!(
            call(&n, "HcnModifyNamespace", Some(&ns.to_string()), Some(&add)).hresult,
            0
        );
        assert_eq!(
            call(&n, "HcnModifyNamespace", Some(&ns.to_string()), Some(&add)).hresult,
            HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS
        );
        let props = call(
            &n,
            "HcnQueryNamespaceProperties",
            Some(&ns.to_string()),
            None,
        );
        let doc: Value = serde_json::from_str(&props.document.unwrap()).unwrap();
        assert_eq!(doc["Resources"][0]["Type"], "Endpoint");
        assert_eq!(doc["Resources"][0]["Data"]["ID"], guid(ep));
        assert_eq!(
            call(&n, "HcnDeleteEndpoint", Some(&ep.to_string()), None).hresult,
            0
        );
        assert_eq!(
            call(&n, "HcnDeleteEndpoint", Some(&ep.to_string()), None).hresult,
            HCN_E_ENDPOINT_NOT_FOUND
        );
        assert_eq!(
            call(&n, "HcnDeleteNamespace", Some(&ns.to_string()), None).hresult,
            0
        );
        assert_eq!(
            call(&n, "HcnDeleteNamespace", Some(&ns.to_string()), None).hresult,
            NOT_FOUND
        );
        let list: Value =
            serde_json::from_str(&n.call("HcnList", None, None, None).document.unwrap()).unwrap();
        assert_eq!(list, json!({"Namespaces": [], "Endpoints": []}));
    }

    #[test]
    fn a_published_port_is_refused_to_a_second_endpoint() {
        let n = Networks::default();
        assert_eq!(endpoint(&n, Uuid::from_u128(1), PORT_8080).hresult, 0);
        assert_eq!(
            endpoint(&n, Uuid::from_u128(2), PORT_8080).hresult,
            HCN_PORT_IN_USE
        );
        let udp = PORT_8080.replace("\"Protocol\":6", "\"Protocol\":\"UDP\"");
        assert_eq!(endpoint(&n, Uuid::from_u128(3), &udp).hresult, 0);
        n.call(
            "HcnDeleteEndpoint",
            Some(&Uuid::from_u128(1).to_string()),
            None,
            None,
        );
        assert_eq!(endpoint(&n, Uuid::from_u128(2), PORT_8080).hresult, 0);
        let zero = PORT_8080.replace("\"InternalPort\":80", "\"InternalPort\":0");
        assert_eq!(
            endpoint(&n, Uuid::from_u128(4), &zero).hresult,
            HCN_E_INVALID_INTERNAL_PORT
        );
    }

    #[test]
    fn unknown_members_are_refused_with_their_path() {
        let n = Networks::default();
        let bad = PORT_8080.replace("ExternalPort", "HostPort");
        let refused = endpoint(&n, Uuid::from_u128(1), &bad);
        assert_eq!(refused.hresult, HCN_E_INVALID_JSON);
        assert!(
            refused
                .document
                .unwrap()
                .contains("HostComputeEndpoint.Policies[0].Settings.HostPort")
        );
        let refused = call(
            &n,
            "HcnCreateNamespace",
            Some(&Uuid::from_u128(5).to_string()),
            Some(r#"{"Type":"Hots"}"#),
        );
        assert_eq!(refused.hresult, HCN_E_INVALID_JSON);
        let modify = call(
            &n,
            "HcnModifyNamespace",
            Some(&Uuid::from_u128(5).to_string()),
            Some(
                r#"{"ResourceType":"Endpoint","RequestType":"Add","Settings":{"EndpointID":"x"}}"#,
            ),
        );
        assert_eq!(modify.hresult, HCN_E_INVALID_JSON);
        assert!(
            modify
                .document
                .unwrap()
                .contains("ModifyNamespaceSettingRequest.Settings.EndpointID")
        );
    }
}
