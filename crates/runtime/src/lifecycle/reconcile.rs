//! After a restart: adopt running containers (watch their exits again), finish the
//! creates and removes that were interrupted, mark what was lost, terminate compute systems
//! of this owner that no record knows, and detach CNI attachments no record names. Also
//! [`attach`](ContainerLifecycle::attach): watching a container another live pane process
//! started.

use chrono::Utc;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::records::{Durability, Phase, WaitOutcome};

/// What [`ContainerLifecycle::reconcile`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reconciled {
    /// Running containers watched again.
    pub adopted: Vec<ContainerId>,
    /// Interrupted creates and removes whose leftovers were released.
    pub cleaned: Vec<ContainerId>,
    /// Containers whose compute system disappeared while pane was down.
    pub lost: Vec<ContainerId>,
    /// Compute systems with this owner tag and no record, terminated.
    pub orphans: Vec<String>,
    /// Containers another pane process was working on, left to it.
    pub busy: Vec<ContainerId>,
    /// Running containers whose supervisor is alive and holds them, left to it.
    #[serde(default)]
    pub held: Vec<ContainerId>,
    /// CNI attachments (network, CNI container ID) whose container has no record,
    /// detached.
    pub detached: Vec<(String, String)>,
    /// What could not be cleaned up this time, and why; run reconcile again.
    pub failures: Vec<String>,
}

impl ContainerLifecycle {
    /// After a restart: adopts running containers it has records for (their exits are
    /// watched again), finishes the cleanup of creates and removes that were interrupted,
    /// and terminates compute systems carrying this owner tag that no record knows.
    pub async fn reconcile(&self) -> Result<Reconciled, RuntimeError> {
        let mut report = Reconciled::default();
        let owned: Vec<String> = self
            .host
            .compute
            .enumerate(&self.host.layout.owner)
            .await?
            .into_iter()
            .filter_map(|p| p.id)
            .collect();
        let records = self.records.list()?;
        for record in &records {
            // A create, start, stop or remove of another pane process is at work on it;
            // what it holds is its to finish or undo.
            let Some(_lock) = self.locks.try_lock(&record.id)? else {
                report.busy.push(record.id.clone());
                continue;
            };
            let exists = owned.contains(&self.system_of(record));
            if record.phase == Phase::Running
                && exists
                && let Some(holders) = &self.holders
                && holders.holds(&record.id).await
            {
                report.held.push(record.id.clone());
                continue;
            }
            let adoptable = self.isolated(record.isolation).adoptable_after_restart();
            match (&record.phase, exists, record.resources.init_pid) {
                (Phase::Running, true, Some(pid)) if adoptable => {
                    self.watch_again(&record.id, pid).await?;
                    report.adopted.push(record.id.clone());
                }
                (Phase::Running, true, _) => {
                    // The guest connection died with the pane that held it and a guest
                    // agent takes one connection per boot: nothing could collect the
                    // workload's exit or stop it cleanly, so the VM is ended now.
                    self.end_systems(record).await;
                    self.records.update(&record.id, Durability::Synced, |r| {
                        r.phase = Phase::Exited {
                            code: WaitOutcome::LOST_EXIT_CODE,
                        };
                        r.finished_at = Some(Utc::now());
                        true
                    })?;
                    report.lost.push(record.id.clone());
                }
                (Phase::Creating | Phase::Removing | Phase::Failed { .. }, _, _) => {
                    // One container that cannot be released yet does not stop the others;
                    // its record stays for the next reconcile.
                    match self.release(record).await {
                        Ok(()) => {
                            self.records.remove(&record.id)?;
                            report.cleaned.push(record.id.clone());
                        }
                        Err(e) => report.failures.push(format!("{}: {e}", record.id)),
                    }
                }
                (Phase::Running, false, _) => {
                    let mut lost = record.clone();
                    lost.phase = Phase::Exited {
                        code: WaitOutcome::LOST_EXIT_CODE,
                    };
                    lost.finished_at = Some(Utc::now());
                    self.records.save(&lost)?;
                    report.lost.push(record.id.clone());
                }
                _ => {}
            }
        }
        for system in owned {
            let known = records.iter().any(|r| self.system_of(r) == system);
            if !known {
                let _ = self.host.compute.open(&system).await;
                let _ = self.host.compute.terminate(&system).await;
                self.host.compute.close(&system).await;
                report.orphans.push(system);
            }
        }
        if let Some(cni) = &self.host.networks.cni {
            // An attachment cached by a create that died before its record was saved,
            // or whose record was removed while a DEL failed.
            let live: std::collections::HashSet<String> = self
                .records
                .list()?
                .iter()
                .flat_map(|r| r.resources.attachments.iter())
                .map(|a| a.cni_container_id.clone())
                .filter(|id| !id.is_empty())
                .collect();
            let (detached, failures) = cni.collect_stale(&live).await;
            report.detached = detached;
            report.failures.extend(failures);
        }
        Ok(report)
    }

    /// Watches a running container that another pane process started: opens its compute
    /// system and waits for its workload's exit, so `wait`, `stop` and `kill` work from here.
    /// Its output keeps flowing into the log from the process that holds the pipes.
    pub async fn attach(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let known = self.exits.lock().is_ok_and(|exits| exits.contains_key(id));
        if known {
            return Ok(());
        }
        let record = self.records.load(id)?;
        match (&record.phase, record.resources.init_pid) {
            (Phase::Running, Some(pid)) => self.watch_again(id, pid).await,
            _ => Ok(()),
        }
    }

    async fn watch_again(&self, id: &ContainerId, pid: u32) -> Result<(), RuntimeError> {
        let record = self.records.load(id)?;
        let isolated = self.isolated(record.isolation);
        let exit = isolated.watch_again(&self.host, &record, pid).await?;
        // The workload's pipes belong to the process that started it; the log keeps what
        // that process copied.
        self.watch_exit(id, exit, Vec::new(), isolated.system(&record));
        Ok(())
    }
}
