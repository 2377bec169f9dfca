//! Staging a layer as the legacy import folder `ImportLayer` reads, on a real disk: the
//! bytes of every staged file, and what is kept aside for after the import.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use pane_wclayer::backup::{self, StreamRecord};
use pane_wclayer::entry::{EntryKind, LayerEntry};
use pane_wclayer::import::import_stream;
use pane_wclayer::import::legacy::{LegacyImportFolder, LinkRoot, PendingLink, StagedLayer};
use pane_wclayer::{LayerError, LayerWriter};

const SD: &[u8] = b"\x01\x00\x04\x80self-relative-sd";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn dir(path: &str) -> LayerEntry {
    let mut entry = LayerEntry::new(path, EntryKind::Directory);
    entry.attributes = Some(0x10);
    entry
}

fn file(path: &str, size: usize) -> LayerEntry {
    let mut entry = LayerEntry::new(path, EntryKind::File { size: size as u64 });
    entry.attributes = Some(0x20);
    entry
}

fn tar(entries: &[(LayerEntry, &[u8])]) -> Vec<u8> {
    let mut writer = LayerWriter::new(Vec::new());
    for (entry, data) in entries {
        let mut data = *data;
        let data: Option<&mut dyn std::io::Read> = if matches!(entry.kind, EntryKind::File { .. }) {
            Some(&mut data)
        } else {
            None
        };
        writer.append(entry, data).unwrap();
    }
    writer.finish().unwrap()
}

fn stage(
    tar: &[u8],
    staging: &Path,
    parents: &[std::path::PathBuf],
) -> Result<(String, StagedLayer), LayerError> {
    let mut folder = LegacyImportFolder::create(staging)?;
    let summary = import_stream(tar, &mut folder)?;
    let mut staged = folder.finish()?;
    staged.resolve_links(parents)?;
    Ok((summary.diff_id, staged))
}

/// A staged file: its attribute prefix and its backup-stream records with their data.
fn records(path: &Path) -> (u32, Vec<(StreamRecord, Vec<u8>)>) {
    let bytes = std::fs::read(path).unwrap();
    let attributes = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    let mut cursor = std::io::Cursor::new(&bytes[4..]);
    let mut out = Vec::new();
    while let Some(record) = backup::next_record(&mut cursor).unwrap() {
        let mut data = vec![0u8; usize::try_from(record.size).unwrap()];
        std::io::Read::read_exact(&mut cursor, &mut data).unwrap();
        out.push((record, data));
    }
    (attributes, out)
}

fn ids(records: &[(StreamRecord, Vec<u8>)]) -> Vec<u32> {
    records.iter().map(|(r, _)| r.id).collect()
}

/// Every kind of entry a layer over a parent carries.
fn sample_layer() -> Vec<u8> {
    let mut windows = dir("Files/Windows");
    windows.security_descriptor = Some(b64(SD));
    windows.modification_time = Some("1700000000.5".into());
    let mut a = file("Files/Windows/a.txt", 7);
    a.security_descriptor = Some(b64(SD));
    a.extended_attributes.insert("X".into(), b64(&[9, 9]));
    a.modification_time = Some("1700000000.25".into());
    a.creation_time = Some("1600000000".into());
    let ads = LayerEntry::new(
        "Files/Windows/a.txt:Zone.Identifier",
        EntryKind::File { size: 4 },
    );
    let mut link = LayerEntry::new(
        "Files/Windows/link",
        EntryKind::SymbolicLink {
            target: r"C:\Windows\System32".into(),
            junction: false,
        },
    );
    link.attributes = Some(0x400);
    tar(&[
        (dir("Files"), b""),
        (windows, b""),
        (a, b"content"),
        (ads, b"zone"),
        (
            LayerEntry::new(
                "Files/Windows/b.txt",
                EntryKind::HardLink {
                    target: "Files/Windows/a.txt".into(),
                },
            ),
            b"",
        ),
        (
            LayerEntry::new(
                "Files/Windows/k.dll",
                EntryKind::HardLink {
                    target: "Files/System32/k.dll".into(),
                },
            ),
            b"",
        ),
        (link, b""),
        (LayerEntry::new("Files/Old.txt", EntryKind::Whiteout), b""),
        (dir("Hives"), b""),
        (file("Hives/System_Delta", 4), b"hive"),
        (dir("UtilityVM"), b""),
        (dir("UtilityVM/Files"), b""),
        (file("UtilityVM/Files/new.txt", 3), b"new"),
        (
            LayerEntry::new("UtilityVM/Files/gone.txt", EntryKind::Whiteout),
            b"",
        ),
    ])
}

#[test]
fn a_layer_stages_as_the_legacy_import_folder() {
    let temp = tempfile::tempdir().unwrap();
    let parent = temp.path().join("parent");
    std::fs::create_dir_all(parent.join("Files/System32")).unwrap();
    std::fs::write(parent.join("Files/System32/k.dll"), b"kernel").unwrap();

    let layer = sample_layer();
    let staging = temp.path().join("staging");
    let (diff_id, staged) = stage(&layer, &staging, std::slice::from_ref(&parent)).unwrap();
    let root = &staged.import_root;

    // Directories: the directory itself and `<name>.$wcidirs$` with attributes and metadata.
    assert!(root.join("Files/Windows").is_dir());
    let (attributes, files_root) = records(&root.join("Files.$wcidirs$"));
    assert_eq!((attributes, files_root.len()), (0x10, 0));
    let (attributes, windows_records) = records(&root.join("Files/Windows.$wcidirs$"));
    assert_eq!(attributes, 0x10);
    assert_eq!(ids(&windows_records), [backup::STREAM_SECURITY]);
    assert_eq!(windows_records[0].1, SD);

    // A file: security, EAs, data, then its alternate stream, in that order.
    let (attributes, a_records) = records(&root.join("Files/Windows/a.txt"));
    assert_eq!(attributes, 0x20);
    assert_eq!(
        ids(&a_records),
        [
            backup::STREAM_SECURITY,
            backup::STREAM_EA_DATA,
            backup::STREAM_DATA,
            backup::STREAM_ALTERNATE_DATA
        ]
    );
    let eas = backup::decode_extended_attributes(&a_records[1].1).unwrap();
    assert_eq!(eas, BTreeMap::from([("X".to_owned(), b64(&[9, 9]))]));
    assert_eq!(a_records[2].1, b"content");
    assert_eq!(a_records[3].0.name, ":Zone.Identifier:$DATA");
    assert_eq!(a_records[3].1, b"zone");
    // ImportLayer takes the file times from the staged file.
    let modified = std::fs::metadata(root.join("Files/Windows/a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(
        (since_epoch.as_secs(), since_epoch.subsec_millis()),
        (1_700_000_000, 250)
    );
    assert!(!root.join("Files/Windows/a.txt:Zone.Identifier").exists());

    // A symlink is a reparse record and no data.
    let (attributes, link_records) = records(&root.join("Files/Windows/link"));
    assert_eq!(attributes, 0x400);
    assert_eq!(ids(&link_records), [backup::STREAM_REPARSE]);
    assert_eq!(
        backup::decode_reparse_point(&link_records[0].1).unwrap(),
        (r"C:\Windows\System32".to_owned(), false)
    );

    // Registry deltas are plain files.
    assert_eq!(
        std::fs::read(root.join("Hives/System_Delta")).unwrap(),
        b"hive"
    );

    // Kept aside for after ImportLayer.
    assert!(!root.join("Files/Windows/b.txt").exists());
    assert!(!root.join("Files/Windows/k.dll").exists());
    assert_eq!(
        staged.links,
        [
            PendingLink {
                path: "Files/Windows/b.txt".into(),
                target: "Files/Windows/a.txt".into(),
                root: LinkRoot::ThisLayer,
            },
            PendingLink {
                path: "Files/Windows/k.dll".into(),
                target: "Files/System32/k.dll".into(),
                root: LinkRoot::Parent(0),
            },
        ]
    );
    assert_eq!(staged.tombstones, ["Files/Old.txt"]);
    assert!(staged.has_utility_vm);
    assert!(!root.join("UtilityVM").exists());
    let uvm: Vec<&str> = staged
        .utility_vm_entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(uvm, ["UtilityVM/Files", "UtilityVM/Files/new.txt"]);
    let (_, new_records) = records(&staged.utility_vm_entries[1].stream);
    assert_eq!(new_records[0].1, b"new");
    assert_eq!(staged.utility_vm_removals, ["UtilityVM/Files/gone.txt"]);
    let directories: Vec<&str> = staged.directories.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        directories,
        [
            "Files",
            "Files/Windows",
            "Hives",
            "UtilityVM",
            "UtilityVM/Files"
        ]
    );
    assert_eq!(staged.size, 7 + 4 + 3);
    let expected = pane_wclayer::LayerReader
        .read(&layer[..], |_, _| Ok(()))
        .unwrap()
        .diff_id;
    assert_eq!(diff_id, expected);
}

#[test]
fn what_import_cannot_take_is_refused_by_entry() {
    let temp = tempfile::tempdir().unwrap();
    let parent = temp.path().join("parent");
    std::fs::create_dir_all(parent.join("Files")).unwrap();
    let mut junction = LayerEntry::new(
        "Files/j",
        EntryKind::SymbolicLink {
            target: r"C:\data".into(),
            junction: true,
        },
    );
    junction.attributes = Some(0x10 | 0x400);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a link no layer can satisfy",
            tar(&[(
                LayerEntry::new(
                    "Files/l",
                    EntryKind::HardLink {
                        target: "Files/missing.dll".into(),
                    },
                ),
                b"",
            )]),
            "Files/l",
        ),
        (
            "a stream away from its file",
            tar(&[
                (dir("Files"), b""),
                (file("Files/a", 1), b"a"),
                (file("Files/b", 1), b"b"),
                (
                    LayerEntry::new("Files/a:s", EntryKind::File { size: 1 }),
                    b"s",
                ),
            ]),
            "Files/a:s",
        ),
        (
            "a file beneath a junction",
            tar(&[
                (dir("Files"), b""),
                (junction.clone(), b""),
                (file("Files/j/x", 1), b"x"),
            ]),
            "Files/j/x",
        ),
        (
            "a whiteout beneath a junction",
            tar(&[
                (dir("Files"), b""),
                (junction.clone(), b""),
                (LayerEntry::new("Files/J/victim", EntryKind::Whiteout), b""),
            ]),
            "Files/J/victim",
        ),
        (
            "a file before its directory",
            tar(&[(dir("Files"), b""), (file("Files/d/x", 1), b"x")]),
            "Files/d/x",
        ),
        (
            "utility VM files without the UtilityVM entry",
            tar(&[(file("UtilityVM/Files/x", 1), b"x")]),
            "UtilityVM/Files/x",
        ),
    ];
    for (index, (what, layer, path)) in cases.into_iter().enumerate() {
        let staging = temp.path().join(format!("staging-{index}"));
        match stage(&layer, &staging, std::slice::from_ref(&parent)) {
            Err(LayerError::Entry { path: named, .. }) => assert_eq!(named, path, "{what}"),
            other => panic!("{what}: expected an entry error, got {other:?}"),
        }
    }
}

#[cfg(not(windows))]
#[test]
fn sddl_security_descriptors_need_a_windows_host() {
    let temp = tempfile::tempdir().unwrap();
    let mut entry = file("Files/a", 1);
    entry.sddl = Some("O:BAG:BAD:(A;;FA;;;BA)".into());
    let error = stage(&tar(&[(entry, b"a")]), &temp.path().join("s"), &[]).unwrap_err();
    assert!(error.to_string().contains("MSWINDOWS.sd"), "{error}");
}

#[test]
fn the_store_stages_once_and_a_bad_layer_leaves_nothing() {
    use pane_wclayer::HcsLayerStore;
    use pane_wclayer::hcs_store::chain_ids;

    let temp = tempfile::tempdir().unwrap();
    let store = HcsLayerStore::open(temp.path()).unwrap();
    let layer = tar(&[(dir("Files"), b""), (file("Files/a", 1), b"a")]);
    let diff_id = pane_wclayer::LayerReader
        .read(&layer[..], |_, _| Ok(()))
        .unwrap()
        .diff_id;
    let base = "sha256:".to_owned() + &"1".repeat(64);
    let chain = chain_ids(&[base, diff_id.clone()]);
    assert!(store.stage(&layer[..], &chain[1], &diff_id).unwrap());
    let staging = store.staged_path(&chain[1]).unwrap();
    let staged = StagedLayer::load(&staging).unwrap();
    assert_eq!(staged.size, 1);
    assert!(staged.import_root.join("Files/a").is_file());
    assert!(
        !store.stage(&layer[..], &chain[1], &diff_id).unwrap(),
        "staged once"
    );

    // The wrong diff ID: refused, and no staging folder is left.
    let other = "sha256:".to_owned() + &"2".repeat(64);
    let wrong = chain_ids(&[chain[1].clone(), other.clone()]);
    assert!(matches!(
        store.stage(&layer[..], &wrong[1], &other),
        Err(LayerError::DiffId { .. })
    ));
    assert!(!store.staged_path(&wrong[1]).unwrap().exists());

    // An unfinished staging (no record) is redone, not taken.
    std::fs::remove_file(staging.join("staged.json")).unwrap();
    assert!(StagedLayer::load(&staging).is_none());
    assert!(store.stage(&layer[..], &chain[1], &diff_id).unwrap());
}

#[test]
fn concurrent_stagings_of_one_layer_stage_it_once() {
    use pane_wclayer::HcsLayerStore;
    use pane_wclayer::hcs_store::chain_ids;

    let temp = tempfile::tempdir().unwrap();
    let store = HcsLayerStore::open(temp.path()).unwrap();
    let files: Vec<(LayerEntry, Vec<u8>)> = (0..2000)
        .map(|i| (file(&format!("Files/f{i}"), 1000), vec![7u8; 1000]))
        .collect();
    let mut entries: Vec<(LayerEntry, &[u8])> = vec![(dir("Files"), b"")];
    entries.extend(files.iter().map(|(e, d)| (e.clone(), d.as_slice())));
    let layer = tar(&entries);
    let diff_id = pane_wclayer::LayerReader
        .read(&layer[..], |_, _| Ok(()))
        .unwrap()
        .diff_id;
    let chain = chain_ids(&["sha256:".to_owned() + &"1".repeat(64), diff_id.clone()]);
    let start = std::sync::Barrier::new(4);
    let staged: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    store.stage(&layer[..], &chain[1], &diff_id).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(staged.iter().filter(|s| **s).count(), 1, "{staged:?}");
    let record = StagedLayer::load(&store.staged_path(&chain[1]).unwrap()).unwrap();
    assert_eq!(record.size, 2000 * 1000);
}
