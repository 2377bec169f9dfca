//! [`Compute`] over computecore (`pane_hcs::sys`): handles in a table, their events fanned
//! out to subscribers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pane_hcs::HcsError;
use pane_hcs::schema::{
    ComputeSystem, ModifySettingRequest, ProcessParameters, Properties, PropertyQuery,
};
use pane_hcs::sys;
use tokio::sync::mpsc;

use crate::backend::{Compute, ComputeEvent, HostError, ProcessIo};
use crate::handle_table::{self, HandleTable, Shared};

/// HCS's own create/start timeouts, as hcsshim sets them.
const SYSTEM_TIMEOUT: Duration = Duration::from_secs(240);

fn host_error(call: &'static str, e: &HcsError) -> HostError {
    HostError::new(
        call,
        e.hresult().map_or(0x8000_4005, |h| h.0),
        e.to_string(),
    )
}

/// Handles leave this table only through `handle_table`, which closes them after the lock
/// is released (closing waits for HCS callbacks, which may want the lock).
type Handles = HandleTable<sys::ComputeSystem, sys::Process>;

/// HCS on this host.
#[derive(Default)]
pub struct HcsCompute {
    handles: Arc<Mutex<Handles>>,
}

impl std::fmt::Debug for HcsCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HcsCompute")
    }
}

impl HcsCompute {
    fn system(
        &self,
        call: &'static str,
        id: &str,
    ) -> Result<Shared<sys::ComputeSystem>, HostError> {
        self.handles
            .lock()
            .ok()
            .and_then(|h| h.systems.get(id).cloned())
            .ok_or_else(|| {
                HostError::new(call, 0x8037_010E, format!("no open compute system {id}"))
            })
    }

    /// A process of system `id` that this process created or opened.
    fn process(
        &self,
        call: &'static str,
        id: &str,
        pid: u32,
    ) -> Result<Shared<sys::Process>, HostError> {
        self.handles
            .lock()
            .ok()
            .and_then(|h| h.processes.get(&(id.to_owned(), pid)).cloned())
            .ok_or_else(|| HostError::new(call, 0x8007_0490, format!("no process {pid} in {id}")))
    }

    /// Forwards a handle's events to everyone subscribed to the system.
    fn forward(
        &self,
        id: &str,
        mut events: mpsc::UnboundedReceiver<pane_hcs::HcsEvent>,
        pid: Option<u32>,
    ) {
        let handles = Arc::clone(&self.handles);
        let id = id.to_owned();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let event = match pid {
                    Some(pid) => ComputeEvent::Process { pid, event },
                    None => ComputeEvent::System(event),
                };
                if let Ok(mut handles) = handles.lock()
                    && let Some(list) = handles.subscribers.get_mut(&id)
                {
                    list.retain(|s| s.send(event.clone()).is_ok());
                }
            }
        });
    }

    fn adopt(&self, id: &str, mut system: sys::ComputeSystem) -> Result<(), HostError> {
        let events = system
            .events()
            .map_err(|e| host_error("HcsSetComputeSystemCallback", &e))?;
        self.forward(id, events, None);
        handle_table::insert_system(&self.handles, id, system);
        Ok(())
    }
}

#[async_trait]
impl Compute for HcsCompute {
    async fn create(&self, id: &str, document: &ComputeSystem) -> Result<(), HostError> {
        let system = sys::ComputeSystem::create(id, document, Some(SYSTEM_TIMEOUT))
            .await
            .map_err(|e| host_error("HcsCreateComputeSystem", &e))?;
        self.adopt(id, system)
    }

    async fn open(&self, id: &str) -> Result<(), HostError> {
        let already = self
            .handles
            .lock()
            .is_ok_and(|handles| handles.systems.contains_key(id));
        if already {
            return Ok(());
        }
        let system = sys::ComputeSystem::open(id)
            .await
            .map_err(|e| host_error("HcsOpenComputeSystem", &e))?;
        self.adopt(id, system)
    }

    async fn start(&self, id: &str) -> Result<(), HostError> {
        let system = self.system("HcsStartComputeSystem", id)?;
        let system = system.lock().await;
        system
            .start(Some(SYSTEM_TIMEOUT))
            .await
            .map_err(|e| host_error("HcsStartComputeSystem", &e))
    }

    async fn shutdown(&self, id: &str, timeout: Duration) -> Result<(), HostError> {
        let system = self.system("HcsShutDownComputeSystem", id)?;
        let system = system.lock().await;
        system
            .shutdown(Some(timeout))
            .await
            .map_err(|e| host_error("HcsShutDownComputeSystem", &e))
    }

    async fn terminate(&self, id: &str) -> Result<(), HostError> {
        let system = self.system("HcsTerminateComputeSystem", id)?;
        let system = system.lock().await;
        system
            .terminate(Some(SYSTEM_TIMEOUT))
            .await
            .map_err(|e| host_error("HcsTerminateComputeSystem", &e))
    }

    async fn close(&self, id: &str) {
        handle_table::remove_system(&self.handles, id);
    }

    async fn properties(&self, id: &str, query: &PropertyQuery) -> Result<Properties, HostError> {
        let system = self.system("HcsGetComputeSystemProperties", id)?;
        let system = system.lock().await;
        system
            .properties(query)
            .await
            .map_err(|e| host_error("HcsGetComputeSystemProperties", &e))
    }

    async fn modify(&self, id: &str, request: &ModifySettingRequest) -> Result<(), HostError> {
        let system = self.system("HcsModifyComputeSystem", id)?;
        let system = system.lock().await;
        system
            .modify(request)
            .await
            .map_err(|e| host_error("HcsModifyComputeSystem", &e))
    }

    async fn create_process(
        &self,
        id: &str,
        parameters: &ProcessParameters,
    ) -> Result<ProcessIo, HostError> {
        let system = self.system("HcsCreateProcess", id)?;
        let mut process = {
            let system = system.lock().await;
            system
                .create_process(parameters)
                .await
                .map_err(|e| host_error("HcsCreateProcess", &e))?
        };
        let events = process
            .events()
            .map_err(|e| host_error("HcsSetProcessCallback", &e))?;
        let pid = process.pid;
        self.forward(id, events, Some(pid));
        let io = ProcessIo {
            pid,
            stdin: process
                .stdin
                .take()
                .map(|f| Box::new(tokio::fs::File::from_std(f)) as _),
            stdout: process
                .stdout
                .take()
                .map(|f| Box::new(tokio::fs::File::from_std(f)) as _),
            stderr: process
                .stderr
                .take()
                .map(|f| Box::new(tokio::fs::File::from_std(f)) as _),
        };
        handle_table::insert_process(&self.handles, id, pid, process);
        Ok(io)
    }

    async fn open_process(&self, id: &str, pid: u32) -> Result<(), HostError> {
        let system = self.system("HcsOpenProcess", id)?;
        let mut process = {
            let system = system.lock().await;
            system
                .open_process(pid)
                .await
                .map_err(|e| host_error("HcsOpenProcess", &e))?
        };
        let events = process
            .events()
            .map_err(|e| host_error("HcsSetProcessCallback", &e))?;
        self.forward(id, events, Some(pid));
        handle_table::insert_process(&self.handles, id, pid, process);
        Ok(())
    }

    async fn signal_process(
        &self,
        id: &str,
        pid: u32,
        signal: Option<&str>,
    ) -> Result<(), HostError> {
        let process = self.process("HcsSignalProcess", id, pid)?;
        let process = process.lock().await;
        match signal {
            Some(signal) => process
                .signal(signal)
                .await
                .map_err(|e| host_error("HcsSignalProcess", &e)),
            None => process
                .terminate()
                .await
                .map_err(|e| host_error("HcsTerminateProcess", &e)),
        }
    }

    async fn resize_console(
        &self,
        id: &str,
        pid: u32,
        size: crate::backend::ConsoleSize,
    ) -> Result<(), HostError> {
        let process = self.process("HcsModifyProcess", id, pid)?;
        let process = process.lock().await;
        process
            .resize_console(size.rows, size.columns)
            .await
            .map_err(|e| host_error("HcsModifyProcess", &e))
    }

    fn events(&self, id: &str) -> Result<mpsc::UnboundedReceiver<ComputeEvent>, HostError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut handles = self
            .handles
            .lock()
            .map_err(|_| HostError::new("events", 0x8000_FFFF, "poisoned"))?;
        if !handles.systems.contains_key(id) {
            return Err(HostError::new(
                "HcsSetComputeSystemCallback",
                0x8037_010E,
                format!("no open compute system {id}"),
            ));
        }
        handles
            .subscribers
            .entry(id.to_owned())
            .or_default()
            .push(sender);
        Ok(receiver)
    }

    async fn enumerate(&self, owner: &str) -> Result<Vec<Properties>, HostError> {
        sys::enumerate(owner)
            .await
            .map_err(|e| host_error("HcsEnumerateComputeSystems", &e))
    }

    async fn statistics(&self, id: &str) -> Result<pane_hcs::schema::Statistics, HostError> {
        let system = self.system("HcsGetComputeSystemProperties", id)?;
        let is_container = {
            let system = system.lock().await;
            let query = PropertyQuery {
                property_types: Some(Vec::new()),
            };
            system
                .properties(&query)
                .await
                .ok()
                .and_then(|p| p.system_type)
                .is_some_and(|t| t.eq_ignore_ascii_case("container"))
        };
        if is_container {
            let silo = id.to_owned();
            match tokio::task::spawn_blocking(move || crate::host::silo::silo_statistics(&silo))
                .await
            {
                Ok(Ok(silo)) => return Ok(silo_to_schema(&silo)),
                Ok(Err(e)) => {
                    tracing::debug!(%id, error = %e, "silo statistics failed; asking HCS");
                }
                Err(e) => tracing::debug!(%id, error = %e, "silo statistics task failed"),
            }
        }
        let query = PropertyQuery {
            property_types: Some(vec!["Statistics".to_owned()]),
        };
        let system = system.lock().await;
        system
            .properties(&query)
            .await
            .map(|p| p.statistics.unwrap_or_default())
            .map_err(|e| host_error("HcsGetComputeSystemProperties", &e))
    }

    async fn grant_vm_access(&self, vm_id: &str, path: &Path) -> Result<(), HostError> {
        sys::grant_vm_access(vm_id, path)
            .await
            .map_err(|e| host_error("HcsGrantVmAccess", &e))
    }
}

/// The silo's counters in HCS's `Statistics` shape.
fn silo_to_schema(silo: &crate::host::silo::SiloStatistics) -> pane_hcs::schema::Statistics {
    use pane_hcs::schema::{MemoryStats, ProcessorStats, Statistics};
    Statistics {
        processor: Some(ProcessorStats {
            total_runtime_100ns: Some(silo.user_100ns + silo.kernel_100ns),
            runtime_user_100ns: Some(silo.user_100ns),
            runtime_kernel_100ns: Some(silo.kernel_100ns),
        }),
        memory: Some(MemoryStats {
            memory_usage_commit_bytes: Some(silo.commit_bytes),
            memory_usage_commit_peak_bytes: Some(silo.commit_peak_bytes),
            memory_usage_private_working_set_bytes: Some(silo.private_working_set_bytes),
        }),
        ..Statistics::default()
    }
}
