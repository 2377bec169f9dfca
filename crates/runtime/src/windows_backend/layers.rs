//! [`Layers`] over vmcompute (`pane_wclayer::sys`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::backend::{HostError, Layers};

/// vmcompute's layer calls; they block, so they run on the blocking pool.
#[derive(Debug, Default)]
pub struct VmcomputeLayers;

fn layer_error(call: &'static str, e: &pane_wclayer::LayerError) -> HostError {
    // A vmcompute failure names the call that failed: one step here may make several
    // (`activate` is ActivateLayer, PrepareLayer and GetLayerMountPath).
    let (call, hresult) = match e {
        pane_wclayer::LayerError::Windows { call, hresult, .. } => (*call, *hresult),
        _ => (call, 0x8000_4005),
    };
    HostError::new(call, hresult, e.to_string())
}

async fn blocking<T: Send + 'static>(
    call: &'static str,
    f: impl FnOnce() -> Result<T, pane_wclayer::LayerError> + Send + 'static,
) -> Result<T, HostError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| layer_error(call, &e)),
        Err(e) => Err(HostError::new(call, 0x8000_FFFF, e.to_string())),
    }
}

#[async_trait]
impl Layers for VmcomputeLayers {
    async fn create_scratch(&self, scratch: &Path, parents: &[PathBuf]) -> Result<(), HostError> {
        let (scratch, parents) = (scratch.to_owned(), parents.to_vec());
        blocking("CreateSandboxLayer", move || {
            pane_wclayer::sys::create_scratch(&scratch, &parents)
        })
        .await
    }

    async fn expand_scratch(&self, scratch: &Path, size_bytes: u64) -> Result<(), HostError> {
        let scratch = scratch.to_owned();
        blocking("ExpandSandboxSize", move || {
            pane_wclayer::sys::expand_scratch(&scratch, size_bytes)
        })
        .await
    }

    async fn activate(&self, scratch: &Path, parents: &[PathBuf]) -> Result<String, HostError> {
        let (scratch, parents) = (scratch.to_owned(), parents.to_vec());
        blocking("ActivateLayer", move || {
            pane_wclayer::sys::activate_and_prepare(&scratch, &parents)
        })
        .await
    }

    async fn deactivate(&self, scratch: &Path) -> Result<(), HostError> {
        let scratch = scratch.to_owned();
        blocking("DeactivateLayer", move || {
            // Unprepare may find the layer was never prepared; deactivating is what matters.
            let _ = pane_wclayer::sys::unprepare(&scratch);
            pane_wclayer::sys::deactivate(&scratch)
        })
        .await
    }

    async fn destroy(&self, scratch: &Path) -> Result<(), HostError> {
        let scratch = scratch.to_owned();
        blocking("DestroyLayer", move || pane_wclayer::sys::destroy(&scratch)).await
    }
}
