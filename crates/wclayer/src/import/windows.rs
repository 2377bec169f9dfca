//! Importing a layer into a real HCS layer folder, as hcsshim's layer writers do.
//!
//! A base layer (no parents) is written in place with `BackupWrite`, then `ProcessBaseImage`
//! builds its VHDs and hives and `ProcessUtilityImage` its utility VM template. A layer with
//! parents is staged as a legacy import folder, handed to `ImportLayer`, and then finished
//! with what `ImportLayer` does not do: the utility VM (a hard-linked clone of the parent's,
//! with this layer's changes restored over it), whiteouts, hard links, directory times.
//! Compiled for both Windows targets; not run on a host yet.

use std::io::{Read, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::backup::{self, BasicInfo};
use crate::error::LayerError;
use crate::import::legacy::{LinkRoot, StagedLayer};
use crate::import::{
    ATTRIBUTE_DIRECTORY, ATTRIBUTE_REPARSE_POINT, FileRecord, ImportSink, disk_path, import_stream,
};
use crate::reader::LayerSummary;
use crate::sys::{self, BackupFile};

/// Utility VM files the import rewrites (`ProcessUtilityImage` edits the boot store), so the
/// clone copies them instead of hard-linking the parent's.
const MUTATED_UTILITY_VM_FILES: [&str; 4] = [
    "EFI/Microsoft/Boot/BCD",
    "EFI/Microsoft/Boot/BCD.LOG",
    "EFI/Microsoft/Boot/BCD.LOG1",
    "EFI/Microsoft/Boot/BCD.LOG2",
];

fn privileges() -> Result<(), LayerError> {
    static ENABLED: OnceLock<Result<(), String>> = OnceLock::new();
    ENABLED
        .get_or_init(|| sys::enable_backup_privileges().map_err(|e| e.to_string()))
        .clone()
        .map_err(LayerError::Unavailable)
}

/// Imports the base layer stream `input` (a layer without parents) into the new folder
/// `layer`, checking its diff ID before the layer is processed. On failure the folder is
/// destroyed and nothing is left.
pub fn import_base_layer(
    input: impl Read,
    diff_id: &str,
    layer: &Path,
) -> Result<LayerSummary, LayerError> {
    privileges()?;
    let result = import_base(input, diff_id, layer);
    if result.is_err() {
        discard(layer);
    }
    result
}

/// Imports a staged layer (see [`crate::import::legacy::stage_layer`]) into the new folder
/// `layer` over `parents` (topmost first). On failure the folder is destroyed; the staging
/// is left to the caller.
pub fn import_staged_layer(
    staged: &mut StagedLayer,
    layer: &Path,
    parents: &[PathBuf],
) -> Result<(), LayerError> {
    privileges()?;
    let result = apply_staged(staged, layer, parents);
    if result.is_err() {
        discard(layer);
    }
    result
}

/// `DestroyLayer` knows the layer's own bookkeeping; plain removal covers a folder vmcompute
/// never saw.
fn discard(layer: &Path) {
    if layer.exists() {
        let _ = sys::destroy(layer);
        let _ = std::fs::remove_dir_all(layer);
    }
}

fn import_base(input: impl Read, diff_id: &str, layer: &Path) -> Result<LayerSummary, LayerError> {
    std::fs::create_dir(layer).map_err(LayerError::io("creating the layer folder", layer))?;
    let mut writer = BaseLayerWriter {
        root: layer.to_owned(),
        current: None,
        directories: Vec::new(),
        has_utility_vm: false,
    };
    let summary = import_stream(input, &mut writer)?;
    writer.current = None;
    summary.verify(diff_id)?;
    reapply_directory_times(layer, &writer.directories)?;
    sys::process_base_image(layer)?;
    if writer.has_utility_vm {
        sys::process_utility_vm(&layer.join("UtilityVM"))?;
    }
    Ok(summary)
}

fn apply_staged(
    staged: &mut StagedLayer,
    layer: &Path,
    parents: &[PathBuf],
) -> Result<(), LayerError> {
    let Some(topmost) = parents.first() else {
        return Err(LayerError::Stream(
            "a staged layer needs its parent layers".into(),
        ));
    };
    staged.resolve_links(parents)?;
    std::fs::create_dir(layer).map_err(LayerError::io("creating the layer folder", layer))?;
    if staged.has_utility_vm {
        write_utility_vm(layer, topmost, staged)?;
    }
    sys::import_layer(layer, &staged.import_root, parents)?;
    for tombstone in &staged.tombstones {
        sys::remove_tree(&disk_path(layer, tombstone))?;
    }
    for link in &staged.links {
        let root = match link.root {
            LinkRoot::Parent(index) => parents.get(index).map_or(layer, PathBuf::as_path),
            LinkRoot::ThisLayer | LinkRoot::Parents => layer,
        };
        sys::hard_link(
            &disk_path(root, &link.target),
            &disk_path(layer, &link.path),
        )?;
    }
    reapply_directory_times(layer, &staged.directories)?;
    if staged.has_utility_vm {
        sys::process_utility_vm(&layer.join("UtilityVM"))?;
    }
    Ok(())
}

/// Children first, so setting a directory's times is not undone by touching its parent.
fn reapply_directory_times(
    layer: &Path,
    directories: &[(String, BasicInfo)],
) -> Result<(), LayerError> {
    for (path, info) in directories.iter().rev() {
        let target = disk_path(layer, path);
        if target.is_dir() {
            sys::set_basic_info_of_directory(&target, info)?;
        }
    }
    Ok(())
}

/// The parent's utility VM, hard-linked into this layer, with this layer's changes on top.
fn write_utility_vm(layer: &Path, parent: &Path, staged: &StagedLayer) -> Result<(), LayerError> {
    let utility_vm = layer.join("UtilityVM");
    std::fs::create_dir(&utility_vm).map_err(LayerError::io(
        "creating the utility VM folder",
        &utility_vm,
    ))?;
    let mut directories = Vec::new();
    clone_tree(
        &parent.join("UtilityVM"),
        &utility_vm,
        "Files",
        &mut directories,
    )?;
    let cloned: Vec<(String, BasicInfo)> = directories
        .into_iter()
        .map(|(path, info)| (format!("UtilityVM/{path}"), info))
        .collect();
    reapply_directory_times(layer, &cloned)?;
    for entry in &staged.utility_vm_entries {
        let target = disk_path(layer, &entry.path);
        let directory = entry.info.attributes & ATTRIBUTE_DIRECTORY != 0;
        let mut file = if directory {
            match std::fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() && !meta.is_symlink() => {
                    BackupFile::open_for_restore(&target)?
                }
                Ok(_) => {
                    sys::remove_tree(&target)?;
                    BackupFile::create(&target, true)?
                }
                Err(_) => BackupFile::create(&target, true)?,
            }
        } else {
            sys::remove_tree(&target)?;
            BackupFile::create(&target, false)?
        };
        file.set_basic_info(&entry.info)?;
        let mut stream = std::fs::File::open(&entry.stream).map_err(LayerError::io(
            "reading a staged utility VM file",
            &entry.stream,
        ))?;
        // The staged file starts with the attributes, already applied above.
        stream.seek(SeekFrom::Start(4)).map_err(LayerError::io(
            "reading a staged utility VM file",
            &entry.stream,
        ))?;
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            let n = stream.read(&mut buffer).map_err(LayerError::io(
                "reading a staged utility VM file",
                &entry.stream,
            ))?;
            if n == 0 {
                break;
            }
            file.write(&buffer[..n])?;
        }
    }
    for removal in &staged.utility_vm_removals {
        let target = disk_path(layer, removal);
        if std::fs::symlink_metadata(&target).is_err() {
            return Err(LayerError::entry(
                removal,
                "is whited out but the parent's utility VM does not have it",
            ));
        }
        sys::remove_tree(&target)?;
    }
    Ok(())
}

/// Clones `source/relative` into `target/relative`: directories, reparse points and the
/// boot files the import rewrites are copied with their metadata, the rest hard-linked.
fn clone_tree(
    source: &Path,
    target: &Path,
    relative: &str,
    directories: &mut Vec<(String, BasicInfo)>,
) -> Result<(), LayerError> {
    use std::os::windows::fs::MetadataExt as _;
    let from = disk_path(source, relative);
    let meta = std::fs::symlink_metadata(&from)
        .map_err(LayerError::io("reading the parent's utility VM", &from))?;
    let attributes = meta.file_attributes();
    let directory = attributes & ATTRIBUTE_DIRECTORY != 0;
    let reparse = attributes & ATTRIBUTE_REPARSE_POINT != 0;
    let mutated = relative.strip_prefix("Files/").is_some_and(|inner| {
        MUTATED_UTILITY_VM_FILES
            .iter()
            .any(|m| m.eq_ignore_ascii_case(inner))
    });
    let to = disk_path(target, relative);
    if directory || reparse || mutated {
        let info = sys::copy_with_metadata(&from, &to, directory)?;
        if directory && !reparse {
            directories.push((relative.to_owned(), info));
            let children = std::fs::read_dir(&from)
                .map_err(LayerError::io("reading the parent's utility VM", &from))?;
            for child in children {
                let child =
                    child.map_err(LayerError::io("reading the parent's utility VM", &from))?;
                let name = child.file_name().to_string_lossy().into_owned();
                clone_tree(source, target, &format!("{relative}/{name}"), directories)?;
            }
        }
        Ok(())
    } else {
        std::fs::hard_link(&from, &to)
            .map_err(LayerError::io("linking the parent's utility VM", &to))
    }
}

/// Writes a base layer in place: each entry created with backup semantics and its backup
/// stream restored with `BackupWrite`.
struct BaseLayerWriter {
    root: PathBuf,
    current: Option<BackupFile>,
    directories: Vec<(String, BasicInfo)>,
    has_utility_vm: bool,
}

impl BaseLayerWriter {
    fn file(&mut self) -> Result<&mut BackupFile, LayerError> {
        self.current
            .as_mut()
            .ok_or_else(|| LayerError::Stream("data arrived with no layer file open".into()))
    }

    fn copy(&mut self, size: u64, data: &mut dyn Read) -> Result<(), LayerError> {
        let mut buffer = vec![0u8; 256 << 10];
        let mut left = size;
        let file = self.file()?;
        while left > 0 {
            let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
            let n = data
                .read(&mut buffer[..want])
                .map_err(|e| LayerError::Stream(e.to_string()))?;
            if n == 0 {
                return Err(LayerError::Stream(format!(
                    "a file ended {left} bytes early"
                )));
            }
            file.write(&buffer[..n])?;
            left -= n as u64;
        }
        Ok(())
    }
}

impl ImportSink for BaseLayerWriter {
    fn add(&mut self, record: &FileRecord) -> Result<(), LayerError> {
        self.current = None;
        if record.path == "UtilityVM/Files" {
            self.has_utility_vm = true;
        }
        if record.is_directory() {
            self.directories.push((record.path.clone(), record.info));
        }
        let mut file =
            BackupFile::create(&disk_path(&self.root, &record.path), record.is_directory())?;
        file.set_basic_info(&record.info)?;
        file.write(&record.metadata)?;
        self.current = Some(file);
        Ok(())
    }

    fn data(&mut self, size: u64, data: &mut dyn Read) -> Result<(), LayerError> {
        self.file()?
            .write(&backup::stream_header(backup::STREAM_DATA, size, ""))?;
        self.copy(size, data)
    }

    fn alternate_stream(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), LayerError> {
        self.file()?.write(&backup::stream_header(
            backup::STREAM_ALTERNATE_DATA,
            size,
            name,
        ))?;
        self.copy(size, data)
    }

    fn add_link(&mut self, path: &str, target: &str) -> Result<(), LayerError> {
        self.current = None;
        std::fs::hard_link(disk_path(&self.root, target), disk_path(&self.root, path)).map_err(
            |e| LayerError::entry(path, format!("the hard link to {target:?} failed: {e}")),
        )
    }

    fn remove(&mut self, path: &str) -> Result<(), LayerError> {
        Err(LayerError::entry(
            path,
            "a base layer cannot have whiteouts",
        ))
    }
}
