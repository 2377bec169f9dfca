//! Importing a layer into a real HCS layer folder, as hcsshim's layer writers do.
//!
//! A base layer (no parents) is written in place with `BackupWrite`, then `ProcessBaseImage`
//! builds its VHDs and hives and `ProcessUtilityImage` its utility VM template. A layer with
//! parents is staged as a legacy import folder, handed to `ImportLayer`, and then finished
//! with what `ImportLayer` does not do: the utility VM (a hard-linked clone of the parent's,
//! with this layer's changes restored over it), whiteouts, hard links, directory times.
//! Every write, link and removal in the layer folder goes through [`Root`] (`sys::safe_open`),
//! so none passes through a link that this layer or a parent put on disk. Compiled for both
//! Windows targets; on a host not run yet, under wine only the base writer's directories.

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
use crate::sys::{self, BackupFile, Create, Root};

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
        root: Root::open(layer)?,
        current: None,
        directories: Vec::new(),
        has_utility_vm: false,
    };
    let summary = import_stream(input, &mut writer)?;
    writer.current = None;
    summary.verify(diff_id)?;
    reapply_directory_times(&writer.root, &writer.directories)?;
    let has_utility_vm = writer.has_utility_vm;
    drop(writer);
    sys::process_base_image(layer)?;
    if has_utility_vm {
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
        write_utility_vm(&Root::open(layer)?, topmost, staged)?;
    }
    sys::import_layer(layer, &staged.import_root, parents)?;
    // Opened after ImportLayer, so the handle is on the folder as vmcompute left it.
    let root = Root::open(layer)?;
    for tombstone in &staged.tombstones {
        root.remove_all(tombstone)?;
    }
    let mut parent_roots: Vec<Option<Root>> = parents.iter().map(|_| None).collect();
    for link in &staged.links {
        let target_root = match link.root {
            LinkRoot::Parent(index) => match parent_roots.get_mut(index) {
                Some(slot @ None) => {
                    let opened = Root::open(&parents[index])?;
                    &*slot.insert(opened)
                }
                Some(Some(opened)) => &*opened,
                None => &root,
            },
            LinkRoot::ThisLayer | LinkRoot::Parents => &root,
        };
        link_entry(&root, &link.path, target_root, &link.target)?;
    }
    reapply_directory_times(&root, &staged.directories)?;
    if staged.has_utility_vm {
        sys::process_utility_vm(&layer.join("UtilityVM"))?;
    }
    Ok(())
}

/// A hard link entry; a failure names the link's entry, also when its target was refused.
fn link_entry(root: &Root, path: &str, target_root: &Root, target: &str) -> Result<(), LayerError> {
    root.hard_link(path, target_root, target)
        .map_err(|e| match e {
            LayerError::Entry {
                path: ref named, ..
            } if named == path => e,
            LayerError::Entry { problem, .. } => {
                LayerError::entry(path, format!("its target {target:?} {problem}"))
            }
            other => {
                LayerError::entry(path, format!("the hard link to {target:?} failed: {other}"))
            }
        })
}

/// Children first, so setting a directory's times is not undone by touching its parent.
fn reapply_directory_times(
    root: &Root,
    directories: &[(String, BasicInfo)],
) -> Result<(), LayerError> {
    for (path, info) in directories.iter().rev() {
        sys::set_basic_info_of_directory(root, path, info)?;
    }
    Ok(())
}

/// The parent's utility VM, hard-linked into this layer, with this layer's changes on top.
fn write_utility_vm(root: &Root, parent: &Path, staged: &StagedLayer) -> Result<(), LayerError> {
    root.create_directory("UtilityVM")?;
    let source = parent.join("UtilityVM");
    let source_root = Root::open(&source)?;
    let mut directories = Vec::new();
    clone_tree(&source, &source_root, root, "Files", &mut directories)?;
    let cloned: Vec<(String, BasicInfo)> = directories
        .into_iter()
        .map(|(path, info)| (format!("UtilityVM/{path}"), info))
        .collect();
    reapply_directory_times(root, &cloned)?;
    for entry in &staged.utility_vm_entries {
        let directory = entry.info.attributes & ATTRIBUTE_DIRECTORY != 0;
        let mut file = if directory {
            match root.attributes(&entry.path)? {
                Some(attributes)
                    if attributes & ATTRIBUTE_DIRECTORY != 0
                        && attributes & ATTRIBUTE_REPARSE_POINT == 0 =>
                {
                    BackupFile::beneath(root, &entry.path, Create::Existing)?
                }
                Some(_) => {
                    root.remove_all(&entry.path)?;
                    BackupFile::beneath(root, &entry.path, Create::Directory)?
                }
                None => BackupFile::beneath(root, &entry.path, Create::Directory)?,
            }
        } else {
            root.remove_all(&entry.path)?;
            BackupFile::beneath(root, &entry.path, Create::File)?
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
        if root.attributes(removal)?.is_none() {
            return Err(LayerError::entry(
                removal,
                "is whited out but the parent's utility VM does not have it",
            ));
        }
        root.remove_all(removal)?;
    }
    Ok(())
}

/// Clones `source/relative` (the parent's `UtilityVM`) into `UtilityVM/relative` beneath
/// `target`: directories, reparse points and the boot files the import rewrites are copied
/// with their metadata, the rest hard-linked. The parent is read by name (`std::fs` reaches
/// any depth) and never descended through a reparse point.
fn clone_tree(
    source: &Path,
    source_root: &Root,
    target: &Root,
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
    let to = format!("UtilityVM/{relative}");
    if directory || reparse || mutated {
        let info = sys::copy_with_metadata(&from, target, &to, directory)?;
        if directory && !reparse {
            directories.push((relative.to_owned(), info));
            let children = std::fs::read_dir(&from)
                .map_err(LayerError::io("reading the parent's utility VM", &from))?;
            for child in children {
                let child =
                    child.map_err(LayerError::io("reading the parent's utility VM", &from))?;
                let name = child.file_name().to_string_lossy().into_owned();
                clone_tree(
                    source,
                    source_root,
                    target,
                    &format!("{relative}/{name}"),
                    directories,
                )?;
            }
        }
        Ok(())
    } else {
        link_entry(target, &to, source_root, relative)
    }
}

/// Writes a base layer in place: each entry created with backup semantics and its backup
/// stream restored with `BackupWrite`.
struct BaseLayerWriter {
    root: Root,
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
        let create = if record.is_directory() {
            Create::Directory
        } else {
            Create::File
        };
        let mut file = BackupFile::beneath(&self.root, &record.path, create)?;
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
        link_entry(&self.root, path, &self.root, target)
    }

    fn remove(&mut self, path: &str) -> Result<(), LayerError> {
        Err(LayerError::entry(
            path,
            "a base layer cannot have whiteouts",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryKind, LayerEntry};
    use crate::writer::LayerWriter;

    fn directory(path: &str) -> LayerEntry {
        let mut entry = LayerEntry::new(path, EntryKind::Directory);
        entry.attributes = Some(ATTRIBUTE_DIRECTORY);
        entry
    }

    fn base_writer(layer: &Path) -> BaseLayerWriter {
        std::fs::create_dir(layer).unwrap();
        BaseLayerWriter {
            root: Root::open(layer).unwrap(),
            current: None,
            directories: Vec::new(),
            has_utility_vm: false,
        }
    }

    /// Server Core's `WinSxS` paths pass 260 characters under a layer folder. Directories
    /// without security descriptors need no `BackupWrite`, so this runs under wine too.
    #[test]
    fn a_base_layer_deeper_than_400_characters_is_written_in_place() {
        let mut writer = LayerWriter::new(Vec::new());
        let mut path = String::from("Files");
        writer.append(&directory(&path), None).unwrap();
        for i in 0..45 {
            path = format!("{path}/amd64_microsoft-{i:02}");
            writer.append(&directory(&path), None).unwrap();
        }
        let tar = writer.finish().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let layer = temp.path().join("layer");
        let mut sink = base_writer(&layer);
        import_stream(&tar[..], &mut sink).unwrap();
        sink.current = None;
        reapply_directory_times(&sink.root, &sink.directories).unwrap();
        let deepest = disk_path(&layer, &path);
        assert!(deepest.as_os_str().len() > 400, "{}", deepest.display());
        assert_eq!(
            sink.root.attributes(&path).unwrap(),
            Some(ATTRIBUTE_DIRECTORY)
        );
        // std's remove_dir_all does not finish on such a tree under wine 8.
        sink.root.remove_all("Files").unwrap();
    }

    #[test]
    fn a_failed_hard_link_names_the_link_entry() {
        let temp = tempfile::tempdir().unwrap();
        let sink = base_writer(&temp.path().join("layer"));
        sink.root.create_directory("Files").unwrap();
        drop(BackupFile::beneath(&sink.root, "Files/f", Create::File).unwrap());
        // A missing target, and one whose walk is refused (a file on the way).
        for target in ["Files/missing.dll", "Files/f/x"] {
            match link_entry(&sink.root, "Files/l", &sink.root, target) {
                Err(LayerError::Entry { path, problem }) => {
                    assert_eq!(path, "Files/l");
                    assert!(problem.contains(target), "{problem}");
                }
                other => panic!("{target}: expected an entry error, got {other:?}"),
            }
        }
        // A one-letter name: the shortest FILE_LINK_INFORMATION there is.
        link_entry(&sink.root, "Files/l", &sink.root, "Files/f").unwrap();
        assert!(sink.root.attributes("Files/l").unwrap().is_some());
    }

    /// A base layer that makes `Files/evil` a junction out of the layer and then writes a
    /// file through it. Writing the junction needs `BackupWrite` and the backup privileges.
    #[test]
    #[ignore = "needs an elevated Windows host: wine 8 has no BackupWrite"]
    fn a_base_layer_cannot_write_through_its_own_junction() {
        let outside = tempfile::tempdir().unwrap();
        let mut junction = LayerEntry::new(
            "Files/evil",
            EntryKind::SymbolicLink {
                target: outside.path().to_string_lossy().into_owned(),
                junction: true,
            },
        );
        junction.attributes = Some(ATTRIBUTE_DIRECTORY | ATTRIBUTE_REPARSE_POINT);
        let mut writer = LayerWriter::new(Vec::new());
        writer.append(&directory("Files"), None).unwrap();
        writer.append(&junction, None).unwrap();
        let file = LayerEntry::new("Files/evil/pwned.dll", EntryKind::File { size: 1 });
        writer.append(&file, Some(&mut &b"x"[..])).unwrap();
        let tar = writer.finish().unwrap();
        privileges().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let mut sink = base_writer(&temp.path().join("layer"));
        match import_stream(&tar[..], &mut sink) {
            Err(LayerError::Entry { path, .. }) => assert_eq!(path, "Files/evil/pwned.dll"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
