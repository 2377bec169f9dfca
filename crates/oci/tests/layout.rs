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

/// A copy of the example layout to break.
fn copy_of_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    for name in ["oci-layout", "index.json"] {
        std::fs::copy(example().join(name), dir.path().join(name)).unwrap();
    }
    for entry in std::fs::read_dir(example().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("blobs/sha256").join(entry.file_name()),
        )
        .unwrap();
    }
    dir
}

async fn load(dir: &Path, reference: Option<&str>) -> Result<pane_oci::LoadedImage, LayoutError> {
    let store_dir = tempfile::tempdir().unwrap();
    let store = pane_oci::ContentStore::open(store_dir.path()).unwrap();
    OciLayout::open(dir)?
        .import(
            &store,
            Some("ltsc2022"),
            reference,
            "amd64",
            Some(&host("10.0.20348")),
        )
        .await
}

fn largest_blob(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[cfg(unix)]
#[tokio::test]
async fn a_layout_whose_files_are_links_or_fifos_is_refused() {
    let linked = copy_of_example();
    std::fs::remove_file(linked.path().join("index.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", linked.path().join("index.json")).unwrap();
    let error = load(linked.path(), Some("a/b:c")).await.unwrap_err();
    assert!(matches!(error, LayoutError::NotRegular { .. }), "{error}");

    let fifo = copy_of_example();
    let layer = largest_blob(fifo.path());
    std::fs::remove_file(&layer).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&layer)
        .status()
        .unwrap();
    assert!(made.success());
    let error = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        load(fifo.path(), Some("a/b:c")),
    )
    .await
    .expect("a FIFO does not hang the load")
    .unwrap_err();
    assert!(matches!(error, LayoutError::NotRegular { .. }), "{error}");
}

#[tokio::test]
async fn a_blob_longer_than_its_descriptor_is_refused() {
    let dir = copy_of_example();
    let layer = largest_blob(dir.path());
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&layer, bytes).unwrap();
    let error = load(dir.path(), Some("a/b:c")).await.unwrap_err();
    assert!(
        error.to_string().contains("bytes received") || error.to_string().contains("larger"),
        "{error}"
    );
}

#[tokio::test]
async fn layout_names_are_parsed_normalised_and_never_printed_raw() {
    let dir = copy_of_example();
    // The example tags its image with a bare tag, which names no repository.
    let error = load(dir.path(), None).await.unwrap_err();
    assert!(
        matches!(&error, LayoutError::UnnamedImage { name } if name == "ltsc2022"),
        "{error}"
    );
    let index_path = dir.path().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let set_name = |index: &mut serde_json::Value, name: &str| {
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = name.into();
    };
    set_name(&mut index, "evil/\u{1b}[31mred:ltsc2022");
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = pane_oci::ContentStore::open(store_dir.path()).unwrap();
    let layout = OciLayout::open(dir.path()).unwrap();
    let error = layout
        .import(&store, None, None, "amd64", Some(&host("10.0.20348")))
        .await
        .unwrap_err();
    let shown = error.to_string();
    assert!(!shown.contains('\u{1b}'), "{shown:?}");

    set_name(&mut index, "example/nanoserver:ltsc2022");
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let layout = OciLayout::open(dir.path()).unwrap();
    let loaded = layout
        .import(&store, None, None, "amd64", Some(&host("10.0.20348")))
        .await
        .unwrap();
    assert_eq!(
        loaded.record.reference,
        "docker.io/example/nanoserver:ltsc2022"
    );
    assert_eq!(loaded.replaced, None);
    // The same name, loaded for another build: the reference now names another image.
    let again = layout
        .import(&store, None, None, "amd64", Some(&host("10.0.26100")))
        .await
        .unwrap();
    assert_eq!(
        again.replaced.as_deref(),
        Some(loaded.record.manifest.as_str())
    );
}

#[cfg(unix)]
#[tokio::test]
async fn save_never_writes_through_a_link_and_merges_into_a_layout() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = pane_oci::ContentStore::open(store_dir.path()).unwrap();
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

    let target = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), target.path().join("blobs")).unwrap();
    let error = pane_oci::layout::export(&store, &record, target.path())
        .await
        .unwrap_err();
    assert!(matches!(error, LayoutError::Obstructed { .. }), "{error}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // A planted link where a blob goes is refused, not followed.
    let target = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"host file").unwrap();
    std::fs::create_dir_all(target.path().join("blobs/sha256")).unwrap();
    std::os::unix::fs::symlink(
        &victim,
        target
            .path()
            .join("blobs/sha256")
            .join(record.config.trim_start_matches("sha256:")),
    )
    .unwrap();
    let error = pane_oci::layout::export(&store, &record, target.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"host file");

    // A file of another length where a blob goes is refused by its length, unread (a
    // sparse one of any size would otherwise be hashed to its end).
    let target = tempfile::tempdir().unwrap();
    let blobs = target.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let planted =
        std::fs::File::create(blobs.join(record.config.trim_start_matches("sha256:"))).unwrap();
    planted.set_len(1 << 40).unwrap();
    let error = pane_oci::layout::export(&store, &record, target.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("1099511627776 bytes"), "{error}");

    // Saving into a layout keeps the images already there.
    let merged = copy_of_example();
    pane_oci::layout::export(&store, &record, merged.path())
        .await
        .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.path().join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(names, ["ltsc2022", "example/nanoserver:ltsc2022"]);
}
