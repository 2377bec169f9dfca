//! The client side: what every `pane` command uses to reach a container's shim. One
//! reader task routes responses to their callers by id, and a session's output and exit to
//! its [`ClientSession`], created on first sight so nothing that arrives before the
//! response that names the session is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::frame::{Frame, FrameError, MAX_CHUNK, Stream, read_frame, write_frame};
use crate::protocol::{ClientMessage, ConsoleSize, ExecRequest, Op, PROTOCOL, ShimMessage};

/// How long the shim has to answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ShimClientError {
    #[error("the shim did not answer the handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the shim refused this pane: {0}")]
    Refused(String),
    #[error("the connection to the shim failed: {0}")]
    Frame(#[from] FrameError),
    #[error("the shim answered something pane does not understand: {0}")]
    Protocol(String),
    #[error("the shim went away")]
    Gone,
    #[error("{0}")]
    Operation(String),
}

type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Output chunks held for a session whose reader is slow. When it is full the router waits,
/// and so the socket, the shim's pumps and the process's output wait too: a client that
/// stops reading holds the process up instead of growing without bound.
const SESSION_BUFFER: usize = 64;

/// Output and exit of one session, as the reader sees them.
struct Slot {
    output: mpsc::Sender<(Stream, Vec<u8>)>,
    output_rx: Option<mpsc::Receiver<(Stream, Vec<u8>)>>,
    exit: Option<oneshot::Sender<i32>>,
    exit_rx: Option<oneshot::Receiver<i32>>,
}

impl Slot {
    fn new() -> Self {
        let (output, output_rx) = mpsc::channel(SESSION_BUFFER);
        let (exit, exit_rx) = oneshot::channel();
        Self {
            output,
            output_rx: Some(output_rx),
            exit: Some(exit),
            exit_rx: Some(exit_rx),
        }
    }
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, oneshot::Sender<Result<serde_json::Value, String>>>,
    sessions: HashMap<u64, Slot>,
    closed: bool,
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A connection to a container's shim.
pub struct ShimClient {
    writer: tokio::sync::Mutex<Writer>,
    routes: Arc<Mutex<Routes>>,
    next_id: AtomicU64,
    /// Reads the shim's frames; holds the connection's read half.
    router: tokio::task::JoinHandle<()>,
    /// The version of pane the shim runs.
    pub shim_version: String,
}

impl Drop for ShimClient {
    /// The connection closes with the client: the router holds its read half, and a shim
    /// sees its client go only when both halves have.
    fn drop(&mut self) {
        self.router.abort();
    }
}

impl std::fmt::Debug for ShimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimClient")
            .field("shim_version", &self.shim_version)
            .finish_non_exhaustive()
    }
}

/// An exec or attach in progress.
#[derive(Debug)]
pub struct ClientSession {
    pub id: u64,
    /// The process has a console (its output is one stream; it can be resized).
    pub console: bool,
    /// Output in arrival order; ends after the process's last output.
    pub output: mpsc::Receiver<(Stream, Vec<u8>)>,
    /// The exit code; an error if the shim went away first.
    pub exit: oneshot::Receiver<i32>,
}

impl ShimClient {
    /// Says hello over `connection` and waits for the shim's welcome.
    pub async fn handshake<C>(connection: C, client_version: &str) -> Result<Self, ShimClientError>
    where
        C: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, writer) = tokio::io::split(connection);
        let mut writer: Writer = Box::new(writer);
        let hello = ClientMessage::Hello {
            protocol: PROTOCOL,
            client: client_version.to_owned(),
        };
        write_frame(&mut writer, &control(&hello)).await?;
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut reader))
            .await
            .map_err(|_| ShimClientError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
        let shim_version = match answer.map(parse) {
            Some(Ok(ShimMessage::Welcome { protocol, shim })) if protocol == PROTOCOL => shim,
            Some(Ok(ShimMessage::Welcome { protocol, shim })) => {
                return Err(ShimClientError::Refused(format!(
                    "the shim (pane {shim}) welcomed protocol {protocol}, this pane speaks {PROTOCOL}"
                )));
            }
            Some(Ok(ShimMessage::Refused { reason, .. })) => {
                return Err(ShimClientError::Refused(reason));
            }
            Some(Ok(other)) => {
                return Err(ShimClientError::Protocol(format!(
                    "expected a welcome, got {other:?}"
                )));
            }
            Some(Err(e)) => return Err(e),
            None => return Err(ShimClientError::Gone),
        };
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reading = tokio::spawn(route(reader, Arc::clone(&routes)));
        Ok(Self {
            writer: tokio::sync::Mutex::new(writer),
            routes,
            next_id: AtomicU64::new(1),
            router: reading,
            shim_version,
        })
    }

    async fn send(&self, frame: &Frame) -> Result<(), ShimClientError> {
        write_frame(&mut *self.writer.lock().await, frame).await?;
        Ok(())
    }

    /// Runs `op` and returns the shim's answer.
    pub async fn call(&self, op: Op) -> Result<serde_json::Value, ShimClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if routes.closed {
                return Err(ShimClientError::Gone);
            }
            routes.pending.insert(id, tx);
        }
        self.send(&control(&ClientMessage::Request { id, op }))
            .await?;
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(ShimClientError::Operation(message)),
            Err(_) => Err(ShimClientError::Gone),
        }
    }

    pub async fn exec(&self, request: ExecRequest) -> Result<ClientSession, ShimClientError> {
        let answer = self.call(Op::Exec(request)).await?;
        self.session(&answer)
    }

    /// Attaches to the workload; see [`Op::Attach`] for `stdin_once`.
    pub async fn attach(
        &self,
        stdin: bool,
        stdin_once: bool,
    ) -> Result<ClientSession, ShimClientError> {
        let answer = self.call(Op::Attach { stdin, stdin_once }).await?;
        self.session(&answer)
    }

    fn session(&self, answer: &serde_json::Value) -> Result<ClientSession, ShimClientError> {
        let id = answer
            .get("session")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ShimClientError::Protocol(format!("no session in {answer}")))?;
        let console = answer
            .get("console")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let mut routes = lock(&self.routes);
        let slot = routes.sessions.entry(id).or_insert_with(Slot::new);
        let taken = (slot.output_rx.take(), slot.exit_rx.take());
        if slot.exit.is_none() {
            // It already ended: nothing more will be routed to it.
            routes.sessions.remove(&id);
        }
        match taken {
            (Some(output), Some(exit)) => Ok(ClientSession {
                id,
                console,
                output,
                exit,
            }),
            _ => Err(ShimClientError::Protocol(format!(
                "session {id} was handed out twice"
            ))),
        }
    }

    /// Sends input to a session, in chunks a frame holds.
    pub async fn write_input(&self, session: u64, bytes: &[u8]) -> Result<(), ShimClientError> {
        for chunk in bytes.chunks(MAX_CHUNK) {
            self.send(&Frame::Data {
                session,
                stream: Stream::Stdin,
                bytes: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    pub async fn close_input(&self, session: u64) -> Result<(), ShimClientError> {
        self.send(&control(&ClientMessage::CloseInput { session }))
            .await
    }

    pub async fn resize(&self, session: u64, size: ConsoleSize) -> Result<(), ShimClientError> {
        self.call(Op::Resize { session, size }).await.map(drop)
    }
}

fn control(message: &ClientMessage) -> Frame {
    Frame::Control(serde_json::to_value(message).unwrap_or_default())
}

fn parse(frame: Frame) -> Result<ShimMessage, ShimClientError> {
    match frame {
        Frame::Control(message) => {
            serde_json::from_value(message).map_err(|e| ShimClientError::Protocol(e.to_string()))
        }
        Frame::Data { .. } => Err(ShimClientError::Protocol(
            "data before the handshake finished".into(),
        )),
    }
}

/// Routes what the shim sends until it closes the connection; then every caller still
/// waiting learns the shim is gone.
async fn route(mut reader: impl AsyncRead + Unpin, routes: Arc<Mutex<Routes>>) {
    while let Ok(Some(frame)) = read_frame(&mut reader).await {
        match frame {
            Frame::Data {
                session,
                stream,
                bytes,
            } => {
                let output = lock(&routes)
                    .sessions
                    .entry(session)
                    .or_insert_with(Slot::new)
                    .output
                    .clone();
                let _ = output.send((stream, bytes)).await;
            }
            Frame::Control(message) => match serde_json::from_value::<ShimMessage>(message) {
                Ok(ShimMessage::Response { id, ok, error }) => {
                    let caller = lock(&routes).pending.remove(&id);
                    if let Some(caller) = caller {
                        let _ = caller.send(match error {
                            Some(message) => Err(message),
                            None => Ok(ok.unwrap_or(serde_json::Value::Null)),
                        });
                    }
                }
                Ok(ShimMessage::Exited { session, code }) => {
                    let mut routes = lock(&routes);
                    let slot = routes.sessions.entry(session).or_insert_with(Slot::new);
                    if let Some(exit) = slot.exit.take() {
                        let _ = exit.send(code);
                    }
                    if slot.output_rx.is_none() {
                        // Its session holds the receivers: dropping the slot ends the output.
                        routes.sessions.remove(&session);
                    } else {
                        // Not handed out yet: keep what came, end the stream after it.
                        let (closed, _) = mpsc::channel(1);
                        slot.output = closed;
                    }
                }
                // A message of a newer shim this pane does not know: not for it.
                Ok(_) | Err(_) => {}
            },
        }
    }
    let mut routes = lock(&routes);
    routes.closed = true;
    routes.pending.clear();
    routes.sessions.clear();
}
