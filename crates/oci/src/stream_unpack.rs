//! Unpacking a layer while it downloads: the download hands each chunk to a sink reading on
//! a blocking thread, so decompression (and on Windows the import staging) runs beside the
//! network instead of after it. The sink checks the layer's diff ID as it always does, so a
//! stream cut short can only fail, never pass for the layer.

use std::io::Read;
use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;

use crate::pull::{LayerPosition, LayerSink};

/// Chunks in flight between the download and the sink: enough to ride out a slow write,
/// small enough that a stalled sink holds back the download rather than memory.
const CHUNKS_IN_FLIGHT: usize = 16;

/// What a layer is unpacked into, and where it sits in its image.
#[derive(Clone)]
pub(crate) struct UnpackTarget {
    pub sink: Arc<dyn LayerSink>,
    pub diff_ids: Arc<[String]>,
    pub index: usize,
}

impl std::fmt::Debug for UnpackTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnpackTarget")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl UnpackTarget {
    /// Runs the sink over `input` (blocking).
    pub fn unpack(&self, input: &mut dyn Read) -> Result<(), String> {
        let chain = self
            .diff_ids
            .get(..=self.index)
            .ok_or("the layer has no diff ID")?;
        self.sink.unpack(
            input,
            &LayerPosition {
                diff_id: &chain[self.index],
                chain,
            },
        )
    }
}

/// A layer being unpacked from its download.
#[derive(Debug)]
pub(crate) struct StreamingUnpack {
    chunks: Option<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl StreamingUnpack {
    pub fn start(target: UnpackTarget) -> Self {
        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = ChunkReader {
                chunks: receiver,
                current: Bytes::new(),
            };
            target.unpack(&mut reader)
        });
        Self {
            chunks: Some(sender),
            task,
        }
    }

    /// Hands the next chunk over. Once the sink has stopped reading (it had the layer
    /// already, or failed) chunks are dropped; [`Self::finish`] reports how it ended.
    pub async fn feed(&mut self, chunk: &Bytes) {
        if let Some(sender) = &self.chunks
            && sender.send(chunk.clone()).await.is_err()
        {
            self.chunks = None;
        }
    }

    /// Ends the stream and waits for the sink's verdict.
    pub async fn finish(mut self) -> Result<(), String> {
        self.chunks = None;
        self.task
            .await
            .map_err(|e| format!("the unpack task failed: {e}"))?
    }

    /// Gives up on this stream (the download starts over): the sink sees it end early,
    /// fails its diff-ID check and cleans up after itself; nobody waits for it.
    pub fn abandon(mut self) {
        self.chunks = None;
    }
}

/// The chunks as one `Read`; their end is the end of the stream.
struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
