//! A substitute `BackupWrite`, exported for pane builds with `wine-substitutes` (installed
//! as `pane-hostsim-backup.dll`). Wine 8's own fails every call with `ERROR_NOT_SUPPORTED`.
//!
//! Contract as documented for `BackupWrite`: the first call has `*lpContext` null and gets
//! a context back; later calls continue the stream in chunks of any size; a call with
//! `bAbort` frees the context; failures return FALSE with the error in `GetLastError`.
//! Every record is decoded strictly (`backup_stream`); what wine can store is applied
//! (unnamed data, and the security descriptor when `bProcessSecurity` is set) and the rest
//! (alternate streams, EAs, reparse data) is checked and then dropped, as wine's file system
//! has nowhere to keep it. A stream abandoned inside a record is reported on stderr: Windows
//! accepts that silently and leaves a truncated file, which is a writer's defect.
#![allow(unsafe_code)]

use std::ffi::c_void;

use windows::Win32::Foundation::{
    ERROR_INVALID_DATA, ERROR_INVALID_PARAMETER, HANDLE, SetLastError, WIN32_ERROR,
};
use windows::Win32::Security::{
    DACL_SECURITY_INFORMATION, GROUP_SECURITY_INFORMATION, OBJECT_SECURITY_INFORMATION,
    OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SACL_SECURITY_INFORMATION,
    SetKernelObjectSecurity,
};
use windows::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY, GetFileInformationByHandle, WriteFile,
};
use windows::core::BOOL;

use crate::backup_stream::{Decoder, Piece, StreamError};

struct Context {
    decoder: Decoder,
}

fn fail(error: WIN32_ERROR, why: &str) -> BOOL {
    eprintln!("pane-hostsim BackupWrite: {why}");
    // SAFETY: sets this thread's last-error value only.
    unsafe { SetLastError(error) };
    BOOL(0)
}

fn is_directory(file: HANDLE) -> Result<bool, windows::core::Error> {
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: `info` is writable; the handle is the caller's open file.
    unsafe { GetFileInformationByHandle(file, &raw mut info) }?;
    Ok(info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY.0 != 0)
}

fn write_all(file: HANDLE, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let mut written = 0u32;
        // SAFETY: `bytes` outlives the call; no overlapped I/O.
        unsafe { WriteFile(file, Some(bytes), Some(&raw mut written), None) }
            .map_err(|e| StreamError(format!("WriteFile: {e}")))?;
        if written == 0 {
            return Err(StreamError("WriteFile wrote nothing".into()));
        }
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

fn set_security(file: HANDLE, descriptor: &[u8]) -> Result<(), StreamError> {
    let offset = |at: usize| {
        descriptor
            .get(at..at + 4)
            .is_some_and(|b| b.iter().any(|&x| x != 0))
    };
    let control = u16::from_le_bytes([descriptor[2], descriptor[3]]);
    let mut parts = OBJECT_SECURITY_INFORMATION(0);
    if offset(4) {
        parts |= OWNER_SECURITY_INFORMATION;
    }
    if offset(8) {
        parts |= GROUP_SECURITY_INFORMATION;
    }
    if control & 0x0010 != 0 {
        parts |= SACL_SECURITY_INFORMATION;
    }
    if control & 0x0004 != 0 {
        parts |= DACL_SECURITY_INFORMATION;
    }
    // SAFETY: `descriptor` is a checked self-relative descriptor that outlives the call.
    unsafe {
        SetKernelObjectSecurity(
            file,
            parts,
            PSECURITY_DESCRIPTOR(descriptor.as_ptr().cast_mut().cast()),
        )
    }
    .map_err(|e| StreamError(format!("SetKernelObjectSecurity: {e}")))
}

/// # Safety
/// As `BackupWrite`: `buffer` holds `length` bytes, `written` is writable, `context` points
/// to null or to a context this function returned for `file`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn BackupWrite(
    file: HANDLE,
    buffer: *const u8,
    length: u32,
    written: *mut u32,
    abort: BOOL,
    process_security: BOOL,
    context: *mut *mut c_void,
) -> BOOL {
    if context.is_null() || written.is_null() || (buffer.is_null() && length > 0) {
        return fail(ERROR_INVALID_PARAMETER, "a null context, count or buffer");
    }
    // SAFETY: checked non-null; the caller owns the slot.
    let slot = unsafe { &mut *context };
    if abort.as_bool() {
        if !slot.is_null() {
            // SAFETY: a non-null slot holds a context made by `Box::into_raw` below.
            let state = unsafe { Box::from_raw(slot.cast::<Context>()) };
            if let Err(e) = state.decoder.finish() {
                eprintln!("pane-hostsim BackupWrite: abandoned inside a record: {e}");
            }
            *slot = std::ptr::null_mut();
        }
        return BOOL(1);
    }
    if slot.is_null() {
        let directory = match is_directory(file) {
            Ok(directory) => directory,
            Err(e) => {
                return fail(
                    WIN32_ERROR(e.code().0.cast_unsigned() & 0xFFFF),
                    &format!("not an open file: {e}"),
                );
            }
        };
        *slot = Box::into_raw(Box::new(Context {
            decoder: Decoder::new(directory),
        }))
        .cast();
    }
    // SAFETY: the slot holds this file's context, made above or by an earlier call.
    let state = unsafe { &mut *slot.cast::<Context>() };
    let bytes = if length == 0 {
        &[][..]
    } else {
        // SAFETY: the caller passes `length` readable bytes.
        unsafe { std::slice::from_raw_parts(buffer, length as usize) }
    };
    let security = process_security.as_bool();
    let applied = state.decoder.feed(bytes, &mut |piece| match piece {
        Piece::Data(data) => write_all(file, data),
        Piece::Security(descriptor) if security => set_security(file, &descriptor),
        Piece::Security(_)
        | Piece::AlternateStream { .. }
        | Piece::StreamData(_)
        | Piece::ExtendedAttributes(_)
        | Piece::Reparse(_) => Ok(()),
    });
    match applied {
        Ok(()) => {
            // SAFETY: checked non-null above.
            unsafe { written.write(length) };
            BOOL(1)
        }
        Err(e) => fail(ERROR_INVALID_DATA, &e.0),
    }
}
