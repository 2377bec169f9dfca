//! File calls for importing layers: files opened with backup semantics and written with
//! `BackupWrite` (so security descriptors, EAs and reparse points land as the image has
//! them), basic info (times and attributes), the backup and restore privileges, and SDDL.
//! Compiled for both Windows targets; not run on a host yet.
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
    BackupRead, BackupWrite, CREATE_NEW, CreateFileW, FILE_BASIC_INFO, FILE_CREATION_DISPOSITION,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_READ, FileBasicInfo,
    GetFileInformationByHandleEx, OPEN_EXISTING, SetFileInformationByHandle,
};
use windows::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows::core::{HSTRING, w};

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
    fn open(
        path: &Path,
        access: u32,
        disposition: FILE_CREATION_DISPOSITION,
    ) -> Result<Self, LayerError> {
        // `\\?\` form, so a file at any depth opens (a Win32 path stops at MAX_PATH).
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
        Ok(Self {
            handle,
            context: std::ptr::null_mut(),
            reading: false,
            path: path.to_owned(),
        })
    }

    /// Creates `path` (a directory when `directory`) for restoring a backup stream into it.
    pub fn create(path: &Path, directory: bool) -> Result<Self, LayerError> {
        let access =
            GENERIC_READ | GENERIC_WRITE | WRITE_DAC | WRITE_OWNER | ACCESS_SYSTEM_SECURITY;
        if directory {
            std::fs::create_dir(path)
                .map_err(LayerError::io("creating a layer directory", path))?;
            Self::open(path, access, OPEN_EXISTING)
        } else {
            Self::open(path, access, CREATE_NEW)
        }
    }

    /// Opens an existing file or directory for restoring a backup stream over it.
    pub fn open_for_restore(path: &Path) -> Result<Self, LayerError> {
        let access =
            GENERIC_READ | GENERIC_WRITE | WRITE_DAC | WRITE_OWNER | ACCESS_SYSTEM_SECURITY;
        Self::open(path, access, OPEN_EXISTING)
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
                BackupWrite(
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
                    let _ = BackupWrite(
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

/// Copies a file or directory with its security, streams and times (for the utility VM
/// clone: directories, reparse points and files the import rewrites are copied, not linked).
pub fn copy_with_metadata(
    source: &Path,
    target: &Path,
    directory: bool,
) -> Result<BasicInfo, LayerError> {
    let mut from = BackupFile::open_for_reading(source)?;
    let info = from.basic_info()?;
    let mut to = BackupFile::create(target, directory)?;
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

/// Puts a directory's times and attributes back after its children were written.
pub fn set_basic_info_of_directory(path: &Path, info: &BasicInfo) -> Result<(), LayerError> {
    BackupFile::open(path, GENERIC_READ | GENERIC_WRITE, OPEN_EXISTING)?.set_basic_info(info)
}

/// A hard link at `link` to `target`, replacing whatever `link` was (in a WCIFS layer that
/// is usually a placeholder for the parent's file).
pub fn hard_link(target: &Path, link: &Path) -> Result<(), LayerError> {
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LayerError::io("replacing a file with a hard link", link)(e)),
    }
    std::fs::hard_link(target, link).map_err(LayerError::io("creating a hard link", link))
}

/// Removes a file or a whole directory; a missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<(), LayerError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        // A directory symlink or junction is removed as a directory, without following it.
        Ok(meta) if meta.is_symlink() => {
            std::fs::remove_dir(path).or_else(|_| std::fs::remove_file(path))
        }
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(LayerError::io("removing a whited-out path", path))
}
