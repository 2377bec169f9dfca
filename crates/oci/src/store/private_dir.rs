//! The store root is private to the account that runs pane: anyone who can write to it can
//! plant a blob under a digest pane will later take as "already present", and a store
//! others can read leaks every image pulled with credentials.
//!
//! On Unix the root is mode 0700 and owned by the current user. On Windows its DACL is
//! protected (no inheritance from `ProgramData`, which lets users create folders) and grants
//! only SYSTEM and Administrators, as Docker secures `C:\ProgramData\docker`; it must be
//! owned by one of them. A root that exists with looser rights is repaired when it is ours
//! and refused when it is someone else's.

use std::path::Path;

use super::StoreError;

pub(super) fn ensure(root: &Path) -> Result<(), StoreError> {
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
            return platform::create(root).map_err(|source| StoreError::Io {
                context: "creating the store",
                path: root.to_owned(),
                source,
            });
        }
        Err(source) => {
            return Err(StoreError::Io {
                context: "inspecting the store",
                path: root.to_owned(),
                source,
            });
        }
    }
    match platform::secure_existing(root).map_err(unsafe_store)? {
        Outcome::Private => {}
        Outcome::Repaired(what) => {
            tracing::warn!(store = %root.display(), "the store's access rights were looser than pane allows; {what}");
        }
    }
    Ok(())
}

pub(super) enum Outcome {
    Private,
    /// What was changed.
    Repaired(String),
}

#[cfg(unix)]
mod platform {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    use std::path::Path;

    use super::Outcome;

    pub(super) fn create(root: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new().mode(0o700).create(root)?;
        // The umask may have narrowed the mode further, never widened it; set it exactly.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
    }

    pub(super) fn secure_existing(root: &Path) -> Result<Outcome, String> {
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
        let shared = mode & 0o077 != 0;
        if !shared {
            return Ok(Outcome::Private);
        }
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("its mode is {mode:o} and it cannot be narrowed: {e}"))?;
        Ok(Outcome::Repaired(format!("its mode was {mode:o}, now 700")))
    }
}

#[cfg(windows)]
mod platform {
    use std::path::Path;

    use super::Outcome;

    pub(super) fn create(root: &Path) -> std::io::Result<()> {
        crate::sys::windows::create_private_dir(root)
    }

    pub(super) fn secure_existing(root: &Path) -> Result<Outcome, String> {
        crate::sys::windows::secure_existing_dir(root).map(|repaired| {
            if repaired {
                Outcome::Repaired(
                    "its access list now grants only SYSTEM and Administrators".to_owned(),
                )
            } else {
                Outcome::Private
            }
        })
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_new_store_is_private_and_a_loose_one_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        ensure(&root).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn a_link_in_place_of_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let root = dir.path().join("content");
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        let error = ensure(&root).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }
}
