//! The running workload's stdio, shared with attached clients from the process that holds
//! it: its output copied into the log and to whoever is attached, its input and console
//! kept for them (`crate::workload_io` does the sharing).

use std::sync::Arc;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolated::ProcessPipes;
use crate::logs::{LineSplitter, SharedLog, log_pump};
use crate::records::{ContainerRecord, Phase};
use crate::types::LogStream;
use crate::workload_io::WorkloadAttachment;
use crate::workload_io::WorkloadIo;

impl ContainerLifecycle {
    /// Copies the workload's output into its log and to attached clients (one task per
    /// pipe), and keeps its input and console for them.
    pub(super) fn share_workload(
        &self,
        record: &ContainerRecord,
        has_console: bool,
        pipes: ProcessPipes,
        writer: &SharedLog,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let id = &record.id;
        let console = if has_console {
            match self
                .isolated(record.isolation)
                .console(&self.host, record, pipes.pid)
            {
                Ok(console) => Some(console),
                Err(e) => {
                    tracing::warn!(%id, error = %e, "the workload's console cannot be resized");
                    None
                }
            }
        } else {
            None
        };
        let io = WorkloadIo::new(pipes.stdin);
        if let Ok(mut attachments) = self.attachments.lock() {
            attachments.insert(
                id.clone(),
                WorkloadAttachment {
                    io: Arc::clone(&io),
                    console,
                },
            );
        }
        [
            (pipes.stdout, LogStream::Stdout),
            (pipes.stderr, LogStream::Stderr),
        ]
        .into_iter()
        .filter_map(|(reader, stream)| {
            reader.map(|reader| {
                let io = Arc::clone(&io);
                tokio::spawn(log_pump(
                    reader,
                    LineSplitter::new(stream),
                    Arc::clone(writer),
                    move |bytes: &[u8]| io.publish(stream, bytes),
                ))
            })
        })
        .collect()
    }

    /// The running workload of `id`, for a client to attach to. Only the process that
    /// started it holds its stdio (for a detached container, its supervisor).
    pub fn attachment(&self, id: &ContainerId) -> Result<WorkloadAttachment, RuntimeError> {
        let record = self.records.load(id)?;
        if record.phase != Phase::Running {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                operation: "attach to",
                state: format!("{:?}", record.phase),
            });
        }
        self.attachments
            .lock()
            .ok()
            .and_then(|attachments| attachments.get(id).cloned())
            .ok_or_else(|| RuntimeError::Unsupported {
                operation: "attach",
                reason: format!(
                    "the workload's stdio of {id} belongs to the pane process that started it \
                     (for a detached container, its supervisor)"
                ),
            })
    }
}
