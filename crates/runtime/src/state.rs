//! Where a container is in its life, and how its wait ended.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ContainerState {
    /// Recorded, nothing created on the host yet.
    Pending,
    /// Host resources are being created (layers, compute system, network).
    Created,
    Running,
    Stopping,
    Exited {
        code: i32,
    },
    /// Could not be created or lost its runtime; `reason` says why.
    Failed {
        reason: String,
    },
}

impl ContainerState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContainerState::Pending => "pending",
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Stopping => "stopping",
            ContainerState::Exited { .. } => "exited",
            ContainerState::Failed { .. } => "failed",
        }
    }

    /// No process will run in it again without a new start.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ContainerState::Exited { .. } | ContainerState::Failed { .. }
        )
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerState::Exited { code } => write!(f, "exited ({code})"),
            ContainerState::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Why a wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// The workload process exited by itself.
    Exited,
    /// pane stopped or killed it.
    Signal,
    /// The job object's memory limit was hit.
    OomKilled,
    /// The compute system or guest connection went away; there is no real exit code.
    RuntimeError,
}

/// The end of a container's run, as `wait` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitOutcome {
    pub exit_code: i32,
    pub reason: WaitReason,
    /// The signal that ended it, for `reason: signal` (`SIGTERM`, `SIGKILL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl WaitOutcome {
    /// Exit code used when the runtime lost the container and no process reported one.
    pub const LOST_EXIT_CODE: i32 = -1;

    pub fn exited(exit_code: i32, finished_at: DateTime<Utc>) -> Self {
        Self {
            exit_code,
            reason: WaitReason::Exited,
            signal: None,
            finished_at: Some(finished_at),
        }
    }

    pub fn runtime_error(finished_at: DateTime<Utc>) -> Self {
        Self {
            exit_code: Self::LOST_EXIT_CODE,
            reason: WaitReason::RuntimeError,
            signal: None,
            finished_at: Some(finished_at),
        }
    }
}
