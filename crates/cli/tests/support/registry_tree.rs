//! The example image laid out as a registry serves it, for test servers that serve files:
//! `<root>/v2/windows/app/manifests/{v1,<digest>}` and `<root>/v2/windows/app/blobs/<digest>`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};

pub fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/images/nanoserver-demo")
}

/// Writes the tree under `root`; tag `v1` is the example's multi-build index.
pub fn write(root: &Path) {
    let repo = root.join("v2/windows/app");
    std::fs::create_dir_all(repo.join("manifests")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example().join("index.json")).unwrap()).unwrap();
    let nested = index["manifests"][0]["digest"].as_str().unwrap();
    let blobs = example().join("blobs/sha256");
    std::fs::copy(
        blobs.join(nested.trim_start_matches("sha256:")),
        repo.join("manifests/v1"),
    )
    .unwrap();
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        let name = format!("sha256:{}", entry.file_name().to_string_lossy());
        std::fs::copy(entry.path(), repo.join("blobs").join(&name)).unwrap();
        std::fs::copy(entry.path(), repo.join("manifests").join(&name)).unwrap();
    }
}
