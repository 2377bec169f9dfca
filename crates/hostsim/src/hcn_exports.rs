//! computenetwork.dll's entry points, with the signatures of Microsoft's HCN reference
//! (`virtualization/api/hcn/Reference/*.md`, ComputeNetwork.h). The same DLL is installed as
//! `computecore.dll`, `vmcompute.dll` and `computenetwork.dll`; each copy serves the
//! functions asked of it.
//!
//! Each call is one request to the service, which holds the networks, namespaces and
//! endpoints. A handle names its object (HCN objects live until deleted, not until their
//! last handle closes). Strings returned (`Networks`, `Properties`, `ErrorRecord`) are
//! `CoTaskMemAlloc`ed, for the caller to free with `CoTaskMemFree` as the reference says;
//! `ErrorRecord` is set only on failure (hcsshim takes any record as an error).
//!
//! `unsafe` only reads caller arguments (GUIDs, strings) and writes out-parameters.
#![allow(unsafe_code)]

use std::ffi::c_void;

use windows::Win32::System::Com::CoTaskMemAlloc;
use windows::core::GUID;

use crate::client::{self, HcnKind};
use crate::ffi::{Hresult, Pcwstr, hr, read};
use crate::hresult::{E_HANDLE, E_OUTOFMEMORY, E_POINTER};
use crate::protocol::{Request, Response};

type Handle = *mut c_void;
type Pwstr = *mut u16;

fn failed(hresult: u32) -> bool {
    hresult & 0x8000_0000 != 0
}

/// # Safety
/// `id` is null or points to a GUID.
unsafe fn read_guid(id: *const GUID) -> Result<String, u32> {
    if id.is_null() {
        return Err(E_POINTER);
    }
    // SAFETY: non-null, and the caller passes a GUID.
    let guid = unsafe { id.read_unaligned() };
    Ok(uuid::Uuid::from_u128(guid.to_u128()).to_string())
}

/// A `CoTaskMemAlloc`ed copy of `text`, for the caller to `CoTaskMemFree`.
fn task_string(text: &str) -> Result<Pwstr, u32> {
    let units: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
    // SAFETY: plain allocation; the result is checked before use.
    let memory = unsafe { CoTaskMemAlloc(units.len() * 2) }.cast::<u16>();
    if memory.is_null() {
        return Err(E_OUTOFMEMORY);
    }
    // SAFETY: `memory` is a fresh block of `units.len()` UTF-16 units.
    unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), memory, units.len()) };
    Ok(memory)
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

/// Sends one HCN request and reports it: on failure, the error document goes to
/// `error_record`; on success the result document is returned.
///
/// # Safety
/// `error_record` is null or valid for a write.
unsafe fn request(
    call: &str,
    id: Option<String>,
    parent: Option<String>,
    settings: Option<String>,
    error_record: *mut Pwstr,
) -> Result<Option<String>, Hresult> {
    // SAFETY: as the function requires.
    unsafe { put(error_record, std::ptr::null_mut()) };
    let response: Response = client::call(&Request::Hcn {
        call: call.to_owned(),
        id,
        parent,
        settings,
    });
    if failed(response.hresult) {
        if !error_record.is_null()
            && let Some(document) = &response.document
            && let Ok(text) = task_string(document)
        {
            // SAFETY: checked non-null.
            unsafe { error_record.write(text) };
        }
        return Err(hr(response.hresult));
    }
    Ok(response.document)
}

/// Writes a result document to `out`.
///
/// # Safety
/// `out` is valid for a write.
unsafe fn give(out: *mut Pwstr, document: Option<String>) -> Hresult {
    match task_string(&document.unwrap_or_default()) {
        Ok(text) => {
            // SAFETY: as the function requires.
            unsafe { out.write(text) };
            0
        }
        Err(e) => hr(e),
    }
}

/// # Safety
/// `query` is null or NUL-terminated; `networks` and `error_record` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnEnumerateNetworks(
    query: Pcwstr,
    networks: *mut Pwstr,
    error_record: *mut Pwstr,
) -> Hresult {
    if networks.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    let query = unsafe { read(query) };
    // SAFETY: as the function requires.
    match unsafe { request("HcnEnumerateNetworks", None, None, query, error_record) } {
        // SAFETY: checked non-null above.
        Ok(document) => unsafe { give(networks, document) },
        Err(e) => e,
    }
}

/// Opens object `id` of `kind` after the service confirms it exists.
///
/// # Safety
/// `id` points to a GUID; `handle` and `error_record` are null or writable.
unsafe fn open(
    call: &str,
    kind: HcnKind,
    id: *const GUID,
    handle: *mut Handle,
    error_record: *mut Pwstr,
) -> Hresult {
    if handle.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    unsafe { put(handle, std::ptr::null_mut()) };
    // SAFETY: as the function requires.
    let id = match unsafe { read_guid(id) } {
        Ok(id) => id,
        Err(e) => return hr(e),
    };
    // SAFETY: as the function requires.
    match unsafe { request(call, Some(id.clone()), None, None, error_record) } {
        Ok(_) => {
            // SAFETY: checked non-null above.
            unsafe { handle.write(client::new_hcn(kind, id) as Handle) };
            0
        }
        Err(e) => e,
    }
}

/// Queries the object a handle names.
///
/// # Safety
/// `query` is null or NUL-terminated; `properties` and `error_record` are null or writable.
unsafe fn query(
    call: &str,
    kind: HcnKind,
    handle: Handle,
    query: Pcwstr,
    properties: *mut Pwstr,
    error_record: *mut Pwstr,
) -> Hresult {
    if properties.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    unsafe { put(properties, std::ptr::null_mut()) };
    let id = match client::hcn(handle as usize, kind) {
        Ok(id) => id,
        Err(e) => return hr(e),
    };
    // SAFETY: as the function requires.
    let query = unsafe { read(query) };
    // SAFETY: as the function requires.
    match unsafe { request(call, Some(id), None, query, error_record) } {
        // SAFETY: checked non-null above.
        Ok(document) => unsafe { give(properties, document) },
        Err(e) => e,
    }
}

/// # Safety
/// `id` points to a GUID; `error_record` is null or writable.
unsafe fn delete(call: &str, id: *const GUID, error_record: *mut Pwstr) -> Hresult {
    // SAFETY: as the function requires.
    unsafe { put(error_record, std::ptr::null_mut()) };
    // SAFETY: as the function requires.
    let id = match unsafe { read_guid(id) } {
        Ok(id) => id,
        Err(e) => return hr(e),
    };
    // SAFETY: as the function requires.
    match unsafe { request(call, Some(id), None, None, error_record) } {
        Ok(_) => 0,
        Err(e) => e,
    }
}

fn close(kind: HcnKind, handle: Handle) -> Hresult {
    match client::close_hcn(handle as usize, kind) {
        Ok(()) => 0,
        Err(e) => hr(e),
    }
}

// --- networks ---------------------------------------------------------------------------

/// # Safety
/// `id` points to a GUID; `network` and `error_record` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnOpenNetwork(
    id: *const GUID,
    network: *mut Handle,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(
            "HcnOpenNetwork",
            HcnKind::Network,
            id,
            network,
            error_record,
        )
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnCloseNetwork(network: Handle) -> Hresult {
    close(HcnKind::Network, network)
}

/// # Safety
/// As [`query`].
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnQueryNetworkProperties(
    network: Handle,
    query_document: Pcwstr,
    properties: *mut Pwstr,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        query(
            "HcnQueryNetworkProperties",
            HcnKind::Network,
            network,
            query_document,
            properties,
            error_record,
        )
    }
}

// --- namespaces -------------------------------------------------------------------------

/// # Safety
/// `id` points to a GUID; `settings` is NUL-terminated; `namespace` and `error_record` are
/// null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnCreateNamespace(
    id: *const GUID,
    settings: Pcwstr,
    namespace: *mut Handle,
    error_record: *mut Pwstr,
) -> Hresult {
    if namespace.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    unsafe { put(namespace, std::ptr::null_mut()) };
    // SAFETY: as the function requires.
    let id = match unsafe { read_guid(id) } {
        Ok(id) => id,
        Err(e) => return hr(e),
    };
    // SAFETY: as the function requires.
    let settings = unsafe { read(settings) };
    // SAFETY: as the function requires.
    match unsafe {
        request(
            "HcnCreateNamespace",
            Some(id.clone()),
            None,
            settings,
            error_record,
        )
    } {
        Ok(document) => {
            // A nil id asks HCN to choose one: the handle names the one it chose.
            let chosen = document
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| d.get("ID").and_then(|i| i.as_str()).map(str::to_lowercase))
                .unwrap_or(id);
            // SAFETY: checked non-null above.
            unsafe { namespace.write(client::new_hcn(HcnKind::Namespace, chosen) as Handle) };
            0
        }
        Err(e) => e,
    }
}

/// # Safety
/// `id` points to a GUID; `namespace` and `error_record` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnOpenNamespace(
    id: *const GUID,
    namespace: *mut Handle,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(
            "HcnOpenNamespace",
            HcnKind::Namespace,
            id,
            namespace,
            error_record,
        )
    }
}

/// # Safety
/// `settings` is NUL-terminated; `error_record` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnModifyNamespace(
    namespace: Handle,
    settings: Pcwstr,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: as the function requires.
    unsafe { put(error_record, std::ptr::null_mut()) };
    let id = match client::hcn(namespace as usize, HcnKind::Namespace) {
        Ok(id) => id,
        Err(e) => return hr(e),
    };
    // SAFETY: as the function requires.
    let settings = unsafe { read(settings) };
    // SAFETY: as the function requires.
    match unsafe { request("HcnModifyNamespace", Some(id), None, settings, error_record) } {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// # Safety
/// As [`query`].
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnQueryNamespaceProperties(
    namespace: Handle,
    query_document: Pcwstr,
    properties: *mut Pwstr,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        query(
            "HcnQueryNamespaceProperties",
            HcnKind::Namespace,
            namespace,
            query_document,
            properties,
            error_record,
        )
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnCloseNamespace(namespace: Handle) -> Hresult {
    close(HcnKind::Namespace, namespace)
}

/// # Safety
/// `id` points to a GUID; `error_record` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnDeleteNamespace(
    id: *const GUID,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe { delete("HcnDeleteNamespace", id, error_record) }
}

// --- endpoints --------------------------------------------------------------------------

/// # Safety
/// `id` points to a GUID; `settings` is NUL-terminated; `endpoint` and `error_record` are
/// null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnCreateEndpoint(
    network: Handle,
    id: *const GUID,
    settings: Pcwstr,
    endpoint: *mut Handle,
    error_record: *mut Pwstr,
) -> Hresult {
    if endpoint.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: as the function requires.
    unsafe { put(endpoint, std::ptr::null_mut()) };
    let Ok(network) = client::hcn(network as usize, HcnKind::Network) else {
        return hr(E_HANDLE);
    };
    // SAFETY: as the function requires.
    let id = match unsafe { read_guid(id) } {
        Ok(id) => id,
        Err(e) => return hr(e),
    };
    // SAFETY: as the function requires.
    let settings = unsafe { read(settings) };
    // SAFETY: as the function requires.
    match unsafe {
        request(
            "HcnCreateEndpoint",
            Some(id.clone()),
            Some(network),
            settings,
            error_record,
        )
    } {
        Ok(document) => {
            let chosen = document
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| d.get("ID").and_then(|i| i.as_str()).map(str::to_lowercase))
                .unwrap_or(id);
            // SAFETY: checked non-null above.
            unsafe { endpoint.write(client::new_hcn(HcnKind::Endpoint, chosen) as Handle) };
            0
        }
        Err(e) => e,
    }
}

/// # Safety
/// `id` points to a GUID; `endpoint` and `error_record` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnOpenEndpoint(
    id: *const GUID,
    endpoint: *mut Handle,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(
            "HcnOpenEndpoint",
            HcnKind::Endpoint,
            id,
            endpoint,
            error_record,
        )
    }
}

/// # Safety
/// As [`query`].
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnQueryEndpointProperties(
    endpoint: Handle,
    query_document: Pcwstr,
    properties: *mut Pwstr,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe {
        query(
            "HcnQueryEndpointProperties",
            HcnKind::Endpoint,
            endpoint,
            query_document,
            properties,
            error_record,
        )
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn HcnCloseEndpoint(endpoint: Handle) -> Hresult {
    close(HcnKind::Endpoint, endpoint)
}

/// # Safety
/// `id` points to a GUID; `error_record` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnDeleteEndpoint(
    id: *const GUID,
    error_record: *mut Pwstr,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe { delete("HcnDeleteEndpoint", id, error_record) }
}
