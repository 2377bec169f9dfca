//! The workload's exit: a watcher task per started (or adopted) container publishes its
//! outcome to [`wait`](ContainerLifecycle::wait), records it, and ends what the workload
//! leaves running.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolated::WorkloadExit;
use crate::records::{Durability, Phase, WaitOutcome, WaitReason};

/// How long an exit waits for its output to drain: a grandchild can hold the pipes open
/// after the workload has gone, and the exit must not wait on it.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

impl ContainerLifecycle {
    /// Publishes the container's outcome when its workload (or the whole system) exits.
    pub(super) fn watch_exit(
        &self,
        id: &ContainerId,
        exit: WorkloadExit,
        output: Vec<tokio::task::JoinHandle<()>>,
        system: String,
    ) {
        let (publish, outcome) = watch::channel(None);
        if let Ok(mut exits) = self.exits.lock() {
            exits.insert(id.clone(), outcome);
        }
        let records = self.records.clone();
        let compute = Arc::clone(&self.host.compute);
        let logs = Arc::clone(&self.logs);
        let attachments = Arc::clone(&self.attachments);
        let id = id.clone();
        tokio::spawn(async move {
            let workload_exit = exit.await;
            // Its input closes with it; attached clients see the end through `wait`.
            if let Ok(mut attachments) = attachments.lock() {
                attachments.remove(&id);
            }
            // Logs read after a wait hold everything the workload wrote.
            for pump in output {
                let _ = tokio::time::timeout(OUTPUT_DRAIN, pump).await;
            }
            // Nothing writes to the log after the workload: close it, so another pane
            // process can remove the folder (Windows refuses to delete an open file).
            if workload_exit.is_some()
                && let Ok(mut logs) = logs.lock()
            {
                logs.remove(&id);
            }
            // Only a running record becomes exited: a removal in progress keeps its phase, and
            // a record already exited (by the pane that holds the workload) gives its code.
            let recorded = records.update(&id, Durability::Relaxed, |record| {
                if record.phase != Phase::Running {
                    return false;
                }
                record.phase = Phase::Exited {
                    code: workload_exit.unwrap_or(WaitOutcome::LOST_EXIT_CODE),
                };
                record.finished_at = Some(Utc::now());
                true
            });
            let outcome = match (workload_exit, recorded) {
                (Some(code), _) => WaitOutcome::exited(code, Utc::now()),
                (None, Ok(Some(record))) => match record.phase {
                    Phase::Exited { code } if code != WaitOutcome::LOST_EXIT_CODE => {
                        WaitOutcome::exited(code, record.finished_at.unwrap_or_else(Utc::now))
                    }
                    _ => WaitOutcome::runtime_error(Utc::now()),
                },
                (None, _) => WaitOutcome::runtime_error(Utc::now()),
            };
            let _ = publish.send(Some(outcome));
            if workload_exit.is_some() {
                // As containerd's shim does: once the workload is gone its silo (or utility
                // VM) goes too, so an exited container holds nothing but its scratch layer.
                let _ = compute.terminate(&system).await;
            }
        });
    }

    /// Waits for the workload to end.
    pub async fn wait(&self, id: &ContainerId) -> Result<WaitOutcome, RuntimeError> {
        let receiver = self
            .exits
            .lock()
            .ok()
            .and_then(|exits| exits.get(id).cloned());
        let Some(mut receiver) = receiver else {
            let record = self.records.load(id)?;
            return match record.phase {
                Phase::Exited { code } => Ok(WaitOutcome {
                    exit_code: code,
                    reason: WaitReason::Exited,
                    signal: None,
                    finished_at: record.finished_at,
                }),
                phase => Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    operation: "wait for",
                    state: format!("{phase:?}"),
                }),
            };
        };
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RuntimeError::Host {
                step: "wait".into(),
                hresult: None,
                message: "the exit watcher stopped".into(),
            })?
            .clone();
        outcome.ok_or_else(|| RuntimeError::Host {
            step: "wait".into(),
            hresult: None,
            message: "no outcome".into(),
        })
    }
}
