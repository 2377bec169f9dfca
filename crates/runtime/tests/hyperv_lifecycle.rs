//! Hyper-V isolation against the HCS and layer doubles and the in-tree guest peer over real
//! Unix sockets: the whole create in hcsshim's order, the workload's life through the
//! guest, and a failure at every create step leaving nothing behind.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pane_gcs::Rpc;
use pane_hcs::doc::LayerRef;
use pane_runtime::process_runtime::{Layout, ProcessRuntime};
use pane_runtime::records::{Phase, RecordStore};
use pane_runtime::{ContainerId, Isolation, LogOptions};
use support::fake_hcs::{FakeHcs, SystemState};
use support::fake_layers::FakeLayers;
use support::fake_network::FakeNetwork;
use support::fixtures::image;
use support::guest::PeerGuests;

struct World {
    hcs: Arc<FakeHcs>,
    layers: Arc<FakeLayers>,
    network: Arc<FakeNetwork>,
    guests: Arc<PeerGuests>,
    records: RecordStore,
    runtime: ProcessRuntime,
    base_layer: PathBuf,
    dir: tempfile::TempDir,
}

impl World {
    fn runtime(&self) -> ProcessRuntime {
        ProcessRuntime::new(
            self.hcs.clone(),
            self.layers.clone(),
            self.records.clone(),
            Layout {
                containers: self.dir.path().join("containers"),
                owner: "pane".into(),
                host_processors: 4,
            },
        )
        .with_guest_connector(self.guests.clone())
        .with_network(self.network.clone())
    }

    fn chain(&self) -> Vec<LayerRef> {
        vec![LayerRef {
            id: "1f0e2d3c-4b5a-5968-8776-a5b4c3d2e1f0".into(),
            path: self.base_layer.display().to_string(),
        }]
    }

    async fn create(
        &self,
        id: &ContainerId,
        spec: &pane_spec::ServiceSpec,
    ) -> pane_runtime::Result<()> {
        self.runtime
            .create_isolated(id, spec, &image(), &self.chain(), Isolation::Hyperv)
            .await
    }
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    // A base layer with the utility VM's template disk, as Windows base images carry it.
    let base_layer = dir.path().join("layers").join("base");
    std::fs::create_dir_all(base_layer.join("UtilityVM/Files")).unwrap();
    std::fs::write(
        base_layer.join("UtilityVM/SystemTemplate.vhdx"),
        b"template",
    )
    .unwrap();
    let hcs = Arc::new(FakeHcs::default());
    let layers = Arc::new(FakeLayers::default());
    let guests = Arc::new(PeerGuests::new(dir.path().join("g"), hcs.clone()));
    let records = RecordStore::open(dir.path()).unwrap();
    let network = Arc::new(FakeNetwork::default());
    let runtime = ProcessRuntime::new(
        hcs.clone(),
        layers.clone(),
        records.clone(),
        Layout {
            containers: dir.path().join("containers"),
            owner: "pane".into(),
            host_processors: 4,
        },
    )
    .with_guest_connector(guests.clone())
    .with_network(network.clone());
    World {
        hcs,
        layers,
        network,
        guests,
        records,
        runtime,
        base_layer,
        dir,
    }
}

fn spec(script: &str) -> pane_spec::ServiceSpec {
    pane_spec::parse_service(&format!(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nisolation: hyperv\ncommand: {{entrypoint: [sh, -c, '{script}']}}\n"
    ))
    .unwrap()
}

fn assert_nothing_left(world: &World) {
    support::assert_nothing_left(
        &world.hcs,
        &world.layers,
        Some(&world.network),
        world.dir.path(),
    );
}

async fn wait_for_stopped(world: &World, system: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while world.hcs.state_of(system) != Some(SystemState::Stopped) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the utility VM is terminated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyperv_container_boots_its_vm_runs_in_the_guest_and_leaves_nothing() {
    let world = world();
    let id = ContainerId::new("web", 1);
    let spec = spec("echo hello from the guest; echo oops >&2; exit 3");
    world.create(&id, &spec).await.unwrap();
    assert_eq!(world.records.load(&id).unwrap().phase, Phase::Created);
    assert_eq!(
        world.hcs.system_ids(),
        ["web-1@vm"],
        "one utility VM, no host container"
    );
    assert_eq!(world.hcs.state_of("web-1@vm"), Some(SystemState::Running));
    let peer = &world.guests.peers()[0];
    assert_eq!(
        peer.received_rpcs(),
        [
            "NegotiateProtocol",
            "Create",
            "Start",
            "ModifySettings",
            "ModifySettings",
            "ModifySettings",
            "Create",
            "GetProperties"
        ],
        "cold start, hvsock addresses, scratch mount, combined layers, the container and \
         its SystemGUID"
    );
    let routes = world.guests.routes();
    assert_eq!(
        routes.iter().map(|(guid, _)| *guid).collect::<Vec<_>>(),
        [pane_gcs::transport::container_system_guid("web-1")],
        "the host's hvsock traffic for the container is routed by its SystemGUID"
    );
    assert_eq!(
        world
            .hcs
            .system_with_runtime_id(&routes[0].1.to_string())
            .as_deref(),
        Some("web-1@vm"),
        "into its utility VM"
    );
    let hosted = peer
        .container_document("web-1")
        .expect("the container exists in the guest");
    assert_eq!(
        hosted["Container"]["Storage"]["Layers"][0]["Path"],
        r"\\?\VMSMB\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\s0",
        "the layer as the guest sees its VSMB share"
    );
    assert_eq!(hosted["Container"]["Storage"]["Path"], r"c:\mounts\scsi\m0");
    let calls = world.hcs.calls();
    let vsmb = calls
        .iter()
        .filter(|c| c.starts_with("HcsModifyComputeSystem web-1@vm"))
        .count();
    assert_eq!(vsmb, 2, "one layer share and the SCSI scratch: {calls:?}");

    world.runtime.start(&id, &spec, &image()).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), world.runtime.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.exit_code, 3);
    let logs = world.runtime.logs(&id, &LogOptions::default()).unwrap();
    let lines: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
    assert!(
        lines.contains(&"hello from the guest") && lines.contains(&"oops"),
        "{lines:?}"
    );
    wait_for_stopped(&world, "web-1@vm").await;
    let again = world.runtime.start(&id, &spec, &image()).await.unwrap_err();
    assert!(again.to_string().contains("create it again"), "{again}");

    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
    assert!(world.guests.routes().is_empty(), "the route goes with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_kill_go_through_the_guest() {
    let world = world();
    let id = ContainerId::new("svc", 1);
    let spec = spec("sleep 5");
    world.create(&id, &spec).await.unwrap();
    world.runtime.start(&id, &spec, &image()).await.unwrap();
    let stream = world
        .runtime
        .exec(
            &id,
            &pane_runtime::ExecOptions::command(["sh", "-c", "echo inside; exit 4"]),
        )
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), pane_runtime::collect_exec(stream))
        .await
        .unwrap();
    assert_eq!(
        (output.exit_code, output.stdout.as_slice()),
        (4, &b"inside\n"[..])
    );
    // Input is relayed to the guest process and closed after it, so a filter ends.
    let filtered = pane_runtime::ExecOptions {
        stdin: Some(b"alpha\nbeta\n".to_vec()),
        ..pane_runtime::ExecOptions::command(["grep", "beta"])
    };
    let stream = world.runtime.exec(&id, &filtered).await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), pane_runtime::collect_exec(stream))
        .await
        .unwrap();
    assert_eq!(
        (output.exit_code, output.stdout.as_slice()),
        (0, &b"beta\n"[..])
    );
    world
        .runtime
        .kill(&id, pane_runtime::Signal::Term)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), world.runtime.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome.exit_code,
        128 + 15,
        "CtrlShutdown reaches the workload as SIGTERM"
    );
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

/// A workload that exits just as it is killed: the guest no longer has the process and
/// says `ERROR_NOT_FOUND`, which hcsshim's host takes as success (internal/gcs/process.go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_workload_the_guest_has_already_lost_succeeds() {
    let world = world();
    let id = ContainerId::new("svc", 3);
    let spec = spec("sleep 5");
    world.create(&id, &spec).await.unwrap();
    world.runtime.start(&id, &spec, &image()).await.unwrap();
    let guest = world.guests.peers().pop().unwrap();
    guest.fail_once(Rpc::SignalProcess, 0x8007_0490_u32.cast_signed());
    world
        .runtime
        .kill(&id, pane_runtime::Signal::Kill)
        .await
        .unwrap();
    world.runtime.remove(&id, true).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_container_in_the_guest() {
    let world = world();
    let id = ContainerId::new("svc", 2);
    let spec = spec("sleep 5");
    world.create(&id, &spec).await.unwrap();
    world.runtime.start(&id, &spec, &image()).await.unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        world.runtime.stop(&id, Duration::from_secs(3)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(outcome.reason, pane_runtime::WaitReason::Signal);
    let received = world.guests.peers()[0].received_rpcs();
    assert!(received.contains(&"ShutdownGraceful"), "{received:?}");
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_hyperv_create_step_leaves_nothing_behind() {
    enum Fault {
        Layers(&'static str),
        Hcs(&'static str),
        Guest(Rpc),
        NoTemplate,
    }
    let faults = [
        (Fault::Layers("CreateScratchLayer"), "create scratch layer"),
        (Fault::NoTemplate, "copy the utility VM's scratch"),
        (Fault::Hcs("HcsGrantVmAccess"), "grant the VM its scratch"),
        (Fault::Hcs("HcsCreateComputeSystem"), "create utility VM"),
        (
            Fault::Hcs("HcsGetComputeSystemProperties"),
            "read the utility VM's RuntimeId",
        ),
        (Fault::Hcs("HcsStartComputeSystem"), "start utility VM"),
        (Fault::Guest(Rpc::NegotiateProtocol), "connect to the guest"),
        (
            Fault::Guest(Rpc::ModifySettings),
            "tell the guest its hvsock addresses",
        ),
        (
            Fault::Hcs("HcsModifyComputeSystem"),
            "share a layer with the VM",
        ),
        (Fault::Guest(Rpc::Create), "connect to the guest"),
    ];
    for (fault, step) in faults {
        let world = world();
        match fault {
            Fault::Layers(call) => world.layers.fail_once(call, 0x8007_0005),
            Fault::Hcs(call) => world.hcs.fail_once(call, 0x8037_0100),
            Fault::Guest(rpc) => world.guests.fail_once(rpc, 0x8037_0110_u32.cast_signed()),
            Fault::NoTemplate => {
                std::fs::remove_file(world.base_layer.join("UtilityVM/SystemTemplate.vhdx"))
                    .unwrap();
            }
        }
        let err = world
            .create(&ContainerId::new("web", 1), &spec("exit 0"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(step), "{step}: {err}");
        assert_nothing_left(&world);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ends_a_hyperv_container_it_can_no_longer_drive() {
    let world = world();
    let id = ContainerId::new("web", 1);
    let spec = spec("sleep 5");
    world.create(&id, &spec).await.unwrap();
    world.runtime.start(&id, &spec, &image()).await.unwrap();
    let restarted = world.runtime();
    let report = restarted.reconcile().await.unwrap();
    assert_eq!(report.lost, std::slice::from_ref(&id));
    assert!(
        report.orphans.is_empty(),
        "the VM is known by its record: {report:?}"
    );
    assert!(
        !world.hcs.system_ids().contains(&"web-1@vm".to_owned()),
        "the VM is terminated and closed"
    );
    assert_eq!(
        world.records.load(&id).unwrap().phase,
        Phase::Exited {
            code: pane_runtime::WaitOutcome::LOST_EXIT_CODE
        }
    );
    restarted.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_gets_the_namespace_and_a_nic_per_endpoint() {
    let world = world();
    let id = ContainerId::new("web", 1);
    let mut spec = spec("exit 0");
    spec.networks = vec!["nat".into()];
    world.create(&id, &spec).await.unwrap();
    let peer = &world.guests.peers()[0];
    let modifies: Vec<String> = peer
        .received()
        .iter()
        .filter(|r| r.rpc == Rpc::ModifySettings)
        .map(|r| {
            let request = &r.body["Request"];
            format!(
                "{} {}",
                request["ResourceType"].as_str().unwrap_or_default(),
                request["Settings"]["RequestType"]
                    .as_str()
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        modifies[3..],
        ["NetworkNamespace ", "Network PreAdd", "Network Add"],
        "hcsshim's order after the storage steps: {modifies:?}"
    );
    let nic = world
        .hcs
        .calls()
        .iter()
        .filter(|c| c.starts_with("HcsModifyComputeSystem web-1@vm"))
        .count();
    assert_eq!(nic, 3, "a layer share, the SCSI scratch and the NIC");
    let hosted = peer.container_document("web-1").unwrap();
    assert!(
        hosted["Container"]["Networking"]["Namespace"].is_string(),
        "{hosted}"
    );
    assert_eq!(
        world.records.load(&id).unwrap().resources.ip,
        Some("172.20.0.2".parse().unwrap())
    );
    world.runtime.remove(&id, true).await.unwrap();
    assert_nothing_left(&world);
}
