//! One entry of a Windows layer, with its Windows metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    Directory,
    File {
        size: u64,
    },
    /// A hard link to an earlier file of the same layer or, when no earlier entry has the
    /// target's path, to a file of a parent layer (Windows images link across layers).
    HardLink {
        target: String,
    },
    /// A symbolic link or, with `junction`, a directory junction (`MSWINDOWS.mountpoint`).
    /// Targets are kept as text; they are resolved inside the container, never on the host.
    SymbolicLink {
        target: String,
        junction: bool,
    },
    /// `.wh.<name>`: deletes `<name>` (the path here) from the layers below.
    Whiteout,
}

/// An entry: its path inside the layer (`Files/Windows/System32/cmd.exe`) and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
    /// `FILE_ATTRIBUTE_*` bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<u32>,
    /// Self-relative security descriptor, base64 as in the PAX record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_descriptor: Option<String>,
    /// Legacy SDDL form (`MSWINDOWS.sd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sddl: Option<String>,
    /// PAX time strings (`seconds[.fraction]`), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<String>,
    /// Extended attributes (`MSWINDOWS.xattr.<name>`): name to base64 value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended_attributes: BTreeMap<String, String>,
}

impl LayerEntry {
    pub fn new(path: impl Into<String>, kind: EntryKind) -> Self {
        Self {
            path: path.into(),
            kind,
            attributes: None,
            security_descriptor: None,
            sddl: None,
            creation_time: None,
            modification_time: None,
            extended_attributes: BTreeMap::new(),
        }
    }

    /// `file:stream` entries are alternate data streams of `file`.
    pub fn alternate_stream(&self) -> Option<(&str, &str)> {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        let (_, stream) = name.split_once(':')?;
        let file = &self.path[..self.path.len() - stream.len() - 1];
        Some((file, stream))
    }
}
