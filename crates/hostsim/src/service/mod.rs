//! The service's state: compute systems, their processes and the handles clients hold, with
//! the HCS state machine and HRESULTs of Microsoft's HCS reference. Portable: the operating
//! system's part (starting real processes) sits behind [`Spawner`].

pub mod guest;
pub mod layer_import;
pub mod layers;
pub mod network;
pub mod server;
#[cfg(windows)]
pub mod windows;

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::hresult::{
    E_INVALIDARG, E_NOTIMPL, HCS_E_INVALID_JSON, HCS_E_INVALID_STATE,
    HCS_E_PROCESS_ALREADY_STOPPED, HCS_E_SYSTEM_ALREADY_EXISTS, HCS_E_SYSTEM_ALREADY_STOPPED,
    HCS_E_SYSTEM_NOT_FOUND, NOT_FOUND,
};
use crate::protocol::{Event, ProcessInfo, Request, Response};
use crate::schema;

/// `HCS_EVENT_TYPE` values (`Reference/HCS_EVENT_TYPE.md`).
pub const EVENT_SYSTEM_EXITED: u32 = 0x1;
pub const EVENT_PROCESS_EXITED: u32 = 0x0001_0000;

/// A process the spawner started, as the service controls it.
pub trait OsProcess: Send {
    /// Ends the process; its exit is still reported through the spawner's exit callback.
    fn terminate(&self) -> Result<(), u32>;
    /// Delivers a console control event (`CtrlC`, `CtrlBreak`, `CtrlShutdown`, …).
    fn signal(&self, signal: &str) -> Result<(), u32>;
}

/// Called once, from any thread, with the process's exit code.
pub type OnExit = Box<dyn FnOnce(u32) + Send>;

/// Starts the real process of an `HcsCreateProcess`.
pub trait Spawner: Send + Sync {
    /// Starts `parameters` (a validated `ProcessParameters` document); pipe ends the
    /// parameters ask for are handed to `client_pid`.
    fn spawn(
        &self,
        parameters: &Value,
        client_pid: u32,
        on_exit: OnExit,
    ) -> Result<(Box<dyn OsProcess>, ProcessInfo), (u32, String)>;
}

/// A spawner for hosts that cannot start processes (the Linux unit tests).
#[derive(Debug)]
pub struct NoProcesses;

impl Spawner for NoProcesses {
    fn spawn(
        &self,
        _: &Value,
        _: u32,
        _: OnExit,
    ) -> Result<(Box<dyn OsProcess>, ProcessInfo), (u32, String)> {
        Err((
            E_NOTIMPL,
            "this simulator cannot start processes".to_owned(),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container,
    VirtualMachine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Created => "Created",
            State::Running => "Running",
            State::Paused => "Paused",
            State::Stopped => "Stopped",
        }
    }
}

struct Process {
    exit: Option<u32>,
    os: Option<Box<dyn OsProcess>>,
    image_name: String,
    created: SystemTime,
    subscribers: Vec<Sender<Event>>,
    /// `[height, width]` of the console a process created with `EmulateConsole` has:
    /// its `ConsoleSize`, then each `ConsoleSize` modify. Wine gives the process no real
    /// console of that size; the sizes are kept so tests can see what pane asked for.
    console: Option<Vec<[u16; 2]>>,
}

struct System {
    owner: String,
    kind: Kind,
    hosting: Option<String>,
    state: State,
    exit_type: Option<&'static str>,
    runtime_id: uuid::Uuid,
    terminate_on_close: bool,
    started: Option<SystemTime>,
    subscribers: Vec<Sender<Event>>,
    processes: BTreeMap<u32, Process>,
    /// A utility VM's guest peer, while the VM runs.
    guest: Option<Box<dyn OsProcess>>,
}

#[derive(Default)]
struct Table {
    systems: BTreeMap<String, System>,
    /// Open system handles: handle → system id.
    handles: HashMap<u64, String>,
    next: u64,
}

impl Table {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn handle_count(&self, id: &str) -> usize {
        self.handles.values().filter(|s| *s == id).count()
    }

    /// A stopped system disappears once no handle refers to it.
    fn collect(&mut self, id: &str) {
        if self.handle_count(id) == 0
            && self
                .systems
                .get(id)
                .is_some_and(|s| s.state == State::Stopped)
        {
            self.systems.remove(id);
        }
    }
}

/// All the simulated host's state.
pub struct Host {
    table: Mutex<Table>,
    spawner: Box<dyn Spawner>,
    layers: layers::Layers,
    networks: network::Networks,
    faults: Mutex<Vec<Fault>>,
    me: Weak<Host>,
}

/// An armed fault (see [`Request::Fault`]).
#[derive(Debug, Clone)]
struct Fault {
    call: String,
    left: u32,
    action: FaultAction,
}

/// What a fault does to the request it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    Fail(u32),
    Stall(std::time::Duration),
    Crash,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

fn not_found(id: &str) -> Response {
    Response::error(
        HCS_E_SYSTEM_NOT_FOUND,
        &format!(
            "A virtual machine or container with the specified identifier does not exist: {id}"
        ),
    )
}

fn invalid_json(e: &schema::Invalid) -> Response {
    Response::error(
        HCS_E_INVALID_JSON,
        &format!("The virtual machine or container JSON document is invalid: {e}"),
    )
}

fn invalid_state(id: &str, state: State, call: &str) -> Response {
    Response::error(
        HCS_E_INVALID_STATE,
        &format!("{call} is not valid for {id} in state {}", state.name()),
    )
}

/// Parses an optional document: absent or empty is `Null`.
fn optional(text: Option<&str>, root: &'static str) -> Result<Value, Response> {
    match text {
        None => Ok(Value::Null),
        Some(t) if t.trim().is_empty() => Ok(Value::Null),
        Some(t) => schema::parse(t, root).map_err(|e| invalid_json(&e)),
    }
}

/// Options documented as "reserved, must be NULL".
fn reserved(options: Option<&str>, call: &str) -> Result<(), Response> {
    match options {
        Some(t) if !t.trim().is_empty() => Err(Response::error(
            E_INVALIDARG,
            &format!("{call}: options are reserved and must be NULL"),
        )),
        _ => Ok(()),
    }
}

/// RFC 3339 UTC time, as HCS writes `DateTime` values.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:07}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos() / 100
    )
}

impl Host {
    pub fn new(spawner: Box<dyn Spawner>) -> Arc<Self> {
        Arc::new_cyclic(|me| Host {
            table: Mutex::new(Table::default()),
            spawner,
            layers: layers::Layers::default(),
            networks: network::Networks::default(),
            faults: Mutex::new(Vec::new()),
            me: me.clone(),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The fault armed for this request, if it is the one it waits for.
    pub fn fault(&self, request: &Request) -> Option<FaultAction> {
        let name = request.name();
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = faults.iter().position(|f| f.call == name)?;
        let fault = &mut faults[index];
        fault.left -= 1;
        if fault.left > 0 {
            return None;
        }
        Some(faults.remove(index).action)
    }

    fn arm(&self, call: String, nth: u32, action: FaultAction) -> Response {
        if nth == 0 || call.is_empty() {
            return Response::error(E_INVALIDARG, "a fault needs a call and nth >= 1");
        }
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Fault {
                call,
                left: nth,
                action,
            });
        Response::ok()
    }

    /// A system handle closed (its connection ended): the documented last-handle behaviour.
    pub fn close_handle(&self, handle: u64) {
        let mut table = self.table();
        let Some(id) = table.handles.remove(&handle) else {
            return;
        };
        if table.handle_count(&id) == 0
            && let Some(system) = table.systems.get_mut(&id)
            && system.terminate_on_close
            && system.state != State::Stopped
        {
            Self::stop(system, "ForcedExit");
        }
        table.collect(&id);
    }

    /// Ends every process and marks the system stopped; the exit event goes to subscribers.
    fn stop(system: &mut System, exit_type: &'static str) {
        if let Some(guest) = system.guest.take() {
            let _ = guest.terminate();
        }
        for process in system.processes.values() {
            if process.exit.is_none()
                && let Some(os) = &process.os
            {
                let _ = os.terminate();
            }
        }
        system.state = State::Stopped;
        system.exit_type = Some(exit_type);
        let event = Event {
            kind: EVENT_SYSTEM_EXITED,
            data: Some(json!({ "Status": 0, "ExitType": exit_type }).to_string()),
        };
        system.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    /// `HcsOpenComputeSystem`: a new handle, whose events go to `events`.
    pub fn open(&self, id: &str, events: Sender<Event>) -> Response {
        let mut table = self.table();
        let Some(system) = table.systems.get_mut(id) else {
            return not_found(id);
        };
        system.subscribers.push(events);
        let handle = table.next_id();
        table.handles.insert(handle, id.to_owned());
        Response {
            handle: Some(handle),
            ..Response::ok()
        }
    }

    /// `HcsOpenProcess`: the process's events go to `events`.
    pub fn open_process(&self, id: &str, pid: u32, events: Sender<Event>) -> Response {
        let mut table = self.table();
        let Some(system) = table.systems.get_mut(id) else {
            return not_found(id);
        };
        let Some(process) = system.processes.get_mut(&pid) else {
            return Response::error(NOT_FOUND, &format!("no process {pid} in {id}"));
        };
        process.subscribers.push(events);
        Response::ok()
    }

    fn process_exited(&self, id: &str, pid: u32, code: u32) {
        let mut table = self.table();
        let Some(process) = table
            .systems
            .get_mut(id)
            .and_then(|s| s.processes.get_mut(&pid))
        else {
            return;
        };
        process.exit = Some(code);
        process.os = None;
        let event = Event {
            kind: EVENT_PROCESS_EXITED,
            data: Some(status(pid, Some(code)).to_string()),
        };
        process
            .subscribers
            .retain(|s| s.send(event.clone()).is_ok());
    }

    /// Serves one request.
    #[allow(clippy::too_many_lines)] // one arm a request
    pub fn handle(&self, request: Request) -> Response {
        match request {
            Request::Create { .. }
            | Request::Open { .. }
            | Request::CreateProcess { .. }
            | Request::OpenProcess { .. } => {
                Response::error(E_INVALIDARG, "a handle request, served by the connection")
            }
            Request::Start { id, options } => {
                self.transition(&id, options.as_deref(), "HcsStartComputeSystem")
            }
            Request::Shutdown { id, options } => {
                self.transition(&id, options.as_deref(), "HcsShutDownComputeSystem")
            }
            Request::Terminate { id, options } => {
                self.transition(&id, options.as_deref(), "HcsTerminateComputeSystem")
            }
            Request::Pause { id, options } => {
                self.transition(&id, options.as_deref(), "HcsPauseComputeSystem")
            }
            Request::Resume { id, options } => {
                self.transition(&id, options.as_deref(), "HcsResumeComputeSystem")
            }
            Request::Properties { id, query } => self.properties(&id, query.as_deref()),
            Request::Modify { id, settings } => {
                if let Err(e) = schema::modify_setting_request(&settings) {
                    return invalid_json(&e);
                }
                let table = self.table();
                match table.systems.get(&id) {
                    None => not_found(&id),
                    Some(s) if s.state == State::Stopped => {
                        invalid_state(&id, s.state, "HcsModifyComputeSystem")
                    }
                    Some(_) => Response::ok(),
                }
            }
            Request::Enumerate { query } => self.enumerate(query.as_deref()),
            Request::ProcessProperties { id, pid, query } => {
                if let Err(e) = optional(query.as_deref(), "ProcessStatus") {
                    return e;
                }
                self.with_process(&id, pid, |p| {
                    Response::document(status(pid, p.exit).to_string())
                })
            }
            Request::Signal { id, pid, options } => {
                let options = match optional(options.as_deref(), "SignalProcessOptions") {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                let signal = options
                    .get("Signal")
                    .and_then(Value::as_str)
                    .unwrap_or("CtrlC")
                    .to_owned();
                self.with_process(&id, pid, |p| match (&p.os, p.exit) {
                    (Some(os), None) => match os.signal(&signal) {
                        Ok(()) => Response::ok(),
                        Err(hr) => Response::error(hr, &format!("signal {signal} to {pid} failed")),
                    },
                    _ => Response::error(
                        HCS_E_PROCESS_ALREADY_STOPPED,
                        "The process has already exited",
                    ),
                })
            }
            Request::TerminateProcess { id, pid, options } => {
                if let Err(e) = reserved(options.as_deref(), "HcsTerminateProcess") {
                    return e;
                }
                self.with_process(&id, pid, |p| match (&p.os, p.exit) {
                    (Some(os), None) => match os.terminate() {
                        Ok(()) => Response::ok(),
                        Err(hr) => Response::error(hr, &format!("terminate {pid} failed")),
                    },
                    _ => Response::error(
                        HCS_E_PROCESS_ALREADY_STOPPED,
                        "The process has already exited",
                    ),
                })
            }
            Request::ModifyProcess { id, pid, settings } => {
                let settings = match schema::parse(
                    settings.as_deref().unwrap_or(""),
                    "ProcessModifyRequest",
                ) {
                    Ok(v) => v,
                    Err(e) => return invalid_json(&e),
                };
                let operation = settings
                    .get("Operation")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if settings.get(operation).is_none() {
                    return invalid_json(&schema::Invalid {
                        path: format!("ProcessModifyRequest.{operation}"),
                        problem: format!("Operation {operation} needs its {operation} member"),
                    });
                }
                let size = settings.get("ConsoleSize").and_then(|size| {
                    console_size(Some(&serde_json::json!([
                        size.get("Height")?,
                        size.get("Width")?
                    ])))
                });
                let mut table = self.table();
                let Some(system) = table.systems.get_mut(&id) else {
                    return not_found(&id);
                };
                let Some(process) = system.processes.get_mut(&pid) else {
                    return Response::error(NOT_FOUND, &format!("no process {pid} in {id}"));
                };
                if process.exit.is_some() {
                    return Response::error(
                        HCS_E_PROCESS_ALREADY_STOPPED,
                        "The process has already exited",
                    );
                }
                if let (Some(size), Some(sizes)) = (size, process.console.as_mut()) {
                    sizes.push(size);
                }
                Response::ok()
            }
            Request::Consoles { id } => {
                let table = self.table();
                let Some(system) = table.systems.get(&id) else {
                    return not_found(&id);
                };
                let consoles: serde_json::Map<String, Value> = system
                    .processes
                    .iter()
                    .filter_map(|(pid, p)| {
                        Some((pid.to_string(), serde_json::json!(p.console.as_ref()?)))
                    })
                    .collect();
                Response::document(Value::Object(consoles).to_string())
            }
            Request::Fault {
                call,
                nth,
                hresult,
                stall_ms,
                crash,
            } => {
                let action = match (hresult, stall_ms, crash) {
                    (_, _, true) => FaultAction::Crash,
                    (Some(hr), None, false) if hr & 0x8000_0000 != 0 => FaultAction::Fail(hr),
                    (None, Some(ms), false) => {
                        FaultAction::Stall(std::time::Duration::from_millis(ms))
                    }
                    _ => {
                        return Response::error(
                            E_INVALIDARG,
                            "a fault is one of a failure HRESULT, a stall or a crash",
                        );
                    }
                };
                self.arm(call, nth, action)
            }
            Request::Layer {
                call,
                path,
                parents,
                size,
                source,
            } => self
                .layers
                .call(&call, &path, &parents, size, source.as_deref()),
            Request::Hcn {
                call,
                id,
                parent,
                settings,
            } => self
                .networks
                .call(&call, id.as_deref(), parent.as_deref(), settings.as_deref()),
            Request::GrantVmAccess { vm_id, path } => {
                if vm_id.is_empty() || path.is_empty() {
                    Response::error(E_INVALIDARG, "HcsGrantVmAccess needs a VM id and a path")
                } else {
                    Response::ok()
                }
            }
        }
    }

    fn with_process(&self, id: &str, pid: u32, f: impl FnOnce(&Process) -> Response) -> Response {
        let table = self.table();
        let Some(system) = table.systems.get(id) else {
            return not_found(id);
        };
        match system.processes.get(&pid) {
            Some(process) => f(process),
            None => Response::error(NOT_FOUND, &format!("no process {pid} in {id}")),
        }
    }

    /// `HcsCreateComputeSystem`: the system and its first handle, whose events go to `events`.
    pub fn create(&self, id: String, document: &str, events: Sender<Event>) -> Response {
        let value = match schema::compute_system(document) {
            Ok(v) => v,
            Err(e) => return invalid_json(&e),
        };
        let mut table = self.table();
        let id = if id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            id
        };
        if table.systems.contains_key(&id) {
            return Response::error(
                HCS_E_SYSTEM_ALREADY_EXISTS,
                &format!(
                    "A virtual machine or container with the specified identifier already exists: {id}"
                ),
            );
        }
        let hosting = value
            .get("HostingSystemId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(host) = &hosting {
            match table.systems.get(host) {
                None => return not_found(host),
                Some(h) if h.state != State::Running => {
                    return invalid_state(host, h.state, "hosting a system");
                }
                Some(_) => {}
            }
        }
        let kind = if value.get("VirtualMachine").is_some() {
            Kind::VirtualMachine
        } else {
            Kind::Container
        };
        let system = System {
            owner: value
                .get("Owner")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            kind,
            hosting,
            state: State::Created,
            exit_type: None,
            runtime_id: uuid::Uuid::new_v4(),
            terminate_on_close: value
                .get("ShouldTerminateOnLastHandleClosed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            started: None,
            subscribers: vec![events],
            processes: BTreeMap::new(),
            guest: None,
        };
        table.systems.insert(id.clone(), system);
        let handle = table.next_id();
        table.handles.insert(handle, id);
        Response {
            handle: Some(handle),
            ..Response::ok()
        }
    }

    fn transition(&self, id: &str, options: Option<&str>, call: &str) -> Response {
        if let Err(e) = reserved(options, call) {
            return e;
        }
        let mut table = self.table();
        let Some(system) = table.systems.get_mut(id) else {
            return not_found(id);
        };
        let state = system.state;
        match (call, state) {
            (_, State::Stopped) if call != "HcsStartComputeSystem" => {
                return Response::error(
                    HCS_E_SYSTEM_ALREADY_STOPPED,
                    &format!(
                        "The virtual machine or container with the specified identifier is not running: {id}"
                    ),
                );
            }
            ("HcsStartComputeSystem", State::Created) => {
                system.state = State::Running;
                system.started = Some(SystemTime::now());
                if system.kind == Kind::VirtualMachine {
                    system.guest = guest::boot(self.spawner.as_ref(), system.runtime_id);
                }
            }
            ("HcsShutDownComputeSystem", State::Running | State::Paused) => {
                Self::stop(system, "GracefulExit");
            }
            ("HcsTerminateComputeSystem", _) => Self::stop(system, "ForcedExit"),
            ("HcsPauseComputeSystem", State::Running) => system.state = State::Paused,
            ("HcsResumeComputeSystem", State::Paused) => system.state = State::Running,
            _ => return invalid_state(id, state, call),
        }
        table.collect(id);
        Response::ok()
    }

    fn basic(id: &str, system: &System) -> serde_json::Map<String, Value> {
        let mut p = serde_json::Map::new();
        p.insert("Id".into(), json!(id));
        let kind = match system.kind {
            Kind::Container => "Container",
            Kind::VirtualMachine => "VirtualMachine",
        };
        p.insert("SystemType".into(), json!(kind));
        p.insert("RuntimeOsType".into(), json!("Windows"));
        p.insert("Name".into(), json!(id));
        p.insert("Owner".into(), json!(system.owner));
        p.insert("RuntimeId".into(), json!(system.runtime_id.to_string()));
        p.insert("State".into(), json!(system.state.name()));
        p.insert("Stopped".into(), json!(system.state == State::Stopped));
        if let Some(exit) = system.exit_type {
            p.insert("ExitType".into(), json!(exit));
        }
        if let Some(host) = &system.hosting {
            p.insert("HostingSystemId".into(), json!(host));
        }
        p
    }

    fn properties(&self, id: &str, query: Option<&str>) -> Response {
        let query = match optional(query, "System_PropertyQuery") {
            Ok(q) => q,
            Err(e) => return e,
        };
        let table = self.table();
        let Some(system) = table.systems.get(id) else {
            return not_found(id);
        };
        let mut p = Self::basic(id, system);
        let wanted: Vec<&str> = query
            .get("PropertyTypes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let now = SystemTime::now();
        for kind in wanted {
            match kind {
                "ProcessList" => {
                    let list: Vec<Value> = system
                        .processes
                        .iter()
                        .filter(|(_, p)| p.exit.is_none())
                        .map(|(pid, p)| {
                            json!({
                                "ProcessId": pid,
                                "ImageName": p.image_name,
                                "CreateTimestamp": rfc3339(p.created),
                                "UserTime100ns": 0,
                                "KernelTime100ns": 0,
                                "MemoryCommitBytes": 0,
                                "MemoryWorkingSetPrivateBytes": 0,
                                "MemoryWorkingSetSharedBytes": 0,
                            })
                        })
                        .collect();
                    p.insert("ProcessList".into(), Value::Array(list));
                }
                "Statistics" => {
                    let started = system.started.unwrap_or(now);
                    let uptime = now.duration_since(started).unwrap_or_default().as_nanos() / 100;
                    p.insert(
                        "Statistics".into(),
                        json!({
                            "Timestamp": rfc3339(now),
                            "ContainerStartTime": rfc3339(started),
                            "Uptime100ns": u64::try_from(uptime).unwrap_or(u64::MAX),
                            "Processor": {"TotalRuntime100ns": 0, "RuntimeUser100ns": 0, "RuntimeKernel100ns": 0},
                            "Memory": {"MemoryUsageCommitBytes": 0, "MemoryUsageCommitPeakBytes": 0, "MemoryUsagePrivateWorkingSetBytes": 0},
                        }),
                    );
                }
                "TerminateOnLastHandleClosed" => {
                    p.insert(
                        "TerminateOnLastHandleClosed".into(),
                        json!(system.terminate_on_close),
                    );
                }
                _ => {}
            }
        }
        Response::document(Value::Object(p).to_string())
    }

    fn enumerate(&self, query: Option<&str>) -> Response {
        let query = match optional(query, "SystemQuery") {
            Ok(q) => q,
            Err(e) => return e,
        };
        let list = |name: &str| -> Option<Vec<String>> {
            query.get(name).and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
        };
        let (ids, names, types, owners) =
            (list("Ids"), list("Names"), list("Types"), list("Owners"));
        let table = self.table();
        let matched: Vec<Value> = table
            .systems
            .iter()
            .map(|(id, s)| Self::basic(id, s))
            .filter(|p| {
                let has = |filter: &Option<Vec<String>>, key: &str| {
                    filter.as_ref().is_none_or(|f| {
                        p.get(key)
                            .and_then(Value::as_str)
                            .is_some_and(|v| f.iter().any(|x| x == v))
                    })
                };
                has(&ids, "Id")
                    && has(&names, "Name")
                    && has(&types, "SystemType")
                    && has(&owners, "Owner")
            })
            .map(Value::Object)
            .collect();
        Response::document(Value::Array(matched).to_string())
    }

    /// `HcsCreateProcess`: the process's events go to `events`, registered before it runs.
    pub fn create_process(
        &self,
        id: &str,
        parameters: &str,
        client_pid: u32,
        events: Sender<Event>,
    ) -> Response {
        let value = match schema::parse(parameters, "ProcessParameters") {
            Ok(v) => v,
            Err(e) => return invalid_json(&e),
        };
        {
            let table = self.table();
            let Some(system) = table.systems.get(id) else {
                return not_found(id);
            };
            if system.state != State::Running {
                return invalid_state(id, system.state, "HcsCreateProcess");
            }
            if system.kind == Kind::VirtualMachine || system.hosting.is_some() {
                return Response::error(
                    E_NOTIMPL,
                    "the simulator runs processes only in process-isolated containers (no utility VM guest)",
                );
            }
        }
        // The exit may be reported before the process is entered below; it waits on the lock.
        let (me, system_id) = (self.me.clone(), id.to_owned());
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let on_exit: OnExit = Box::new(move |code| {
            // The pid is known only once spawn returns; the spawner's thread waits for it.
            if let (Some(host), Ok(pid)) = (me.upgrade(), rx.recv()) {
                host.process_exited(&system_id, pid, code);
            }
        });
        let (os, info) = match self.spawner.spawn(&value, client_pid, on_exit) {
            Ok(started) => started,
            Err((hr, message)) => return Response::error(hr, &message),
        };
        let console = value
            .get("EmulateConsole")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| {
                // HCS's default console when no size is given.
                vec![console_size(value.get("ConsoleSize")).unwrap_or([25, 80])]
            });
        let image_name = value
            .get("CommandLine")
            .and_then(Value::as_str)
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        let mut table = self.table();
        match table.systems.get_mut(id) {
            Some(system) if system.state == State::Running => {
                system.processes.insert(
                    info.pid,
                    Process {
                        exit: None,
                        os: Some(os),
                        image_name,
                        created: SystemTime::now(),
                        subscribers: vec![events],
                        console,
                    },
                );
            }
            _ => {
                // The system stopped while the process started: it goes with it.
                let _ = os.terminate();
            }
        }
        drop(table);
        let _ = tx.send(info.pid);
        Response {
            process: Some(info),
            ..Response::ok()
        }
    }
}

fn status(pid: u32, exit: Option<u32>) -> Value {
    json!({
        "ProcessId": pid,
        "Exited": exit.is_some(),
        "ExitCode": exit.unwrap_or(0),
        "LastWaitResult": 0,
    })
}

/// `[height, width]` from a `[height, width]` array of numbers that fit a console.
fn console_size(value: Option<&Value>) -> Option<[u16; 2]> {
    let pair = value?.as_array()?;
    let number = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    match pair.as_slice() {
        [height, width] => Some([number(height)?, number(width)?]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, channel};

    use super::*;

    const DOC: &str = r#"{"Owner":"t","SchemaVersion":{"Major":2,"Minor":1},"Container":{}}"#;

    fn host() -> Arc<Host> {
        Host::new(Box::new(NoProcesses))
    }

    fn create(host: &Host, id: &str) -> (Response, Receiver<Event>) {
        let (tx, rx) = channel();
        (host.create(id.into(), DOC, tx), rx)
    }

    fn call(host: &Host, make: fn(String, Option<String>) -> Request, id: &str) -> u32 {
        host.handle(make(id.into(), None)).hresult
    }

    fn start(id: String, options: Option<String>) -> Request {
        Request::Start { id, options }
    }
    fn shutdown(id: String, options: Option<String>) -> Request {
        Request::Shutdown { id, options }
    }
    fn terminate(id: String, options: Option<String>) -> Request {
        Request::Terminate { id, options }
    }

    #[test]
    fn the_state_machine_follows_the_reference() {
        let host = host();
        assert_eq!(create(&host, "a").0.hresult, 0);
        assert_eq!(create(&host, "a").0.hresult, HCS_E_SYSTEM_ALREADY_EXISTS);
        assert_eq!(call(&host, shutdown, "a"), HCS_E_INVALID_STATE);
        assert_eq!(call(&host, start, "a"), 0);
        assert_eq!(call(&host, start, "a"), HCS_E_INVALID_STATE);
        assert_eq!(call(&host, shutdown, "a"), 0);
        assert_eq!(call(&host, shutdown, "a"), HCS_E_SYSTEM_ALREADY_STOPPED);
        assert_eq!(call(&host, terminate, "a"), HCS_E_SYSTEM_ALREADY_STOPPED);
        assert_eq!(call(&host, start, "nope"), HCS_E_SYSTEM_NOT_FOUND);
        let reserved = host.handle(Request::Start {
            id: "a".into(),
            options: Some("{}".into()),
        });
        assert_eq!(reserved.hresult, E_INVALIDARG);
    }

    #[test]
    fn a_stopped_system_goes_with_its_last_handle() {
        let host = host();
        let (created, _events) = create(&host, "a");
        let (tx, _rx) = channel();
        let opened = host.open("a", tx);
        assert_eq!(opened.hresult, 0);
        assert_eq!(call(&host, terminate, "a"), 0);
        host.close_handle(created.handle.unwrap());
        assert!(host.table().systems.contains_key("a"));
        host.close_handle(opened.handle.unwrap());
        assert!(!host.table().systems.contains_key("a"));
    }

    #[test]
    fn a_running_system_outlives_its_handles() {
        let host = host();
        let (created, _events) = create(&host, "a");
        call(&host, start, "a");
        host.close_handle(created.handle.unwrap());
        let listed = host.handle(Request::Enumerate {
            query: Some(r#"{"Owners":["t"]}"#.into()),
        });
        let list: Value = serde_json::from_str(listed.document.as_deref().unwrap()).unwrap();
        assert_eq!(list[0]["Id"], "a");
        assert_eq!(list[0]["State"], "Running");
        let none = host.handle(Request::Enumerate {
            query: Some(r#"{"Owners":["other"]}"#.into()),
        });
        assert_eq!(none.document.as_deref(), Some("[]"));
    }

    #[test]
    fn terminate_on_last_handle_closed() {
        let host = host();
        let (tx, _rx) = channel();
        let doc = DOC.replace(
            "\"Container\"",
            "\"ShouldTerminateOnLastHandleClosed\":true,\"Container\"",
        );
        let created = host.create("a".into(), &doc, tx);
        call(&host, start, "a");
        host.close_handle(created.handle.unwrap());
        assert!(host.table().systems.is_empty());
    }

    #[test]
    fn invalid_documents_fail_with_invalid_json_and_the_path() {
        let host = host();
        let (tx, _rx) = channel();
        let response = host.create(
            "a".into(),
            &DOC.replace("\"Container\"", "\"Containers\""),
            tx,
        );
        assert_eq!(response.hresult, HCS_E_INVALID_JSON);
        assert!(
            response
                .document
                .unwrap()
                .contains("ComputeSystem.Containers")
        );
        assert!(host.table().systems.is_empty());
    }

    #[test]
    fn exit_events_reach_every_handle() {
        let host = host();
        let (_created, events) = create(&host, "a");
        let (tx, opened) = channel();
        host.open("a", tx);
        call(&host, start, "a");
        call(&host, terminate, "a");
        for rx in [events, opened] {
            let event = rx.recv().unwrap();
            assert_eq!(event.kind, EVENT_SYSTEM_EXITED);
            assert!(event.data.unwrap().contains("ForcedExit"));
        }
    }

    #[test]
    fn processes_need_a_running_container() {
        let host = host();
        let (_created, _events) = create(&host, "a");
        let (tx, _rx) = channel();
        let response = host.create_process("a", r#"{"CommandLine":"cmd"}"#, 1, tx.clone());
        assert_eq!(response.hresult, HCS_E_INVALID_STATE);
        call(&host, start, "a");
        let response = host.create_process("a", r#"{"CommandLine":"cmd","Bogus":1}"#, 1, tx);
        assert_eq!(response.hresult, HCS_E_INVALID_JSON);
    }

    #[test]
    fn properties_report_the_state_and_reject_bad_queries() {
        let host = host();
        let (_created, _events) = create(&host, "a");
        let response = host.handle(Request::Properties {
            id: "a".into(),
            query: Some(r#"{"PropertyTypes":["Statistics"]}"#.into()),
        });
        let p: Value = serde_json::from_str(response.document.as_deref().unwrap()).unwrap();
        assert_eq!(p["State"], "Created");
        assert_eq!(p["SystemType"], "Container");
        assert!(p["Statistics"]["Uptime100ns"].is_u64());
        let bad = host.handle(Request::Properties {
            id: "a".into(),
            query: Some(r#"{"PropertyTypes":["Everything"]}"#.into()),
        });
        assert_eq!(bad.hresult, HCS_E_INVALID_JSON);
    }

    #[test]
    fn faults_hit_the_nth_call_once() {
        let host = host();
        let arm = host.handle(Request::Fault {
            call: "Start".into(),
            nth: 2,
            hresult: Some(0x8037_0100),
            stall_ms: None,
            crash: false,
        });
        assert_eq!(arm.hresult, 0);
        let start = Request::Start {
            id: "a".into(),
            options: None,
        };
        assert_eq!(host.fault(&start), None);
        assert_eq!(host.fault(&start), Some(FaultAction::Fail(0x8037_0100)));
        assert_eq!(host.fault(&start), None);
        let layer = Request::Layer {
            call: "ActivateLayer".into(),
            path: "p".into(),
            parents: vec![],
            size: 0,
            source: None,
        };
        assert_eq!(layer.name(), "ActivateLayer");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.0000000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_200);
        assert_eq!(rfc3339(t), "2024-03-01T00:00:00.0000000Z");
    }
}
