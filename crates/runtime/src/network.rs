//! Joining a container to the node's networks: an HCN namespace of its own and an endpoint
//! in it per network. Process isolation hands HCS the namespace in the container document;
//! Hyper-V also hands the guest the namespace and, per endpoint, a NIC (hcsshim's order:
//! namespace add, then per endpoint `PreAdd`, NIC hot-add, `Add`).

use std::sync::Arc;

use pane_gcs::GuestConnection;
use pane_gcs::messages::NULL_CONTAINER_ID;
use pane_gcs::settings::GuestRequest;
use uuid::Uuid;

use crate::backend::{Endpoint, Network, PublishedPort};
use crate::error::RuntimeError;
use crate::hyperv::guest_error;
use crate::id::ContainerId;
use crate::process_runtime::ProcessRuntime;
use crate::records::ContainerRecord;
use crate::rollback::Rollback;

/// Names pane's network objects deterministically, so a record can name them before they
/// exist and a restart can find them.
const NETWORK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5f1e_c0de_7a2b_4c3d_9e8f_0a1b_2c3d_4e5f);

pub(crate) fn namespace_id(id: &ContainerId) -> Uuid {
    Uuid::new_v5(&NETWORK_ID_NAMESPACE, format!("namespace/{id}").as_bytes())
}

pub(crate) fn endpoint_id(id: &ContainerId, network: &str) -> Uuid {
    Uuid::new_v5(
        &NETWORK_ID_NAMESPACE,
        format!("endpoint/{id}/{network}").as_bytes(),
    )
}

pub(crate) fn nic_id(id: &ContainerId, network: &str) -> Uuid {
    Uuid::new_v5(
        &NETWORK_ID_NAMESPACE,
        format!("nic/{id}/{network}").as_bytes(),
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

/// Names the namespace and endpoints in the record before any exists.
pub(crate) fn name_network_objects(record: &mut ContainerRecord, networks: &[String]) {
    if networks.is_empty() {
        return;
    }
    record.resources.network_namespace = Some(namespace_id(&record.id).to_string());
    record.resources.endpoints = networks
        .iter()
        .map(|network| endpoint_id(&record.id, network).to_string())
        .collect();
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

/// What a container joined.
pub(crate) struct Attached {
    pub namespace: Uuid,
    pub namespace_document: serde_json::Value,
    pub endpoints: Vec<Endpoint>,
}

impl ProcessRuntime {
    fn network(&self) -> Result<Arc<dyn Network>, RuntimeError> {
        self.network
            .clone()
            .ok_or_else(|| RuntimeError::Unsupported {
                operation: "container networking",
                reason: "this runtime has no network backend; remove `networks` and `ports` from \
                     the spec to run the container without a network"
                    .to_owned(),
            })
    }

    /// Creates the namespace and an endpoint per network, each undone on failure. The
    /// spec's ports are published through the first network's endpoint.
    pub(crate) async fn attach_networks(
        &self,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        networks: &[String],
        ports: &[pane_spec::PortMapping],
    ) -> Result<Option<Attached>, RuntimeError> {
        if networks.is_empty() {
            return Ok(None);
        }
        let published = rollback
            .check("choose host ports", async { publish(ports) })
            .await?;
        record.resources.ports.clone_from(&published);
        let network = self.network()?;
        let namespace = namespace_id(&record.id);
        let undo = Arc::clone(&network);
        let namespace_document = rollback
            .step(
                "create the network namespace",
                async { Ok(network.create_namespace(namespace).await?) },
                move || async move { Ok(undo.delete_namespace(namespace).await?) },
            )
            .await?;
        let mut endpoints = Vec::new();
        for (index, name) in networks.iter().enumerate() {
            let id = endpoint_id(&record.id, name);
            let undo = Arc::clone(&network);
            let ports: &[PublishedPort] = if index == 0 { &published } else { &[] };
            let endpoint = rollback
                .step(
                    "create a network endpoint",
                    async { Ok(network.create_endpoint(name, id, namespace, ports).await?) },
                    move || async move { Ok(undo.delete_endpoint(id).await?) },
                )
                .await?;
            endpoints.push(endpoint);
        }
        record.resources.ip = endpoints.iter().find_map(|e| e.ip);
        Ok(Some(Attached {
            namespace,
            namespace_document,
            endpoints,
        }))
    }

    /// Hands a utility VM's guest the namespace and a NIC per endpoint.
    pub(crate) async fn attach_networks_in_guest(
        &self,
        rollback: &mut Rollback,
        record: &ContainerRecord,
        attached: &Attached,
        connection: &GuestConnection,
        vm: &str,
    ) -> Result<(), RuntimeError> {
        if connection
            .capabilities()
            .guest_defined_capabilities
            .namespace_add_request_supported
        {
            rollback
                .check("add the network namespace in the guest", async {
                    connection
                        .modify(
                            NULL_CONTAINER_ID,
                            GuestRequest::add_network_namespace(
                                attached.namespace_document.clone(),
                            ),
                        )
                        .await
                        .map_err(guest_error("add the network namespace in the guest"))
                })
                .await?;
        }
        for endpoint in &attached.endpoints {
            let nic = nic_id(&record.id, &endpoint.network);
            rollback
                .check("hand the guest a network endpoint", async {
                    connection
                        .modify(
                            NULL_CONTAINER_ID,
                            GuestRequest::network_pre_add(nic, endpoint.document.clone()),
                        )
                        .await
                        .map_err(guest_error("hand the guest a network endpoint"))
                })
                .await?;
            rollback
                .check("add a network adapter to the VM", async {
                    let add = crate::hyperv_docs::add_network_adapter(
                        nic,
                        endpoint.id,
                        endpoint.mac.as_deref(),
                    );
                    Ok(self.compute.modify(vm, &add).await?)
                })
                .await?;
            rollback
                .check("bring the guest's network adapter up", async {
                    connection
                        .modify(NULL_CONTAINER_ID, GuestRequest::network_add(nic))
                        .await
                        .map_err(guest_error("bring the guest's network adapter up"))
                })
                .await?;
        }
        Ok(())
    }

    /// Deletes the endpoints and namespace a record names; absent ones are fine. A failure
    /// is returned after trying everything, so the record is kept to try again.
    pub(crate) async fn release_networks(
        &self,
        record: &ContainerRecord,
    ) -> Result<(), RuntimeError> {
        if record.resources.endpoints.is_empty() && record.resources.network_namespace.is_none() {
            return Ok(());
        }
        let Some(network) = self.network.clone() else {
            // Attaching needs the backend, so nothing can exist unless pane ran with one
            // before; say so rather than block every other cleanup.
            tracing::warn!(id = %record.id, "the record names network objects but this runtime has no network backend to delete them");
            return Ok(());
        };
        let mut failure = None;
        for endpoint in &record.resources.endpoints {
            if let Ok(id) = Uuid::parse_str(endpoint)
                && let Err(e) = network.delete_endpoint(id).await
            {
                failure = Some(e);
            }
        }
        if let Some(namespace) = &record.resources.network_namespace
            && let Ok(id) = Uuid::parse_str(namespace)
            && let Err(e) = network.delete_namespace(id).await
        {
            failure = Some(e);
        }
        failure.map_or(Ok(()), |e| Err(e.into()))
    }
}
