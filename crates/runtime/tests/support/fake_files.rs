//! The host's file system as the documents see it, behind [`HostFiles`]: which mount
//! sources are files and which folders, and where links in their paths lead. As on
//! Windows, a source the host does not have is an error. Layer folders are real folders of
//! the test, so whether one carries a utility VM is read from the disk.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use pane_hcs::doc::SourceKind;
use pane_runtime::documents::host_files::{HostFiles, LocalFiles, MountSource};

#[derive(Debug, Default)]
pub struct FakeFiles {
    sources: Mutex<BTreeMap<String, MountSource>>,
}

impl FakeFiles {
    pub fn folder(&self, path: &str) -> &Self {
        self.link(path, path, SourceKind::Directory)
    }

    pub fn file(&self, path: &str) -> &Self {
        self.link(path, path, SourceKind::File)
    }

    /// `path` reaches `target` through a link (a junction or symbolic link on the way).
    pub fn link(&self, path: &str, target: &str, kind: SourceKind) -> &Self {
        self.sources.lock().unwrap().insert(
            path.to_owned(),
            MountSource {
                resolved: target.to_owned(),
                kind,
            },
        );
        self
    }
}

impl HostFiles for FakeFiles {
    fn mount_source(&self, path: &str) -> Result<MountSource, String> {
        self.sources
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path}: the system cannot find the file specified"))
    }

    fn has_utility_vm(&self, layer: &str) -> bool {
        LocalFiles.has_utility_vm(layer)
    }
}
