//! The shim API over a real Unix socket, served by a target that runs real processes:
//! exec with input and output, exit codes, several clients at once, the workload's wait,
//! kill and stop, version refusal, a shim that goes away, and the socket's permissions.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pane_shim::endpoint::{Listener, connect, endpoint};
use pane_shim::frame::{Frame, Stream, read_frame, write_frame};
use pane_shim::{ExecRequest, Op, Session, ShimClient, ShimClientError, ShimTarget};
use tokio::sync::watch;

/// A container stand-in: execs are real `sh -c` processes; the workload is a flag that
/// `kill` and `stop` end.
struct Processes {
    ended: watch::Sender<Option<i32>>,
    signals: Mutex<Vec<String>>,
}

impl Processes {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            ended: watch::channel(None).0,
            signals: Mutex::default(),
        })
    }
}

#[async_trait]
impl ShimTarget for Processes {
    async fn state(&self) -> Result<serde_json::Value, String> {
        Ok(match *self.ended.borrow() {
            None => serde_json::json!({"state": "running"}),
            Some(code) => serde_json::json!({"state": "exited", "code": code}),
        })
    }

    async fn stats(&self) -> Result<serde_json::Value, String> {
        Err("no statistics here".into())
    }

    async fn wait(&self) -> Result<i32, String> {
        let mut ended = self.ended.subscribe();
        let code = ended
            .wait_for(Option::is_some)
            .await
            .map_err(|e| e.to_string())?;
        Ok(code.unwrap_or(-1))
    }

    async fn kill(&self, signal: &str) -> Result<(), String> {
        self.signals.lock().unwrap().push(signal.to_owned());
        if signal == "KILL" {
            self.ended.send_replace(Some(137));
        }
        Ok(())
    }

    async fn stop(&self, _: Duration) -> Result<i32, String> {
        self.ended.send_replace(Some(0));
        Ok(0)
    }

    async fn exec(&self, request: ExecRequest) -> Result<Session, String> {
        let mut child = tokio::process::Command::new(&request.command[0])
            .args(&request.command[1..])
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::new(s) as pane_shim::target::Input);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as pane_shim::target::Output);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as pane_shim::target::Output);
        Ok(Session {
            stdin,
            stdout,
            stderr,
            exit: Box::pin(
                async move { child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1) },
            ),
            resize: None,
        })
    }

    async fn attach(&self, _: bool, _: bool) -> Result<Session, String> {
        Err("nothing to attach to".into())
    }
}

/// A shim serving `target` on `<dir>/shims/web-1.sock`, accepting until dropped.
fn shim(dir: &Path, target: Arc<dyn ShimTarget>) -> tokio::task::JoinHandle<()> {
    let listener = Listener::bind(&endpoint(dir, "web-1")).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok(connection) = listener.accept().await else {
                return;
            };
            tokio::spawn(pane_shim::serve_connection(
                connection,
                Arc::clone(&target),
                "0.1.0-test",
            ));
        }
    })
}

async fn client(dir: &Path) -> ShimClient {
    let stream = connect(&endpoint(dir, "web-1")).await.unwrap();
    ShimClient::handshake(stream, "0.1.0-test").await.unwrap()
}

fn exec(command: &[&str], stdin: bool) -> ExecRequest {
    ExecRequest {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        workdir: None,
        user: None,
        terminal: None,
        stdin,
    }
}

/// Collects a session's output per stream until it ends, and its exit code.
async fn finish(mut session: pane_shim::ClientSession) -> (Vec<u8>, Vec<u8>, i32) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((stream, bytes)) = session.output.recv().await {
        match stream {
            Stream::Stdout => out.extend(bytes),
            _ => err.extend(bytes),
        }
    }
    (out, err, session.exit.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_input_and_output_and_returns_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let _shim = shim(dir.path(), Processes::new());
    let client = client(dir.path()).await;
    assert_eq!(client.shim_version, "0.1.0-test");

    let session = client.exec(exec(&["cat"], true)).await.unwrap();
    let big = vec![b'x'; 300 * 1024];
    client.write_input(session.id, &big).await.unwrap();
    client.close_input(session.id).await.unwrap();
    let (out, err, code) = finish(session).await;
    assert_eq!((out.len(), err.len(), code), (big.len(), 0, 0));

    let session = client
        .exec(exec(&["sh", "-c", "echo out; echo err >&2; exit 3"], false))
        .await
        .unwrap();
    let (out, err, code) = finish(session).await;
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );

    let refused = client.exec(exec(&["/nonexistent/binary"], false)).await;
    assert!(
        matches!(refused, Err(ShimClientError::Operation(ref m)) if m.contains("No such file")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_clients_share_the_container_and_see_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let target = Processes::new();
    let _shim = shim(dir.path(), target.clone());
    let (first, second) = (client(dir.path()).await, client(dir.path()).await);
    let waiting = tokio::spawn(async move {
        let answer = first.call(Op::Wait).await.unwrap();
        (first, answer)
    });
    let a = second.exec(exec(&["sh", "-c", "sleep 0.2; echo a"], false));
    let b = second.exec(exec(&["sh", "-c", "echo b"], false));
    let (a, b) = tokio::join!(a, b);
    let ((a_out, _, _), (b_out, _, _)) = tokio::join!(finish(a.unwrap()), finish(b.unwrap()));
    assert_eq!(
        (a_out.as_slice(), b_out.as_slice()),
        (&b"a\n"[..], &b"b\n"[..])
    );
    assert_eq!(second.call(Op::State).await.unwrap()["state"], "running");
    assert!(
        !waiting.is_finished(),
        "wait answers only when the workload ends"
    );
    second
        .call(Op::Kill {
            signal: "KILL".into(),
        })
        .await
        .unwrap();
    let (_first, answer) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer["exit_code"], 137);
    assert_eq!(*target.signals.lock().unwrap(), ["KILL"]);
    let err = second.call(Op::Stats).await.unwrap_err();
    assert_eq!(err.to_string(), "no statistics here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_protocol_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let _shim = shim(dir.path(), Processes::new());
    let mut raw = connect(&endpoint(dir.path(), "web-1")).await.unwrap();
    let hello = serde_json::json!({"type": "hello", "protocol": 99, "client": "9.9.9"});
    write_frame(&mut raw, &Frame::Control(hello)).await.unwrap();
    let Some(Frame::Control(answer)) = read_frame(&mut raw).await.unwrap() else {
        panic!("no answer");
    };
    assert_eq!(answer["type"], "refused");
    let reason = answer["reason"].as_str().unwrap();
    assert!(
        reason.contains("protocol 1") && reason.contains("9.9.9") && reason.contains("99"),
        "{reason}"
    );
    assert!(
        read_frame(&mut raw).await.unwrap().is_none(),
        "then it hangs up"
    );
    // A client whose first message is not hello is refused too.
    let mut raw = connect(&endpoint(dir.path(), "web-1")).await.unwrap();
    let request = serde_json::json!({"type": "request", "id": 1, "op": {"op": "state"}});
    write_frame(&mut raw, &Frame::Control(request))
        .await
        .unwrap();
    let Some(Frame::Control(answer)) = read_frame(&mut raw).await.unwrap() else {
        panic!("no answer");
    };
    assert_eq!(answer["type"], "refused");
}

/// A shim in a runtime of its own, as in its own process: dropping the runtime ends the
/// shim and every connection it serves, as the process's death would.
fn shim_process(dir: &Path, target: Arc<dyn ShimTarget>) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let path = endpoint(dir, "web-1");
    runtime.spawn(async move {
        let listener = Listener::bind(&path).unwrap();
        loop {
            let Ok(connection) = listener.accept().await else {
                return;
            };
            tokio::spawn(pane_shim::serve_connection(
                connection,
                Arc::clone(&target),
                "0.1.0-test",
            ));
        }
    });
    runtime
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_that_goes_away_fails_its_callers_instead_of_hanging_them() {
    let dir = tempfile::tempdir().unwrap();
    let shim = shim_process(dir.path(), Processes::new());
    let path = endpoint(dir.path(), "web-1");
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = client(dir.path()).await;
    let session = client
        .exec(exec(&["sh", "-c", "sleep 30"], false))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { client.call(Op::Wait).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shim.shutdown_background();
    let (waited, exit) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(waiting, session.exit)
    })
    .await
    .expect("the callers learn the shim is gone");
    assert!(matches!(waited.unwrap(), Err(ShimClientError::Gone)));
    assert!(
        exit.is_err(),
        "no exit code is made up for a session whose shim died"
    );
}

#[tokio::test]
async fn the_socket_is_the_owners_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = endpoint(dir.path(), "web-1");
    let _listener = Listener::bind(&path).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_this_shim_does_not_know_is_answered_and_the_connection_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let _shim = shim(dir.path(), Processes::new());
    let mut raw = connect(&endpoint(dir.path(), "web-1")).await.unwrap();
    let hello =
        serde_json::json!({"type": "hello", "protocol": pane_shim::PROTOCOL, "client": "next"});
    write_frame(&mut raw, &Frame::Control(hello)).await.unwrap();
    assert!(matches!(
        read_frame(&mut raw).await.unwrap(),
        Some(Frame::Control(_))
    ));
    let newer = serde_json::json!({"type": "request", "id": 9, "op": {"op": "checkpoint"}});
    write_frame(&mut raw, &Frame::Control(newer)).await.unwrap();
    let Some(Frame::Control(answer)) = read_frame(&mut raw).await.unwrap() else {
        panic!("no answer");
    };
    assert_eq!(answer["id"], 9);
    assert!(
        answer["error"].as_str().unwrap().contains("does not know"),
        "{answer}"
    );
    let state = serde_json::json!({"type": "request", "id": 10, "op": {"op": "state"}});
    write_frame(&mut raw, &Frame::Control(state)).await.unwrap();
    let Some(Frame::Control(answer)) = read_frame(&mut raw).await.unwrap() else {
        panic!("the connection was closed");
    };
    assert_eq!(answer["ok"]["state"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_shim_cannot_take_over_a_live_ones_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = endpoint(dir.path(), "web-1");
    let live = Listener::bind(&path).unwrap();
    let err = Listener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(path.exists(), "the refused bind left the live socket alone");
    drop(live);
    assert!(!path.exists());
    // A socket whose shim died is replaced; the old listener's drop (after a new shim took
    // the path) leaves the new socket alone.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let old = Listener::bind(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let new = Listener::bind(&path).unwrap();
    drop(old);
    assert!(
        path.exists(),
        "the old listener removed the new one's socket"
    );
    drop(new);
}
