//! The contract an orchestrator's node agent embeds.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use pane_spec::{ImageReference, PullPolicy, ServiceSpec};

use crate::error::Result;
use crate::id::ContainerId;
use crate::records::state::{ContainerState, WaitOutcome};
use crate::signal::Signal;
use crate::types::{
    ContainerInspect, ContainerStats, ContainerSummary, ExecEvent, ExecEventStream, ExecOptions,
    ExecOutput, ImageInfo, LogEntry, LogOptions, PruneResult, RegistryAuth,
};

/// A container runtime for Windows containers.
///
/// Every method is safe to call concurrently. Methods that create something on the host
/// either finish it or undo it: a failed `create_container` leaves nothing behind.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Pulls `image` if it is not already local.
    async fn pull_image(&self, image: &ImageReference) -> Result<ImageInfo> {
        self.pull_image_with_policy(image, PullPolicy::IfNotPresent, None)
            .await
    }

    /// Pulls `image` as `policy` says. `auth`, when given, is used instead of any stored
    /// credentials.
    async fn pull_image_with_policy(
        &self,
        image: &ImageReference,
        policy: PullPolicy,
        auth: Option<&RegistryAuth>,
    ) -> Result<ImageInfo>;

    /// Creates the container and everything it needs on the host, pulling its image as the
    /// spec's pull policy says. The workload does not run until `start_container`.
    async fn create_container(&self, id: &ContainerId, spec: &ServiceSpec) -> Result<()>;

    async fn start_container(&self, id: &ContainerId) -> Result<()>;

    /// Asks the workload to shut down and waits up to `timeout`, then terminates it.
    async fn stop_container(&self, id: &ContainerId, timeout: Duration) -> Result<()>;

    async fn kill_container(&self, id: &ContainerId, signal: Signal) -> Result<()>;

    /// Removes the container and its host resources. A running container is refused unless
    /// `force`, which terminates it first.
    async fn remove_container(&self, id: &ContainerId, force: bool) -> Result<()>;

    async fn container_state(&self, id: &ContainerId) -> Result<ContainerState>;

    async fn container_logs(&self, id: &ContainerId, options: &LogOptions)
    -> Result<Vec<LogEntry>>;

    /// Runs a command in the running container and streams its output; the stream ends with
    /// exactly one [`ExecEvent::Exit`].
    async fn exec_stream(&self, id: &ContainerId, options: &ExecOptions)
    -> Result<ExecEventStream>;

    /// Runs a command to completion and returns its exit code and output.
    async fn exec(&self, id: &ContainerId, options: &ExecOptions) -> Result<ExecOutput> {
        let stream = self.exec_stream(id, options).await?;
        Ok(collect_exec(stream).await)
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats>;

    /// Waits until the container's workload ends, however it ends.
    async fn wait_outcome(&self, id: &ContainerId) -> Result<WaitOutcome>;

    /// Waits until the workload ends and returns its exit code.
    async fn wait_container(&self, id: &ContainerId) -> Result<i32> {
        Ok(self.wait_outcome(id).await?.exit_code)
    }

    async fn inspect_container(&self, id: &ContainerId) -> Result<ContainerInspect>;

    /// The container's address on the node's network, once attached.
    async fn container_ip(&self, id: &ContainerId) -> Result<Option<IpAddr>>;

    /// The container's network namespace (on Windows its HCN namespace GUID), for an
    /// orchestrator that attaches networking itself; `None` without networks.
    async fn container_namespace_id(&self, id: &ContainerId) -> Result<Option<uuid::Uuid>>;

    /// The workload's host process id while it runs under process isolation; `None`
    /// under Hyper-V isolation (the workload runs in the utility VM) and when not running.
    async fn container_pid(&self, id: &ContainerId) -> Result<Option<u32>>;

    async fn list_containers(&self) -> Result<Vec<ContainerSummary>>;

    async fn list_images(&self) -> Result<Vec<ImageInfo>>;

    /// Removes an image reference, and the image's data once nothing else uses it. An image
    /// used by a container is refused unless `force`.
    async fn remove_image(&self, image: &ImageReference, force: bool) -> Result<()>;

    async fn tag_image(&self, source: &ImageReference, target: &ImageReference) -> Result<()>;

    /// Removes images no reference or container uses.
    async fn prune_images(&self) -> Result<PruneResult>;
}

/// Drains an exec stream into a buffered result. A stream that ends without an exit event
/// means the process was lost; it reports the lost-container exit code.
pub async fn collect_exec(mut stream: ExecEventStream) -> ExecOutput {
    let mut output = ExecOutput {
        exit_code: WaitOutcome::LOST_EXIT_CODE,
        ..ExecOutput::default()
    };
    while let Some(event) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match event {
            ExecEvent::Stdout(bytes) => output.stdout.extend_from_slice(&bytes),
            ExecEvent::Stderr(bytes) => output.stderr.extend_from_slice(&bytes),
            ExecEvent::Exit(code) => {
                output.exit_code = code;
                break;
            }
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_core::Stream;

    use super::*;

    struct Events(std::vec::IntoIter<ExecEvent>);

    impl Stream for Events {
        type Item = ExecEvent;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<ExecEvent>> {
            Poll::Ready(self.0.next())
        }
    }

    fn stream(events: Vec<ExecEvent>) -> ExecEventStream {
        Box::pin(Events(events.into_iter()))
    }

    #[tokio::test]
    async fn collect_exec_joins_output_in_order_and_keeps_the_exit_code() {
        let output = collect_exec(stream(vec![
            ExecEvent::Stdout(b"hel".to_vec()),
            ExecEvent::Stderr(b"warn".to_vec()),
            ExecEvent::Stdout(b"lo".to_vec()),
            ExecEvent::Exit(3),
        ]))
        .await;
        assert_eq!(
            output,
            ExecOutput {
                exit_code: 3,
                stdout: b"hello".to_vec(),
                stderr: b"warn".to_vec()
            }
        );
    }

    #[tokio::test]
    async fn a_stream_without_exit_reports_a_lost_process() {
        let output = collect_exec(stream(vec![ExecEvent::Stdout(b"partial".to_vec())])).await;
        assert_eq!(output.exit_code, WaitOutcome::LOST_EXIT_CODE);
        assert_eq!(output.stdout, b"partial");
    }
}
