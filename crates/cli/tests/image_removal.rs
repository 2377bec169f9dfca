//! `pane rmi` and `pane image prune` on a store whose images containers were made from:
//! the removal is refused unless forced, and what the containers use stays until they go.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

#[path = "support/registry_tree.rs"]
mod registry_tree;

use std::path::Path;
use std::process::{Command, Output};

use pane_runtime::ContainerId;
use pane_runtime::records::{ContainerRecord, Phase, RecordStore};

fn pane(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pane"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PANE_HOST_BUILD")
        .output()
        .unwrap()
}

fn blobs(root: &Path) -> usize {
    std::fs::read_dir(root.join("content/blobs/sha256"))
        .unwrap()
        .count()
}

fn references(root: &Path) -> Vec<String> {
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("content/images.json")).unwrap()).unwrap();
    records["images"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn an_image_a_container_was_made_from_is_kept_until_the_container_goes() {
    let root = tempfile::tempdir().unwrap();
    let example = registry_tree::example();
    let loaded = pane(
        root.path(),
        &[
            "image",
            "load",
            example.to_str().unwrap(),
            "--as",
            "example/base:v1",
            "--host-build",
            "10.0.20348",
        ],
    );
    assert!(loaded.status.success(), "{loaded:?}");
    let manifest = {
        let records: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.path().join("content/images.json")).unwrap(),
        )
        .unwrap();
        records["images"]["docker.io/example/base:v1"]["manifest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A container made from it, as the runtime records one.
    let spec = pane_spec::parse_service("image:\n  name: example/base:v1\n").unwrap();
    let mut container = ContainerRecord::new(ContainerId::new("web", 0), "pane", &spec);
    container.phase = Phase::Created;
    container.image_manifest = Some(manifest);
    let containers = RecordStore::open(root.path()).unwrap();
    containers.save(&container).unwrap();
    // The container needs its manifest, config and layer, not the index they came in.
    let needed = blobs(root.path()) - 1;

    let refused = pane(root.path(), &["rmi", "example/base:v1"]);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{message}");
    assert!(
        message.contains("web-0") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(references(root.path()), ["docker.io/example/base:v1"]);

    let forced = pane(root.path(), &["rmi", "--force", "example/base:v1"]);
    assert!(forced.status.success(), "{forced:?}");
    assert!(references(root.path()).is_empty());
    assert_eq!(blobs(root.path()), needed, "the container's image stays");
    let pruned = pane(root.path(), &["image", "prune"]);
    assert!(pruned.status.success(), "{pruned:?}");
    assert_eq!(
        blobs(root.path()),
        needed,
        "prune keeps the container's image too"
    );

    containers.remove(&container.id).unwrap();
    let pruned = pane(root.path(), &["image", "prune"]);
    assert!(pruned.status.success(), "{pruned:?}");
    assert_eq!(blobs(root.path()), 0, "nothing uses the image any more");
}
