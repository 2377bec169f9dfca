//! `pane network ls` and `pane network inspect` as users run them: the CNI networks of
//! the configuration directory, the node slice filled in, and located errors for bad
//! configuration files.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers, not product code

use std::path::Path;
use std::process::{Command, Output};

fn pane(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pane"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PANE_NODE_SLICE")
        .env_remove("PANE_CNI_CONF_DIR")
        .env_remove("PANE_CNI_BIN_DIR")
        .env_remove("PANE_CNI_CONTAINERD")
        .output()
        .expect("the pane binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A root whose `cni/conf` holds the overlay network (taking the node slice), a
/// network with its own subnet, and a file that cannot be used.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("cni").join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-overlay.conflist"),
        r#"{"cniVersion":"1.0.0","name":"pane-overlay","plugins":[{"type":"sdnoverlay","ipam":{"type":"host-local"}}]}"#,
    )
    .unwrap();
    std::fs::write(
        conf.join("20-lan.conflist"),
        r#"{"cniVersion":"1.1.0","name":"lan","plugins":[{"type":"sdnbridge","ipam":{"type":"host-local","ranges":[[{"subnet":"192.168.77.0/24"}]]}}]}"#,
    )
    .unwrap();
    std::fs::write(
        conf.join("30-bad.conflist"),
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"..\\evil"}]}"#,
    )
    .unwrap();
    dir
}

#[test]
fn ls_shows_each_usable_network_with_its_subnet_and_names_the_file_it_skipped() {
    let root = root();
    let output = pane(
        root.path(),
        &["--node-slice", "10.200.3.0/24", "network", "ls"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let overlay = stdout
        .lines()
        .find(|l| l.starts_with("pane-overlay"))
        .unwrap();
    assert!(
        overlay.contains("cni (slice)") && overlay.contains("10.200.3.0/24"),
        "{stdout}"
    );
    let lan = stdout.lines().find(|l| l.starts_with("lan")).unwrap();
    assert!(lan.contains("192.168.77.0/24"), "{stdout}");
    assert!(!stdout.contains("bad"), "{stdout}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("30-bad.conflist") && stderr.contains("plugins[0].type"),
        "{stderr}"
    );
    let json = pane(
        root.path(),
        &["--json", "--node-slice", "10.200.3.0/24", "network", "ls"],
    );
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[0]["name"], "pane-overlay");
    assert_eq!(rows[0]["node_slice"], true);
    assert_eq!(rows[0]["plugins"][0], "sdnoverlay");
}

#[test]
fn inspect_shows_the_configuration_the_plugins_get_and_refuses_what_cannot_be_used() {
    let root = root();
    let output = pane(
        root.path(),
        &[
            "--node-slice",
            "10.200.3.0/26",
            "network",
            "inspect",
            "pane-overlay",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let detail: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ipam = &detail["configuration"]["plugins"][0]["ipam"];
    assert_eq!(
        ipam["ranges"][0][0],
        serde_json::json!({"subnet": "10.200.3.0/26", "rangeStart": "10.200.3.2", "rangeEnd": "10.200.3.62", "gateway": "10.200.3.1"})
    );
    assert_eq!(
        Path::new(ipam["dataDir"].as_str().unwrap()),
        root.path().join("cni").join("ipam")
    );
    // Without a slice, the overlay network cannot hand out addresses: say how to fix it.
    let output = pane(root.path(), &["network", "inspect", "pane-overlay"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--node-slice"),
        "{}",
        text(&output.stderr)
    );
    // The broken file is reported where it is broken.
    let output = pane(root.path(), &["network", "inspect", "bad"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("30-bad.conflist field `plugins[0].type`"),
        "{stderr}"
    );
    let output = pane(root.path(), &["network", "inspect", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("pane network ls"));
}

#[test]
fn a_node_slice_with_host_bits_is_refused_with_the_network_address() {
    let root = root();
    let output = pane(
        root.path(),
        &["--node-slice", "10.200.3.9/24", "network", "ls"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("10.200.3.0/24"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn plan_shows_the_cni_add_with_the_configuration_the_plugins_get() {
    let root = root();
    let spec = root.path().join("web.yaml");
    std::fs::write(
        &spec,
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nnetworks: [pane-overlay, nat]\nports: [\"8080:80\"]\ncommand: {entrypoint: [cmd, /c, echo hi]}\n",
    )
    .unwrap();
    let layout =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/images/nanoserver-demo");
    let output = pane(
        root.path(),
        &[
            "--json",
            "--node-slice",
            "10.200.3.0/24",
            "plan",
            spec.to_str().unwrap(),
            "--image-layout",
            layout.to_str().unwrap(),
            "--host-build",
            "10.0.26100",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let plans: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let steps = plans[0]["steps"].as_array().unwrap();
    let calls: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["api"].as_str().unwrap(),
                s["call"].as_str().unwrap()
            )
        })
        .collect();
    let add = steps.iter().find(|s| s["api"] == "cni").unwrap();
    assert_eq!(add["target"], "pane-overlay / eth0");
    let document = &add["document"];
    assert_eq!(
        document["configuration"]["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.200.3.0/24"
    );
    assert_eq!(
        document["capabilityArgs"]["portMappings"][0]["hostPort"],
        8080
    );
    // `nat` names no CNI configuration: it is an HCN network, with pane's endpoint.
    assert!(
        calls.iter().any(|c| c == "network HcnCreateEndpoint"),
        "{calls:?}"
    );
}
