//! The pane runtime: the [`Runtime`] contract an orchestrator embeds, its domain types, the
//! policies that decide isolation and GPU assignment, and the HCS runtime that implements
//! it. `README.md` beside `src/` maps the modules and the direction of their dependencies.

pub mod backend;
pub mod documents;
pub mod error;
pub mod gpu;
#[cfg(any(windows, test))]
mod handle_table;
pub mod hcs_runtime;
pub mod host;
mod id;
pub mod images;
mod isolated;
pub mod isolation;
pub mod lifecycle;
pub mod logs;
pub mod networking;
pub mod plan;
pub mod records;
pub mod rollback;
mod runtime;
pub mod shim_target;
mod signal;
mod types;
#[cfg(windows)]
pub mod windows_backend;
pub mod workload_io;

/// The host file-system questions, at the path `pane plan` imports them from.
pub use documents::host_files;
/// The CNI networks, at the path `pane` (the CLI) imports them from.
pub use networking::cni as cni_networks;

pub use error::{Result, RuntimeError};
pub use id::{ContainerId, ContainerIdError};
pub use isolation::{Isolation, IsolationDecision, IsolationReason, decide_isolation};
pub use networking::namespace_id as network_namespace_id;
pub use records::state::{ContainerState, WaitOutcome, WaitReason};
pub use runtime::{Runtime, collect_exec};
pub use signal::{Signal, SignalError};
pub use types::{
    ConsoleControl, ConsoleSize, ContainerInspect, ContainerStats, ContainerSummary, ExecEvent,
    ExecEventStream, ExecOptions, ExecOutput, ExecSession, Holders, ImageInfo, LogEntry,
    LogOptions, LogStream, PruneResult, RegistryAuth, Secret,
};
pub use workload_io::WorkloadAttachment;
