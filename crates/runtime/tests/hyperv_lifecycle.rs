//! Hyper-V isolation against the HCS and layer doubles and the in-tree guest peer over real
//! Unix sockets: the whole create in hcsshim's order, the workload's life through the
//! guest, and a failure at every create step leaving nothing behind.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use pane_gcs::Rpc;
use pane_runtime::lifecycle::ContainerLifecycle;
use pane_runtime::records::Phase;
use pane_runtime::{ContainerId, Isolation, LogOptions};
use support::fake_hcs::SystemState;
use support::fixtures::image;
use support::hyperv_world::HypervWorld;

/// The host, and the runtime of the pane process under test.
struct World {
    host: HypervWorld,
    runtime: ContainerLifecycle,
}

impl std::ops::Deref for World {
    type Target = HypervWorld;

    fn deref(&self) -> &HypervWorld {
        &self.host
    }
}

impl World {
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
    let host = HypervWorld::new();
    let runtime = host.runtime();
    World { host, runtime }
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

/// A stand-in for a Windows CNI plugin (`win-bridge`, `sdnoverlay`): on ADD it attaches an
/// endpoint to the HCN namespace named by `CNI_NETNS` (through the HCN double's shared
/// directory, as the real plugin does through HCN from its own process) and prints its
/// result; on DEL it takes the endpoint away.
fn windows_plugin_stand_in(dir: &std::path::Path, endpoint: &str) {
    use std::os::unix::fs::PermissionsExt;
    let hcn = dir.join("hcn");
    let script = format!(
        r#"#!/bin/sh
cat >/dev/null
ns="{hcn}/$CNI_NETNS"
case "$CNI_COMMAND" in
ADD)
  mkdir -p "$ns"
  echo "$CNI_NETNS" > "{hcn}/netns-seen"
  printf '{{"ID":"{endpoint}","HostComputeNetwork":"cbr0","HostComputeNamespace":"%s","IpConfigurations":[{{"IpAddress":"10.244.1.7","PrefixLength":24}}],"MacAddress":"00-15-5D-AA-00-07"}}' "$CNI_NETNS" > "$ns/{endpoint}.json"
  echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","mac":"00-15-5D-AA-00-07"}}],"ips":[{{"address":"10.244.1.7/24","gateway":"10.244.1.1","interface":0}}],"dns":{{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}}}}'
  ;;
DEL) rm -rf "$ns" ;;
esac
"#,
        hcn = hcn.display()
    );
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(&hcn).unwrap();
    let path = dir.join("bin").join("win-bridge");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("cni").join("conf")).unwrap();
    std::fs::write(
        dir.join("cni").join("conf").join("10-cbr0.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "win-bridge"}]}"#,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cni_network_gets_the_namespace_guid_and_the_guest_a_nic_per_plugin_endpoint() {
    let world = world();
    let endpoint = "5f1ec0de-0000-4000-8000-0000000000e1";
    let root = world.dir.path();
    windows_plugin_stand_in(root, endpoint);
    world.network.share_with_plugins(&root.join("hcn"));
    let mut settings = pane_runtime::networking::cni::CniSettings::under_root(root);
    settings.bin_dirs = vec![root.join("bin")];
    let runtime =
        world
            .runtime()
            .with_cni(Arc::new(pane_runtime::networking::cni::CniNetworks::open(
                root, "pane", settings,
            )));
    let id = ContainerId::new("web", 1);
    let mut spec = spec("exit 0");
    spec.networks = vec!["cbr0".into()];
    runtime
        .create_isolated(&id, &spec, &image(), &world.chain(), Isolation::Hyperv)
        .await
        .unwrap();
    let record = world.records.load(&id).unwrap();
    let namespace = record.resources.network_namespace.clone().unwrap();
    let seen = std::fs::read_to_string(root.join("hcn").join("netns-seen")).unwrap();
    assert_eq!(
        seen.trim(),
        namespace,
        "CNI_NETNS is the bare HCN namespace GUID, as containerd hands it on Windows"
    );
    assert!(
        record.resources.endpoints.is_empty(),
        "pane makes no endpoint of its own"
    );
    assert_eq!(record.resources.ip, Some("10.244.1.7".parse().unwrap()));
    assert_eq!(
        record.resources.attachments[0].dns_search,
        ["svc.cluster.local"]
    );
    let peer = &world.guests.peers()[0];
    let hosted = peer.container_document("web-1").unwrap();
    assert_eq!(
        hosted["Container"]["Networking"]["DnsSearchList"],
        "svc.cluster.local"
    );
    let pre_adds: Vec<String> = peer
        .received()
        .iter()
        .filter(|r| r.rpc == Rpc::ModifySettings)
        .map(|r| r.body.to_string())
        .filter(|body| body.contains("PreAdd"))
        .collect();
    assert_eq!(pre_adds.len(), 1, "{pre_adds:?}");
    assert!(
        pre_adds[0].contains(endpoint),
        "the guest gets the plugin's endpoint: {}",
        pre_adds[0]
    );
    let nic_added =
        world.hcs.sent_documents().iter().any(|d| {
            d.call == "HcsModifyComputeSystem" && d.document.to_string().contains(endpoint)
        });
    assert!(nic_added, "the VM gets a NIC for the plugin's endpoint");
    let namespace_added = peer
        .received()
        .iter()
        .filter(|r| r.rpc == Rpc::ModifySettings)
        .map(|r| r.body.to_string())
        .find(|body| body.contains("NetworkNamespace"))
        .unwrap();
    assert!(
        namespace_added.contains(endpoint),
        "the guest gets the namespace as HCN reports it after ADD, with the plugin's endpoint: {namespace_added}"
    );
    runtime.remove(&id, true).await.unwrap();
    assert!(
        !root.join("hcn").join(&namespace).exists(),
        "DEL took the plugin's endpoint away"
    );
    assert_nothing_left(&world);

    // A failure while the VM gets its NIC, after the guest was handed the endpoint: the
    // VM, the plugin's endpoint (DEL) and the namespace all go.
    // (The third modify of the VM is the NIC: after a layer share and the scratch.)
    world
        .hcs
        .fail_after("HcsModifyComputeSystem", 2, 0x8037_0100);
    let err = runtime
        .create_isolated(&id, &spec, &image(), &world.chain(), Isolation::Hyperv)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("add a network adapter to the VM"),
        "{err}"
    );
    assert!(!root.join("hcn").join(&namespace).exists(), "DEL ran");
    assert_nothing_left(&world);
}

/// The shim API in front of a Hyper-V container: the runtime that created it (and holds
/// its one guest connection) serves it on a real Unix socket, as the container's
/// supervisor does, and a client, as any other pane process, execs with input, kills it
/// and waits for it through that socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_drives_a_hyperv_container_through_its_shim() {
    use pane_shim::endpoint::{Listener, connect, endpoint};
    use pane_shim::frame::Stream;
    let world = world();
    let id = ContainerId::new("svc", 1);
    let spec = spec("sleep 30");
    let holder = Arc::new(world.runtime());
    holder
        .create_isolated(&id, &spec, &image(), &world.chain(), Isolation::Hyperv)
        .await
        .unwrap();
    holder.start(&id, &spec, &image()).await.unwrap();
    let target: Arc<dyn pane_shim::ShimTarget> = Arc::new(
        pane_runtime::shim_target::RuntimeTarget::new(holder.clone(), id.clone()),
    );
    let listener = Listener::bind(&endpoint(world.dir.path(), &id.to_string())).unwrap();
    tokio::spawn(async move {
        while let Ok(connection) = listener.accept().await {
            tokio::spawn(pane_shim::serve_connection(
                connection,
                Arc::clone(&target),
                "test",
            ));
        }
    });
    let stream = connect(&endpoint(world.dir.path(), &id.to_string()))
        .await
        .unwrap();
    let client = pane_shim::ShimClient::handshake(stream, "test")
        .await
        .unwrap();
    let mut session = client
        .exec(pane_shim::ExecRequest {
            command: vec!["grep".into(), "beta".into()],
            env: Vec::new(),
            workdir: None,
            user: None,
            terminal: None,
            stdin: true,
        })
        .await
        .unwrap();
    client
        .write_input(session.id, b"alpha\nbeta\n")
        .await
        .unwrap();
    client.close_input(session.id).await.unwrap();
    let mut stdout = Vec::new();
    while let Some((stream, bytes)) = session.output.recv().await {
        if stream == Stream::Stdout {
            stdout.extend(bytes);
        }
    }
    assert_eq!(
        stdout, b"beta\n",
        "the guest ran the exec with the client's input"
    );
    assert_eq!(session.exit.await.unwrap(), 0);
    assert_eq!(
        client.call(pane_shim::Op::State).await.unwrap()["status"],
        "running"
    );
    let waiting = {
        let stream = connect(&endpoint(world.dir.path(), &id.to_string()))
            .await
            .unwrap();
        let other = pane_shim::ShimClient::handshake(stream, "test")
            .await
            .unwrap();
        tokio::spawn(async move { other.call(pane_shim::Op::Wait).await })
    };
    client
        .call(pane_shim::Op::Kill {
            signal: "TERM".into(),
        })
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        waited["exit_code"],
        128 + 15,
        "CtrlShutdown reached the guest's workload"
    );
    holder.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}
