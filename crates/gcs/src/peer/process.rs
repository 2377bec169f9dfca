//! Real local processes standing in for guest processes, with their stdio relayed over the
//! transport exactly as a Windows guest would dial it back.

use std::process::Stdio;

use pane_hcs::command_line;
use pane_hcs::schema::ProcessParameters;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::messages::{NULL_CONTAINER_ID, StdioRelaySettings, WindowsSignal};
use crate::transport::Transport;

use super::hresults;

/// A running (or finished) process.
#[derive(Debug)]
pub(crate) struct GuestProcess {
    pub(crate) pid: u32,
    pub(crate) container_id: String,
    pub(crate) exit: watch::Receiver<Option<i32>>,
    /// Asks the waiter task to terminate the process (the portable way to kill).
    kill: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

/// Starts the process described by `parameters`, dialling the relay for each pipe first.
pub(crate) async fn spawn(
    container_id: &str,
    parameters: &ProcessParameters,
    relay: Option<StdioRelaySettings>,
    transport: &Transport,
) -> Result<(GuestProcess, watch::Receiver<Option<i32>>), (i32, String)> {
    let argv = command_line::split(&parameters.command_line);
    let Some((program, arguments)) = argv.split_first() else {
        return Err((
            hresults::E_INVALIDARG,
            "the command line is empty".to_owned(),
        ));
    };
    let relay = relay.unwrap_or_default();
    let dial = |service: Option<uuid::Uuid>| async move {
        match service {
            Some(service) => transport.connect(service).await.map(Some).map_err(|e| {
                (
                    hresults::HCS_E_CONNECT_FAILED,
                    format!("dialling stdio relay {service}: {e}"),
                )
            }),
            None => Ok(None),
        }
    };
    let stdin_relay = dial(relay.std_in).await?;
    let stdout_relay = dial(relay.std_out).await?;
    let stderr_relay = dial(relay.std_err).await?;

    let mut command = Command::new(program);
    command
        .args(arguments)
        .envs(&parameters.environment)
        .stdin(if stdin_relay.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if stdout_relay.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if stderr_relay.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    if let Some(dir) = parameters
        .working_directory
        .as_deref()
        .filter(|dir| !is_container_drive_path(dir))
    {
        command.current_dir(dir);
    }
    let mut child = command
        .spawn()
        .map_err(|e| (hresults::from_io(&e), format!("starting {program}: {e}")))?;
    let pid = child.id().unwrap_or(0);

    if let (Some(relay), Some(out)) = (stdout_relay, child.stdout.take()) {
        tokio::spawn(relay_output(out, relay));
    }
    if let (Some(relay), Some(err)) = (stderr_relay, child.stderr.take()) {
        tokio::spawn(relay_output(err, relay));
    }
    if let (Some(mut relay), Some(mut input)) = (stdin_relay, child.stdin.take()) {
        // The host half-closes its end to close stdin; copy ends and `input` drops.
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut relay, &mut input).await;
        });
    }

    let (exit_tx, exit) = watch::channel(None);
    let (kill, killed) = oneshot::channel();
    let convention = if container_id == NULL_CONTAINER_ID {
        ExitConvention::UtilityVm
    } else {
        ExitConvention::Container
    };
    tokio::spawn(wait(child, killed, exit_tx, convention));
    let process = GuestProcess {
        pid,
        container_id: container_id.to_owned(),
        exit: exit.clone(),
        kill: std::sync::Mutex::new(Some(kill)),
    };
    Ok((process, exit))
}

/// Large reads: the default 8 KiB copy buffer makes a pipe-to-socket relay syscall-bound.
const RELAY_BUFFER: usize = 256 << 10;

async fn relay_output<R: tokio::io::AsyncRead + Unpin>(
    output: R,
    mut relay: crate::transport::BoxStream,
) {
    let mut output = tokio::io::BufReader::with_capacity(RELAY_BUFFER, output);
    let _ = tokio::io::copy_buf(&mut output, &mut relay).await;
    let _ = relay.shutdown().await;
}

/// How hcsshim's guest reports the exit of a process that a signal ended.
#[derive(Debug, Clone, Copy)]
enum ExitConvention {
    /// A container process, waited for by runc's wrapper: 128 + the signal
    /// (internal/guest/runtime/runc/runc.go `waitOnProcess`).
    Container,
    /// A process in the utility VM itself: Go's `ProcessState.ExitCode`, -1
    /// (internal/guest/runtime/hcsv2/process.go `newExternalProcess`), 0xFFFFFFFF on the wire.
    UtilityVm,
}

async fn wait(
    mut child: Child,
    killed: oneshot::Receiver<()>,
    exit: watch::Sender<Option<i32>>,
    convention: ExitConvention,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        Ok(()) = killed => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let code = match status {
        Ok(status) => exit_code(status, convention),
        Err(_) => -1,
    };
    let _ = exit.send(Some(code));
}

#[cfg(unix)]
fn exit_code(status: std::process::ExitStatus, convention: ExitConvention) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), convention) {
        (Some(code), _) => code,
        (None, ExitConvention::Container) => 128 + status.signal().unwrap_or(0),
        (None, ExitConvention::UtilityVm) => -1,
    }
}

/// Windows has no signal deaths: every exit has a code.
#[cfg(not(unix))]
fn exit_code(status: std::process::ExitStatus, _convention: ExitConvention) -> i32 {
    status.code().unwrap_or(-1)
}

impl GuestProcess {
    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Delivers a console event as the nearest POSIX signal, or terminates (`None`).
    pub(crate) fn signal(&self, signal: Option<WindowsSignal>) -> Result<(), (i32, String)> {
        if self.has_exited() {
            return Err((
                hresults::ERROR_NOT_FOUND,
                format!("process {} has exited", self.pid),
            ));
        }
        match signal {
            None => {
                self.terminate();
                Ok(())
            }
            Some(signal) => self.console_event(signal),
        }
    }

    fn terminate(&self) {
        if let Some(kill) = self.kill.lock().ok().and_then(|mut k| k.take()) {
            let _ = kill.send(());
        }
    }

    #[cfg(unix)]
    fn console_event(&self, signal: WindowsSignal) -> Result<(), (i32, String)> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let posix = match signal {
            WindowsSignal::CtrlC => Signal::SIGINT,
            WindowsSignal::CtrlBreak => Signal::SIGQUIT,
            WindowsSignal::CtrlClose | WindowsSignal::CtrlLogOff | WindowsSignal::CtrlShutdown => {
                Signal::SIGTERM
            }
        };
        let pid = i32::try_from(self.pid)
            .map_err(|_| (hresults::E_INVALIDARG, "pid out of range".to_owned()))?;
        kill(Pid::from_raw(pid), posix)
            .map_err(|e| (hresults::E_FAIL, format!("signalling {}: {e}", self.pid)))
    }

    /// Without POSIX signals the peer can only terminate.
    #[cfg(not(unix))]
    #[allow(clippy::unnecessary_wraps)] // same signature as the Unix version
    fn console_event(&self, _signal: WindowsSignal) -> Result<(), (i32, String)> {
        self.terminate();
        Ok(())
    }
}

/// A path on the container's own drive (`C:\`, `C:\app`) that this machine does not have:
/// off Windows the peer has no container drive, so such a process starts where the peer
/// runs, as it would start in the container's root.
fn is_container_drive_path(dir: &str) -> bool {
    let bytes = dir.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    drive && !std::path::Path::new(dir).is_dir()
}
