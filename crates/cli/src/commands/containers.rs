//! Container lifecycle commands: `create`, `run`, `start`, `stop`, `kill`, `rm`, `wait`, and
//! the hidden `supervise` that holds a detached container.
//!
//! Every command is its own process, so a container started in the background needs a
//! process that keeps its workload's stdio pipes and copies them into the log: `pane start`
//! and `pane run -d` launch `pane supervise ID` for that, detached from the terminal. The
//! other commands reach the container through HCS by its id (`HcsOpenComputeSystem`,
//! `HcsOpenProcess`) and through its record. Why a supervisor per container and not a
//! daemon: docs/detached-containers.md.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use pane_runtime::logs::LogFollower;
use pane_runtime::{ContainerId, LogEntry, LogStream, Runtime, RuntimeError, Signal};
use pane_spec::PullPolicy;

use super::container_source::{self, SourceError};
use crate::cli::{
    CreateArgs, GlobalArgs, IdsArgs, KillArgs, RmArgs, RunArgs, StopArgs, SuperviseArgs,
};
use crate::exit;
use crate::host_runtime::Host;
use crate::progress::PullProgress;

type Failure = Box<dyn std::error::Error>;

/// Prints a runtime error; bad input exits 2, everything else 1.
pub fn report(error: &RuntimeError) -> ExitCode {
    eprintln!("pane: {error}");
    match error {
        RuntimeError::InvalidInput { .. } => ExitCode::from(exit::INVALID_INPUT),
        _ => ExitCode::from(exit::FAILURE),
    }
}

/// Container ids from the command line; a malformed one is bad input.
pub fn parse_ids(texts: &[String]) -> Result<Vec<ContainerId>, ExitCode> {
    texts
        .iter()
        .map(|text| {
            text.parse::<ContainerId>().map_err(|e| {
                eprintln!("pane: {e}");
                ExitCode::from(exit::INVALID_INPUT)
            })
        })
        .collect()
}

fn refuse_here(host: &Host) -> Option<ExitCode> {
    host.require_containers().err().map(|message| {
        eprintln!("pane: {message}");
        ExitCode::from(exit::FAILURE)
    })
}

fn print_source_error(error: &SourceError) -> ExitCode {
    eprintln!("pane: {}", error.message);
    for problem in &error.diagnostics {
        eprintln!("  {problem}");
    }
    ExitCode::from(exit::INVALID_INPUT)
}

/// Resolves the spec, pulls with progress bars when the policy calls for it, creates.
fn create_container(
    global: &GlobalArgs,
    host: &Host,
    args: &CreateArgs,
) -> Result<ContainerId, ExitCode> {
    let existing: Vec<ContainerId> = host
        .tokio
        .block_on(host.runtime.list_containers())
        .map_err(|e| report(&e))?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let (id, mut spec) =
        container_source::resolve(args, &existing).map_err(|e| print_source_error(&e))?;
    let images = host.runtime.images();
    let needs_pull = match spec.image.pull_policy {
        PullPolicy::Always => true,
        PullPolicy::IfNotPresent => matches!(
            host.tokio.block_on(images.local(&spec.image.name)),
            Ok(None)
        ),
        PullPolicy::Never => false,
    };
    if needs_pull {
        // Pulled here, with progress, so the create finds it local.
        let progress = PullProgress::new(global.json || global.quiet > 0);
        let credentials = pane_oci::credentials::CredentialSource::from_spec(
            spec.image.auth.as_ref(),
        )
        .map_err(|e| {
            eprintln!("pane: {e}");
            ExitCode::from(exit::INVALID_INPUT)
        })?;
        host.tokio
            .block_on(images.pull(&spec.image.name, Some(credentials), &progress))
            .map_err(|e| report(&e))?;
        spec.image.pull_policy = PullPolicy::IfNotPresent;
    }
    host.tokio
        .block_on(host.runtime.create_container(&id, &spec))
        .map_err(|e| report(&e))?;
    Ok(id)
}

fn print_id(global: &GlobalArgs, id: &ContainerId) {
    if global.json {
        println!("{}", serde_json::json!({ "id": id.to_string() }));
    } else {
        println!("{id}");
    }
}

pub fn create(global: &GlobalArgs, args: &CreateArgs) -> Result<ExitCode, Failure> {
    let host = Host::open(global)?;
    if let Some(code) = refuse_here(&host) {
        return Ok(code);
    }
    Ok(match create_container(global, &host, args) {
        Ok(id) => {
            print_id(global, &id);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

/// Starts `id` in a detached `pane supervise` and returns once the workload runs (or its
/// start failed, with the supervisor's error).
fn start_detached(global: &GlobalArgs, id: &ContainerId) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the pane binary: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(&global.root)
        .arg("--owner")
        .arg(&global.owner)
        .arg("supervise")
        .arg(id.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let (mut child, left_the_job) = spawn_detached(&mut command)
        .map_err(|e| format!("cannot start the supervisor of {id}: {e}"))?;
    if !left_the_job {
        eprintln!(
            "pane: warning: the job object pane runs in does not allow breakaway, so the \
             supervisor of {id} ends when that job does (a CI runner or remote shell that \
             kills its children takes the container with it)"
        );
    }
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("the supervisor of {id} did not answer: {e}"))?;
    }
    match line.trim_end().strip_prefix("error: ") {
        None if line.starts_with("started") => Ok(()),
        Some(error) => Err(error.to_owned()),
        None => Err(format!("the supervisor of {id} ended before starting it")),
    }
}

/// Spawns `command` out of the terminal's process group (Unix) or console (Windows), so
/// Ctrl-C in the shell that ran `pane run -d` does not reach it, and on Windows out of the
/// caller's job object: a CI runner or remote shell whose job kills its children on exit
/// would otherwise kill the supervisor, and the container with it. A job that refuses
/// breakaway makes `CreateProcess` fail with `ERROR_ACCESS_DENIED` (Microsoft's process
/// creation flags page, `CREATE_BREAKAWAY_FROM_JOB`); then the supervisor stays in the job.
/// Returns the child and whether it left the caller's job (always true off Windows, where
/// there are no jobs to leave).
fn spawn_detached(
    command: &mut std::process::Command,
) -> std::io::Result<(std::process::Child, bool)> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
        command.spawn().map(|child| (child, true))
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
        with_breakaway_fallback(|breakaway| {
            let flags = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP;
            command.creation_flags(if breakaway {
                flags | CREATE_BREAKAWAY_FROM_JOB
            } else {
                flags
            });
            command.spawn()
        })
    }
    #[cfg(not(any(unix, windows)))]
    {
        command.spawn().map(|child| (child, true))
    }
}

/// Tries `spawn` breaking away from the job, then, when that is refused as access denied,
/// without; returns what it spawned and whether it broke away.
#[cfg_attr(not(windows), allow(dead_code))] // the decision is tested everywhere
fn with_breakaway_fallback<T>(
    mut spawn: impl FnMut(bool) -> std::io::Result<T>,
) -> std::io::Result<(T, bool)> {
    match spawn(true) {
        Ok(child) => Ok((child, true)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            spawn(false).map(|child| (child, false))
        }
        Err(e) => Err(e),
    }
}

pub fn start(global: &GlobalArgs, args: &IdsArgs) -> Result<ExitCode, Failure> {
    let ids = match parse_ids(&args.ids) {
        Ok(ids) => ids,
        Err(code) => return Ok(code),
    };
    let host = Host::open(global)?;
    if let Some(code) = refuse_here(&host) {
        return Ok(code);
    }
    let mut status = ExitCode::SUCCESS;
    for id in ids {
        match start_detached(global, &id) {
            Ok(()) => print_id(global, &id),
            Err(message) => {
                eprintln!("pane: cannot start {id}: {message}");
                status = ExitCode::from(exit::FAILURE);
            }
        }
    }
    Ok(status)
}

/// `pane supervise ID`: start the container, say so on stdout (read by `start_detached`),
/// then hold the workload's pipes until it exits.
pub fn supervise(global: &GlobalArgs, args: &SuperviseArgs) -> Result<ExitCode, Failure> {
    let id: ContainerId = args.id.parse()?;
    let host = Host::open(global)?;
    let started = host.tokio.block_on(host.runtime.start_container(&id));
    let mut stdout = std::io::stdout();
    // The reader goes away after this one line; nothing else is written to stdout.
    let _ = match &started {
        Ok(()) => writeln!(stdout, "started"),
        Err(e) => writeln!(stdout, "error: {e}"),
    };
    let _ = stdout.flush();
    if started.is_err() {
        return Ok(ExitCode::from(exit::FAILURE));
    }
    let _ = host.tokio.block_on(host.runtime.wait_outcome(&id));
    Ok(ExitCode::SUCCESS)
}

pub fn print_entry(entry: &LogEntry, timestamps: bool) {
    let line = if timestamps {
        format!("{} {}", entry.timestamp.to_rfc3339(), entry.message)
    } else {
        entry.message.clone()
    };
    match entry.stream {
        LogStream::Stdout => println!("{line}"),
        LogStream::Stderr => eprintln!("{line}"),
    }
}

/// How often a followed log is read for new lines.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<ExitCode, Failure> {
    let host = Host::open(global)?;
    if let Some(code) = refuse_here(&host) {
        return Ok(code);
    }
    let id = match create_container(global, &host, &args.create) {
        Ok(id) => id,
        Err(code) => return Ok(code),
    };
    if args.detach {
        return Ok(match start_detached(global, &id) {
            Ok(()) => {
                print_id(global, &id);
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("pane: cannot start {id}: {message}");
                ExitCode::from(exit::FAILURE)
            }
        });
    }
    let runtime = &host.runtime;
    let code = host.tokio.block_on(async {
        let mut follower = LogFollower::from_end(&runtime.log_dir(&id));
        runtime.start_container(&id).await?;
        let stop_timeout = Duration::from_secs(args.stop_timeout);
        let mut interrupted = false;
        let wait = runtime.wait_outcome(&id);
        tokio::pin!(wait);
        let outcome = loop {
            tokio::select! {
                outcome = &mut wait => break outcome?,
                _ = tokio::signal::ctrl_c(), if !interrupted => {
                    interrupted = true;
                    eprintln!("pane: stopping {id} (waits up to {}s, then terminates)", args.stop_timeout);
                    runtime.stop_container(&id, stop_timeout).await?;
                }
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {
                    for entry in follower.poll().unwrap_or_default() {
                        print_entry(&entry, false);
                    }
                }
            }
        };
        for entry in follower.poll().unwrap_or_default() {
            print_entry(&entry, false);
        }
        if args.rm {
            runtime.remove_container(&id, true).await?;
        }
        Ok::<i32, RuntimeError>(outcome.exit_code)
    });
    Ok(match code {
        // Windows exit codes are 32-bit; a shell sees the low byte, as with `docker run`.
        Ok(code) => ExitCode::from(code.to_le_bytes()[0]),
        Err(e) => report(&e),
    })
}

/// Runs `operation` on each id, reporting failures and going on with the rest.
fn each(
    global: &GlobalArgs,
    ids: &[String],
    operation: impl Fn(&Host, &ContainerId) -> Result<Option<String>, RuntimeError>,
) -> Result<ExitCode, Failure> {
    let ids = match parse_ids(ids) {
        Ok(ids) => ids,
        Err(code) => return Ok(code),
    };
    let host = Host::open(global)?;
    let mut status = ExitCode::SUCCESS;
    for id in ids {
        match operation(&host, &id) {
            Ok(Some(output)) => println!("{output}"),
            Ok(None) => print_id(global, &id),
            Err(e) => status = report(&e),
        }
    }
    Ok(status)
}

pub fn stop(global: &GlobalArgs, args: &StopArgs) -> Result<ExitCode, Failure> {
    let timeout = Duration::from_secs(args.time);
    each(global, &args.ids, |host, id| {
        host.tokio
            .block_on(host.runtime.stop_container(id, timeout))
            .map(|()| None)
    })
}

pub fn kill(global: &GlobalArgs, args: &KillArgs) -> Result<ExitCode, Failure> {
    let signal: Signal = match args.signal.parse() {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("pane: --signal: {e}");
            return Ok(ExitCode::from(exit::INVALID_INPUT));
        }
    };
    each(global, &args.ids, |host, id| {
        host.tokio
            .block_on(host.runtime.kill_container(id, signal))
            .map(|()| None)
    })
}

pub fn rm(global: &GlobalArgs, args: &RmArgs) -> Result<ExitCode, Failure> {
    each(global, &args.ids, |host, id| {
        host.tokio
            .block_on(host.runtime.remove_container(id, args.force))
            .map(|()| None)
    })
}

pub fn wait(global: &GlobalArgs, args: &IdsArgs) -> Result<ExitCode, Failure> {
    each(global, &args.ids, |host, id| {
        let outcome = host.tokio.block_on(host.runtime.wait_outcome(id))?;
        Ok(Some(if global.json {
            serde_json::json!({ "id": id.to_string(), "exit_code": outcome.exit_code, "reason": outcome.reason })
                .to_string()
        } else {
            outcome.exit_code.to_string()
        }))
    })
}

pub fn reconcile(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let host = Host::open(global)?;
    if let Some(code) = refuse_here(&host) {
        return Ok(code);
    }
    let done = match host.tokio.block_on(host.runtime.reconcile()) {
        Ok(done) => done,
        Err(e) => return Ok(report(&e)),
    };
    if global.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        let ids = |ids: &[ContainerId]| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
        println!("adopted: {}", ids(&done.adopted).join(", "));
        println!("cleaned up: {}", ids(&done.cleaned).join(", "));
        println!("lost: {}", ids(&done.lost).join(", "));
        println!("orphans terminated: {}", done.orphans.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use std::io::{Error, ErrorKind};

    use super::with_breakaway_fallback;

    #[test]
    fn a_job_that_refuses_breakaway_gets_a_supervisor_inside_it() {
        let mut tries = Vec::new();
        let spawned = with_breakaway_fallback(|breakaway| {
            tries.push(breakaway);
            if breakaway {
                Err(Error::from(ErrorKind::PermissionDenied))
            } else {
                Ok("child")
            }
        })
        .unwrap();
        assert_eq!(spawned, ("child", false));
        assert_eq!(tries, [true, false]);
    }

    #[test]
    fn breakaway_is_tried_first_and_other_failures_are_not_retried() {
        let mut tries = 0;
        let spawned = with_breakaway_fallback(|breakaway| {
            tries += 1;
            assert!(breakaway);
            Ok::<_, Error>("child")
        })
        .unwrap();
        assert_eq!((spawned, tries), (("child", true), 1));
        let mut tries = 0;
        let failed = with_breakaway_fallback(|_| {
            tries += 1;
            Err::<(), _>(Error::from(ErrorKind::NotFound))
        });
        assert_eq!(
            (failed.unwrap_err().kind(), tries),
            (ErrorKind::NotFound, 1)
        );
    }
}
