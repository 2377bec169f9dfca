//! Where a container's shim listens, and who may connect.
//!
//! - Unix: a socket `<root>/shims/<id>.sock`, in a directory of mode 0700, the socket
//!   itself 0600: only the user that runs pane (root) reaches it.
//! - Windows: the named pipe `\\.\pipe\pane-shim-<root tag>-<id>`, created with the
//!   security descriptor [`PIPE_SDDL`]: full access for SYSTEM, the Administrators group
//!   and the pipe's owner, nobody else. The root tag keeps two roots' `web-1` apart (pipe
//!   names are host-wide).

use std::path::{Path, PathBuf};

/// `D:P` protected DACL; `SY` the local system, `BA` Administrators, `OW` the owner rights of
/// the pipe, each `GA` generic all. The pipe's owner is the creating token's default owner:
/// for an elevated administrator that is the Administrators group, so in practice the
/// pipe is SYSTEM's and the administrators'. (Generic all includes creating instances;
/// every grantee is an administrator already.)
pub const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)";

/// The socket or pipe name for container `id` under `root`.
pub fn endpoint(root: &Path, id: &str) -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(format!(r"\\.\pipe\pane-shim-{:016x}-{id}", root_tag(root)))
    } else {
        root.join("shims").join(format!("{id}.sock"))
    }
}

/// A stable tag of the root's path (FNV-1a), so pipe names stay short. The path is made
/// absolute and its separators and case evened out first, so `C:\pane\` and `c:/pane`
/// name one pipe, as they name one store.
fn root_tag(root: &Path) -> u64 {
    let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
    absolute
        .to_string_lossy()
        .replace('/', "\\")
        .trim_end_matches('\\')
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(unix)]
pub use unix::{Listener, connect};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use tokio::net::{UnixListener, UnixStream};

    use std::os::unix::fs::MetadataExt;

    /// A shim's listening socket; the socket file goes with it (if it is still this one).
    #[derive(Debug)]
    pub struct Listener {
        socket: UnixListener,
        path: PathBuf,
        /// The socket file's identity, so a drop never removes another shim's socket.
        inode: (u64, u64),
    }

    impl Listener {
        /// Listens on `path`. A socket left by a dead shim is replaced; one whose shim
        /// still answers is not (`AddrInUse`): two shims of one container must not be.
        pub fn bind(path: &Path) -> std::io::Result<Self> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("a live shim already listens on {}", path.display()),
                ));
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let socket = UnixListener::bind(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            let metadata = std::fs::symlink_metadata(path)?;
            Ok(Self {
                socket,
                path: path.to_owned(),
                inode: (metadata.dev(), metadata.ino()),
            })
        }

        pub async fn accept(&self) -> std::io::Result<UnixStream> {
            self.socket.accept().await.map(|(stream, _)| stream)
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let ours = std::fs::symlink_metadata(&self.path)
                .is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
            if ours {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    pub async fn connect(path: &Path) -> std::io::Result<UnixStream> {
        UnixStream::connect(path).await
    }
}

#[cfg(windows)]
pub use crate::sys::windows::{Listener, connect};
