//! computenetwork.dll, loaded at run time (it exists only with the Containers feature).
//! Every call blocks; callers run them on a blocking thread. Strings HCN returns are
//! `CoTaskMem` allocations, freed here once copied.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::OnceLock;

use uuid::Uuid;
use windows::Win32::System::Com::CoTaskMemFree;
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{GUID, HRESULT, HSTRING, PCWSTR, PWSTR, s, w};

use crate::schema::{
    HostComputeEndpoint, HostComputeNamespace, HostComputeNetwork, HostComputeQuery,
    ModifyNamespaceSettingRequest,
};
use crate::{HCN_E_NETWORK_NOT_FOUND, HcnError};

type Handle = *mut c_void;
type FnEnumerate = unsafe extern "system" fn(PCWSTR, *mut PWSTR, *mut PWSTR) -> HRESULT;
type FnOpen = unsafe extern "system" fn(*const GUID, *mut Handle, *mut PWSTR) -> HRESULT;
type FnClose = unsafe extern "system" fn(Handle) -> HRESULT;
type FnCreateNamespace =
    unsafe extern "system" fn(*const GUID, PCWSTR, *mut Handle, *mut PWSTR) -> HRESULT;
type FnCreateEndpoint =
    unsafe extern "system" fn(Handle, *const GUID, PCWSTR, *mut Handle, *mut PWSTR) -> HRESULT;
type FnQuery = unsafe extern "system" fn(Handle, PCWSTR, *mut PWSTR, *mut PWSTR) -> HRESULT;
type FnModify = unsafe extern "system" fn(Handle, PCWSTR, *mut PWSTR) -> HRESULT;
type FnDelete = unsafe extern "system" fn(*const GUID, *mut PWSTR) -> HRESULT;

struct Api {
    enumerate_networks: FnEnumerate,
    open_network: FnOpen,
    close_network: FnClose,
    create_namespace: FnCreateNamespace,
    open_namespace: FnOpen,
    modify_namespace: FnModify,
    query_namespace: FnQuery,
    close_namespace: FnClose,
    delete_namespace: FnDelete,
    query_network: FnQuery,
    create_endpoint: FnCreateEndpoint,
    open_endpoint: FnOpen,
    query_endpoint: FnQuery,
    close_endpoint: FnClose,
    delete_endpoint: FnDelete,
}

/// `ERROR_MOD_NOT_FOUND` / `ERROR_PROC_NOT_FOUND` as HRESULTs, for a host without HCN.
const E_MOD_NOT_FOUND: u32 = 0x8007_007E;
const E_PROC_NOT_FOUND: u32 = 0x8007_007F;

fn load() -> Result<Api, HcnError> {
    // SAFETY: a static NUL-terminated name; the search flag restricts loading to System32.
    // The module is never unloaded, so the function pointers stay valid.
    let module =
        unsafe { LoadLibraryExW(w!("computenetwork.dll"), None, LOAD_LIBRARY_SEARCH_SYSTEM32) }
            .map_err(|e| HcnError {
                call: "LoadLibrary(computenetwork.dll)",
                hresult: e.code().0.cast_unsigned(),
                record: "enable the Containers feature".to_owned(),
            })?;
    macro_rules! function {
        ($name:literal, $ty:ty) => {{
            // SAFETY: `module` is loaded and the name is a static C string.
            let address = unsafe { GetProcAddress(module, s!($name)) }.ok_or(HcnError {
                call: $name,
                hresult: E_PROC_NOT_FOUND,
                record: "computenetwork.dll lacks this export".to_owned(),
            })?;
            // SAFETY: the export of this name has the signature `$ty` declares
            // (computenetwork.h).
            unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, $ty>(address) }
        }};
    }
    Ok(Api {
        enumerate_networks: function!("HcnEnumerateNetworks", FnEnumerate),
        open_network: function!("HcnOpenNetwork", FnOpen),
        close_network: function!("HcnCloseNetwork", FnClose),
        create_namespace: function!("HcnCreateNamespace", FnCreateNamespace),
        open_namespace: function!("HcnOpenNamespace", FnOpen),
        modify_namespace: function!("HcnModifyNamespace", FnModify),
        query_namespace: function!("HcnQueryNamespaceProperties", FnQuery),
        close_namespace: function!("HcnCloseNamespace", FnClose),
        delete_namespace: function!("HcnDeleteNamespace", FnDelete),
        query_network: function!("HcnQueryNetworkProperties", FnQuery),
        create_endpoint: function!("HcnCreateEndpoint", FnCreateEndpoint),
        open_endpoint: function!("HcnOpenEndpoint", FnOpen),
        query_endpoint: function!("HcnQueryEndpointProperties", FnQuery),
        close_endpoint: function!("HcnCloseEndpoint", FnClose),
        delete_endpoint: function!("HcnDeleteEndpoint", FnDelete),
    })
}

fn api() -> Result<&'static Api, HcnError> {
    static API: OnceLock<Result<Api, HcnError>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(|e| HcnError {
        call: e.call,
        hresult: if e.hresult == 0 {
            E_MOD_NOT_FOUND
        } else {
            e.hresult
        },
        record: e.record.clone(),
    })
}

/// Copies and frees a string HCN allocated.
fn take(text: PWSTR) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: HCN returned a NUL-terminated CoTaskMem string; it is read once, then freed.
    let copied = unsafe { text.to_string() }.unwrap_or_default();
    // SAFETY: the pointer came from HCN's CoTaskMemAlloc and is freed exactly once.
    unsafe { CoTaskMemFree(Some(text.0.cast_const().cast())) };
    copied
}

fn check(call: &'static str, result: HRESULT, record: PWSTR) -> Result<(), HcnError> {
    let record = take(record);
    if result.is_ok() {
        return Ok(());
    }
    Err(HcnError {
        call,
        hresult: result.0.cast_unsigned(),
        record,
    })
}

fn guid(id: Uuid) -> GUID {
    GUID::from_u128(id.as_u128())
}

fn json<T: serde::Serialize>(call: &'static str, value: &T) -> Result<HSTRING, HcnError> {
    serde_json::to_string(value)
        .map(|text| HSTRING::from(text.as_str()))
        .map_err(|e| HcnError {
            call,
            hresult: 0x8007_0057,
            record: e.to_string(),
        })
}

fn parse<T: serde::de::DeserializeOwned>(call: &'static str, text: &str) -> Result<T, HcnError> {
    serde_json::from_str(text).map_err(|e| HcnError {
        call,
        hresult: 0x803B_001B,
        record: format!("HCN answered a document pane cannot read: {e}"),
    })
}

/// The ids of the networks `query` matches (HCN answers a JSON list of GUID strings,
/// braced or not; one that does not parse is skipped).
fn network_ids(query: &HostComputeQuery) -> Result<Vec<Uuid>, HcnError> {
    let api = api()?;
    let query = json("HcnEnumerateNetworks", query)?;
    let (mut list, mut record) = (PWSTR::null(), PWSTR::null());
    // SAFETY: the query is a NUL-terminated wide string alive for the call; both out
    // pointers are writable.
    let result =
        unsafe { (api.enumerate_networks)(PCWSTR(query.as_ptr()), &raw mut list, &raw mut record) };
    check("HcnEnumerateNetworks", result, record)?;
    let ids: Vec<String> = parse("HcnEnumerateNetworks", &take(list))?;
    Ok(ids
        .iter()
        .filter_map(|id| Uuid::parse_str(id.trim_matches(['{', '}'])).ok())
        .collect())
}

/// The id of the network named `name`.
pub fn find_network(name: &str) -> Result<Uuid, HcnError> {
    network_ids(&HostComputeQuery::matching("Name", name))?
        .into_iter()
        .next()
        .ok_or_else(|| HcnError {
            call: "HcnEnumerateNetworks",
            hresult: HCN_E_NETWORK_NOT_FOUND,
            record: format!(
                "no network named {name:?}; `Get-HnsNetwork` lists this host's networks"
            ),
        })
}

/// Creates the namespace `id`; returns the namespace as HCN reports it.
pub fn create_namespace(
    id: Uuid,
    namespace: &HostComputeNamespace,
) -> Result<serde_json::Value, HcnError> {
    let api = api()?;
    let settings = json("HcnCreateNamespace", namespace)?;
    let query = json("HcnQueryNamespaceProperties", &HostComputeQuery::default())?;
    let id = guid(id);
    let (mut handle, mut record): (Handle, PWSTR) = (std::ptr::null_mut(), PWSTR::null());
    // SAFETY: `id` and `settings` outlive the call; `handle` and `record` are writable.
    let result = unsafe {
        (api.create_namespace)(
            &raw const id,
            PCWSTR(settings.as_ptr()),
            &raw mut handle,
            &raw mut record,
        )
    };
    check("HcnCreateNamespace", result, record)?;
    let (mut properties, mut record) = (PWSTR::null(), PWSTR::null());
    // SAFETY: `handle` is the namespace just created; the out pointers are writable.
    let result = unsafe {
        (api.query_namespace)(
            handle,
            PCWSTR(query.as_ptr()),
            &raw mut properties,
            &raw mut record,
        )
    };
    let properties = take(properties);
    // SAFETY: closes the handle opened above, once.
    let _ = unsafe { (api.close_namespace)(handle) };
    check("HcnQueryNamespaceProperties", result, record)?;
    parse("HcnQueryNamespaceProperties", &properties)
}

/// Adds endpoint `endpoint` to namespace `namespace`.
pub fn add_namespace_endpoint(namespace: Uuid, endpoint: Uuid) -> Result<(), HcnError> {
    let api = api()?;
    let settings = json(
        "HcnModifyNamespace",
        &ModifyNamespaceSettingRequest::add_endpoint(endpoint),
    )?;
    let id = guid(namespace);
    let (mut handle, mut record): (Handle, PWSTR) = (std::ptr::null_mut(), PWSTR::null());
    // SAFETY: `id` outlives the call; `handle` and `record` are writable.
    let result = unsafe { (api.open_namespace)(&raw const id, &raw mut handle, &raw mut record) };
    check("HcnOpenNamespace", result, record)?;
    let mut record = PWSTR::null();
    // SAFETY: `handle` is open; `settings` outlives the call.
    let result =
        unsafe { (api.modify_namespace)(handle, PCWSTR(settings.as_ptr()), &raw mut record) };
    // SAFETY: closes the handle opened above, once.
    let _ = unsafe { (api.close_namespace)(handle) };
    check("HcnModifyNamespace", result, record)
}

pub fn delete_namespace(id: Uuid) -> Result<(), HcnError> {
    let api = api()?;
    let id = guid(id);
    let mut record = PWSTR::null();
    // SAFETY: `id` outlives the call; `record` is writable.
    let result = unsafe { (api.delete_namespace)(&raw const id, &raw mut record) };
    check("HcnDeleteNamespace", result, record)
}

/// Creates endpoint `id` on network `network`; returns it as HCN reports it (with the
/// address HCN's IPAM assigned and its MAC).
pub fn create_endpoint(
    network: Uuid,
    id: Uuid,
    endpoint: &HostComputeEndpoint,
) -> Result<HostComputeEndpoint, HcnError> {
    let api = api()?;
    let settings = json("HcnCreateEndpoint", endpoint)?;
    let query = json("HcnQueryEndpointProperties", &HostComputeQuery::default())?;
    let network = guid(network);
    let id = guid(id);
    let (mut network_handle, mut record): (Handle, PWSTR) = (std::ptr::null_mut(), PWSTR::null());
    // SAFETY: `network` outlives the call; the out pointers are writable.
    let result =
        unsafe { (api.open_network)(&raw const network, &raw mut network_handle, &raw mut record) };
    check("HcnOpenNetwork", result, record)?;
    let (mut handle, mut record): (Handle, PWSTR) = (std::ptr::null_mut(), PWSTR::null());
    // SAFETY: the network handle is open; `id` and `settings` outlive the call.
    let result = unsafe {
        (api.create_endpoint)(
            network_handle,
            &raw const id,
            PCWSTR(settings.as_ptr()),
            &raw mut handle,
            &raw mut record,
        )
    };
    // SAFETY: closes the network handle opened above, once.
    let _ = unsafe { (api.close_network)(network_handle) };
    check("HcnCreateEndpoint", result, record)?;
    let (mut properties, mut record) = (PWSTR::null(), PWSTR::null());
    // SAFETY: `handle` is the endpoint just created; the out pointers are writable.
    let result = unsafe {
        (api.query_endpoint)(
            handle,
            PCWSTR(query.as_ptr()),
            &raw mut properties,
            &raw mut record,
        )
    };
    let properties = take(properties);
    // SAFETY: closes the endpoint handle, once.
    let _ = unsafe { (api.close_endpoint)(handle) };
    check("HcnQueryEndpointProperties", result, record)?;
    parse("HcnQueryEndpointProperties", &properties)
}

pub fn delete_endpoint(id: Uuid) -> Result<(), HcnError> {
    let api = api()?;
    let id = guid(id);
    let mut record = PWSTR::null();
    // SAFETY: `id` outlives the call; `record` is writable.
    let result = unsafe { (api.delete_endpoint)(&raw const id, &raw mut record) };
    check("HcnDeleteEndpoint", result, record)
}

/// Opens object `id`, reads its properties and closes it again.
fn properties_of(
    (open, open_call): (FnOpen, &'static str),
    (query_fn, query_call): (FnQuery, &'static str),
    close: FnClose,
    id: Uuid,
) -> Result<String, HcnError> {
    let query = json(query_call, &HostComputeQuery::default())?;
    let id = guid(id);
    let (mut handle, mut record): (Handle, PWSTR) = (std::ptr::null_mut(), PWSTR::null());
    // SAFETY: `id` outlives the call; `handle` and `record` are writable.
    let result = unsafe { open(&raw const id, &raw mut handle, &raw mut record) };
    check(open_call, result, record)?;
    let (mut properties, mut record) = (PWSTR::null(), PWSTR::null());
    // SAFETY: `handle` is open; the query outlives the call; the out pointers are writable.
    let result = unsafe {
        query_fn(
            handle,
            PCWSTR(query.as_ptr()),
            &raw mut properties,
            &raw mut record,
        )
    };
    let properties = take(properties);
    // SAFETY: closes the handle opened above, once.
    let _ = unsafe { close(handle) };
    check(query_call, result, record)?;
    Ok(properties)
}

/// Namespace `id` as HCN reports it now, with the `Resources` (endpoints) in it.
pub fn query_namespace(id: Uuid) -> Result<serde_json::Value, HcnError> {
    let api = api()?;
    let document = properties_of(
        (api.open_namespace, "HcnOpenNamespace"),
        (api.query_namespace, "HcnQueryNamespaceProperties"),
        api.close_namespace,
        id,
    )?;
    parse("HcnQueryNamespaceProperties", &document)
}

/// Endpoint `id` as HCN reports it.
pub fn query_endpoint(id: Uuid) -> Result<HostComputeEndpoint, HcnError> {
    let api = api()?;
    let text = properties_of(
        (api.open_endpoint, "HcnOpenEndpoint"),
        (api.query_endpoint, "HcnQueryEndpointProperties"),
        api.close_endpoint,
        id,
    )?;
    parse("HcnQueryEndpointProperties", &text)
}

/// Every network of the host, as HCN reports it.
pub fn list_networks() -> Result<Vec<HostComputeNetwork>, HcnError> {
    let api = api()?;
    network_ids(&HostComputeQuery::default())?
        .into_iter()
        .map(|id| {
            let text = properties_of(
                (api.open_network, "HcnOpenNetwork"),
                (api.query_network, "HcnQueryNetworkProperties"),
                api.close_network,
                id,
            )?;
            parse("HcnQueryNetworkProperties", &text)
        })
        .collect()
}
