//! The plan of a container's networks: its namespace, and per network the HCN endpoint
//! pane makes or the CNI plugins' ADD, with the host ports the spec publishes.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{FREE_HOST_PORT, PlanInput, Step};
use crate::backend::PublishedPort;
use crate::error::RuntimeError;
use crate::networking;

/// The network objects a plan names, and the documents HCN is sent for them.
pub(super) struct PlannedNetwork {
    pub namespace: Uuid,
    pub namespace_request: pane_net::HostComputeNamespace,
    /// Per HCN network joined: its name, the endpoint's id and the endpoint asked for.
    pub endpoints: Vec<(String, Uuid, Value)>,
    /// Some network is a CNI network, whose plugins make its endpoints.
    pub through_cni: bool,
}

/// The spec's ports as they are published: a port the spec leaves to the host is chosen
/// at create time.
fn planned_ports(ports: &[pane_spec::PortMapping]) -> Vec<PublishedPort> {
    ports
        .iter()
        .map(|port| PublishedPort {
            container_port: port.container_port,
            host_port: port.host_port.unwrap_or(0),
            protocol: port.protocol,
        })
        .collect()
}

/// The HCN namespace and, per network, an endpoint added to it or the CNI ADD that
/// attaches it, in full.
pub(super) fn plan_network(
    input: &PlanInput<'_>,
    steps: &mut Vec<Step>,
) -> Result<Option<PlannedNetwork>, RuntimeError> {
    if input.spec.networks.is_empty() {
        return Ok(None);
    }
    let namespace = networking::namespace_id(input.owner, input.id);
    let namespace_request = networking::namespace_request(namespace);
    steps.push(
        Step::new(
            "network",
            "HcnCreateNamespace",
            namespace.to_string(),
            "the container's own network compartment",
        )
        .with(&namespace_request),
    );
    let published = planned_ports(&input.spec.ports);
    let mut endpoints = Vec::new();
    let mut through_cni = false;
    for (index, name) in input.spec.networks.iter().enumerate() {
        let ports: &[PublishedPort] = if index == 0 { &published } else { &[] };
        if let Some(cni) = input.cni
            && let Some(prepared) = cni.find(name)?
        {
            through_cni = true;
            steps.push(
                Step::new(
                    "cni",
                    "ADD",
                    format!("{name} / eth{index}"),
                    "the network's plugins attach the container (their endpoints, its address)",
                )
                .with(&json!({
                    "CNI_CONTAINERID": namespace.to_string(),
                    "CNI_NETNS": namespace.to_string(),
                    "CNI_IFNAME": format!("eth{index}"),
                    "capabilityArgs": crate::networking::cni::capability_args(ports, None),
                    "configuration": prepared.list.to_json(),
                })),
            );
            continue;
        }
        let endpoint = networking::endpoint_id(input.owner, input.id, name);
        let network_id = input
            .host
            .network_id
            .map_or_else(|| format!("<HCN id of network {name}>"), str::to_owned);
        // The spec's ports are published through the first network's endpoint.
        let mut request =
            serde_json::to_value(networking::endpoint_request(endpoint, &network_id, ports))
                .unwrap_or_default();
        mark_free_ports(&mut request, ports);
        steps.push(
            Step::new(
                "network",
                "HcnCreateEndpoint",
                format!("{name} / {endpoint}"),
                "an endpoint on the node's network (its address from the network's IPAM)",
            )
            .with(&request),
        );
        steps.push(
            Step::new(
                "network",
                "HcnModifyNamespace",
                namespace.to_string(),
                "add the endpoint to the namespace",
            )
            .with(&pane_net::ModifyNamespaceSettingRequest::add_endpoint(
                endpoint,
            )),
        );
        endpoints.push((name.clone(), endpoint, request));
    }
    Ok(Some(PlannedNetwork {
        namespace,
        namespace_request,
        endpoints,
        through_cni,
    }))
}

/// A port mapping whose host port is picked at create time says so.
fn mark_free_ports(endpoint: &mut Value, ports: &[PublishedPort]) {
    let Some(policies) = endpoint.get_mut("Policies").and_then(Value::as_array_mut) else {
        return;
    };
    for (policy, port) in policies.iter_mut().zip(ports) {
        if port.host_port == 0 {
            policy["Settings"]["ExternalPort"] = json!(FREE_HOST_PORT);
        }
    }
}
