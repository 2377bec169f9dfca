//! What only the host's file system can say about a container's inputs: whether a mount
//! source is a file or a folder, where its links lead, and whether a layer carries a utility
//! VM. Behind [`HostFiles`], so a plan made off the host and a create on it ask the same
//! questions and build the same documents from the answers.

use pane_hcs::doc::SourceKind;

/// A mount source as the host resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSource {
    /// The path with every link in it followed (process isolation maps this one).
    pub resolved: String,
    pub kind: SourceKind,
}

/// The host file-system facts the documents depend on.
pub trait HostFiles: Send + Sync + std::fmt::Debug {
    /// What `path`, a mount source, is. An error names what is wrong with it.
    fn mount_source(&self, path: &str) -> Result<MountSource, String>;
    /// Whether the layer folder `layer` carries a `UtilityVM` folder to boot from.
    fn has_utility_vm(&self, layer: &str) -> bool;
}

/// This machine's file system. A source that is not there is an error, as on Windows
/// (where HCS would fail the create on it later and less clearly).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFiles;

impl HostFiles for LocalFiles {
    fn mount_source(&self, path: &str) -> Result<MountSource, String> {
        match std::fs::metadata(path) {
            Ok(metadata) => {
                let resolved = std::fs::canonicalize(path)
                    .map(|p| normalize_final_path(&p.to_string_lossy()))
                    .map_err(|e| format!("cannot resolve {path}: {e}"))?;
                Ok(MountSource {
                    resolved,
                    kind: if metadata.is_dir() {
                        SourceKind::Directory
                    } else {
                        SourceKind::File
                    },
                })
            }
            Err(e) => Err(format!("{path}: {e}")),
        }
    }

    fn has_utility_vm(&self, layer: &str) -> bool {
        std::path::Path::new(layer).join("UtilityVM").is_dir()
    }
}

/// A final path as Windows reports it (`\\?\C:\data`, `\\?\UNC\srv\share`) in the form
/// users and HCS write it (`C:\data`, `\\srv\share`), as go-winio's `ResolvePath` does;
/// a volume path (`\\?\Volume{…}\`) has no shorter form and stays.
pub fn normalize_final_path(path: &str) -> String {
    if let Some(unc) = path.strip_prefix(r"\\?\UNC\") {
        return format!(r"\\{unc}");
    }
    match path.strip_prefix(r"\\?\") {
        Some(rest) if rest.as_bytes().get(1) == Some(&b':') => rest.to_owned(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_paths_lose_their_verbatim_prefix() {
        assert_eq!(normalize_final_path(r"\\?\C:\data\in"), r"C:\data\in");
        assert_eq!(
            normalize_final_path(r"\\?\UNC\srv\share\x"),
            r"\\srv\share\x"
        );
        assert_eq!(
            normalize_final_path(r"\\?\Volume{0b6d3a52-1f3e-4c39-9f6c-2a51d3b8e0aa}\x"),
            r"\\?\Volume{0b6d3a52-1f3e-4c39-9f6c-2a51d3b8e0aa}\x"
        );
        assert_eq!(normalize_final_path(r"D:\plain"), r"D:\plain");
    }

    #[test]
    fn local_files_tell_files_from_folders() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.json");
        std::fs::write(&file, b"{}").unwrap();
        let files = LocalFiles;
        let folder = files
            .mount_source(&dir.path().display().to_string())
            .unwrap();
        assert_eq!(folder.kind, SourceKind::Directory);
        let source = files.mount_source(&file.display().to_string()).unwrap();
        assert_eq!(source.kind, SourceKind::File);
        let absent = files.mount_source(&dir.path().join("absent").display().to_string());
        assert!(absent.is_err(), "{absent:?}");
    }
}
