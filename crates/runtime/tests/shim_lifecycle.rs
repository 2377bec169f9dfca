//! Containers served through their shim over a real Unix socket, as a detached container's
//! supervisor serves them, with the HCS double and the in-tree guest peer:
//! - a Hyper-V container driven from a second runtime instance (exec, attach with input
//!   and resize, stop), left running by that instance's reconcile while its shim lives and
//!   ended by it once the shim is gone;
//! - a process-isolated console exec and a console workload whose keystrokes, output and
//!   resizes reach HCS, and whose input outlives a client that leaves.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::records::{Phase, RecordStore};
use pane_runtime::shim_target::{ContainerOps, RuntimeTarget, ShimHolders};
use pane_runtime::{ContainerId, Isolation};
use pane_shim::endpoint::{Listener, endpoint};
use pane_shim::{ClientSession, ConsoleSize, ExecRequest, Op, ShimClient, ShimTarget};
use support::fake_hcs::{FakeHcs, SystemState};
use support::fake_layers::FakeLayers;
use support::fixtures::{chain, image};
use support::hyperv_world::HypervWorld;

const VERSION: &str = "shim-test";

/// Serves container `id` of `runtime` on its endpoint under `root` until aborted.
fn serve(
    root: &Path,
    id: &ContainerId,
    runtime: Arc<dyn ContainerOps>,
) -> tokio::task::JoinHandle<()> {
    let listener = Listener::bind(&endpoint(root, &id.to_string())).unwrap();
    let target: Arc<dyn ShimTarget> = Arc::new(RuntimeTarget::new(runtime, id.clone()));
    tokio::spawn(async move {
        loop {
            let Ok(connection) = listener.accept().await else {
                continue;
            };
            tokio::spawn(pane_shim::serve_connection(
                connection,
                Arc::clone(&target),
                VERSION,
            ));
        }
    })
}

async fn client(root: &Path, id: &ContainerId) -> ShimClient {
    let stream = pane_shim::endpoint::connect(&endpoint(root, &id.to_string()))
        .await
        .unwrap();
    ShimClient::handshake(stream, VERSION).await.unwrap()
}

/// The session's output until it holds `needle`.
async fn read_until(session: &mut ClientSession, needle: &str) -> String {
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(needle) {
            let (_, bytes) = session
                .output
                .recv()
                .await
                .expect("output until the needle");
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in the output: {seen:?}"));
    seen
}

fn exec(command: &[&str], terminal: Option<ConsoleSize>, stdin: bool) -> ExecRequest {
    ExecRequest {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        workdir: None,
        user: None,
        terminal,
        stdin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyperv_container_is_driven_through_its_shim_from_another_runtime() {
    let world = HypervWorld::new();
    let root = world.dir.path();
    let id = ContainerId::new("shell", 1);
    let spec = pane_spec::parse_service(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nisolation: hyperv\ntty: true\n\
         stdin_open: true\ncommand: {entrypoint: [sh, -c, 'echo ready; read line; echo got:$line; sleep 30']}\n",
    )
    .unwrap();
    // The supervisor's runtime: it created and started the container and holds its one
    // guest connection.
    let holder = Arc::new(world.runtime());
    holder
        .create_isolated(&id, &spec, &image(), &world.chain(), Isolation::Hyperv)
        .await
        .unwrap();
    holder.start(&id, &spec, &image()).await.unwrap();
    let shim = serve(root, &id, holder.clone());

    // Another pane process cannot reach the guest by name...
    let other = world.runtime();
    let refused = other
        .exec(
            &id,
            &pane_runtime::ExecOptions::command(["sh", "-c", "echo no"]),
        )
        .await
        .err()
        .expect("exec by name is refused");
    assert!(refused.to_string().contains("supervisor"), "{refused}");
    // ...and reaches it through the shim.
    let shim_client = client(root, &id).await;
    let mut ran = shim_client
        .exec(exec(&["sh", "-c", "echo via-shim; exit 5"], None, false))
        .await
        .unwrap();
    read_until(&mut ran, "via-shim").await;
    assert_eq!(ran.exit.await.unwrap(), 5);

    // Attached: the output the workload printed before anyone attached, input, resize.
    let mut attached = shim_client.attach(true, false).await.unwrap();
    assert!(attached.console, "the workload was created with a console");
    read_until(&mut attached, "ready").await;
    shim_client
        .resize(
            attached.id,
            ConsoleSize {
                rows: 40,
                columns: 120,
            },
        )
        .await
        .unwrap();
    let peer = world.guests.peers().pop().unwrap();
    assert!(
        peer.received_rpcs().contains(&"ResizeConsole"),
        "{:?}",
        peer.received_rpcs()
    );
    shim_client
        .write_input(attached.id, b"hello\n")
        .await
        .unwrap();
    read_until(&mut attached, "got:hello").await;

    // A restarted pane reconciles: the VM its supervisor holds is left running.
    let restarted = world
        .runtime()
        .with_holders(Arc::new(ShimHolders::under(root, VERSION)));
    let report = restarted.reconcile().await.unwrap();
    assert_eq!(report.held, std::slice::from_ref(&id), "{report:?}");
    assert!(report.lost.is_empty(), "{report:?}");
    assert_eq!(world.hcs.state_of("shell-1@vm"), Some(SystemState::Running));
    // The restarted pane reaches the container through the shim it left alone.
    let after_restart = client(root, &id).await;
    let mut ran = after_restart
        .exec(exec(&["sh", "-c", "echo after-restart"], None, false))
        .await
        .unwrap();
    read_until(&mut ran, "after-restart").await;
    assert_eq!(ran.exit.await.unwrap(), 0);

    let stopped = shim_client
        .call(Op::Stop { timeout_ms: 3000 })
        .await
        .unwrap();
    assert!(stopped["exit_code"].is_i64(), "{stopped}");
    assert!(matches!(
        world.records.load(&id).unwrap().phase,
        Phase::Exited { .. }
    ));
    shim.abort();
    restarted.remove(&id, false).await.unwrap();
    support::assert_nothing_left(&world.hcs, &world.layers, Some(&world.network), root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_live_shim_reconcile_ends_the_vm_nobody_can_reach() {
    let world = HypervWorld::new();
    let root = world.dir.path();
    let id = ContainerId::new("svc", 1);
    let spec = pane_spec::parse_service(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nisolation: hyperv\ncommand: {entrypoint: [sh, -c, 'sleep 30']}\n",
    )
    .unwrap();
    let holder = Arc::new(world.runtime());
    holder
        .create_isolated(&id, &spec, &image(), &world.chain(), Isolation::Hyperv)
        .await
        .unwrap();
    holder.start(&id, &spec, &image()).await.unwrap();
    // The supervisor was killed: its socket file stays behind, nobody answers on it.
    let socket = endpoint(root, &id.to_string());
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let restarted = world
        .runtime()
        .with_holders(Arc::new(ShimHolders::under(root, VERSION)));
    let report = restarted.reconcile().await.unwrap();
    assert!(report.held.is_empty(), "{report:?}");
    assert_eq!(report.lost, std::slice::from_ref(&id), "{report:?}");
    restarted.remove(&id, true).await.unwrap();
    support::assert_nothing_left(&world.hcs, &world.layers, Some(&world.network), root);
}

struct ProcessWorld {
    hcs: Arc<FakeHcs>,
    layers: Arc<FakeLayers>,
    runtime: Arc<ContainerLifecycle>,
    dir: tempfile::TempDir,
}

fn process_world() -> ProcessWorld {
    let dir = tempfile::tempdir().unwrap();
    let hcs = Arc::new(FakeHcs::default());
    let layers = Arc::new(FakeLayers::default());
    let runtime = ContainerLifecycle::new(
        hcs.clone(),
        layers.clone(),
        RecordStore::open(dir.path()).unwrap(),
        Layout {
            containers: dir.path().join("containers"),
            owner: "pane".into(),
            host_processors: 4,
        },
    );
    ProcessWorld {
        hcs,
        layers,
        runtime: Arc::new(runtime),
        dir,
    }
}

impl ProcessWorld {
    /// Container `<name>-1` of `spec` (YAML), created, started and served through its
    /// shim; with its workload's pid.
    async fn serve_started(
        &self,
        name: &str,
        spec: &str,
    ) -> (ContainerId, u32, tokio::task::JoinHandle<()>) {
        let id = ContainerId::new(name, 1);
        let spec = pane_spec::parse_service(spec).unwrap();
        self.runtime
            .create(&id, &spec, &image(), &chain())
            .await
            .unwrap();
        self.runtime.start(&id, &spec, &image()).await.unwrap();
        let init = self.hcs.process_ids(&id.to_string())[0];
        let shim = serve(self.dir.path(), &id, self.runtime.clone());
        (id, init, shim)
    }

    /// Stops serving, removes the container (ending it if it still runs) and checks that
    /// nothing of it is left.
    async fn remove(&self, id: &ContainerId, shim: tokio::task::JoinHandle<()>) {
        shim.abort();
        self.runtime.remove(id, true).await.unwrap();
        support::assert_nothing_left(&self.hcs, &self.layers, None, self.dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_exec_gets_its_keystrokes_output_and_resizes_through_hcs() {
    let world = process_world();
    let root = world.dir.path();
    let (id, _, shim) = world
        .serve_started(
            "job",
            "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ncommand: {entrypoint: [ping, -t, localhost]}\n",
        )
        .await;
    let shim_client = client(root, &id).await;
    let mut session = shim_client
        .exec(exec(
            &["cmd"],
            Some(ConsoleSize {
                rows: 24,
                columns: 80,
            }),
            true,
        ))
        .await
        .unwrap();
    assert!(session.console);
    let pid = *world.hcs.process_ids("job-1").last().unwrap();
    assert_eq!(
        world.hcs.console_of("job-1", pid),
        Some(([24, 80], Vec::new())),
        "EmulateConsole with the terminal's size"
    );
    shim_client.write_input(session.id, b"dir\r").await.unwrap();
    assert_eq!(world.hcs.read_stdin_exact("job-1", pid, 4).await, b"dir\r");
    shim_client
        .resize(
            session.id,
            ConsoleSize {
                rows: 50,
                columns: 132,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        world.hcs.console_of("job-1", pid),
        Some(([24, 80], vec![[50, 132]])),
        "the resize is an HcsModifyProcess ConsoleSize of the exec's process"
    );
    let init = world.hcs.process_ids("job-1")[0];
    assert_eq!(
        world.hcs.console_of("job-1", init),
        None,
        "the workload has no console"
    );
    world
        .hcs
        .write_stdout("job-1", pid, b" Volume in drive C")
        .await;
    read_until(&mut session, "Volume in drive C").await;
    world.hcs.exit_process("job-1", pid, 0);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), session.exit)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    world.remove(&id, shim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_console_workload_keeps_its_input_for_the_next_client() {
    let world = process_world();
    let root = world.dir.path();
    let (id, init, shim) = world
        .serve_started(
            "shell",
            "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\ntty: true\nstdin_open: true\ncommand: {entrypoint: [cmd]}\n",
        )
        .await;
    assert!(world.hcs.console_of("shell-1", init).is_some());
    world.hcs.write_stdout("shell-1", init, b"C:\\>").await;

    let first = client(root, &id).await;
    // As `run -it` attaches: owning the input (`stdin_once`), which with a console does not
    // make a detach the end of it.
    let mut attached = first.attach(true, true).await.unwrap();
    assert!(attached.console);
    read_until(&mut attached, "C:\\>").await;
    first.write_input(attached.id, b"ver\r").await.unwrap();
    assert_eq!(
        world.hcs.read_stdin_exact("shell-1", init, 4).await,
        b"ver\r"
    );
    first
        .resize(
            attached.id,
            ConsoleSize {
                rows: 30,
                columns: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        world
            .hcs
            .console_of("shell-1", init)
            .map(|(_, resizes)| resizes),
        Some(vec![[30, 100]])
    );
    // The first client goes (a detach); the workload's input stays open, also once the
    // output it no longer reads has ended its session in the shim.
    drop(attached);
    drop(first);
    for _ in 0..20 {
        world.hcs.write_stdout("shell-1", init, b"C:\\>").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        world.hcs.stdin_is_open("shell-1", init).await,
        "a detach is not the end of the console's input"
    );
    let second = client(root, &id).await;
    let mut again = second.attach(true, false).await.unwrap();
    read_until(&mut again, "C:\\>").await;
    second.write_input(again.id, b"cls\r").await.unwrap();
    assert_eq!(
        world.hcs.read_stdin_exact("shell-1", init, 4).await,
        b"cls\r"
    );
    world.hcs.write_stdout("shell-1", init, b"bye").await;
    read_until(&mut again, "bye").await;
    world.hcs.exit_process("shell-1", init, 7);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), again.exit)
            .await
            .unwrap()
            .unwrap(),
        7,
        "an attached client sees the workload's exit code"
    );
    world.remove(&id, shim).await;
}

/// `run -i` without a console: its client owns the workload's input (`stdin_once`), so
/// the end of the client's input is the workload's and a filter such as `findstr` ends; a
/// client without it leaves the input open for the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_run_i_clients_input_is_the_workloads() {
    let world = process_world();
    let root = world.dir.path();
    let (id, init, shim) = world
        .serve_started(
            "filter",
            "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nstdin_open: true\ncommand: {entrypoint: [findstr, x]}\n",
        )
        .await;
    let watcher = client(root, &id).await;
    let watching = watcher.attach(true, false).await.unwrap();
    assert!(!watching.console);
    watcher.close_input(watching.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        world.hcs.stdin_is_open("filter-1", init).await,
        "a client that does not own the input leaves it open"
    );
    let owner = client(root, &id).await;
    let session = owner.attach(true, true).await.unwrap();
    owner.write_input(session.id, b"axb\n").await.unwrap();
    owner.close_input(session.id).await.unwrap();
    let input = tokio::time::timeout(
        Duration::from_secs(5),
        world.hcs.read_stdin("filter-1", init),
    )
    .await
    .expect("the workload reads the end of its input");
    assert_eq!(input, b"axb\n");
    world.remove(&id, shim).await;
}
