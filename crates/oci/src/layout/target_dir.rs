//! A directory of a layout being written, held open while it is written.
//!
//! On Unix every file is created, read and renamed relative to the directory's handle, and
//! every directory is opened with `O_NOFOLLOW`, so a directory swapped for a link after it
//! was checked (by anyone who can write to the target's parent) cannot send a write
//! elsewhere: the handle still names the directory that was checked.
//!
//! On Windows the same checks are made on paths (links refused, files created exclusively
//! and opened without following reparse points), which leaves the window between a check
//! and the write that follows; closing it needs `NtCreateFile` relative to a directory
//! handle, as hcsshim's `safefile` does for layers.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::LayoutError;
#[cfg(not(unix))]
use super::files::{file_kind, open_regular};

#[derive(Debug)]
pub(super) struct TargetDir {
    path: PathBuf,
    #[cfg(unix)]
    handle: std::os::fd::OwnedFd,
}

fn failed(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError {
    let path = path.to_owned();
    move |source| LayoutError::Read { path, source }
}

impl TargetDir {
    /// Where `name` in this directory is, for messages.
    pub(super) fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

#[cfg(unix)]
mod platform {
    use std::os::fd::AsFd as _;

    use nix::errno::Errno;
    use nix::fcntl::{OFlag, openat, renameat};
    use nix::sys::stat::{Mode, fstat, mkdirat};

    use super::{LayoutError, OsStr, Path, TargetDir, failed};

    const DIRECTORY: OFlag = OFlag::O_RDONLY
        .union(OFlag::O_DIRECTORY)
        .union(OFlag::O_NOFOLLOW)
        .union(OFlag::O_CLOEXEC);

    fn io(errno: Errno) -> std::io::Error {
        std::io::Error::from(errno)
    }

    /// What stands at a name that should have been a directory, for the refusal.
    fn obstruction(path: &Path) -> LayoutError {
        let what = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => "a symbolic link",
            Ok(m) if m.is_file() => "a file",
            _ => "not a directory",
        };
        LayoutError::Obstructed {
            path: path.to_owned(),
            problem: format!("it is {what}, not a directory; pane does not write through links"),
        }
    }

    impl TargetDir {
        /// Creates `path` (its parents are the caller's choice) or opens the directory there;
        /// a link in its place is refused.
        pub(in super::super) fn open_root(path: &Path) -> Result<Self, LayoutError> {
            match std::fs::create_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(path)(e)),
            }
            let handle = nix::fcntl::open(path, DIRECTORY, Mode::empty()).map_err(|e| {
                if matches!(e, Errno::ELOOP | Errno::ENOTDIR) {
                    obstruction(path)
                } else {
                    failed(path)(io(e))
                }
            })?;
            Ok(Self {
                path: path.to_owned(),
                handle,
            })
        }

        /// The directory `name` in this one, made if missing.
        pub(in super::super) fn subdir(&self, name: &str) -> Result<Self, LayoutError> {
            let path = self.path.join(name);
            match mkdirat(self.handle.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(failed(&path)(io(e))),
            }
            let handle =
                openat(self.handle.as_fd(), name, DIRECTORY, Mode::empty()).map_err(|e| {
                    if matches!(e, Errno::ELOOP | Errno::ENOTDIR) {
                        obstruction(&path)
                    } else {
                        failed(&path)(io(e))
                    }
                })?;
            Ok(Self { path, handle })
        }

        /// Creates `name` exclusively: an existing name, link or not, is `AlreadyExists`.
        pub(in super::super) fn create_new(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            openat(
                self.handle.as_fd(),
                name,
                flags,
                Mode::from_bits_truncate(0o644),
            )
            .map(std::fs::File::from)
            .map_err(io)
        }

        /// Opens the regular file `name` to read, or `None` when there is nothing there;
        /// a link, FIFO or device is refused (never followed, never waited on).
        pub(in super::super) fn open_regular(
            &self,
            name: &str,
        ) -> Result<Option<std::fs::File>, LayoutError> {
            let path = self.path.join(name);
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
            let handle = match openat(self.handle.as_fd(), name, flags, Mode::empty()) {
                Ok(handle) => handle,
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP) => {
                    return Err(LayoutError::NotRegular {
                        path,
                        kind: "a symbolic link",
                    });
                }
                Err(e) => return Err(failed(&path)(io(e))),
            };
            let stat = fstat(&handle).map_err(|e| failed(&path)(io(e)))?;
            let kind = nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode)
                & nix::sys::stat::SFlag::S_IFMT;
            if kind != nix::sys::stat::SFlag::S_IFREG {
                let kind = if kind == nix::sys::stat::SFlag::S_IFDIR {
                    "a directory"
                } else {
                    "a FIFO, socket or device"
                };
                return Err(LayoutError::NotRegular { path, kind });
            }
            Ok(Some(std::fs::File::from(handle)))
        }

        /// Renames `from` over `to`, both in this directory (a rename replaces a link
        /// itself, never what it points to).
        pub(in super::super) fn rename(&self, from: &OsStr, to: &str) -> std::io::Result<()> {
            renameat(self.handle.as_fd(), from, self.handle.as_fd(), to).map_err(io)
        }

        /// Removes `name` from this directory (a temporary that could not be renamed).
        pub(in super::super) fn remove(&self, name: &OsStr) {
            let _ = nix::unistd::unlinkat(
                self.handle.as_fd(),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

#[cfg(not(unix))]
mod platform {
    use super::{LayoutError, OsStr, Path, TargetDir, failed, file_kind, open_regular};

    fn real_directory(path: &Path) -> Result<(), LayoutError> {
        match std::fs::create_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(path)(e)),
        }
        let metadata = std::fs::symlink_metadata(path).map_err(failed(path))?;
        if metadata.is_dir() {
            Ok(())
        } else {
            Err(LayoutError::Obstructed {
                path: path.to_owned(),
                problem: format!(
                    "it is {}, not a directory; pane does not write through links",
                    file_kind(metadata.file_type())
                ),
            })
        }
    }

    impl TargetDir {
        pub(in super::super) fn open_root(path: &Path) -> Result<Self, LayoutError> {
            real_directory(path)?;
            Ok(Self {
                path: path.to_owned(),
            })
        }

        pub(in super::super) fn subdir(&self, name: &str) -> Result<Self, LayoutError> {
            let path = self.path.join(name);
            real_directory(&path)?;
            Ok(Self { path })
        }

        pub(in super::super) fn create_new(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.path.join(name))
        }

        pub(in super::super) fn open_regular(
            &self,
            name: &str,
        ) -> Result<Option<std::fs::File>, LayoutError> {
            let path = self.path.join(name);
            match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                _ => open_regular(&path).map(Some),
            }
        }

        pub(in super::super) fn rename(&self, from: &OsStr, to: &str) -> std::io::Result<()> {
            std::fs::rename(self.path.join(from), self.path.join(to))
        }

        pub(in super::super) fn remove(&self, name: &OsStr) {
            let _ = std::fs::remove_file(self.path.join(name));
        }
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_swapped_for_a_link_after_it_was_opened_is_still_the_one_written() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let root = TargetDir::open_root(&dir.path().join("layout")).unwrap();
        let blobs = root.subdir("blobs").unwrap();
        // Someone who can write to the layout swaps `blobs` for a link meanwhile.
        let layout = dir.path().join("layout");
        std::fs::rename(layout.join("blobs"), layout.join("checked")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, layout.join("blobs")).unwrap();

        drop(blobs.create_new(OsStr::new("x")).unwrap());
        assert!(layout.join("checked/x").is_file());
        assert!(!elsewhere.join("x").exists(), "the write followed the link");
        // Opened afresh, the link is refused.
        let error = root.subdir("blobs").unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = TargetDir::open_root(dir.path()).unwrap();
        std::fs::write(dir.path().join("target"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(root.open_regular("missing").unwrap().is_none());
        assert!(root.open_regular("target").unwrap().is_some());
        for (name, kind) in [("link", "symbolic link"), ("fifo", "FIFO")] {
            let error = root.open_regular(name).unwrap_err().to_string();
            assert!(error.contains(kind), "{name}: {error}");
        }
        let error = TargetDir::open_root(&dir.path().join("link"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("symbolic link") || error.contains("not a directory"),
            "{error}"
        );
    }
}
