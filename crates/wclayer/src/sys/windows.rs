//! vmcompute.dll's layer calls (not in the `windows` crate), resolved with `GetProcAddress` so
//! pane loads on hosts without the Containers feature. Signatures and the two ABI traps
//! (the driver info's home directory must be an empty string, never null; descriptors are
//! 32 bytes) follow hcsshim's `internal/wclayer`. Compiled here, not yet run on a host.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows::core::{GUID, HRESULT, HSTRING, PCWSTR, PWSTR, s, w};

use crate::error::LayerError;

/// `DriverInfo{Flavour: 1 (filter driver), HomeDir: ""}`.
#[repr(C)]
struct DriverInfo {
    flavour: u32,
    home_dir: PCWSTR,
}

/// `WC_LAYER_DESCRIPTOR`: 32 bytes on x64.
#[repr(C)]
struct LayerDescriptor {
    id: GUID,
    flags: u32,
    path: PCWSTR,
}

type FnPath = unsafe extern "system" fn(*const DriverInfo, PCWSTR) -> HRESULT;
type FnPrepare =
    unsafe extern "system" fn(*const DriverInfo, PCWSTR, *const LayerDescriptor, usize) -> HRESULT;
type FnCreateSandbox = unsafe extern "system" fn(
    *const DriverInfo,
    PCWSTR,
    PCWSTR,
    *const LayerDescriptor,
    usize,
) -> HRESULT;
type FnImport = unsafe extern "system" fn(
    *const DriverInfo,
    PCWSTR,
    PCWSTR,
    *const LayerDescriptor,
    usize,
) -> HRESULT;
type FnMountPath =
    unsafe extern "system" fn(*const DriverInfo, PCWSTR, *mut usize, PWSTR) -> HRESULT;
type FnExpand = unsafe extern "system" fn(*const DriverInfo, PCWSTR, u64) -> HRESULT;
type FnImage = unsafe extern "system" fn(PCWSTR) -> HRESULT;
type FnNameToGuid = unsafe extern "system" fn(PCWSTR, *mut GUID) -> HRESULT;

struct Api {
    activate: FnPath,
    deactivate: FnPath,
    prepare: FnPrepare,
    unprepare: FnPath,
    create_sandbox: FnCreateSandbox,
    destroy: FnPath,
    mount_path: FnMountPath,
    expand: FnExpand,
    process_utility_image: FnImage,
    process_base_image: FnImage,
    import: FnImport,
    name_to_guid: FnNameToGuid,
}

macro_rules! resolve {
    ($module:expr, $name:literal, $ty:ty) => {{
        // SAFETY: the module is loaded and never unloaded; the name is a static C string.
        let address = unsafe { GetProcAddress($module, s!($name)) }
            .ok_or_else(|| LayerError::Unavailable(format!("vmcompute.dll has no {}", $name)))?;
        // SAFETY: the export's signature is the one hcsshim declares for it, which `$ty` repeats.
        unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, $ty>(address) }
    }};
}

fn api() -> Result<&'static Api, LayerError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    let loaded = API.get_or_init(|| {
        let load = || -> Result<Api, LayerError> {
            // SAFETY: a static name; System32 only, so no planted DLL is used.
            let module =
                unsafe { LoadLibraryExW(w!("vmcompute.dll"), None, LOAD_LIBRARY_SEARCH_SYSTEM32) }
                    .map_err(|e| LayerError::Unavailable(e.to_string()))?;
            Ok(Api {
                activate: resolve!(module, "ActivateLayer", FnPath),
                deactivate: resolve!(module, "DeactivateLayer", FnPath),
                prepare: resolve!(module, "PrepareLayer", FnPrepare),
                unprepare: resolve!(module, "UnprepareLayer", FnPath),
                create_sandbox: resolve!(module, "CreateSandboxLayer", FnCreateSandbox),
                destroy: resolve!(module, "DestroyLayer", FnPath),
                mount_path: resolve!(module, "GetLayerMountPath", FnMountPath),
                expand: resolve!(module, "ExpandSandboxSize", FnExpand),
                process_utility_image: resolve!(module, "ProcessUtilityImage", FnImage),
                process_base_image: resolve!(module, "ProcessBaseImage", FnImage),
                import: resolve!(module, "ImportLayer", FnImport),
                name_to_guid: resolve!(module, "NameToGuid", FnNameToGuid),
            })
        };
        load().map_err(|e| e.to_string())
    });
    loaded
        .as_ref()
        .map_err(|e| LayerError::Unavailable(e.clone()))
}

const EMPTY: PCWSTR = w!("");

fn driver() -> DriverInfo {
    DriverInfo {
        flavour: 1,
        home_dir: EMPTY,
    }
}

fn check(call: &'static str, path: &Path, result: HRESULT) -> Result<(), LayerError> {
    if result.is_ok() {
        Ok(())
    } else {
        Err(LayerError::Windows {
            call,
            path: path.to_owned(),
            hresult: result.0.cast_unsigned(),
        })
    }
}

fn path_call(call: &'static str, f: fn(&Api) -> FnPath, path: &Path) -> Result<(), LayerError> {
    let api = api()?;
    let wide = HSTRING::from(path.as_os_str());
    let info = driver();
    // SAFETY: `info` and `wide` outlive the call; the home directory is an empty string.
    check(call, path, unsafe {
        f(api)(&raw const info, PCWSTR(wide.as_ptr()))
    })
}

pub fn activate(path: &Path) -> Result<(), LayerError> {
    path_call("ActivateLayer", |a| a.activate, path)
}

pub fn deactivate(path: &Path) -> Result<(), LayerError> {
    path_call("DeactivateLayer", |a| a.deactivate, path)
}

pub fn unprepare(path: &Path) -> Result<(), LayerError> {
    path_call("UnprepareLayer", |a| a.unprepare, path)
}

pub fn destroy(path: &Path) -> Result<(), LayerError> {
    path_call("DestroyLayer", |a| a.destroy, path)
}

/// `NameToGuid(folder name)`: the id HCS documents give a layer.
pub fn name_to_guid(name: &str) -> Result<GUID, LayerError> {
    let api = api()?;
    let wide = HSTRING::from(name);
    let mut guid = GUID::zeroed();
    // SAFETY: `wide` is NUL-terminated and `guid` a writable GUID.
    check("NameToGuid", Path::new(name), unsafe {
        (api.name_to_guid)(PCWSTR(wide.as_ptr()), &raw mut guid)
    })?;
    Ok(guid)
}

/// The id HCS documents give the layer in `folder`: `NameToGuid` of the folder's name, in
/// the lowercase form hcsshim writes.
pub fn layer_id(folder: &Path) -> Result<String, LayerError> {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let g = name_to_guid(&name)?;
    let d = g.data4;
    Ok(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g.data1, g.data2, g.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    ))
}

/// Parent descriptors, topmost first, with the paths they point into kept alive alongside.
fn descriptors(parents: &[PathBuf]) -> Result<(Vec<HSTRING>, Vec<LayerDescriptor>), LayerError> {
    let paths: Vec<HSTRING> = parents
        .iter()
        .map(|p| HSTRING::from(p.as_os_str()))
        .collect();
    let mut descriptors = Vec::with_capacity(parents.len());
    for (parent, wide) in parents.iter().zip(&paths) {
        let name = parent
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        descriptors.push(LayerDescriptor {
            id: name_to_guid(&name)?,
            flags: 0,
            path: PCWSTR(wide.as_ptr()),
        });
    }
    Ok((paths, descriptors))
}

/// `PrepareLayer`, one call at a time on the host (see `prepare_gate`).
pub fn prepare(scratch: &Path, parents: &[PathBuf]) -> Result<(), LayerError> {
    let api = api()?;
    let (_paths, descriptors) = descriptors(parents)?;
    let wide = HSTRING::from(scratch.as_os_str());
    let info = driver();
    // SAFETY: the descriptors and the strings they point to live until the call returns.
    let result = super::prepare_gate::one_at_a_time(|| unsafe {
        (api.prepare)(
            &raw const info,
            PCWSTR(wide.as_ptr()),
            descriptors.as_ptr(),
            descriptors.len(),
        )
    })?;
    check("PrepareLayer", scratch, result)
}

/// `CreateSandboxLayer`: a scratch (writable) layer with `sandbox.vhdx` over `parents`.
pub fn create_scratch(scratch: &Path, parents: &[PathBuf]) -> Result<(), LayerError> {
    let api = api()?;
    let (_paths, descriptors) = descriptors(parents)?;
    let wide = HSTRING::from(scratch.as_os_str());
    let info = driver();
    // SAFETY: as for `prepare`; the parent id argument is null (none), as hcsshim passes it.
    check("CreateSandboxLayer", scratch, unsafe {
        (api.create_sandbox)(
            &raw const info,
            PCWSTR(wide.as_ptr()),
            PCWSTR::null(),
            descriptors.as_ptr(),
            descriptors.len(),
        )
    })
}

pub fn expand_scratch(scratch: &Path, size_bytes: u64) -> Result<(), LayerError> {
    let api = api()?;
    let wide = HSTRING::from(scratch.as_os_str());
    let info = driver();
    // SAFETY: `info` and `wide` outlive the call.
    check("ExpandSandboxSize", scratch, unsafe {
        (api.expand)(&raw const info, PCWSTR(wide.as_ptr()), size_bytes)
    })
}

/// Prepares a base layer's `UtilityVM` folder (its `SystemTemplate.vhdx`) for Hyper-V.
pub fn process_utility_vm(utility_vm: &Path) -> Result<(), LayerError> {
    let api = api()?;
    let wide = HSTRING::from(utility_vm.as_os_str());
    // SAFETY: `wide` is NUL-terminated and lives for the call.
    check("ProcessUtilityImage", utility_vm, unsafe {
        (api.process_utility_image)(PCWSTR(wide.as_ptr()))
    })
}

/// Builds a base layer's VHDs and hives (`blank-base.vhdx`, `blank.vhdx`, `Hives`) after
/// its files were written.
pub fn process_base_image(layer: &Path) -> Result<(), LayerError> {
    let api = api()?;
    let wide = HSTRING::from(layer.as_os_str());
    // SAFETY: `wide` is NUL-terminated and lives for the call.
    check("ProcessBaseImage", layer, unsafe {
        (api.process_base_image)(PCWSTR(wide.as_ptr()))
    })
}

/// `ImportLayer`: builds the layer at `layer` from the legacy import folder `source`, over
/// `parents` (topmost first).
pub fn import_layer(layer: &Path, source: &Path, parents: &[PathBuf]) -> Result<(), LayerError> {
    let api = api()?;
    let (_paths, descriptors) = descriptors(parents)?;
    let layer_wide = HSTRING::from(layer.as_os_str());
    let source_wide = HSTRING::from(source.as_os_str());
    let info = driver();
    // SAFETY: the strings and the descriptors (and the paths they point to) outlive the call.
    check("ImportLayer", layer, unsafe {
        (api.import)(
            &raw const info,
            PCWSTR(layer_wide.as_ptr()),
            PCWSTR(source_wide.as_ptr()),
            descriptors.as_ptr(),
            descriptors.len(),
        )
    })
}

/// The activated scratch's volume path (`\\?\Volume{…}\`, trailing backslash kept).
pub fn mount_path(scratch: &Path) -> Result<String, LayerError> {
    let api = api()?;
    let wide = HSTRING::from(scratch.as_os_str());
    let info = driver();
    let mut length = 0usize;
    // SAFETY: the first call only reports the length (in characters) through `length`.
    check("GetLayerMountPath", scratch, unsafe {
        (api.mount_path)(
            &raw const info,
            PCWSTR(wide.as_ptr()),
            &raw mut length,
            PWSTR::null(),
        )
    })?;
    let mut buffer = vec![0u16; length.max(1)];
    // SAFETY: `buffer` holds `length` characters, as the first call asked for.
    check("GetLayerMountPath", scratch, unsafe {
        (api.mount_path)(
            &raw const info,
            PCWSTR(wide.as_ptr()),
            &raw mut length,
            PWSTR(buffer.as_mut_ptr()),
        )
    })?;
    let end = buffer.iter().position(|&c| c == 0).unwrap_or(buffer.len());
    Ok(String::from_utf16_lossy(&buffer[..end]))
}

/// `ActivateLayer` + `PrepareLayer` on the scratch, retried like hcsshim (5 times, 100 ms apart)
/// while the filter reports the device not ready; parents are never activated.
pub fn activate_and_prepare(scratch: &Path, parents: &[PathBuf]) -> Result<String, LayerError> {
    const NOT_READY: [u32; 2] = [0x8007_0015, 0x8007_048F];
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = activate(scratch).and_then(|()| {
            prepare(scratch, parents).inspect_err(|_| {
                let _ = deactivate(scratch);
            })
        });
        match result {
            Err(LayerError::Windows { hresult, .. })
                if NOT_READY.contains(&hresult) && attempt < 5 =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => break other,
        }
    }?;
    mount_path(scratch)
}

// The descriptor layout is part of the ABI.
const _: () = assert!(std::mem::size_of::<LayerDescriptor>() == 32);
const _: () = assert!(std::mem::size_of::<*const c_void>() == 8);
