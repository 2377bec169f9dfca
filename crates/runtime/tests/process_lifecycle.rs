//! The process-isolated lifecycle against the HCS and layer doubles: the happy path, and a
//! failure injected at every create step leaving nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use pane_runtime::ContainerId;
use pane_runtime::WaitReason;
use pane_runtime::backend::Compute as _;
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::records::{Phase, RecordStore};
use support::fake_hcs::{ExitOrder, FakeHcs};
use support::fake_layers::FakeLayers;
use support::fake_network::FakeNetwork;
use support::fixtures::{chain, image};

struct World {
    hcs: Arc<FakeHcs>,
    layers: Arc<FakeLayers>,
    network: Arc<FakeNetwork>,
    records: RecordStore,
    runtime: ContainerLifecycle,
    dir: tempfile::TempDir,
}

impl World {
    /// A new pane process over the same host and state directory.
    fn restarted(&self, owner: &str) -> ContainerLifecycle {
        let layout = Layout {
            containers: self.dir.path().join("containers"),
            owner: owner.into(),
            host_processors: 4,
        };
        ContainerLifecycle::new(
            self.hcs.clone(),
            self.layers.clone(),
            self.records.clone(),
            layout,
        )
        .with_network(self.network.clone())
    }
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let hcs = Arc::new(FakeHcs::default());
    let layers = Arc::new(FakeLayers::default());
    let records = RecordStore::open(dir.path()).unwrap();
    let layout = Layout {
        containers: dir.path().join("containers"),
        owner: "pane".into(),
        host_processors: 4,
    };
    let network = Arc::new(FakeNetwork::default());
    let runtime = ContainerLifecycle::new(hcs.clone(), layers.clone(), records.clone(), layout)
        .with_network(network.clone());
    World {
        hcs,
        layers,
        network,
        records,
        runtime,
        dir,
    }
}

fn spec() -> pane_spec::ServiceSpec {
    pane_spec::parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ncommand: {entrypoint: [cmd, /c, echo hi]}\n")
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

#[tokio::test]
async fn create_start_wait_remove() {
    let world = world();
    let id = ContainerId::new("job", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    assert_eq!(world.records.load(&id).unwrap().phase, Phase::Created);
    assert_eq!(world.layers.layers().len(), 1);
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    assert_eq!(world.records.load(&id).unwrap().phase, Phase::Running);
    let pid = world.hcs.process_ids("job-1")[0];
    world.hcs.exit_process("job-1", pid, 3);
    let outcome = tokio::time::timeout(Duration::from_secs(5), world.runtime.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((outcome.exit_code, outcome.reason), (3, WaitReason::Exited));
    assert_eq!(
        world.records.load(&id).unwrap().phase,
        Phase::Exited { code: 3 }
    );
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn stop_shuts_down_and_the_exit_is_reported_as_a_signal() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    let refused = world.runtime.remove(&id, false).await.unwrap_err();
    assert!(
        refused.to_string().contains("while it is running"),
        "{refused}"
    );
    let outcome = world
        .runtime
        .stop(&id, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        (outcome.reason, outcome.signal.as_deref()),
        (WaitReason::Signal, Some("SIGTERM"))
    );
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn a_failure_at_every_create_step_leaves_nothing_behind() {
    for (call, hresult) in [
        ("CreateScratchLayer", 0x8007_0005),
        ("ActivateLayer", 0x8007_0015),
        ("HcsCreateComputeSystem", 0x8037_010D),
    ] {
        let world = world();
        if call.starts_with("Hcs") {
            world.hcs.fail_once(call, hresult);
        } else {
            world.layers.fail_once(call, hresult);
        }
        let err = world
            .runtime
            .create(&ContainerId::new("web", 1), &spec(), &image(), &chain())
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(call) && message.contains(&format!("{hresult:08X}")),
            "{call}: {message}"
        );
        assert_nothing_left(&world);
    }
}

#[tokio::test]
async fn a_second_create_of_one_id_is_refused_and_changes_nothing() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    let err = world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(world.hcs.system_ids(), ["web-1"]);
    world.runtime.remove(&id, true).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn a_restart_adopts_running_containers_and_their_exits() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    let restarted = world.restarted("pane");
    let report = restarted.reconcile().await.unwrap();
    assert_eq!(report.adopted, std::slice::from_ref(&id));
    let pid = world.hcs.process_ids("web-1")[0];
    world.hcs.exit_process("web-1", pid, 5);
    let outcome = tokio::time::timeout(Duration::from_secs(5), restarted.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.exit_code, 5);
    restarted.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn a_crash_mid_create_is_cleaned_up_after_restart() {
    let world = world();
    let id = ContainerId::new("web", 1);
    // pane dies right after the compute system was created: the record still says Creating.
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    let mut record = world.records.load(&id).unwrap();
    record.phase = Phase::Creating;
    world.records.save(&record).unwrap();
    let report = world.restarted("pane").reconcile().await.unwrap();
    assert_eq!(report.cleaned, [id]);
    assert_nothing_left(&world);
}

#[tokio::test]
async fn orphans_of_this_owner_are_terminated_and_other_owners_left_alone() {
    let world = world();
    let stray = pane_hcs::schema::ComputeSystem {
        owner: Some("pane".into()),
        ..Default::default()
    };
    let neighbour = pane_hcs::schema::ComputeSystem {
        owner: Some("pane-dev".into()),
        ..Default::default()
    };
    pane_runtime::backend::Compute::create(&*world.hcs, "stray-1", &stray)
        .await
        .unwrap();
    pane_runtime::backend::Compute::create(&*world.hcs, "theirs-1", &neighbour)
        .await
        .unwrap();
    let report = world.restarted("pane").reconcile().await.unwrap();
    assert_eq!(report.orphans, ["stray-1"]);
    assert_eq!(world.hcs.system_ids(), ["theirs-1"]);
}

#[tokio::test]
async fn a_container_whose_system_vanished_is_reported_lost() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    pane_runtime::backend::Compute::terminate(&*world.hcs, "web-1")
        .await
        .unwrap();
    pane_runtime::backend::Compute::close(&*world.hcs, "web-1").await;
    let restarted = world.restarted("pane");
    let report = restarted.reconcile().await.unwrap();
    assert_eq!(report.lost, std::slice::from_ref(&id));
    assert_eq!(
        world.records.load(&id).unwrap().phase,
        Phase::Exited { code: -1 }
    );
    assert_eq!(restarted.wait(&id).await.unwrap().exit_code, -1);
}

#[tokio::test]
async fn the_workload_output_is_logged_and_read_back_after_wait() {
    let world = world();
    let id = ContainerId::new("batch", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    let pid = world.hcs.process_ids("batch-1")[0];
    world
        .hcs
        .write_stdout("batch-1", pid, b"first\r\nsec")
        .await;
    world.hcs.write_stdout("batch-1", pid, b"ond\nlast").await;
    world.hcs.exit_process("batch-1", pid, 0);
    tokio::time::timeout(Duration::from_secs(5), world.runtime.wait(&id))
        .await
        .unwrap()
        .unwrap();
    let all = world
        .runtime
        .logs(&id, &pane_runtime::LogOptions::default())
        .unwrap();
    let lines: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(lines, ["first", "second", "last"]);
    assert!(
        all.iter()
            .all(|e| e.stream == pane_runtime::LogStream::Stdout)
    );
    let tail = pane_runtime::LogOptions {
        tail: Some(1),
        since: None,
    };
    let last = world.runtime.logs(&id, &tail).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].message, "last");

    world.runtime.remove(&id, false).await.unwrap();
    assert!(
        world.runtime.logs(&id, &tail).is_err(),
        "gone with the container"
    );
    assert_nothing_left(&world);
}

#[tokio::test]
async fn exec_streams_output_and_ends_with_the_exit_code() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    let options = pane_runtime::ExecOptions::command(["cmd", "/c", "echo hello world"]);
    let Err(refused) = world.runtime.exec(&id, &options).await else {
        panic!("exec before start")
    };
    assert!(
        refused.to_string().contains("exec in"),
        "not before start: {refused}"
    );
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    let Err(empty) = world
        .runtime
        .exec(&id, &pane_runtime::ExecOptions::default())
        .await
    else {
        panic!("an empty command")
    };
    assert!(empty.to_string().contains("exec command"), "{empty}");

    let stream = world.runtime.exec(&id, &options).await.unwrap();
    let pid = *world.hcs.process_ids("web-1").last().unwrap();
    world
        .hcs
        .write_stdout("web-1", pid, b"hello world\r\n")
        .await;
    world.hcs.exit_process("web-1", pid, 4);
    let output = tokio::time::timeout(Duration::from_secs(5), pane_runtime::collect_exec(stream))
        .await
        .unwrap();
    assert_eq!(
        (output.exit_code, output.stdout.as_slice()),
        (4, &b"hello world\r\n"[..])
    );
    assert_eq!(
        world.hcs.command_lines().last().unwrap(),
        r#"cmd /c "echo hello world""#
    );
    // The exec's output is in the container log too, marked with its exec id.
    let logs = world
        .runtime
        .logs(&id, &pane_runtime::LogOptions::default())
        .unwrap();
    let exec_lines: Vec<_> = logs.iter().filter(|l| l.exec_id.is_some()).collect();
    assert_eq!(exec_lines.len(), 1, "{logs:?}");
    assert_eq!(exec_lines[0].message, "hello world");
}

#[tokio::test]
async fn exec_feeds_its_input_and_closes_it() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    let options = pane_runtime::ExecOptions {
        stdin: Some(b"line one\r\nline two\r\n".to_vec()),
        ..pane_runtime::ExecOptions::command(["findstr", "two"])
    };
    let _stream = world.runtime.exec(&id, &options).await.unwrap();
    let pid = *world.hcs.process_ids("web-1").last().unwrap();
    let received = tokio::time::timeout(Duration::from_secs(5), world.hcs.read_stdin("web-1", pid))
        .await
        .expect("the input is closed after the bytes");
    assert_eq!(received, b"line one\r\nline two\r\n");
}

#[tokio::test]
async fn another_pane_process_attaches_waits_and_kills() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    // A second `pane` (say `pane kill` then `pane wait`) over the same host and records.
    let other = world.restarted("pane");
    other.attach(&id).await.unwrap();
    assert!(
        world
            .hcs
            .calls()
            .iter()
            .any(|c| c == "HcsOpenProcess web-1"),
        "{:?}",
        world.hcs.calls()
    );
    other.kill(&id, pane_runtime::Signal::Term).await.unwrap();
    let (theirs, ours) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), other.wait(&id)),
        tokio::time::timeout(Duration::from_secs(5), world.runtime.wait(&id)),
    );
    assert_eq!(theirs.unwrap().unwrap().exit_code, 1);
    assert_eq!(ours.unwrap().unwrap().exit_code, 1);
    assert_eq!(
        world.records.load(&id).unwrap().phase,
        Phase::Exited { code: 1 }
    );
    // Once the workload is gone, so is the silo: the exited container holds no system.
    tokio::time::timeout(Duration::from_secs(5), async {
        while world.hcs.state_of("web-1") != Some(support::fake_hcs::SystemState::Stopped) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the system is terminated after the workload exits");
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

/// On Windows each HCS handle has its own callback, so a system's `SystemExited` can reach
/// the runtime before its workload's `ProcessExited`. The workload's exit code is the
/// outcome either way, whether the container is ended from outside or stopped.
#[tokio::test]
async fn the_exit_code_does_not_depend_on_which_exit_event_comes_first() {
    for order in [ExitOrder::ProcessesFirst, ExitOrder::SystemFirst] {
        let world = world();
        world.hcs.send_exits_in(order);
        let ended = ContainerId::new("web", 1);
        let stopped = ContainerId::new("web", 2);
        for id in [&ended, &stopped] {
            world
                .runtime
                .create(id, &spec(), &image(), &chain())
                .await
                .unwrap();
            world.runtime.start(id, &spec(), &image()).await.unwrap();
        }
        // Ended from outside: HCS terminates the system and its workload (exit code 1).
        world.hcs.terminate("web-1").await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), world.runtime.wait(&ended))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (outcome.exit_code, outcome.reason),
            (1, WaitReason::Exited),
            "{order:?}"
        );
        assert_eq!(
            world.records.load(&ended).unwrap().phase,
            Phase::Exited { code: 1 },
            "{order:?}"
        );
        // Stopped: the graceful shutdown ends the workload with 0.
        let outcome = world
            .runtime
            .stop(&stopped, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            (outcome.exit_code, outcome.signal.as_deref()),
            (0, Some("SIGTERM")),
            "{order:?}"
        );
        for id in [&ended, &stopped] {
            world.runtime.remove(id, false).await.unwrap();
        }
        assert_nothing_left(&world);
    }
}

#[tokio::test]
async fn kill_maps_signals_to_console_events_or_termination() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    let pid = world.hcs.process_ids("web-1")[0];
    world
        .runtime
        .kill(&id, pane_runtime::Signal::Int)
        .await
        .unwrap();
    assert_eq!(world.hcs.signals(), [(pid, Some("CtrlC".to_owned()))]);
    let outcome = tokio::time::timeout(Duration::from_secs(5), world.runtime.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.exit_code, 1);
    let again = world
        .runtime
        .kill(&id, pane_runtime::Signal::Kill)
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("cannot kill"),
        "an exited container: {again}"
    );
}

fn networked_spec(networks: &str) -> pane_spec::ServiceSpec {
    pane_spec::parse_service(&format!(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nnetworks: [{networks}]\ncommand: {{entrypoint: [cmd, /c, echo hi]}}\n"
    ))
    .unwrap()
}

#[tokio::test]
async fn a_container_joins_its_networks_and_leaves_them_on_remove() {
    let world = world();
    world.network.add_network("overlay", [10, 244, 3]);
    let id = ContainerId::new("web", 1);
    let spec = networked_spec("nat, overlay");
    world
        .runtime
        .create(&id, &spec, &image(), &chain())
        .await
        .unwrap();
    let record = world.records.load(&id).unwrap();
    assert_eq!(record.resources.ip, Some("172.20.0.2".parse().unwrap()));
    assert_eq!(record.resources.endpoints.len(), 2);
    let (namespaces, endpoints) = world.network.leftovers();
    assert_eq!((namespaces.len(), endpoints.len()), (1, 2));
    let document = &record.documents[0].1;
    assert_eq!(
        document["Container"]["Networking"]["Namespace"],
        namespaces[0].to_string(),
        "HCS attaches the namespace when it creates the silo"
    );
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn a_failure_at_every_network_step_leaves_nothing_behind() {
    for (call, hresult, networks) in [
        ("HcnCreateNamespace", 0x803B_0010_u32, "nat"),
        ("HcnCreateEndpoint", 0x803B_0011, "nat"),
        (
            "HcnCreateEndpoint",
            support::fake_network::HCN_E_NETWORK_NOT_FOUND,
            "nat, nope",
        ),
    ] {
        let world = world();
        if networks == "nat" {
            world.network.fail_once(call, hresult);
        }
        let err = world
            .runtime
            .create(
                &ContainerId::new("web", 1),
                &networked_spec(networks),
                &image(),
                &chain(),
            )
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("{hresult:08X}")),
            "{call}: {message}"
        );
        assert_nothing_left(&world);
    }
}

#[tokio::test]
async fn a_cleanup_that_failed_is_finished_by_the_next_reconcile() {
    let world = world();
    let id = ContainerId::new("web", 1);
    // The create fails after the endpoint exists, and deleting the endpoint fails too.
    world.hcs.fail_once("HcsCreateComputeSystem", 0x8037_0100);
    world.network.fail_once("HcnDeleteEndpoint", 0x8007_0005);
    let err = world
        .runtime
        .create(&id, &networked_spec("nat"), &image(), &chain())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HcsCreateComputeSystem"), "{err}");
    let kept = world.records.load(&id).unwrap();
    assert!(
        matches!(kept.phase, Phase::Failed { .. }),
        "the record keeps what is left: {kept:?}"
    );
    let report = world.restarted("pane").reconcile().await.unwrap();
    assert_eq!(report.cleaned, [id]);
    assert_nothing_left(&world);
}

#[tokio::test]
async fn ports_are_published_through_the_first_endpoint_and_a_taken_port_fails_cleanly() {
    let world = world();
    let spec = |name: &str| {
        pane_spec::parse_service(&format!(
            "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nnetworks: [nat]\nports: [\"8080:80\", 53/udp]\nhostname: {name}\n"
        ))
        .unwrap()
    };
    let first = ContainerId::new("web", 1);
    world
        .runtime
        .create(&first, &spec("web"), &image(), &chain())
        .await
        .unwrap();
    let record = world.records.load(&first).unwrap();
    let ports = record.resources.ports.clone();
    assert_eq!(ports.len(), 2);
    assert_eq!((ports[0].container_port, ports[0].host_port), (80, 8080));
    assert_eq!(ports[1].protocol, pane_spec::Protocol::Udp);
    assert_ne!(ports[1].host_port, 0, "the host picked a port for 53/udp");
    let endpoint = uuid::Uuid::parse_str(&record.resources.endpoints[0]).unwrap();
    assert_eq!(world.network.published(endpoint), ports);

    // A second container cannot publish host port 8080 again; nothing of it is left.
    let second = ContainerId::new("web", 2);
    let err = world
        .runtime
        .create(&second, &spec("web2"), &image(), &chain())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("803B0013"), "{err}");
    assert!(matches!(
        world.records.load(&second),
        Err(pane_runtime::RuntimeError::NotFound { .. })
    ));
    world.runtime.remove(&first, false).await.unwrap();
    assert_nothing_left(&world);
}

/// Ends `job-1`'s newest process (the workload of `id`) with `code`, as HCS reports an
/// exit, and returns what the runtime's wait made of it.
async fn exit_workload(world: &World, id: &ContainerId, code: u32) -> pane_runtime::WaitOutcome {
    let pid = *world.hcs.process_ids("job-1").last().unwrap();
    world.hcs.exit_process("job-1", pid, code);
    tokio::time::timeout(Duration::from_secs(5), world.runtime.wait(id))
        .await
        .unwrap()
        .unwrap()
}

/// Found by the simulated host (`.ci/wine-e2e`): a start whose workload failed to start
/// terminated the system and left the record `Created`, so every later start failed.
#[tokio::test]
async fn a_container_whose_workload_failed_to_start_starts_later() {
    let world = world();
    let id = ContainerId::new("job", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    world.hcs.fail_once("HcsCreateProcess", 0x8037_0100);
    world
        .runtime
        .start(&id, &spec(), &image())
        .await
        .unwrap_err();
    assert_eq!(world.records.load(&id).unwrap().phase, Phase::Created);
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    assert_eq!(world.records.load(&id).unwrap().phase, Phase::Running);
    assert_eq!(exit_workload(&world, &id, 0).await.exit_code, 0);
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

/// Found by the simulated host (kill -9 of `pane run` while `HcsStartComputeSystem` ran): the
/// record stayed `Created` while the system ran without its workload, and every later
/// start failed with `HCS_E_INVALID_STATE`.
#[tokio::test]
async fn a_start_interrupted_after_the_system_started_can_be_started_again() {
    use pane_runtime::backend::Compute as _;
    let world = world();
    let id = ContainerId::new("job", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    // What the killed process got done: HCS started the system; the record never knew.
    world.hcs.start("job-1").await.unwrap();
    world.runtime.start(&id, &spec(), &image()).await.unwrap();
    assert_eq!(world.records.load(&id).unwrap().phase, Phase::Running);
    assert_eq!(exit_workload(&world, &id, 0).await.exit_code, 0);
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn an_exited_container_starts_again_over_the_same_scratch() {
    let world = world();
    let id = ContainerId::new("job", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    for (run, code) in [(1, 3), (2, 0)] {
        world.runtime.start(&id, &spec(), &image()).await.unwrap();
        let pid = *world.hcs.process_ids("job-1").last().unwrap();
        world
            .hcs
            .write_stdout("job-1", pid, format!("run {run}\n").as_bytes())
            .await;
        let outcome = exit_workload(&world, &id, code).await;
        assert_eq!(outcome.exit_code, i32::try_from(code).unwrap(), "run {run}");
    }
    let logs = world
        .runtime
        .logs(&id, &pane_runtime::LogOptions::default())
        .unwrap();
    let lines: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines, ["run 1", "run 2"]);
    assert_eq!(
        world.layers.layers().len(),
        1,
        "one scratch layer for both runs"
    );
    world.runtime.remove(&id, false).await.unwrap();
    assert_nothing_left(&world);
}

#[tokio::test]
async fn the_scratch_disk_grows_to_the_spec_storage_and_a_failed_grow_leaves_nothing() {
    let world = world();
    let large = pane_spec::parse_service(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nresources: {storage: 60Gi}\n",
    )
    .unwrap();
    let id = ContainerId::new("big", 1);
    world
        .runtime
        .create(&id, &large, &image(), &chain())
        .await
        .unwrap();
    let (scratch, _) = world.layers.layers()[0].clone();
    assert_eq!(world.layers.scratch_size(&scratch), Some(60 << 30));
    world.runtime.remove(&id, false).await.unwrap();

    // Without storage the disk keeps the size it is created at.
    let plain = ContainerId::new("plain", 1);
    world
        .runtime
        .create(&plain, &spec(), &image(), &chain())
        .await
        .unwrap();
    let (scratch, _) = world.layers.layers()[0].clone();
    assert_eq!(world.layers.scratch_size(&scratch), Some(20 << 30));
    world.runtime.remove(&plain, false).await.unwrap();

    world.layers.fail_once("ExpandSandboxSize", 0x8007_0070);
    let err = world
        .runtime
        .create(&id, &large, &image(), &chain())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ExpandSandboxSize"), "{err}");
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_removes_of_one_container_one_wins_the_other_finds_no_container() {
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    // Two pane processes: two runtimes over one root, each with its own lock handles.
    let (first, second) = (world.restarted("pane"), world.restarted("pane"));
    let (a, b) = tokio::join!(first.remove(&id, true), second.remove(&id, true));
    let outcomes = [a, b];
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(pane_runtime::RuntimeError::NotFound { .. }))),
        "{outcomes:?}"
    );
    assert_nothing_left(&world);
}

/// Turns [`child_holds_a_container_lock`] on: the root whose lock it takes.
#[cfg(unix)]
const LOCK_CHILD_ROOT: &str = "PANE_LOCK_TEST_CHILD_ROOT";

/// Run by the next test in a child process: takes `web-1`'s lock as an operation would,
/// says so, and never lets go.
#[cfg(unix)]
#[tokio::test]
#[ignore = "run as a child process by the dead-holder test"]
async fn child_holds_a_container_lock() {
    let Some(root) = std::env::var_os(LOCK_CHILD_ROOT) else {
        return;
    };
    let locks = pane_runtime::records::ContainerLocks::new(
        std::path::PathBuf::from(root)
            .join("locks")
            .join("containers"),
    );
    let _held = locks.lock(&ContainerId::new("web", 1)).await.unwrap();
    println!("holding");
    std::thread::sleep(Duration::from_secs(600));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_killed_mid_operation_lets_the_next_command_proceed() {
    use std::io::BufRead as _;
    let world = world();
    let id = ContainerId::new("web", 1);
    world
        .runtime
        .create(&id, &spec(), &image(), &chain())
        .await
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_holds_a_container_lock",
            "--nocapture",
        ])
        .env(LOCK_CHILD_ROOT, world.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("holding"))),
        "the child took the lock"
    );
    let runtime = world.restarted("pane");
    let remove = runtime.remove(&id, true);
    tokio::pin!(remove);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut remove)
            .await
            .is_err(),
        "the remove waits while the holder lives"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    tokio::time::timeout(Duration::from_secs(30), remove)
        .await
        .expect("the dead holder's lock was released")
        .unwrap();
    assert_nothing_left(&world);
}
