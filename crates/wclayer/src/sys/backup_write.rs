//! The `BackupWrite` that base-layer imports call: kernel32's.
//!
//! A build with the `wine-substitutes` feature (only `.ci/wine-e2e` makes one, for the
//! simulated host) takes it from the simulator's `pane-hostsim-backup.dll` in System32
//! instead: wine 8's `BackupWrite` fails every call with `ERROR_NOT_SUPPORTED`, so a base
//! layer could not be written at all. The substitute has the same signature and contract and
//! decodes the stream strictly; nothing else in pane changes with the feature.
#![allow(unsafe_code)]

#[cfg(not(feature = "wine-substitutes"))]
pub use windows::Win32::Storage::FileSystem::BackupWrite as backup_write;

#[cfg(feature = "wine-substitutes")]
pub use self::substitute::backup_write;

#[cfg(feature = "wine-substitutes")]
mod substitute {
    use std::ffi::c_void;
    use std::sync::OnceLock;

    use windows::Win32::Foundation::{ERROR_PROC_NOT_FOUND, HANDLE};
    use windows::Win32::System::LibraryLoader::{
        GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
    };
    use windows::core::{BOOL, s, w};

    /// `BackupWrite`'s C signature (WinBase.h).
    type BackupWriteFn = unsafe extern "system" fn(
        HANDLE,
        *const u8,
        u32,
        *mut u32,
        BOOL,
        BOOL,
        *mut *mut c_void,
    ) -> BOOL;

    fn resolve() -> windows::core::Result<BackupWriteFn> {
        static FUNCTION: OnceLock<Option<usize>> = OnceLock::new();
        let address = FUNCTION.get_or_init(|| {
            // SAFETY: a constant library name; System32 only, as for vmcompute.dll.
            let module = unsafe {
                LoadLibraryExW(
                    w!("pane-hostsim-backup.dll"),
                    None,
                    LOAD_LIBRARY_SEARCH_SYSTEM32,
                )
            }
            .ok()?;
            // SAFETY: a loaded module and a constant export name; the module stays loaded.
            unsafe { GetProcAddress(module, s!("BackupWrite")) }.map(|f| f as usize)
        });
        match address {
            // SAFETY: the export has BackupWrite's signature (the simulator defines it so).
            Some(address) => Ok(unsafe { std::mem::transmute::<usize, BackupWriteFn>(*address) }),
            None => Err(windows::core::Error::new(
                ERROR_PROC_NOT_FOUND.to_hresult(),
                "this pane was built with wine-substitutes and needs the simulated host's \
                 pane-hostsim-backup.dll in System32",
            )),
        }
    }

    /// As `windows::Win32::Storage::FileSystem::BackupWrite`.
    ///
    /// # Safety
    /// As `BackupWrite`: `file` is open for writing, `context` this file's backup context.
    pub unsafe fn backup_write(
        file: HANDLE,
        buffer: &[u8],
        written: *mut u32,
        abort: bool,
        process_security: bool,
        context: *mut *mut c_void,
    ) -> windows::core::Result<()> {
        let function = resolve()?;
        let length = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        // SAFETY: forwarded from the caller; `length` does not exceed the buffer.
        unsafe {
            function(
                file,
                buffer.as_ptr(),
                length,
                written,
                abort.into(),
                process_security.into(),
                context,
            )
        }
        .ok()
    }
}
