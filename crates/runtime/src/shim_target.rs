//! The container a shim serves, over the [`Runtime`] of the process that holds it: a
//! detached container's supervisor serves this, so every other `pane` process reaches the
//! container through the runtime that holds its handles (and, for Hyper-V, its one guest
//! connection).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pane_shim::protocol::ExecRequest;
use pane_shim::target::{ExitFuture, Input, Output, Resize, Session, ShimTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::records::state::ContainerState;
use crate::runtime::Runtime;
use crate::signal::Signal;
use crate::types::{
    ConsoleControl, ConsoleSize, ContainerStats, ExecEvent, ExecEventStream, ExecOptions,
    ExecSession, LogStream,
};
use crate::workload_io::{Chunk, WorkloadAttachment, WorkloadIo};

/// What a shim needs of the runtime that holds the container.
#[async_trait]
pub trait ContainerOps: Send + Sync {
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError>;
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError>;
    async fn wait(&self, id: &ContainerId) -> Result<i32, RuntimeError>;
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError>;
    async fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<i32, RuntimeError>;
    async fn exec_session(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        input: bool,
    ) -> Result<ExecSession, RuntimeError>;
    fn attachment(&self, id: &ContainerId) -> Result<WorkloadAttachment, RuntimeError>;
}

#[async_trait]
impl ContainerOps for crate::hcs_runtime::HcsRuntime {
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        self.container_state(id).await
    }
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.container_stats(id).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<i32, RuntimeError> {
        self.wait_container(id).await
    }
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        self.kill_container(id, signal).await
    }
    async fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<i32, RuntimeError> {
        self.stop_container(id, timeout).await?;
        self.wait_container(id).await
    }
    async fn exec_session(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        input: bool,
    ) -> Result<ExecSession, RuntimeError> {
        crate::hcs_runtime::HcsRuntime::exec_session(self, id, options, input).await
    }
    fn attachment(&self, id: &ContainerId) -> Result<WorkloadAttachment, RuntimeError> {
        crate::hcs_runtime::HcsRuntime::attachment(self, id)
    }
}

#[async_trait]
impl ContainerOps for crate::lifecycle::ContainerLifecycle {
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        Ok(crate::records::phase_state(&self.records.load(id)?.phase))
    }
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        Err(RuntimeError::Unsupported {
            operation: "statistics",
            reason: format!(
                "the container lifecycle alone does not measure {id}; use the HcsRuntime"
            ),
        })
    }
    async fn wait(&self, id: &ContainerId) -> Result<i32, RuntimeError> {
        self.wait(id).await.map(|outcome| outcome.exit_code)
    }
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        self.kill(id, signal).await
    }
    async fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<i32, RuntimeError> {
        self.stop(id, timeout)
            .await
            .map(|outcome| outcome.exit_code)
    }
    async fn exec_session(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        input: bool,
    ) -> Result<ExecSession, RuntimeError> {
        crate::lifecycle::ContainerLifecycle::exec_session(self, id, options, input).await
    }
    fn attachment(&self, id: &ContainerId) -> Result<WorkloadAttachment, RuntimeError> {
        crate::lifecycle::ContainerLifecycle::attachment(self, id)
    }
}

/// How much of a session's output may wait for a slow client before the process's own
/// output waits.
const PIPE_BUFFER: usize = 256 * 1024;

/// Container `id` of `runtime`, as its shim serves it.
pub struct RuntimeTarget {
    runtime: Arc<dyn ContainerOps>,
    id: ContainerId,
}

impl std::fmt::Debug for RuntimeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeTarget")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RuntimeTarget {
    pub fn new(runtime: Arc<dyn ContainerOps>, id: ContainerId) -> Self {
        Self { runtime, id }
    }
}

/// The exit code a relay hands over, or the lost-exit code when it went first.
fn exit_of(exit: tokio::sync::oneshot::Receiver<i32>) -> ExitFuture {
    Box::pin(async move {
        exit.await
            .unwrap_or(crate::records::state::WaitOutcome::LOST_EXIT_CODE)
    })
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A console resized through the runtime, for the shim's sessions.
struct SessionConsole(Arc<dyn ConsoleControl>);

#[async_trait]
impl Resize for SessionConsole {
    async fn resize(&self, size: pane_shim::ConsoleSize) -> Result<(), String> {
        self.0
            .resize(ConsoleSize {
                rows: size.rows,
                columns: size.columns,
            })
            .await
            .map_err(text)
    }
}

fn session_console(console: Option<Arc<dyn ConsoleControl>>) -> Option<Arc<dyn Resize>> {
    console.map(|console| Arc::new(SessionConsole(console)) as Arc<dyn Resize>)
}

#[async_trait]
impl ShimTarget for RuntimeTarget {
    async fn state(&self) -> Result<serde_json::Value, String> {
        let state = self.runtime.state(&self.id).await.map_err(text)?;
        serde_json::to_value(state).map_err(text)
    }

    async fn stats(&self) -> Result<serde_json::Value, String> {
        let stats = self.runtime.stats(&self.id).await.map_err(text)?;
        serde_json::to_value(stats).map_err(text)
    }

    async fn wait(&self) -> Result<i32, String> {
        self.runtime.wait(&self.id).await.map_err(text)
    }

    async fn kill(&self, signal: &str) -> Result<(), String> {
        let signal: Signal = signal.parse().map_err(text)?;
        self.runtime.kill(&self.id, signal).await.map_err(text)
    }

    async fn stop(&self, timeout: Duration) -> Result<i32, String> {
        self.runtime.stop(&self.id, timeout).await.map_err(text)
    }

    async fn exec(&self, request: ExecRequest) -> Result<Session, String> {
        let options = ExecOptions {
            command: request.command,
            env: request
                .env
                .iter()
                .map(|entry| match entry.split_once('=') {
                    Some((name, value)) => (name.to_owned(), value.to_owned()),
                    None => (entry.clone(), String::new()),
                })
                .collect(),
            working_dir: request.workdir,
            user: request.user,
            tty: request.terminal.is_some(),
            console_size: request.terminal.map(|size| ConsoleSize {
                rows: size.rows,
                columns: size.columns,
            }),
            stdin: None,
        };
        // Started before the answer, so a refusal is the request's error.
        let session = self
            .runtime
            .exec_session(&self.id, &options, request.stdin)
            .await
            .map_err(text)?;
        let (out_writer, out_reader) = tokio::io::duplex(PIPE_BUFFER);
        let (err_writer, err_reader) = tokio::io::duplex(PIPE_BUFFER);
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<i32>();
        tokio::spawn(relay(session.events, out_writer, err_writer, exit_tx));
        Ok(Session {
            stdin: session.input.map(|input| Box::new(input) as Input),
            stdout: Some(Box::new(out_reader) as Output),
            stderr: Some(Box::new(err_reader) as Output),
            exit: exit_of(exit_rx),
            resize: session_console(session.console),
        })
    }

    /// The workload's output from its recent part on, its input when it keeps one open
    /// (`stdin_open`; a client's input is otherwise dropped, as docker's attach does), and
    /// its console. A client leaving does not close the workload's input.
    async fn attach(&self, stdin: bool, stdin_once: bool) -> Result<Session, String> {
        let attachment = self.runtime.attachment(&self.id).map_err(text)?;
        let (recent, live) = attachment.io.subscribe();
        let (out_writer, out_reader) = tokio::io::duplex(PIPE_BUFFER);
        let (err_writer, err_reader) = tokio::io::duplex(PIPE_BUFFER);
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<i32>();
        let runtime = Arc::clone(&self.runtime);
        let id = self.id.clone();
        tokio::spawn(async move {
            let ended = async {
                runtime
                    .wait(&id)
                    .await
                    .unwrap_or(crate::records::state::WaitOutcome::LOST_EXIT_CODE)
            };
            let code = relay_workload(recent, live, ended, out_writer, err_writer).await;
            let _ = exit_tx.send(code);
        });
        let input = if stdin && attachment.io.has_input().await {
            let (writer, reader) = tokio::io::duplex(PIPE_BUFFER);
            // Only a workload without a console reads the end of its owner's input: with a
            // console a client's going is a detach (docker closes input only without a
            // TTY), and the input stays for the next one.
            let owns_input = stdin_once && attachment.console.is_none();
            tokio::spawn(feed_workload(
                reader,
                Arc::clone(&attachment.io),
                owns_input,
            ));
            Some(Box::new(writer) as Input)
        } else {
            None
        };
        Ok(Session {
            stdin: input,
            stdout: Some(Box::new(out_reader) as Output),
            stderr: Some(Box::new(err_reader) as Output),
            exit: exit_of(exit_rx),
            resize: session_console(attachment.console),
        })
    }
}

/// Copies one client's input into the workload until the client closes it or the
/// workload's input is gone. The workload's input then stays open for the next client,
/// unless this client owns it (`stdin_once`): its end is the workload's.
async fn feed_workload(mut reader: tokio::io::DuplexStream, io: Arc<WorkloadIo>, stdin_once: bool) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if io.write_input(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    if stdin_once {
        io.close_input().await;
    }
}

/// Copies the workload's output to an attached client: what it printed recently, then
/// what it prints, until it ends (its exit code is returned) or the client goes.
async fn relay_workload(
    recent: Vec<Chunk>,
    mut live: tokio::sync::broadcast::Receiver<Chunk>,
    ended: impl std::future::Future<Output = i32>,
    mut out: tokio::io::DuplexStream,
    mut err: tokio::io::DuplexStream,
) -> i32 {
    async fn write(
        chunk: &Chunk,
        out: &mut tokio::io::DuplexStream,
        err: &mut tokio::io::DuplexStream,
    ) -> bool {
        let pipe = if chunk.0 == LogStream::Stderr {
            err
        } else {
            out
        };
        pipe.write_all(&chunk.1).await.is_ok()
    }
    // A write fails only once the client is gone: nobody is left for the exit code.
    let gone = crate::records::WaitOutcome::LOST_EXIT_CODE;
    for chunk in &recent {
        if !write(chunk, &mut out, &mut err).await {
            return gone;
        }
    }
    tokio::pin!(ended);
    loop {
        tokio::select! {
            chunk = live.recv() => match chunk {
                Ok(chunk) => {
                    if !write(&chunk, &mut out, &mut err).await {
                        return gone;
                    }
                }
                // A client too slow for the workload misses what it fell behind by; the
                // log has all of it.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return ended.await,
            },
            code = &mut ended => {
                // What the workload printed last is already in the channel.
                while let Ok(chunk) = live.try_recv() {
                    if !write(&chunk, &mut out, &mut err).await {
                        break;
                    }
                }
                return code;
            }
        }
    }
}

/// Copies an exec's events into its output pipes; the exit code last, once the pipes are
/// closed, so a client sees all output before the end.
async fn relay(
    mut events: ExecEventStream,
    mut out: tokio::io::DuplexStream,
    mut err: tokio::io::DuplexStream,
    exit: tokio::sync::oneshot::Sender<i32>,
) {
    let mut code = crate::records::state::WaitOutcome::LOST_EXIT_CODE;
    while let Some(event) = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await {
        match event {
            ExecEvent::Stdout(bytes) => {
                let _ = out.write_all(&bytes).await;
            }
            ExecEvent::Stderr(bytes) => {
                let _ = err.write_all(&bytes).await;
            }
            ExecEvent::Exit(exit_code) => {
                code = exit_code;
                break;
            }
        }
    }
    drop((out, err));
    let _ = exit.send(code);
}

/// The supervisors under a root: a container is held when its shim answers the handshake.
#[derive(Debug, Clone)]
pub struct ShimHolders {
    root: std::path::PathBuf,
    client: String,
}

impl ShimHolders {
    /// How long a shim has to answer before its container is taken as not held.
    const ANSWER: Duration = Duration::from_secs(2);

    pub fn under(root: &std::path::Path, client_version: &str) -> Self {
        Self {
            root: root.to_owned(),
            client: client_version.to_owned(),
        }
    }
}

#[async_trait]
impl crate::types::Holders for ShimHolders {
    /// A shim that takes the connection holds its container, even if it is too busy (or
    /// stopped in a debugger) to answer within the time: ending the VM of a live
    /// supervisor would be the worse mistake. Only an endpoint nobody listens on (absent,
    /// or refused: a supervisor killed with its socket left) is not held.
    async fn holds(&self, id: &ContainerId) -> bool {
        let path = pane_shim::endpoint::endpoint(&self.root, &id.to_string());
        // No socket file: no shim was ever bound (a path too long for a socket included).
        if cfg!(unix) && !path.exists() {
            return false;
        }
        match tokio::time::timeout(Self::ANSWER, pane_shim::endpoint::connect(&path)).await {
            Ok(Ok(stream)) => {
                // Said hello to, so the shim does not log a client that went silent.
                let _ = tokio::time::timeout(
                    Self::ANSWER,
                    pane_shim::ShimClient::handshake(stream, &self.client),
                )
                .await;
                true
            }
            Ok(Err(e)) => {
                let gone = matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::InvalidInput
                );
                if !gone {
                    tracing::warn!(%id, error = %e, "the container's shim could not be reached; taking it as held");
                }
                !gone
            }
            Err(_) => {
                tracing::warn!(%id, "the container's shim did not take the connection in time; taking it as held");
                true
            }
        }
    }
}
