//! Turning a layer stream into what Windows imports.
//!
//! Every entry becomes a file (or directory) plus its Win32 backup stream: the metadata
//! records (security descriptor, extended attributes, reparse data) from the PAX records,
//! then the data, then the entry's alternate data streams, which follow their file in the
//! tar. Hard links and whiteouts are passed on as such. Where the result goes is the
//! [`ImportSink`]'s business: the legacy import folder that `ImportLayer` reads
//! ([`legacy::LegacyImportFolder`], portable), or a base layer written in place with
//! `BackupWrite` (Windows).

pub mod legacy;

use std::io::Read;

use base64::Engine as _;

use crate::backup::{self, BasicInfo};
use crate::entry::{EntryKind, LayerEntry};
use crate::error::LayerError;
use crate::reader::{LayerReader, LayerSummary};

/// `FILE_ATTRIBUTE_DIRECTORY`.
pub const ATTRIBUTE_DIRECTORY: u32 = 0x10;
/// `FILE_ATTRIBUTE_REPARSE_POINT`.
pub const ATTRIBUTE_REPARSE_POINT: u32 = 0x400;

/// One file or directory as the importer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The layer path (`Files/Windows/System32`), `/`-separated.
    pub path: String,
    pub info: BasicInfo,
    /// The backup-stream records that precede the data: security, EAs, reparse.
    pub metadata: Vec<u8>,
    pub reparse_point: bool,
}

impl FileRecord {
    pub fn is_directory(&self) -> bool {
        self.info.attributes & ATTRIBUTE_DIRECTORY != 0
    }
}

/// Where an imported layer's entries go, in tar order.
pub trait ImportSink {
    /// Starts a file or directory; the calls that follow give its streams.
    fn add(&mut self, file: &FileRecord) -> Result<(), LayerError>;
    /// The unnamed data stream of the file last added.
    fn data(&mut self, size: u64, data: &mut dyn Read) -> Result<(), LayerError>;
    /// A named stream (`:name:$DATA`) of the file last added.
    fn alternate_stream(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), LayerError>;
    /// A hard link at `path` to `target`, a file of this layer or of a parent.
    fn add_link(&mut self, path: &str, target: &str) -> Result<(), LayerError>;
    /// A whiteout: `path` is deleted from the layers below.
    fn remove(&mut self, path: &str) -> Result<(), LayerError>;
}

/// Reads a layer stream (tar, gzip or zstd) into `sink`. The summary's diff ID is what the
/// caller checks before anything the sink wrote is put to use.
pub fn import_stream(
    input: impl Read,
    sink: &mut dyn ImportSink,
) -> Result<LayerSummary, LayerError> {
    // The entry alternate data streams may attach to: the last file or directory added.
    let mut owner: Option<String> = None;
    LayerReader.read(input, |entry, data| match &entry.kind {
        EntryKind::Whiteout => {
            owner = None;
            sink.remove(&entry.path)
        }
        EntryKind::HardLink { target } => {
            owner = None;
            sink.add_link(&entry.path, target)
        }
        EntryKind::File { size } if entry.alternate_stream().is_some() => {
            let Some((file, stream)) = entry.alternate_stream() else {
                return Ok(());
            };
            if owner.as_deref() != Some(file) {
                return Err(LayerError::entry(
                    &entry.path,
                    format!("an alternate data stream must directly follow {file:?}"),
                ));
            }
            sink.alternate_stream(&format!(":{stream}:$DATA"), *size, data)
        }
        kind => {
            let record = file_record(entry)?;
            sink.add(&record)?;
            if let EntryKind::File { size } = kind {
                sink.data(*size, data)?;
            }
            owner = Some(entry.path.clone());
            Ok(())
        }
    })
}

/// The Win32 view of an entry: basic info as backuptar derives it (attributes from
/// `MSWINDOWS.fileattr`, else just the directory bit; creation time defaulting to the
/// modification time) and the metadata records of its backup stream.
pub fn file_record(entry: &LayerEntry) -> Result<FileRecord, LayerError> {
    let attributes = entry.attributes.unwrap_or(match entry.kind {
        EntryKind::Directory => ATTRIBUTE_DIRECTORY,
        _ => 0,
    });
    let time = |text: &Option<String>| text.as_deref().and_then(backup::filetime_from_pax);
    let modified = time(&entry.modification_time).unwrap_or(0);
    let info = BasicInfo {
        creation_time: time(&entry.creation_time).unwrap_or(modified),
        last_access_time: modified,
        last_write_time: modified,
        change_time: modified,
        attributes,
    };
    let mut metadata = Vec::new();
    if let Some(sd) = &entry.security_descriptor {
        let sd = base64::engine::general_purpose::STANDARD
            .decode(sd)
            .map_err(|_| LayerError::entry(&entry.path, "MSWINDOWS.rawsd is not base64"))?;
        metadata.extend(backup::stream_record(backup::STREAM_SECURITY, &sd));
    } else if let Some(sddl) = &entry.sddl {
        let sd = crate::sys::security_descriptor_from_sddl(sddl)
            .map_err(|problem| LayerError::entry(&entry.path, problem))?;
        metadata.extend(backup::stream_record(backup::STREAM_SECURITY, &sd));
    }
    if !entry.extended_attributes.is_empty() {
        let eas = backup::encode_extended_attributes(&entry.extended_attributes)
            .map_err(|problem| LayerError::entry(&entry.path, problem))?;
        metadata.extend(backup::stream_record(backup::STREAM_EA_DATA, &eas));
    }
    let reparse_point = if let EntryKind::SymbolicLink { target, junction } = &entry.kind {
        let buffer = backup::encode_reparse_point(target, *junction);
        metadata.extend(backup::stream_record(backup::STREAM_REPARSE, &buffer));
        true
    } else {
        false
    };
    Ok(FileRecord {
        path: entry.path.clone(),
        info,
        metadata,
        reparse_point,
    })
}

/// `root` joined with a `/`-separated layer path, one component at a time.
pub fn disk_path(root: &std::path::Path, layer_path: &str) -> std::path::PathBuf {
    layer_path
        .split('/')
        .fold(root.to_owned(), |path, part| path.join(part))
}

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use self::windows::{import_base_layer, import_staged_layer};
