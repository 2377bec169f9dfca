//! Start: the created (or exited) container's workload launched through its isolation, its
//! output copied into the log and shared with attached clients, its exit watched.

use chrono::Utc;
use pane_oci::ImageFacts;
use pane_spec::ServiceSpec;

use super::ContainerLifecycle;
use crate::documents::workload::init_process;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolated::Launched;
use crate::records::Phase;

impl ContainerLifecycle {
    /// Starts the system and launches the workload; its exit is watched through events.
    pub async fn start(
        &self,
        id: &ContainerId,
        spec: &ServiceSpec,
        image: &ImageFacts,
    ) -> Result<(), RuntimeError> {
        let _lock = self.locks.lock(id).await?;
        let mut record = self.records.load(id)?;
        let isolated = self.isolated(record.isolation);
        match record.phase {
            Phase::Created => {}
            Phase::Exited { .. } => isolated.prepare_restart(&self.host, &record).await?,
            _ => {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    operation: "start",
                    state: format!("{:?}", record.phase),
                });
            }
        }
        let workload = init_process(spec, image)?;
        let has_console = workload.emulate_console;
        let writer = self.log_writer(id)?;
        let Launched { pipes, exit } = isolated.start(&self.host, &record, workload).await?;
        let pid = pipes.pid;
        let output = self.share_workload(&record, has_console, pipes, &writer);
        record.phase = Phase::Running;
        record.started_at = Some(Utc::now());
        record.resources.init_pid = Some(pid);
        self.records.save(&record)?;
        self.watch_exit(id, exit, output, isolated.system(&record));
        Ok(())
    }
}
