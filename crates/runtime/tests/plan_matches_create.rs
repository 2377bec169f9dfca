//! `pane plan` shows what a create sends: for every example spec in both isolations (and a
//! spec with every kind of mount and more CPUs than the host has), the documents the plan
//! prints for HCS are, byte for byte, the ones the runtime hands to the HCS double during
//! create, and the hosted container it prints is the one the guest receives. Both are given
//! the same host: its layers, files, processors, time zone, scratch volume and MACs.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use pane_gcs::Rpc;
use pane_gcs::messages::{NULL_CONTAINER_ID, SystemTime, TimeZoneInformation};
use pane_hcs::doc::{LayerRef, SourceKind};
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::plan::{HostValues, Plan, PlanInput, plan};
use pane_runtime::records::RecordStore;
use pane_runtime::{ContainerId, Isolation};
use pane_spec::{IsolationMode, ServiceSpec, SpecFile};
use serde_json::Value;
use support::fake_files::FakeFiles;
use support::fake_hcs::FakeHcs;
use support::fake_layers::FakeLayers;
use support::fake_network::FakeNetwork;
use support::fixtures::image;
use support::guest::PeerGuests;

const HOST_PROCESSORS: u32 = 4;
/// What the layer double's activation mounts every scratch at.
const SCRATCH_VOLUME: &str = r"\\?\Volume{5f1c2d3e-0000-0000-0000-000000000001}\";

/// A host west of UTC with daylight saving, so its zone cannot pass for UTC.
fn pacific() -> TimeZoneInformation {
    let sunday = |month| SystemTime {
        month,
        day: if month == 3 { 2 } else { 1 },
        hour: 2,
        ..SystemTime::default()
    };
    TimeZoneInformation {
        bias: 480,
        standard_name: "Pacific Standard Time".into(),
        standard_date: Some(sunday(11)),
        standard_bias: 0,
        daylight_name: "Pacific Daylight Time".into(),
        daylight_date: Some(sunday(3)),
        daylight_bias: -60,
    }
}

struct Host {
    hcs: Arc<FakeHcs>,
    network: Arc<FakeNetwork>,
    guests: Arc<PeerGuests>,
    files: Arc<FakeFiles>,
    runtime: ContainerLifecycle,
    chain: Vec<LayerRef>,
    dir: tempfile::TempDir,
}

fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("layers").join("base");
    std::fs::create_dir_all(base.join("UtilityVM/Files")).unwrap();
    std::fs::write(base.join("UtilityVM/SystemTemplate.vhdx"), b"template").unwrap();
    let app = dir.path().join("layers").join("app");
    std::fs::create_dir_all(&app).unwrap();
    let chain = vec![
        LayerRef {
            id: "8b6a6a2f-5c0f-5b7e-9e4f-0c6c3b1e2a11".into(),
            path: app.display().to_string(),
        },
        LayerRef {
            id: "1f0e2d3c-4b5a-5968-8776-a5b4c3d2e1f0".into(),
            path: base.display().to_string(),
        },
    ];
    let files = Arc::new(FakeFiles::default());
    files
        .folder(r"\\fileserver\renders\scene-42")
        .folder(r"D:\sites\storefront")
        .folder(r"C:\jobs\input")
        .folder(r"C:\jobs\output")
        .file(r"D:\config\web.config")
        .link(r"D:\current", r"E:\releases\42", SourceKind::Directory);
    let hcs = Arc::new(FakeHcs::default());
    let network = Arc::new(FakeNetwork::default());
    network.add_network("frontend", [10, 0, 5]);
    let guests = Arc::new(PeerGuests::new(dir.path().join("g"), hcs.clone()));
    let runtime = ContainerLifecycle::new(
        hcs.clone(),
        Arc::new(FakeLayers::default()),
        RecordStore::open(dir.path()).unwrap(),
        Layout {
            containers: dir.path().join("containers"),
            owner: "pane".into(),
            host_processors: HOST_PROCESSORS,
        },
    )
    .with_guest_connector(guests.clone())
    .with_network(network.clone())
    .with_host_files(files.clone())
    .with_host_time_zone(pacific());
    Host {
        hcs,
        network,
        guests,
        files,
        runtime,
        chain,
        dir,
    }
}

/// Every service of every example, and one more with every kind of mount.
fn specs() -> Vec<(String, ServiceSpec)> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut specs = Vec::new();
    for name in ["nanoserver-batch", "iis-servercore", "gpu-hyperv"] {
        match pane_spec::load(&examples.join(format!("{name}.yaml"))).unwrap() {
            SpecFile::Service(spec) => specs.push((name.to_owned(), spec)),
            SpecFile::Deployment(deployment) => specs.extend(deployment.services),
        }
    }
    let every_mount = pane_spec::parse_service(
        r"
image: mcr.microsoft.com/windows/servercore:ltsc2022
hostname: every-mount
resources: {cpu: 8, memory: 1Gi}
mounts:
  - {source: 'D:\config\web.config', target: 'C:\app\web.config', read_only: true}
  - {source: '\\.\pipe\docker_engine', target: '\\.\pipe\docker_engine'}
  - {source: 'D:\current', target: 'C:\app\current', read_only: true}
  - {source: 'C:\jobs\output', target: 'C:\app\out'}
",
    )
    .unwrap();
    specs.push(("every-mount".to_owned(), every_mount));
    specs
}

fn plan_for(host: &Host, id: &ContainerId, spec: &ServiceSpec, mac: Option<&str>) -> Plan {
    let image = image();
    let time_zone = pacific();
    let root = host.dir.path().display().to_string();
    plan(&PlanInput {
        id,
        spec,
        image: &image,
        host_build: None,
        host_processors: HOST_PROCESSORS,
        host_time_zone: Some(&time_zone),
        gpu_adapters: None,
        files: host.files.as_ref(),
        root: &root,
        owner: "pane",
        host: HostValues {
            chain: Some(&host.chain),
            scratch_volume: Some(SCRATCH_VOLUME),
            endpoint_mac: mac,
            network_id: None,
        },
        cni: None,
    })
    .unwrap()
}

/// The plan's HCS documents as `(call, target, JSON text)`.
fn planned_hcs_documents(plan: &Plan) -> Vec<(String, String, String)> {
    plan.steps
        .iter()
        .filter(|s| {
            s.api == "hcs"
                && matches!(
                    s.call.as_str(),
                    "HcsCreateComputeSystem" | "HcsModifyComputeSystem"
                )
        })
        .map(|s| {
            let document = s.document.as_ref().expect("an HCS step with a document");
            (s.call.clone(), s.target.clone(), document.to_string())
        })
        .collect()
}

/// The document of the plan's guest `Create` for `id`.
fn guest_create(plan: &Plan, id: &str) -> Option<Value> {
    plan.steps
        .iter()
        .find(|s| s.api == "gcs" && s.call == "Create" && s.target == id)
        .and_then(|s| s.document.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_show_exactly_what_create_sends() {
    let mut compared = 0;
    for (name, mut spec) in specs() {
        for isolation in [Isolation::Process, Isolation::Hyperv] {
            spec.isolation = match isolation {
                Isolation::Process => IsolationMode::Process,
                Isolation::Hyperv => IsolationMode::Hyperv,
            };
            let case = format!("{name} under {isolation} isolation");
            let host = host();
            let id = ContainerId::new(name.clone(), 1);
            if isolation == Isolation::Hyperv && spec.resources.gpu.is_some() {
                // Refused, in the plan as in a create, before anything is sent.
                let image = image();
                let root = host.dir.path().display().to_string();
                let refused = plan(&PlanInput {
                    id: &id,
                    spec: &spec,
                    image: &image,
                    host_build: None,
                    host_processors: HOST_PROCESSORS,
                    host_time_zone: None,
                    gpu_adapters: None,
                    files: host.files.as_ref(),
                    root: &root,
                    owner: "pane",
                    host: HostValues::default(),
                    cni: None,
                });
                assert!(refused.is_err(), "{case}: a GPU under Hyper-V is refused");
                continue;
            }
            host.runtime
                .create_isolated(&id, &spec, &image(), &host.chain, isolation)
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            // What the host handed out at create: the endpoint's MAC.
            let record = RecordStore::open(host.dir.path())
                .unwrap()
                .load(&id)
                .unwrap();
            let mac = record
                .resources
                .endpoints
                .first()
                .and_then(|endpoint| host.network.mac_of(endpoint.parse().unwrap()));
            let plan = plan_for(&host, &id, &spec, mac.as_deref());
            let sent: Vec<(String, String, String)> = host
                .hcs
                .sent_documents()
                .into_iter()
                .map(|d| (d.call.to_owned(), d.id, d.document.to_string()))
                .collect();
            if spec
                .resources
                .cpu
                .is_some_and(|cpu| cpu.whole_cores_ceil() > HOST_PROCESSORS)
            {
                assert!(
                    plan.notes
                        .iter()
                        .any(|n| n.contains("more than the 4 host processor")),
                    "{case}: the plan says the CPU was lowered: {:?}",
                    plan.notes
                );
            }
            let planned = planned_hcs_documents(&plan);
            assert_eq!(planned.len(), sent.len(), "{case}: {planned:#?}\n{sent:#?}");
            for (planned, sent) in planned.iter().zip(&sent) {
                assert_eq!(planned, sent, "{case}");
            }
            if isolation == Isolation::Hyperv {
                let peer = host.guests.peers().pop().expect("a guest booted");
                let received = peer
                    .container_document(&id.to_string())
                    .expect("the container exists in the guest");
                assert_eq!(
                    guest_create(&plan, &id.to_string()),
                    Some(received),
                    "{case}: hosted container"
                );
                let cold_start = peer
                    .received()
                    .into_iter()
                    .find(|r| r.rpc == Rpc::Create && r.container_id == NULL_CONTAINER_ID)
                    .and_then(|r| {
                        serde_json::from_str::<Value>(r.body["ContainerConfig"].as_str()?).ok()
                    });
                assert_eq!(
                    guest_create(&plan, NULL_CONTAINER_ID),
                    cold_start,
                    "{case}: the utility VM's time zone"
                );
            }
            host.runtime.remove(&id, true).await.unwrap();
            compared += 1;
        }
    }
    assert_eq!(
        compared, 7,
        "three examples and the every-mount spec, GPU under Hyper-V refused"
    );
}
