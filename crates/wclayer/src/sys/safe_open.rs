//! Opening, creating, linking and removing layer paths beneath a root handle without ever
//! passing through a link.
//!
//! Layer import runs with the backup and restore privileges, which bypass file security. A
//! path opened by name is resolved by the object manager, which follows every junction and
//! symbolic link in its middle components, so a layer (or a parent layer) that plants
//! `Files/x` as a junction to `C:\Windows` could have `Files/x/...` written or deleted on the
//! host. hcsshim (`internal/safefile/safeopen.go`) therefore opens every layer path relative
//! to a root handle with `NtCreateFile(RootDirectory, OBJ_DONT_REPARSE)`.
//!
//! pane walks one component at a time instead: each directory is opened relative to the
//! handle of the one before, with `FILE_OPEN_REPARSE_POINT` (so a link is opened as itself,
//! never followed) and `OBJ_DONT_REPARSE` (so the kernel refuses any reparse it would still
//! take, `STATUS_REPARSE_POINT_ENCOUNTERED`), and refused when its attributes carry
//! `FILE_ATTRIBUTE_REPARSE_POINT`, the check hcsshim's `LinkRelative` makes on a link's parent.
//! Only the last component may be a reparse point, and it is then opened (or removed) as
//! itself. Each open carries one name, so no call ever sees a path longer than a component,
//! whatever the depth (`MAX_PATH` does not apply to NT calls).
//!
//! Under wine 8 the opens, links and removals here run (`tests/safe_open.rs`), but wine can
//! make no reparse point, so there the refusal is tested through the walk (`beneath`) alone.
#![allow(unsafe_code)]

use std::os::windows::io::{AsRawHandle as _, FromRawHandle as _, IntoRawHandle as _, OwnedHandle};
use std::path::{Path, PathBuf};

use windows::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows::Wdk::Storage::FileSystem::{
    FILE_CREATE, FILE_DIRECTORY_FILE, FILE_LINK_INFORMATION, FILE_NON_DIRECTORY_FILE, FILE_OPEN,
    FILE_OPEN_FOR_BACKUP_INTENT, FILE_OPEN_REPARSE_POINT, FILE_SYNCHRONOUS_IO_NONALERT,
    FileLinkInformation, NTCREATEFILE_CREATE_DISPOSITION, NTCREATEFILE_CREATE_OPTIONS,
    NtCreateFile, NtSetInformationFile,
};
use windows::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_NO_MORE_FILES, HANDLE, NTSTATUS, OBJ_CASE_INSENSITIVE,
    OBJ_DONT_REPARSE, RtlNtStatusToDosError, STATUS_NOT_A_DIRECTORY,
    STATUS_REPARSE_POINT_ENCOUNTERED, UNICODE_STRING,
};
use windows::Win32::Storage::FileSystem::{
    CreateFileW, DELETE, FILE_ACCESS_RIGHTS, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_READONLY,
    FILE_BASIC_INFO, FILE_DISPOSITION_INFO, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAGS_AND_ATTRIBUTES,
    FILE_FULL_DIR_INFO, FILE_LIST_DIRECTORY, FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TRAVERSE, FILE_WRITE_ATTRIBUTES, FileBasicInfo,
    FileDispositionInfo, FileFullDirectoryInfo, FileFullDirectoryRestartInfo,
    GetFileInformationByHandleEx, OPEN_EXISTING, SYNCHRONIZE, SetFileInformationByHandle,
};
use windows::Win32::System::IO::IO_STATUS_BLOCK;
use windows::core::{HSTRING, PWSTR};

use crate::beneath::{self, Step, Walker};
use crate::error::LayerError;
use crate::import::{ATTRIBUTE_DIRECTORY, ATTRIBUTE_REPARSE_POINT};
use crate::paths::extended_length;

/// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)` and `(ERROR_PATH_NOT_FOUND)`.
const NOT_FOUND: [u32; 2] = [0x8007_0002, 0x8007_0003];

/// A folder (a layer, a parent layer) that layer paths are resolved beneath.
#[derive(Debug)]
pub struct Root {
    handle: OwnedHandle,
    path: PathBuf,
}

/// What is to be made of the last component.
#[derive(Debug, Clone, Copy)]
pub enum Create {
    /// It must exist.
    Existing,
    /// It must not exist; a new file.
    File,
    /// It must not exist; a new directory.
    Directory,
}

fn hresult_of(status: NTSTATUS) -> u32 {
    // SAFETY: a pure status-code translation.
    let win32 = unsafe { RtlNtStatusToDosError(status) };
    0x8007_0000 | (win32 & 0xFFFF)
}

/// Whether an error from this module says the path (or a directory on it) does not exist.
pub fn is_not_found(error: &LayerError) -> bool {
    matches!(error, LayerError::Windows { hresult, .. } if NOT_FOUND.contains(hresult))
}

/// `NtCreateFile` of the single name `name` relative to `parent`. Links are opened as
/// themselves (`FILE_OPEN_REPARSE_POINT`) and the kernel is told never to reparse
/// (`OBJ_DONT_REPARSE`); case-insensitive as Win32's `CreateFileW` is, so a layer path finds
/// the parent layer's `Windows` when it says `windows`.
fn open_relative(
    parent: HANDLE,
    name: &str,
    access: FILE_ACCESS_RIGHTS,
    disposition: NTCREATEFILE_CREATE_DISPOSITION,
    options: NTCREATEFILE_CREATE_OPTIONS,
) -> Result<OwnedHandle, NTSTATUS> {
    let mut wide: Vec<u16> = name.encode_utf16().collect();
    let Ok(length) = u16::try_from(wide.len() * 2) else {
        return Err(windows::Win32::Foundation::STATUS_NAME_TOO_LONG);
    };
    let unicode = UNICODE_STRING {
        Length: length,
        MaximumLength: length,
        Buffer: PWSTR(wide.as_mut_ptr()),
    };
    let object = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(u32::MAX),
        RootDirectory: parent,
        ObjectName: &raw const unicode,
        Attributes: OBJ_DONT_REPARSE | OBJ_CASE_INSENSITIVE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let mut handle = HANDLE::default();
    let mut status_block = IO_STATUS_BLOCK::default();
    // SAFETY: `object`, the name it points to and `status_block` outlive the call; `parent`
    // is an open directory handle; no EA buffer. SYNCHRONIZE with SYNCHRONOUS_IO_NONALERT
    // gives a handle the Win32 calls (BackupWrite, SetFileInformationByHandle) can use.
    let status = unsafe {
        NtCreateFile(
            &raw mut handle,
            access | SYNCHRONIZE,
            &raw const object,
            &raw mut status_block,
            None,
            FILE_FLAGS_AND_ATTRIBUTES(0),
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            disposition,
            options
                | FILE_OPEN_REPARSE_POINT
                | FILE_OPEN_FOR_BACKUP_INTENT
                | FILE_SYNCHRONOUS_IO_NONALERT,
            None,
            0,
        )
    };
    if status.is_ok() {
        // SAFETY: NtCreateFile succeeded, so `handle` is an open handle owned by nobody else.
        Ok(unsafe { OwnedHandle::from_raw_handle(handle.0) })
    } else {
        Err(status)
    }
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    HANDLE(handle.as_raw_handle())
}

/// The attributes of an open file.
pub(crate) fn attributes_of(handle: &OwnedHandle, path: &Path) -> Result<u32, LayerError> {
    let mut basic = FILE_BASIC_INFO::default();
    // SAFETY: `basic` is a writable FILE_BASIC_INFO of the size given.
    unsafe {
        GetFileInformationByHandleEx(
            raw(handle),
            FileBasicInfo,
            (&raw mut basic).cast(),
            u32::try_from(size_of::<FILE_BASIC_INFO>()).unwrap_or(u32::MAX),
        )
    }
    .map_err(|e| windows_failed("GetFileInformationByHandleEx", path, &e))?;
    Ok(basic.FileAttributes)
}

fn windows_failed(call: &'static str, path: &Path, error: &windows::core::Error) -> LayerError {
    LayerError::Windows {
        call,
        path: path.to_owned(),
        hresult: error.code().0.cast_unsigned(),
    }
}

impl Walker for Root {
    type Handle = OwnedHandle;

    fn open_directory(
        &self,
        parent: Option<&OwnedHandle>,
        name: &str,
        walked: &str,
    ) -> Result<Step<OwnedHandle>, LayerError> {
        let parent = parent.map_or_else(|| raw(&self.handle), raw);
        let handle = match open_relative(
            parent,
            name,
            FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_READ_ATTRIBUTES,
            FILE_OPEN,
            FILE_DIRECTORY_FILE,
        ) {
            Ok(handle) => handle,
            Err(STATUS_REPARSE_POINT_ENCOUNTERED) => return Ok(Step::ReparsePoint),
            Err(STATUS_NOT_A_DIRECTORY) => return Ok(Step::NotADirectory),
            Err(other) => return Err(self.nt_failed(walked, other)),
        };
        // Opened as itself, a junction or directory link is a directory with this bit.
        if attributes_of(&handle, &self.shown(walked))? & ATTRIBUTE_REPARSE_POINT != 0 {
            return Ok(Step::ReparsePoint);
        }
        Ok(Step::Directory(handle))
    }
}

impl Root {
    /// Opens the folder `path` (in its `\\?\` form, so it may be of any length). The root
    /// itself is pane's own folder, so it is opened as Win32 would.
    pub fn open(path: &Path) -> Result<Self, LayerError> {
        let long = extended_length(path).map_err(LayerError::io("opening a layer folder", path))?;
        // SAFETY: a NUL-terminated path that outlives the call; no template or security.
        let handle = unsafe {
            CreateFileW(
                &HSTRING::from(long.as_os_str()),
                (FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_READ_ATTRIBUTES | SYNCHRONIZE).0,
                FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                None,
                OPEN_EXISTING,
                FILE_FLAG_BACKUP_SEMANTICS,
                None,
            )
        }
        .map_err(|e| windows_failed("CreateFileW", path, &e))?;
        Ok(Self {
            // SAFETY: CreateFileW succeeded; the handle is owned here alone.
            handle: unsafe { OwnedHandle::from_raw_handle(handle.0) },
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `entry` is on disk, for messages.
    fn shown(&self, entry: &str) -> PathBuf {
        crate::import::disk_path(&self.path, entry)
    }

    fn nt_failed(&self, entry: &str, status: NTSTATUS) -> LayerError {
        LayerError::Windows {
            call: "NtCreateFile",
            path: self.shown(entry),
            hresult: hresult_of(status),
        }
    }

    /// The open parent directory of `entry` (every directory on the way checked) and the
    /// entry's last name.
    fn parent_of<'e>(&self, entry: &'e str) -> Result<(Option<OwnedHandle>, &'e str), LayerError> {
        beneath::parent_of(self, entry)
    }

    /// Opens (or creates, per `create`) the layer path `entry` beneath the root with `access`.
    /// The last component is opened as itself if it is a link.
    pub fn open_beneath(
        &self,
        entry: &str,
        access: FILE_ACCESS_RIGHTS,
        create: Create,
    ) -> Result<OwnedHandle, LayerError> {
        let (parent, last) = self.parent_of(entry)?;
        let (disposition, options) = match create {
            Create::Existing => (FILE_OPEN, NTCREATEFILE_CREATE_OPTIONS(0)),
            Create::File => (FILE_CREATE, FILE_NON_DIRECTORY_FILE),
            Create::Directory => (FILE_CREATE, FILE_DIRECTORY_FILE),
        };
        let parent = parent.as_ref().map_or_else(|| raw(&self.handle), raw);
        open_relative(parent, last, access, disposition, options)
            .map_err(|status| self.nt_failed(entry, status))
    }

    /// Creates the directory `entry`, which must not exist.
    pub fn create_directory(&self, entry: &str) -> Result<(), LayerError> {
        self.open_beneath(entry, FILE_LIST_DIRECTORY, Create::Directory)
            .map(drop)
    }

    /// The attributes of `entry` itself (a link's own, as `symlink_metadata` gives), or
    /// `None` when it does not exist.
    pub fn attributes(&self, entry: &str) -> Result<Option<u32>, LayerError> {
        match self.open_beneath(entry, FILE_READ_ATTRIBUTES, Create::Existing) {
            Ok(handle) => attributes_of(&handle, &self.shown(entry)).map(Some),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes `entry` and, if it is a directory (not a link), everything in it. A missing
    /// entry is not an error; a link is removed itself, never what it points to.
    pub fn remove_all(&self, entry: &str) -> Result<(), LayerError> {
        let opened = self.parent_of(entry).and_then(|(parent, last)| {
            let parent = parent.as_ref().map_or_else(|| raw(&self.handle), raw);
            open_for_removal(parent, last).map_err(|status| self.nt_failed(entry, status))
        });
        match opened {
            Ok(handle) => self.remove_open(&handle, entry),
            // Neither the entry nor (for a whiteout of a parent's path) its directory is there.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the open `handle` (the layer path `entry`) and, if it is a real directory,
    /// what it holds. Children are opened relative to it, so none can lead elsewhere; one
    /// that vanished meanwhile is skipped (its directory then refuses to go if it did not).
    fn remove_open(&self, handle: &OwnedHandle, entry: &str) -> Result<(), LayerError> {
        let shown = self.shown(entry);
        let attributes = attributes_of(handle, &shown)?;
        if attributes & ATTRIBUTE_DIRECTORY != 0 && attributes & ATTRIBUTE_REPARSE_POINT == 0 {
            for child in children(handle, &shown)? {
                let path = format!("{entry}/{child}");
                match open_for_removal(raw(handle), &child) {
                    Ok(opened) => self.remove_open(&opened, &path)?,
                    Err(status) => {
                        let error = self.nt_failed(&path, status);
                        if !is_not_found(&error) {
                            return Err(error);
                        }
                    }
                }
            }
        }
        delete_on_close(handle, attributes, &shown)
    }

    /// A hard link at the layer path `link` (replacing a file there, as a layer's link
    /// replaces the placeholder of the parent's file) to `target` beneath `target_root`.
    /// The link is made by name relative to its open parent directory, so the kernel opens
    /// no further directory to make it (hcsshim's `LinkRelative` does the same).
    pub fn hard_link(
        &self,
        link: &str,
        target_root: &Root,
        target: &str,
    ) -> Result<(), LayerError> {
        let source = target_root.open_beneath(target, FILE_WRITE_ATTRIBUTES, Create::Existing)?;
        let (parent, last) = self.parent_of(link)?;
        let parent = parent.as_ref().map_or_else(|| raw(&self.handle), raw);
        let name: Vec<u16> = last.encode_utf16().collect();
        let name_offset = std::mem::offset_of!(FILE_LINK_INFORMATION, FileName);
        // Never less than the structure itself: wine refuses a shorter buffer (a one-letter
        // name) with STATUS_INVALID_PARAMETER; the name ends at FileNameLength, so the
        // padding is never read as part of it.
        let size = (name_offset + name.len() * 2).max(size_of::<FILE_LINK_INFORMATION>());
        // u64 cells keep the structure's 8-byte alignment (it holds a HANDLE).
        let mut buffer = vec![0u64; size.div_ceil(8)];
        let info = buffer.as_mut_ptr().cast::<FILE_LINK_INFORMATION>();
        // SAFETY: `buffer` is zeroed, aligned for the structure and `size` bytes long, which
        // covers the fixed part and the name written after it.
        unsafe {
            (*info).Anonymous.ReplaceIfExists = true;
            (*info).RootDirectory = parent;
            (*info).FileNameLength = u32::try_from(name.len() * 2).unwrap_or(u32::MAX);
            std::ptr::copy_nonoverlapping(
                name.as_ptr().cast::<u8>(),
                buffer.as_mut_ptr().cast::<u8>().add(name_offset),
                name.len() * 2,
            );
        }
        let mut status_block = IO_STATUS_BLOCK::default();
        // SAFETY: `source` is open; the buffer holds a complete FILE_LINK_INFORMATION of
        // `size` bytes whose root directory handle stays open for the call.
        let status = unsafe {
            NtSetInformationFile(
                raw(&source),
                &raw mut status_block,
                buffer.as_ptr().cast(),
                u32::try_from(size).unwrap_or(u32::MAX),
                FileLinkInformation,
            )
        };
        if status.is_ok() {
            Ok(())
        } else {
            Err(LayerError::Windows {
                call: "NtSetInformationFile(FileLinkInformation)",
                path: self.shown(link),
                hresult: hresult_of(status),
            })
        }
    }
}

/// Opens `name` in `parent` as itself, to delete it (and list it, if a directory).
fn open_for_removal(parent: HANDLE, name: &str) -> Result<OwnedHandle, NTSTATUS> {
    open_relative(
        parent,
        name,
        DELETE | FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES,
        FILE_OPEN,
        NTCREATEFILE_CREATE_OPTIONS(0),
    )
}

/// Hands an owned handle to code that closes it with `CloseHandle` itself.
pub(crate) fn into_raw(handle: OwnedHandle) -> HANDLE {
    HANDLE(handle.into_raw_handle())
}

/// Marks an open file deleted; it goes when the handle closes. A read-only file refuses
/// that, so its read-only bit is cleared first (as hcsshim's `RemoveRelative` does).
fn delete_on_close(handle: &OwnedHandle, attributes: u32, path: &Path) -> Result<(), LayerError> {
    let delete = || {
        let info = FILE_DISPOSITION_INFO { DeleteFile: true };
        // SAFETY: a complete FILE_DISPOSITION_INFO; the handle was opened with DELETE.
        unsafe {
            SetFileInformationByHandle(
                raw(handle),
                FileDispositionInfo,
                (&raw const info).cast(),
                u32::try_from(size_of::<FILE_DISPOSITION_INFO>()).unwrap_or(u32::MAX),
            )
        }
    };
    match delete() {
        Err(e)
            if e.code() == ERROR_ACCESS_DENIED.to_hresult()
                && attributes & FILE_ATTRIBUTE_READONLY.0 != 0 =>
        {
            let mut cleared = attributes & !FILE_ATTRIBUTE_READONLY.0;
            if cleared == 0 {
                cleared = FILE_ATTRIBUTE_NORMAL.0;
            }
            let basic = FILE_BASIC_INFO {
                FileAttributes: cleared,
                ..FILE_BASIC_INFO::default()
            };
            // SAFETY: a complete FILE_BASIC_INFO (zero times are left as they are); the
            // handle was opened with FILE_WRITE_ATTRIBUTES.
            unsafe {
                SetFileInformationByHandle(
                    raw(handle),
                    FileBasicInfo,
                    (&raw const basic).cast(),
                    u32::try_from(size_of::<FILE_BASIC_INFO>()).unwrap_or(u32::MAX),
                )
            }
            .map_err(|e| windows_failed("SetFileInformationByHandle", path, &e))?;
            delete()
        }
        other => other,
    }
    .map_err(|e| windows_failed("SetFileInformationByHandle(FileDispositionInfo)", path, &e))
}

/// The names in an open directory, without `.` and `..`.
fn children(directory: &OwnedHandle, path: &Path) -> Result<Vec<String>, LayerError> {
    let name_offset = std::mem::offset_of!(FILE_FULL_DIR_INFO, FileName);
    let mut names = Vec::new();
    // u64 cells: the entries are 8-byte aligned.
    let mut buffer = vec![0u64; 8 << 10];
    let mut class = FileFullDirectoryRestartInfo;
    loop {
        let bytes = buffer.len() * 8;
        // SAFETY: `buffer` is writable for `bytes` bytes; the handle was opened with
        // FILE_LIST_DIRECTORY.
        let result = unsafe {
            GetFileInformationByHandleEx(
                raw(directory),
                class,
                buffer.as_mut_ptr().cast(),
                u32::try_from(bytes).unwrap_or(u32::MAX),
            )
        };
        class = FileFullDirectoryInfo;
        match result {
            Ok(()) => {}
            Err(e) if e.code() == ERROR_NO_MORE_FILES.to_hresult() => break,
            Err(e) => return Err(windows_failed("GetFileInformationByHandleEx", path, &e)),
        }
        // SAFETY: plain bytes of the buffer the call filled.
        let data = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), bytes) };
        let mut at = 0usize;
        loop {
            let word = |offset: usize| {
                data.get(at + offset..at + offset + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
            };
            let length_offset = std::mem::offset_of!(FILE_FULL_DIR_INFO, FileNameLength);
            let (Some(next), Some(length)) = (word(0), word(length_offset)) else {
                return Err(LayerError::Stream(format!(
                    "a malformed directory listing of {}",
                    path.display()
                )));
            };
            let start = at + name_offset;
            let units: Vec<u16> = data
                .get(start..start + length as usize)
                .unwrap_or_default()
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let name = String::from_utf16_lossy(&units);
            if name != "." && name != ".." {
                names.push(name);
            }
            if next == 0 {
                break;
            }
            at += next as usize;
        }
    }
    Ok(names)
}
