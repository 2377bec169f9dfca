//! Stop (a graceful shutdown, then terminate) and kill (a signal to the workload).

use std::time::Duration;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::records::{Phase, WaitOutcome, WaitReason};
use crate::signal::Signal;

/// How long a stop waits for the exit of a workload it terminated.
const TERMINATED_EXIT_WAIT: Duration = Duration::from_secs(60);

impl ContainerLifecycle {
    /// Graceful shutdown, then terminate if the workload is still there after `timeout`.
    pub async fn stop(
        &self,
        id: &ContainerId,
        timeout: Duration,
    ) -> Result<WaitOutcome, RuntimeError> {
        let _lock = self.locks.lock(id).await?;
        let record = self.records.load(id)?;
        let grace = timeout.max(Duration::from_secs(1));
        let isolated = self.isolated(record.isolation);
        // Hyper-V: the container's own shutdown in the guest, and the VM as the last resort.
        let system = isolated.system(&record);
        let graceful = isolated.shutdown(&self.host, &record, grace).await;
        let waited = tokio::time::timeout(timeout, self.wait(id)).await;
        let (signal, outcome) = if let (Ok(()), Ok(outcome)) = (graceful, waited) {
            ("SIGTERM", outcome?)
        } else {
            let _ = self.host.compute.terminate(&system).await;
            // Bounded: an exit that never comes (the compute service died) must not hold
            // the container's lock for ever.
            let outcome = tokio::time::timeout(TERMINATED_EXIT_WAIT, self.wait(id))
                .await
                .map_err(|_| RuntimeError::Timeout {
                    operation: format!("the exit of {id} after it was terminated"),
                    after: TERMINATED_EXIT_WAIT,
                })??;
            ("SIGKILL", outcome)
        };
        Ok(WaitOutcome {
            reason: WaitReason::Signal,
            signal: Some(signal.to_owned()),
            ..outcome
        })
    }

    /// Delivers `signal` to the workload: SIGTERM and SIGINT become the console events
    /// `CtrlShutdown` and `CtrlC`; SIGKILL terminates it.
    ///
    /// It takes no container lock: a kill must get through while a `stop` waits out its
    /// grace period (as `docker kill` does), and it creates or removes nothing.
    pub async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        let record = self.records.load(id)?;
        let pid = match (&record.phase, record.resources.init_pid) {
            (Phase::Running, Some(pid)) => pid,
            (phase, _) => {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    operation: "kill",
                    state: format!("{phase:?}"),
                });
            }
        };
        self.isolated(record.isolation)
            .signal(&self.host, &record, pid, signal)
            .await
    }
}
