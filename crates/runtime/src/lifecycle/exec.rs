//! Exec: a command in the running container, its output streamed to the caller and kept in
//! the container's log (tagged with the exec's id), the stream ending with its exit. A
//! session's input is written while it runs, and with a console it can be resized.

use std::sync::Arc;

use pane_hcs::schema::ProcessParameters;

use super::ContainerLifecycle;
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolated::Launched;
use crate::logs::{LineSplitter, log_pump};
use crate::records::{Phase, WaitOutcome};
use crate::types::{ExecEvent, ExecEventStream, ExecOptions, ExecSession, LogStream};

/// An exec's events as a stream.
struct Events(tokio::sync::mpsc::UnboundedReceiver<ExecEvent>);

impl futures_core::Stream for Events {
    type Item = ExecEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ExecEvent>> {
        self.0.poll_recv(cx)
    }
}

impl ContainerLifecycle {
    /// Runs a command in the running container; the stream carries its output and ends with
    /// exactly one exit. `options.stdin`'s bytes are its input, closed after them.
    pub async fn exec(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
    ) -> Result<ExecEventStream, RuntimeError> {
        let session = self
            .exec_session(id, options, options.stdin.is_some())
            .await?;
        if let (Some(bytes), Some(mut input)) = (options.stdin.clone(), session.input) {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                // A command that exits without reading all of it closes the pipe: fine.
                let _ = input.write_all(&bytes).await;
                let _ = input.shutdown().await;
            });
        }
        Ok(session.events)
    }

    /// Runs a command in the running container with its input open when `input` is set
    /// (written through the session while it runs; `options.stdin` is not read here). With
    /// `options.tty` it gets a console of `options.console_size`, which the session can
    /// resize. Its output goes to the log as well as into the session's events, which end
    /// with exactly one exit.
    pub async fn exec_session(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        input: bool,
    ) -> Result<ExecSession, RuntimeError> {
        if options.command.is_empty() {
            return Err(RuntimeError::invalid(
                "exec command",
                "is empty",
                "give the program to run and its arguments",
            ));
        }
        let record = self.records.load(id)?;
        if record.phase != Phase::Running {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                operation: "exec in",
                state: format!("{:?}", record.phase),
            });
        }
        let command = ProcessParameters {
            command_line: pane_hcs::command_line::join(&options.command),
            environment: options.env.iter().cloned().collect(),
            working_directory: options.working_dir.clone(),
            user: options.user.clone(),
            emulate_console: options.tty,
            console_size: options
                .tty
                .then_some(options.console_size)
                .flatten()
                .map(|size| [size.rows, size.columns]),
            create_std_in_pipe: input,
            create_std_out_pipe: true,
            // With a console HCS ignores a standard-error pipe: errors share the output.
            create_std_err_pipe: !options.tty,
            ..ProcessParameters::default()
        };
        let writer = self.log_writer(id)?;
        let isolated = self.isolated(record.isolation);
        let Launched { pipes, exit } = isolated.exec(&self.host, &record, command).await?;
        let console = if options.tty {
            Some(isolated.console(&self.host, &record, pipes.pid)?)
        } else {
            None
        };
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let exec_id = uuid::Uuid::new_v4().simple().to_string();
        let pump = |reader, stream, wrap: fn(Vec<u8>) -> ExecEvent| {
            let sender = sender.clone();
            tokio::spawn(log_pump(
                reader,
                LineSplitter::new(stream).for_exec(exec_id.clone()),
                Arc::clone(&writer),
                move |bytes: &[u8]| drop(sender.send(wrap(bytes.to_vec()))),
            ))
        };
        let out = pipes
            .stdout
            .map(|reader| pump(reader, LogStream::Stdout, ExecEvent::Stdout));
        let err = pipes
            .stderr
            .map(|reader| pump(reader, LogStream::Stderr, ExecEvent::Stderr));
        tokio::spawn(async move {
            let code = exit.await.unwrap_or(WaitOutcome::LOST_EXIT_CODE);
            // All output first, then the exit, so the stream's order is the process's.
            for pump in [out, err].into_iter().flatten() {
                let _ = pump.await;
            }
            let _ = sender.send(ExecEvent::Exit(code));
        });
        Ok(ExecSession {
            input: pipes.stdin,
            events: Box::pin(Events(receiver)),
            console,
        })
    }
}
