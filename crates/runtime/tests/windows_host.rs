//! Functional tests on a real Windows container host (`cargo test -p pane-runtime --test
//! windows_host -- --ignored`, elevated). pane cannot import layers into HCS yet, so these
//! run over a nanoserver chain that is already imported, e.g. Docker's:
//!
//! ```text
//! docker pull mcr.microsoft.com/windows/nanoserver:ltsc2022
//! docker inspect -f "{{.GraphDriver.Data.dir}}" mcr.microsoft.com/windows/nanoserver:ltsc2022
//! set PANE_TEST_LAYERS=C:\ProgramData\docker\windowsfilter\<that id>
//! ```
//!
//! `PANE_TEST_LAYERS` lists the chain's folders topmost first, separated by `;`. The image
//! build must match the host's for process isolation; Hyper-V takes any older build.
#![cfg(windows)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::sync::Arc;
use std::time::Duration;

use pane_hcs::doc::LayerRef;
use pane_oci::ImageFacts;
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::records::RecordStore;
use pane_runtime::windows_backend::{HcsCompute, HvSocketGuests, VmcomputeLayers};
use pane_runtime::{ContainerId, ExecOptions, Isolation, LogOptions, collect_exec};

fn chain() -> Vec<LayerRef> {
    let folders = std::env::var("PANE_TEST_LAYERS")
        .expect("PANE_TEST_LAYERS names an imported nanoserver chain, topmost first");
    folders
        .split(';')
        .map(|folder| LayerRef {
            // HCS identifies a layer by the GUID of its folder name (what NameToGuid gives
            // for Docker's folders); Docker's folder names are not GUIDs, so a v5 one is used.
            id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, folder.as_bytes()).to_string(),
            path: folder.to_owned(),
        })
        .collect()
}

fn image() -> ImageFacts {
    ImageFacts {
        reference: "mcr.microsoft.com/windows/nanoserver:ltsc2022".into(),
        manifest_digest: "sha256:unknown".into(),
        os: "windows".into(),
        architecture: "amd64".into(),
        os_version: None,
        entrypoint: vec![],
        cmd: vec!["cmd.exe".into()],
        env: vec![],
        working_dir: None,
        user: Some("ContainerUser".into()),
        layers: vec![],
        platform_note: None,
    }
}

fn runtime(dir: &std::path::Path) -> ContainerLifecycle {
    ContainerLifecycle::new(
        Arc::new(HcsCompute::default()),
        Arc::new(VmcomputeLayers),
        RecordStore::open(dir).unwrap(),
        Layout {
            containers: dir.join("containers"),
            owner: "pane-functional-test".into(),
            host_processors: 2,
        },
    )
    .with_guest_connector(Arc::new(HvSocketGuests))
}

fn spec(command: &str) -> pane_spec::ServiceSpec {
    pane_spec::parse_service(&format!(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ncommand: {{entrypoint: [cmd, /c, '{command}']}}\n"
    ))
    .unwrap()
}

async fn echo_exec_logs_remove(isolation: Isolation) {
    let dir = tempfile::tempdir().unwrap();
    let pane = runtime(dir.path());
    let id = ContainerId::new("functional", 1);
    let spec = spec("echo hello from nanoserver && ping -n 3 127.0.0.1 > nul");
    pane.create_isolated(&id, &spec, &image(), &chain(), isolation)
        .await
        .unwrap();
    pane.start(&id, &spec, &image()).await.unwrap();
    let exec = pane
        .exec(&id, &ExecOptions::command(["cmd", "/c", "echo from exec"]))
        .await
        .unwrap();
    let output = collect_exec(exec).await;
    assert_eq!(output.exit_code, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("from exec"));
    let outcome = tokio::time::timeout(Duration::from_secs(120), pane.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.exit_code, 0);
    let logs = pane.logs(&id, &LogOptions::default()).unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message.contains("hello from nanoserver")),
        "{logs:?}"
    );
    pane.remove(&id, false).await.unwrap();
    assert!(pane.reconcile().await.unwrap().orphans.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs an elevated Windows container host and PANE_TEST_LAYERS"]
async fn process_isolated_echo_exec_logs_remove() {
    echo_exec_logs_remove(Isolation::Process).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs an elevated Windows container host with Hyper-V and PANE_TEST_LAYERS"]
async fn hyperv_isolated_echo_exec_logs_remove() {
    echo_exec_logs_remove(Isolation::Hyperv).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs an elevated Windows container host and PANE_TEST_LAYERS"]
async fn a_long_workload_is_stopped_gracefully_or_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let pane = runtime(dir.path());
    let id = ContainerId::new("functional", 2);
    let spec = spec("ping -t 127.0.0.1");
    pane.create(&id, &spec, &image(), &chain()).await.unwrap();
    pane.start(&id, &spec, &image()).await.unwrap();
    let outcome = pane.stop(&id, Duration::from_secs(10)).await.unwrap();
    assert!(outcome.signal.is_some());
    pane.remove(&id, false).await.unwrap();
}
