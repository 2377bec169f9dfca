//! A test double of HCS behind [`Compute`]: compute systems and processes with HCS's states,
//! the HRESULTs HCS returns for calls in the wrong state, exit events, enumeration by owner,
//! and failures injected into any named call. It runs no workload: tests write process
//! output and decide when processes exit.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pane_hcs::HcsEvent;
use pane_hcs::schema::{
    ComputeSystem, ModifySettingRequest, ProcessParameters, Properties, PropertyQuery, Statistics,
};
use pane_runtime::backend::{Compute, ComputeEvent, HostError, ProcessIo};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

pub const HCS_E_INVALID_STATE: u32 = 0x8037_0105;
pub const HCS_E_SYSTEM_NOT_FOUND: u32 = 0x8037_010E;
pub const HCS_E_SYSTEM_ALREADY_EXISTS: u32 = 0x8037_010F;
pub const HCS_E_SYSTEM_ALREADY_STOPPED: u32 = 0x8037_0110;
pub const HCS_E_PROCESS_ALREADY_STOPPED: u32 = 0x8037_011F;
pub const ERROR_NOT_FOUND: u32 = 0x8007_0490;
pub const ERROR_FILE_NOT_FOUND: u32 = 0x8007_0002;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemState {
    Created,
    Running,
    Stopped,
}

struct Process {
    exit_code: Option<u32>,
    /// The workload's end of its standard input, when it asked for one.
    stdin: Option<DuplexStream>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    /// `[height, width]` the process was created with, when it asked for a console.
    console: Option<[u16; 2]>,
    /// `ConsoleSize` modifies, in order.
    resizes: Vec<[u16; 2]>,
}

struct System {
    owner: String,
    is_vm: bool,
    runtime_id: String,
    state: SystemState,
    processes: HashMap<u32, Process>,
    subscribers: Vec<mpsc::UnboundedSender<ComputeEvent>>,
    /// What a `Statistics` query returns; HCS answers it only for a running system.
    statistics: Statistics,
}

impl System {
    fn emit(&mut self, event: &ComputeEvent) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    /// Every process exits with `code`, and the system. Their events go out in `order`.
    fn stop(&mut self, code: u32, order: ExitOrder) {
        if order == ExitOrder::SystemFirst {
            self.emit_system_exit();
        }
        let live: Vec<u32> = self
            .processes
            .iter()
            .filter(|(_, p)| p.exit_code.is_none())
            .map(|(pid, _)| *pid)
            .collect();
        for pid in live {
            if let Some(process) = self.processes.get_mut(&pid) {
                process.exit_code = Some(code);
                process.stdout = None;
                process.stderr = None;
            }
            self.emit(&ComputeEvent::Process {
                pid,
                event: HcsEvent::ProcessExited {
                    exit_code: Some(code),
                },
            });
        }
        self.state = SystemState::Stopped;
        if order == ExitOrder::ProcessesFirst {
            self.emit_system_exit();
        }
    }

    fn emit_system_exit(&mut self) {
        self.emit(&ComputeEvent::System(HcsEvent::SystemExited {
            status: None,
            exit_type: None,
        }));
    }
}

/// In which order a stopping system's exit events reach subscribers. On Windows each
/// handle's callback and forwarding task is its own, so either order happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitOrder {
    #[default]
    ProcessesFirst,
    SystemFirst,
}

struct Fault {
    call: &'static str,
    hresult: u32,
    remaining: Option<u32>,
    /// Calls that pass before this fault fires.
    skip: u32,
}

#[derive(Default)]
struct State {
    systems: HashMap<String, System>,
    faults: Vec<Fault>,
    calls: Vec<String>,
    next_pid: u32,
    command_lines: Vec<String>,
    signals: Vec<(u32, Option<String>)>,
    granted: Vec<std::path::PathBuf>,
    exit_order: ExitOrder,
    /// Every document handed over by create and modify, in order.
    documents: Vec<SentDocument>,
    /// Calls that never complete, as an HCS operation that hangs.
    stalled: Vec<&'static str>,
}

/// A document a create or modify handed to HCS, as the JSON HCS would parse.
#[derive(Debug, Clone, PartialEq)]
pub struct SentDocument {
    pub call: &'static str,
    pub id: String,
    pub document: serde_json::Value,
}

#[derive(Default)]
pub struct FakeHcs {
    state: Mutex<State>,
}

impl FakeHcs {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stopping systems send their exit events in `order` from now on.
    pub fn send_exits_in(&self, order: ExitOrder) {
        self.lock().exit_order = order;
    }

    /// Every later `call` fails with `hresult`.
    pub fn fail(&self, call: &'static str, hresult: u32) {
        self.lock().faults.push(Fault {
            call,
            hresult,
            remaining: None,
            skip: 0,
        });
    }

    /// Every later `call` hangs and never returns (only create honours this).
    pub fn stall(&self, call: &'static str) {
        self.lock().stalled.push(call);
    }

    /// The next `call` fails with `hresult`.
    pub fn fail_once(&self, call: &'static str, hresult: u32) {
        self.lock().faults.push(Fault {
            call,
            hresult,
            remaining: Some(1),
            skip: 0,
        });
    }

    /// The `call` after the next `skip` ones fails with `hresult`, once.
    pub fn fail_after(&self, call: &'static str, skip: u32, hresult: u32) {
        self.lock().faults.push(Fault {
            call,
            hresult,
            remaining: Some(1),
            skip,
        });
    }

    /// The documents handed to create and modify so far, oldest first.
    pub fn sent_documents(&self) -> Vec<SentDocument> {
        self.lock().documents.clone()
    }

    /// Calls made so far, as `Call id`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub fn state_of(&self, id: &str) -> Option<SystemState> {
        self.lock().systems.get(id).map(|s| s.state)
    }

    pub fn system_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().systems.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The system whose `RuntimeId` (the hvsock VM id) is `runtime_id`.
    pub fn system_with_runtime_id(&self, runtime_id: &str) -> Option<String> {
        self.lock()
            .systems
            .iter()
            .find(|(_, s)| s.runtime_id == runtime_id)
            .map(|(id, _)| id.clone())
    }

    /// Command lines of the processes started so far.
    pub fn command_lines(&self) -> Vec<String> {
        self.lock().command_lines.clone()
    }

    /// Signals delivered so far: process and console event (`None` = terminate).
    pub fn signals(&self) -> Vec<(u32, Option<String>)> {
        self.lock().signals.clone()
    }

    /// The console process `pid` of `id` was created with (`[height, width]`), and its
    /// resizes since; `None` when it has no console.
    pub fn console_of(&self, id: &str, pid: u32) -> Option<([u16; 2], Vec<[u16; 2]>)> {
        let state = self.lock();
        let process = state.systems.get(id)?.processes.get(&pid)?;
        Some((process.console?, process.resizes.clone()))
    }

    /// Process `pid` of `id` exists and has not exited.
    pub fn is_running(&self, id: &str, pid: u32) -> bool {
        let state = self.lock();
        state
            .systems
            .get(id)
            .and_then(|s| s.processes.get(&pid))
            .is_some_and(|p| p.exit_code.is_none())
    }

    /// Processes started in `id`, oldest first.
    pub fn process_ids(&self, id: &str) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .lock()
            .systems
            .get(id)
            .map(|s| s.processes.keys().copied().collect())
            .unwrap_or_default();
        pids.sort_unstable();
        pids
    }

    /// Runs `f` on process `pid` of `id`, if there is one.
    fn with_process<T>(&self, id: &str, pid: u32, f: impl FnOnce(&mut Process) -> T) -> Option<T> {
        let mut state = self.lock();
        state
            .systems
            .get_mut(id)
            .and_then(|s| s.processes.get_mut(&pid))
            .map(f)
    }

    /// Writes to a process's stdout, as the workload would.
    pub async fn write_stdout(&self, id: &str, pid: u32, bytes: &[u8]) {
        if let Some(mut stream) = self.with_process(id, pid, |p| p.stdout.take()).flatten() {
            stream.write_all(bytes).await.unwrap();
            self.with_process(id, pid, |p| p.stdout = Some(stream));
        }
    }

    /// Everything the host wrote to the process's standard input, once it closed it.
    pub async fn read_stdin(&self, id: &str, pid: u32) -> Vec<u8> {
        use tokio::io::AsyncReadExt as _;
        let mut bytes = Vec::new();
        if let Some(mut pipe) = self.with_process(id, pid, |p| p.stdin.take()).flatten() {
            pipe.read_to_end(&mut bytes).await.unwrap();
        }
        bytes
    }

    /// The next `n` bytes the host writes to the process's standard input, which stays
    /// open (an interactive session's keystrokes).
    pub async fn read_stdin_exact(&self, id: &str, pid: u32, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt as _;
        let mut pipe = self
            .with_process(id, pid, |p| p.stdin.take())
            .flatten()
            .expect("the process has a standard input");
        let mut bytes = vec![0; n];
        pipe.read_exact(&mut bytes).await.unwrap();
        self.with_process(id, pid, |p| p.stdin = Some(pipe));
        bytes
    }

    /// The process's standard input is still open: a read waits rather than ending.
    pub async fn stdin_is_open(&self, id: &str, pid: u32) -> bool {
        use tokio::io::AsyncReadExt as _;
        let Some(mut pipe) = self.with_process(id, pid, |p| p.stdin.take()).flatten() else {
            return false;
        };
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(300), pipe.read(&mut byte)).await;
        self.with_process(id, pid, |p| p.stdin = Some(pipe));
        // Waiting is open; end of file or an error is closed; a byte means input arrived,
        // so it was open too.
        !matches!(read, Ok(Ok(0) | Err(_)))
    }

    /// What the system's `Statistics` query reports from now on.
    pub fn set_statistics(&self, id: &str, statistics: Statistics) {
        if let Some(system) = self.lock().systems.get_mut(id) {
            system.statistics = statistics;
        }
    }

    /// The workload exits with `code`: pipes close and an exit event is sent.
    pub fn exit_process(&self, id: &str, pid: u32, code: u32) {
        let mut state = self.lock();
        let Some(system) = state.systems.get_mut(id) else {
            return;
        };
        if let Some(process) = system.processes.get_mut(&pid) {
            process.exit_code = Some(code);
            process.stdout = None;
            process.stderr = None;
            system.emit(&ComputeEvent::Process {
                pid,
                event: HcsEvent::ProcessExited {
                    exit_code: Some(code),
                },
            });
        }
    }

    /// Checks injected faults, then logs the call.
    fn enter(
        &self,
        call: &'static str,
        id: &str,
    ) -> Result<std::sync::MutexGuard<'_, State>, HostError> {
        let mut state = self.lock();
        state.calls.push(format!("{call} {id}"));
        if let Some(index) = state
            .faults
            .iter()
            .position(|f| f.call == call && f.remaining != Some(0))
        {
            let fault = &mut state.faults[index];
            if fault.skip > 0 {
                fault.skip -= 1;
                return Ok(state);
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            let hresult = fault.hresult;
            return Err(HostError::new(call, hresult, "injected"));
        }
        Ok(state)
    }
}

fn system<'a>(
    state: &'a mut State,
    call: &'static str,
    id: &str,
) -> Result<&'a mut System, HostError> {
    state.systems.get_mut(id).ok_or_else(|| {
        HostError::new(
            call,
            HCS_E_SYSTEM_NOT_FOUND,
            format!("no compute system {id}"),
        )
    })
}

/// Process `pid` of `system` while it runs: `ERROR_NOT_FOUND` for an unknown one,
/// `HCS_E_PROCESS_ALREADY_STOPPED` once it exited, as HCS answers calls on a process.
fn live_process<'a>(
    system: &'a mut System,
    call: &'static str,
    pid: u32,
) -> Result<&'a mut Process, HostError> {
    let process = system
        .processes
        .get_mut(&pid)
        .ok_or_else(|| HostError::new(call, ERROR_NOT_FOUND, "no such process"))?;
    if process.exit_code.is_some() {
        return Err(HostError::new(
            call,
            HCS_E_PROCESS_ALREADY_STOPPED,
            "exited",
        ));
    }
    Ok(process)
}

#[async_trait]
impl Compute for FakeHcs {
    async fn create(&self, id: &str, document: &ComputeSystem) -> Result<(), HostError> {
        let stalled = self.lock().stalled.contains(&"HcsCreateComputeSystem");
        if stalled {
            std::future::pending::<()>().await;
        }
        let mut state = self.enter("HcsCreateComputeSystem", id)?;
        state.documents.push(SentDocument {
            call: "HcsCreateComputeSystem",
            id: id.to_owned(),
            document: serde_json::to_value(document).unwrap(),
        });
        if state.systems.contains_key(id) {
            return Err(HostError::new(
                "HcsCreateComputeSystem",
                HCS_E_SYSTEM_ALREADY_EXISTS,
                id.to_owned(),
            ));
        }
        let is_vm = document.virtual_machine.is_some();
        let runtime_id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            state.systems.len() + 1,
            id.len()
        );
        state.systems.insert(
            id.to_owned(),
            System {
                owner: document.owner.clone().unwrap_or_default(),
                is_vm,
                runtime_id,
                state: SystemState::Created,
                processes: HashMap::new(),
                subscribers: Vec::new(),
                statistics: Statistics::default(),
            },
        );
        Ok(())
    }

    async fn open(&self, id: &str) -> Result<(), HostError> {
        let mut state = self.enter("HcsOpenComputeSystem", id)?;
        system(&mut state, "HcsOpenComputeSystem", id).map(drop)
    }

    async fn start(&self, id: &str) -> Result<(), HostError> {
        let mut state = self.enter("HcsStartComputeSystem", id)?;
        let system = system(&mut state, "HcsStartComputeSystem", id)?;
        match system.state {
            SystemState::Created => {
                system.state = SystemState::Running;
                Ok(())
            }
            SystemState::Running => Err(HostError::new(
                "HcsStartComputeSystem",
                HCS_E_INVALID_STATE,
                "already running",
            )),
            SystemState::Stopped => Err(HostError::new(
                "HcsStartComputeSystem",
                HCS_E_SYSTEM_ALREADY_STOPPED,
                "stopped",
            )),
        }
    }

    async fn shutdown(&self, id: &str, _timeout: Duration) -> Result<(), HostError> {
        let mut state = self.enter("HcsShutDownComputeSystem", id)?;
        let order = state.exit_order;
        let system = system(&mut state, "HcsShutDownComputeSystem", id)?;
        if system.state == SystemState::Stopped {
            return Err(HostError::new(
                "HcsShutDownComputeSystem",
                HCS_E_SYSTEM_ALREADY_STOPPED,
                "stopped",
            ));
        }
        system.stop(0, order);
        Ok(())
    }

    async fn terminate(&self, id: &str) -> Result<(), HostError> {
        let mut state = self.enter("HcsTerminateComputeSystem", id)?;
        let order = state.exit_order;
        let system = system(&mut state, "HcsTerminateComputeSystem", id)?;
        if system.state == SystemState::Stopped {
            return Err(HostError::new(
                "HcsTerminateComputeSystem",
                HCS_E_SYSTEM_ALREADY_STOPPED,
                "stopped",
            ));
        }
        system.stop(1, order);
        Ok(())
    }

    /// A stopped system disappears once its last handle is closed, as in HCS.
    async fn close(&self, id: &str) {
        let mut state = self.lock();
        state.calls.push(format!("HcsCloseComputeSystem {id}"));
        if state
            .systems
            .get(id)
            .is_some_and(|s| s.state == SystemState::Stopped)
        {
            state.systems.remove(id);
        }
    }

    async fn properties(&self, id: &str, query: &PropertyQuery) -> Result<Properties, HostError> {
        let mut state = self.enter("HcsGetComputeSystemProperties", id)?;
        let system = system(&mut state, "HcsGetComputeSystemProperties", id)?;
        Ok(Properties {
            id: Some(id.to_owned()),
            owner: Some(system.owner.clone()),
            system_type: Some(
                if system.is_vm {
                    "VirtualMachine"
                } else {
                    "Container"
                }
                .to_owned(),
            ),
            runtime_id: system.is_vm.then(|| system.runtime_id.clone()),
            state: Some(format!("{:?}", system.state)),
            stopped: Some(system.state == SystemState::Stopped),
            statistics: query
                .property_types
                .iter()
                .flatten()
                .any(|t| t == "Statistics")
                .then(|| system.statistics.clone()),
            ..Properties::default()
        })
    }

    async fn modify(&self, id: &str, request: &ModifySettingRequest) -> Result<(), HostError> {
        let mut state = self.enter("HcsModifyComputeSystem", id)?;
        state.documents.push(SentDocument {
            call: "HcsModifyComputeSystem",
            id: id.to_owned(),
            document: serde_json::to_value(request).unwrap(),
        });
        let system = system(&mut state, "HcsModifyComputeSystem", id)?;
        if system.state != SystemState::Running {
            return Err(HostError::new(
                "HcsModifyComputeSystem",
                HCS_E_INVALID_STATE,
                "not running",
            ));
        }
        Ok(())
    }

    async fn create_process(
        &self,
        id: &str,
        parameters: &ProcessParameters,
    ) -> Result<ProcessIo, HostError> {
        let mut state = self.enter("HcsCreateProcess", id)?;
        state.command_lines.push(parameters.command_line.clone());
        state.next_pid += 4;
        let pid = 1000 + state.next_pid;
        let system = system(&mut state, "HcsCreateProcess", id)?;
        if system.state != SystemState::Running {
            return Err(HostError::new(
                "HcsCreateProcess",
                HCS_E_INVALID_STATE,
                "not running",
            ));
        }
        let pipe = |wanted: bool| wanted.then(|| tokio::io::duplex(64 << 10));
        let (stdin_host, stdin_workload) =
            pipe(parameters.create_std_in_pipe).map_or((None, None), |(a, b)| (Some(a), Some(b)));
        let (stdout, stderr) = (
            pipe(parameters.create_std_out_pipe),
            pipe(parameters.create_std_err_pipe),
        );
        let (stdout_host, stdout_workload) =
            stdout.map_or((None, None), |(a, b)| (Some(a), Some(b)));
        let (stderr_host, stderr_workload) =
            stderr.map_or((None, None), |(a, b)| (Some(a), Some(b)));
        system.processes.insert(
            pid,
            Process {
                exit_code: None,
                stdin: stdin_workload,
                stdout: stdout_workload,
                stderr: stderr_workload,
                // EmulateConsole without a ConsoleSize gets HCS's default console.
                console: parameters
                    .emulate_console
                    .then(|| parameters.console_size.unwrap_or([25, 80])),
                resizes: Vec::new(),
            },
        );
        Ok(ProcessIo {
            pid,
            stdin: stdin_host.map(|s| Box::new(s) as _),
            stdout: stdout_host.map(|s| Box::new(s) as _),
            stderr: stderr_host.map(|s| Box::new(s) as _),
        })
    }

    async fn open_process(&self, id: &str, pid: u32) -> Result<(), HostError> {
        let mut state = self.enter("HcsOpenProcess", id)?;
        let system = system(&mut state, "HcsOpenProcess", id)?;
        match system.processes.get(&pid) {
            Some(_) => Ok(()),
            None => Err(HostError::new(
                "HcsOpenProcess",
                ERROR_NOT_FOUND,
                "no such process",
            )),
        }
    }

    async fn signal_process(
        &self,
        id: &str,
        pid: u32,
        signal: Option<&str>,
    ) -> Result<(), HostError> {
        let mut state = self.enter("HcsSignalProcess", id)?;
        state.signals.push((pid, signal.map(str::to_owned)));
        let system = system(&mut state, "HcsSignalProcess", id)?;
        let process = live_process(system, "HcsSignalProcess", pid)?;
        process.exit_code = Some(1);
        process.stdout = None;
        process.stderr = None;
        system.emit(&ComputeEvent::Process {
            pid,
            event: HcsEvent::ProcessExited { exit_code: Some(1) },
        });
        Ok(())
    }

    async fn resize_console(
        &self,
        id: &str,
        pid: u32,
        size: pane_runtime::ConsoleSize,
    ) -> Result<(), HostError> {
        let mut state = self.enter("HcsModifyProcess", id)?;
        let system = system(&mut state, "HcsModifyProcess", id)?;
        let process = live_process(system, "HcsModifyProcess", pid)?;
        // HCS documents no refusal for a process without a console; the double records
        // every request, and tests check that only console processes get one.
        process.resizes.push([size.rows, size.columns]);
        Ok(())
    }

    fn events(&self, id: &str) -> Result<mpsc::UnboundedReceiver<ComputeEvent>, HostError> {
        let mut state = self.enter("HcsSetComputeSystemCallback", id)?;
        let system = system(&mut state, "HcsSetComputeSystemCallback", id)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        system.subscribers.push(sender);
        Ok(receiver)
    }

    async fn enumerate(&self, owner: &str) -> Result<Vec<Properties>, HostError> {
        let state = self.enter("HcsEnumerateComputeSystems", owner)?;
        let mut found: Vec<Properties> = state
            .systems
            .iter()
            .filter(|(_, s)| s.owner == owner)
            .map(|(id, s)| Properties {
                id: Some(id.clone()),
                owner: Some(s.owner.clone()),
                ..Properties::default()
            })
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    async fn grant_vm_access(&self, vm_id: &str, path: &std::path::Path) -> Result<(), HostError> {
        let mut state = self.enter("HcsGrantVmAccess", vm_id)?;
        if !path.exists() {
            return Err(HostError::new(
                "HcsGrantVmAccess",
                ERROR_FILE_NOT_FOUND,
                path.display().to_string(),
            ));
        }
        state.granted.push(path.to_owned());
        Ok(())
    }
}
