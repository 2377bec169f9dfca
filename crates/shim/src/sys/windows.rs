//! The shim's named pipe on Windows, created with [`crate::endpoint::PIPE_SDDL`] as its
//! security descriptor, so only SYSTEM, Administrators and its creator can open it.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::Path;
use std::time::Duration;

use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};
use windows::Win32::Foundation::{HLOCAL, LocalFree};
use windows::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
use windows::core::HSTRING;

/// `ERROR_PIPE_BUSY`: every instance is taken; the next one comes soon.
const ERROR_PIPE_BUSY: i32 = 231;
/// How long a client waits for a free instance.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates an instance of pipe `name`; the first one must be the first on the host, so a
/// second shim of one container, or a squatter, is refused.
fn create(name: &str, first: bool) -> std::io::Result<NamedPipeServer> {
    let sddl = HSTRING::from(crate::endpoint::PIPE_SDDL);
    let mut descriptor = PSECURITY_DESCRIPTOR::default();
    // SAFETY: `sddl` is a NUL-terminated wide string alive for the call; `descriptor` is
    // writable and receives a LocalAlloc'd descriptor, freed below.
    unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            &sddl,
            SDDL_REVISION_1,
            &raw mut descriptor,
            None,
        )
    }
    .map_err(|e| std::io::Error::from_raw_os_error(e.code().0))?;
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: u32::try_from(std::mem::size_of::<SECURITY_ATTRIBUTES>()).unwrap_or(0),
        lpSecurityDescriptor: descriptor.0,
        bInheritHandle: false.into(),
    };
    // SAFETY: `attributes` and the descriptor it points to outlive the call, which copies
    // the descriptor into the pipe.
    let created = unsafe {
        ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .create_with_security_attributes_raw(name, (&raw mut attributes).cast::<c_void>())
    };
    // SAFETY: the descriptor was allocated by the conversion above and is freed once.
    unsafe {
        let _ = LocalFree(Some(HLOCAL(descriptor.0)));
    }
    created
}

/// A shim's pipe: one instance waits for the next client while others are served.
#[derive(Debug)]
pub struct Listener {
    name: String,
    next: tokio::sync::Mutex<NamedPipeServer>,
}

impl Listener {
    pub fn bind(path: &Path) -> std::io::Result<Self> {
        let name = path.to_string_lossy().into_owned();
        let first = create(&name, true)?;
        Ok(Self {
            name,
            next: tokio::sync::Mutex::new(first),
        })
    }

    /// The next client. A client that went before the connect completed
    /// (`ERROR_NO_DATA`) costs that instance: it is replaced, and the error returned for
    /// the caller to go on accepting.
    pub async fn accept(&self) -> std::io::Result<NamedPipeServer> {
        let mut next = self.next.lock().await;
        let connected = next.connect().await;
        let waiting = create(&self.name, false)?;
        let served = std::mem::replace(&mut *next, waiting);
        connected.map(|()| served)
    }
}

pub async fn connect(path: &Path) -> std::io::Result<NamedPipeClient> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        match ClientOptions::new().open(path) {
            Ok(client) => return Ok(client),
            Err(e)
                if e.raw_os_error() == Some(ERROR_PIPE_BUSY)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
