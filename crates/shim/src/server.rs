//! The shim's side: one task per connection, one per request (a `wait` does not hold up a
//! `kill`), one writer per connection fed by a channel, and per session a pump for each
//! output stream and a feeder for its input.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::frame::{Frame, FrameError, MAX_CHUNK, Stream, read_frame, write_frame};
use crate::protocol::{ClientMessage, Op, PROTOCOL, ShimMessage};
use crate::target::{Output, Resize, Session, ShimTarget};

/// How long a client has to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for a slow client before its session pumps wait.
const OUTGOING_QUEUE: usize = 64;

/// The input side and console of each open session of one connection.
#[derive(Default)]
struct Sessions {
    inputs: HashMap<u64, mpsc::Sender<Option<Vec<u8>>>>,
    consoles: HashMap<u64, Arc<dyn Resize>>,
}

/// Serves `target` on one connection until the client goes.
pub async fn serve_connection<C>(connection: C, target: Arc<dyn ShimTarget>, shim_version: &str)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(connection);
    if !handshake(&mut reader, &mut writer, shim_version).await {
        return;
    }
    let (outgoing, mut queue) = mpsc::channel::<Frame>(OUTGOING_QUEUE);
    let writing = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            if write_frame(&mut writer, &frame).await.is_err() {
                break;
            }
        }
    });
    let sessions = Arc::new(Mutex::new(Sessions::default()));
    let next_session = Arc::new(AtomicU64::new(1));
    loop {
        let frame = match read_frame(&mut reader).await {
            Ok(Some(frame)) => frame,
            // The client went, cleanly or not.
            Ok(None) | Err(FrameError::Io(_)) => break,
            Err(e) => {
                tracing::warn!(error = %e, "a shim client sent a bad frame; closing it");
                break;
            }
        };
        match frame {
            Frame::Data {
                session,
                stream: Stream::Stdin,
                bytes,
            } => {
                let input = lock(&sessions).inputs.get(&session).cloned();
                if let Some(input) = input {
                    let _ = input.send(Some(bytes)).await;
                }
            }
            Frame::Data { .. } => {}
            Frame::Control(message) => match ClientMessage::deserialize(&message) {
                Ok(ClientMessage::CloseInput { session }) => {
                    let input = lock(&sessions).inputs.remove(&session);
                    if let Some(input) = input {
                        let _ = input.send(None).await;
                    }
                }
                Ok(ClientMessage::Request { id, op }) => {
                    let target = Arc::clone(&target);
                    let outgoing = outgoing.clone();
                    let sessions = Arc::clone(&sessions);
                    let next_session = Arc::clone(&next_session);
                    tokio::spawn(async move {
                        let answer =
                            handle(op, target.as_ref(), &outgoing, &sessions, &next_session).await;
                        let (ok, error) = match answer {
                            Ok(value) => (Some(value), None),
                            Err(message) => (None, Some(message)),
                        };
                        let _ = outgoing
                            .send(control(&ShimMessage::Response { id, ok, error }))
                            .await;
                    });
                }
                Ok(ClientMessage::Hello { .. }) => {
                    tracing::warn!("a shim client said hello twice; closing it");
                    break;
                }
                Err(e) => {
                    // A request of a newer pane (an op this shim does not know) gets an
                    // answer; anything else unknown is ignored.
                    if let Some(id) = unknown_request(&message) {
                        let answer = ShimMessage::Response {
                            id,
                            ok: None,
                            error: Some(format!(
                                "this shim (pane {shim_version}) does not know that request ({e}); use the pane that started the container, or restart the container"
                            )),
                        };
                        let _ = outgoing.send(control(&answer)).await;
                    }
                }
            },
        }
    }
    // The client went: the processes go on. A session without a console reads end of
    // input, as a pipe's reader would; a console session keeps its input open until its
    // process ends (a detach must not end `cmd`, as docker's does not with a TTY).
    let inputs: Vec<_> = {
        let mut sessions = lock(&sessions);
        let Sessions { inputs, consoles } = &mut *sessions;
        inputs
            .drain()
            .filter(|(id, _)| !consoles.contains_key(id))
            .map(|(_, input)| input)
            .collect()
    };
    for input in inputs {
        let _ = input.send(None).await;
    }
    drop(outgoing);
    let _ = writing.await;
}

/// Reads the client's hello and answers it; whether the client was welcomed.
async fn handshake(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    shim_version: &str,
) -> bool {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(reader)).await {
        Ok(Ok(Some(Frame::Control(hello)))) => {
            let answer = match serde_json::from_value::<ClientMessage>(hello) {
                Ok(ClientMessage::Hello { protocol, .. }) if protocol == PROTOCOL => {
                    ShimMessage::Welcome {
                        protocol: PROTOCOL,
                        shim: shim_version.to_owned(),
                    }
                }
                Ok(ClientMessage::Hello { protocol, client }) => ShimMessage::Refused {
                    protocol: PROTOCOL,
                    reason: format!(
                        "this shim (pane {shim_version}) speaks protocol {PROTOCOL}, the client (pane {client}) {protocol}; use the pane that started the container, or restart the container"
                    ),
                },
                _ => ShimMessage::Refused {
                    protocol: PROTOCOL,
                    reason: "the first message must be hello".into(),
                },
            };
            let welcomed = matches!(answer, ShimMessage::Welcome { .. });
            write_frame(writer, &control(&answer)).await.is_ok() && welcomed
        }
        _ => false,
    }
}

/// The id of a request whose op this shim cannot read.
fn unknown_request(message: &serde_json::Value) -> Option<u64> {
    (message.get("type")?.as_str()? == "request")
        .then(|| message.get("id")?.as_u64())
        .flatten()
}

fn lock(sessions: &Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn control(message: &ShimMessage) -> Frame {
    Frame::Control(serde_json::to_value(message).unwrap_or_default())
}

async fn handle(
    op: Op,
    target: &dyn ShimTarget,
    outgoing: &mpsc::Sender<Frame>,
    sessions: &Arc<Mutex<Sessions>>,
    next_session: &AtomicU64,
) -> Result<serde_json::Value, String> {
    match op {
        Op::State => target.state().await,
        Op::Stats => target.stats().await,
        Op::Wait => target
            .wait()
            .await
            .map(|code| serde_json::json!({ "exit_code": code })),
        Op::Kill { signal } => target.kill(&signal).await.map(|()| serde_json::Value::Null),
        Op::Stop { timeout_ms } => target
            .stop(Duration::from_millis(timeout_ms))
            .await
            .map(|code| serde_json::json!({ "exit_code": code })),
        Op::Resize { session, size } => {
            let console = lock(sessions).consoles.get(&session).cloned();
            match console {
                Some(console) => console.resize(size).await.map(|()| serde_json::Value::Null),
                None => Err(format!("session {session} has no console to resize")),
            }
        }
        Op::Exec(request) => {
            let session = target.exec(request).await?;
            Ok(open_session(session, outgoing, sessions, next_session))
        }
        Op::Attach { stdin, stdin_once } => {
            let session = target.attach(stdin, stdin_once).await?;
            Ok(open_session(session, outgoing, sessions, next_session))
        }
    }
}

/// Registers the session and starts its pumps; the response names it. Output may reach
/// the client before the response does: the client keeps what comes for a session it
/// does not know yet.
fn open_session(
    session: Session,
    outgoing: &mpsc::Sender<Frame>,
    sessions: &Arc<Mutex<Sessions>>,
    next_session: &AtomicU64,
) -> serde_json::Value {
    let id = next_session.fetch_add(1, Ordering::Relaxed);
    let (ended_tx, ended_rx) = tokio::sync::watch::channel(false);
    let Session {
        stdin,
        stdout,
        stderr,
        exit,
        resize,
    } = session;
    {
        let mut sessions = lock(sessions);
        if let Some(mut input) = stdin {
            let (tx, mut rx) = mpsc::channel::<Option<Vec<u8>>>(16);
            sessions.inputs.insert(id, tx);
            let mut ended = ended_rx.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Some(Some(bytes)) => {
                            if input.write_all(&bytes).await.is_err()
                                || input.flush().await.is_err()
                            {
                                break;
                            }
                        }
                        // Closed by the client, or its client went from a session without
                        // a console.
                        Some(None) => break,
                        // Dropped without a close: a console session whose client went.
                        // Its input stays open until the process ends.
                        None => {
                            let _ = ended.wait_for(|ended| *ended).await;
                            return;
                        }
                    }
                }
                let _ = input.shutdown().await;
            });
        }
        if let Some(resize) = &resize {
            sessions.consoles.insert(id, Arc::clone(resize));
        }
    }
    let console = resize.is_some();
    let outgoing = outgoing.clone();
    let sessions = Arc::clone(sessions);
    tokio::spawn(async move {
        let pumps = [(stdout, Stream::Stdout), (stderr, Stream::Stderr)]
            .into_iter()
            .filter_map(|(output, stream)| output.map(|o| (o, stream)))
            .map(|(output, stream)| tokio::spawn(pump(output, stream, id, outgoing.clone())))
            .collect::<Vec<_>>();
        let code = exit.await;
        let _ = ended_tx.send(true);
        for pump in pumps {
            let _ = pump.await;
        }
        {
            let mut sessions = lock(&sessions);
            sessions.inputs.remove(&id);
            sessions.consoles.remove(&id);
        }
        let _ = outgoing
            .send(control(&ShimMessage::Exited { session: id, code }))
            .await;
    });
    // `console` lets a client that attaches learn whether the process has one (an older
    // client ignores it).
    serde_json::json!({ "session": id, "console": console })
}

async fn pump(mut output: Output, stream: Stream, session: u64, outgoing: mpsc::Sender<Frame>) {
    let mut buffer = vec![0u8; MAX_CHUNK];
    loop {
        match output.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let frame = Frame::Data {
                    session,
                    stream,
                    bytes: buffer[..n].to_vec(),
                };
                if outgoing.send(frame).await.is_err() {
                    break;
                }
            }
        }
    }
}
