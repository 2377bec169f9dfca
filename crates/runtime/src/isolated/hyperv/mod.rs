//! Hyper-V isolation: the container runs in its own utility VM, driven through the guest
//! compute service (GCS) over the bridge. Create boots the VM and builds the container in
//! it, in hcsshim's order; start launches the workload with its stdio relayed and keeps a
//! `WaitForProcess` outstanding for its exit.
//!
//! The guest connection belongs to the pane process that booted the VM (a guest agent
//! takes one connection per boot): [`HypervIsolation`] keeps this process's connections,
//! and another process can only watch the VM's end and shut the VM down.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pane_gcs::GuestConnection;
use pane_gcs::messages::{TimeZoneInformation, WindowsSignal};
use pane_hcs::doc::LayerRef;
use pane_hcs::schema::ProcessParameters;
use pane_spec::ServiceSpec;

use crate::backend::{AddressRedirect, GuestConnector, ProcessInput, ProcessOutput};
use crate::documents::hyperv::utility_vm_id;
use crate::error::{RuntimeError, guest_error};
use crate::id::ContainerId;
use crate::isolated::host_exit::host_system_exit;
use crate::isolated::{ContainerHost, IsolatedContainer, Launched, ProcessPipes, WorkloadExit};
use crate::records::ContainerRecord;
use crate::rollback::Rollback;
use crate::signal::Signal;
use crate::types::{ConsoleControl, ConsoleSize};

mod create;

/// The workload's exit through an outstanding `WaitForProcess`; a closed bridge (the VM
/// went away) is a container lost.
fn guest_workload_exit(
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

/// A console process in a utility VM's guest: the bridge's `ResizeConsole`.
struct GuestConsole {
    connection: Arc<GuestConnection>,
    container: String,
    pid: u32,
}

#[async_trait]
impl ConsoleControl for GuestConsole {
    async fn resize(&self, size: ConsoleSize) -> Result<(), RuntimeError> {
        self.connection
            .resize_console(&self.container, self.pid, size.rows, size.columns)
            .await
            .map_err(guest_error("resize the console in the VM"))
    }
}

/// Hyper-V isolation, and the guest connections of the containers this process booted.
pub(crate) struct HypervIsolation {
    /// Reaches utility VMs' guests; without it Hyper-V isolation is refused.
    pub connector: Option<Arc<dyn GuestConnector>>,
    /// The zone utility VMs keep their clock in unless a spec asks for UTC.
    pub time_zone: TimeZoneInformation,
    /// The guest connections of this process's Hyper-V containers.
    guests: Mutex<HashMap<ContainerId, Arc<GuestConnection>>>,
    /// The hvsock routes into the VMs of this process's Hyper-V containers.
    routes: Mutex<HashMap<ContainerId, AddressRedirect>>,
}

impl HypervIsolation {
    pub fn new(time_zone: TimeZoneInformation) -> Self {
        Self {
            connector: None,
            time_zone,
            guests: Mutex::default(),
            routes: Mutex::default(),
        }
    }

    /// The guest connection of a Hyper-V container started by this process.
    fn guest_connection(
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
                     process that created it (for a detached container, its supervisor); \
                     `pane run -d` creates and starts one under its supervisor, which serves \
                     it to every pane process"
                ),
            })
    }
}

#[async_trait]
impl IsolatedContainer for HypervIsolation {
    fn name_system(&self, record: &mut ContainerRecord) {
        record.resources.utility_vm = Some(utility_vm_id(&record.id));
    }

    fn system(&self, record: &ContainerRecord) -> String {
        record
            .resources
            .utility_vm
            .clone()
            .unwrap_or_else(|| utility_vm_id(&record.id))
    }

    fn adoptable_after_restart(&self) -> bool {
        false
    }

    async fn create(
        &self,
        host: &ContainerHost,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        chain: &[LayerRef],
        scratch: &Path,
    ) -> Result<(), RuntimeError> {
        self.create_in_vm(host, rollback, record, spec, chain, scratch)
            .await
    }

    async fn prepare_restart(
        &self,
        _host: &ContainerHost,
        record: &ContainerRecord,
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported {
            operation: "restarting a Hyper-V container",
            reason: format!(
                "the utility VM of {} ended with its workload; remove the container and \
                 create it again",
                record.id
            ),
        })
    }

    /// Starts the hosted container and its workload, stdio relayed, with a
    /// `WaitForProcess` outstanding for its exit.
    async fn start(
        &self,
        _host: &ContainerHost,
        record: &ContainerRecord,
        workload: ProcessParameters,
    ) -> Result<Launched, RuntimeError> {
        let connection = self.guest_connection(&record.id, "start")?;
        let container = record.id.to_string();
        connection
            .start_container(&container)
            .await
            .map_err(guest_error("start the container in the VM"))?;
        let process = match connection.execute_process(&container, workload).await {
            Ok(process) => process,
            Err(e) => {
                let _ = connection.shutdown_forced(&container).await;
                return Err(guest_error("launch the workload in the VM")(e));
            }
        };
        let pipes = guest_pipes(process);
        let exit = guest_workload_exit(connection, container, pipes.pid);
        Ok(Launched { pipes, exit })
    }

    /// Runs an exec in the guest: its relayed pipes and its exit.
    async fn exec(
        &self,
        _host: &ContainerHost,
        record: &ContainerRecord,
        command: ProcessParameters,
    ) -> Result<Launched, RuntimeError> {
        let connection = self.guest_connection(&record.id, "exec")?;
        let container = record.id.to_string();
        let process = connection
            .execute_process(&container, command)
            .await
            .map_err(guest_error("run the command in the VM"))?;
        let pipes = guest_pipes(process);
        let exit = guest_workload_exit(connection, container, pipes.pid);
        Ok(Launched { pipes, exit })
    }

    /// The hosted container's shutdown through the guest when this process holds the
    /// connection, else the utility VM's.
    async fn shutdown(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        if let Ok(connection) = self.guest_connection(&record.id, "stop") {
            return connection
                .shutdown_graceful(&record.id.to_string())
                .await
                .map_err(guest_error("shut down the container in the VM"));
        }
        let vm = self.system(record);
        host.compute.open(&vm).await?;
        Ok(host.compute.shutdown(&vm, grace).await?)
    }

    /// Console events through the guest; SIGKILL terminates the process in the guest.
    async fn signal(
        &self,
        _host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
        signal: Signal,
    ) -> Result<(), RuntimeError> {
        let connection = self.guest_connection(&record.id, "kill")?;
        let event = match signal {
            Signal::Term => Some(WindowsSignal::CtrlShutdown),
            Signal::Int => Some(WindowsSignal::CtrlC),
            Signal::Kill => None,
        };
        // A workload that has already exited is not an error: the bridge reports it as
        // not delivered, and its exit reaches the record through the outstanding wait.
        connection
            .signal_process(&record.id.to_string(), pid, event)
            .await
            .map(|_delivered| ())
            .map_err(guest_error("signal the workload in the VM"))
    }

    fn console(
        &self,
        _host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
    ) -> Result<Arc<dyn ConsoleControl>, RuntimeError> {
        Ok(Arc::new(GuestConsole {
            connection: self.guest_connection(&record.id, "resize")?,
            container: record.id.to_string(),
            pid,
        }))
    }

    /// The workload lives in the guest; from here only the VM's end can be seen, and the
    /// exit code is the one the holder of the guest connection records.
    async fn watch_again(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        _pid: u32,
    ) -> Result<WorkloadExit, RuntimeError> {
        let vm = self.system(record);
        host.compute.open(&vm).await?;
        let events = host.compute.events(&vm)?;
        Ok(host_system_exit(events))
    }

    /// Lets go of the guest connection and the hvsock route.
    fn forget(&self, id: &ContainerId) {
        if let Ok(mut routes) = self.routes.lock() {
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
}
