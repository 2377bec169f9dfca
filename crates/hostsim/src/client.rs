//! The DLL's side of the wire, all safe code: connections to the service, operations, the
//! handle table and each handle's event pump. `exports` turns C calls into calls here.
//!
//! Handles given to callers are numbers from a table, never pointers, so a stale or foreign
//! handle is refused with `E_HANDLE` instead of being dereferenced.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::hresult::{
    E_HANDLE, HCS_E_OPERATION_ALREADY_STARTED, HCS_E_OPERATION_NOT_STARTED,
    HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET, HCS_E_OPERATION_TIMEOUT, RPC_SERVER_UNAVAILABLE,
};
use crate::protocol::{self, ADDRESS_ENV, ADDRESS_FILE, Event, Request, Response};

/// `HcsEventServiceDisconnect`.
const EVENT_SERVICE_DISCONNECT: u32 = 0x0200_0000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unavailable(why: &str) -> Response {
    Response::error(
        RPC_SERVER_UNAVAILABLE,
        &format!("the simulated compute service is not reachable: {why}"),
    )
}

/// The service's address: `PANE_HOSTSIM_ADDR`, else the file the service wrote.
fn address() -> Result<String, Response> {
    if let Ok(address) = std::env::var(ADDRESS_ENV) {
        return Ok(address);
    }
    let data =
        std::env::var_os("ProgramData").ok_or_else(|| unavailable("%ProgramData% is not set"))?;
    let file = std::path::Path::new(&data).join(ADDRESS_FILE);
    std::fs::read_to_string(&file)
        .map(|s| s.trim().to_owned())
        .map_err(|e| unavailable(&format!("{}: {e}", file.display())))
}

fn connect() -> Result<TcpStream, Response> {
    let address = address()?;
    let stream =
        TcpStream::connect(&address).map_err(|e| unavailable(&format!("{address}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// One request, one response.
pub fn call(request: &Request) -> Response {
    open(request).map_or_else(|response| response, |(response, _, _)| response)
}

/// Sends `request` and reads its response, keeping the connection (a handle conversation).
fn open(request: &Request) -> Result<(Response, TcpStream, BufReader<TcpStream>), Response> {
    let stream = connect()?;
    protocol::send(&stream, request).map_err(|e| unavailable(&e.to_string()))?;
    let mut reader = BufReader::new(
        stream
            .try_clone()
            .map_err(|e| unavailable(&e.to_string()))?,
    );
    match protocol::receive::<Response>(&mut reader) {
        Ok(Some(response)) => Ok((response, stream, reader)),
        Ok(None) => Err(unavailable("the service closed the connection")),
        Err(e) => Err(unavailable(&e.to_string())),
    }
}

fn failed(hresult: u32) -> bool {
    hresult & 0x8000_0000 != 0
}

/// What an operation tracks; `HcsWaitForOperationResultAndProcessInfo` takes only processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracks {
    Other,
    Process,
}

enum Progress {
    Idle,
    Running,
    Done(Tracks, Response),
}

/// An `HCS_OPERATION`.
pub struct Operation {
    progress: Mutex<Progress>,
    done: Condvar,
    /// `HCS_OPERATION_COMPLETION`, bound to its handle and context by `exports`.
    completion: OnceLock<Box<dyn Fn() + Send + Sync>>,
    pub context: AtomicU64,
}

impl Operation {
    fn new() -> Self {
        Self {
            progress: Mutex::new(Progress::Idle),
            done: Condvar::new(),
            completion: OnceLock::new(),
            context: AtomicU64::new(0),
        }
    }

    pub fn on_completion(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.completion.set(f);
    }

    /// Starts `work` on a thread of the DLL's; the operation completes with its response.
    pub fn submit(
        self: &Arc<Self>,
        tracks: Tracks,
        work: impl FnOnce() -> Response + Send + 'static,
    ) -> u32 {
        {
            let mut progress = lock(&self.progress);
            if !matches!(*progress, Progress::Idle) {
                return HCS_E_OPERATION_ALREADY_STARTED;
            }
            *progress = Progress::Running;
        }
        let operation = Arc::clone(self);
        std::thread::spawn(move || {
            let response = work();
            *lock(&operation.progress) = Progress::Done(tracks, response);
            operation.done.notify_all();
            if let Some(f) = operation.completion.get() {
                f();
            }
        });
        0
    }

    /// Waits up to `timeout_ms` (`INFINITE` is `u32::MAX`) for the result.
    pub fn wait(&self, timeout_ms: u32) -> Result<(Tracks, Response), u32> {
        let deadline = (timeout_ms != u32::MAX)
            .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
        let mut progress = lock(&self.progress);
        loop {
            match &*progress {
                Progress::Idle => return Err(HCS_E_OPERATION_NOT_STARTED),
                Progress::Done(tracks, response) => return Ok((*tracks, response.clone())),
                Progress::Running => {}
            }
            progress = match deadline {
                None => self
                    .done
                    .wait(progress)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(HCS_E_OPERATION_TIMEOUT);
                    }
                    self.done
                        .wait_timeout(progress, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

pub type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

/// An `HCS_SYSTEM` or `HCS_PROCESS`: its connection to the service, which carries its
/// events, and the callback registered on it.
pub struct Handle {
    pub system: String,
    pub pid: AtomicU32,
    callback: Mutex<Option<Callback>>,
    /// Held while a callback runs, so unregistering waits for it.
    in_callback: Mutex<()>,
    pump: OnceLock<ThreadId>,
    stream: Mutex<Option<TcpStream>>,
    closed: Mutex<bool>,
}

impl Handle {
    fn new(system: &str, pid: u32) -> Self {
        Self {
            system: system.to_owned(),
            pid: AtomicU32::new(pid),
            callback: Mutex::new(None),
            in_callback: Mutex::new(()),
            pump: OnceLock::new(),
            stream: Mutex::new(None),
            closed: Mutex::new(false),
        }
    }

    /// The handle's connection is open: events flow from now on.
    fn attach(self: &Arc<Self>, stream: TcpStream, mut reader: BufReader<TcpStream>) {
        {
            let closed = lock(&self.closed);
            if *closed {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            *lock(&self.stream) = Some(stream);
        }
        let handle = Arc::clone(self);
        let pump = std::thread::spawn(move || {
            loop {
                let event = match protocol::receive::<Event>(&mut reader) {
                    Ok(Some(event)) => event,
                    _ if *lock(&handle.closed) => return,
                    // The service went away while the handle was open.
                    _ => Event {
                        kind: EVENT_SERVICE_DISCONNECT,
                        data: None,
                    },
                };
                let disconnected = event.kind == EVENT_SERVICE_DISCONNECT;
                {
                    let _running = lock(&handle.in_callback);
                    let callback = lock(&handle.callback).clone();
                    if let Some(callback) = callback {
                        callback(&event);
                    }
                }
                if disconnected {
                    return;
                }
            }
        });
        let _ = self.pump.set(pump.thread().id());
    }

    /// Sets or (with `None`) clears the callback. After clearing returns, no callback runs
    /// (unless called from within the callback itself, which then finishes).
    pub fn set_callback(&self, callback: Option<Callback>) -> u32 {
        let mut slot = lock(&self.callback);
        match callback {
            Some(_) if slot.is_some() => HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET,
            Some(callback) => {
                *slot = Some(callback);
                0
            }
            None => {
                *slot = None;
                drop(slot);
                if self.pump.get() != Some(&std::thread::current().id()) {
                    drop(lock(&self.in_callback));
                }
                0
            }
        }
    }

    fn close(&self) {
        self.set_callback(None);
        *lock(&self.closed) = true;
        if let Some(stream) = lock(&self.stream).take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Clone)]
enum Object {
    Operation(Arc<Operation>),
    System(Arc<Handle>),
    Process(Arc<Handle>),
    /// An HCN handle: the kind of object and its id. HCN objects live until deleted, not
    /// until their last handle closes, so the handle is a name and nothing more.
    Hcn(HcnKind, String),
}

/// What an HCN handle refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HcnKind {
    Network,
    Namespace,
    Endpoint,
}

/// A new HCN handle for object `id`.
pub fn new_hcn(kind: HcnKind, id: String) -> usize {
    insert(Object::Hcn(kind, id))
}

/// The id an HCN handle of `kind` names.
pub fn hcn(handle: usize, kind: HcnKind) -> Result<String, u32> {
    match table().1.get(&handle) {
        Some(Object::Hcn(k, id)) if *k == kind => Ok(id.clone()),
        _ => Err(E_HANDLE),
    }
}

/// Closes an HCN handle of `kind`.
pub fn close_hcn(handle: usize, kind: HcnKind) -> Result<(), u32> {
    let mut table = table();
    match table.1.get(&handle) {
        Some(Object::Hcn(k, _)) if *k == kind => {
            table.1.remove(&handle);
            Ok(())
        }
        _ => Err(E_HANDLE),
    }
}

fn table() -> MutexGuard<'static, (usize, HashMap<usize, Object>)> {
    static TABLE: OnceLock<Mutex<(usize, HashMap<usize, Object>)>> = OnceLock::new();
    lock(TABLE.get_or_init(|| Mutex::new((0, HashMap::new()))))
}

fn insert(object: Object) -> usize {
    let mut table = table();
    // Handle values step by 8 and never repeat, like pointers that are never reused.
    table.0 += 8;
    let handle = 0x1000 + table.0;
    table.1.insert(handle, object);
    handle
}

pub fn new_operation() -> (usize, Arc<Operation>) {
    let operation = Arc::new(Operation::new());
    (insert(Object::Operation(Arc::clone(&operation))), operation)
}

pub fn operation(handle: usize) -> Result<Arc<Operation>, u32> {
    match table().1.get(&handle) {
        Some(Object::Operation(o)) => Ok(Arc::clone(o)),
        _ => Err(E_HANDLE),
    }
}

pub fn system(handle: usize) -> Result<Arc<Handle>, u32> {
    match table().1.get(&handle) {
        Some(Object::System(s)) => Ok(Arc::clone(s)),
        _ => Err(E_HANDLE),
    }
}

pub fn process(handle: usize) -> Result<Arc<Handle>, u32> {
    match table().1.get(&handle) {
        Some(Object::Process(p)) => Ok(Arc::clone(p)),
        _ => Err(E_HANDLE),
    }
}

/// Removes a handle of any kind; systems and processes close their connection.
pub fn close(handle: usize) {
    let removed = table().1.remove(&handle);
    if std::env::var_os("PANE_HOSTSIM_TRACE").is_some() {
        let kind = match &removed {
            Some(Object::Operation(_)) => "operation",
            Some(Object::System(_)) => "system",
            Some(Object::Process(_)) => "process",
            Some(Object::Hcn(..)) => "network object",
            None => "unknown",
        };
        eprintln!("computecore: close {kind} handle {handle:#x}");
    }
    match removed {
        Some(Object::System(h) | Object::Process(h)) => h.close(),
        Some(Object::Operation(_) | Object::Hcn(..)) | None => {}
    }
}

/// The system handle is made now; the system exists once the operation succeeds.
pub fn create_system(id: &str, document: String, operation: &Arc<Operation>) -> Result<usize, u32> {
    let handle = Arc::new(Handle::new(id, 0));
    let request = Request::Create {
        id: id.to_owned(),
        document,
    };
    let attach = Arc::clone(&handle);
    let submitted = operation.submit(Tracks::Other, move || open_into(&request, &attach));
    if failed(submitted) {
        return Err(submitted);
    }
    Ok(insert(Object::System(handle)))
}

fn open_into(request: &Request, handle: &Arc<Handle>) -> Response {
    match open(request) {
        Ok((response, stream, reader)) => {
            if !failed(response.hresult) {
                if let Some(info) = response.process {
                    handle.pid.store(info.pid, Ordering::SeqCst);
                }
                handle.attach(stream, reader);
            }
            response
        }
        Err(response) => response,
    }
}

pub fn open_system(id: &str) -> Result<usize, u32> {
    let handle = Arc::new(Handle::new(id, 0));
    let response = open_into(&Request::Open { id: id.to_owned() }, &handle);
    if failed(response.hresult) {
        return Err(response.hresult);
    }
    Ok(insert(Object::System(handle)))
}

pub fn create_process(
    system: &Handle,
    parameters: String,
    operation: &Arc<Operation>,
) -> Result<usize, u32> {
    let handle = Arc::new(Handle::new(&system.system, 0));
    let request = Request::CreateProcess {
        id: system.system.clone(),
        parameters,
        client_pid: std::process::id(),
    };
    let attach = Arc::clone(&handle);
    let submitted = operation.submit(Tracks::Process, move || open_into(&request, &attach));
    if failed(submitted) {
        return Err(submitted);
    }
    Ok(insert(Object::Process(handle)))
}

pub fn open_process(system: &Handle, pid: u32) -> Result<usize, u32> {
    let handle = Arc::new(Handle::new(&system.system, pid));
    let response = open_into(
        &Request::OpenProcess {
            id: system.system.clone(),
            pid,
        },
        &handle,
    );
    if failed(response.hresult) {
        return Err(response.hresult);
    }
    Ok(insert(Object::Process(handle)))
}
