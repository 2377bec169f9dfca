//! The store root's security on Windows: created with a protected DACL granting only SYSTEM
//! and Administrators full control (inherited by everything beneath), and an existing root
//! checked for its owner and narrowed to that DACL.
#![allow(unsafe_code)]

use std::path::Path;

use windows::Win32::Foundation::{HLOCAL, LocalFree};
use windows::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1,
    SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, IsWellKnownSid,
    OWNER_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    SECURITY_ATTRIBUTES, WinBuiltinAdministratorsSid, WinLocalSystemSid,
};
use windows::Win32::Storage::FileSystem::CreateDirectoryW;
use windows::core::{BOOL, HSTRING, PWSTR};

/// Protected (`P`), inherited by files and folders (`OICI`), full access (`FA`) for SYSTEM
/// and the Administrators group only.
const PRIVATE_DACL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// A security descriptor allocated by Windows, freed on drop.
struct LocalDescriptor(PSECURITY_DESCRIPTOR);

impl Drop for LocalDescriptor {
    fn drop(&mut self) {
        if !self.0.0.is_null() {
            // SAFETY: the descriptor was allocated by the API that returned it, with
            // LocalAlloc, and nothing refers to it after this.
            unsafe {
                let _ = LocalFree(Some(HLOCAL(self.0.0)));
            }
        }
    }
}

fn private_descriptor() -> std::io::Result<LocalDescriptor> {
    let mut descriptor = PSECURITY_DESCRIPTOR::default();
    // SAFETY: the SDDL string outlives the call; the descriptor it allocates is owned by the
    // returned guard.
    unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            &HSTRING::from(PRIVATE_DACL),
            SDDL_REVISION_1,
            &raw mut descriptor,
            None,
        )
    }
    .map_err(std::io::Error::other)?;
    Ok(LocalDescriptor(descriptor))
}

/// Creates `path` with the private DACL from the start, so there is no moment at which it
/// inherits `ProgramData`'s rights.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let descriptor = private_descriptor()?;
    let attributes = SECURITY_ATTRIBUTES {
        nLength: u32::try_from(std::mem::size_of::<SECURITY_ATTRIBUTES>()).unwrap_or(u32::MAX),
        lpSecurityDescriptor: descriptor.0.0,
        bInheritHandle: BOOL(0),
    };
    // SAFETY: the path is a NUL-terminated copy that outlives the call, and the attributes
    // point at a valid descriptor that outlives it too.
    unsafe { CreateDirectoryW(&HSTRING::from(path), Some(&raw const attributes)) }
        .map_err(std::io::Error::other)
}

/// Checks an existing root: refused unless SYSTEM or Administrators own it; its DACL set to
/// the private one if it is anything else. Returns whether it was changed.
pub fn secure_existing_dir(path: &Path) -> Result<bool, String> {
    let name = HSTRING::from(path);
    let mut owner = PSID::default();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut current = PSECURITY_DESCRIPTOR::default();
    // SAFETY: the out-pointers are valid locals; `owner` and `dacl` point into `current`,
    // which is freed by its guard after their last use below.
    let status = unsafe {
        GetNamedSecurityInfoW(
            &name,
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            Some(&raw mut owner),
            None,
            Some(&raw mut dacl),
            None,
            &raw mut current,
        )
    };
    let current = LocalDescriptor(current);
    if status.is_err() {
        return Err(format!(
            "its security cannot be read: {}",
            status.to_hresult().message()
        ));
    }
    // SAFETY: `owner` points into the descriptor `current` holds.
    let trusted = unsafe {
        IsWellKnownSid(owner, WinBuiltinAdministratorsSid).as_bool()
            || IsWellKnownSid(owner, WinLocalSystemSid).as_bool()
    };
    if !trusted {
        return Err(
            "it is owned by an account other than SYSTEM or Administrators, so someone else \
             created it before pane did: delete it as an administrator, or choose another --root"
                .to_owned(),
        );
    }
    if dacl_text(&current)?.as_deref() == Some(PRIVATE_DACL) {
        return Ok(false);
    }
    let wanted = private_descriptor().map_err(|e| e.to_string())?;
    let mut present = BOOL(0);
    let mut defaulted = BOOL(0);
    let mut private_acl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `wanted` is a valid descriptor; the out-pointers are valid locals, and the ACL
    // points into `wanted`, which outlives its use in the next call.
    unsafe {
        GetSecurityDescriptorDacl(
            wanted.0,
            &raw mut present,
            &raw mut private_acl,
            &raw mut defaulted,
        )
    }
    .map_err(|e| e.to_string())?;
    // SAFETY: the path outlives the call, and the ACL is valid (see above).
    let status = unsafe {
        SetNamedSecurityInfoW(
            &name,
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            None,
            None,
            Some(private_acl),
            None,
        )
    };
    if status.is_err() {
        return Err(format!(
            "its access list is looser than pane allows and cannot be narrowed: {}",
            status.to_hresult().message()
        ));
    }
    Ok(true)
}

/// The DACL of `descriptor` as SDDL.
fn dacl_text(descriptor: &LocalDescriptor) -> Result<Option<String>, String> {
    let mut text = PWSTR::null();
    // SAFETY: the descriptor is valid; the string it allocates is freed below after it is
    // copied.
    unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor.0,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &raw mut text,
            None,
        )
    }
    .map_err(|e| e.to_string())?;
    // SAFETY: the call returned a NUL-terminated string.
    let copied = unsafe { text.to_string() }.ok();
    // SAFETY: allocated with LocalAlloc by the conversion; not used after this.
    unsafe {
        let _ = LocalFree(Some(HLOCAL(text.0.cast())));
    }
    Ok(copied)
}
