//! The network a utility VM's guest is handed (Hyper-V isolation), in hcsshim's order:
//! the namespace added in the guest, then per endpoint `PreAdd`, the NIC hot-added to the
//! VM, and `Add`. For CNI networks the namespace is read back from HCN first, with the
//! endpoints the plugins made in it.

use std::sync::Arc;

use pane_gcs::GuestConnection;
use pane_gcs::messages::NULL_CONTAINER_ID;
use pane_gcs::settings::GuestRequest;

use super::{Attached, Networks, nic_uuid};
use crate::backend::{Compute, Endpoint};
use crate::documents::hyperv::add_network_adapter;
use crate::error::{RuntimeError, guest_error};
use crate::records::ContainerRecord;
use crate::rollback::Rollback;

impl Networks {
    /// The namespace as HCN reports it once the CNI plugins attached their endpoints, and
    /// every endpoint in it (pane's own and the plugins'), as hcsshim reads them again
    /// before it hands a guest a CNI namespace.
    async fn namespace_after_cni(
        &self,
        attached: &Attached,
    ) -> Result<(serde_json::Value, Vec<Endpoint>), RuntimeError> {
        let network = self.network()?;
        let document = network.query_namespace(attached.namespace).await?;
        let mut endpoints = attached.endpoints.clone();
        for id in pane_net::namespace_endpoint_ids(&document) {
            if !endpoints.iter().any(|e| e.id == id) {
                endpoints.push(network.query_endpoint(id).await?);
            }
        }
        Ok((document, endpoints))
    }

    /// Hands a utility VM's guest the namespace and a NIC per endpoint; `compute` is the
    /// VM's compute service (the NICs are hot-added to the VM there).
    pub(crate) async fn attach_in_guest(
        &self,
        rollback: &mut Rollback,
        compute: &Arc<dyn Compute>,
        record: &ContainerRecord,
        attached: &Attached,
        connection: &GuestConnection,
        vm: &str,
    ) -> Result<(), RuntimeError> {
        // The VM will hold the endpoints' NICs: if the create fails from here on, the VM
        // ends before the plugins' DEL and the namespace delete take the endpoints away
        // (undo runs newest first; the VM's own undo was registered long before).
        let undo_compute = Arc::clone(compute);
        let vm_id = vm.to_owned();
        rollback
            .step(
                "hand the VM its network",
                async { Ok(()) },
                move || async move {
                    let _ = undo_compute.terminate(&vm_id).await;
                    Ok(())
                },
            )
            .await?;
        let (namespace_document, endpoints) = if attached.through_cni {
            rollback
                .check(
                    "find the CNI plugins' endpoints",
                    self.namespace_after_cni(attached),
                )
                .await?
        } else {
            (
                attached.namespace_document.clone(),
                attached.endpoints.clone(),
            )
        };
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
                            GuestRequest::add_network_namespace(namespace_document.clone()),
                        )
                        .await
                        .map_err(guest_error("add the network namespace in the guest"))
                })
                .await?;
        }
        for endpoint in &endpoints {
            let nic = nic_uuid(&record.owner, &record.id, endpoint);
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
                    let add = add_network_adapter(nic, endpoint.id, endpoint.mac.as_deref());
                    Ok(compute.modify(vm, &add).await?)
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
}
