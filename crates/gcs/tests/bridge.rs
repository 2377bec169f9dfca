//! The host bridge against the guest peer over real Unix sockets (and one TCP run): the
//! Hyper-V step sequence, stdio relay, concurrency, faults and malformed input.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use pane_gcs::frame::{self, MessageType};
use pane_gcs::messages::{ContainerNotification, NULL_CONTAINER_ID, WindowsSignal};
use pane_gcs::peer::hresults;
use pane_gcs::settings::{CombinedLayers, GuestLayer, GuestRequest, vsmb_guest_path};
use pane_gcs::transport::{GCS_SERVICE_ID, Transport};
use pane_gcs::{
    BridgeError, ConnectOptions, GuestConnection, GuestPeer, PeerConfig, Rpc, Timeouts,
};
use pane_hcs::schema::ProcessParameters;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(20);
/// Far larger than any socket buffer, so the relay must stream.
const SIZE: usize = 8 << 20;

struct Harness {
    host: GuestConnection,
    peer: GuestPeer,
    _dir: tempfile::TempDir,
}

fn options(transport: Transport, cold_start: bool, request: Duration) -> ConnectOptions {
    ConnectOptions {
        cold_start,
        time_zone: None,
        timeouts: Timeouts {
            request,
            stdio_connect: Duration::from_secs(10),
        },
        relay: transport,
    }
}

/// Host listens on the GCS service, the peer dials it (as the guest agent does), the host
/// accepts and negotiates.
async fn connect_with(
    peer_config: impl FnOnce(Transport) -> PeerConfig,
    cold_start: bool,
    request: Duration,
) -> Harness {
    let (host, peer, dir) = try_connect_with(peer_config, cold_start, request).await;
    Harness {
        host: host.unwrap(),
        peer,
        _dir: dir,
    }
}

async fn try_connect_with(
    peer_config: impl FnOnce(Transport) -> PeerConfig,
    cold_start: bool,
    request: Duration,
) -> (
    Result<GuestConnection, BridgeError>,
    GuestPeer,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let transport = Transport::Unix {
        dir: dir.path().to_owned(),
    };
    let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
    let peer = GuestPeer::new(peer_config(transport.clone()));
    let guest = peer.clone();
    let dialer = transport.clone();
    tokio::spawn(async move {
        let stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
        let _ = guest.serve(stream).await;
    });
    let stream = listener.accept(LIMIT).await.unwrap();
    let host = GuestConnection::connect(stream, options(transport, cold_start, request)).await;
    (host, peer, dir)
}

async fn connect() -> Harness {
    connect_with(PeerConfig::windows_guest, true, Duration::from_secs(30)).await
}

fn hosted_document(layers: usize) -> serde_json::Value {
    json!({
        "SchemaVersion": {"Major": 2, "Minor": 1},
        "Container": {
            "Storage": {
                "Layers": (0..layers).map(|i| json!({"Id": Uuid::from_u128(i as u128).to_string(), "Path": vsmb_guest_path(&format!("s{i}"))})).collect::<Vec<_>>(),
                "Path": r"c:\mounts\scsi\m0",
            }
        }
    })
}

fn shell(script: &str) -> ProcessParameters {
    ProcessParameters {
        command_line: pane_hcs::command_line::join(&["sh", "-c", script]),
        create_std_out_pipe: true,
        create_std_err_pipe: true,
        ..ProcessParameters::default()
    }
}

async fn read_all(stream: &mut Option<pane_gcs::host::BoxStreamDebug>) -> Vec<u8> {
    let mut bytes = Vec::new();
    stream
        .as_mut()
        .unwrap()
        .0
        .read_to_end(&mut bytes)
        .await
        .unwrap();
    bytes
}

async fn create_started(host: &GuestConnection, id: &str) {
    host.create_container(id, &hosted_document(1))
        .await
        .unwrap();
    host.start_container(id).await.unwrap();
}

#[tokio::test]
async fn the_whole_hyperv_sequence_runs_in_order() {
    let Harness { host, peer, _dir } = connect().await;
    let vm = Uuid::new_v4();
    let adapter = Uuid::new_v4();
    let layers = CombinedLayers {
        container_root_path: r"c:\mounts\scsi\m0".into(),
        layers: vec![GuestLayer {
            id: Uuid::new_v4(),
            path: vsmb_guest_path("s0"),
        }],
        scratch_path: None,
        filter_type: None,
    };
    host.modify(NULL_CONTAINER_ID, GuestRequest::hv_socket_update(vm))
        .await
        .unwrap();
    host.modify(
        NULL_CONTAINER_ID,
        GuestRequest::mount_scsi_disk(r"c:\mounts\scsi\m0", 1),
    )
    .await
    .unwrap();
    host.modify(NULL_CONTAINER_ID, GuestRequest::combine_layers(&layers))
        .await
        .unwrap();
    host.modify(
        NULL_CONTAINER_ID,
        GuestRequest::add_network_namespace(json!({"ID": "ns"})),
    )
    .await
    .unwrap();
    host.modify(
        NULL_CONTAINER_ID,
        GuestRequest::network_pre_add(adapter, json!({"ID": "ep"})),
    )
    .await
    .unwrap();
    host.modify(NULL_CONTAINER_ID, GuestRequest::network_add(adapter))
        .await
        .unwrap();
    let mut notifications = host.notifications();
    host.create_container("web-1", &hosted_document(1))
        .await
        .unwrap();
    host.start_container("web-1").await.unwrap();
    let mut init = host
        .execute_process("web-1", shell("echo started; echo oops >&2; exit 7"))
        .await
        .unwrap();
    let (stdout, stderr) = tokio::join!(read_all(&mut init.stdout), read_all(&mut init.stderr));
    let exit_code = host
        .wait_for_process("web-1", init.process_id, None)
        .await
        .unwrap();
    assert_eq!(
        (stdout.as_slice(), stderr.as_slice(), exit_code),
        (&b"started\n"[..], &b"oops\n"[..], 7)
    );

    let exit = tokio::time::timeout(LIMIT, notifications.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.base.container_id, "web-1");
    assert_eq!(exit.kind, "UnexpectedExit");

    assert_sequence(&peer);
}

/// What the guest saw, in order: negotiation, cold start, six modifies, the container.
fn assert_sequence(peer: &GuestPeer) {
    assert_eq!(
        peer.received_rpcs(),
        [
            "NegotiateProtocol",
            "Create",
            "Start", // cold start of the null container
            "ModifySettings",
            "ModifySettings",
            "ModifySettings",
            "ModifySettings",
            "ModifySettings",
            "ModifySettings",
            "Create",
            "Start",
            "ExecuteProcess",
            "WaitForProcess",
        ]
    );
    let received = peer.received();
    assert_eq!(received[1].container_id, NULL_CONTAINER_ID);
    let cold_config: serde_json::Value =
        serde_json::from_str(received[1].body["ContainerConfig"].as_str().unwrap()).unwrap();
    assert_eq!(cold_config["SystemType"], "Container");
    assert_eq!(
        cold_config["TimeZoneInformation"]["StandardName"],
        "Coordinated Universal Time"
    );
    let resources: Vec<&str> = received[3..9]
        .iter()
        .map(|r| r.body["Request"]["ResourceType"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "HvSocket",
            "MappedVirtualDisk",
            "CombinedLayers",
            "NetworkNamespace",
            "Network",
            "Network"
        ]
    );
    assert_eq!(
        peer.container_document("web-1").unwrap(),
        hosted_document(1)
    );
}

#[tokio::test]
async fn stdio_larger_than_socket_buffers_is_relayed_whole() {
    let Harness { host, _dir, .. } = connect().await;
    create_started(&host, "big-1").await;
    // The container lives as long as its first (init) process; keep one running.
    let sleep = ProcessParameters {
        command_line: "sleep 30".into(),
        ..Default::default()
    };
    host.execute_process("big-1", sleep).await.unwrap();
    let script = format!(
        "head -c {SIZE} /dev/urandom > /dev/null; yes 0123456789abcde | head -c {SIZE}; yes ERR | head -c {SIZE} >&2"
    );
    let mut process = host.execute_process("big-1", shell(&script)).await.unwrap();
    let (stdout, stderr) =
        tokio::join!(read_all(&mut process.stdout), read_all(&mut process.stderr));
    assert_eq!(stdout.len(), SIZE);
    assert_eq!(stderr.len(), SIZE);
    assert!(
        stdout
            .chunks(16)
            .all(|line| line == &b"0123456789abcde\n"[..line.len()])
    );
    assert!(stderr.chunks(4).all(|line| line == &b"ERR\n"[..line.len()]));
    assert_eq!(
        host.wait_for_process("big-1", process.process_id, None)
            .await
            .unwrap(),
        0
    );

    // stdin: what the host writes comes back through `cat`, with EOF on half-close.
    let mut cat = host
        .execute_process(
            "big-1",
            ProcessParameters {
                create_std_in_pipe: true,
                ..shell("cat")
            },
        )
        .await
        .unwrap();
    let input: Vec<u8> = (0..SIZE).map(|i| u8::try_from(i % 251).unwrap()).collect();
    let mut stdin = cat.stdin.take().unwrap().0;
    let expected = input.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let echoed = read_all(&mut cat.stdout).await;
    writer.await.unwrap();
    assert!(echoed == expected, "stdin relay changed the bytes");
    assert_eq!(
        host.wait_for_process("big-1", cat.process_id, None)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_hundred_concurrent_requests_each_get_their_own_answer() {
    let Harness { host, .. } = connect().await;
    let ids: Vec<String> = (0..100).map(|i| format!("c-{i}")).collect();
    let document = hosted_document(2);
    let creates = ids.iter().map(|id| host.create_container(id, &document));
    for result in futures_join_all(creates).await {
        result.unwrap();
    }
    let queries = ids
        .iter()
        .map(|id| host.get_properties(id, json!({"PropertyTypes": ["ProcessList"]})));
    let answers = futures_join_all(queries).await;
    for (id, answer) in ids.iter().zip(answers) {
        let properties = answer.unwrap();
        assert_eq!(properties["Id"], id.as_str());
        assert_eq!(properties["State"], "Created");
    }
}

/// `join_all` without a futures dependency: the futures run concurrently on one task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

#[tokio::test]
async fn a_peer_crash_fails_every_waiter_and_nothing_hangs() {
    let Harness { host, peer, _dir } = connect().await;
    create_started(&host, "crash-1").await;
    let sleeper = host
        .execute_process(
            "crash-1",
            ProcessParameters {
                command_line: "sleep 30".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    peer.stall(Rpc::GetProperties);
    peer.drop_connection_on(Rpc::DumpStacks);
    let wait = host.wait_for_process("crash-1", sleeper.process_id, None);
    let stalled = host.get_properties("crash-1", json!({}));
    let crash = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        host.dump_stacks().await
    };
    let (wait, stalled, crash) =
        tokio::time::timeout(LIMIT, async { tokio::join!(wait, stalled, crash) })
            .await
            .expect("every waiter returned");
    for result in [wait.map(|_| ()), stalled.map(|_| ()), crash.map(|_| ())] {
        assert!(
            matches!(result, Err(BridgeError::Closed { .. })),
            "{result:?}"
        );
    }
    let after = host.start_container("crash-1").await;
    assert!(
        matches!(after, Err(BridgeError::Closed { .. })),
        "{after:?}"
    );
}

#[tokio::test]
async fn guest_failures_name_the_step_the_container_and_the_hresult() {
    let Harness { host, peer, _dir } = connect().await;
    peer.fail_once(Rpc::Create, hresults::HCS_E_INVALID_JSON);
    let err = host
        .create_container("bad-1", &hosted_document(1))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("Create")
            && message.contains("bad-1")
            && message.contains("HCS_E_INVALID_JSON"),
        "{message}"
    );
    // Once only: the retry succeeds.
    host.create_container("bad-1", &hosted_document(1))
        .await
        .unwrap();
    // The guest refuses what the Windows Server 2022 agent refuses.
    let with_filter = CombinedLayers {
        container_root_path: r"c:\mounts\scsi\m0".into(),
        layers: vec![],
        scratch_path: None,
        filter_type: Some("WCIFS".into()),
    };
    let err = host
        .modify(
            NULL_CONTAINER_ID,
            GuestRequest::combine_layers(&with_filter),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("$.Settings.FilterType"), "{err}");
    // hcsshim's guest: HrVmcomputeSystemNotFound (internal/bridgeutils/gcserr).
    let err = host.start_container("missing").await.unwrap_err();
    assert_eq!(err.hresult().map(|h| h.0), Some(0xC037_010E));
}

#[tokio::test]
async fn a_stalled_request_times_out_and_the_bridge_stays_usable() {
    let Harness { host, peer, _dir } =
        connect_with(PeerConfig::windows_guest, true, Duration::from_millis(200)).await;
    peer.stall(Rpc::DumpStacks);
    let err = host.dump_stacks().await.unwrap_err();
    assert!(
        matches!(
            err,
            BridgeError::Timeout {
                rpc: "DumpStacks",
                ..
            }
        ),
        "{err:?}"
    );
    host.create_container("after-1", &hosted_document(1))
        .await
        .unwrap();
}

/// pane runs Windows guests only; a Linux guest (hcsshim's LCOW GCS reports `Linux`) would
/// get Windows stdio settings it cannot use, so it is refused before anything is sent.
#[tokio::test]
async fn a_linux_guest_is_refused_at_negotiation() {
    for os in ["Linux", "linux"] {
        let linux_guest = |transport| {
            let mut config = PeerConfig::windows_guest(transport);
            config.capabilities.runtime_os_type = os.to_owned();
            config
        };
        let (host, peer, _dir) = try_connect_with(linux_guest, true, LIMIT).await;
        let err = host.unwrap_err();
        assert!(
            matches!(&err, BridgeError::Protocol(m) if m.contains(os) && m.contains("Windows guests only")),
            "{err}"
        );
        assert_eq!(peer.received_rpcs(), ["NegotiateProtocol"]);
    }
    for os in ["", "Windows", "windows"] {
        let windows_guest = |transport| {
            let mut config = PeerConfig::windows_guest(transport);
            config.capabilities.runtime_os_type = os.to_owned();
            config
        };
        let (host, _peer, _dir) = try_connect_with(windows_guest, true, LIMIT).await;
        host.unwrap();
    }
}

#[tokio::test]
async fn container_requests_before_the_cold_start_are_refused() {
    let Harness { host, _dir, .. } =
        connect_with(PeerConfig::windows_guest, false, Duration::from_secs(30)).await;
    let err = host
        .create_container("early-1", &hosted_document(1))
        .await
        .unwrap_err();
    assert_eq!(err.hresult().map(|h| h.0), Some(0x8037_0105));
}

#[tokio::test]
async fn signals_and_shutdowns_reach_real_processes() {
    let Harness { host, _dir, .. } = connect().await;
    create_started(&host, "sig-1").await;
    let mut notifications = host.notifications();
    let init = host
        .execute_process(
            "sig-1",
            ProcessParameters {
                command_line: "sleep 30".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let other = host
        .execute_process(
            "sig-1",
            ProcessParameters {
                command_line: "sleep 30".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let delivered = host
        .signal_process("sig-1", other.process_id, Some(WindowsSignal::CtrlC))
        .await
        .unwrap();
    assert!(delivered);
    assert_eq!(
        host.wait_for_process("sig-1", other.process_id, None)
            .await
            .unwrap(),
        128 + 2
    );
    // A short wait on a live process times out in the guest, with hcsshim's guest's
    // HvVmcomputeTimeout (internal/guest/bridge/bridge_v2.go `waitOnProcessV2`).
    let err = host
        .wait_for_process("sig-1", init.process_id, Some(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert_eq!(err.hresult().map(|h| h.0), Some(0xC037_0109));
    host.shutdown_forced("sig-1").await.unwrap();
    assert_eq!(
        host.wait_for_process("sig-1", init.process_id, None)
            .await
            .unwrap(),
        128 + 9
    );
    let exit = tokio::time::timeout(LIMIT, notifications.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (exit.kind.as_str(), exit.operation.as_str()),
        ("ForcedExit", "None"),
        "hcsshim's guest sends no operation with an exit (bridge_v2.go `createContainerV2`)"
    );
    host.delete_container_state("sig-1").await.unwrap();
}

/// hcsshim's host (internal/gcs/process.go `Signal`, container.go `shutdown`) takes the
/// guest's "not found" for a process or container that is already gone as success: what
/// was asked for has happened.
#[tokio::test]
async fn killing_or_stopping_what_is_already_gone_succeeds() {
    let Harness { host, peer, _dir } = connect().await;
    create_started(&host, "gone-1").await;
    let init = host
        .execute_process("gone-1", shell("exit 0"))
        .await
        .unwrap();
    host.wait_for_process("gone-1", init.process_id, None)
        .await
        .unwrap();
    let delivered = host
        .signal_process("gone-1", init.process_id, None)
        .await
        .unwrap();
    assert!(!delivered, "a signal to an exited process reaches nothing");
    host.delete_container_state("gone-1").await.unwrap();
    host.shutdown_graceful("gone-1").await.unwrap();
    host.shutdown_forced("gone-1").await.unwrap();
    // Only those codes: any other failure is still an error.
    peer.fail_once(Rpc::SignalProcess, hresults::E_ACCESSDENIED);
    let err = host
        .signal_process("gone-1", init.process_id, None)
        .await
        .unwrap_err();
    assert_eq!(err.hresult().map(|h| h.0), Some(0x8007_0005));
    peer.fail_once(Rpc::ShutdownForced, hresults::HCS_E_INVALID_STATE);
    let err = host.shutdown_forced("gone-1").await.unwrap_err();
    assert_eq!(err.hresult().map(|h| h.0), Some(0x8037_0105));
}

#[tokio::test]
async fn a_missing_program_is_a_file_not_found_error() {
    let Harness { host, _dir, .. } = connect().await;
    create_started(&host, "nf-1").await;
    let err = host
        .execute_process(
            "nf-1",
            ProcessParameters {
                command_line: "/no/such/program".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.hresult().map(|h| h.0), Some(0x8007_0002), "{err}");
}

/// A process in the utility VM itself (the null container) that a signal ends exits with
/// -1, as Go's `ProcessState.ExitCode` reports it to hcsshim's guest (hcsv2/process.go
/// `newExternalProcess`); in a container, runc's 128+N (runc/runc.go `waitOnProcess`).
#[tokio::test]
async fn a_signalled_process_in_the_vm_itself_exits_with_all_bits_set() {
    let Harness { host, _dir, .. } = connect().await;
    let process = host
        .execute_process(
            NULL_CONTAINER_ID,
            ProcessParameters {
                command_line: "sleep 30".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    host.signal_process(NULL_CONTAINER_ID, process.process_id, None)
        .await
        .unwrap();
    let code = host
        .wait_for_process(NULL_CONTAINER_ID, process.process_id, None)
        .await
        .unwrap();
    assert_eq!(code, 0xFFFF_FFFF);
}

/// The host side of a raw connection to the peer, to send what `GuestConnection` never
/// would.
async fn raw_host_against_peer() -> (pane_gcs::transport::BoxStream, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let transport = Transport::Unix {
        dir: dir.path().to_owned(),
    };
    let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
    let peer = GuestPeer::new(PeerConfig::windows_guest(transport.clone()));
    let dialer = transport.clone();
    tokio::spawn(async move {
        let stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
        let _ = peer.serve(stream).await;
    });
    (listener.accept(LIMIT).await.unwrap(), dir)
}

/// Sends one message and reads the answer: its type and `Result`.
async fn exchange(
    stream: &mut pane_gcs::transport::BoxStream,
    message_type: MessageType,
    id: u64,
    body: &serde_json::Value,
) -> (MessageType, u32) {
    let mut bytes = serde_json::to_vec(body).unwrap();
    bytes.push(b'\n');
    stream
        .write_all(&frame::encode(message_type, id, &bytes).unwrap())
        .await
        .unwrap();
    let answer = tokio::time::timeout(LIMIT, frame::read_frame(stream, frame::MAX_MESSAGE_SIZE))
        .await
        .expect("the peer answered")
        .unwrap()
        .unwrap();
    assert_eq!(answer.id, id);
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let result = body["Result"].as_i64().unwrap();
    (
        answer.message_type,
        u32::try_from(result & 0xFFFF_FFFF).unwrap(),
    )
}

/// hcsshim's guest finds a handler by message type and negotiated version
/// (internal/guest/bridge/bridge.go `Mux`): before negotiation only `NegotiateProtocol` has
/// one, after it `NegotiateProtocol` has none, and an unknown type never does. Each miss is
/// answered `E_NOTIMPL` (gcserr.HrNotImpl) under the request's response type.
#[tokio::test]
async fn the_peer_answers_what_it_cannot_handle_with_not_implemented() {
    const E_NOTIMPL: u32 = 0x8000_4001;
    let (mut host, _dir) = raw_host_against_peer().await;
    let base = json!({"ContainerId": NULL_CONTAINER_ID});
    assert_eq!(
        exchange(&mut host, MessageType::request(Rpc::DumpStacks), 1, &base).await,
        (MessageType::response(Rpc::DumpStacks), E_NOTIMPL),
        "a request before negotiation"
    );
    let negotiate =
        json!({"ContainerId": NULL_CONTAINER_ID, "MinimumVersion": 4, "MaximumVersion": 4});
    let request = MessageType::request(Rpc::NegotiateProtocol);
    let response = MessageType::response(Rpc::NegotiateProtocol);
    assert_eq!(
        exchange(&mut host, request, 2, &negotiate).await,
        (response, 0)
    );
    assert_eq!(
        exchange(&mut host, request, 3, &negotiate).await,
        (response, E_NOTIMPL),
        "a second negotiation"
    );
    for (undefined, answer) in [
        (0x1010_1001, 0x2010_1001), // compute system RPC 16
        (0x1030_0101, 0x2030_0101), // an unknown category
        (0x1010_0102, 0x2010_0102), // version 2 of Create
    ] {
        assert_eq!(
            exchange(&mut host, MessageType(undefined), 4, &base).await,
            (MessageType(answer), E_NOTIMPL),
            "0x{undefined:08x}"
        );
    }
    // Defined in the protocol, but hcsshim's guest registers no handler for them.
    for rpc in [
        Rpc::UpdateContainer,
        Rpc::LifecycleNotification,
        Rpc::ModifyServiceSettings,
    ] {
        assert_eq!(
            exchange(&mut host, MessageType::request(rpc), 5, &base).await,
            (MessageType::response(rpc), E_NOTIMPL),
            "{rpc:?}"
        );
    }
    // Still serving after all of that.
    assert_eq!(
        exchange(&mut host, MessageType::request(Rpc::DumpStacks), 6, &base).await,
        (MessageType::response(Rpc::DumpStacks), 0)
    );
}

/// A fake guest that writes raw bytes, to check how the host treats malformed input.
async fn host_against_raw_guest(
    reply: impl FnOnce(u64) -> Vec<u8> + Send + 'static,
) -> Result<GuestConnection, BridgeError> {
    let dir = tempfile::tempdir().unwrap();
    let transport = Transport::Unix {
        dir: dir.path().to_owned(),
    };
    let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
    let dialer = transport.clone();
    tokio::spawn(async move {
        let mut stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
        let request = frame::read_frame(&mut stream, frame::MAX_MESSAGE_SIZE)
            .await
            .unwrap()
            .unwrap();
        stream.write_all(&reply(request.id)).await.unwrap();
        // Hold the connection open: the host must not depend on EOF to notice.
        tokio::time::sleep(LIMIT).await;
    });
    let stream = listener.accept(LIMIT).await.unwrap();
    tokio::time::timeout(
        LIMIT,
        GuestConnection::connect(stream, options(transport, true, LIMIT)),
    )
    .await
    .expect("the host gave up on the bad guest")
}

#[tokio::test]
async fn malformed_frames_close_the_bridge_with_an_error() {
    let too_small = |id: u64| {
        let mut header = frame::Header {
            message_type: MessageType::response(Rpc::NegotiateProtocol),
            size: 16,
            id,
        }
        .encode();
        header[4..8].copy_from_slice(&3u32.to_le_bytes());
        header.to_vec()
    };
    let err = host_against_raw_guest(too_small).await.unwrap_err();
    assert!(
        matches!(&err, BridgeError::Closed { reason } if reason.contains("smaller than")),
        "{err}"
    );

    let too_large = |id: u64| {
        frame::Header {
            message_type: MessageType::response(Rpc::NegotiateProtocol),
            size: 0x0100_0000,
            id,
        }
        .encode()
        .to_vec()
    };
    let err = host_against_raw_guest(too_large).await.unwrap_err();
    assert!(
        matches!(&err, BridgeError::Closed { reason } if reason.contains("exceeds")),
        "{err}"
    );

    let not_json = |id: u64| {
        frame::encode(
            MessageType::response(Rpc::NegotiateProtocol),
            id,
            b"{not json",
        )
        .unwrap()
    };
    let err = host_against_raw_guest(not_json).await.unwrap_err();
    assert!(matches!(err, BridgeError::Protocol(_)), "{err}");

    let wrong_version = |id: u64| {
        frame::encode(
            MessageType::response(Rpc::NegotiateProtocol),
            id,
            br#"{"Result":0,"Version":3}"#,
        )
        .unwrap()
    };
    let err = host_against_raw_guest(wrong_version).await.unwrap_err();
    assert!(err.to_string().contains("version 3"), "{err}");
}

/// A guest that answers negotiation, then answers the next request with `bad` (raw bytes)
/// instead of a response, and holds the connection open.
async fn host_against_guest_sending(
    bad: Vec<u8>,
) -> (
    GuestConnection,
    Result<String, BridgeError>,
    broadcast::Receiver<ContainerNotification>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let transport = Transport::Unix {
        dir: dir.path().to_owned(),
    };
    let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
    let dialer = transport.clone();
    tokio::spawn(async move {
        let mut stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
        let negotiate = frame::read_frame(&mut stream, frame::MAX_MESSAGE_SIZE)
            .await
            .unwrap()
            .unwrap();
        let answer = frame::encode(
            MessageType::response(Rpc::NegotiateProtocol),
            negotiate.id,
            br#"{"Result":0,"Version":4}"#,
        )
        .unwrap();
        stream.write_all(&answer).await.unwrap();
        frame::read_frame(&mut stream, frame::MAX_MESSAGE_SIZE)
            .await
            .unwrap()
            .unwrap();
        stream.write_all(&bad).await.unwrap();
        tokio::time::sleep(LIMIT).await;
    });
    let stream = listener.accept(LIMIT).await.unwrap();
    let host = GuestConnection::connect(stream, options(transport, true, LIMIT))
        .await
        .unwrap();
    let subscribed = host.notifications();
    let outstanding = tokio::time::timeout(LIMIT, host.dump_stacks())
        .await
        .expect("the outstanding request was failed, not left waiting");
    (host, outstanding, subscribed, dir)
}

/// hcsshim's host (internal/gcs/bridge.go `recvLoop`) takes a notification it cannot read,
/// or of a kind it does not know, as a broken bridge: an exit may have been in it, and a
/// host that drops it waits for that exit forever.
#[tokio::test]
async fn an_unreadable_notification_fails_the_bridge_and_every_waiter() {
    let wrong_field = frame::encode(
        MessageType::CONTAINER_NOTIFICATION,
        0,
        br#"{"ContainerId":"web-1","Type":7,"Operation":"None"}"#,
    )
    .unwrap();
    let not_json = frame::encode(MessageType::CONTAINER_NOTIFICATION, 0, b"{exit").unwrap();
    let unknown_kind = frame::encode(
        MessageType(0x3010_0201),
        0,
        br#"{"ContainerId":"web-1","Type":"GracefulExit","Operation":"None"}"#,
    )
    .unwrap();
    for bad in [wrong_field, not_json, unknown_kind] {
        let (host, outstanding, mut subscribed, _dir) = host_against_guest_sending(bad).await;
        assert!(
            matches!(&outstanding, Err(BridgeError::Closed { reason }) if reason.contains("notification")),
            "{outstanding:?}"
        );
        assert!(host.bridge().is_closed());
        let mut late = host.notifications();
        for subscriber in [&mut subscribed, &mut late] {
            let next = tokio::time::timeout(LIMIT, subscriber.recv())
                .await
                .expect("a subscriber of a closed bridge is told so");
            assert_eq!(next, Err(broadcast::error::RecvError::Closed));
        }
        let later = host.start_container("web-1").await;
        assert!(
            matches!(later, Err(BridgeError::Closed { .. })),
            "{later:?}"
        );
    }
}

#[tokio::test]
async fn the_bridge_and_relay_work_over_tcp_too() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_port = probe.local_addr().unwrap().port();
    drop(probe);
    let transport = Transport::Tcp {
        address: [127, 0, 0, 1].into(),
        base_port,
    };
    let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
    let peer = GuestPeer::new(PeerConfig::windows_guest(transport.clone()));
    let dialer = transport.clone();
    tokio::spawn(async move {
        let stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
        let _ = peer.serve(stream).await;
    });
    let stream = listener.accept(LIMIT).await.unwrap();
    let host = GuestConnection::connect(stream, options(transport, true, LIMIT))
        .await
        .unwrap();
    create_started(&host, "tcp-1").await;
    let mut process = host
        .execute_process("tcp-1", shell("echo over tcp"))
        .await
        .unwrap();
    assert_eq!(read_all(&mut process.stdout).await, b"over tcp\n");
    assert_eq!(
        host.wait_for_process("tcp-1", process.process_id, None)
            .await
            .unwrap(),
        0
    );
}
