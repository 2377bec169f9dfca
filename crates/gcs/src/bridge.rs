//! The host end of the bridge: requests multiplexed by message id over one stream.
//!
//! One task reads frames and routes each response to the request waiting for its id;
//! another writes frames queued by callers. When either side fails, the bridge closes and
//! every waiting request gets [`BridgeError::Closed`], so nothing waits forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use pane_hcs::hresult::HResult;

use crate::error::BridgeError;
use crate::frame::{self, Frame, MAX_MESSAGE_SIZE, MessageKind, MessageType};
use crate::messages::{ContainerNotification, ResponseBase};
use crate::rpc::Rpc;

/// Frames queued for the writer; a bounded queue makes a stalled guest push back on callers.
const WRITE_QUEUE: usize = 256;
const NOTIFICATION_BUFFER: usize = 256;

type Waiter = oneshot::Sender<Result<Frame, BridgeError>>;

/// A connected bridge. Cheap to clone; all clones share the connection.
#[derive(Debug, Clone)]
pub struct Bridge {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    next_id: AtomicU64,
    writer: mpsc::Sender<Vec<u8>>,
    /// Taken when the bridge closes, so every subscriber sees the end of the stream.
    notifications: Mutex<Option<broadcast::Sender<ContainerNotification>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Set once; the reason every later request is refused.
    closed: Option<String>,
    waiters: HashMap<u64, Waiter>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notifier(&self) -> MutexGuard<'_, Option<broadcast::Sender<ContainerNotification>>> {
        self.notifications
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the bridge once and fails every waiter with the reason: requests get
    /// [`BridgeError::Closed`], notification subscribers the end of their stream.
    fn close(&self, reason: &str) {
        let waiters = {
            let mut state = self.state();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(reason.to_owned());
            std::mem::take(&mut state.waiters)
        };
        drop(self.notifier().take());
        tracing::debug!(reason, waiting = waiters.len(), "bridge closed");
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(BridgeError::Closed {
                reason: reason.to_owned(),
            }));
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: stop reading a stream no one can use.
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

impl Bridge {
    /// Starts the reader and writer tasks over `stream`.
    pub fn start<S>(stream: S) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (queue, frames) = mpsc::channel(WRITE_QUEUE);
        let (notifications, _) = broadcast::channel(NOTIFICATION_BUFFER);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            writer: queue,
            notifications: Mutex::new(Some(notifications)),
            tasks: Mutex::new(Vec::new()),
        });
        let read_task = tokio::spawn(read_loop(reader, Arc::downgrade(&shared)));
        let write_task = tokio::spawn(write_loop(writer, frames, Arc::downgrade(&shared)));
        if let Ok(mut tasks) = shared.tasks.lock() {
            tasks.extend([read_task, write_task]);
        }
        Self { shared }
    }

    /// Container notifications from now on. Subscribe before the request whose outcome
    /// you wait for, so no notification slips between. The stream ends when the bridge
    /// closes (at once, on a bridge already closed).
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerNotification> {
        match self.shared.notifier().as_ref() {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.state().closed.is_some()
    }

    /// Sends `request` as `rpc` and waits up to `timeout` (`None`: no limit) for its
    /// response. A non-zero `Result` becomes [`BridgeError::Guest`].
    pub async fn request<Req, Resp>(
        &self,
        rpc: Rpc,
        container_id: &str,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, BridgeError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let frame = self.call(rpc, request, timeout).await?;
        if frame.message_type != MessageType::response(rpc) {
            return Err(BridgeError::Protocol(format!(
                "answer to {} has type {:?}",
                rpc.name(),
                frame.message_type
            )));
        }
        let base: ResponseBase = parse(rpc, &frame.body)?;
        if base.result != 0 {
            return Err(BridgeError::Guest {
                rpc: rpc.name(),
                container_id: container_id.to_owned(),
                hresult: HResult::from_i32(base.result),
                message: base.error_message,
                records: base.error_records,
            });
        }
        parse(rpc, &frame.body)
    }

    async fn call<Req: Serialize + ?Sized>(
        &self,
        rpc: Rpc,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Frame, BridgeError> {
        let mut body = serde_json::to_vec(request)
            .map_err(|e| BridgeError::Protocol(format!("cannot encode {}: {e}", rpc.name())))?;
        // hcsshim's encoder ends every body with a newline, counted in the size.
        body.push(b'\n');
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let encoded = frame::encode(MessageType::request(rpc), id, &body)?;
        let (waiter, answer) = oneshot::channel();
        {
            let mut state = self.shared.state();
            if let Some(reason) = &state.closed {
                return Err(BridgeError::Closed {
                    reason: reason.clone(),
                });
            }
            state.waiters.insert(id, waiter);
        }
        if self.shared.writer.send(encoded).await.is_err() {
            self.shared.state().waiters.remove(&id);
            return Err(self.closed_error());
        }
        let answer = match timeout {
            Some(limit) => {
                let Ok(answer) = tokio::time::timeout(limit, answer).await else {
                    self.shared.state().waiters.remove(&id);
                    return Err(BridgeError::Timeout {
                        rpc: rpc.name(),
                        after: limit,
                    });
                };
                answer
            }
            None => answer.await,
        };
        answer.unwrap_or_else(|_| Err(self.closed_error()))
    }

    fn closed_error(&self) -> BridgeError {
        let reason = self
            .shared
            .state()
            .closed
            .clone()
            .unwrap_or_else(|| "the writer stopped".to_owned());
        BridgeError::Closed { reason }
    }

    /// Closes the bridge: outstanding requests fail, the stream is shut down.
    pub fn close(&self) {
        self.shared.close("closed by the host");
        if let Ok(mut tasks) = self.shared.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

fn parse<T: DeserializeOwned>(rpc: Rpc, body: &[u8]) -> Result<T, BridgeError> {
    serde_json::from_slice(body)
        .map_err(|e| BridgeError::Protocol(format!("bad {} response: {e}", rpc.name())))
}

async fn read_loop<R: AsyncRead>(reader: ReadHalf<R>, shared: std::sync::Weak<Shared>) {
    let mut reader = tokio::io::BufReader::new(reader);
    let reason = loop {
        let frame = match frame::read_frame(&mut reader, MAX_MESSAGE_SIZE).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break "the guest closed the connection".to_owned(),
            Err(e) => break format!("malformed message from the guest: {e}"),
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(reason) = route(&shared, frame) {
            break reason;
        }
    };
    if let Some(shared) = shared.upgrade() {
        shared.close(&reason);
    }
}

/// Hands one frame from the guest to whoever waits for it. An error is a broken bridge:
/// as hcsshim's host does (internal/gcs/bridge.go `recvLoop`), a notification that cannot
/// be read, or a message of a kind the host never receives, ends the connection, since what
/// it carried (an exit, say) is lost and whoever waits for it would wait forever.
fn route(shared: &Shared, frame: Frame) -> Result<(), String> {
    match frame.message_type.kind() {
        Some(MessageKind::Response) => {
            let waiter = shared.state().waiters.remove(&frame.id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(Ok(frame));
            } else {
                // A request that timed out; its late answer has no one to go to. (hcsshim
                // has no per-request timeout, so it can call this a protocol error.)
                tracing::debug!(id = frame.id, "response with no waiter");
            }
            Ok(())
        }
        Some(MessageKind::Notification)
            if frame.message_type == MessageType::CONTAINER_NOTIFICATION =>
        {
            let notification = serde_json::from_slice::<ContainerNotification>(&frame.body)
                .map_err(|e| format!("unreadable container notification from the guest: {e}"))?;
            tracing::debug!(container = %notification.base.container_id, kind = %notification.kind, "guest notification");
            if let Some(sender) = shared.notifier().as_ref() {
                // No subscriber is not an error: nobody is waiting for this one.
                let _ = sender.send(notification);
            }
            Ok(())
        }
        Some(MessageKind::Notification) => Err(format!(
            "unknown notification {:?} from the guest",
            frame.message_type
        )),
        _ => Err(format!(
            "unexpected message {:?} from the guest",
            frame.message_type
        )),
    }
}

async fn write_loop<W: AsyncWrite>(
    writer: WriteHalf<W>,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shared: std::sync::Weak<Shared>,
) {
    let mut writer = tokio::io::BufWriter::new(writer);
    while let Some(frame) = frames.recv().await {
        let mut result = writer.write_all(&frame).await;
        // Batch whatever else is queued into the same flush.
        while result.is_ok() {
            match frames.try_recv() {
                Ok(next) => result = writer.write_all(&next).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(writer.flush().await) {
            if let Some(shared) = shared.upgrade() {
                shared.close(&format!("writing to the guest failed: {e}"));
            }
            return;
        }
    }
    let _ = writer.shutdown().await;
}
