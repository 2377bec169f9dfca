//! Safe async wrappers over computecore.dll.
//!
//! Entry points are resolved with `LoadLibraryExW` + `GetProcAddress`, so pane starts on a
//! Windows without the Containers feature and can say what is missing. Calls follow the
//! operation model hcsshim uses: create an operation, submit, wait with a timeout, read the
//! result document. Waits block, so they run on tokio's blocking pool.
//!
//! HCS keeps running an operation whose wait timed out, and `HcsCancelOperation` is
//! documented to return `E_NOTIMPL` always, so nothing is ever cancelled: an operation that
//! timed out is closed only once it has completed (on a thread of its own), and a create
//! that timed out terminates the system it made. Callbacks are registered the moment a
//! handle exists and unregistered before it is closed, as hcsshim does.
//! Not yet run on a Windows host; signatures follow computecore.h.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::File;
use std::os::windows::io::{FromRawHandle, RawHandle};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;
use windows::Win32::Foundation::{HANDLE, HLOCAL, LocalFree};
use windows::Win32::System::HostComputeSystem::{
    HCS_EVENT, HCS_EVENT_CALLBACK, HCS_EVENT_OPTIONS, HCS_OPERATION, HCS_OPERATION_COMPLETION,
    HCS_PROCESS, HCS_PROCESS_INFORMATION, HCS_SYSTEM, HcsEventOptionNone,
};
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{HRESULT, HSTRING, PCWSTR, PWSTR, s, w};

use crate::error::{HcsError, result_detail};
use crate::events::HcsEvent;
use crate::hresult::HResult;
use crate::schema::{
    self, ModifySettingRequest, ProcessParameters, ProcessStatus, Properties, PropertyQuery,
};

const DLL: &str = "computecore.dll";
const HCS_E_OPERATION_TIMEOUT: u32 = 0x8037_0118;
const INFINITE: u32 = u32::MAX;
/// How long the one status query after registering a process's callback may take.
const STATUS_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// `GENERIC_ALL` for `HcsOpenComputeSystem`.
const GENERIC_ALL: u32 = 0x1000_0000;

type FnCreateOperation =
    unsafe extern "system" fn(*const c_void, HCS_OPERATION_COMPLETION) -> HCS_OPERATION;
type FnCloseOperation = unsafe extern "system" fn(HCS_OPERATION);
type FnWaitForResult = unsafe extern "system" fn(HCS_OPERATION, u32, *mut PWSTR) -> HRESULT;
type FnWaitForResultAndProcessInfo = unsafe extern "system" fn(
    HCS_OPERATION,
    u32,
    *mut HCS_PROCESS_INFORMATION,
    *mut PWSTR,
) -> HRESULT;
type FnCreateSystem = unsafe extern "system" fn(
    PCWSTR,
    PCWSTR,
    HCS_OPERATION,
    *const c_void,
    *mut HCS_SYSTEM,
) -> HRESULT;
type FnOpenSystem = unsafe extern "system" fn(PCWSTR, u32, *mut HCS_SYSTEM) -> HRESULT;
type FnCloseSystem = unsafe extern "system" fn(HCS_SYSTEM);
type FnSystemCall = unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
type FnModifySystem =
    unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR, HANDLE) -> HRESULT;
type FnEnumerate = unsafe extern "system" fn(PCWSTR, HCS_OPERATION) -> HRESULT;
type FnSetSystemCallback = unsafe extern "system" fn(
    HCS_SYSTEM,
    HCS_EVENT_OPTIONS,
    *const c_void,
    HCS_EVENT_CALLBACK,
) -> HRESULT;
type FnCreateProcess = unsafe extern "system" fn(
    HCS_SYSTEM,
    PCWSTR,
    HCS_OPERATION,
    *const c_void,
    *mut HCS_PROCESS,
) -> HRESULT;
type FnOpenProcess = unsafe extern "system" fn(HCS_SYSTEM, u32, u32, *mut HCS_PROCESS) -> HRESULT;
type FnCloseProcess = unsafe extern "system" fn(HCS_PROCESS);
type FnProcessCall = unsafe extern "system" fn(HCS_PROCESS, HCS_OPERATION, PCWSTR) -> HRESULT;
type FnSetProcessCallback = unsafe extern "system" fn(
    HCS_PROCESS,
    HCS_EVENT_OPTIONS,
    *const c_void,
    HCS_EVENT_CALLBACK,
) -> HRESULT;
type FnGrantVmAccess = unsafe extern "system" fn(PCWSTR, PCWSTR) -> HRESULT;

macro_rules! api_table {
    ($($field:ident: $ty:ty = $name:literal;)*) => {
        /// The computecore entry points pane uses.
        struct Api { $($field: $ty,)* }

        impl Api {
            fn load() -> Result<Self, HcsError> {
                // SAFETY: a static NUL-terminated name; the search flag restricts loading to
                // System32 so no planted DLL is picked up. The module is never unloaded, so
                // the function pointers below stay valid for the life of the process.
                let module = unsafe { LoadLibraryExW(w!("computecore.dll"), None, LOAD_LIBRARY_SEARCH_SYSTEM32) }
                    .map_err(|e| HcsError::Unavailable { dll: DLL, hresult: HResult(e.code().0.cast_unsigned()) })?;
                Ok(Self {
                    $($field: {
                        // SAFETY: `module` is loaded and the name is a static C string.
                        let address = unsafe { GetProcAddress(module, s!($name)) }
                            .ok_or(HcsError::MissingFunction { dll: DLL, function: $name })?;
                        // SAFETY: the pointer is computecore's export of this name, whose
                        // signature in computecore.h is the one `$ty` declares.
                        unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, $ty>(address) }
                    },)*
                })
            }
        }
    };
}

api_table! {
    create_operation: FnCreateOperation = "HcsCreateOperation";
    close_operation: FnCloseOperation = "HcsCloseOperation";
    wait_for_result: FnWaitForResult = "HcsWaitForOperationResult";
    wait_for_result_and_process_info: FnWaitForResultAndProcessInfo = "HcsWaitForOperationResultAndProcessInfo";
    create_system: FnCreateSystem = "HcsCreateComputeSystem";
    open_system: FnOpenSystem = "HcsOpenComputeSystem";
    close_system: FnCloseSystem = "HcsCloseComputeSystem";
    start_system: FnSystemCall = "HcsStartComputeSystem";
    shutdown_system: FnSystemCall = "HcsShutDownComputeSystem";
    terminate_system: FnSystemCall = "HcsTerminateComputeSystem";
    pause_system: FnSystemCall = "HcsPauseComputeSystem";
    resume_system: FnSystemCall = "HcsResumeComputeSystem";
    system_properties: FnSystemCall = "HcsGetComputeSystemProperties";
    modify_system: FnModifySystem = "HcsModifyComputeSystem";
    enumerate_systems: FnEnumerate = "HcsEnumerateComputeSystems";
    set_system_callback: FnSetSystemCallback = "HcsSetComputeSystemCallback";
    create_process: FnCreateProcess = "HcsCreateProcess";
    open_process: FnOpenProcess = "HcsOpenProcess";
    close_process: FnCloseProcess = "HcsCloseProcess";
    terminate_process: FnProcessCall = "HcsTerminateProcess";
    signal_process: FnProcessCall = "HcsSignalProcess";
    modify_process: FnProcessCall = "HcsModifyProcess";
    process_properties: FnProcessCall = "HcsGetProcessProperties";
    set_process_callback: FnSetProcessCallback = "HcsSetProcessCallback";
    grant_vm_access: FnGrantVmAccess = "HcsGrantVmAccess";
}

fn api() -> Result<&'static Api, HcsError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    match API.get_or_init(|| Api::load().map_err(|e| e.to_string())) {
        Ok(api) => Ok(api),
        // Load once; later calls report the same cause.
        Err(_) => Api::load().map(|api| &*Box::leak(Box::new(api))),
    }
}

/// Whether HCS can be used here, and if not, why.
pub fn available() -> Result<(), HcsError> {
    api().map(|_| ())
}

/// HCS handles may be used from any thread (computecore serialises internally).
#[derive(Clone, Copy)]
struct Shared<T>(T);
// SAFETY: HCS_* handles are opaque pointers owned by computecore, which documents its API as
// callable from any thread; pane never dereferences them.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above; concurrent calls on one handle are serialised by HCS.
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// Reading through a method makes closures capture the `Send` wrapper, not the field.
    fn get(self) -> T {
        self.0
    }
}

/// One HCS operation: created, submitted by a call, waited on, closed on drop, but never
/// while HCS still runs it.
struct Operation {
    api: &'static Api,
    handle: HCS_OPERATION,
    /// A wait timed out: HCS still runs the call, so closing must wait for it.
    running: std::cell::Cell<bool>,
}

// SAFETY: the operation handle is an opaque computecore pointer, usable from any thread;
// one thread owns the value at a time.
unsafe impl Send for Operation {}

impl Operation {
    fn new(api: &'static Api) -> Self {
        // SAFETY: no context and no completion callback: the operation is waited on synchronously.
        let handle = unsafe { (api.create_operation)(std::ptr::null(), None) };
        Self {
            api,
            handle,
            running: std::cell::Cell::new(false),
        }
    }

    /// Waits for the submitted call. On timeout HCS goes on running it; see `Drop`.
    fn wait(&self, call: &'static str, timeout: Option<Duration>) -> Result<String, HcsError> {
        let mut document = PWSTR::null();
        // SAFETY: `handle` is a live operation and `document` a valid out-pointer.
        let result =
            unsafe { (self.api.wait_for_result)(self.handle, millis(timeout), &raw mut document) };
        self.finish(call, timeout, result, document)
    }

    /// Waits, without limit, for a call whose earlier wait timed out; true when it succeeded.
    fn wait_out(&self) -> bool {
        let mut document = PWSTR::null();
        // SAFETY: as in `wait`.
        let result =
            unsafe { (self.api.wait_for_result)(self.handle, INFINITE, &raw mut document) };
        let _ = take_string(document);
        self.running.set(false);
        !HResult(result.0.cast_unsigned()).is_failure()
    }

    fn wait_with_process_info(
        &self,
        call: &'static str,
        timeout: Option<Duration>,
    ) -> Result<HCS_PROCESS_INFORMATION, HcsError> {
        let mut info = HCS_PROCESS_INFORMATION::default();
        let mut document = PWSTR::null();
        // SAFETY: as in `wait`; `info` is a writable HCS_PROCESS_INFORMATION.
        let result = unsafe {
            (self.api.wait_for_result_and_process_info)(
                self.handle,
                millis(timeout),
                &raw mut info,
                &raw mut document,
            )
        };
        self.finish(call, timeout, result, document).map(|_| info)
    }

    fn finish(
        &self,
        call: &'static str,
        timeout: Option<Duration>,
        result: HRESULT,
        document: PWSTR,
    ) -> Result<String, HcsError> {
        let text = take_string(document);
        let hresult = HResult(result.0.cast_unsigned());
        if hresult.0 == HCS_E_OPERATION_TIMEOUT {
            self.running.set(true);
            return Err(HcsError::Timeout {
                call,
                after: timeout.unwrap_or_default(),
            });
        }
        if hresult.is_failure() {
            return Err(HcsError::Call {
                call,
                hresult,
                detail: result_detail(&text),
            });
        }
        Ok(text)
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if self.running.get() {
            // Closing an operation HCS still runs is undefined; a thread waits it out.
            let operation = Operation {
                api: self.api,
                handle: self.handle,
                running: std::cell::Cell::new(true),
            };
            self.handle = HCS_OPERATION(std::ptr::null_mut());
            std::thread::spawn(move || {
                let _ = operation.wait_out();
            });
            return;
        }
        if !self.handle.0.is_null() {
            // SAFETY: the handle came from HcsCreateOperation, has completed (or was never
            // submitted), and is closed exactly once.
            unsafe { (self.api.close_operation)(self.handle) };
        }
    }
}

fn millis(timeout: Option<Duration>) -> u32 {
    timeout.map_or(INFINITE, |t| {
        u32::try_from(t.as_millis()).unwrap_or(INFINITE - 1)
    })
}

/// Copies and frees a string HCS allocated with `LocalAlloc`.
fn take_string(text: PWSTR) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: HCS returns a NUL-terminated UTF-16 string it allocated; it is read once and
    // then released with LocalFree as the API requires.
    unsafe {
        let copy = text.to_string().unwrap_or_default();
        let _ = LocalFree(Some(HLOCAL(text.0.cast())));
        copy
    }
}

fn check(call: &'static str, result: HRESULT) -> Result<(), HcsError> {
    let hresult = HResult(result.0.cast_unsigned());
    if hresult.is_failure() {
        Err(HcsError::Call {
            call,
            hresult,
            detail: None,
        })
    } else {
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(call: &'static str, value: &T) -> Result<HSTRING, HcsError> {
    serde_json::to_string(value)
        .map(|s| HSTRING::from(s.as_str()))
        .map_err(|source| HcsError::Json { call, source })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HcsError> + Send + 'static,
) -> Result<T, HcsError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(HcsError::Call {
            call: "blocking HCS call",
            hresult: HResult(0x8000_FFFF),
            detail: Some(e.to_string()),
        })
    })
}

/// The signature shared by the calls that take a handle, an operation and an options string.
type HandleCall<H> = unsafe extern "system" fn(H, HCS_OPERATION, PCWSTR) -> HRESULT;

/// Submits `f(handle, operation, options)` and waits for its result document.
async fn submit<H: Copy + 'static>(
    api: &'static Api,
    handle: Shared<H>,
    call: &'static str,
    f: fn(&Api) -> HandleCall<H>,
    options: Option<String>,
    timeout: Option<Duration>,
) -> Result<String, HcsError> {
    blocking(move || {
        let operation = Operation::new(api);
        let options = options.map(|o| HSTRING::from(o.as_str()));
        let options_ptr = options
            .as_ref()
            .map_or(PCWSTR::null(), |o| PCWSTR(o.as_ptr()));
        // SAFETY: the handle is open for the life of its owner, which awaits this call;
        // options is null or NUL-terminated and lives until the operation has finished.
        check(call, unsafe {
            f(api)(handle.get(), operation.handle, options_ptr)
        })?;
        operation.wait(call, timeout)
    })
    .await
}

/// The signature of `HcsSetComputeSystemCallback` and `HcsSetProcessCallback`.
type SetCallback<H> =
    unsafe extern "system" fn(H, HCS_EVENT_OPTIONS, *const c_void, HCS_EVENT_CALLBACK) -> HRESULT;

/// Registers an event sink on `handle`; the caller keeps the sink until the handle closes.
fn register_events<H>(
    call: &'static str,
    set: SetCallback<H>,
    handle: H,
) -> Result<(Box<EventSink>, mpsc::UnboundedReceiver<HcsEvent>), HcsError> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let sink = Box::new(EventSink(sender));
    let context: *const EventSink = &raw const *sink;
    // SAFETY: the handle is open; `context` points to the boxed sink, which the caller keeps
    // until after the handle is closed, so every callback sees a live sink.
    check(call, unsafe {
        set(handle, HcsEventOptionNone, context.cast(), Some(deliver))
    })?;
    Ok((sink, receiver))
}

/// Events for one handle, delivered from HCS's callback thread into a channel.
struct EventSink(mpsc::UnboundedSender<HcsEvent>);

unsafe extern "system" fn deliver(event: *const HCS_EVENT, context: *const c_void) {
    if event.is_null() || context.is_null() {
        return;
    }
    // Never unwind into computecore.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `context` is the EventSink registered with this handle, kept alive until
        // after the handle is closed; `event` is valid for the duration of the callback.
        let (sink, event) = unsafe { (&*context.cast::<EventSink>(), &*event) };
        let data = if event.EventData.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null EventData is a NUL-terminated string HCS owns for the
            // duration of the callback; it is copied here.
            unsafe { event.EventData.to_string() }.unwrap_or_default()
        };
        let _ = sink.0.send(HcsEvent::parse(event.Type.0, &data));
    });
}

/// After a create whose wait timed out: waits for it, terminates the system if it was
/// made, then closes its handle (the operation closes when dropped, completed).
fn terminate_abandoned(api: &'static Api, create: &Operation, system: Shared<HCS_SYSTEM>) {
    if create.wait_out() {
        let terminate = Operation::new(api);
        // SAFETY: the system handle is open; no options.
        let submitted =
            unsafe { (api.terminate_system)(system.get(), terminate.handle, PCWSTR::null()) };
        if !HResult(submitted.0.cast_unsigned()).is_failure() {
            let _ = terminate.wait_out();
        }
    }
    // SAFETY: no callback was registered on this handle; it is closed exactly once.
    unsafe { (api.close_system)(system.get()) };
}

/// An open compute system; closed (not terminated) on drop.
pub struct ComputeSystem {
    api: &'static Api,
    handle: Shared<HCS_SYSTEM>,
    id: String,
    events: Option<Box<EventSink>>,
}

impl std::fmt::Debug for ComputeSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeSystem")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ComputeSystem {
    /// `HcsCreateComputeSystem` with `document`.
    pub async fn create(
        id: &str,
        document: &schema::ComputeSystem,
        timeout: Option<Duration>,
    ) -> Result<Self, HcsError> {
        let api = api()?;
        let config = to_json("HcsCreateComputeSystem", document)?;
        tracing::debug!(id, document = %config, "creating compute system");
        let id_w = HSTRING::from(id);
        let handle = blocking(move || {
            let operation = Operation::new(api);
            let mut system = HCS_SYSTEM(std::ptr::null_mut());
            // SAFETY: id and document are NUL-terminated and outlive the call; `system` is a
            // valid out-pointer; no security descriptor.
            let result = unsafe {
                (api.create_system)(
                    PCWSTR(id_w.as_ptr()),
                    PCWSTR(config.as_ptr()),
                    operation.handle,
                    std::ptr::null(),
                    &raw mut system,
                )
            };
            check("HcsCreateComputeSystem", result)?;
            let handle = Shared(system);
            match operation.wait("HcsCreateComputeSystem", timeout) {
                Ok(_) => Ok(handle),
                Err(e @ HcsError::Timeout { .. }) => {
                    // The create goes on: once it is done, the system it made is ended, so
                    // no orphan keeps the id (a retry would meet "already exists").
                    std::thread::spawn(move || terminate_abandoned(api, &operation, handle));
                    Err(e)
                }
                Err(e) => {
                    // SAFETY: close the handle of the system that failed to create.
                    unsafe { (api.close_system)(handle.0) };
                    Err(e)
                }
            }
        })
        .await?;
        Ok(Self {
            api,
            handle,
            id: id.to_owned(),
            events: None,
        })
    }

    /// `HcsOpenComputeSystem`: attach to a system that already exists (adoption).
    pub async fn open(id: &str) -> Result<Self, HcsError> {
        let api = api()?;
        let id_w = HSTRING::from(id);
        let handle = blocking(move || {
            let mut system = HCS_SYSTEM(std::ptr::null_mut());
            // SAFETY: id is NUL-terminated; `system` is a valid out-pointer.
            check("HcsOpenComputeSystem", unsafe {
                (api.open_system)(PCWSTR(id_w.as_ptr()), GENERIC_ALL, &raw mut system)
            })?;
            Ok(Shared(system))
        })
        .await?;
        Ok(Self {
            api,
            handle,
            id: id.to_owned(),
            events: None,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    async fn call(
        &self,
        call: &'static str,
        f: fn(&Api) -> FnSystemCall,
        options: Option<String>,
        timeout: Option<Duration>,
    ) -> Result<String, HcsError> {
        submit(self.api, self.handle, call, f, options, timeout).await
    }

    pub async fn start(&self, timeout: Option<Duration>) -> Result<(), HcsError> {
        self.call("HcsStartComputeSystem", |a| a.start_system, None, timeout)
            .await
            .map(drop)
    }

    /// Asks the system to shut down; its exit arrives as [`HcsEvent::SystemExited`].
    pub async fn shutdown(&self, timeout: Option<Duration>) -> Result<(), HcsError> {
        self.call(
            "HcsShutDownComputeSystem",
            |a| a.shutdown_system,
            None,
            timeout,
        )
        .await
        .map(drop)
    }

    pub async fn terminate(&self, timeout: Option<Duration>) -> Result<(), HcsError> {
        self.call(
            "HcsTerminateComputeSystem",
            |a| a.terminate_system,
            None,
            timeout,
        )
        .await
        .map(drop)
    }

    pub async fn pause(&self, timeout: Option<Duration>) -> Result<(), HcsError> {
        self.call("HcsPauseComputeSystem", |a| a.pause_system, None, timeout)
            .await
            .map(drop)
    }

    pub async fn resume(&self, timeout: Option<Duration>) -> Result<(), HcsError> {
        self.call("HcsResumeComputeSystem", |a| a.resume_system, None, timeout)
            .await
            .map(drop)
    }

    pub async fn properties(&self, query: &PropertyQuery) -> Result<Properties, HcsError> {
        let query = serde_json::to_string(query).map_err(|source| HcsError::Json {
            call: "HcsGetComputeSystemProperties",
            source,
        })?;
        let text = self
            .call(
                "HcsGetComputeSystemProperties",
                |a| a.system_properties,
                Some(query),
                None,
            )
            .await?;
        serde_json::from_str(&text).map_err(|source| HcsError::Json {
            call: "HcsGetComputeSystemProperties",
            source,
        })
    }

    /// The utility VM's `RuntimeId`: the hvsock VM id. Read from HCS after create, never
    /// assumed to equal the system id.
    pub async fn runtime_id(&self) -> Result<uuid::Uuid, HcsError> {
        let properties = self.properties(&PropertyQuery::default()).await?;
        let text = properties.runtime_id.unwrap_or_default();
        uuid::Uuid::parse_str(text.trim_matches(['{', '}'])).map_err(|_| HcsError::Call {
            call: "HcsGetComputeSystemProperties",
            hresult: HResult(0x8000_4005),
            detail: Some(format!("RuntimeId {text:?} is not a GUID")),
        })
    }

    pub async fn modify(&self, request: &ModifySettingRequest) -> Result<(), HcsError> {
        let (api, handle) = (self.api, self.handle);
        let settings = to_json("HcsModifyComputeSystem", request)?;
        blocking(move || {
            let operation = Operation::new(api);
            // SAFETY: open handle; NUL-terminated settings; no identity handle.
            check("HcsModifyComputeSystem", unsafe {
                (api.modify_system)(
                    handle.get(),
                    operation.handle,
                    PCWSTR(settings.as_ptr()),
                    HANDLE::default(),
                )
            })?;
            operation.wait("HcsModifyComputeSystem", None).map(drop)
        })
        .await
    }

    /// Starts delivering this system's events; call once, before start.
    pub fn events(&mut self) -> Result<mpsc::UnboundedReceiver<HcsEvent>, HcsError> {
        let (sink, receiver) = register_events(
            "HcsSetComputeSystemCallback",
            self.api.set_system_callback,
            self.handle.0,
        )?;
        self.events = Some(sink);
        Ok(receiver)
    }

    /// `HcsOpenProcess`: a process another handle started (a workload after adoption), for
    /// its exit events and to signal it. Its stdio pipes stay with whoever created it.
    pub async fn open_process(&self, pid: u32) -> Result<Process, HcsError> {
        let (api, system) = (self.api, self.handle);
        let (handle, watch) = blocking(move || {
            let mut process = HCS_PROCESS(std::ptr::null_mut());
            // SAFETY: open system handle; `process` is a valid out-pointer.
            check("HcsOpenProcess", unsafe {
                (api.open_process)(system.get(), pid, GENERIC_ALL, &raw mut process)
            })?;
            let process = Shared(process);
            match watch_process(api, process) {
                Ok(watch) => Ok((process, watch)),
                Err(e) => {
                    // SAFETY: no callback is registered; the handle is closed once.
                    unsafe { (api.close_process)(process.get()) };
                    Err(e)
                }
            }
        })
        .await?;
        Ok(Process {
            api,
            handle,
            pid,
            stdin: None,
            stdout: None,
            stderr: None,
            events: Some(watch.sink),
            receiver: Some(watch.receiver),
        })
    }

    /// `HcsCreateProcess`; with the `CreateStd*Pipe` flags set, the pipe ends are returned.
    pub async fn create_process(
        &self,
        parameters: &ProcessParameters,
    ) -> Result<Process, HcsError> {
        let (api, system) = (self.api, self.handle);
        let document = to_json("HcsCreateProcess", parameters)?;
        let (handle, info, watch) = blocking(move || {
            let operation = Operation::new(api);
            let mut process = HCS_PROCESS(std::ptr::null_mut());
            // SAFETY: open system handle; NUL-terminated parameters; valid out-pointer.
            check("HcsCreateProcess", unsafe {
                (api.create_process)(
                    system.get(),
                    PCWSTR(document.as_ptr()),
                    operation.handle,
                    std::ptr::null(),
                    &raw mut process,
                )
            })?;
            let process = Shared(process);
            // Registered before the process can have run: a short process may exit before
            // the create's result is even read, and its exit event must not be missed.
            let (sink, receiver) = match register_events(
                "HcsSetProcessCallback",
                api.set_process_callback,
                process.get(),
            ) {
                Ok(registered) => registered,
                Err(e) => {
                    // Nothing would ever see this process exit: let the create finish, end
                    // the process, and only then close its handle.
                    if let Ok(info) = operation.wait_with_process_info("HcsCreateProcess", None) {
                        // The pipes HCS handed over are closed with these.
                        drop((
                            pipe(info.StdInput),
                            pipe(info.StdOutput),
                            pipe(info.StdError),
                        ));
                        let terminate = Operation::new(api);
                        // SAFETY: the process handle is open; no options.
                        let submitted = unsafe {
                            (api.terminate_process)(process.get(), terminate.handle, PCWSTR::null())
                        };
                        if !HResult(submitted.0.cast_unsigned()).is_failure() {
                            let _ = terminate.wait_out();
                        }
                    }
                    // SAFETY: no callback is registered; the handle is closed once.
                    unsafe { (api.close_process)(process.get()) };
                    return Err(e);
                }
            };
            let started = operation.wait_with_process_info("HcsCreateProcess", None);
            let watch = ProcessWatch { sink, receiver };
            match started {
                Ok(info) => {
                    report_if_exited(api, process, &watch.sink);
                    Ok((process, Shared(info), watch))
                }
                Err(e) => {
                    unregister_process_callback(api, process);
                    // SAFETY: close the handle of the process that failed to start.
                    unsafe { (api.close_process)(process.0) };
                    drop(watch);
                    Err(e)
                }
            }
        })
        .await?;
        let info = info.0;
        Ok(Process {
            api,
            handle,
            pid: info.ProcessId,
            stdin: pipe(info.StdInput),
            stdout: pipe(info.StdOutput),
            stderr: pipe(info.StdError),
            events: Some(watch.sink),
            receiver: Some(watch.receiver),
        })
    }
}

impl Drop for ComputeSystem {
    fn drop(&mut self) {
        if self.events.is_some() {
            // SAFETY: the handle is open; a null callback unregisters the sink, which HCS
            // then no longer calls (hcsshim unregisters before closing the same way).
            let _ = unsafe {
                (self.api.set_system_callback)(
                    self.handle.0,
                    HcsEventOptionNone,
                    std::ptr::null(),
                    None,
                )
            };
        }
        // SAFETY: the handle is open and closed exactly once; after close HCS delivers no
        // more callbacks, so the sink can be freed next.
        unsafe { (self.api.close_system)(self.handle.0) };
        self.events.take();
    }
}

fn pipe(handle: HANDLE) -> Option<File> {
    // SAFETY: HCS hands over ownership of each non-null pipe handle it created.
    (!handle.is_invalid() && !handle.0.is_null())
        .then(|| unsafe { File::from_raw_handle(handle.0 as RawHandle) })
}

/// A process in a compute system, with the host ends of its stdio pipes.
pub struct Process {
    api: &'static Api,
    handle: Shared<HCS_PROCESS>,
    pub pid: u32,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    events: Option<Box<EventSink>>,
    /// The process's events, registered when its handle was made; taken by `events`.
    receiver: Option<mpsc::UnboundedReceiver<HcsEvent>>,
}

/// A process's event sink and the receiving end of its channel.
struct ProcessWatch {
    sink: Box<EventSink>,
    receiver: mpsc::UnboundedReceiver<HcsEvent>,
}

// SAFETY: the sink is only a channel sender; the box moves between threads whole.
unsafe impl Send for ProcessWatch {}

/// Registers `process`'s callback, then reads its state once, so an exit that happened
/// before the registration (an opened process may have ended already) is reported too.
fn watch_process(
    api: &'static Api,
    process: Shared<HCS_PROCESS>,
) -> Result<ProcessWatch, HcsError> {
    let (sink, receiver) = register_events(
        "HcsSetProcessCallback",
        api.set_process_callback,
        process.get(),
    )?;
    report_if_exited(api, process, &sink);
    Ok(ProcessWatch { sink, receiver })
}

/// Queries the process's state once; an exited process gets its exit event now. A second,
/// real event may follow: receivers take the first exit they see.
fn report_if_exited(api: &'static Api, process: Shared<HCS_PROCESS>, sink: &EventSink) {
    let operation = Operation::new(api);
    // SAFETY: the process handle is open; no options.
    let submitted =
        unsafe { (api.process_properties)(process.get(), operation.handle, PCWSTR::null()) };
    if HResult(submitted.0.cast_unsigned()).is_failure() {
        return;
    }
    let Ok(text) = operation.wait("HcsGetProcessProperties", Some(STATUS_QUERY_TIMEOUT)) else {
        return;
    };
    if let Ok(status) = serde_json::from_str::<ProcessStatus>(&text)
        && status.exited
    {
        let exit_code = (status.last_wait_result == 0).then_some(status.exit_code);
        let _ = sink.0.send(HcsEvent::ProcessExited { exit_code });
    }
}

fn unregister_process_callback(api: &'static Api, process: Shared<HCS_PROCESS>) {
    // SAFETY: the handle is open; a null callback unregisters the sink.
    let _ = unsafe {
        (api.set_process_callback)(process.get(), HcsEventOptionNone, std::ptr::null(), None)
    };
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Process {
    async fn call(
        &self,
        call: &'static str,
        f: fn(&Api) -> FnProcessCall,
        options: Option<String>,
    ) -> Result<String, HcsError> {
        submit(self.api, self.handle, call, f, options, None).await
    }

    /// Sends a console control event (`CtrlC`, `CtrlShutdown`, …).
    pub async fn signal(&self, signal: &str) -> Result<(), HcsError> {
        let options = serde_json::json!({ "Signal": signal }).to_string();
        self.call("HcsSignalProcess", |a| a.signal_process, Some(options))
            .await
            .map(drop)
    }

    pub async fn terminate(&self) -> Result<(), HcsError> {
        self.call("HcsTerminateProcess", |a| a.terminate_process, None)
            .await
            .map(drop)
    }

    pub async fn resize_console(&self, height: u16, width: u16) -> Result<(), HcsError> {
        let request = serde_json::json!({ "Operation": "ConsoleSize", "ConsoleSize": { "Height": height, "Width": width } });
        self.call(
            "HcsModifyProcess",
            |a| a.modify_process,
            Some(request.to_string()),
        )
        .await
        .map(drop)
    }

    /// Closes the process's stdin, so it reads end of file.
    pub async fn close_stdin(&self) -> Result<(), HcsError> {
        let request =
            serde_json::json!({ "Operation": "CloseHandle", "CloseHandle": { "Handle": "StdIn" } });
        self.call(
            "HcsModifyProcess",
            |a| a.modify_process,
            Some(request.to_string()),
        )
        .await
        .map(drop)
    }

    pub async fn status(&self) -> Result<ProcessStatus, HcsError> {
        let text = self
            .call("HcsGetProcessProperties", |a| a.process_properties, None)
            .await?;
        serde_json::from_str(&text).map_err(|source| HcsError::Json {
            call: "HcsGetProcessProperties",
            source,
        })
    }

    /// This process's events (its exit), registered when the handle was made, so nothing
    /// that happened since is missed. The receiver is handed out once.
    pub fn events(&mut self) -> Result<mpsc::UnboundedReceiver<HcsEvent>, HcsError> {
        self.receiver.take().ok_or(HcsError::Call {
            call: "HcsSetProcessCallback",
            hresult: HResult(0x8000_4005),
            detail: Some("this process's events were already taken".to_owned()),
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.events.is_some() {
            unregister_process_callback(self.api, self.handle);
        }
        // SAFETY: closed exactly once; no callbacks follow the close.
        unsafe { (self.api.close_process)(self.handle.0) };
        self.events.take();
    }
}

/// Compute systems tagged with `owner` (`HcsEnumerateComputeSystems`).
pub async fn enumerate(owner: &str) -> Result<Vec<Properties>, HcsError> {
    let api = api()?;
    let query = HSTRING::from(
        serde_json::json!({ "Owners": [owner] })
            .to_string()
            .as_str(),
    );
    let text = blocking(move || {
        let operation = Operation::new(api);
        // SAFETY: NUL-terminated query that outlives the operation.
        check("HcsEnumerateComputeSystems", unsafe {
            (api.enumerate_systems)(PCWSTR(query.as_ptr()), operation.handle)
        })?;
        operation.wait("HcsEnumerateComputeSystems", None)
    })
    .await?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|source| HcsError::Json {
        call: "HcsEnumerateComputeSystems",
        source,
    })
}

/// Lets the VM `vm_id` open `path` (VHDX files attached to it).
pub async fn grant_vm_access(vm_id: &str, path: &Path) -> Result<(), HcsError> {
    let api = api()?;
    let vm = HSTRING::from(vm_id);
    let path = HSTRING::from(path.as_os_str());
    blocking(move || {
        // SAFETY: both arguments are NUL-terminated wide strings alive for the call.
        check("HcsGrantVmAccess", unsafe {
            (api.grant_vm_access)(PCWSTR(vm.as_ptr()), PCWSTR(path.as_ptr()))
        })
    })
    .await
}
