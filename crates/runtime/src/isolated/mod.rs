//! The per-isolation parts of the container lifecycle, behind one interface,
//! [`IsolatedContainer`]: how a container's compute system is made, how its workload and
//! its execs are launched, signalled and shut down, and how a running one is watched again.
//!
//! - [`process`]: process isolation; the container is a compute system (a silo) on the host
//!   and its processes are the host's;
//! - [`hyperv`]: Hyper-V isolation; the container lives in a utility VM and everything in
//!   it goes through the guest compute service;
//! - [`host_exit`]: a workload's exit read from HCS events, for both.
//!
//! The lifecycle (`lifecycle/`) owns the order of the steps, the records, the locks
//! and the logs, and calls in here for what differs; nothing here calls back into it. What
//! both sides use, the host seams and the folders ([`ContainerHost`]), lives here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pane_hcs::doc::LayerRef;
use pane_hcs::schema::{ComputeSystem, ProcessParameters};
use pane_spec::ServiceSpec;

use crate::backend::{Compute, Layers, ProcessInput, ProcessIo, ProcessOutput};
use crate::documents::host_files::HostFiles;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::networking::Networks;
use crate::records::ContainerRecord;
use crate::rollback::Rollback;
use crate::signal::Signal;
use crate::types::ConsoleControl;

pub(crate) mod host_exit;
pub(crate) mod hyperv;
pub(crate) mod process;

/// Where things go on the host.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Directory of per-container folders (scratch layers live there).
    pub containers: PathBuf,
    pub owner: String,
    pub host_processors: u32,
}

/// The host seams and settings the lifecycle and both isolations create containers with.
pub(crate) struct ContainerHost {
    pub compute: Arc<dyn Compute>,
    pub layers: Arc<dyn Layers>,
    /// What mount sources and layer folders are on the host.
    pub files: Arc<dyn HostFiles>,
    pub layout: Layout,
    pub networks: Networks,
}

impl ContainerHost {
    /// The container's own folder: its scratch layer, its log, a utility VM's disks.
    pub fn folder(&self, id: &ContainerId) -> PathBuf {
        self.layout.containers.join(id.to_string())
    }

    /// Creates the container's scratch layer over `chain` (grown to `size_bytes` when the
    /// spec asks for more than it starts with), undone by destroying it; returns the parent
    /// folders.
    pub async fn create_scratch(
        &self,
        rollback: &mut Rollback,
        scratch: &Path,
        chain: &[LayerRef],
        size_bytes: Option<u64>,
    ) -> Result<Vec<PathBuf>, RuntimeError> {
        let parents: Vec<PathBuf> = chain.iter().map(|l| PathBuf::from(&l.path)).collect();
        let layers = Arc::clone(&self.layers);
        let undo_scratch = scratch.to_owned();
        rollback
            .step(
                "create scratch layer",
                async {
                    self.layers.create_scratch(scratch, &parents).await?;
                    if let Some(size) = size_bytes {
                        // Undone with the layer: a failed expand leaves no scratch behind.
                        if let Err(e) = self.layers.expand_scratch(scratch, size).await {
                            let _ = self.layers.destroy(scratch).await;
                            return Err(e.into());
                        }
                    }
                    Ok(())
                },
                move || async move { Ok(layers.destroy(&undo_scratch).await?) },
            )
            .await?;
        Ok(parents)
    }

    /// Creates compute system `id` as step `step`, undone by terminating and closing it.
    pub async fn create_system(
        &self,
        rollback: &mut Rollback,
        step: &str,
        id: &str,
        document: &ComputeSystem,
    ) -> Result<(), RuntimeError> {
        let compute = Arc::clone(&self.compute);
        let undo_id = id.to_owned();
        rollback
            .step(
                step,
                async { Ok(self.compute.create(id, document).await?) },
                move || async move {
                    // Terminate may find it never started or already gone; close removes it.
                    let _ = compute.terminate(&undo_id).await;
                    compute.close(&undo_id).await;
                    Ok(())
                },
            )
            .await
    }
}

/// How a container's workload ends: `Some(code)` when the workload itself exited, `None`
/// when the container went without it (its system exited, the guest connection closed).
pub(crate) type WorkloadExit =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<i32>> + Send>>;

/// A process's id and its pipes, wherever it runs.
pub(crate) struct ProcessPipes {
    pub pid: u32,
    pub stdin: Option<Box<dyn ProcessInput>>,
    pub stdout: Option<Box<dyn ProcessOutput>>,
    pub stderr: Option<Box<dyn ProcessOutput>>,
}

impl From<ProcessIo> for ProcessPipes {
    fn from(process: ProcessIo) -> Self {
        Self {
            pid: process.pid,
            stdin: process.stdin,
            stdout: process.stdout,
            stderr: process.stderr,
        }
    }
}

/// A process launched in a container (its workload or an exec): its pipes, for the log
/// pumps and an exec's input, and its exit.
pub(crate) struct Launched {
    pub pipes: ProcessPipes,
    pub exit: WorkloadExit,
}

/// What differs between the isolations, as the lifecycle asks for it. Each step gets the
/// container's record as the lifecycle loaded it (under the container's lock, where the
/// step takes one); saving the record stays with the lifecycle.
#[async_trait]
pub(crate) trait IsolatedContainer: Send + Sync {
    /// Names in a new record, before its first save, the compute system this isolation
    /// creates, so a crash at any later step leaves a record saying what may exist.
    fn name_system(&self, record: &mut ContainerRecord);

    /// The compute system whose end is the container's end: the one stop terminates,
    /// reconcile looks for, and remove takes away.
    fn system(&self, record: &ContainerRecord) -> String;

    /// Whether a pane restarted after the one that started the workload can watch it
    /// again. Hyper-V's cannot: the guest agent takes one connection per boot, and it died
    /// with that pane.
    fn adoptable_after_restart(&self) -> bool;

    /// Makes the container's compute system (and, under Hyper-V, everything in it) over
    /// the scratch layer at `scratch`, each step registering its undo in `rollback`.
    async fn create(
        &self,
        host: &ContainerHost,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        chain: &[LayerRef],
        scratch: &Path,
    ) -> Result<(), RuntimeError>;

    /// Makes an exited container startable again (`docker start` of a stopped container).
    async fn prepare_restart(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
    ) -> Result<(), RuntimeError>;

    /// Starts the created container and launches its workload.
    async fn start(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        workload: ProcessParameters,
    ) -> Result<Launched, RuntimeError>;

    /// Launches `command` in the running container.
    async fn exec(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        command: ProcessParameters,
    ) -> Result<Launched, RuntimeError>;

    /// Asks the container to end by itself within `grace`.
    async fn shutdown(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        grace: Duration,
    ) -> Result<(), RuntimeError>;

    /// Delivers `signal` to process `pid` of the container.
    async fn signal(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
        signal: Signal,
    ) -> Result<(), RuntimeError>;

    /// The console of process `pid` of the container, to resize it.
    fn console(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
    ) -> Result<Arc<dyn ConsoleControl>, RuntimeError>;

    /// The exit of running workload `pid`, watched from a pane process that did not start
    /// it; its output keeps flowing into the log from the process that holds the pipes.
    async fn watch_again(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
    ) -> Result<WorkloadExit, RuntimeError>;

    /// Lets go of what this process holds for container `id` (a removal, or a create that
    /// failed after this isolation took hold of something).
    fn forget(&self, id: &ContainerId);
}
