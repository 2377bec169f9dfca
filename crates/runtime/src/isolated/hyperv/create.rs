//! Hyper-V create, in hcsshim's order: the disks (the container scratch and the VM's own,
//! each granted to the VM), the utility VM booted and connected to, the layers and mounts
//! shared with it, the scratch mounted and the layers combined in the guest, the network
//! handed to the guest, the container created in it, and its hvsock traffic routed there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pane_gcs::messages::NULL_CONTAINER_ID;
use pane_gcs::settings::GuestRequest;
use pane_gcs::{ConnectOptions, GuestConnection, Timeouts};
use pane_hcs::doc::{LayerRef, SharePurpose};
use pane_hcs::schema::PropertyQuery;
use pane_spec::ServiceSpec;

use super::HypervIsolation;
use crate::backend::{AddressRedirect, GuestConnector};
use crate::documents::hyperv::{
    self, HypervDocuments, HypervInput, system_guid_query, utility_vm_id,
};
use crate::error::{RuntimeError, guest_error};
use crate::id::ContainerId;
use crate::isolated::ContainerHost;
use crate::records::ContainerRecord;
use crate::rollback::Rollback;

/// How long a booting VM's guest has to dial the host (hcsshim allows 2 minutes).
const GUEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

fn io_error(step: &'static str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::Host {
        step: step.to_owned(),
        hresult: None,
        message: e.to_string(),
    }
}

impl HypervIsolation {
    /// Boots the utility VM and creates the container in it. Every step that creates
    /// something registers its undo first; the VM's termination undoes everything inside it.
    pub(super) async fn create_in_vm(
        &self,
        host: &ContainerHost,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        chain: &[LayerRef],
        scratch: &Path,
    ) -> Result<(), RuntimeError> {
        let connector = self
            .connector
            .clone()
            .ok_or_else(|| RuntimeError::Unsupported {
                operation: "Hyper-V isolation",
                reason: "this runtime was built without a guest connector".to_owned(),
            })?;
        let container_dir = host.folder(&record.id).display().to_string();
        let documents = HypervDocuments::new(&HypervInput {
            owner: &host.layout.owner,
            spec,
            chain,
            container_dir: &container_dir,
            host_processors: host.layout.host_processors,
            files: host.files.as_ref(),
        })?;
        if let Some(clamp) = documents.cpu_clamped {
            tracing::warn!(id = %record.id, "{clamp}");
        }
        prepare_disks(
            host,
            rollback,
            &record.id,
            chain,
            &documents,
            scratch,
            spec.resources.storage.map(pane_spec::MemorySize::bytes),
        )
        .await?;
        let (connection, runtime_id) = self
            .boot_utility_vm(host, rollback, record, spec, &documents, connector.as_ref())
            .await?;
        build_container(host, rollback, record, spec, &documents, &connection).await?;
        let route = redirect_hvsocket(
            rollback,
            &record.id,
            &connection,
            runtime_id,
            connector.as_ref(),
        )
        .await?;
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(record.id.clone(), route);
        }
        if let Ok(mut guests) = self.guests.lock() {
            guests.insert(record.id.clone(), connection);
        }
        Ok(())
    }

    /// The utility VM from create to a negotiated, cold-started guest connection that
    /// knows its hvsock addresses.
    async fn boot_utility_vm(
        &self,
        host: &ContainerHost,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        documents: &HypervDocuments,
        connector: &dyn GuestConnector,
    ) -> Result<(Arc<GuestConnection>, uuid::Uuid), RuntimeError> {
        let uvm_id = utility_vm_id(&record.id);
        let document = &documents.utility_vm;
        record.documents = vec![(
            "utility_vm".to_owned(),
            serde_json::to_value(document).unwrap_or_default(),
        )];
        host.create_system(rollback, "create utility VM", &uvm_id, document)
            .await?;
        // The hvsock address is the VM's RuntimeId, never assumed equal to the system id.
        let runtime_id = rollback
            .check("read the utility VM's RuntimeId", async {
                let query = PropertyQuery {
                    property_types: Some(Vec::new()),
                };
                let properties = host.compute.properties(&uvm_id, &query).await?;
                properties
                    .runtime_id
                    .as_deref()
                    .and_then(|id| uuid::Uuid::parse_str(id).ok())
                    .ok_or_else(|| RuntimeError::Host {
                        step: "read the utility VM's RuntimeId".into(),
                        hresult: None,
                        message: "HCS reported no RuntimeId".into(),
                    })
            })
            .await?;
        let listener = rollback
            .check("listen for the guest", async {
                connector
                    .listen(runtime_id)
                    .await
                    .map_err(io_error("listen for the guest"))
            })
            .await?;
        rollback
            .check("start utility VM", async {
                Ok(host.compute.start(&uvm_id).await?)
            })
            .await?;
        let connection = rollback
            .check("connect to the guest", async {
                let stream = listener
                    .accept(GUEST_CONNECT_TIMEOUT)
                    .await
                    .map_err(io_error("connect to the guest"))?;
                GuestConnection::connect(
                    stream,
                    ConnectOptions {
                        cold_start: true,
                        time_zone: hyperv::cold_start(spec, &self.time_zone).time_zone_information,
                        timeouts: Timeouts::default(),
                        relay: connector.relay(runtime_id),
                    },
                )
                .await
                .map_err(guest_error("connect to the guest"))
            })
            .await?;
        let connection = Arc::new(connection);
        let undo_connection = Arc::clone(&connection);
        rollback
            .step(
                "tell the guest its hvsock addresses",
                async {
                    connection
                        .modify(
                            NULL_CONTAINER_ID,
                            GuestRequest::hv_socket_update(runtime_id),
                        )
                        .await
                        .map_err(guest_error("tell the guest its hvsock addresses"))
                },
                move || async move {
                    undo_connection.close();
                    Ok(())
                },
            )
            .await?;
        Ok((connection, runtime_id))
    }
}

/// The container scratch (a new layer) and the VM's own scratch (a copy of the base
/// layer's template), each opened to the VM.
async fn prepare_disks(
    host: &ContainerHost,
    rollback: &mut Rollback,
    id: &ContainerId,
    chain: &[LayerRef],
    documents: &HypervDocuments,
    scratch: &Path,
    storage: Option<u64>,
) -> Result<(), RuntimeError> {
    let uvm_id = utility_vm_id(id);
    host.create_scratch(rollback, scratch, chain, storage)
        .await?;
    let container_vhdx = PathBuf::from(&documents.container_vhdx);
    let vm_vhdx = PathBuf::from(&documents.vm_scratch);
    let vm_dir = vm_vhdx
        .parent()
        .map_or_else(|| host.folder(id).join("vm"), Path::to_path_buf);
    let template = Path::new(&documents.uvm_layer.path)
        .join("UtilityVM")
        .join("SystemTemplate.vhdx");
    let undo_dir = vm_dir.clone();
    rollback
        .step(
            "copy the utility VM's scratch from the base layer",
            async {
                tokio::fs::create_dir_all(&vm_dir)
                    .await
                    .map_err(io_error("copy the utility VM's scratch"))?;
                tokio::fs::copy(&template, &vm_vhdx)
                    .await
                    .map_err(|e| RuntimeError::Host {
                        step: "copy the utility VM's scratch".into(),
                        hresult: None,
                        message: format!("{}: {e}", template.display()),
                    })?;
                Ok(())
            },
            move || async move {
                match tokio::fs::remove_dir_all(&undo_dir).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(io_error("remove the utility VM's scratch")(e))
                    }
                    _ => Ok(()),
                }
            },
        )
        .await?;
    for (step, disk) in [
        ("grant the VM its scratch", &vm_vhdx),
        ("grant the VM the container scratch", &container_vhdx),
    ] {
        rollback
            .check(step, async {
                Ok(host.compute.grant_vm_access(&uvm_id, disk).await?)
            })
            .await?;
    }
    Ok(())
}

/// The layers and mounts shared with the VM, the scratch attached and mounted, the
/// layers combined over it, and the container created in the guest.
async fn build_container(
    host: &ContainerHost,
    rollback: &mut Rollback,
    record: &mut ContainerRecord,
    spec: &ServiceSpec,
    documents: &HypervDocuments,
    connection: &GuestConnection,
) -> Result<(), RuntimeError> {
    let container = record.id.to_string();
    let uvm_id = utility_vm_id(&record.id);
    for share in &documents.shares.requests {
        let step = match share.purpose {
            SharePurpose::Layer => "share a layer with the VM",
            SharePurpose::Mount => "share a mount source with the VM",
            SharePurpose::Pipe => "map a host pipe into the VM",
        };
        rollback
            .check(step, async {
                Ok(host.compute.modify(&uvm_id, &share.request).await?)
            })
            .await?;
    }
    rollback
        .check("attach the container scratch to the VM", async {
            Ok(host
                .compute
                .modify(&uvm_id, &documents.attach_scratch)
                .await?)
        })
        .await?;
    rollback
        .check("mount the container scratch in the guest", async {
            connection
                .modify(NULL_CONTAINER_ID, documents.mount_scratch.clone())
                .await
                .map_err(guest_error("mount the container scratch in the guest"))
        })
        .await?;
    rollback
        .check("combine the layers in the guest", async {
            connection
                .modify(NULL_CONTAINER_ID, documents.combine_layers.clone())
                .await
                .map_err(guest_error("combine the layers in the guest"))
        })
        .await?;
    let attached = host.networks.attach(rollback, record, &spec.ports).await?;
    if let Some(attached) = &attached {
        host.networks
            .attach_in_guest(
                rollback,
                &host.compute,
                record,
                attached,
                connection,
                &uvm_id,
            )
            .await?;
    }
    let hosted = documents.hosted_container(
        spec,
        attached.as_ref().map(|a| a.namespace),
        attached.as_ref().map_or(&[], |a| &a.dns_search),
    );
    record.documents.push((
        "container".to_owned(),
        serde_json::to_value(&hosted).unwrap_or_default(),
    ));
    rollback
        .check("create the container in the VM", async {
            connection
                .create_container(&container, &hosted)
                .await
                .map_err(guest_error("create the container in the VM"))
        })
        .await
}

/// Routes the host's hvsock traffic for the hosted container into its VM, by the
/// `SystemGUID` the guest gave it (queried, as hcsshim does, never computed here).
async fn redirect_hvsocket(
    rollback: &mut Rollback,
    id: &ContainerId,
    connection: &GuestConnection,
    runtime_id: uuid::Uuid,
    connector: &dyn GuestConnector,
) -> Result<AddressRedirect, RuntimeError> {
    const STEP: &str = "route the container's hvsock traffic into the VM";
    rollback
        .check(STEP, async {
            let properties = connection
                .get_properties(&id.to_string(), system_guid_query())
                .await
                .map_err(guest_error(STEP))?;
            let system_guid = properties["SystemGUID"]
                .as_str()
                .and_then(|guid| uuid::Uuid::parse_str(guid).ok())
                .ok_or_else(|| RuntimeError::Host {
                    step: STEP.to_owned(),
                    hresult: None,
                    message: "the guest reported no SystemGUID for the container".into(),
                })?;
            connector
                .redirect_container(system_guid, runtime_id)
                .await
                .map_err(io_error(STEP))
        })
        .await
}
