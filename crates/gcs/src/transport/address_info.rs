//! Hyper-V socket address redirection: host hvsock traffic for a hosted container's
//! system GUID is sent into its utility VM, where the container's silo answers it, so
//! container↔host hvsock services (gMSA's credential guard among them) reach it. A handle
//! to `\\.\HvSocketSystem\AddressInfo\{guid}` registers the entry through an IOCTL and
//! holds it while open (hcsshim's `internal/hvsocket`). Not yet run on a Windows host.
#![allow(unsafe_code)]

use std::io;

use uuid::Uuid;
use windows::Win32::Foundation::{CloseHandle, GENERIC_READ, GENERIC_WRITE, HANDLE};
use windows::Win32::Storage::FileSystem::{
    CREATE_NEW, CreateFileW, FILE_FLAGS_AND_ATTRIBUTES, FILE_SHARE_NONE,
};
use windows::Win32::System::IO::DeviceIoControl;
use windows::core::{GUID, HSTRING};

/// `IOCTL_HVSOCKET_UPDATE_ADDRESS_INFO`.
const UPDATE_ADDRESS_INFO: u32 = 0x0021_C004;
/// The system GUID maps to a compartment of the VM other than its primary one: the silo.
const ADDRESS_FLAG_PASSTHRU: u32 = 0x1;

/// The entry's layout as the hvsocket provider takes it.
#[repr(C)]
struct AddressInfoEntry {
    system_id: GUID,
    virtual_machine_id: GUID,
    silo_id: GUID,
    flags: u32,
}

/// A registered redirect; dropping it closes the handle and so removes the entry.
#[derive(Debug)]
pub struct AddressInfo(HANDLE);

// SAFETY: the handle is owned by this value alone and is only closed, once, on drop.
unsafe impl Send for AddressInfo {}
// SAFETY: no method uses the handle through a shared reference.
unsafe impl Sync for AddressInfo {}

impl Drop for AddressInfo {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the open handle CreateFileW returned, closed only here.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

fn guid(id: Uuid) -> GUID {
    GUID::from_u128(id.as_u128())
}

/// Redirects hvsock traffic for `container` (the hosted container's `SystemGUID`) into
/// the utility VM whose `RuntimeId` is `vm`.
pub fn redirect_container(container: Uuid, vm: Uuid) -> io::Result<AddressInfo> {
    let path = HSTRING::from(format!(r"\\.\HvSocketSystem\AddressInfo\{{{container}}}"));
    // SAFETY: `path` outlives the call; no security attributes or template are passed.
    let handle = unsafe {
        CreateFileW(
            &path,
            GENERIC_READ.0 | GENERIC_WRITE.0,
            FILE_SHARE_NONE,
            None,
            CREATE_NEW,
            FILE_FLAGS_AND_ATTRIBUTES(0),
            None,
        )
    }
    .map_err(io::Error::other)?;
    let registered = AddressInfo(handle);
    let entry = AddressInfoEntry {
        system_id: guid(container),
        virtual_machine_id: guid(vm),
        silo_id: GUID::zeroed(),
        flags: ADDRESS_FLAG_PASSTHRU,
    };
    let size = u32::try_from(std::mem::size_of::<AddressInfoEntry>()).map_err(io::Error::other)?;
    let mut returned = 0u32;
    // SAFETY: the input buffer is `entry`, `size` bytes, alive for the call; there is no
    // output buffer; `returned` is writable; the call is synchronous (no OVERLAPPED).
    unsafe {
        DeviceIoControl(
            registered.0,
            UPDATE_ADDRESS_INFO,
            Some((&raw const entry).cast()),
            size,
            None,
            0,
            Some(&raw mut returned),
            None,
        )
    }
    .map_err(io::Error::other)?;
    Ok(registered)
}
