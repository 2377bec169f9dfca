//! The C entry points of `computecore.dll`, with the signatures of Microsoft's HCS API
//! reference (`Reference/*.md`, ComputeCore.h). Kept thin: each reads its arguments, calls
//! `client`, writes its results.
//!
//! `unsafe` is confined here, for what a C ABI needs: reading caller strings, writing
//! caller out-pointers, allocating result documents with `LocalAlloc` (the caller frees them
//! with `LocalFree`, as documented) and calling the caller's callbacks.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::Arc;

use windows::Win32::System::Memory::{LMEM_FIXED, LocalAlloc};

use crate::client::{self, Tracks};
use crate::ffi::{Hresult, Pcwstr, hr, read};
use crate::hresult::{E_INVALIDARG, E_NOTIMPL, E_POINTER, HCS_E_PROCESS_INFO_NOT_AVAILABLE};
use crate::protocol::{Event, Request, Response};

type Handle = *mut c_void;

/// `HCS_EVENT`.
#[repr(C)]
pub struct HcsEvent {
    kind: u32,
    event_data: Pcwstr,
    operation: Handle,
}

/// `HCS_PROCESS_INFORMATION`.
#[repr(C)]
pub struct HcsProcessInformation {
    process_id: u32,
    reserved: u32,
    std_input: Handle,
    std_output: Handle,
    std_error: Handle,
}

/// `HCS_EVENT_CALLBACK`.
type EventCallback = Option<unsafe extern "system" fn(*const HcsEvent, *mut c_void)>;
/// `HCS_OPERATION_COMPLETION`.
type OperationCompletion = Option<unsafe extern "system" fn(Handle, *mut c_void)>;

fn number(handle: Handle) -> usize {
    handle as usize
}

fn as_handle(number: usize) -> Handle {
    number as Handle
}

/// A `LocalAlloc`ed copy of `text`, for the caller to `LocalFree`.
fn local_string(text: &str) -> *mut u16 {
    let units: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
    let bytes = units.len() * 2;
    // SAFETY: plain allocation; the result is checked before use.
    let Ok(memory) = (unsafe { LocalAlloc(LMEM_FIXED, bytes) }) else {
        return std::ptr::null_mut();
    };
    let target = memory.0.cast::<u16>();
    // SAFETY: `memory` is a fresh, suitably aligned block of `bytes` bytes.
    unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), target, units.len()) };
    target
}

/// Writes `value` through `out` when `out` is not null.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: as the function requires.
        unsafe { out.write(value) };
    }
}

fn status(result: Result<(), u32>) -> Hresult {
    hr(result.err().unwrap_or(0))
}

// --- operations -------------------------------------------------------------------------

/// # Safety
/// `callback`, when set, is callable with `context` until the operation is closed.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsCreateOperation(
    context: *mut c_void,
    callback: OperationCompletion,
) -> Handle {
    let (handle, operation) = client::new_operation();
    operation
        .context
        .store(context as u64, std::sync::atomic::Ordering::SeqCst);
    if let Some(callback) = callback {
        let context = context as usize;
        operation.on_completion(Box::new(move || {
            // SAFETY: the caller registered this callback for this operation and context.
            unsafe { callback(as_handle(handle), context as *mut c_void) };
        }));
    }
    as_handle(handle)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseOperation(operation: Handle) {
    client::close(number(operation));
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCancelOperation(_operation: Handle) -> Hresult {
    // "This function is not currently implemented and will always return an E_NOTIMPL."
    hr(E_NOTIMPL)
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetOperationContext(operation: Handle) -> *mut c_void {
    client::operation(number(operation)).map_or(std::ptr::null_mut(), |o| {
        o.context.load(std::sync::atomic::Ordering::SeqCst) as *mut c_void
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsSetOperationContext(operation: Handle, context: *mut c_void) -> Hresult {
    status(client::operation(number(operation)).map(|o| {
        o.context
            .store(context as u64, std::sync::atomic::Ordering::SeqCst);
    }))
}

fn finish(response: &Response, document: *mut *mut u16) -> Hresult {
    if let Some(text) = &response.document {
        // SAFETY: the documented out-pointer, checked for null by `put`.
        unsafe { put(document, local_string(text)) };
    }
    hr(response.hresult)
}

/// # Safety
/// `result_document` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsWaitForOperationResult(
    operation: Handle,
    timeout_ms: u32,
    result_document: *mut *mut u16,
) -> Hresult {
    // SAFETY: the documented out-pointer.
    unsafe { put(result_document, std::ptr::null_mut()) };
    let operation = match client::operation(number(operation)) {
        Ok(o) => o,
        Err(e) => return hr(e),
    };
    match operation.wait(timeout_ms) {
        Ok((_, response)) => finish(&response, result_document),
        Err(e) => hr(e),
    }
}

/// # Safety
/// `result_document` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsGetOperationResult(
    operation: Handle,
    result_document: *mut *mut u16,
) -> Hresult {
    // SAFETY: forwarded; a zero timeout reports a running operation as pending below.
    let result = unsafe { HcsWaitForOperationResult(operation, 0, result_document) };
    if result.cast_unsigned() == crate::hresult::HCS_E_OPERATION_TIMEOUT {
        return hr(0x8037_0117); // HCS_E_OPERATION_PENDING
    }
    result
}

/// # Safety
/// `process_information` and `result_document` are null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsWaitForOperationResultAndProcessInfo(
    operation: Handle,
    timeout_ms: u32,
    process_information: *mut HcsProcessInformation,
    result_document: *mut *mut u16,
) -> Hresult {
    // SAFETY: the documented out-pointer.
    unsafe { put(result_document, std::ptr::null_mut()) };
    let operation = match client::operation(number(operation)) {
        Ok(o) => o,
        Err(e) => return hr(e),
    };
    match operation.wait(timeout_ms) {
        Ok((Tracks::Other, _)) => hr(E_INVALIDARG),
        Ok((Tracks::Process, response)) => {
            let result = finish(&response, result_document);
            if result >= 0 {
                let Some(info) = response.process else {
                    return hr(HCS_E_PROCESS_INFO_NOT_AVAILABLE);
                };
                let information = HcsProcessInformation {
                    process_id: info.pid,
                    reserved: 0,
                    std_input: as_handle(usize::try_from(info.stdin).unwrap_or(0)),
                    std_output: as_handle(usize::try_from(info.stdout).unwrap_or(0)),
                    std_error: as_handle(usize::try_from(info.stderr).unwrap_or(0)),
                };
                // SAFETY: the documented out-pointer.
                unsafe { put(process_information, information) };
            }
            result
        }
        Err(e) => hr(e),
    }
}

/// # Safety
/// As [`HcsWaitForOperationResultAndProcessInfo`].
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsGetOperationResultAndProcessInfo(
    operation: Handle,
    process_information: *mut HcsProcessInformation,
    result_document: *mut *mut u16,
) -> Hresult {
    // SAFETY: forwarded.
    unsafe {
        HcsWaitForOperationResultAndProcessInfo(operation, 0, process_information, result_document)
    }
}

// --- compute systems --------------------------------------------------------------------

/// # Safety
/// `id` and `configuration` are null or NUL-terminated; `compute_system` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsCreateComputeSystem(
    id: Pcwstr,
    configuration: Pcwstr,
    operation: Handle,
    _security_descriptor: *const c_void,
    compute_system: *mut Handle,
) -> Hresult {
    if compute_system.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    let (id, configuration) = unsafe { (read(id).unwrap_or_default(), read(configuration)) };
    let Some(configuration) = configuration else {
        return hr(E_INVALIDARG);
    };
    let result = client::operation(number(operation))
        .and_then(|o| client::create_system(&id, configuration, &o));
    match result {
        Ok(handle) => {
            // SAFETY: checked non-null above.
            unsafe { put(compute_system, as_handle(handle)) };
            0
        }
        Err(e) => hr(e),
    }
}

/// # Safety
/// `id` is NUL-terminated; `compute_system` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsOpenComputeSystem(
    id: Pcwstr,
    _requested_access: u32,
    compute_system: *mut Handle,
) -> Hresult {
    if compute_system.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    let Some(id) = (unsafe { read(id) }) else {
        return hr(E_INVALIDARG);
    };
    match client::open_system(&id) {
        Ok(handle) => {
            // SAFETY: checked non-null above.
            unsafe { put(compute_system, as_handle(handle)) };
            0
        }
        Err(e) => hr(e),
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseComputeSystem(compute_system: Handle) {
    client::close(number(compute_system));
}

/// Submits a call on a system handle that takes an options/query string.
///
/// # Safety
/// `options` is null or NUL-terminated.
unsafe fn system_call(
    compute_system: Handle,
    operation: Handle,
    options: Pcwstr,
    make: fn(String, Option<String>) -> Request,
) -> Hresult {
    // SAFETY: as the function requires.
    let options = unsafe { read(options) };
    let submitted = client::system(number(compute_system)).and_then(|system| {
        let operation = client::operation(number(operation))?;
        let request = make(system.system.clone(), options);
        Ok(operation.submit(Tracks::Other, move || client::call(&request)))
    });
    match submitted {
        Ok(result) => hr(result),
        Err(e) => hr(e),
    }
}

macro_rules! system_calls {
    ($($name:ident => $variant:ident { $field:ident };)*) => {$(
        /// # Safety
        /// The string argument is null or NUL-terminated.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(
            compute_system: Handle,
            operation: Handle,
            options: Pcwstr,
        ) -> Hresult {
            // SAFETY: forwarded from the caller.
            unsafe {
                system_call(compute_system, operation, options, |id, $field| Request::$variant { id, $field })
            }
        }
    )*};
}

system_calls! {
    HcsStartComputeSystem => Start { options };
    HcsShutDownComputeSystem => Shutdown { options };
    HcsTerminateComputeSystem => Terminate { options };
    HcsPauseComputeSystem => Pause { options };
    HcsResumeComputeSystem => Resume { options };
    HcsGetComputeSystemProperties => Properties { query };
}

/// # Safety
/// `configuration` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsModifyComputeSystem(
    compute_system: Handle,
    operation: Handle,
    configuration: Pcwstr,
    _identity: Handle,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        system_call(compute_system, operation, configuration, |id, settings| {
            Request::Modify {
                id,
                settings: settings.unwrap_or_default(),
            }
        })
    }
}

/// # Safety
/// `query` is null or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsEnumerateComputeSystems(
    query: Pcwstr,
    operation: Handle,
) -> Hresult {
    // SAFETY: as the function requires.
    let query = unsafe { read(query) };
    match client::operation(number(operation)) {
        Ok(operation) => {
            let request = Request::Enumerate { query };
            hr(operation.submit(Tracks::Other, move || client::call(&request)))
        }
        Err(e) => hr(e),
    }
}

/// A callback registration bound to its context, delivering on the DLL's pump thread.
fn bind(callback: EventCallback, context: *mut c_void) -> Option<client::Callback> {
    let callback = callback?;
    let context = context as usize;
    Some(Arc::new(move |event: &Event| {
        let data: Option<Vec<u16>> = event
            .data
            .as_ref()
            .map(|d| d.encode_utf16().chain(std::iter::once(0)).collect());
        let raw = HcsEvent {
            kind: event.kind,
            event_data: data.as_ref().map_or(std::ptr::null(), Vec::as_ptr),
            operation: std::ptr::null_mut(),
        };
        // SAFETY: the caller registered `callback` for `context`; `raw` and its data live
        // for the duration of the call, as HCS_EVENT documents.
        unsafe { callback(&raw const raw, context as *mut c_void) };
    }))
}

/// # Safety
/// `callback`, when set, is callable with `context` until it is unregistered or the handle
/// is closed.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsSetComputeSystemCallback(
    compute_system: Handle,
    callback_options: u32,
    context: *mut c_void,
    callback: EventCallback,
) -> Hresult {
    if callback_options != 0 {
        // HcsEventOptionEnableOperationCallbacks is not simulated.
        return hr(E_NOTIMPL);
    }
    status(client::system(number(compute_system)).and_then(|s| {
        let result = s.set_callback(bind(callback, context));
        if result == 0 { Ok(()) } else { Err(result) }
    }))
}

/// # Safety
/// `path` and `vm_id` are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsGrantVmAccess(vm_id: Pcwstr, file_path: Pcwstr) -> Hresult {
    // SAFETY: as the function requires.
    let (vm_id, path) = unsafe { (read(vm_id), read(file_path)) };
    let (Some(vm_id), Some(path)) = (vm_id, path) else {
        return hr(E_INVALIDARG);
    };
    hr(client::call(&Request::GrantVmAccess { vm_id, path }).hresult)
}

// --- processes --------------------------------------------------------------------------

/// # Safety
/// `process_parameters` is NUL-terminated; `process` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsCreateProcess(
    compute_system: Handle,
    process_parameters: Pcwstr,
    operation: Handle,
    _security_descriptor: *const c_void,
    process: *mut Handle,
) -> Hresult {
    if process.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    let Some(parameters) = (unsafe { read(process_parameters) }) else {
        return hr(E_INVALIDARG);
    };
    let created = client::system(number(compute_system)).and_then(|system| {
        let operation = client::operation(number(operation))?;
        client::create_process(&system, parameters, &operation)
    });
    match created {
        Ok(handle) => {
            // SAFETY: checked non-null above.
            unsafe { put(process, as_handle(handle)) };
            0
        }
        Err(e) => hr(e),
    }
}

/// # Safety
/// `process` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsOpenProcess(
    compute_system: Handle,
    process_id: u32,
    _requested_access: u32,
    process: *mut Handle,
) -> Hresult {
    if process.is_null() {
        return hr(E_POINTER);
    }
    let opened = client::system(number(compute_system))
        .and_then(|system| client::open_process(&system, process_id));
    match opened {
        Ok(handle) => {
            // SAFETY: checked non-null above.
            unsafe { put(process, as_handle(handle)) };
            0
        }
        Err(e) => hr(e),
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsCloseProcess(process: Handle) {
    client::close(number(process));
}

/// # Safety
/// `options` is null or NUL-terminated.
unsafe fn process_call(
    process: Handle,
    operation: Handle,
    options: Pcwstr,
    tracks: Tracks,
    make: fn(String, u32, Option<String>) -> Request,
) -> Hresult {
    // SAFETY: as the function requires.
    let options = unsafe { read(options) };
    let submitted = client::process(number(process)).and_then(|process| {
        let operation = client::operation(number(operation))?;
        let pid = process.pid.load(std::sync::atomic::Ordering::SeqCst);
        let request = make(process.system.clone(), pid, options);
        Ok(operation.submit(tracks, move || client::call(&request)))
    });
    match submitted {
        Ok(result) => hr(result),
        Err(e) => hr(e),
    }
}

macro_rules! process_calls {
    ($($name:ident => $variant:ident { $field:ident };)*) => {$(
        /// # Safety
        /// The string argument is null or NUL-terminated.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(
            process: Handle,
            operation: Handle,
            options: Pcwstr,
        ) -> Hresult {
            // SAFETY: forwarded from the caller.
            unsafe {
                process_call(process, operation, options, Tracks::Other, |id, pid, $field| {
                    Request::$variant { id, pid, $field }
                })
            }
        }
    )*};
}

process_calls! {
    HcsSignalProcess => Signal { options };
    HcsTerminateProcess => TerminateProcess { options };
    HcsModifyProcess => ModifyProcess { settings };
    HcsGetProcessProperties => ProcessProperties { query };
}

#[unsafe(no_mangle)]
pub extern "system" fn HcsGetProcessInfo(process: Handle, operation: Handle) -> Hresult {
    let submitted = client::process(number(process)).and_then(|process| {
        let operation = client::operation(number(operation))?;
        let pid = process.pid.load(std::sync::atomic::Ordering::SeqCst);
        // The pipes went to whoever created the process; the information repeats its id.
        Ok(operation.submit(Tracks::Process, move || Response {
            process: Some(crate::protocol::ProcessInfo {
                pid,
                ..crate::protocol::ProcessInfo::default()
            }),
            ..Response::ok()
        }))
    });
    match submitted {
        Ok(result) => hr(result),
        Err(e) => hr(e),
    }
}

/// # Safety
/// As [`HcsSetComputeSystemCallback`].
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsSetProcessCallback(
    process: Handle,
    callback_options: u32,
    context: *mut c_void,
    callback: EventCallback,
) -> Hresult {
    if callback_options != 0 {
        return hr(E_NOTIMPL);
    }
    status(client::process(number(process)).and_then(|p| {
        let result = p.set_callback(bind(callback, context));
        if result == 0 { Ok(()) } else { Err(result) }
    }))
}
