//! On Windows the layer API loads or says why not; on a container host (`--ignored`), the
//! layer id of a folder name is stable.
#![cfg(windows)]
#![allow(clippy::unwrap_used)] // test code

use pane_wclayer::LayerError;

#[test]
fn a_missing_vmcompute_is_reported_not_fatal() {
    match pane_wclayer::sys::name_to_guid("sha256-0000") {
        Ok(_) | Err(LayerError::Unavailable(_)) => {}
        Err(other) => panic!("unexpected: {other}"),
    }
}

#[test]
#[ignore = "needs a Windows host with the Containers feature"]
fn name_to_guid_is_deterministic() {
    let first = pane_wclayer::sys::name_to_guid("sha256-abc").unwrap();
    assert_eq!(
        first,
        pane_wclayer::sys::name_to_guid("sha256-abc").unwrap()
    );
    assert_ne!(
        first,
        pane_wclayer::sys::name_to_guid("sha256-abd").unwrap()
    );
}

/// Imports a real base layer and a generated layer over it, then reads the child's files
/// through its folder. `PANE_TEST_BASE_LAYER` names a base layer blob (for example
/// nanoserver's, from `pane pull` under `content/blobs/sha256/`) and
/// `PANE_TEST_BASE_DIFF_ID` its diff ID. Run elevated.
#[test]
#[ignore = "needs an elevated Windows host with the Containers feature and a base layer"]
fn a_base_layer_and_a_child_import_into_hcs() {
    use pane_wclayer::entry::{EntryKind, LayerEntry};
    use pane_wclayer::hcs_store::chain_ids;
    use pane_wclayer::{HcsLayerStore, LayerReader, LayerWriter};

    let base = std::env::var("PANE_TEST_BASE_LAYER").unwrap();
    let base_diff = std::env::var("PANE_TEST_BASE_DIFF_ID").unwrap();
    let mut writer = LayerWriter::new(Vec::new());
    let mut dir = LayerEntry::new("Files/pane-test", EntryKind::Directory);
    dir.attributes = Some(0x10);
    writer.append(&dir, None).unwrap();
    let mut file = LayerEntry::new("Files/pane-test/hello.txt", EntryKind::File { size: 5 });
    file.attributes = Some(0x20);
    writer.append(&file, Some(&mut &b"hello"[..])).unwrap();
    writer
        .append(
            &LayerEntry::new("Files/License.txt", EntryKind::Whiteout),
            None,
        )
        .unwrap();
    let child = writer.finish().unwrap();
    let child_diff = LayerReader.read(&child[..], |_, _| Ok(())).unwrap().diff_id;

    let root = tempfile::tempdir().unwrap();
    let store = HcsLayerStore::open(root.path()).unwrap();
    let chain = chain_ids(&[base_diff.clone(), child_diff.clone()]);
    let base_file = std::io::BufReader::new(std::fs::File::open(base).unwrap());
    store.import(base_file, &chain[0], &base_diff, &[]).unwrap();
    let base_folder = store.path(&chain[0]).unwrap();
    assert!(base_folder.join("blank-base.vhdx").is_file());
    store
        .import(&child[..], &chain[1], &child_diff, &[base_folder])
        .unwrap();
    let child_folder = store.path(&chain[1]).unwrap();
    assert_eq!(
        std::fs::read(child_folder.join(r"Files\pane-test\hello.txt")).unwrap(),
        b"hello"
    );
    assert!(!child_folder.join(r"Files\License.txt").exists());
    assert_eq!(store.retain(&[]).unwrap().len(), 2);
}
