//! Layer paths opened, linked and removed beneath a root handle (`sys::safe_open`), on a real
//! Windows file system (or wine). Wine 8 can make no reparse point (`FSCTL_SET_REPARSE_POINT`
//! and `BackupWrite` answer "not supported", Unix symlinks show as plain directories), so the
//! refusal of links is tested on the walk itself (`beneath`); the one test that plants a
//! junction needs Windows and is ignored elsewhere.
#![cfg(windows)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};

use pane_wclayer::LayerError;
use pane_wclayer::sys::{Create, Root};
use windows::Win32::Storage::FileSystem::{FILE_LIST_DIRECTORY, FILE_READ_ATTRIBUTES};

/// Sixty 8-character directories: the deepest path is well over 400 characters.
fn deep_layer_path() -> String {
    let mut path = String::from("Files");
    for i in 0..60 {
        path = format!("{path}/dir{i:04}");
    }
    path
}

fn on_disk(root: &Path, layer_path: &str) -> PathBuf {
    pane_wclayer::import::disk_path(root, layer_path)
}

#[test]
fn paths_deeper_than_max_path_are_created_linked_and_removed() {
    let temp = tempfile::tempdir().unwrap();
    let root = Root::open(temp.path()).unwrap();
    let deep = deep_layer_path();
    let mut walked = String::new();
    for part in deep.split('/') {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(part);
        drop(
            root.open_beneath(&walked, FILE_LIST_DIRECTORY, Create::Directory)
                .unwrap(),
        );
    }
    let file = format!("{deep}/kernel32.dll");
    drop(
        root.open_beneath(&file, FILE_READ_ATTRIBUTES, Create::File)
            .unwrap(),
    );
    let full = on_disk(temp.path(), &file);
    assert!(full.as_os_str().len() > 400, "{}", full.display());
    assert!(root.attributes(&file).unwrap().is_some());

    root.hard_link(&format!("{deep}/link.dll"), &root, &file)
        .unwrap();
    assert!(
        root.attributes(&format!("{deep}/link.dll"))
            .unwrap()
            .is_some()
    );

    // A file that is already there is not created again, and a missing one is not found.
    assert!(
        root.open_beneath(&file, FILE_READ_ATTRIBUTES, Create::File)
            .is_err()
    );
    assert_eq!(root.attributes(&format!("{deep}/missing")).unwrap(), None);

    root.remove_all("Files").unwrap();
    assert_eq!(root.attributes("Files").unwrap(), None);
    // Removing what is not there is not an error (a whiteout of a parent's missing file).
    root.remove_all("Files/gone").unwrap();
}

#[test]
fn bad_names_and_files_on_the_way_are_refused_with_the_entry_named() {
    let temp = tempfile::tempdir().unwrap();
    let root = Root::open(temp.path()).unwrap();
    drop(
        root.open_beneath("Files", FILE_LIST_DIRECTORY, Create::Directory)
            .unwrap(),
    );
    drop(
        root.open_beneath("Files/f", FILE_READ_ATTRIBUTES, Create::File)
            .unwrap(),
    );
    for entry in ["Files/f/x", "Files/../escape", "Files//x"] {
        match root.open_beneath(entry, FILE_READ_ATTRIBUTES, Create::File) {
            Err(LayerError::Entry { path, .. }) => assert_eq!(path, entry),
            other => panic!("{entry}: expected an entry error, got {other:?}"),
        }
    }
    assert!(!temp.path().parent().unwrap().join("escape").exists());
}

/// Plants a junction (as an earlier entry or a parent layer would) and writes, links and
/// deletes through it. Needs a Windows file system: wine cannot make junctions.
#[test]
#[ignore = "needs Windows: wine 8 cannot create a junction"]
fn nothing_is_written_or_deleted_through_a_planted_junction() {
    let temp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim.txt"), b"keep").unwrap();
    let layer = temp.path().join("layer");
    std::fs::create_dir_all(layer.join("Files")).unwrap();
    let status = std::process::Command::new("cmd")
        .args(["/c", "mklink", "/J"])
        .arg(layer.join(r"Files\evil"))
        .arg(outside.path())
        .status()
        .unwrap();
    assert!(status.success());
    let root = Root::open(&layer).unwrap();
    let named = |result: Result<(), LayerError>, entry: &str| match result {
        Err(LayerError::Entry { path, problem }) => {
            assert_eq!(path, entry);
            assert!(problem.contains("Files/evil"), "{problem}");
        }
        other => panic!("{entry}: expected a refusal, got {other:?}"),
    };
    named(
        root.open_beneath("Files/evil/pwned.dll", FILE_READ_ATTRIBUTES, Create::File)
            .map(drop),
        "Files/evil/pwned.dll",
    );
    named(
        root.remove_all("Files/evil/victim.txt"),
        "Files/evil/victim.txt",
    );
    drop(
        root.open_beneath("Files/real", FILE_READ_ATTRIBUTES, Create::File)
            .unwrap(),
    );
    named(
        root.hard_link("Files/evil/linked", &root, "Files/real"),
        "Files/evil/linked",
    );
    assert_eq!(
        std::fs::read(outside.path().join("victim.txt")).unwrap(),
        b"keep"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    // A whiteout of the junction itself removes the junction, not what it points to.
    root.remove_all("Files/evil").unwrap();
    assert!(outside.path().join("victim.txt").exists());
}

#[test]
fn a_whited_out_tree_goes_with_its_read_only_files() {
    let temp = tempfile::tempdir().unwrap();
    let root = Root::open(temp.path()).unwrap();
    for directory in ["Files", "Files/d", "Files/d/e"] {
        drop(
            root.open_beneath(directory, FILE_LIST_DIRECTORY, Create::Directory)
                .unwrap(),
        );
    }
    for file in ["Files/d/a.txt", "Files/d/e/b.txt"] {
        std::fs::write(on_disk(temp.path(), file), b"x").unwrap();
    }
    let locked = on_disk(temp.path(), "Files/d/e/b.txt");
    let mut permissions = std::fs::metadata(&locked).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&locked, permissions).unwrap();
    root.remove_all("Files/d").unwrap();
    assert_eq!(root.attributes("Files/d").unwrap(), None);
    assert!(root.attributes("Files").unwrap().is_some());
}
