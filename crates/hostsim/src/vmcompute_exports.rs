//! vmcompute.dll's layer entry points, with the signatures hcsshim's `internal/wclayer`
//! declares (Microsoft does not document them). The same DLL is installed as
//! `computecore.dll`, `vmcompute.dll` and `computenetwork.dll`; each copy serves the
//! functions asked of it.
//!
//! `unsafe` only reads caller arguments (the driver info, strings, descriptor arrays) and
//! writes the caller's out-parameters.
#![allow(unsafe_code)]

use std::ffi::c_void;

use crate::client;
use crate::ffi::{Hresult, Pcwstr, hr, read};
use crate::hresult::{E_INVALIDARG, E_POINTER};
use crate::protocol::Request;

/// `DriverInfo { Flavour, HomeDir }` (hcsshim: flavour 1 is the filter driver; the home
/// directory must be a string, empty for the default, never null).
#[repr(C)]
pub struct DriverInfo {
    flavour: u32,
    home_dir: Pcwstr,
}

/// `WC_LAYER_DESCRIPTOR`: a GUID, flags, a path; 32 bytes on x64.
#[repr(C)]
pub struct LayerDescriptor {
    id: [u8; 16],
    flags: u32,
    path: Pcwstr,
}

const _: () = assert!(std::mem::size_of::<LayerDescriptor>() == 32);

/// `HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)`.
const INSUFFICIENT_BUFFER: u32 = 0x8007_007A;

/// Checks the driver info as strictly as hcsshim's callers must fill it.
///
/// # Safety
/// `info` is null or points to a `DriverInfo`.
unsafe fn check_driver(info: *const DriverInfo) -> Result<(), u32> {
    if info.is_null() {
        return Err(E_POINTER);
    }
    // SAFETY: non-null, and the caller passes a DriverInfo.
    let info = unsafe { &*info };
    if info.flavour != 1 || info.home_dir.is_null() {
        return Err(E_INVALIDARG);
    }
    Ok(())
}

/// # Safety
/// `descriptors` points to `count` descriptors (or is null with `count` 0).
unsafe fn parents(descriptors: *const LayerDescriptor, count: usize) -> Result<Vec<String>, u32> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if descriptors.is_null() {
        return Err(E_POINTER);
    }
    // SAFETY: the caller passes `count` descriptors.
    let list = unsafe { std::slice::from_raw_parts(descriptors, count) };
    // SAFETY: each path is null (refused) or NUL-terminated.
    list.iter()
        .map(|d| unsafe { read(d.path) }.ok_or(E_INVALIDARG))
        .collect()
}

fn layer(call: &str, path: String, parents: Vec<String>, size: u64) -> Hresult {
    hr(client::call(&Request::Layer {
        call: call.to_owned(),
        path,
        parents,
        size,
        source: None,
    })
    .hresult)
}

/// # Safety
/// `info` points to a `DriverInfo`; `path` is NUL-terminated.
unsafe fn path_call(call: &str, info: *const DriverInfo, path: Pcwstr) -> Hresult {
    // SAFETY: forwarded from the caller.
    if let Err(e) = unsafe { check_driver(info) } {
        return hr(e);
    }
    // SAFETY: forwarded from the caller.
    match unsafe { read(path) } {
        Some(path) => layer(call, path, Vec::new(), 0),
        None => hr(E_INVALIDARG),
    }
}

macro_rules! path_calls {
    ($($name:ident),*) => {$(
        /// # Safety
        /// `info` points to a `DriverInfo`; `path` is NUL-terminated.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(info: *const DriverInfo, path: Pcwstr) -> Hresult {
            // SAFETY: forwarded from the caller.
            unsafe { path_call(stringify!($name), info, path) }
        }
    )*};
}

path_calls!(ActivateLayer, DeactivateLayer, UnprepareLayer, DestroyLayer);

/// # Safety
/// As the arguments say: a `DriverInfo`, a NUL-terminated path, `count` descriptors.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn PrepareLayer(
    info: *const DriverInfo,
    path: Pcwstr,
    descriptors: *const LayerDescriptor,
    count: usize,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe { descriptor_call("PrepareLayer", info, path, descriptors, count) }
}

/// # Safety
/// As [`PrepareLayer`]; `parent_id` is null or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CreateSandboxLayer(
    info: *const DriverInfo,
    path: Pcwstr,
    _parent_id: Pcwstr,
    descriptors: *const LayerDescriptor,
    count: usize,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe { descriptor_call("CreateSandboxLayer", info, path, descriptors, count) }
}

/// # Safety
/// As [`PrepareLayer`]; `source` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ImportLayer(
    info: *const DriverInfo,
    path: Pcwstr,
    source: Pcwstr,
    descriptors: *const LayerDescriptor,
    count: usize,
) -> Hresult {
    // SAFETY: forwarded from the caller, for each of the four reads.
    let checked = unsafe { check_driver(info) }
        .and_then(|()| unsafe { read(path) }.ok_or(E_INVALIDARG))
        .and_then(|path| Ok((path, unsafe { read(source) }.ok_or(E_INVALIDARG)?)))
        .and_then(|(path, source)| Ok((path, source, unsafe { parents(descriptors, count) }?)));
    match checked {
        Ok((path, source, parents)) => hr(client::call(&Request::Layer {
            call: "ImportLayer".to_owned(),
            path,
            parents,
            size: 0,
            source: Some(source),
        })
        .hresult),
        Err(e) => hr(e),
    }
}

/// # Safety
/// As [`PrepareLayer`].
unsafe fn descriptor_call(
    call: &str,
    info: *const DriverInfo,
    path: Pcwstr,
    descriptors: *const LayerDescriptor,
    count: usize,
) -> Hresult {
    // SAFETY: forwarded from the caller, for each of the three reads.
    let checked = unsafe { check_driver(info) }
        .and_then(|()| unsafe { read(path) }.ok_or(E_INVALIDARG))
        .and_then(|path| Ok((path, unsafe { parents(descriptors, count) }?)));
    match checked {
        Ok((path, parents)) => layer(call, path, parents, 0),
        Err(e) => hr(e),
    }
}

/// # Safety
/// `info` points to a `DriverInfo`; `path` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ExpandSandboxSize(
    info: *const DriverInfo,
    path: Pcwstr,
    size: u64,
) -> Hresult {
    // SAFETY: forwarded from the caller.
    let checked =
        unsafe { check_driver(info) }.and_then(|()| unsafe { read(path) }.ok_or(E_INVALIDARG));
    match checked {
        Ok(path) => layer("ExpandSandboxSize", path, Vec::new(), size),
        Err(e) => hr(e),
    }
}

/// # Safety
/// `path` is NUL-terminated.
unsafe fn image_call(call: &str, path: Pcwstr) -> Hresult {
    // SAFETY: forwarded from the caller.
    match unsafe { read(path) } {
        Some(path) => layer(call, path, Vec::new(), 0),
        None => hr(E_INVALIDARG),
    }
}

/// # Safety
/// `path` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ProcessBaseImage(path: Pcwstr) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe { image_call("ProcessBaseImage", path) }
}

/// # Safety
/// `path` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ProcessUtilityImage(path: Pcwstr) -> Hresult {
    // SAFETY: forwarded from the caller.
    unsafe { image_call("ProcessUtilityImage", path) }
}

/// `GetLayerMountPath`, called twice as hcsshim does: with a null buffer it reports the
/// length (characters, the NUL included); then it fills a buffer of at least that length.
///
/// # Safety
/// `info` points to a `DriverInfo`; `path` is NUL-terminated; `length` is writable; `buffer`
/// is null or holds `*length` characters.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn GetLayerMountPath(
    info: *const DriverInfo,
    path: Pcwstr,
    length: *mut usize,
    buffer: *mut u16,
) -> Hresult {
    if length.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: forwarded from the caller.
    let checked =
        unsafe { check_driver(info) }.and_then(|()| unsafe { read(path) }.ok_or(E_INVALIDARG));
    let path = match checked {
        Ok(p) => p,
        Err(e) => return hr(e),
    };
    let response = client::call(&Request::Layer {
        call: "GetLayerMountPath".to_owned(),
        path,
        parents: Vec::new(),
        size: 0,
        source: None,
    });
    if response.hresult & 0x8000_0000 != 0 {
        return hr(response.hresult);
    }
    let units: Vec<u16> = response
        .document
        .unwrap_or_default()
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect();
    if buffer.is_null() {
        // SAFETY: checked non-null above.
        unsafe { length.write(units.len()) };
        return 0;
    }
    // SAFETY: checked non-null above.
    let room = unsafe { length.read() };
    if room < units.len() {
        // SAFETY: as above.
        unsafe { length.write(units.len()) };
        return hr(INSUFFICIENT_BUFFER);
    }
    // SAFETY: `buffer` holds `room` >= `units.len()` characters.
    unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), buffer, units.len()) };
    0
}

/// `NameToGuid(name, guid)`: a stable GUID of the name.
///
/// # Safety
/// `name` is NUL-terminated; `guid` is writable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn NameToGuid(name: Pcwstr, guid: *mut c_void) -> Hresult {
    if guid.is_null() {
        return hr(E_POINTER);
    }
    // SAFETY: forwarded from the caller.
    let Some(name) = (unsafe { read(name) }) else {
        return hr(E_INVALIDARG);
    };
    // A Windows GUID is little-endian in its first three fields.
    let bytes = crate::service::layers::name_to_guid(&name).to_bytes_le();
    // SAFETY: `guid` is writable for a GUID's 16 bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), guid.cast::<u8>(), 16) };
    0
}
