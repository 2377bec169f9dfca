//! vmcompute's `ImportLayer`, `ProcessBaseImage` and `ProcessUtilityImage`.
//!
//! Microsoft does not document them. The import folder `ImportLayer` reads is hcsshim's
//! `legacyLayerWriter` format: under `Files`, each file holds its attributes (4 bytes, little
//! endian) and then its Win32 backup stream; each directory has a sibling `<name>.$wcidirs$`
//! holding the same for the directory; under `Hives`, files hold plain data. Every stream is
//! decoded strictly (`backup_stream`) before anything is written, and an import that fails
//! leaves the layer folder as it found it.
//!
//! The layer `ImportLayer` makes shows the merged tree: the topmost parent's files (hard
//! links; that parent shows the tree below it) with this layer's over them. hcsshim implies it: after the call it
//! deletes whiteouts from the new layer and links to parents' files there. What the
//! simulator cannot keep on wine's disk (security, EAs, alternate streams, reparse data) is
//! checked and dropped. The VHDs and templates the two `Process*` calls make are empty files
//! with the documented names; nothing boots from them here.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::backup_stream::{Decoder, Piece, StreamError};
use crate::hresult::{ALREADY_EXISTS, FILE_NOT_FOUND, INVALID_DATA, PATH_NOT_FOUND, from_io};

const ATTRIBUTE_DIRECTORY: u32 = 0x10;
const ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
const DIRECTORY_SUFFIX: &str = ".$wcidirs$";

/// What `ProcessBaseImage` leaves in a base layer.
pub const BASE_IMAGE_FILES: [&str; 2] = ["blank-base.vhdx", "blank.vhdx"];
/// What `ProcessUtilityImage` leaves in a layer's `UtilityVM`.
pub const UTILITY_IMAGE_FILES: [&str; 2] = ["SystemTemplate.vhdx", "SystemTemplateBase.vhdx"];

/// A refusal: the HRESULT and a message naming the entry.
pub type Refusal = (u32, String);

fn refused(hresult: u32, why: impl Into<String>) -> Refusal {
    (hresult, why.into())
}

fn io_refusal(what: &Path, e: &std::io::Error) -> Refusal {
    refused(from_io(e), format!("{}: {e}", what.display()))
}

/// `ImportLayer(layer, source, parents)`. `layer` exists (the caller made it; it may hold
/// the `UtilityVM` the caller wrote) and has no `Files` yet.
pub fn import_layer(layer: &Path, source: &Path, parents: &[String]) -> Result<(), Refusal> {
    if !layer.is_dir() {
        return Err(refused(PATH_NOT_FOUND, "the layer folder does not exist"));
    }
    if layer.join("Files").exists() {
        return Err(refused(
            ALREADY_EXISTS,
            "the layer has been imported already",
        ));
    }
    if !source.is_dir() {
        return Err(refused(PATH_NOT_FOUND, "the import folder does not exist"));
    }
    check_top_level(source)?;
    let mut plan = Vec::new();
    for root in ["Files", "Hives"] {
        if source.join(root).is_dir() {
            walk(source, Path::new(root), &mut plan)?;
        }
    }
    let result = write_layer(layer, source, parents, &plan);
    if result.is_err() {
        let _ = fs::remove_dir_all(layer.join("Files"));
        let _ = fs::remove_dir_all(layer.join("Hives"));
    }
    result
}

/// The import folder holds the layer's roots and their directory files, nothing else.
fn check_top_level(source: &Path) -> Result<(), Refusal> {
    let entries = fs::read_dir(source).map_err(|e| io_refusal(source, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_refusal(source, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = [
            "Files",
            "Hives",
            "Files.$wcidirs$",
            "Hives.$wcidirs$",
            "tombstones.txt",
        ];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
            return Err(refused(
                INVALID_DATA,
                format!("{name}: not part of an import folder (Files, Hives and their .$wcidirs$)"),
            ));
        }
    }
    Ok(())
}

/// One entry of the import folder, checked, in the order it is applied.
#[derive(Debug)]
enum Planned {
    Directory(PathBuf),
    File(PathBuf),
    Hive(PathBuf),
}

/// Checks every entry under `relative` (a directory of the import folder) and lists it.
fn walk(source: &Path, relative: &Path, plan: &mut Vec<Planned>) -> Result<(), Refusal> {
    let hives = relative.starts_with("Hives");
    let folder = source.join(relative);
    let marker = with_suffix(&folder);
    if !hives {
        check_stream(&marker, relative, true)?;
    }
    plan.push(Planned::Directory(relative.to_owned()));
    let mut names: Vec<_> = fs::read_dir(&folder)
        .map_err(|e| io_refusal(&folder, &e))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| io_refusal(&folder, &e))?;
    names.sort();
    for name in names {
        let path = relative.join(&name);
        let on_disk = source.join(&path);
        let text = name.to_string_lossy();
        if let Some(directory) = text.strip_suffix(DIRECTORY_SUFFIX) {
            if !folder.join(directory).is_dir() {
                return Err(refused(
                    INVALID_DATA,
                    format!("{}: a directory file without its directory", path.display()),
                ));
            }
        } else if on_disk.is_dir() {
            walk(source, &path, plan)?;
        } else if hives {
            plan.push(Planned::Hive(path));
        } else {
            check_stream(&on_disk, &path, false)?;
            plan.push(Planned::File(path));
        }
    }
    Ok(())
}

fn with_suffix(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(DIRECTORY_SUFFIX);
    PathBuf::from(name)
}

/// Decodes a staged file (attributes, then backup stream), handing its unnamed data to
/// `data`. `directory` is what the entry is in the import folder.
fn decode_staged(
    staged: &Path,
    entry: &Path,
    directory: bool,
    data: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), Refusal> {
    let name = entry.display();
    let mut file = fs::File::open(staged).map_err(|e| {
        if directory && e.kind() == std::io::ErrorKind::NotFound {
            refused(
                INVALID_DATA,
                format!("{name}: a directory without its {DIRECTORY_SUFFIX} file"),
            )
        } else {
            io_refusal(staged, &e)
        }
    })?;
    let mut attributes = [0u8; 4];
    file.read_exact(&mut attributes).map_err(|_| {
        refused(
            INVALID_DATA,
            format!("{name}: shorter than its 4 attribute bytes"),
        )
    })?;
    let attributes = u32::from_le_bytes(attributes);
    if (attributes & ATTRIBUTE_DIRECTORY != 0) != directory {
        return Err(refused(
            INVALID_DATA,
            format!(
                "{name}: attributes {attributes:#x} say {}",
                if directory {
                    "file, not directory"
                } else {
                    "directory, not file"
                }
            ),
        ));
    }
    let mut decoder = Decoder::new(directory);
    let mut reparse = false;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buffer).map_err(|e| io_refusal(staged, &e))?;
        if n == 0 {
            break;
        }
        decoder
            .feed(&buffer[..n], &mut |piece| match piece {
                Piece::Data(bytes) => data(bytes).map_err(|e| StreamError(e.to_string())),
                Piece::Reparse(_) => {
                    reparse = true;
                    Ok(())
                }
                _ => Ok(()),
            })
            .map_err(|e| refused(INVALID_DATA, format!("{name}: {e}")))?;
    }
    decoder
        .finish()
        .map_err(|e| refused(INVALID_DATA, format!("{name}: {e}")))?;
    if reparse != (attributes & ATTRIBUTE_REPARSE_POINT != 0) {
        return Err(refused(
            INVALID_DATA,
            format!(
                "{name}: FILE_ATTRIBUTE_REPARSE_POINT is {} but the stream {} reparse data",
                if reparse { "not set" } else { "set" },
                if reparse { "has" } else { "has no" }
            ),
        ));
    }
    Ok(())
}

fn check_stream(staged: &Path, entry: &Path, directory: bool) -> Result<(), Refusal> {
    decode_staged(staged, entry, directory, &mut |_| Ok(()))
}

fn write_layer(
    layer: &Path,
    source: &Path,
    parents: &[String],
    plan: &[Planned],
) -> Result<(), Refusal> {
    for entry in plan {
        match entry {
            Planned::Directory(path) => {
                let target = layer.join(path);
                fs::create_dir_all(&target).map_err(|e| io_refusal(&target, &e))?;
            }
            Planned::File(path) => {
                let target = layer.join(path);
                let mut out = fs::File::create_new(&target).map_err(|e| io_refusal(&target, &e))?;
                decode_staged(&source.join(path), path, false, &mut |bytes| {
                    out.write_all(bytes)
                })?;
            }
            Planned::Hive(path) => {
                let target = layer.join(path);
                fs::copy(source.join(path), &target).map_err(|e| io_refusal(&target, &e))?;
            }
        }
    }
    fs::create_dir_all(layer.join("Files")).map_err(|e| io_refusal(layer, &e))?;
    // The topmost parent's Files is the merged tree of everything below it, its deletions
    // applied; a lower parent would bring back what a layer between deleted.
    if let Some(topmost) = parents.first() {
        link_missing(&Path::new(topmost).join("Files"), &layer.join("Files"))?;
    }
    apply_tombstones(layer, source)
}

/// Hard-links every file of `from` that `to` lacks (directories made as needed).
fn link_missing(from: &Path, to: &Path) -> Result<(), Refusal> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_refusal(from, &e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| io_refusal(&source, &e))?;
        if kind.is_dir() {
            if !target.exists() {
                fs::create_dir(&target).map_err(|e| io_refusal(&target, &e))?;
            }
            if target.is_dir() {
                link_missing(&source, &target)?;
            }
        } else if !target.exists() {
            fs::hard_link(&source, &target)
                .or_else(|_| fs::copy(&source, &target).map(|_| ()))
                .map_err(|e| io_refusal(&target, &e))?;
        }
    }
    Ok(())
}

/// hcsshim's import folders carry no `tombstones.txt` (it deletes whiteouts itself after the
/// call); one that does lists `\Files\…` paths after a `Version 1.0` line.
fn apply_tombstones(layer: &Path, source: &Path) -> Result<(), Refusal> {
    let list = source.join("tombstones.txt");
    let Ok(text) = fs::read_to_string(&list) else {
        return Ok(());
    };
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    if lines.next().map(str::trim) != Some("Version 1.0") {
        return Err(refused(INVALID_DATA, "tombstones.txt: no Version 1.0 line"));
    }
    for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
        let relative = line.trim_start_matches('\\').replace('\\', "/");
        if !relative.starts_with("Files/") || relative.split('/').any(|c| c == "..") {
            return Err(refused(
                INVALID_DATA,
                format!("tombstones.txt: {line:?} is outside Files"),
            ));
        }
        let target = layer.join(&relative);
        let removed = if target.is_dir() {
            fs::remove_dir_all(&target)
        } else {
            fs::remove_file(&target)
        };
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(io_refusal(&target, &e));
        }
    }
    Ok(())
}

fn make_empty_files(folder: &Path, names: &[&str]) -> Result<(), Refusal> {
    for name in names {
        let path = folder.join(name);
        if path.exists() {
            return Err(refused(ALREADY_EXISTS, format!("{name} exists already")));
        }
    }
    for name in names {
        let path = folder.join(name);
        fs::write(&path, b"").map_err(|e| io_refusal(&path, &e))?;
    }
    Ok(())
}

/// `ProcessBaseImage(layer)`: the base layer's files are written; its VHDs are made.
pub fn process_base_image(layer: &Path) -> Result<(), Refusal> {
    if !layer.join("Files").is_dir() {
        return Err(refused(FILE_NOT_FOUND, "the layer has no Files folder"));
    }
    make_empty_files(layer, &BASE_IMAGE_FILES)?;
    fs::create_dir_all(layer.join("Hives")).map_err(|e| io_refusal(layer, &e))
}

/// `ProcessUtilityImage(layer\UtilityVM)`: its templates are made from `UtilityVM\Files`.
pub fn process_utility_image(utility_vm: &Path) -> Result<(), Refusal> {
    if !utility_vm.join("Files").is_dir() {
        return Err(refused(
            FILE_NOT_FOUND,
            "the utility VM folder has no Files folder",
        ));
    }
    make_empty_files(utility_vm, &UTILITY_IMAGE_FILES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_stream::{BACKUP_DATA, BACKUP_REPARSE_DATA};

    fn record(id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(id.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((body.len() as u64).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(body);
        out
    }

    fn staged_file(path: &Path, attributes: u32, stream: &[u8]) {
        let mut bytes = attributes.to_le_bytes().to_vec();
        bytes.extend(stream);
        fs::write(path, bytes).unwrap();
    }

    fn staged_dir(source: &Path, relative: &str) {
        fs::create_dir_all(source.join(relative)).unwrap();
        staged_file(
            &with_suffix(&source.join(relative)),
            ATTRIBUTE_DIRECTORY,
            &[],
        );
    }

    struct World {
        _dir: tempfile::TempDir,
        parent: PathBuf,
        layer: PathBuf,
        source: PathBuf,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("parent");
        fs::create_dir_all(parent.join("Files/Windows")).unwrap();
        fs::write(parent.join("Files/Windows/kept.txt"), b"parent").unwrap();
        fs::write(parent.join("Files/changed.txt"), b"old").unwrap();
        let layer = dir.path().join("layer");
        fs::create_dir(&layer).unwrap();
        let source = dir.path().join("import");
        staged_dir(&source, "Files");
        staged_dir(&source, "Files/new");
        staged_file(
            &source.join("Files/changed.txt"),
            0x20,
            &record(BACKUP_DATA, b"new"),
        );
        fs::create_dir_all(source.join("Hives")).unwrap();
        fs::write(source.join("Hives.$wcidirs$"), b"").unwrap();
        fs::write(source.join("Hives/DefaultUser_Delta"), b"hive").unwrap();
        World {
            _dir: dir,
            parent,
            layer,
            source,
        }
    }

    #[test]
    fn an_import_merges_the_parents_under_the_layers_files() {
        let w = world();
        let parents = [w.parent.to_string_lossy().into_owned()];
        import_layer(&w.layer, &w.source, &parents).unwrap();
        let read = |p: &str| fs::read(w.layer.join(p)).unwrap();
        assert_eq!(read("Files/changed.txt"), b"new");
        assert_eq!(read("Files/Windows/kept.txt"), b"parent");
        assert_eq!(read("Hives/DefaultUser_Delta"), b"hive");
        assert!(w.layer.join("Files/new").is_dir());
        assert!(!w.layer.join("Files/new.$wcidirs$").exists());
        assert_eq!(
            fs::read(w.parent.join("Files/changed.txt")).unwrap(),
            b"old"
        );
        let again = import_layer(&w.layer, &w.source, &parents).unwrap_err();
        assert_eq!(again.0, ALREADY_EXISTS);
    }

    #[test]
    fn a_bad_import_folder_is_refused_and_leaves_the_layer_empty() {
        type Spoil<'a> = &'a dyn Fn(&Path);
        let cases: [(&str, Spoil); 5] = [
            ("not part of an import folder", &|s| {
                fs::write(s.join("staged.json"), b"{}").unwrap();
            }),
            ("without its .$wcidirs$", &|s| {
                fs::create_dir(s.join("Files/bare")).unwrap();
            }),
            ("5 bytes before the end of record 1", &|s| {
                staged_file(
                    &s.join("Files/cut.txt"),
                    0x20,
                    &record(BACKUP_DATA, b"abcde")[..20],
                );
            }),
            ("say directory, not file", &|s| {
                staged_file(&s.join("Files/odd.txt"), ATTRIBUTE_DIRECTORY, &[]);
            }),
            ("FILE_ATTRIBUTE_REPARSE_POINT is set", &|s| {
                staged_file(&s.join("Files/link"), ATTRIBUTE_REPARSE_POINT, &[]);
            }),
        ];
        for (expected, spoil) in cases {
            let w = world();
            spoil(&w.source);
            let (hresult, why) = import_layer(&w.layer, &w.source, &[]).unwrap_err();
            assert_eq!(hresult, INVALID_DATA, "{why}");
            assert!(why.contains(expected), "{expected:?} not in {why:?}");
            assert_eq!(fs::read_dir(&w.layer).unwrap().count(), 0, "{why}");
        }
        let w = world();
        let mut reparse = TAG.to_vec();
        reparse.extend([0u8; 4]);
        staged_file(
            &w.source.join("Files/tagged"),
            0x20,
            &record(BACKUP_REPARSE_DATA, &reparse),
        );
        let (_, why) = import_layer(&w.layer, &w.source, &[]).unwrap_err();
        assert!(why.contains("is not set but the stream has"), "{why}");
    }

    /// A Microsoft tag with no data: `ReparseDataLength` 0.
    const TAG: [u8; 4] = 0x8000_0017u32.to_le_bytes();

    #[test]
    fn processing_makes_the_documented_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path();
        assert_eq!(process_base_image(layer).unwrap_err().0, FILE_NOT_FOUND);
        fs::create_dir_all(layer.join("Files")).unwrap();
        process_base_image(layer).unwrap();
        assert!(layer.join("blank-base.vhdx").is_file() && layer.join("Hives").is_dir());
        assert_eq!(process_base_image(layer).unwrap_err().0, ALREADY_EXISTS);
        let uvm = layer.join("UtilityVM");
        assert_eq!(process_utility_image(&uvm).unwrap_err().0, FILE_NOT_FOUND);
        fs::create_dir_all(uvm.join("Files")).unwrap();
        process_utility_image(&uvm).unwrap();
        assert!(uvm.join("SystemTemplate.vhdx").is_file());
    }
}
