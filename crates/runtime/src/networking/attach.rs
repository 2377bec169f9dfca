//! [`Networks`]: joining a container to the node's networks and letting go of them. A
//! create names every network object in the record first ([`Networks::name_objects`]),
//! then makes them ([`Networks::attach`]): an HCN namespace of the container's own, and
//! per network an HCN endpoint or an ADD through the CNI network's plugins, each undone on
//! failure. Remove and reconcile take them away again ([`Networks::release`]).

use std::sync::Arc;

use pane_net::cni::Attachment;
use uuid::Uuid;

use super::cni::CniNetworks;
use super::{endpoint_id, namespace_id, publish};
use crate::backend::{Endpoint, Network, PublishedPort};
use crate::error::RuntimeError;
use crate::records::{AttachmentKind, ContainerRecord, NetworkAttachment};
use crate::rollback::Rollback;

/// What a container joined.
pub(crate) struct Attached {
    pub namespace: Uuid,
    pub namespace_document: serde_json::Value,
    /// The endpoints pane made on HCN networks.
    pub endpoints: Vec<Endpoint>,
    /// Whether CNI plugins attached endpoints of their own to the namespace.
    pub through_cni: bool,
    /// DNS search domains from the CNI results, for the container.
    pub dns_search: Vec<String>,
}

/// The networks containers can join. Both halves are optional: a runtime without a
/// backend refuses specs with `networks`, and without CNI settings every network is taken
/// to be an HCN network.
#[derive(Default)]
pub(crate) struct Networks {
    /// Makes namespaces and HCN endpoints (HCN on Windows).
    pub backend: Option<Arc<dyn Network>>,
    /// The CNI configuration lists and their plugin runs.
    pub cni: Option<Arc<CniNetworks>>,
}

impl Networks {
    pub(super) fn network(&self) -> Result<Arc<dyn Network>, RuntimeError> {
        self.backend
            .clone()
            .ok_or_else(|| RuntimeError::Unsupported {
                operation: "container networking",
                reason: "this runtime has no network backend; remove `networks` and `ports` from \
                     the spec to run the container without a network"
                    .to_owned(),
            })
    }

    fn require_cni(&self) -> Result<Arc<CniNetworks>, RuntimeError> {
        self.cni.clone().ok_or_else(|| RuntimeError::Unsupported {
            operation: "CNI networks",
            reason: "this runtime was built without CNI settings".to_owned(),
        })
    }

    /// Decides how the container joins each network of its spec (a CNI configuration
    /// list of that name, else an existing HCN network) and names in the record, before
    /// any exists, the namespace, pane's endpoints and every attachment.
    pub(crate) fn name_objects(
        &self,
        record: &mut ContainerRecord,
        networks: &[String],
    ) -> Result<(), RuntimeError> {
        if networks.is_empty() {
            return Ok(());
        }
        let network = self.network()?;
        let namespace = namespace_id(&record.owner, &record.id);
        record.resources.network_namespace = Some(namespace.to_string());
        for (index, name) in networks.iter().enumerate() {
            let prepared = match &self.cni {
                Some(cni) => cni.find(name)?,
                None => None,
            };
            if index == 0
                && let Some(address) = record.resources.requested_ip
            {
                let honoured = prepared
                    .as_ref()
                    .is_some_and(|p| p.list.plugins.iter().any(|plugin| plugin.wants("ips")));
                if !honoured {
                    return Err(RuntimeError::invalid(
                        "requested address",
                        format!(
                            "{address} cannot be given on network {name}: {}",
                            if prepared.is_some() {
                                "no plugin of its CNI configuration declares the `ips` capability"
                            } else {
                                "it is an HCN network, whose IPAM picks the address"
                            }
                        ),
                        "join a CNI network that takes the node slice, or whose IPAM plugin declares `\"capabilities\": {\"ips\": true}`, first",
                    ));
                }
            }
            let cni = prepared.is_some();
            let kind = if cni {
                AttachmentKind::Cni
            } else {
                record
                    .resources
                    .endpoints
                    .push(endpoint_id(&record.owner, &record.id, name).to_string());
                AttachmentKind::Hcn
            };
            record.resources.attachments.push(NetworkAttachment {
                network: name.clone(),
                kind,
                interface: format!("eth{index}"),
                netns: if cni {
                    network.cni_netns(namespace)
                } else {
                    String::new()
                },
                cni_container_id: if cni {
                    namespace.to_string()
                } else {
                    String::new()
                },
                ips: Vec::new(),
                gateway: None,
                dns_servers: Vec::new(),
                dns_search: Vec::new(),
                mac: None,
            });
        }
        Ok(())
    }

    /// Creates the namespace and joins each network the record names, each undone on
    /// failure: an endpoint on an HCN network, or ADD through a CNI network's plugins.
    /// The spec's ports are published through the first network.
    pub(crate) async fn attach(
        &self,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        ports: &[pane_spec::PortMapping],
    ) -> Result<Option<Attached>, RuntimeError> {
        if record.resources.attachments.is_empty() {
            return Ok(None);
        }
        let published = rollback
            .check("choose host ports", async { publish(ports) })
            .await?;
        record.resources.ports.clone_from(&published);
        let network = self.network()?;
        let namespace = namespace_id(&record.owner, &record.id);
        let undo = Arc::clone(&network);
        let namespace_document = rollback
            .step(
                "create the network namespace",
                async {
                    // Its name is this owner's and this container's, and no record of the
                    // container exists (the create holds its lock): one already there was
                    // left by a pane that died before its cleanup finished.
                    let _ = network.delete_namespace(namespace).await;
                    Ok(network.create_namespace(namespace).await?)
                },
                move || async move { Ok(undo.delete_namespace(namespace).await?) },
            )
            .await?;
        let mut attached = Attached {
            namespace,
            namespace_document,
            endpoints: Vec::new(),
            through_cni: false,
            dns_search: Vec::new(),
        };
        for index in 0..record.resources.attachments.len() {
            let ports: &[PublishedPort] = if index == 0 { &published } else { &[] };
            let planned = record.resources.attachments[index].clone();
            let joined = match planned.kind {
                AttachmentKind::Hcn => {
                    let id = endpoint_id(&record.owner, &record.id, &planned.network);
                    let undo = Arc::clone(&network);
                    let endpoint = rollback
                        .step(
                            "create a network endpoint",
                            async {
                                Ok(network
                                    .create_endpoint(&planned.network, id, namespace, ports)
                                    .await?)
                            },
                            move || async move { Ok(undo.delete_endpoint(id).await?) },
                        )
                        .await?;
                    let joined = NetworkAttachment {
                        ips: endpoint.ip.iter().map(ToString::to_string).collect(),
                        mac: endpoint.mac.clone(),
                        ..planned
                    };
                    attached.endpoints.push(endpoint);
                    joined
                }
                AttachmentKind::Cni => {
                    attached.through_cni = true;
                    let requested = record.resources.requested_ip;
                    // The address asked for is the first network's.
                    let requested = if index == 0 { requested } else { None };
                    self.attach_cni(rollback, planned, ports, requested).await?
                }
            };
            attached
                .dns_search
                .extend(joined.dns_search.iter().cloned());
            record.resources.attachments[index] = joined;
        }
        record.resources.ip = record
            .resources
            .attachments
            .iter()
            .find_map(NetworkAttachment::ip);
        Ok(Some(attached))
    }

    /// ADD through the plugins of the CNI network `planned` names, undone by DEL.
    async fn attach_cni(
        &self,
        rollback: &mut Rollback,
        planned: NetworkAttachment,
        ports: &[PublishedPort],
        requested: Option<std::net::IpAddr>,
    ) -> Result<NetworkAttachment, RuntimeError> {
        let cni = self.require_cni()?;
        let step = format!("attach to network {}", planned.network);
        let prepared = cni.find(&planned.network)?.ok_or_else(|| {
            RuntimeError::invalid(
                format!("network {}", planned.network),
                "its CNI configuration is gone",
                "put the configuration back, or remove the network from the spec",
            )
        })?;
        let requested = requested.map(|ip| match cni.node_slice() {
            Some(slice) if prepared.uses_slice => slice.with_prefix(ip),
            _ => ip.to_string(),
        });
        let request = Attachment {
            container_id: planned.cni_container_id.clone(),
            netns: planned.netns.clone(),
            ifname: planned.interface.clone(),
            args: Vec::new(),
            capability_args: super::cni::capability_args(ports, requested),
        };
        // No record of this container exists, so a cached ADD under its name is left
        // from an earlier container of that name that was never cleaned up: DEL it
        // first, or its address would be lost.
        if cni.is_cached(&planned.network, &request) {
            cni.del(&planned.network, request.clone()).await?;
        }
        let undo = Arc::clone(&cni);
        let undo_network = planned.network.clone();
        let undo_request = request.clone();
        let result = rollback
            .step(&step, cni.add(&prepared, request), move || async move {
                undo.del(&undo_network, undo_request).await
            })
            .await?;
        let first = result.ips.first();
        Ok(NetworkAttachment {
            ips: result.ips.iter().map(|ip| ip.address.clone()).collect(),
            gateway: first.and_then(|ip| ip.gateway.clone()),
            dns_servers: result.dns.nameservers.clone(),
            dns_search: result.dns.search.clone(),
            mac: first
                .and_then(|ip| ip.interface)
                .and_then(|i| result.interfaces.get(i))
                .and_then(|i| i.mac.clone()),
            ..planned
        })
    }

    /// Deletes the endpoints and namespace a record names; absent ones are fine. A failure
    /// is returned after trying everything, so the record is kept to try again.
    pub(crate) async fn release(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        if record.resources.endpoints.is_empty()
            && record.resources.network_namespace.is_none()
            && record.resources.attachments.is_empty()
        {
            return Ok(());
        }
        let cni_failure = self.release_cni(record).await.err();
        let Some(network) = self.backend.clone() else {
            // Attaching needs the backend, so nothing can exist unless pane ran with one
            // before; say so rather than block every other cleanup.
            tracing::warn!(id = %record.id, "the record names network objects but this runtime has no network backend to delete them");
            return cni_failure.map_or(Ok(()), Err);
        };
        let mut failure = None;
        for endpoint in &record.resources.endpoints {
            if let Ok(id) = Uuid::parse_str(endpoint)
                && let Err(e) = network.delete_endpoint(id).await
            {
                failure = Some(e.into());
            }
        }
        if let Some(e) = cni_failure {
            // The plugins work in the namespace: it stays until their DEL succeeds.
            return Err(e);
        }
        if let Some(namespace) = &record.resources.network_namespace
            && let Ok(id) = Uuid::parse_str(namespace)
            && let Err(e) = network.delete_namespace(id).await
        {
            failure = Some(e.into());
        }
        failure.map_or(Ok(()), Err)
    }

    /// DEL of every CNI attachment the record names, last first, before the namespace
    /// the plugins work in goes. The plugins get what ADD used, from the cache.
    async fn release_cni(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        let attachments: Vec<&NetworkAttachment> = record
            .resources
            .attachments
            .iter()
            .filter(|a| a.kind == AttachmentKind::Cni)
            .collect();
        if attachments.is_empty() {
            return Ok(());
        }
        let Some(cni) = self.cni.clone() else {
            // Without DEL the plugins keep the address and endpoint: keep the record, so
            // a pane with CNI settings can finish this.
            return Err(RuntimeError::Unsupported {
                operation: "detaching from CNI networks",
                reason: format!(
                    "container {} is attached to CNI networks and this runtime has no CNI settings; run it with them",
                    record.id
                ),
            });
        };
        let mut failure = None;
        for attachment in attachments.into_iter().rev() {
            let request = Attachment {
                container_id: attachment.cni_container_id.clone(),
                netns: attachment.netns.clone(),
                ifname: attachment.interface.clone(),
                ..Attachment::default()
            };
            if let Err(e) = cni.del(&attachment.network, request).await {
                failure = Some(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}
