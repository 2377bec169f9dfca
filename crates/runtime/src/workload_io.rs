//! The workload's stdio as the process holding it shares it with attached clients: every
//! chunk of output goes to the log and to whoever is attached, the most recent output is
//! kept so that a client attaching late sees the screen it joins (a console's prompt
//! printed before anyone attached), and its input, when the container keeps it open,
//! is written by one client at a time and never closed by one leaving.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt as _;
use tokio::sync::broadcast;

use crate::backend::ProcessInput;
use crate::types::LogStream;

/// Output kept for a client that attaches later.
const RECENT_OUTPUT: usize = 16 * 1024;
/// Chunks an attached client may fall behind by before it misses some.
const ATTACHED_BACKLOG: usize = 256;

/// One chunk of the workload's output.
pub type Chunk = (LogStream, Arc<[u8]>);

#[derive(Default)]
struct Recent {
    chunks: VecDeque<Chunk>,
    bytes: usize,
}

/// The stdio of one running workload.
pub struct WorkloadIo {
    output: broadcast::Sender<Chunk>,
    recent: Mutex<Recent>,
    stdin: tokio::sync::Mutex<Option<Box<dyn ProcessInput>>>,
}

impl std::fmt::Debug for WorkloadIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadIo")
            .field("attached", &self.output.receiver_count())
            .finish_non_exhaustive()
    }
}

impl WorkloadIo {
    pub fn new(stdin: Option<Box<dyn ProcessInput>>) -> Arc<Self> {
        let (output, _) = broadcast::channel(ATTACHED_BACKLOG);
        Arc::new(Self {
            output,
            recent: Mutex::new(Recent::default()),
            stdin: tokio::sync::Mutex::new(stdin),
        })
    }

    /// Hands a chunk of output to the attached clients and keeps it as recent. Sending and
    /// keeping happen under the lock `subscribe` takes, so a client attaching meanwhile
    /// gets each chunk exactly once: in its recent output or live.
    pub fn publish(&self, stream: LogStream, bytes: &[u8]) {
        let chunk: Chunk = (stream, Arc::from(bytes));
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        // Nobody attached is not an error: the chunk is in the log and kept here.
        let _ = self.output.send(chunk.clone());
        recent.bytes += chunk.1.len();
        recent.chunks.push_back(chunk);
        while recent.bytes > RECENT_OUTPUT && recent.chunks.len() > 1 {
            if let Some((_, dropped)) = recent.chunks.pop_front() {
                recent.bytes -= dropped.len();
            }
        }
    }

    /// What a client attaching now gets: the recent output, then everything from here on.
    pub fn subscribe(&self) -> (Vec<Chunk>, broadcast::Receiver<Chunk>) {
        match self.recent.lock() {
            Ok(recent) => (
                recent.chunks.iter().cloned().collect(),
                self.output.subscribe(),
            ),
            Err(_) => (Vec::new(), self.output.subscribe()),
        }
    }

    /// The workload keeps its input open for attached clients.
    pub async fn has_input(&self) -> bool {
        self.stdin.lock().await.is_some()
    }

    /// Closes the workload's input: it reads end of file (`run -i`'s input ended).
    pub async fn close_input(&self) {
        if let Some(mut input) = self.stdin.lock().await.take() {
            let _ = input.shutdown().await;
        }
    }

    /// Writes a client's input to the workload. A workload that closed its input makes
    /// this fail; the caller's session ends its input there.
    pub async fn write_input(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        let Some(input) = stdin.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the workload's input is closed",
            ));
        };
        input.write_all(bytes).await?;
        input.flush().await
    }
}

/// A running workload as attached clients share it, from the process that holds it.
#[derive(Clone)]
pub struct WorkloadAttachment {
    pub io: Arc<WorkloadIo>,
    pub console: Option<Arc<dyn crate::types::ConsoleControl>>,
}

impl std::fmt::Debug for WorkloadAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadAttachment")
            .field("io", &self.io)
            .field("console", &self.console.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_client_gets_the_recent_output_then_the_live_output() {
        let io = WorkloadIo::new(None);
        io.publish(LogStream::Stdout, b"C:\\> ");
        let (recent, mut live) = io.subscribe();
        assert_eq!(recent.len(), 1);
        assert_eq!(&*recent[0].1, b"C:\\> ");
        io.publish(LogStream::Stdout, b"dir");
        let (stream, bytes) = live
            .recv()
            .await
            .unwrap_or((LogStream::Stderr, Arc::from(&b""[..])));
        assert_eq!((stream, &*bytes), (LogStream::Stdout, &b"dir"[..]));
    }

    #[test]
    fn recent_output_is_bounded() {
        let io = WorkloadIo::new(None);
        let chunk = vec![b'x'; 1000];
        for _ in 0..100 {
            io.publish(LogStream::Stdout, &chunk);
        }
        let (recent, _) = io.subscribe();
        let kept: usize = recent.iter().map(|(_, bytes)| bytes.len()).sum();
        assert!(kept <= RECENT_OUTPUT, "{kept} bytes kept");
        assert!(
            kept >= RECENT_OUTPUT - 1000,
            "the newest output is kept: {kept}"
        );
    }

    #[tokio::test]
    async fn input_goes_to_the_workload_until_it_has_none() {
        let (host, mut workload) = tokio::io::duplex(64);
        let io = WorkloadIo::new(Some(Box::new(host)));
        assert!(io.has_input().await);
        io.write_input(b"dir\r")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut read = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut workload, &mut read)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&read, b"dir\r");
        let none = WorkloadIo::new(None);
        assert!(!none.has_input().await);
        assert!(none.write_input(b"x").await.is_err());
    }
}
