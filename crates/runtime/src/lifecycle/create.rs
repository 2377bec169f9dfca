//! Create: the record first (naming everything the create will make), then the scratch
//! layer, the networks and the compute system through the container's isolation. A failure
//! undoes every completed step and removes the record; what cannot be undone is kept in a
//! failed record for reconcile to finish.

use std::path::PathBuf;

use pane_hcs::doc::LayerRef;
use pane_oci::ImageFacts;
use pane_spec::ServiceSpec;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolation::Isolation;
use crate::records::{ContainerRecord, Phase};
use crate::rollback::Rollback;

impl ContainerLifecycle {
    fn scratch(&self, id: &ContainerId) -> PathBuf {
        self.folder(id).join("scratch")
    }

    /// Creates the container: record, scratch layer over `chain` (topmost first),
    /// activation, compute system. On failure every completed step is undone and the record
    /// removed; the error names the step.
    pub async fn create(
        &self,
        id: &ContainerId,
        spec: &ServiceSpec,
        image: &ImageFacts,
        chain: &[LayerRef],
    ) -> Result<(), RuntimeError> {
        self.create_isolated(id, spec, image, chain, Isolation::Process)
            .await
    }

    /// As [`ContainerLifecycle::create`], in the isolation given: Hyper-V boots a utility
    /// VM and creates the container in it through the guest compute service.
    pub async fn create_isolated(
        &self,
        id: &ContainerId,
        spec: &ServiceSpec,
        image: &ImageFacts,
        chain: &[LayerRef],
        isolation: Isolation,
    ) -> Result<(), RuntimeError> {
        // Held until the create is done or undone: a second create of the name (in any
        // pane process) then finds the record, and reconcile leaves this one alone.
        let _lock = self.locks.lock(id).await?;
        // Taken whatever happens next, so a refused create does not leave it for a later one.
        let requested_ip = self.take_requested_address(id);
        if self.records.load(id).is_ok() {
            return Err(RuntimeError::AlreadyExists { id: id.to_string() });
        }
        let isolated = self.isolated(Some(isolation));
        let mut record = ContainerRecord::new(id.clone(), &self.host.layout.owner, spec);
        record.image_manifest = Some(image.manifest_digest.clone());
        record.isolation = Some(isolation);
        let scratch = self.scratch(id);
        record.resources.scratch = Some(scratch.clone());
        // Every host resource is named up front, so the first save already tells a
        // restarted pane what a crash at any later step may have left.
        record.resources.requested_ip = requested_ip;
        self.host
            .networks
            .name_objects(&mut record, &spec.networks)?;
        isolated.name_system(&mut record);
        self.records.save(&record)?;
        let mut rollback = Rollback::new();
        let steps = async {
            isolated
                .create(
                    &self.host,
                    &mut rollback,
                    &mut record,
                    spec,
                    chain,
                    &scratch,
                )
                .await?;
            record.phase = Phase::Created;
            self.records.save(&record)
        }
        .await;
        match steps {
            Ok(()) => {
                rollback.commit();
                Ok(())
            }
            Err(error) => {
                rollback.unwind().await;
                // The isolation may hold a connection to what the unwind just took away.
                isolated.forget(id);
                if rollback.leftovers.is_empty() {
                    self.remove_folder(id).await?;
                    self.records.remove(id)?;
                } else {
                    // Keep the record so a later reconcile can finish the cleanup.
                    record.phase = Phase::Failed {
                        reason: format!("{error}; left behind: {}", rollback.leftovers.join("; ")),
                    };
                    self.records.save(&record)?;
                }
                Err(error)
            }
        }
    }
}
