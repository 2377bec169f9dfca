//! Reading the example OCI layout shipped in `examples/images`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};

use pane_oci::{LayoutError, OciLayout};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/images/nanoserver-demo")
}

fn host(text: &str) -> pane_spec::OsVersion {
    text.parse().unwrap()
}

#[test]
fn resolves_the_manifest_for_the_host_build() {
    let layout = OciLayout::open(&example()).unwrap();
    let ltsc2022 = layout
        .resolve(Some("ltsc2022"), "amd64", Some(&host("10.0.20348.1")))
        .unwrap();
    assert_eq!(ltsc2022.os_version.as_deref(), Some("10.0.20348.2700"));
    assert_eq!(ltsc2022.os, "windows");
    assert_eq!(ltsc2022.cmd, [r"c:\windows\system32\cmd.exe"]);
    assert_eq!(ltsc2022.user.as_deref(), Some("ContainerUser"));
    assert_eq!(ltsc2022.layers.len(), 1);
    assert!(ltsc2022.layers[0].diff_id.starts_with("sha256:"));
    assert_eq!(ltsc2022.platform_note, None);

    let ltsc2025 = layout
        .resolve(None, "amd64", Some(&host("10.0.26100")))
        .unwrap();
    assert_eq!(ltsc2025.os_version.as_deref(), Some("10.0.26100.1742"));
    assert_ne!(ltsc2025.manifest_digest, ltsc2022.manifest_digest);

    let unknown = layout.resolve(None, "amd64", None).unwrap();
    assert_eq!(unknown.os_version.as_deref(), Some("10.0.26100.1742"));
    assert!(unknown.platform_note.unwrap().contains("--host-build"));
}

#[test]
fn refuses_what_does_not_fit() {
    let layout = OciLayout::open(&example()).unwrap();
    let err = layout.resolve(Some("ltsc2019"), "amd64", None).unwrap_err();
    assert!(
        matches!(&err, LayoutError::NoSuchTag { available, .. } if available == "ltsc2022"),
        "{err}"
    );
    let err = layout.resolve(None, "arm64", None).unwrap_err();
    assert!(
        err.to_string().contains("windows/amd64 10.0.20348.2700"),
        "{err}"
    );
    assert!(matches!(
        OciLayout::open(Path::new("/")),
        Err(LayoutError::NotALayout { .. })
    ));
}

#[test]
fn a_corrupted_blob_is_detected_before_it_is_used() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&example(), copy.path());
    // Flip one byte in every JSON blob: whichever the resolver reads first must be caught.
    for entry in std::fs::read_dir(copy.path().join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.first() == Some(&b'{') {
            let last = bytes.len() - 2;
            bytes[last] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let err = OciLayout::open(copy.path())
        .unwrap()
        .resolve(None, "amd64", None)
        .unwrap_err();
    assert!(matches!(err, LayoutError::Corrupt { .. }), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn load_then_save_then_load_keeps_the_image() {
    let first = tempfile::tempdir().unwrap();
    let store = pane_oci::ContentStore::open(first.path()).unwrap();
    let layout = OciLayout::open(&example()).unwrap();
    let record = layout
        .import(
            &store,
            Some("ltsc2022"),
            Some("example/nanoserver:ltsc2022"),
            "amd64",
            Some(&host("10.0.20348")),
        )
        .await
        .unwrap()
        .record;
    assert_eq!(record.os_version.as_deref(), Some("10.0.20348.2700"));
    assert!(record.index.is_some());
    assert!(record.layers.iter().all(|l| store.has_blob(l)));

    let saved = tempfile::tempdir().unwrap();
    pane_oci::layout::export(&store, &record, saved.path())
        .await
        .unwrap();
    let second = tempfile::tempdir().unwrap();
    let other = pane_oci::ContentStore::open(second.path()).unwrap();
    let again = OciLayout::open(saved.path())
        .unwrap()
        .import(&other, None, None, "amd64", None)
        .await
        .unwrap()
        .record;
    assert_eq!(
        again.reference,
        "example/nanoserver:ltsc2022"
            .parse::<pane_spec::ImageReference>()
            .unwrap()
            .to_string(),
        "the reference travels in the layout, normalised"
    );
    assert_eq!(
        (&again.manifest, &again.config, &again.layers),
        (&record.manifest, &record.config, &record.layers)
    );
    let facts = other.image_facts(&again).await.unwrap();
    assert_eq!(facts.cmd, [r"c:\windows\system32\cmd.exe"]);
}
