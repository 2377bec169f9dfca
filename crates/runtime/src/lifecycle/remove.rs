//! Remove: the compute system, the networks, the scratch layer and the folder of a
//! container, then its record. Reconcile finishes interrupted creates and removes with the
//! same steps ([`ContainerLifecycle::release`]).

use std::time::Duration;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::records::{ContainerRecord, Durability, Phase};

/// Tries at removing a container folder whose files another process may still hold
/// (50 ms, 100 ms, … : 2.75 s in all).
const FOLDER_REMOVE_ATTEMPTS: u32 = 10;

impl ContainerLifecycle {
    /// Removes the container and everything it holds on the host. A running container is
    /// refused unless `force`.
    pub async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), RuntimeError> {
        let _lock = self.locks.lock(id).await?;
        let mut record = self.records.load(id)?;
        if record.phase == Phase::Running && !force {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                operation: "remove",
                state: "running".into(),
            });
        }
        record.phase = Phase::Removing;
        // Relaxed: if this is lost in a crash, the record keeps its old phase and still lists
        // everything the container holds, so the remove can simply be run again.
        self.records.write(&record, Durability::Relaxed)?;
        self.isolated(record.isolation).forget(id);
        self.end_systems(&record).await;
        self.host.networks.release(&record).await?;
        if let Some(scratch) = &record.resources.scratch {
            if record.resources.scratch_activated {
                self.host.layers.deactivate(scratch).await?;
            }
            self.host.layers.destroy(scratch).await?;
        }
        if let Ok(mut exits) = self.exits.lock() {
            exits.remove(id);
        }
        if let Ok(mut logs) = self.logs.lock() {
            logs.remove(id);
        }
        self.remove_folder(id).await?;
        self.records.remove(id)
    }

    /// Takes away whatever a record says may exist; absent pieces are fine.
    pub(super) async fn release(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        self.end_systems(record).await;
        self.host.networks.release(record).await?;
        if let Some(scratch) = &record.resources.scratch {
            self.host.layers.deactivate(scratch).await?;
            self.host.layers.destroy(scratch).await?;
        }
        self.remove_folder(&record.id).await
    }

    /// Terminates and lets go of the compute system a record says may exist. This process
    /// may hold no handle yet, and a system that is gone already is fine.
    pub(super) async fn end_systems(&self, record: &ContainerRecord) {
        let system = self.system_of(record);
        let _ = self.host.compute.open(&system).await;
        let _ = self.host.compute.terminate(&system).await;
        self.host.compute.close(&system).await;
    }

    /// The container's folder (its log; the scratch layer is already destroyed by then).
    pub(super) async fn remove_folder(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let folder = self.folder(id);
        let mut attempt = 0;
        loop {
            match tokio::fs::remove_dir_all(&folder).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                // On Windows a file another process still has open (the log, while the
                // supervisor of a just-terminated workload winds down) cannot be deleted
                // yet; it is released within moments.
                Err(_) if attempt < FOLDER_REMOVE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50) * attempt).await;
                }
                Err(e) => {
                    return Err(RuntimeError::State {
                        path: folder.display().to_string(),
                        reason: format!("cannot remove the container folder: {e}"),
                    });
                }
            }
        }
    }
}
