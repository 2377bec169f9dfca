//! Reaching a detached container through its supervisor's shim API: the supervisor
//! serves it (`serve`), and `exec`, `kill` and `stop` use it whenever the shim is alive
//! (`connect`), falling back to HCS by name when it is not.

use std::sync::Arc;
use std::time::Duration;

use pane_runtime::ContainerId;
use pane_runtime::hcs_runtime::HcsRuntime;
use pane_runtime::shim_target::RuntimeTarget;
use pane_shim::ShimClient;
use pane_shim::endpoint::{Listener, endpoint};

use crate::cli::GlobalArgs;
use crate::terminal::{self, DetachKeys, RawMode};

/// How long a command waits to reach a live shim before it goes to HCS by name.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Listens for container `id`'s clients; a listener that cannot be made is reported and
/// the container runs on without one (commands then go to HCS by name).
pub fn listen(global: &GlobalArgs, id: &ContainerId) -> Option<Listener> {
    match Listener::bind(&endpoint(&global.root, &id.to_string())) {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(%id, error = %e, "cannot serve the container's shim API; other pane commands reach it through HCS");
            None
        }
    }
}

/// How long a supervisor whose workload ended waits for its clients' requests (a `stop`
/// answered with the exit code) before it exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections a shim is serving.
#[derive(Debug, Default, Clone)]
pub struct Serving(Arc<std::sync::atomic::AtomicUsize>);

impl Serving {
    /// Waits until every client has gone, for at most [`DRAIN_TIMEOUT`]: the process ends
    /// after this, and with it any answer still on its way.
    pub async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while self.0.load(std::sync::atomic::Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves container `id` of `runtime` to every client of `listener` until the process
/// ends.
pub fn serve(listener: Listener, runtime: &Arc<HcsRuntime>, id: &ContainerId) -> Serving {
    let target: Arc<dyn pane_shim::ShimTarget> = Arc::new(RuntimeTarget::new(
        Arc::clone(runtime) as Arc<dyn pane_runtime::shim_target::ContainerOps>,
        id.clone(),
    ));
    let serving = Serving::default();
    let active = serving.clone();
    tokio::spawn(async move {
        loop {
            let connection = match listener.accept().await {
                Ok(connection) => connection,
                Err(e) => {
                    // One client that went early, or a moment without file handles,
                    // must not end the shim: every later command would miss it.
                    tracing::debug!(error = %e, "a shim accept failed; accepting again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let target = Arc::clone(&target);
            let active = active.clone();
            active.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            tokio::spawn(async move {
                pane_shim::serve_connection(connection, target, env!("CARGO_PKG_VERSION")).await;
                active.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            });
        }
    });
    serving
}

/// The live shim of container `id`, or `None` (with the reason on stderr when a shim was
/// expected) to go to HCS by name.
pub async fn connect(global: &GlobalArgs, id: &ContainerId) -> Option<ShimClient> {
    let path = endpoint(&global.root, &id.to_string());
    if cfg!(unix) && !path.exists() {
        return None;
    }
    let attempt = async {
        let stream = pane_shim::endpoint::connect(&path).await?;
        ShimClient::handshake(stream, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(client)) => {
            tracing::debug!(%id, shim = %client.shim_version, "reaching the container through its supervisor's shim");
            Some(client)
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
        Ok(Err(e)) if e.to_string().contains("refused this pane") => {
            eprintln!(
                "pane: the supervisor of {id} runs another pane version ({e}); reaching the container through HCS (its output is still logged)"
            );
            None
        }
        Ok(Err(e)) => {
            eprintln!(
                "pane: the supervisor of {id} does not answer ({e}); reaching the container through HCS, and its output is no longer being logged"
            );
            None
        }
        Err(_) => {
            eprintln!(
                "pane: the supervisor of {id} did not answer within {CONNECT_TIMEOUT:?}; reaching the container through HCS"
            );
            None
        }
    }
}

/// How pane's terminal takes part in a session.
#[derive(Debug, Clone)]
pub struct Interaction {
    /// pane's standard input goes to the process, as it is read.
    pub input: bool,
    /// The process has a console: the local terminal goes into raw mode, its size
    /// follows the window, and the detach keys end pane's part.
    pub console: bool,
    pub detach_keys: DetachKeys,
    /// The end of pane's input closes the process's (an exec); an attached workload's
    /// input stays open for the next client.
    pub close_input_at_end: bool,
}

/// How a session ended for pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    /// The detach keys were typed; the process runs on.
    Detached,
    /// pane was told to end (by the signal or console event named); the process runs on.
    Terminated(&'static str),
}

impl Ended {
    /// pane's exit code, and what it says on the way out. `subject` is what runs on (`web-1`,
    /// `the command in web-1`); `reattach` adds how to come back to it.
    pub fn outcome(self, subject: &str, reattach: Option<&str>) -> (u8, Option<String>) {
        let back = reattach
            .map(|id| format!(" (`pane attach {id}` returns to it)"))
            .unwrap_or_default();
        match self {
            // Windows exit codes are 32-bit; a shell sees the low byte, as with docker.
            Ended::Exited(code) => (code.to_le_bytes()[0], None),
            Ended::Detached => (0, Some(format!("detached; {subject} runs on{back}"))),
            // 128 + SIGTERM, as a shell reports a process the signal ended.
            Ended::Terminated(what) => (
                143,
                Some(format!("ended by {what}; {subject} runs on{back}")),
            ),
        }
    }
}

/// Drives `session` from pane's terminal: output to stdout and stderr as it comes, input
/// and window sizes to the shim, until the process ends, the detach keys are typed or pane
/// is told to end. Output, keys and resizes are handled by futures of their own, so a
/// resize waiting for its answer (or input waiting for the process to read it) never
/// stops the output from being drained, which the answer may be queued behind.
pub async fn drive(
    shim: &ShimClient,
    mut session: pane_shim::client::ClientSession,
    interaction: Interaction,
) -> Result<Ended, pane_shim::ShimClientError> {
    use std::io::Write as _;
    // Before raw mode: a SIGTERM from here on ends the session, and so restores the
    // terminal, instead of killing pane with it raw.
    let mut terminated = terminal::Terminations::register();
    // Raw only when the keys go to the console: with `-t` alone the terminal stays as it
    // is, so ctrl-c still ends pane (docker does the same).
    let _raw = if interaction.console && interaction.input {
        RawMode::enable().map_err(|e| {
            pane_shim::ShimClientError::Operation(format!(
                "cannot put the terminal into raw mode: {e}"
            ))
        })?
    } else {
        None
    };
    let session_id = session.id;
    let finished = async {
        while let Some((stream, bytes)) = session.output.recv().await {
            if stream == pane_shim::frame::Stream::Stdout {
                let mut out = std::io::stdout();
                let _ = out.write_all(&bytes).and_then(|()| out.flush());
            } else {
                let _ = std::io::stderr().write_all(&bytes);
            }
        }
        // All output is in: the exit follows.
        (&mut session.exit).await
    };
    let typing = async {
        let Some(mut keyboard) = interaction.input.then(terminal::keyboard) else {
            return std::future::pending().await;
        };
        let mut scanner = terminal::DetachScanner::new(interaction.detach_keys.clone());
        while let Some(bytes) = keyboard.recv().await {
            let found = if interaction.console {
                scanner.scan(&bytes)
            } else {
                terminal::Scanned {
                    forward: bytes,
                    detach: false,
                }
            };
            if !found.forward.is_empty() {
                shim.write_input(session_id, &found.forward).await?;
            }
            if found.detach {
                return Ok(Ended::Detached);
            }
        }
        // End of input: a key held back as a possible start of the sequence is the
        // container's after all.
        let held = scanner.finish();
        if !held.is_empty() {
            shim.write_input(session_id, &held).await?;
        }
        if interaction.close_input_at_end {
            shim.close_input(session_id).await?;
        }
        std::future::pending().await
    };
    let resizing = async {
        if interaction.console {
            let mut resizes = terminal::resizes();
            // The console takes the size of whoever joined last: an exec was created with
            // it, an attached workload is told it now.
            if let Some(size) = terminal::size() {
                let _ = shim.resize(session_id, size).await;
            }
            while let Some(size) = resizes.recv().await {
                // A resize that does not land leaves the console as it was.
                if let Err(e) = shim.resize(session_id, size).await {
                    tracing::debug!(error = %e, "a resize did not reach the container");
                }
            }
        }
        std::future::pending::<Result<Ended, pane_shim::ShimClientError>>().await
    };
    tokio::pin!(finished, typing, resizing);
    tokio::select! {
        exit = &mut finished => exit.map(Ended::Exited).map_err(|_| pane_shim::ShimClientError::Gone),
        ended = &mut typing => ended,
        what = terminated.next() => Ok(Ended::Terminated(what)),
        ended = &mut resizing => ended,
    }
}
