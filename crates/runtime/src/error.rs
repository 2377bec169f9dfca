//! The errors a `Runtime` returns. Each message says what failed and what to do about it.

use std::time::Duration;

use crate::gpu::GpuError;
use crate::isolation::IsolationDecision;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no container {id}; `pane ps -a` lists the containers pane knows")]
    NotFound { id: String },

    #[error("container {id} already exists; remove it first with `pane rm {id}`")]
    AlreadyExists { id: String },

    #[error("cannot {operation} container {id} while it is {state}")]
    WrongState {
        id: String,
        operation: &'static str,
        state: String,
    },

    #[error(
        "image {image} is not in the local store and the pull policy is `never`; run `pane pull {image}` first"
    )]
    ImageNotLocal { image: String },

    #[error("no image {image} in the local store; `pane images` lists them")]
    ImageNotFound { image: String },

    #[error("pulling {image} failed: {reason}")]
    PullFailed { image: String, reason: String },

    #[error("invalid {field}: {problem}; {fix}")]
    InvalidInput {
        field: String,
        problem: String,
        fix: String,
    },

    #[error(transparent)]
    Gpu(#[from] GpuError),

    #[error("{operation} is not supported: {reason}")]
    Unsupported {
        operation: &'static str,
        reason: String,
    },

    #[error("{operation} did not finish within {after:?}")]
    Timeout { operation: String, after: Duration },

    /// A host API (HCS, HCN, the guest bridge) refused a step.
    #[error("{step} failed{}: {message}", .hresult.map(|h| format!(" with HRESULT 0x{h:08X}")).unwrap_or_default())]
    Host {
        step: String,
        hresult: Option<u32>,
        message: String,
    },

    #[error(
        "container {id} is busy: {} has held it for over {waited:?}; try again, or end that process",
        holder.map_or_else(|| "another pane operation".to_owned(), |pid| format!("pane process {pid}"))
    )]
    Busy {
        id: String,
        holder: Option<u32>,
        waited: Duration,
    },

    #[error("pane's state under {path} is unusable: {reason}")]
    State { path: String, reason: String },
}

impl RuntimeError {
    pub fn invalid(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::InvalidInput {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Why a Hyper-V container cannot have a GPU, for the create and the plan alike (here, not in
/// `gpu`, so that `gpu` needs nothing of this module). Microsoft
/// supports GPUs (DirectX) for process-isolated containers only. GPU partitioning (GPU-PV)
/// of a utility VM is not offered: it needs the host's driver files shared into the VM, the
/// partition assigned before boot and the hosted container given `AssignedDevices`, and
/// anything less gives a container that silently has no GPU.
pub fn hyperv_gpu_refusal(decision: IsolationDecision) -> RuntimeError {
    RuntimeError::Unsupported {
        operation: "GPUs under Hyper-V isolation",
        reason: format!(
            "{decision} was chosen, and Windows gives GPUs to process-isolated containers \
             only; run on a host whose build matches the image, or set `isolation: process`"
        ),
    }
}

/// A guest bridge failure at `step`, keeping the guest's HRESULT (Hyper-V isolation and
/// the network it hands the guest both talk over the bridge).
pub(crate) fn guest_error(
    step: &'static str,
) -> impl FnOnce(pane_gcs::BridgeError) -> RuntimeError {
    move |e| RuntimeError::Host {
        step: step.to_owned(),
        hresult: e.hresult().map(|h| h.0),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_show_the_hresult_in_hex() {
        let err = RuntimeError::Host {
            step: "create compute system".into(),
            hresult: Some(0x8037_0100),
            message: "HCS_E_TERMINATED".into(),
        };
        assert_eq!(
            err.to_string(),
            "create compute system failed with HRESULT 0x80370100: HCS_E_TERMINATED"
        );
        let err = RuntimeError::Host {
            step: "bridge".into(),
            hresult: None,
            message: "closed".into(),
        };
        assert_eq!(err.to_string(), "bridge failed: closed");
    }
}
