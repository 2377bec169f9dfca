//! Running one plugin binary: lookup on `CNI_PATH`, the CNI environment, the
//! configuration on stdin, a deadline, and bounded output.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::result::ErrorObject;

/// A plugin's result is a small JSON document; more than this is refused.
pub const DEFAULT_STDOUT_LIMIT: usize = 1024 * 1024;
/// How much of a plugin's stderr is kept for an error message.
pub const DEFAULT_STDERR_LIMIT: usize = 16 * 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong running a plugin.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("plugin {plugin:?} not found in {dirs:?}")]
    NotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("plugin name {plugin:?} is not a plain file name: {reason}")]
    BadName { plugin: String, reason: String },
    #[error("cannot start plugin {plugin:?} ({}): {source}", path.display())]
    Spawn {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {plugin:?} did not finish within {timeout:?} and was killed")]
    Timeout { plugin: String, timeout: Duration },
    #[error("plugin {plugin:?} printed more than {limit} bytes and was stopped")]
    OutputTooLarge { plugin: String, limit: usize },
    /// The plugin exited non-zero; `code`, `msg` and `details` are from the error
    /// object it printed (code 0 and the exit status in `msg` when it printed none).
    #[error("plugin {plugin:?} failed: {}", describe_failure(*code, msg, details, stderr))]
    Plugin {
        plugin: String,
        code: u32,
        msg: String,
        details: String,
        stderr: String,
    },
}

fn describe_failure(code: u32, msg: &str, details: &str, stderr: &str) -> String {
    let mut text = match super::result::code::describe(code) {
        Some(known) => format!("code {code} ({known}): {msg}"),
        None => format!("code {code}: {msg}"),
    };
    if !details.is_empty() {
        let _ = write!(text, "; details: {details}");
    }
    if !stderr.trim().is_empty() {
        let _ = write!(text, "; stderr: {}", stderr.trim());
    }
    text
}

/// A plugin binary name must be a plain file name, so a configuration cannot run a
/// program outside `CNI_PATH`.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("must be a file name".into());
    }
    if name
        .chars()
        .any(|c| matches!(c, '/' | '\\' | ':') || c.is_control())
    {
        return Err("must not hold `/`, `\\`, `:` or control characters".into());
    }
    Ok(())
}

/// The CNI environment of one invocation. `None` fields are not set (STATUS and GC
/// have no container).
#[derive(Debug, Clone, Default)]
pub struct Invocation<'a> {
    pub command: &'a str,
    pub container_id: Option<&'a str>,
    pub netns: Option<&'a str>,
    pub ifname: Option<&'a str>,
    pub args: Option<&'a str>,
}

/// Finds and runs plugins.
#[derive(Debug, Clone)]
pub struct PluginExec {
    pub path: Vec<PathBuf>,
    pub timeout: Duration,
    pub stdout_limit: usize,
    pub stderr_limit: usize,
}

impl PluginExec {
    pub fn new(path: Vec<PathBuf>) -> Self {
        Self {
            path,
            timeout: DEFAULT_TIMEOUT,
            stdout_limit: DEFAULT_STDOUT_LIMIT,
            stderr_limit: DEFAULT_STDERR_LIMIT,
        }
    }

    /// The first `CNI_PATH` directory holding the plugin (`<name>.exe` on Windows).
    pub fn find(&self, plugin: &str) -> Result<PathBuf, ExecError> {
        check_plugin_name(plugin).map_err(|reason| ExecError::BadName {
            plugin: plugin.into(),
            reason,
        })?;
        let file_name = if cfg!(windows) && !plugin.to_ascii_lowercase().ends_with(".exe") {
            format!("{plugin}.exe")
        } else {
            plugin.to_string()
        };
        self.path
            .iter()
            .map(|dir| dir.join(&file_name))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| ExecError::NotFound {
                plugin: plugin.into(),
                dirs: self.path.clone(),
            })
    }

    /// The plugin's command line and CNI environment, with its stdio piped.
    fn command(&self, path: &Path, invocation: &Invocation<'_>) -> Command {
        let cni_path = std::env::join_paths(&self.path).unwrap_or_default();
        let mut command = Command::new(path);
        // The plugin inherits the runtime's environment (as with libcni), minus any CNI
        // variables of the runtime's own, which would mislead it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CNI_") {
                command.env_remove(key);
            }
        }
        command
            .env("CNI_COMMAND", invocation.command)
            .env("CNI_PATH", cni_path);
        let optional = [
            ("CNI_CONTAINERID", invocation.container_id),
            ("CNI_NETNS", invocation.netns),
            ("CNI_IFNAME", invocation.ifname),
            ("CNI_ARGS", invocation.args),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                command.env(key, value);
            }
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `plugin` with `stdin` as its configuration; its stdout on success.
    pub fn run(
        &self,
        plugin: &str,
        invocation: &Invocation<'_>,
        stdin: &[u8],
    ) -> Result<Vec<u8>, ExecError> {
        let path = self.find(plugin)?;
        let mut command = self.command(&path, invocation);
        let mut child = spawn(&mut command).map_err(|source| ExecError::Spawn {
            plugin: plugin.into(),
            path: path.clone(),
            source,
        })?;

        // Stdin, stdout and stderr each get a thread, so a plugin that reads late or
        // writes a lot never blocks against us.
        if let Some(mut pipe) = child.stdin.take() {
            let input = stdin.to_vec();
            thread::spawn(move || {
                // A plugin that does not read its configuration closes the pipe; not our error.
                let _ = pipe.write_all(&input);
            });
        }
        let (out_tx, out_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            spawn_reader(pipe, self.stdout_limit, true, out_tx);
        }
        if let Some(pipe) = child.stderr.take() {
            spawn_reader(pipe, self.stderr_limit, false, err_tx);
        }

        let deadline = Instant::now() + self.timeout;
        let timeout = || ExecError::Timeout {
            plugin: plugin.into(),
            timeout: self.timeout,
        };
        let mut stdout = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(source) => {
                    return Err(ExecError::Spawn {
                        plugin: plugin.into(),
                        path,
                        source,
                    });
                }
            }
            if stdout.is_none() {
                stdout = out_rx.try_recv().ok();
            }
            if stdout.as_ref().is_some_and(|c| c.overflowed) {
                kill(&mut child);
                return Err(ExecError::OutputTooLarge {
                    plugin: plugin.into(),
                    limit: self.stdout_limit,
                });
            }
            if Instant::now() >= deadline {
                kill(&mut child);
                return Err(timeout());
            }
            thread::sleep(Duration::from_millis(5));
        };
        // A child the plugin left behind may hold the pipes open: wait no longer than
        // the deadline for the readers, but give a plugin that exited just before it a
        // moment for its last output to be read.
        let remaining = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100))
        };
        let stdout = match stdout {
            Some(captured) => captured,
            None => out_rx.recv_timeout(remaining()).map_err(|_| timeout())?,
        };
        let stderr = err_rx.recv_timeout(remaining()).unwrap_or_default();
        if stdout.overflowed {
            return Err(ExecError::OutputTooLarge {
                plugin: plugin.into(),
                limit: self.stdout_limit,
            });
        }
        let stderr = String::from_utf8_lossy(&stderr.bytes).into_owned();
        if status.success() {
            return Ok(stdout.bytes);
        }
        let error =
            serde_json::from_slice::<ErrorObject>(&stdout.bytes).unwrap_or_else(|_| ErrorObject {
                code: 0,
                msg: format!("exited with {status} without an error object"),
                details: String::new(),
            });
        Err(ExecError::Plugin {
            plugin: plugin.into(),
            code: error.code,
            msg: error.msg,
            details: error.details,
            stderr,
        })
    }
}

/// Starts the plugin. A binary that is open for writing somewhere (being installed at
/// that moment, or inherited by a process forking at the same time) cannot be executed
/// for a brief while, so that one error is retried a few times.
fn spawn(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 10 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(10));
            }
            outcome => return outcome,
        }
    }
}

/// Stops a plugin at its deadline. On Unix the plugin runs in a process group of its
/// own, and the whole group is killed: a plugin that is a shell script, or that forked a
/// helper, leaves nothing running (nor holding its pipes open).
fn kill(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group may be gone already; the direct kill below still reaps the plugin.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // It may have exited in the meantime; either way, reap it.
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    overflowed: bool,
}

/// Reads a pipe, keeping at most `limit` bytes. On overflow, a `stop_on_overflow` reader
/// reports at once (the caller stops the plugin: its result is unusable); another reads
/// on and discards, so a chatty plugin is not broken by a closed pipe.
fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    limit: usize,
    stop_on_overflow: bool,
    done: mpsc::Sender<Captured>,
) {
    thread::spawn(move || {
        let mut captured = Captured::default();
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(captured.bytes.len());
                    captured.bytes.extend_from_slice(&buffer[..n.min(room)]);
                    if n > room {
                        captured.overflowed = true;
                        if stop_on_overflow {
                            break;
                        }
                    }
                }
            }
        }
        let _ = done.send(captured);
    });
}
