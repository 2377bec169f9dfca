//! The records the `Runtime` trait takes and returns.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use pane_spec::ServiceSpec;
use serde::{Deserialize, Serialize};

use crate::id::ContainerId;
use crate::isolation::Isolation;
use crate::records::state::ContainerState;

/// What to run inside a running container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecOptions {
    /// Program and arguments; quoted into one Windows command line by the runtime.
    pub command: Vec<String>,
    /// `NAME=value` entries added to the container's environment.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    /// The console's size when `tty` is set; HCS's default without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    /// Bytes for the command's standard input, which is closed after them (so a filter such
    /// as `findstr` ends). `None`: the command gets no standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Vec<u8>>,
}

impl ExecOptions {
    pub fn command<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

pub use crate::backend::ConsoleSize;

/// Resizes the console of a running process (an exec with `tty`, or a workload whose
/// spec says `tty: true`).
#[async_trait::async_trait]
pub trait ConsoleControl: Send + Sync {
    async fn resize(&self, size: ConsoleSize) -> Result<(), crate::RuntimeError>;
}

/// A command started in a container whose input is written while it runs (a terminal
/// session), where [`ExecOptions::stdin`] gives all of it up front. Shutting `input`
/// down closes the command's standard input.
pub struct ExecSession {
    pub input: Option<Box<dyn crate::backend::ProcessInput>>,
    pub events: ExecEventStream,
    pub console: Option<std::sync::Arc<dyn ConsoleControl>>,
}

impl fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSession")
            .field("input", &self.input.is_some())
            .field("console", &self.console.is_some())
            .finish_non_exhaustive()
    }
}

/// Says whether a live process other than this one holds a running container (a
/// detached container's supervisor, serving its shim). Reconcile leaves those alone: their
/// holder collects the exit, and a Hyper-V guest takes one connection per boot.
#[async_trait::async_trait]
pub trait Holders: Send + Sync {
    async fn holds(&self, id: &ContainerId) -> bool;
}

/// Output of a streamed exec. The stream ends with exactly one `Exit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

pub type ExecEventStream = Pin<Box<dyn Stream<Item = ExecEvent> + Send>>;

/// Output of a buffered exec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A point-in-time resource reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Total CPU time used, in microseconds (HCS reports 100 ns units).
    pub cpu_usage_usec: u64,
    /// Private working set, in bytes.
    pub memory_bytes: u64,
    /// The configured limit; `None` when the container has none.
    pub memory_limit_bytes: Option<u64>,
    pub timestamp: DateTime<Utc>,
}

impl ContainerStats {
    /// Memory use as a share of the limit, when there is a limit.
    pub fn memory_percent(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // a percentage needs no more than f64's 53 bits
        self.memory_limit_bytes
            .filter(|limit| *limit > 0)
            .map(|limit| self.memory_bytes as f64 * 100.0 / limit as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    pub message: String,
    /// The exec that wrote it; `None` for the workload itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
}

/// Which log lines to return.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Only the last N lines; `None` or `Some(0)` returns all.
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// An image in the local store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    pub size_bytes: u64,
    /// The Windows build the image was made for (`os.version`), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PruneResult {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// One line of `pane ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSummary {
    pub id: ContainerId,
    pub image: String,
    pub state: ContainerState,
    pub created_at: DateTime<Utc>,
}

/// Everything pane knows about a container, for `pane inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInspect {
    pub id: ContainerId,
    pub spec: ServiceSpec,
    pub state: ContainerState,
    /// The platform manifest the container was created from.
    pub image_manifest: Option<String>,
    /// Decided at create; `None` before.
    pub isolation: Option<Isolation>,
    pub ip: Option<IpAddr>,
    /// Container ports published on the host.
    pub ports: Vec<crate::backend::PublishedPort>,
    /// Each network joined: interface, addresses, gateway, DNS.
    pub networks: Vec<crate::records::NetworkAttachment>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// The HCS documents pane sent, by name (`container`, `utility_vm`, …).
    pub documents: Vec<(String, serde_json::Value)>,
}

/// Credentials for one pull, given inline by the caller. They override any credential store.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Basic {
        username: String,
        password: Secret,
    },
    /// A registry identity or refresh token (what `docker login` stores as `identitytoken`).
    Token(Secret),
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            RegistryAuth::Token(_) => f.write_str("Token(..)"),
        }
    }
}

impl From<&RegistryAuth> for pane_oci::credentials::Credentials {
    fn from(auth: &RegistryAuth) -> Self {
        match auth {
            RegistryAuth::Basic { username, password } => Self::Basic {
                username: username.clone(),
                password: password.expose().to_owned(),
            },
            RegistryAuth::Token(token) => Self::IdentityToken(token.expose().to_owned()),
        }
    }
}

/// A string that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = RegistryAuth::Basic {
            username: "bot".into(),
            password: Secret::new("hunter2"),
        };
        let shown = format!("{auth:?} {}", Secret::new("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bot"));
        assert!(!format!("{:?}", RegistryAuth::Token(Secret::new("tok-123"))).contains("tok-123"));
    }

    #[test]
    fn inline_auth_becomes_registry_credentials() {
        let auth = RegistryAuth::Basic {
            username: "bot".into(),
            password: Secret::new("pw"),
        };
        assert_eq!(
            pane_oci::credentials::Credentials::from(&auth),
            pane_oci::credentials::Credentials::Basic {
                username: "bot".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn memory_percent_needs_a_limit() {
        let mut stats = ContainerStats {
            cpu_usage_usec: 0,
            memory_bytes: 256 << 20,
            memory_limit_bytes: Some(1 << 30),
            timestamp: Utc::now(),
        };
        assert_eq!(stats.memory_percent(), Some(25.0));
        stats.memory_limit_bytes = None;
        assert_eq!(stats.memory_percent(), None);
        stats.memory_limit_bytes = Some(0);
        assert_eq!(stats.memory_percent(), None);
    }
}
