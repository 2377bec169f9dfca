//! File calls for importing layers: files opened with backup semantics and written with
//! `BackupWrite` (so security descriptors, EAs and reparse points land as the image has
//! them), basic info (times and attributes), the backup and restore privileges, and SDDL.
//! What a layer writes is opened beneath its layer folder by `safe_open`; what is read by
//! name is opened in `\\?\` form. Compiled for both Windows targets; not run on a host yet.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::Path;

use windows::Win32::Foundation::{
    CloseHandle, ERROR_NOT_ALL_ASSIGNED, GetLastError, HANDLE, HLOCAL, LUID, LocalFree,
};
use windows::Win32::Security::Authorization::ConvertStringSecurityDescriptorToSecurityDescriptorW;
use windows::Win32::Security::{
    AdjustTokenPrivileges, GetSecurityDescriptorLength, LUID_AND_ATTRIBUTES, LookupPrivilegeValueW,
    PSECURITY_DESCRIPTOR, SE_PRIVILEGE_ENABLED, TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES,
    TOKEN_QUERY,
};
use windows::Win32::Storage::FileSystem::{
    BackupRead, CreateFileW, FILE_ACCESS_RIGHTS, FILE_BASIC_INFO, FILE_CREATION_DISPOSITION,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_READ, FileBasicInfo,
    GetFileInformationByHandleEx, OPEN_EXISTING, SetFileInformationByHandle,
};
use windows::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows::core::{HSTRING, w};

use super::backup_write::backup_write;
use super::safe_open::{self, Create, Root};
use crate::backup::BasicInfo;
use crate::error::LayerError;

const GENERIC_READ: u32 = 0x8000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const WRITE_DAC: u32 = 0x0004_0000;
const WRITE_OWNER: u32 = 0x0008_0000;
const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
/// `SDDL_REVISION_1`.
const SDDL_REVISION: u32 = 1;

fn failed(call: &'static str, path: &Path, error: &windows::core::Error) -> LayerError {
    LayerError::Windows {
        call,
        path: path.to_owned(),
        hresult: error.code().0.cast_unsigned(),
    }
}

/// Enables `SeBackupPrivilege` and `SeRestorePrivilege` on the process token; `BackupWrite` of
/// security descriptors and owners needs both. Fails when the account does not hold them
/// (pane must run elevated to import layers).
pub fn enable_backup_privileges() -> Result<(), LayerError> {
    let process = Path::new("process token");
    let mut token = HANDLE::default();
    // SAFETY: the pseudo handle of the current process needs no closing; `token` is written.
    unsafe {
        OpenProcessToken(
            GetCurrentProcess(),
            TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY,
            &raw mut token,
        )
    }
    .map_err(|e| failed("OpenProcessToken", process, &e))?;
    let result = (|| {
        for name in [w!("SeBackupPrivilege"), w!("SeRestorePrivilege")] {
            let mut luid = LUID::default();
            // SAFETY: a static privilege name and a writable LUID.
            unsafe { LookupPrivilegeValueW(None, name, &raw mut luid) }
                .map_err(|e| failed("LookupPrivilegeValueW", process, &e))?;
            let privileges = TOKEN_PRIVILEGES {
                PrivilegeCount: 1,
                Privileges: [LUID_AND_ATTRIBUTES {
                    Luid: luid,
                    Attributes: SE_PRIVILEGE_ENABLED,
                }],
            };
            // SAFETY: `token` was opened with TOKEN_ADJUST_PRIVILEGES; `privileges` is a
            // complete TOKEN_PRIVILEGES with one entry; no previous state is asked for.
            unsafe {
                AdjustTokenPrivileges(token, false, Some(&raw const privileges), 0, None, None)
            }
            .map_err(|e| failed("AdjustTokenPrivileges", process, &e))?;
            // The call succeeds even when the privilege is not held; only this tells.
            // SAFETY: reads the calling thread's last-error value.
            if unsafe { GetLastError() } == ERROR_NOT_ALL_ASSIGNED {
                return Err(LayerError::Unavailable(
                    "the account lacks SeBackupPrivilege/SeRestorePrivilege; run pane \
                     elevated (as an administrator or SYSTEM) to import layers"
                        .into(),
                ));
            }
        }
        Ok(())
    })();
    // SAFETY: `token` is a handle this function opened.
    unsafe {
        let _ = CloseHandle(token);
    }
    result
}

/// The binary (self-relative) form of an SDDL security descriptor.
pub fn security_descriptor_from_sddl(sddl: &str) -> Result<Vec<u8>, String> {
    let mut descriptor = PSECURITY_DESCRIPTOR::default();
    let mut size = 0u32;
    // SAFETY: `sddl` is converted to a NUL-terminated string that outlives the call; the
    // descriptor is allocated by the call and freed below.
    unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            &HSTRING::from(sddl),
            SDDL_REVISION,
            &raw mut descriptor,
            Some(&raw mut size),
        )
    }
    .map_err(|e| format!("MSWINDOWS.sd {sddl:?} is not valid SDDL: {e}"))?;
    // SAFETY: the call returned a valid self-relative descriptor.
    let length = unsafe { GetSecurityDescriptorLength(descriptor) } as usize;
    // SAFETY: the descriptor spans `length` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(descriptor.0.cast::<u8>(), length) }.to_vec();
    // SAFETY: the descriptor was allocated with LocalAlloc by the conversion.
    unsafe {
        LocalFree(Some(HLOCAL(descriptor.0)));
    }
    Ok(bytes)
}

/// A file or directory opened with backup semantics, written or read as a backup stream.
#[derive(Debug)]
pub struct BackupFile {
    handle: HANDLE,
    context: *mut c_void,
    /// The context belongs to `BackupRead` (true) or `BackupWrite`; each frees its own.
    reading: bool,
    path: std::path::PathBuf,
}

// SAFETY: the handle and the backup context belong to this value alone; Windows allows
// using them from any thread, one call at a time (`&mut self`).
unsafe impl Send for BackupFile {}

impl BackupFile {
    /// Opens `path` by name, in its `\\?\` form so any depth is reached. Only for pane's own
    /// or a parent layer's files being read; whatever a layer writes goes through
    /// [`BackupFile::beneath`].
    fn open(
        path: &Path,
        access: u32,
        disposition: FILE_CREATION_DISPOSITION,
    ) -> Result<Self, LayerError> {
        let long = crate::paths::extended_length(path)
            .map_err(LayerError::io("opening a layer file", path))?;
        // SAFETY: a NUL-terminated path that outlives the call; no template, no security
        // attributes. OPEN_REPARSE_POINT so a link is opened itself, never its target.
        let handle = unsafe {
            CreateFileW(
                &HSTRING::from(long.as_os_str()),
                access,
                FILE_SHARE_READ,
                None,
                disposition,
                FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                None,
            )
        }
        .map_err(|e| failed("CreateFileW", path, &e))?;
        Ok(Self::from_handle(handle, path.to_owned()))
    }

    fn from_handle(handle: HANDLE, path: std::path::PathBuf) -> Self {
        Self {
            handle,
            context: std::ptr::null_mut(),
            reading: false,
            path,
        }
    }

    /// Opens or creates (per `create`) the layer path `entry` beneath `root` for restoring a
    /// backup stream into it; refused if any directory on the way is a link (`safe_open`).
    pub fn beneath(root: &Root, entry: &str, create: Create) -> Result<Self, LayerError> {
        let access =
            GENERIC_READ | GENERIC_WRITE | WRITE_DAC | WRITE_OWNER | ACCESS_SYSTEM_SECURITY;
        let handle = root.open_beneath(entry, FILE_ACCESS_RIGHTS(access), create)?;
        Ok(Self::from_handle(
            safe_open::into_raw(handle),
            crate::import::disk_path(root.path(), entry),
        ))
    }

    /// Opens an existing file or directory for reading its backup stream.
    pub fn open_for_reading(path: &Path) -> Result<Self, LayerError> {
        Self::open(path, GENERIC_READ | ACCESS_SYSTEM_SECURITY, OPEN_EXISTING)
    }

    pub fn set_basic_info(&self, info: &BasicInfo) -> Result<(), LayerError> {
        let basic = FILE_BASIC_INFO {
            CreationTime: info.creation_time,
            LastAccessTime: info.last_access_time,
            LastWriteTime: info.last_write_time,
            ChangeTime: info.change_time,
            FileAttributes: info.attributes,
        };
        // SAFETY: `basic` is a complete FILE_BASIC_INFO of the size given.
        unsafe {
            SetFileInformationByHandle(
                self.handle,
                FileBasicInfo,
                (&raw const basic).cast(),
                u32::try_from(size_of::<FILE_BASIC_INFO>()).unwrap_or(u32::MAX),
            )
        }
        .map_err(|e| failed("SetFileInformationByHandle", &self.path, &e))
    }

    pub fn basic_info(&self) -> Result<BasicInfo, LayerError> {
        let mut basic = FILE_BASIC_INFO::default();
        // SAFETY: `basic` is a writable FILE_BASIC_INFO of the size given.
        unsafe {
            GetFileInformationByHandleEx(
                self.handle,
                FileBasicInfo,
                (&raw mut basic).cast(),
                u32::try_from(size_of::<FILE_BASIC_INFO>()).unwrap_or(u32::MAX),
            )
        }
        .map_err(|e| failed("GetFileInformationByHandleEx", &self.path, &e))?;
        Ok(BasicInfo {
            creation_time: basic.CreationTime,
            last_access_time: basic.LastAccessTime,
            last_write_time: basic.LastWriteTime,
            change_time: basic.ChangeTime,
            attributes: basic.FileAttributes,
        })
    }

    /// Feeds backup-stream bytes to `BackupWrite`, security included.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(1 << 30)];
            let mut written = 0u32;
            // SAFETY: the handle is open for writing; `context` is this file's backup
            // context (null before the first call, as BackupWrite requires).
            unsafe {
                backup_write(
                    self.handle,
                    chunk,
                    &raw mut written,
                    false,
                    true,
                    &raw mut self.context,
                )
            }
            .map_err(|e| failed("BackupWrite", &self.path, &e))?;
            if written == 0 {
                return Err(LayerError::Stream(format!(
                    "BackupWrite took no bytes for {}",
                    self.path.display()
                )));
            }
            rest = &rest[written as usize..];
        }
        Ok(())
    }

    /// Reads the next bytes of the file's backup stream; 0 at its end.
    pub fn read(&mut self, buffer: &mut [u8]) -> Result<usize, LayerError> {
        self.reading = true;
        let mut read = 0u32;
        let len = buffer.len().min(1 << 30);
        // SAFETY: the handle is open for reading; `context` as for `write`.
        unsafe {
            BackupRead(
                self.handle,
                &mut buffer[..len],
                &raw mut read,
                false,
                true,
                &raw mut self.context,
            )
        }
        .map_err(|e| failed("BackupRead", &self.path, &e))?;
        Ok(read as usize)
    }
}

impl Drop for BackupFile {
    fn drop(&mut self) {
        if !self.context.is_null() {
            let mut done = 0u32;
            // SAFETY: an abort call with its own context releases it; no data moves. A
            // `BackupFile` is only ever read or only ever written, so one call frees it.
            unsafe {
                if self.reading {
                    let _ = BackupRead(
                        self.handle,
                        &mut [],
                        &raw mut done,
                        true,
                        false,
                        &raw mut self.context,
                    );
                } else {
                    let _ = backup_write(
                        self.handle,
                        &[],
                        &raw mut done,
                        true,
                        false,
                        &raw mut self.context,
                    );
                }
            }
        }
        // SAFETY: the handle was opened by `open` and is closed once, here.
        unsafe {
            let _ = CloseHandle(self.handle);
        }
    }
}

/// Copies a file or directory with its security, streams and times to the new layer path
/// `target` beneath `root` (for the utility VM clone: directories, reparse points and files
/// the import rewrites are copied, not linked).
pub fn copy_with_metadata(
    source: &Path,
    root: &Root,
    target: &str,
    directory: bool,
) -> Result<BasicInfo, LayerError> {
    let mut from = BackupFile::open_for_reading(source)?;
    let info = from.basic_info()?;
    let create = if directory {
        Create::Directory
    } else {
        Create::File
    };
    let mut to = BackupFile::beneath(root, target, create)?;
    to.set_basic_info(&info)?;
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        to.write(&buffer[..n])?;
    }
    Ok(info)
}

/// Puts a directory's times and attributes back after its children were written; a path
/// that is gone or no longer a directory (a later entry replaced it) is left alone.
pub fn set_basic_info_of_directory(
    root: &Root,
    entry: &str,
    info: &BasicInfo,
) -> Result<(), LayerError> {
    let handle = match root.open_beneath(
        entry,
        FILE_ACCESS_RIGHTS(GENERIC_READ | GENERIC_WRITE),
        Create::Existing,
    ) {
        Ok(handle) => handle,
        Err(e) if safe_open::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let path = crate::import::disk_path(root.path(), entry);
    if safe_open::attributes_of(&handle, &path)? & crate::import::ATTRIBUTE_DIRECTORY == 0 {
        return Ok(());
    }
    BackupFile::from_handle(safe_open::into_raw(handle), path).set_basic_info(info)
}
