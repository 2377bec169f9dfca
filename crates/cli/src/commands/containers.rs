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
    let (id, request) = prepare_container(global, host, args)?;
    if let Some(ip) = request.ip {
        host.runtime.request_address(&id, ip);
    }
    let spec = request.spec().map_err(|e| report(&e))?;
    host.tokio
        .block_on(host.runtime.create_container(&id, &spec))
        .map_err(|e| report(&e))?;
    Ok(id)
}

/// What a create needs once its inputs are checked and its image is local. A detached run
/// hands it to the container's supervisor, which creates the container itself: a Hyper-V
/// container's guest connection belongs to the process that created it (the guest agent
/// takes one connection per boot), so the process that holds the container must be its
/// creator, as containerd's shim is.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CreateRequest {
    /// The resolved spec, as JSON (validated again by the supervisor).
    spec: serde_json::Value,
    ip: Option<std::net::IpAddr>,
}

impl CreateRequest {
    fn spec(&self) -> Result<pane_spec::ServiceSpec, RuntimeError> {
        pane_spec::parse_service(&self.spec.to_string()).map_err(|e| RuntimeError::InvalidInput {
            field: "spec".into(),
            problem: e.to_string(),
            fix: "run the same pane binary for run and supervise".into(),
        })
    }
}

/// Resolves the container's name and spec and pulls its image (with progress) if needed.
fn prepare_container(
    global: &GlobalArgs,
    host: &Host,
    args: &CreateArgs,
) -> Result<(ContainerId, CreateRequest), ExitCode> {
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
    if let Some(ip) = args.ip
        && spec.networks.is_empty()
    {
        eprintln!(
            "pane: --ip {ip} needs a network to give the address on; add `networks:` to the spec"
        );
        return Err(ExitCode::from(exit::INVALID_INPUT));
    }
    let spec = serde_json::to_value(&spec).map_err(|e| {
        eprintln!("pane: the spec cannot be handed on: {e}");
        ExitCode::from(exit::FAILURE)
    })?;
    Ok((id, CreateRequest { spec, ip: args.ip }))
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
/// Starts `id` under a new supervisor (creating it there first when `create` is given) and
/// waits for its one-line answer; an error is the supervisor's message, naming the step.
fn start_detached(
    global: &GlobalArgs,
    id: &ContainerId,
    create: Option<&CreateRequest>,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the pane binary: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(&global.root)
        .arg("--owner")
        .arg(&global.owner)
        .args(global.network_args())
        .arg("supervise")
        .args(create.map(|_| "--create"))
        .arg(id.to_string())
        .stdin(if create.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
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
    if let (Some(request), Some(mut stdin)) = (create, child.stdin.take()) {
        let text = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        // A supervisor that died before reading says so on stdout, read below.
        let _ = stdin.write_all(&text);
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
            match command.spawn() {
                // `ERROR_INTERNAL_ERROR`: once in about ten wine-e2e runs the start of a
                // container's second supervisor (`pane start` right after `pane stop`)
                // failed so, and a moment later it succeeds. Tried once more.
                Err(e) if e.raw_os_error() == Some(1359) => {
                    tracing::warn!(error = %e, "starting the supervisor failed; trying once more");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    command.spawn()
                }
                spawned => spawned,
            }
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
        match start_detached(global, &id, None) {
            Ok(()) => print_id(global, &id),
            Err(message) => {
                eprintln!("pane: {message}");
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
    let Host { runtime, tokio, .. } = Host::open(global)?;
    let runtime = std::sync::Arc::new(runtime);
    // The listener and the tasks serving it belong to this process's runtime.
    let _in_runtime = tokio.enter();
    let started = tokio.block_on(async {
        if args.create {
            let request = read_create_request().map_err(|e| format!("cannot create {id}: {e}"))?;
            if let Some(ip) = request.ip {
                runtime.request_address(&id, ip);
            }
            let spec = request
                .spec()
                .map_err(|e| format!("cannot create {id}: {e}"))?;
            runtime
                .create_container(&id, &spec)
                .await
                .map_err(|e| format!("cannot create {id}: {e}"))?;
        }
        let started = runtime.start_container(&id).await;
        match started {
            Ok(()) => Ok(()),
            // A run whose start failed leaves nothing: what this supervisor created (a
            // Hyper-V container's VM would be unreachable once it exits) goes with it.
            Err(e) if args.create => {
                let removed = match runtime.remove_container(&id, true).await {
                    Ok(()) => "it was removed".to_owned(),
                    Err(r) => format!("removing it failed too: {r}"),
                };
                Err(format!("cannot start {id}: {e}; {removed}"))
            }
            Err(e) => Err(format!("cannot start {id}: {e}")),
        }
    });
    // Only a supervisor whose start succeeded (under the container's lock) serves it: a
    // `pane start` of a running container must not take over its live shim. It serves
    // before it says so, so that `pane run -it` finds the shim as soon as it hears
    // "started".
    let serving = started.is_ok().then(|| {
        crate::shim::listen(global, &id).map(|listener| crate::shim::serve(listener, &runtime, &id))
    });
    let mut stdout = std::io::stdout();
    // The reader goes away after this one line; nothing else is written to stdout.
    let _ = match &started {
        Ok(()) => writeln!(stdout, "started"),
        Err(message) => writeln!(stdout, "error: {message}"),
    };
    let _ = stdout.flush();
    let Some(serving) = serving else {
        return Ok(ExitCode::from(exit::FAILURE));
    };
    let _ = tokio.block_on(runtime.wait_outcome(&id));
    if let Some(serving) = serving {
        tokio.block_on(serving.drain());
    }
    Ok(ExitCode::SUCCESS)
}

/// The create request `start_detached` writes to a `--create` supervisor's stdin.
fn read_create_request() -> Result<CreateRequest, String> {
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin(), 16 << 20),
        &mut text,
    )
    .map_err(|e| format!("reading the create request: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("a malformed create request: {e}"))
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
    if args.create.tty && !args.detach && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!(
            "pane: -t gives the workload a console for this terminal, and pane's standard input is not a terminal; drop -t (keep -i to send input), add -d to attach later, or run pane from a terminal"
        );
        return Ok(ExitCode::from(exit::INVALID_INPUT));
    }
    let host = Host::open(global)?;
    if let Some(code) = refuse_here(&host) {
        return Ok(code);
    }
    if args.detach || args.create.tty || args.create.interactive {
        // Created by the supervisor that will hold it (see `CreateRequest`).
        let (id, request) = match prepare_container(global, &host, &args.create) {
            Ok(prepared) => prepared,
            Err(code) => return Ok(code),
        };
        if !args.detach {
            return Ok(run_interactive(global, &host, &id, args, &request));
        }
        return Ok(match start_detached(global, &id, Some(&request)) {
            Ok(()) => {
                print_id(global, &id);
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("pane: {message}");
                ExitCode::from(exit::FAILURE)
            }
        });
    }
    let id = match create_container(global, &host, &args.create) {
        Ok(id) => id,
        Err(code) => return Ok(code),
    };
    let runtime = &host.runtime;
    let code = host.tokio.block_on(async {
        let result = run_attached(runtime, &id, args).await;
        if !args.rm {
            return result;
        }
        // `--rm` removes the container however the run ended (a start that failed too), as
        // `docker run --rm` does; the run's own error is the one reported.
        let removed = runtime.remove_container(&id, true).await;
        match (result, removed) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(code), Ok(())) => Ok(code),
        }
    });
    Ok(match code {
        // Windows exit codes are 32-bit; a shell sees the low byte, as with `docker run`.
        Ok(code) => ExitCode::from(code.to_le_bytes()[0]),
        Err(e) => report(&e),
    })
}

/// `run -it`: the container is started under its supervisor, as with `-d`, and pane
/// attaches to it through the shim, so the detach keys can leave it running. With `--rm`
/// it is removed once it ends (not after a detach).
fn run_interactive(
    global: &GlobalArgs,
    host: &Host,
    id: &ContainerId,
    args: &RunArgs,
    request: &CreateRequest,
) -> ExitCode {
    // A failed create or start leaves nothing to remove: the supervisor removes what it
    // created, and a create refused (a name taken meanwhile) is another's container.
    if let Err(message) = start_detached(global, id, Some(request)) {
        eprintln!("pane: {message}");
        return ExitCode::from(exit::FAILURE);
    }
    let attached = host.tokio.block_on(attach_session(
        global,
        id,
        args.create.interactive,
        // `run -i` owns the workload's input: its end is the workload's (docker's
        // StdinOnce), so `echo x | pane run -i IMAGE findstr x` ends.
        args.create.interactive,
        args.detach_keys.clone(),
    ));
    let attached = match attached {
        Ok(ended) => Ok(ended),
        // A command quicker than the attach (`run -it IMAGE cmd /c ver`) has ended, or is
        // ending: its output is in the log and its code in the record. Only when no
        // session was opened; a session that broke has shown its output already.
        Err(AttachError::NotAttached(message)) => host
            .tokio
            .block_on(ended_before_attach(host, id))
            .ok_or(message),
        Err(AttachError::Broken(message)) => Err(message),
    };
    match attached {
        Ok(crate::shim::Ended::Exited(code)) => {
            if args.rm
                && let Err(e) = host.tokio.block_on(host.runtime.remove_container(id, true))
            {
                return report(&e);
            }
            ExitCode::from(code.to_le_bytes()[0])
        }
        other => attached_exit(id, other),
    }
}

/// pane's exit code after a session attached to `id`'s workload, with what it says.
fn attached_exit(id: &ContainerId, ended: Result<crate::shim::Ended, String>) -> ExitCode {
    match ended {
        Ok(ended) => {
            let (code, message) = ended.outcome(&id.to_string(), Some(&id.to_string()));
            if let Some(message) = message {
                eprintln!("pane: {message}");
            }
            ExitCode::from(code)
        }
        Err(message) => {
            eprintln!("pane: {message}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// The exit code of a container that ended before pane attached to it, with its output
/// printed from the log; `None` when it has not ended.
async fn ended_before_attach(host: &Host, id: &ContainerId) -> Option<crate::shim::Ended> {
    // Its supervisor gives up the workload's stdio as it exits, and records the exit once
    // the output is drained (2 s at most): wait that long for the record.
    let outcome = tokio::time::timeout(ENDING_WAIT, async {
        loop {
            match host.runtime.container_state(id).await {
                Ok(pane_runtime::ContainerState::Exited { code }) => return Some(code),
                Ok(pane_runtime::ContainerState::Running) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return None,
            }
        }
    })
    .await;
    let Ok(Some(code)) = outcome else {
        return None;
    };
    let options = pane_runtime::LogOptions::default();
    for entry in host
        .runtime
        .container_logs(id, &options)
        .await
        .unwrap_or_default()
    {
        if entry.exec_id.is_none() {
            print_entry(&entry, false);
        }
    }
    Some(crate::shim::Ended::Exited(code))
}

/// How long `run -it` waits for a command that ended as it attached to be recorded.
const ENDING_WAIT: Duration = Duration::from_secs(5);

/// Why an attach did not end with the workload or a detach.
#[derive(Debug)]
pub enum AttachError {
    /// No session was opened: no live supervisor, or it refused the attach.
    NotAttached(String),
    /// The session broke after it opened (its output may have been shown).
    Broken(String),
}

impl AttachError {
    fn into_message(self) -> String {
        match self {
            AttachError::NotAttached(message) | AttachError::Broken(message) => message,
        }
    }
}

/// Attaches pane's terminal to the workload of `id` through its supervisor's shim until
/// the workload ends or the detach keys are typed.
pub async fn attach_session(
    global: &GlobalArgs,
    id: &ContainerId,
    stdin: bool,
    stdin_once: bool,
    detach_keys: crate::terminal::DetachKeys,
) -> Result<crate::shim::Ended, AttachError> {
    let Some(shim) = crate::shim::connect(global, id).await else {
        return Err(AttachError::NotAttached(format!(
            "{id} has no live supervisor to attach to (it runs in the foreground of another pane, or its supervisor ended); `pane logs -f {id}` follows its output"
        )));
    };
    let session = shim
        .attach(stdin, stdin_once)
        .await
        .map_err(|e| AttachError::NotAttached(format!("attach to {id}: {e}")))?;
    let interaction = crate::shim::Interaction {
        input: stdin,
        console: session.console,
        detach_keys,
        close_input_at_end: stdin_once,
    };
    crate::shim::drive(&shim, session, interaction)
        .await
        .map_err(|e| AttachError::Broken(format!("attach to {id}: {e}")))
}

pub fn attach(global: &GlobalArgs, args: &crate::cli::AttachArgs) -> Result<ExitCode, Failure> {
    let id = match parse_ids(std::slice::from_ref(&args.id)) {
        Ok(mut ids) => ids.remove(0),
        Err(code) => return Ok(code),
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ended = tokio.block_on(attach_session(
        global,
        &id,
        !args.no_stdin,
        false,
        args.detach_keys.clone(),
    ));
    Ok(attached_exit(&id, ended.map_err(AttachError::into_message)))
}

/// Starts `id`, prints its output as it comes and waits for its exit code; Ctrl+C stops it.
async fn run_attached(
    runtime: &pane_runtime::hcs_runtime::HcsRuntime,
    id: &ContainerId,
    args: &RunArgs,
) -> Result<i32, RuntimeError> {
    let mut follower = LogFollower::from_end(&runtime.log_dir(id));
    runtime.start_container(id).await?;
    let stop_timeout = Duration::from_secs(args.stop_timeout);
    let mut interrupted = false;
    let wait = runtime.wait_outcome(id);
    tokio::pin!(wait);
    let outcome = loop {
        tokio::select! {
            outcome = &mut wait => break outcome?,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("pane: stopping {id} (waits up to {}s, then terminates)", args.stop_timeout);
                runtime.stop_container(id, stop_timeout).await?;
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
    Ok(outcome.exit_code)
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
        host.tokio.block_on(async {
            if let Some(shim) = crate::shim::connect(global, id).await {
                let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                return shim
                    .call(pane_shim::Op::Stop { timeout_ms })
                    .await
                    .map(|_| None)
                    .map_err(|e| shim_error(id, "stop", &e));
            }
            host.runtime
                .stop_container(id, timeout)
                .await
                .map(|()| None)
        })
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
        host.tokio.block_on(async {
            if let Some(shim) = crate::shim::connect(global, id).await {
                return shim
                    .call(pane_shim::Op::Kill {
                        signal: args.signal.clone(),
                    })
                    .await
                    .map(|_| None)
                    .map_err(|e| shim_error(id, "kill", &e));
            }
            host.runtime.kill_container(id, signal).await.map(|()| None)
        })
    })
}

/// A shim's answer to an operation, as a runtime error of that operation.
pub fn shim_error(
    id: &ContainerId,
    operation: &str,
    error: &pane_shim::ShimClientError,
) -> RuntimeError {
    RuntimeError::Host {
        step: format!("{operation} {id} through its supervisor"),
        hresult: None,
        message: error.to_string(),
    }
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
        let outcome = host.tokio.block_on(async {
            // The supervisor sees the workload's own end (for Hyper-V, through the guest;
            // by name only the utility VM's end can be seen) and records it before it
            // answers; the outcome is then read from that record.
            if let Some(shim) = crate::shim::connect(global, id).await {
                let _ = shim.call(pane_shim::Op::Wait).await;
            }
            host.runtime.wait_outcome(id).await
        })?;
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
        println!(
            "left to the pane process working on them: {}",
            ids(&done.busy).join(", ")
        );
        println!(
            "held by their live supervisors: {}",
            ids(&done.held).join(", ")
        );
        let detached: Vec<String> = done
            .detached
            .iter()
            .map(|(network, container)| format!("{container} from {network}"))
            .collect();
        println!(
            "stale network attachments detached: {}",
            detached.join(", ")
        );
    }
    if done.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &done.failures {
            eprintln!("pane: not cleaned up yet: {failure}");
        }
        Ok(ExitCode::from(exit::FAILURE))
    }
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
