//! Where a container is in its life, and how its wait ended.
//!
//! Two views of the same life: [`Phase`] is what a record keeps on disk (it has the
//! `Removing` step a crash must be able to finish), [`ContainerState`] what the `Runtime`
//! contract reports. [`phase_state`] is the one place one becomes the other. Their serde
//! forms are separate on purpose: the phase is part of the record file format, the state
//! part of the API, and neither may change when the other does.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a container is in its life, as the record keeps it. Flattened into the record
/// (`"phase": "exited", "code": 0`): these names are the on-disk format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Host resources are being made; after a crash, whatever the record lists is undone.
    Creating,
    Created,
    Running,
    Exited {
        code: i32,
    },
    /// Being removed; after a crash, removal is finished.
    Removing,
    Failed {
        reason: String,
    },
}

/// Where a container is in its life, as the `Runtime` contract reports it.
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

/// What the `Runtime` contract reports for a record in `phase`: a create in progress is
/// still pending, and a removal in progress is the container stopping.
pub fn phase_state(phase: &Phase) -> ContainerState {
    match phase {
        Phase::Creating => ContainerState::Pending,
        Phase::Created => ContainerState::Created,
        Phase::Running => ContainerState::Running,
        Phase::Removing => ContainerState::Stopping,
        Phase::Exited { code } => ContainerState::Exited { code: *code },
        Phase::Failed { reason } => ContainerState::Failed {
            reason: reason.clone(),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_reports_its_state() {
        let cases = [
            (Phase::Creating, ContainerState::Pending),
            (Phase::Created, ContainerState::Created),
            (Phase::Running, ContainerState::Running),
            (Phase::Removing, ContainerState::Stopping),
            (
                Phase::Exited { code: 3 },
                ContainerState::Exited { code: 3 },
            ),
            (
                Phase::Failed {
                    reason: "no VM".into(),
                },
                ContainerState::Failed {
                    reason: "no VM".into(),
                },
            ),
        ];
        for (phase, state) in cases {
            assert_eq!(phase_state(&phase), state, "{phase:?}");
        }
    }

    #[test]
    fn phase_and_state_keep_their_own_serde_names() {
        // The phase is the record file's format, the state the API's: both are pinned.
        assert_eq!(
            serde_json::to_value(Phase::Exited { code: 2 }).unwrap(),
            serde_json::json!({"phase": "exited", "code": 2})
        );
        assert_eq!(
            serde_json::to_value(ContainerState::Exited { code: 2 }).unwrap(),
            serde_json::json!({"status": "exited", "code": 2})
        );
        for (phase, name) in [
            (Phase::Creating, "creating"),
            (Phase::Created, "created"),
            (Phase::Running, "running"),
            (Phase::Removing, "removing"),
        ] {
            assert_eq!(
                serde_json::to_value(&phase).unwrap(),
                serde_json::json!({ "phase": name })
            );
        }
    }
}
