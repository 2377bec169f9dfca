//! Hyper-V isolation: the container runs in its own utility VM, driven through the guest
//! compute service (GCS) over the bridge. Create boots the VM and builds the container in
//! it, in hcsshim's order; start launches the workload with its stdio relayed and keeps a
//! `WaitForProcess` outstanding for its exit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pane_gcs::messages::{NULL_CONTAINER_ID, WindowsSignal};
use pane_gcs::settings::GuestRequest;
use pane_gcs::{BridgeError, ConnectOptions, GuestConnection, Timeouts};
use pane_hcs::doc::{LayerRef, SharePurpose};
use pane_hcs::schema::{ProcessParameters, PropertyQuery};
use pane_spec::ServiceSpec;

use crate::backend::{ProcessInput, ProcessOutput};
use crate::error::RuntimeError;
use crate::hyperv_docs::{self, HypervDocuments, HypervInput};
use crate::id::ContainerId;
use crate::process_runtime::{ProcessRuntime, WorkloadExit};
use crate::records::ContainerRecord;
use crate::rollback::Rollback;
use crate::signal::Signal;

/// How long a booting VM's guest has to dial the host (hcsshim allows 2 minutes).
const GUEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// The utility VM's compute-system id, as hcsshim names it.
pub(crate) fn utility_vm_id(id: &ContainerId) -> String {
    format!("{id}@vm")
}

/// The guest property query for a hosted container's `SystemGUID`.
pub(crate) fn system_guid_query() -> serde_json::Value {
    serde_json::json!({"PropertyTypes": ["SystemGUID"]})
}

/// A bridge failure at `step`, keeping the guest's HRESULT.
pub(crate) fn guest_error(step: &'static str) -> impl FnOnce(BridgeError) -> RuntimeError {
    move |e| RuntimeError::Host {
        step: step.to_owned(),
        hresult: e.hresult().map(|h| h.0),
        message: e.to_string(),
    }
}

fn io_error(step: &'static str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::Host {
        step: step.to_owned(),
        hresult: None,
        message: e.to_string(),
    }
}

/// The workload's exit through an outstanding `WaitForProcess`; a closed bridge (the VM
/// went away) is a container lost.
pub(crate) fn guest_workload_exit(
    connection: Arc<GuestConnection>,
    container: String,
    pid: u32,
) -> WorkloadExit {
    Box::pin(async move {
        connection
            .wait_for_process(&container, pid, None)
            .await
            .ok()
            .map(|code| i32::from_ne_bytes(code.to_ne_bytes()))
    })
}

/// A process's id and its pipes, wherever it runs.
pub(crate) struct ProcessPipes {
    pub pid: u32,
    pub stdin: Option<Box<dyn ProcessInput>>,
    pub stdout: Option<Box<dyn ProcessOutput>>,
    pub stderr: Option<Box<dyn ProcessOutput>>,
}

impl From<crate::backend::ProcessIo> for ProcessPipes {
    fn from(process: crate::backend::ProcessIo) -> Self {
        Self {
            pid: process.pid,
            stdin: process.stdin,
            stdout: process.stdout,
            stderr: process.stderr,
        }
    }
}

/// A guest process's relay streams as the pipes the log pumps read.
fn guest_pipes(process: pane_gcs::GuestProcess) -> ProcessPipes {
    ProcessPipes {
        pid: process.process_id,
        stdin: process
            .stdin
            .map(|s| Box::new(s.0) as Box<dyn ProcessInput>),
        stdout: process
            .stdout
            .map(|s| Box::new(s.0) as Box<dyn ProcessOutput>),
        stderr: process
            .stderr
            .map(|s| Box::new(s.0) as Box<dyn ProcessOutput>),
    }
}

impl ProcessRuntime {
    /// The guest connection of a Hyper-V container started by this process.
    pub(crate) fn guest_connection(
        &self,
        id: &ContainerId,
        operation: &'static str,
    ) -> Result<Arc<GuestConnection>, RuntimeError> {
        self.guests
            .lock()
            .ok()
            .and_then(|guests| guests.get(id).cloned())
            .ok_or_else(|| RuntimeError::Unsupported {
                operation,
                reason: format!(
                    "{id} is Hyper-V isolated and its guest connection belongs to the pane \
                     process that created it (for a detached container, its supervisor)"
                ),
            })
    }

    /// Boots the utility VM and creates the container in it. Every step that creates
    /// something registers its undo first; the VM's termination undoes everything inside it.
    pub(crate) async fn hyperv_create_steps(
        &self,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        chain: &[LayerRef],
        scratch: &Path,
    ) -> Result<(), RuntimeError> {
        let connector = self
            .guest
            .clone()
            .ok_or_else(|| RuntimeError::Unsupported {
                operation: "Hyper-V isolation",
                reason: "this runtime was built without a guest connector".to_owned(),
            })?;
        let container_dir = self.folder(&record.id).display().to_string();
        let documents = HypervDocuments::new(&HypervInput {
            owner: &self.layout.owner,
            spec,
            chain,
            container_dir: &container_dir,
            host_processors: self.layout.host_processors,
            files: self.files.as_ref(),
        })?;
        if let Some(clamp) = documents.cpu_clamped {
            tracing::warn!(id = %record.id, "{clamp}");
        }
        self.prepare_disks(
            rollback,
            &record.id,
            chain,
            &documents,
            scratch,
            spec.resources.storage.map(pane_spec::MemorySize::bytes),
        )
        .await?;
        let (connection, runtime_id) = self
            .boot_utility_vm(rollback, record, spec, &documents, connector.as_ref())
            .await?;
        self.build_container(rollback, record, spec, &documents, &connection)
            .await?;
        let route = self
            .redirect_hvsocket(
                rollback,
                &record.id,
                &connection,
                runtime_id,
                connector.as_ref(),
            )
            .await?;
        if let Ok(mut routes) = self.hv_routes.lock() {
            routes.insert(record.id.clone(), route);
        }
        record.phase = crate::records::Phase::Created;
        self.records.save(record)?;
        if let Ok(mut guests) = self.guests.lock() {
            guests.insert(record.id.clone(), connection);
        }
        Ok(())
    }

    /// The container scratch (a new layer) and the VM's own scratch (a copy of the base
    /// layer's template), each opened to the VM.
    async fn prepare_disks(
        &self,
        rollback: &mut Rollback,
        id: &ContainerId,
        chain: &[LayerRef],
        documents: &HypervDocuments,
        scratch: &Path,
        storage: Option<u64>,
    ) -> Result<(), RuntimeError> {
        let uvm_id = utility_vm_id(id);
        self.create_scratch(rollback, scratch, chain, storage)
            .await?;
        let container_vhdx = PathBuf::from(&documents.container_vhdx);
        let vm_vhdx = PathBuf::from(&documents.vm_scratch);
        let vm_dir = vm_vhdx
            .parent()
            .map_or_else(|| self.folder(id).join("vm"), Path::to_path_buf);
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
                    Ok(self.compute.grant_vm_access(&uvm_id, disk).await?)
                })
                .await?;
        }
        Ok(())
    }

    /// The utility VM from create to a negotiated, cold-started guest connection that
    /// knows its hvsock addresses.
    async fn boot_utility_vm(
        &self,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        documents: &HypervDocuments,
        connector: &dyn crate::backend::GuestConnector,
    ) -> Result<(Arc<GuestConnection>, uuid::Uuid), RuntimeError> {
        let uvm_id = utility_vm_id(&record.id);
        let document = &documents.utility_vm;
        record.documents = vec![(
            "utility_vm".to_owned(),
            serde_json::to_value(document).unwrap_or_default(),
        )];
        self.create_system(rollback, "create utility VM", &uvm_id, document)
            .await?;
        // The hvsock address is the VM's RuntimeId, never assumed equal to the system id.
        let runtime_id = rollback
            .check("read the utility VM's RuntimeId", async {
                let query = PropertyQuery {
                    property_types: Some(Vec::new()),
                };
                let properties = self.compute.properties(&uvm_id, &query).await?;
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
                Ok(self.compute.start(&uvm_id).await?)
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
                        time_zone: hyperv_docs::cold_start(spec, &self.time_zone)
                            .time_zone_information,
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

    /// The layers and mounts shared with the VM, the scratch attached and mounted, the
    /// layers combined over it, and the container created in the guest.
    async fn build_container(
        &self,
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
                    Ok(self.compute.modify(&uvm_id, &share.request).await?)
                })
                .await?;
        }
        rollback
            .check("attach the container scratch to the VM", async {
                Ok(self
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
        let attached = self
            .attach_networks(rollback, record, &spec.networks, &spec.ports)
            .await?;
        if let Some(attached) = &attached {
            self.attach_networks_in_guest(rollback, record, attached, connection, &uvm_id)
                .await?;
        }
        let hosted = documents.hosted_container(spec, attached.as_ref().map(|a| a.namespace));
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
        &self,
        rollback: &mut Rollback,
        id: &ContainerId,
        connection: &GuestConnection,
        runtime_id: uuid::Uuid,
        connector: &dyn crate::backend::GuestConnector,
    ) -> Result<crate::backend::AddressRedirect, RuntimeError> {
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

    /// Starts the hosted container and its workload, stdio relayed into the log, with a
    /// `WaitForProcess` outstanding for its exit.
    pub(crate) async fn hyperv_start(
        &self,
        record: &mut ContainerRecord,
        parameters: ProcessParameters,
    ) -> Result<(), RuntimeError> {
        let id = record.id.clone();
        let connection = self.guest_connection(&id, "start")?;
        let container = id.to_string();
        let writer = self.log_writer(&id)?;
        connection
            .start_container(&container)
            .await
            .map_err(guest_error("start the container in the VM"))?;
        let process = match connection.execute_process(&container, parameters).await {
            Ok(process) => process,
            Err(e) => {
                let _ = connection.shutdown_forced(&container).await;
                return Err(guest_error("launch the workload in the VM")(e));
            }
        };
        let ProcessPipes {
            pid,
            stdout,
            stderr,
            ..
        } = guest_pipes(process);
        let output = crate::process_runtime::spawn_log_pumps(stdout, stderr, &writer);
        record.phase = crate::records::Phase::Running;
        record.started_at = Some(chrono::Utc::now());
        record.resources.init_pid = Some(pid);
        self.records.save(record)?;
        let vm = record
            .resources
            .utility_vm
            .clone()
            .unwrap_or_else(|| utility_vm_id(&id));
        self.watch_exit(
            &id,
            guest_workload_exit(connection, container, pid),
            output,
            vm,
        );
        Ok(())
    }

    /// Console events through the guest; SIGKILL terminates the process in the guest.
    pub(crate) async fn hyperv_kill(
        &self,
        id: &ContainerId,
        pid: u32,
        signal: Signal,
    ) -> Result<(), RuntimeError> {
        let connection = self.guest_connection(id, "kill")?;
        let event = match signal {
            Signal::Term => Some(WindowsSignal::CtrlShutdown),
            Signal::Int => Some(WindowsSignal::CtrlC),
            Signal::Kill => None,
        };
        // A workload that has already exited is not an error: the bridge reports it as
        // not delivered, and its exit reaches the record through the outstanding wait.
        connection
            .signal_process(&id.to_string(), pid, event)
            .await
            .map(|_delivered| ())
            .map_err(guest_error("signal the workload in the VM"))
    }

    /// Asks for a graceful end: the hosted container's shutdown through the guest when this
    /// process holds the connection, else the utility VM's.
    pub(crate) async fn hyperv_shutdown(
        &self,
        record: &ContainerRecord,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        if let Ok(connection) = self.guest_connection(&record.id, "stop") {
            return connection
                .shutdown_graceful(&record.id.to_string())
                .await
                .map_err(guest_error("shut down the container in the VM"));
        }
        let vm = record
            .resources
            .utility_vm
            .clone()
            .unwrap_or_else(|| utility_vm_id(&record.id));
        self.compute.open(&vm).await?;
        Ok(self.compute.shutdown(&vm, timeout).await?)
    }

    /// Lets go of the guest connection of a container being removed.
    pub(crate) fn forget_guest(&self, id: &ContainerId) {
        if let Ok(mut routes) = self.hv_routes.lock() {
            routes.remove(id);
        }
        if let Some(connection) = self
            .guests
            .lock()
            .ok()
            .and_then(|mut guests| guests.remove(id))
        {
            connection.close();
        }
    }

    /// Runs an exec in the guest: its relayed pipes and its exit.
    pub(crate) async fn hyperv_exec(
        &self,
        id: &ContainerId,
        parameters: ProcessParameters,
    ) -> Result<(ProcessPipes, WorkloadExit), RuntimeError> {
        let connection = self.guest_connection(id, "exec")?;
        let container = id.to_string();
        let process = connection
            .execute_process(&container, parameters)
            .await
            .map_err(guest_error("run the command in the VM"))?;
        let pipes = guest_pipes(process);
        let exit = guest_workload_exit(connection, container, pipes.pid);
        Ok((pipes, exit))
    }
}
