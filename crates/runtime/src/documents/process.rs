//! The process-isolated container's document, built here for both the runtime and
//! `pane plan`.

use pane_hcs::doc::{self, CpuClamp, LayerRef, ProcessContainerInput};
use pane_hcs::schema::ComputeSystem;
use pane_spec::{Mount, ServiceSpec};
use uuid::Uuid;

use super::host_files::HostFiles;
use super::mount_error;
use crate::error::RuntimeError;

/// What a process-isolated container's document is built from.
#[derive(Debug)]
pub struct ProcessDocumentInput<'a> {
    pub owner: &'a str,
    pub spec: &'a ServiceSpec,
    /// The image's layers, topmost first.
    pub chain: &'a [LayerRef],
    /// The activated scratch's volume.
    pub scratch_volume: &'a str,
    pub host_processors: u32,
    pub network_namespace: Option<Uuid>,
    pub dns_search: &'a [String],
    pub files: &'a dyn HostFiles,
}

/// The container's document, and how its CPU was lowered to fit the host if it was.
pub fn process_document(
    input: &ProcessDocumentInput<'_>,
) -> Result<(ComputeSystem, Option<CpuClamp>), RuntimeError> {
    let mounts = resolved_mounts(&input.spec.mounts, input.files)?;
    let resources = &input.spec.resources;
    let document = doc::process_container(&ProcessContainerInput {
        owner: input.owner,
        hostname: input.spec.hostname.as_deref(),
        layers: input.chain,
        scratch_volume: input.scratch_volume,
        resources,
        host_processors: input.host_processors,
        network_namespace: input.network_namespace,
        dns_search: input.dns_search,
        mounts: &mounts,
        gpu: resources.gpu.is_some(),
    });
    let clamped = doc::container_processor(resources.cpu, input.host_processors).clamped;
    Ok((document, clamped))
}

/// The spec's mounts with each file or folder source resolved through its links, as
/// hcsshim does for process isolation: HCS mis-resolves a mapped file whose path holds a
/// link. Pipes are left as they are.
fn resolved_mounts(mounts: &[Mount], files: &dyn HostFiles) -> Result<Vec<Mount>, RuntimeError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, mount)| {
            if doc::is_pipe(&mount.source) {
                return Ok(mount.clone());
            }
            let source = files
                .mount_source(&mount.source)
                .map_err(|reason| mount_error(index, reason))?;
            Ok(Mount {
                source: source.resolved,
                ..mount.clone()
            })
        })
        .collect()
}
