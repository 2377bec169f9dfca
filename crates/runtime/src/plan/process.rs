//! The plan of a process-isolated create: the scratch layer and its activation, the
//! network, and the compute system's document as the runtime sends it.

use pane_hcs::doc::LayerRef;
use pane_hcs::schema::ProcessParameters;

use super::network::plan_network;
use super::{PlanInput, SCRATCH_VOLUME, Step, push_scratch};
use crate::documents::host_path;
use crate::documents::process::{ProcessDocumentInput, process_document};
use crate::error::RuntimeError;

pub(super) fn process_steps(
    input: &PlanInput<'_>,
    layers: &[LayerRef],
    container_dir: &str,
    process: &ProcessParameters,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), RuntimeError> {
    let scratch = host_path(container_dir, &["scratch"]);
    push_scratch(
        steps,
        &scratch,
        "the container's writable layer over the image chain",
        input.spec.resources.storage,
    );
    steps.push(Step::new(
        "layers",
        "ActivateLayer + PrepareLayer",
        &scratch,
        "mount the scratch over its parents (parents are never activated)",
    ));
    let network = plan_network(input, steps)?;
    let (document, clamped) = process_document(&ProcessDocumentInput {
        owner: input.owner,
        spec: input.spec,
        chain: layers,
        scratch_volume: input.host.scratch_volume.unwrap_or(SCRATCH_VOLUME),
        host_processors: input.host_processors,
        network_namespace: network.as_ref().map(|n| n.namespace),
        dns_search: &[],
        files: input.files,
    })?;
    notes.extend(clamped.map(|clamp| clamp.to_string()));
    let id = input.id.to_string();
    steps.push(
        Step::new(
            "hcs",
            "HcsCreateComputeSystem",
            &id,
            "the process-isolated container",
        )
        .with(&document),
    );
    steps.push(Step::new(
        "hcs",
        "HcsStartComputeSystem",
        &id,
        "start the silo",
    ));
    steps.push(
        Step::new(
            "hcs",
            "HcsCreateProcess",
            &id,
            "launch the workload with stdout/stderr captured",
        )
        .with(process),
    );
    steps.push(Step::new(
        "hcs",
        "HcsSetProcessCallback",
        &id,
        "the workload's exit is the container's exit code",
    ));
    Ok(())
}
