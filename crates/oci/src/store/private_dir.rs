//! The store root is private to the account that runs pane: anyone who can write to it can
//! plant a blob under a digest pane will later take as "already present", or a layer under
//! a chain ID, and a store others can read leaks every image pulled with credentials.
//!
//! On Unix the root is mode 0700 and owned by the current user. On Windows its DACL is
//! protected (no inheritance from `ProgramData`, which lets users create folders) and grants
//! only SYSTEM and Administrators, as Docker secures `C:\ProgramData\docker`; it must be
//! owned by one of them or by the account running pane.
//!
//! A root that exists with looser rights may already hold what someone else put there, so
//! narrowing its rights is not enough. It is refused when others could write to it and it
//! is not empty (a planted entry, or one of pane's renamed onto another name, cannot be told
//! from pane's own), and otherwise narrowed only after every entry beneath it is found to
//! belong to pane's account.

use std::path::Path;

use super::StoreError;

/// Secures `root` (pane's `--root`, or a store inside it) before anything is created in it:
/// creates it private, or checks and narrows an existing one. Call it before the first
/// child of `root` is made.
pub fn secure_root(root: &Path) -> Result<(), StoreError> {
    let unsafe_store = |problem: String| StoreError::Unsafe {
        path: root.to_owned(),
        problem,
    };
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            context: "creating the store",
            path: parent.to_owned(),
            source,
        })?;
    }
    match std::fs::symlink_metadata(root) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(unsafe_store(
                "it is a symbolic link; make it a directory of its own".to_owned(),
            ));
        }
        Ok(metadata) if !metadata.is_dir() => {
            return Err(unsafe_store("it is not a directory".to_owned()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match platform::create(root) {
                Ok(()) => Ok(()),
                // Another pane process created it first: check it like any existing root.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => secure_existing(root),
                Err(source) => Err(StoreError::Io {
                    context: "creating the store",
                    path: root.to_owned(),
                    source,
                }),
            };
        }
        Err(source) => {
            return Err(StoreError::Io {
                context: "inspecting the store",
                path: root.to_owned(),
                source,
            });
        }
    }
    secure_existing(root)
}

fn secure_existing(root: &Path) -> Result<(), StoreError> {
    let unsafe_store = |problem: String| StoreError::Unsafe {
        path: root.to_owned(),
        problem,
    };
    let access = platform::inspect(root).map_err(unsafe_store)?;
    let Access::Loose {
        writable_by_others,
        description,
    } = access
    else {
        return Ok(());
    };
    let empty = std::fs::read_dir(root)
        .map_err(|e| unsafe_store(format!("it cannot be listed: {e}")))?
        .next()
        .is_none();
    if !empty {
        if writable_by_others {
            return Err(unsafe_store(format!(
                "{description}, so other accounts could have put files in it or renamed \
                 pane's; pane cannot tell which entries are its own. Check its contents, then \
                 narrow its rights yourself ({}), or remove it and pull again",
                platform::NARROW_HINT
            )));
        }
        check_entries(root).map_err(unsafe_store)?;
    }
    let repaired = platform::narrow(root).map_err(unsafe_store)?;
    tracing::warn!(store = %root.display(), "the store's access rights were looser than pane allows ({description}); {repaired}");
    Ok(())
}

/// Refuses the first entry beneath `root` that another account owns (or, on Unix, a
/// directory others can write to). Links are checked, never followed.
fn check_entries(root: &Path) -> Result<(), String> {
    let mut pending = vec![root.to_owned()];
    let vanished = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    while let Some(dir) = pending.pop() {
        // Other pane processes may be writing: what vanishes while it is walked is skipped.
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            if let Some(problem) = platform::foreign_entry(&path)? {
                return Err(format!(
                    "{}: {problem}, and the store was open to other accounts, so someone else \
                     may have put it there: remove it (or the whole store) and run again",
                    path.display()
                ));
            }
            if kind.is_dir() && platform::descend(root, &path) {
                pending.push(path);
            }
        }
    }
    Ok(())
}

/// How an existing root's rights compare with the private ones.
pub(super) enum Access {
    Private,
    Loose {
        /// Whether accounts other than pane's could create, delete or rename entries.
        writable_by_others: bool,
        /// What is loose, for the user.
        description: String,
    },
}

#[cfg(unix)]
mod platform {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    use std::path::Path;

    use super::Access;

    pub(super) const NARROW_HINT: &str = "chmod 700";

    pub(super) fn create(root: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new().mode(0o700).create(root)?;
        // The umask may have narrowed the mode further, never widened it; set it exactly.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
    }

    pub(super) fn inspect(root: &Path) -> Result<Access, String> {
        let metadata = std::fs::metadata(root).map_err(|e| e.to_string())?;
        let me = nix::unistd::geteuid().as_raw();
        if metadata.uid() != me {
            return Err(format!(
                "it belongs to user {}, not to the user running pane ({me}); someone else \
                 created it: remove it, or choose another --root",
                metadata.uid()
            ));
        }
        let mode = metadata.mode() & 0o7777;
        let others = mode & 0o077;
        if others == 0 {
            return Ok(Access::Private);
        }
        Ok(Access::Loose {
            writable_by_others: mode & 0o022 != 0,
            description: format!("its mode is {mode:o}"),
        })
    }

    pub(super) fn narrow(root: &Path) -> Result<String, String> {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("its mode cannot be narrowed: {e}"))?;
        Ok("its mode is now 700".to_owned())
    }

    /// Why `path` is not pane's: another owner, or a directory others may write into.
    pub(super) fn foreign_entry(path: &Path) -> Result<Option<String>, String> {
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            // Gone since it was listed (a writer's temporary, renamed): nothing to check.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let me = nix::unistd::geteuid().as_raw();
        if metadata.uid() != me {
            return Ok(Some(format!("it belongs to user {}", metadata.uid())));
        }
        let mode = metadata.mode() & 0o7777;
        if metadata.is_dir() && mode & 0o022 != 0 {
            return Ok(Some(format!(
                "it is a directory others can write to (mode {mode:o})"
            )));
        }
        Ok(None)
    }

    pub(super) fn descend(_root: &Path, _dir: &Path) -> bool {
        true
    }
}

#[cfg(windows)]
mod platform {
    use std::path::Path;

    use super::Access;

    pub(super) const NARROW_HINT: &str = "icacls <root> /inheritance:r /grant:r \
        *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F";

    pub(super) fn create(root: &Path) -> std::io::Result<()> {
        crate::sys::windows::create_private_dir(root)
    }

    pub(super) fn inspect(root: &Path) -> Result<Access, String> {
        crate::sys::windows::check_owner(root)?;
        if crate::sys::windows::has_private_dacl(root)? {
            return Ok(Access::Private);
        }
        // Which accounts a DACL lets write is not read from its entries here, so an existing
        // root is only narrowed after its entries' owners were checked. Under wine, which
        // never keeps a DACL, every open takes this path (see sys::windows' tests).
        Ok(Access::Loose {
            writable_by_others: false,
            description: "its access list grants more than SYSTEM and Administrators".to_owned(),
        })
    }

    pub(super) fn narrow(root: &Path) -> Result<String, String> {
        crate::sys::windows::set_private_dacl(root)?;
        Ok("its access list now grants only SYSTEM and Administrators".to_owned())
    }

    #[allow(clippy::unnecessary_wraps)] // the Unix twin's signature: its reads can fail
    pub(super) fn foreign_entry(path: &Path) -> Result<Option<String>, String> {
        // An entry whose owner cannot be read is refused like a foreign one.
        match crate::sys::windows::check_owner(path) {
            Ok(()) => Ok(None),
            // Gone since it was listed (a writer's temporary, renamed): nothing to check.
            Err(_) if std::fs::symlink_metadata(path).is_err() => Ok(None),
            Err(problem) => Ok(Some(problem)),
        }
    }

    /// Imported layer folders are entered no further than their own folder: the files in
    /// them carry the owners the image's security descriptors name (`BackupWrite` restores
    /// them), which says nothing about who put them there.
    pub(super) fn descend(root: &Path, dir: &Path) -> bool {
        dir.parent() != Some(root.join("wclayers").as_path())
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_store_is_private_and_an_empty_loose_one_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        secure_root(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        set_mode(&root, 0o777);
        secure_root(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn a_store_others_could_write_to_is_refused_once_it_holds_anything() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pane");
        secure_root(&root).unwrap();
        std::fs::create_dir_all(root.join("layers/planted")).unwrap();
        set_mode(&root, 0o777);
        let error = secure_root(&root).unwrap_err().to_string();
        assert!(error.contains("mode is 777"), "{error}");
        assert!(error.contains("chmod 700"), "{error}");
        // Refused, not repaired: the user decides once the contents are checked.
        assert_eq!(mode(&root), 0o777);
    }

    #[test]
    fn a_readable_store_is_narrowed_unless_a_directory_in_it_was_open_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pane");
        secure_root(&root).unwrap();
        let shared = root.join("layers/shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(root.join("layers/file"), b"x").unwrap();
        set_mode(&root, 0o755);
        set_mode(&shared, 0o777);
        let error = secure_root(&root).unwrap_err().to_string();
        assert!(error.contains("layers/shared"), "{error}");
        assert!(error.contains("others can write to"), "{error}");
        assert_eq!(mode(&root), 0o755);

        set_mode(&shared, 0o755);
        secure_root(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn a_link_in_place_of_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let root = dir.path().join("content");
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        let error = secure_root(&root).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }
}
