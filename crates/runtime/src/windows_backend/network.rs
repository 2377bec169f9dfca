//! Container networking over HCN (computenetwork.dll).

use async_trait::async_trait;

use crate::backend::HostError;

/// Container networking over HCN (computenetwork.dll).
#[derive(Debug, Default)]
pub struct HcnNetwork;

fn hcn_error(e: &pane_net::HcnError) -> HostError {
    HostError::new(e.call, e.hresult, e.record.clone())
}

/// Runs blocking HCN calls off the async threads.
async fn hcn<T: Send + 'static>(
    call: &'static str,
    f: impl FnOnce() -> Result<T, pane_net::HcnError> + Send + 'static,
) -> Result<T, HostError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| hcn_error(&e)),
        Err(e) => Err(HostError::new(call, 0x8000_FFFF, e.to_string())),
    }
}

/// A delete of something already gone succeeds.
fn absent_is_fine(result: Result<(), pane_net::HcnError>) -> Result<(), pane_net::HcnError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

#[async_trait]
impl crate::backend::Network for HcnNetwork {
    async fn create_namespace(&self, id: uuid::Uuid) -> Result<serde_json::Value, HostError> {
        hcn("HcnCreateNamespace", move || {
            pane_net::sys::create_namespace(id, &crate::networking::namespace_request(id))
        })
        .await
    }

    async fn delete_namespace(&self, id: uuid::Uuid) -> Result<(), HostError> {
        hcn("HcnDeleteNamespace", move || {
            absent_is_fine(pane_net::sys::delete_namespace(id))
        })
        .await
    }

    async fn create_endpoint(
        &self,
        network: &str,
        id: uuid::Uuid,
        namespace: uuid::Uuid,
        ports: &[crate::backend::PublishedPort],
    ) -> Result<crate::backend::Endpoint, HostError> {
        let name = network.to_owned();
        let ports = ports.to_vec();
        let created = hcn("HcnCreateEndpoint", move || {
            let network = pane_net::sys::find_network(&name)?;
            let requested = crate::networking::endpoint_request(id, &network.to_string(), &ports);
            let created = pane_net::sys::create_endpoint(network, id, &requested)?;
            if let Err(e) = pane_net::sys::add_namespace_endpoint(namespace, id) {
                // Not in the namespace, it is of no use: take it away again.
                let _ = pane_net::sys::delete_endpoint(id);
                return Err(e);
            }
            Ok(created)
        })
        .await?;
        Ok(crate::backend::Endpoint {
            id,
            network: network.to_owned(),
            ip: created.ip(),
            mac: created.mac_address.clone(),
            document: serde_json::to_value(&created).unwrap_or_default(),
        })
    }

    async fn delete_endpoint(&self, id: uuid::Uuid) -> Result<(), HostError> {
        hcn("HcnDeleteEndpoint", move || {
            absent_is_fine(pane_net::sys::delete_endpoint(id))
        })
        .await
    }

    async fn query_namespace(&self, id: uuid::Uuid) -> Result<serde_json::Value, HostError> {
        hcn("HcnQueryNamespaceProperties", move || {
            pane_net::sys::query_namespace(id)
        })
        .await
    }

    async fn query_endpoint(&self, id: uuid::Uuid) -> Result<crate::backend::Endpoint, HostError> {
        let endpoint = hcn("HcnQueryEndpointProperties", move || {
            pane_net::sys::query_endpoint(id)
        })
        .await?;
        Ok(crate::backend::Endpoint {
            id,
            network: endpoint.network.clone().unwrap_or_default(),
            ip: endpoint.ip(),
            mac: endpoint.mac_address.clone(),
            document: serde_json::to_value(&endpoint).unwrap_or_default(),
        })
    }
}

/// The host's HCN networks, for `pane network ls`.
pub async fn hcn_networks() -> Result<Vec<pane_net::HostComputeNetwork>, HostError> {
    hcn("HcnEnumerateNetworks", pane_net::sys::list_networks).await
}
