//! Image commands without a registry: load an OCI layout, list, plan from the store, save,
//! tag, remove, prune.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
        .to_string_lossy()
        .into_owned()
}

fn pane(root: &str, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_pane"))
        .args(["--root", root, "--json"])
        .args(args)
        .env_remove("PANE_HOST_BUILD")
        .output()
        .expect("the pane binary runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "pane {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn load_list_plan_save_tag_remove() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    let name = "mcr.microsoft.com/windows/nanoserver:ltsc2022";
    let loaded = json(&pane(
        root,
        &[
            "image",
            "load",
            &repo("examples/images/nanoserver-demo"),
            "--as",
            name,
            "--host-build",
            "10.0.20348",
        ],
    ));
    assert_eq!(loaded["os_version"], "10.0.20348.2700");

    let images = json(&pane(root, &["images"]));
    assert_eq!(images.as_array().unwrap().len(), 1);
    assert_eq!(images[0]["reference"], name);
    assert!(images[0]["size_bytes"].as_u64().unwrap() > 0);

    // The plan now finds the image in the store, without --image-layout.
    let plans = json(&pane(
        root,
        &[
            "plan",
            &repo("examples/nanoserver-batch.yaml"),
            "--host-build",
            "10.0.20348",
        ],
    ));
    assert_eq!(plans[0]["manifest"], loaded["manifest"]);

    let saved = tempfile::tempdir().unwrap();
    let out = saved.path().join("layout");
    pane(root, &["image", "save", name, out.to_str().unwrap()]);
    assert!(out.join("index.json").is_file() && out.join("oci-layout").is_file());

    pane(root, &["tag", name, "example/copy:v1"]);
    assert_eq!(json(&pane(root, &["images"])).as_array().unwrap().len(), 2);
    let removed = json(&pane(root, &["rmi", name]));
    assert_eq!(
        removed["deleted"].as_array().unwrap().len(),
        0,
        "the copy still uses every blob"
    );
    let removed = json(&pane(root, &["rmi", "example/copy:v1"]));
    assert_eq!(
        removed["deleted"].as_array().unwrap().len(),
        4,
        "index, manifest, config and layer"
    );
    assert!(
        json(&pane(root, &["images"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
}
