//! Container networking: which networks a container joins and how, the objects it gets
//! there, and how they are named.
//!
//! - this module: the deterministic names of pane's network objects (so a record names
//!   them before they exist and a restart finds them), the HCN requests pane makes, and
//!   the host ports a spec publishes;
//! - `attach`: `Networks`, joining and leaving networks, HCN or CNI, with rollback;
//! - `guest`: handing a utility VM's guest its namespace and NICs (Hyper-V);
//! - [`cni`]: the CNI networks (configuration lists, node slice, plugin runs);
//! - `linux_netns`: network namespaces on Linux, where the CNI plugins are tested.
//!
//! Process isolation hands HCS the namespace in the container document; Hyper-V also
//! hands the guest the namespace and, per endpoint, a NIC.

use uuid::Uuid;

use crate::backend::{Endpoint, PublishedPort};
use crate::error::RuntimeError;
use crate::id::ContainerId;

mod attach;
pub mod cni;
mod guest;
#[cfg(target_os = "linux")]
pub mod linux_netns;

pub(crate) use attach::{Attached, Networks};

/// Names pane's network objects deterministically, so a record can name them before they
/// exist and a restart can find them.
const NETWORK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5f1e_c0de_7a2b_4c3d_9e8f_0a1b_2c3d_4e5f);

/// The network namespace pane makes for container `id` of `owner` (deterministic, so a
/// record names it before it exists). The owner is part of the name: two pane instances
/// on one host may both have a `web-1`, and HCN namespaces and endpoints are host-wide.
pub fn namespace_id(owner: &str, id: &ContainerId) -> Uuid {
    Uuid::new_v5(
        &NETWORK_ID_NAMESPACE,
        format!("namespace/{owner}/{id}").as_bytes(),
    )
}

pub(crate) fn endpoint_id(owner: &str, id: &ContainerId, network: &str) -> Uuid {
    Uuid::new_v5(
        &NETWORK_ID_NAMESPACE,
        format!("endpoint/{owner}/{id}/{network}").as_bytes(),
    )
}

/// The NIC of an endpoint: named by its network for pane's own endpoints, by the
/// endpoint for those CNI plugins made (several may share a network).
pub(crate) fn nic_uuid(owner: &str, id: &ContainerId, endpoint: &Endpoint) -> Uuid {
    if endpoint.id == endpoint_id(owner, id, &endpoint.network) {
        nic_id(owner, id, &endpoint.network)
    } else {
        Uuid::new_v5(
            &NETWORK_ID_NAMESPACE,
            format!("nic/{owner}/{id}/endpoint/{}", endpoint.id).as_bytes(),
        )
    }
}

pub(crate) fn nic_id(owner: &str, id: &ContainerId, network: &str) -> Uuid {
    Uuid::new_v5(
        &NETWORK_ID_NAMESPACE,
        format!("nic/{owner}/{id}/{network}").as_bytes(),
    )
}

/// The HCN namespace pane asks for: one container's own compartment.
pub fn namespace_request(namespace: Uuid) -> pane_net::HostComputeNamespace {
    pane_net::HostComputeNamespace::for_container(namespace)
}

/// The HCN endpoint pane asks for on the network whose HCN id is `network`, publishing
/// `ports` through NAT port mappings.
pub fn endpoint_request(
    endpoint: Uuid,
    network: &str,
    ports: &[PublishedPort],
) -> pane_net::HostComputeEndpoint {
    let policies = ports
        .iter()
        .map(|port| {
            let protocol = match port.protocol {
                pane_spec::Protocol::Tcp => pane_net::PROTOCOL_TCP,
                pane_spec::Protocol::Udp => pane_net::PROTOCOL_UDP,
            };
            pane_net::EndpointPolicy::port_mapping(protocol, port.container_port, port.host_port)
        })
        .collect();
    pane_net::HostComputeEndpoint {
        name: Some(format!("pane-{endpoint}")),
        network: Some(network.to_owned()),
        policies,
        ..pane_net::HostComputeEndpoint::default()
    }
}

/// The spec's ports with a host port each: the one asked for, or a free one the host picks
/// (bound and released here, as Docker does for `-p 80`).
pub(crate) fn publish(
    ports: &[pane_spec::PortMapping],
) -> Result<Vec<PublishedPort>, RuntimeError> {
    ports
        .iter()
        .map(|port| {
            let host_port = match port.host_port {
                Some(host_port) => host_port,
                None => free_port(port.protocol).map_err(|e| RuntimeError::Host {
                    step: "choose host ports".into(),
                    hresult: None,
                    message: format!("no free host port for {}: {e}", port.container_port),
                })?,
            };
            Ok(PublishedPort {
                container_port: port.container_port,
                host_port,
                protocol: port.protocol,
            })
        })
        .collect()
}

fn free_port(protocol: pane_spec::Protocol) -> std::io::Result<u16> {
    let any = (std::net::Ipv4Addr::UNSPECIFIED, 0);
    match protocol {
        pane_spec::Protocol::Tcp => std::net::TcpListener::bind(any)?.local_addr(),
        pane_spec::Protocol::Udp => std::net::UdpSocket::bind(any)?.local_addr(),
    }
    .map(|address| address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_object_ids_are_scoped_by_owner_because_hcn_is_host_wide() {
        let id = ContainerId::new("web", 1);
        assert_ne!(namespace_id("pane", &id), namespace_id("agent", &id));
        assert_ne!(
            endpoint_id("pane", &id, "nat"),
            endpoint_id("agent", &id, "nat")
        );
        assert_ne!(nic_id("pane", &id, "nat"), nic_id("agent", &id, "nat"));
        assert_eq!(namespace_id("pane", &id), namespace_id("pane", &id));
    }
}
