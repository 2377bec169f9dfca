//! What a shim serves: the container it holds, behind one interface the supervisor
//! implements over the runtime (process isolation through HCS, Hyper-V through the guest
//! connection it holds).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::protocol::{ConsoleSize, ExecRequest};

pub type Input = Box<dyn AsyncWrite + Send + Unpin>;
pub type Output = Box<dyn AsyncRead + Send + Unpin>;
pub type ExitFuture = Pin<Box<dyn Future<Output = i32> + Send>>;

/// Resizes a session's console.
#[async_trait]
pub trait Resize: Send + Sync {
    async fn resize(&self, size: ConsoleSize) -> Result<(), String>;
}

/// A process the client talks to: an exec, or the workload when attached.
pub struct Session {
    pub stdin: Option<Input>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    /// Resolves with the exit code when the process ends.
    pub exit: ExitFuture,
    /// For a session with a console.
    pub resize: Option<Arc<dyn Resize>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("console", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// The container a shim holds. Errors are the messages the client shows.
#[async_trait]
pub trait ShimTarget: Send + Sync {
    async fn state(&self) -> Result<serde_json::Value, String>;
    async fn stats(&self) -> Result<serde_json::Value, String>;
    /// Waits for the workload's end; its exit code.
    async fn wait(&self) -> Result<i32, String>;
    async fn kill(&self, signal: &str) -> Result<(), String>;
    /// A graceful stop, termination after `timeout`; the exit code.
    async fn stop(&self, timeout: Duration) -> Result<i32, String>;
    async fn exec(&self, request: ExecRequest) -> Result<Session, String>;
    /// The workload's output and, with `stdin`, its input; with `stdin_once` the end of
    /// this client's input closes the workload's.
    async fn attach(&self, stdin: bool, stdin_once: bool) -> Result<Session, String>;
}
