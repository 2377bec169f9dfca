//! Process isolation: the container is a compute system on the host (a silo sharing the
//! host's kernel) over an activated scratch layer, its workload and execs are host
//! processes, and their exits come as HCS events.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pane_hcs::doc::LayerRef;
use pane_hcs::schema::{ProcessParameters, PropertyQuery};
use pane_spec::ServiceSpec;

use super::host_exit::{host_system_exit, host_workload_exit};
use super::{ContainerHost, IsolatedContainer, Launched, WorkloadExit};
use crate::backend::Compute;
use crate::documents::process::{ProcessDocumentInput, process_document};
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::records::ContainerRecord;
use crate::rollback::Rollback;
use crate::signal::Signal;
use crate::types::{ConsoleControl, ConsoleSize};

/// `HCS_E_SYSTEM_NOT_FOUND`.
const HCS_E_SYSTEM_NOT_FOUND: u32 = 0x8037_010E;

/// The name under which a record keeps the document its compute system was created from.
const CONTAINER_DOCUMENT: &str = "container";

/// A console process of a process-isolated container: `HcsModifyProcess` with
/// `ConsoleSize`.
struct HostConsole {
    compute: Arc<dyn Compute>,
    system: String,
    pid: u32,
}

#[async_trait]
impl ConsoleControl for HostConsole {
    async fn resize(&self, size: ConsoleSize) -> Result<(), RuntimeError> {
        Ok(self
            .compute
            .resize_console(&self.system, self.pid, size)
            .await?)
    }
}

/// Process isolation. It holds nothing of its own: everything it makes is named by the
/// record and reachable through the host seams.
#[derive(Debug, Default)]
pub(crate) struct ProcessIsolation;

/// Creates an exited container's silo again from the document it was created with (the
/// old one ended with its workload).
async fn recreate_system(
    host: &ContainerHost,
    record: &ContainerRecord,
) -> Result<(), RuntimeError> {
    let document = record
        .documents
        .iter()
        .find(|(name, _)| name == CONTAINER_DOCUMENT)
        .and_then(|(_, document)| serde_json::from_value(document.clone()).ok())
        .ok_or_else(|| RuntimeError::State {
            path: record.id.to_string(),
            reason: "its record keeps no container document to start it again from".into(),
        })?;
    let system = record.id.to_string();
    let _ = host.compute.open(&system).await;
    let _ = host.compute.terminate(&system).await;
    host.compute.close(&system).await;
    Ok(host.compute.create(&system, &document).await?)
}

#[async_trait]
impl IsolatedContainer for ProcessIsolation {
    fn name_system(&self, record: &mut ContainerRecord) {
        record.resources.compute_system = Some(record.id.to_string());
    }

    fn system(&self, record: &ContainerRecord) -> String {
        record.id.to_string()
    }

    fn adoptable_after_restart(&self) -> bool {
        true
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
        let storage = spec.resources.storage.map(pane_spec::MemorySize::bytes);
        let parents = host
            .create_scratch(rollback, scratch, chain, storage)
            .await?;
        let layers = Arc::clone(&host.layers);
        let undo_scratch = scratch.to_owned();
        let volume = rollback
            .step(
                "activate scratch layer",
                async { Ok(host.layers.activate(scratch, &parents).await?) },
                move || async move { Ok(layers.deactivate(&undo_scratch).await?) },
            )
            .await?;
        record.resources.scratch_activated = true;
        let attached = host.networks.attach(rollback, record, &spec.ports).await?;
        let id = record.id.to_string();
        let (document, clamped) = process_document(&ProcessDocumentInput {
            owner: &host.layout.owner,
            spec,
            chain,
            scratch_volume: &volume,
            host_processors: host.layout.host_processors,
            network_namespace: attached.as_ref().map(|a| a.namespace),
            dns_search: attached.as_ref().map_or(&[], |a| &a.dns_search),
            files: host.files.as_ref(),
        })?;
        if let Some(clamp) = clamped {
            tracing::warn!(%id, "{clamp}");
        }
        record.documents = vec![(
            CONTAINER_DOCUMENT.to_owned(),
            serde_json::to_value(&document).unwrap_or_default(),
        )];
        host.create_system(rollback, "create compute system", &id, &document)
            .await
    }

    async fn prepare_restart(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
    ) -> Result<(), RuntimeError> {
        // As `docker start` of a stopped container: the same command again, over the same
        // scratch layer.
        recreate_system(host, record).await
    }

    async fn start(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        workload: ProcessParameters,
    ) -> Result<Launched, RuntimeError> {
        let system = record.id.to_string();
        // Created by another pane process (`pane create`, then `pane start`): open it here.
        // A created container whose system is gone (an earlier start made it again and that
        // failed, or the host restarted) gets it made again from its document.
        match host.compute.open(&system).await {
            Err(e) if e.hresult.0 == HCS_E_SYSTEM_NOT_FOUND => {
                recreate_system(host, record).await?;
            }
            other => other?,
        }
        // A start that a pane process began and did not finish (killed after HCS started
        // the system): the system runs without its workload and cannot be started again.
        let running = host
            .compute
            .properties(&system, &PropertyQuery::default())
            .await
            .ok()
            .and_then(|p| p.state)
            .is_some_and(|state| state == "Running" || state == "Paused");
        if running {
            recreate_system(host, record).await?;
        }
        let events = host.compute.events(&system)?;
        host.compute.start(&system).await?;
        let process = match host.compute.create_process(&system, &workload).await {
            Ok(process) => process,
            Err(e) => {
                // The system ran without its workload: end it, and make it again, so the
                // record's `Created` stays true on the host and a later start can run
                // (a terminated system cannot be started again).
                let _ = recreate_system(host, record).await;
                return Err(e.into());
            }
        };
        Ok(Launched {
            exit: host_workload_exit(events, process.pid),
            pipes: process.into(),
        })
    }

    async fn exec(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        command: ProcessParameters,
    ) -> Result<Launched, RuntimeError> {
        let system = record.id.to_string();
        let events = host.compute.events(&system)?;
        let process = host.compute.create_process(&system, &command).await?;
        Ok(Launched {
            exit: host_workload_exit(events, process.pid),
            pipes: process.into(),
        })
    }

    async fn shutdown(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        Ok(host.compute.shutdown(&self.system(record), grace).await?)
    }

    /// SIGTERM and SIGINT become the console events `CtrlShutdown` and `CtrlC`; SIGKILL
    /// terminates the process.
    async fn signal(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
        signal: Signal,
    ) -> Result<(), RuntimeError> {
        let console_event = match signal {
            Signal::Term => Some("CtrlShutdown"),
            Signal::Int => Some("CtrlC"),
            Signal::Kill => None,
        };
        Ok(host
            .compute
            .signal_process(&record.id.to_string(), pid, console_event)
            .await?)
    }

    fn console(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
    ) -> Result<Arc<dyn ConsoleControl>, RuntimeError> {
        Ok(Arc::new(HostConsole {
            compute: Arc::clone(&host.compute),
            system: self.system(record),
            pid,
        }))
    }

    async fn watch_again(
        &self,
        host: &ContainerHost,
        record: &ContainerRecord,
        pid: u32,
    ) -> Result<WorkloadExit, RuntimeError> {
        let system = record.id.to_string();
        host.compute.open(&system).await?;
        let events = host.compute.events(&system)?;
        // A workload that has already gone cannot be opened; the system's exit then ends
        // the wait, with the code its starter recorded.
        Ok(match host.compute.open_process(&system, pid).await {
            Ok(()) => host_workload_exit(events, pid),
            Err(e) => {
                tracing::debug!(id = %record.id, error = %e, "the workload is not there to watch");
                host_system_exit(events)
            }
        })
    }

    fn forget(&self, _id: &ContainerId) {}
}
