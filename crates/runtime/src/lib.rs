//! The pane runtime: the [`Runtime`] contract an orchestrator embeds, its domain types, and
//! the policies that decide isolation and GPU assignment.

pub mod backend;
pub mod error;
pub mod gpu;
#[cfg(any(windows, test))]
mod handle_table;
pub mod hcs_runtime;
pub mod host;
mod host_exit;
pub mod host_files;
mod hyperv;
pub mod hyperv_docs;
mod id;
pub mod images;
pub mod isolation;
pub mod logs;
mod network;
pub mod plan;
pub mod process;
pub mod process_docs;
pub mod process_runtime;
pub mod records;
pub mod rollback;
mod runtime;
mod signal;
mod state;
mod types;
#[cfg(windows)]
pub mod windows_backend;

pub use error::{Result, RuntimeError};
pub use id::{ContainerId, ContainerIdError};
pub use isolation::{Isolation, IsolationDecision, IsolationReason, decide_isolation};
pub use runtime::{Runtime, collect_exec};
pub use signal::{Signal, SignalError};
pub use state::{ContainerState, WaitOutcome, WaitReason};
pub use types::{
    ContainerInspect, ContainerStats, ContainerSummary, ExecEvent, ExecEventStream, ExecOptions,
    ExecOutput, ImageInfo, LogEntry, LogOptions, LogStream, PruneResult, RegistryAuth, Secret,
};
