//! A test double of HCN behind [`Network`]: named networks that hand out addresses from
//! their subnet, namespaces, endpoints that must land in an existing namespace, HCN's
//! not-found errors, and failures injected into any named call.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use async_trait::async_trait;
use pane_runtime::backend::{Endpoint, HostError, Network, PublishedPort};
use serde_json::json;
use uuid::Uuid;

pub const HCN_E_NETWORK_NOT_FOUND: u32 = 0x803B_0001;
pub const HCN_E_ENDPOINT_NOT_FOUND: u32 = 0x803B_0002;
pub const ERROR_NOT_FOUND: u32 = 0x8007_0490;
pub const ERROR_ALREADY_EXISTS: u32 = 0x8007_00B7;
pub const HCN_E_PORT_ALREADY_EXISTS: u32 = 0x803B_0013;

#[derive(Default)]
struct State {
    /// Network name → (subnet prefix, last host number handed out).
    networks: BTreeMap<String, ([u8; 3], u8)>,
    namespaces: BTreeSet<Uuid>,
    endpoints: BTreeMap<Uuid, (String, Uuid, Vec<PublishedPort>)>,
    /// The MAC address HCN gave each endpoint it created.
    macs: BTreeMap<Uuid, String>,
    faults: Vec<(&'static str, u32)>,
    /// Where other processes (stand-ins for Windows CNI plugins, which reach HCN from
    /// their own process) leave the endpoints they attach: `<dir>/<namespace>/<id>.json`.
    plugin_dir: Option<std::path::PathBuf>,
}

pub struct FakeNetwork {
    state: Mutex<State>,
}

impl Default for FakeNetwork {
    /// One network, `nat`, on 172.20.0.0/24, as a Windows host's default.
    fn default() -> Self {
        let network = Self {
            state: Mutex::default(),
        };
        network.add_network("nat", [172, 20, 0]);
        network
    }
}

impl FakeNetwork {
    pub fn add_network(&self, name: &str, prefix: [u8; 3]) {
        self.state
            .lock()
            .unwrap()
            .networks
            .insert(name.to_owned(), (prefix, 1));
    }

    /// Endpoints other processes attach to a namespace appear in it as they would in
    /// HCN: read from `dir/<namespace GUID>/<endpoint GUID>.json`.
    pub fn share_with_plugins(&self, dir: &std::path::Path) {
        self.state.lock().unwrap().plugin_dir = Some(dir.to_owned());
    }

    /// The next `call` fails with `hresult`.
    pub fn fail_once(&self, call: &'static str, hresult: u32) {
        self.state.lock().unwrap().faults.push((call, hresult));
    }

    /// The MAC address endpoint `id` was given, if it was created.
    pub fn mac_of(&self, id: Uuid) -> Option<String> {
        self.state.lock().unwrap().macs.get(&id).cloned()
    }

    /// The ports published through endpoint `id`.
    pub fn published(&self, id: Uuid) -> Vec<PublishedPort> {
        self.state
            .lock()
            .unwrap()
            .endpoints
            .get(&id)
            .map(|(_, _, ports)| ports.clone())
            .unwrap_or_default()
    }

    /// Namespaces and endpoints that exist.
    pub fn leftovers(&self) -> (Vec<Uuid>, Vec<Uuid>) {
        let state = self.state.lock().unwrap();
        (
            state.namespaces.iter().copied().collect(),
            state.endpoints.keys().copied().collect(),
        )
    }

    fn enter(&self, call: &'static str) -> Result<std::sync::MutexGuard<'_, State>, HostError> {
        let mut state = self.state.lock().unwrap();
        if let Some(index) = state.faults.iter().position(|(c, _)| *c == call) {
            let (_, hresult) = state.faults.remove(index);
            return Err(HostError::new(call, hresult, "injected"));
        }
        Ok(state)
    }
}

#[async_trait]
impl Network for FakeNetwork {
    async fn create_namespace(&self, id: Uuid) -> Result<serde_json::Value, HostError> {
        let mut state = self.enter("HcnCreateNamespace")?;
        if !state.namespaces.insert(id) {
            return Err(HostError::new(
                "HcnCreateNamespace",
                ERROR_ALREADY_EXISTS,
                id.to_string(),
            ));
        }
        Ok(
            json!({"ID": id.to_string(), "Type": "HostDefault", "SchemaVersion": {"Major": 2, "Minor": 0}}),
        )
    }

    async fn delete_namespace(&self, id: Uuid) -> Result<(), HostError> {
        let mut state = self.enter("HcnDeleteNamespace")?;
        state.namespaces.remove(&id);
        Ok(())
    }

    async fn create_endpoint(
        &self,
        network: &str,
        id: Uuid,
        namespace: Uuid,
        ports: &[PublishedPort],
    ) -> Result<Endpoint, HostError> {
        let mut state = self.enter("HcnCreateEndpoint")?;
        // A host port is published once, whichever endpoint holds it.
        let taken = state
            .endpoints
            .values()
            .flat_map(|(_, _, p)| p)
            .find(|held| {
                ports
                    .iter()
                    .any(|p| p.host_port == held.host_port && p.protocol == held.protocol)
            });
        if let Some(held) = taken {
            return Err(HostError::new(
                "HcnCreateEndpoint",
                HCN_E_PORT_ALREADY_EXISTS,
                format!("host port {} is already published", held.host_port),
            ));
        }
        if !state.namespaces.contains(&namespace) {
            return Err(HostError::new(
                "HcnModifyNamespace",
                ERROR_NOT_FOUND,
                namespace.to_string(),
            ));
        }
        let Some((prefix, last)) = state.networks.get_mut(network) else {
            return Err(HostError::new(
                "HcnEnumerateNetworks",
                HCN_E_NETWORK_NOT_FOUND,
                format!("no network named {network}"),
            ));
        };
        *last += 1;
        let ip = Ipv4Addr::new(prefix[0], prefix[1], prefix[2], *last);
        state
            .endpoints
            .insert(id, (network.to_owned(), namespace, ports.to_vec()));
        let mac = format!("00-15-5D-00-00-{:02X}", ip.octets()[3]);
        state.macs.insert(id, mac.clone());
        Ok(Endpoint {
            id,
            network: network.to_owned(),
            ip: Some(IpAddr::V4(ip)),
            mac: Some(mac.clone()),
            document: json!({
                "ID": id.to_string(),
                "HostComputeNamespace": namespace.to_string(),
                "IpConfigurations": [{"IpAddress": ip.to_string(), "PrefixLength": 24}],
                "MacAddress": mac,
            }),
        })
    }

    async fn delete_endpoint(&self, id: Uuid) -> Result<(), HostError> {
        let mut state = self.enter("HcnDeleteEndpoint")?;
        state.endpoints.remove(&id);
        Ok(())
    }

    /// As HCN reports a namespace: its endpoints, whoever attached them, as `Resources`
    /// of `Type` `Endpoint` with the id in `Data.ID` (hcsshim's `NamespaceResource` and
    /// `NamespaceResourceEndpoint`).
    async fn query_namespace(&self, id: Uuid) -> Result<serde_json::Value, HostError> {
        let state = self.enter("HcnQueryNamespaceProperties")?;
        if !state.namespaces.contains(&id) {
            return Err(HostError::new(
                "HcnOpenNamespace",
                ERROR_NOT_FOUND,
                id.to_string(),
            ));
        }
        let mut resources: Vec<serde_json::Value> = state
            .endpoints
            .iter()
            .filter(|(_, (_, namespace, _))| *namespace == id)
            .map(|(endpoint, _)| json!({"Type": "Endpoint", "Data": {"ID": endpoint.to_string()}}))
            .collect();
        for document in shared_endpoints(state.plugin_dir.as_deref(), id) {
            resources.push(json!({"Type": "Endpoint", "Data": {"ID": document["ID"]}}));
        }
        Ok(json!({
            "ID": id.to_string(),
            "Type": "Host",
            "Resources": resources,
            "SchemaVersion": {"Major": 2, "Minor": 0},
        }))
    }

    async fn query_endpoint(&self, id: Uuid) -> Result<Endpoint, HostError> {
        let state = self.enter("HcnQueryEndpointProperties")?;
        if let Some((network, namespace, _)) = state.endpoints.get(&id) {
            return Ok(Endpoint {
                id,
                network: network.clone(),
                ip: None,
                mac: state.macs.get(&id).cloned(),
                document: json!({"ID": id.to_string(), "HostComputeNamespace": namespace.to_string()}),
            });
        }
        let shared = state.plugin_dir.as_deref().and_then(|dir| {
            std::fs::read_dir(dir)
                .ok()?
                .filter_map(Result::ok)
                .find_map(|ns| {
                    let path = ns.path().join(format!("{id}.json"));
                    std::fs::read(path).ok()
                })
        });
        let Some(bytes) = shared else {
            return Err(HostError::new(
                "HcnOpenEndpoint",
                HCN_E_ENDPOINT_NOT_FOUND,
                id.to_string(),
            ));
        };
        let document: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        Ok(Endpoint {
            id,
            network: document["HostComputeNetwork"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            ip: document["IpConfigurations"][0]["IpAddress"]
                .as_str()
                .and_then(|a| a.parse().ok()),
            mac: document["MacAddress"].as_str().map(str::to_owned),
            document,
        })
    }
}

/// The endpoint documents other processes attached to namespace `id`.
fn shared_endpoints(dir: Option<&std::path::Path>, id: Uuid) -> Vec<serde_json::Value> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir.join(id.to_string())) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect()
}
