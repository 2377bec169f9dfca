//! The host's typed view of a guest: negotiation, cold start, container and process RPCs,
//! and stdio relay.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pane_hcs::schema::ProcessParameters;
use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::bridge::Bridge;
use crate::error::BridgeError;
use crate::messages::{
    BaseRequest, BaseResponse, Capabilities, ContainerNotification, CreateRequest,
    DumpStacksResponse, ExecuteProcessRequest, ExecuteProcessResponse, ExecuteProcessSettings,
    GetPropertiesRequest, GetPropertiesResponse, JsonString, ModifySettingsRequest,
    NULL_CONTAINER_ID, NegotiateProtocolRequest, NegotiateProtocolResponse, PROTOCOL_VERSION,
    RequestBase, ResizeConsoleRequest, SignalOptions, SignalProcessRequest, StdioRelaySettings,
    TimeZoneInformation, UvmConfig, WaitForProcessRequest, WaitForProcessResponse, WindowsSignal,
};
use crate::rpc::Rpc;
use crate::settings::GuestRequest;
use crate::transport::{BoxStream, FIRST_STDIO_PORT, Listener, Transport, vsock_service_id};

/// How long to wait for the guest, by kind of step.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Any request (hcsshim fails a bridge RPC after 5 minutes).
    pub request: Duration,
    /// The guest dialling back a stdio pipe after `ExecuteProcess`.
    pub stdio_connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(300),
            stdio_connect: Duration::from_secs(30),
        }
    }
}

/// Options for [`GuestConnection::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// First connection after boot: send the null-container Create/Start if the guest asks.
    pub cold_start: bool,
    /// The host's time zone; UTC when `None`.
    pub time_zone: Option<TimeZoneInformation>,
    pub timeouts: Timeouts,
    /// Where stdio relay listeners bind (the utility VM's hvsock address on Windows).
    pub relay: Transport,
}

/// A negotiated connection to a guest compute service.
#[derive(Debug)]
pub struct GuestConnection {
    bridge: Bridge,
    capabilities: Capabilities,
    relay: Transport,
    timeouts: Timeouts,
    next_port: AtomicU32,
}

/// A process started in the guest, with the host ends of the pipes it asked for.
#[derive(Debug)]
pub struct GuestProcess {
    pub container_id: String,
    pub process_id: u32,
    pub stdin: Option<BoxStreamDebug>,
    pub stdout: Option<BoxStreamDebug>,
    pub stderr: Option<BoxStreamDebug>,
}

/// A relay stream; `Debug` so processes can be logged.
pub struct BoxStreamDebug(pub BoxStream);

impl std::fmt::Debug for BoxStreamDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayStream")
    }
}

impl GuestConnection {
    /// Starts the bridge over `stream`, negotiates protocol version 4 and, on a cold start,
    /// sends the null-container Create (with the time zone) and Start the guest asks for.
    pub async fn connect(stream: BoxStream, options: ConnectOptions) -> Result<Self, BridgeError> {
        let bridge = Bridge::start(stream);
        let timeout = Some(options.timeouts.request);
        let negotiate = NegotiateProtocolRequest {
            base: RequestBase::new(NULL_CONTAINER_ID),
            minimum_version: PROTOCOL_VERSION,
            maximum_version: PROTOCOL_VERSION,
        };
        let answer: NegotiateProtocolResponse = bridge
            .request(
                Rpc::NegotiateProtocol,
                NULL_CONTAINER_ID,
                &negotiate,
                timeout,
            )
            .await?;
        if answer.version != PROTOCOL_VERSION {
            bridge.close();
            return Err(BridgeError::Protocol(format!(
                "the guest chose protocol version {}; only {PROTOCOL_VERSION} is supported",
                answer.version
            )));
        }
        if let Err(e) = require_windows_guest(&answer.capabilities) {
            bridge.close();
            return Err(e);
        }
        let connection = Self {
            bridge,
            capabilities: answer.capabilities,
            relay: options.relay,
            timeouts: options.timeouts,
            next_port: AtomicU32::new(FIRST_STDIO_PORT),
        };
        if options.cold_start && connection.capabilities.send_host_create_message {
            let config = UvmConfig {
                system_type: "Container".to_owned(),
                time_zone_information: Some(
                    options.time_zone.unwrap_or_else(TimeZoneInformation::utc),
                ),
            };
            connection
                .create_container(NULL_CONTAINER_ID, &config)
                .await?;
            if connection.capabilities.send_host_start_message {
                connection.start_container(NULL_CONTAINER_ID).await?;
            }
        }
        Ok(connection)
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// Container notifications (exits) from now on.
    pub fn notifications(&self) -> broadcast::Receiver<ContainerNotification> {
        self.bridge.subscribe()
    }

    /// Every request but an outstanding wait has the same limit.
    #[allow(clippy::unnecessary_wraps)]
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeouts.request)
    }

    /// A guest modify on the utility VM (`NULL_CONTAINER_ID`) or on a container.
    pub async fn modify(
        &self,
        container_id: &str,
        request: GuestRequest,
    ) -> Result<(), BridgeError> {
        let request = ModifySettingsRequest {
            base: RequestBase::new(container_id),
            request,
        };
        let _: BaseResponse = self
            .bridge
            .request(Rpc::ModifySettings, container_id, &request, self.timeout())
            .await?;
        Ok(())
    }

    /// Creates a container from its document (a `HostedSystem`, or the cold-start config).
    pub async fn create_container<T: Serialize>(
        &self,
        container_id: &str,
        document: &T,
    ) -> Result<(), BridgeError> {
        let config = serde_json::to_value(document).map_err(|e| {
            BridgeError::Protocol(format!("cannot encode the container document: {e}"))
        })?;
        let request = CreateRequest {
            base: RequestBase::new(container_id),
            container_config: JsonString(config),
        };
        let _: BaseResponse = self
            .bridge
            .request(Rpc::Create, container_id, &request, self.timeout())
            .await?;
        Ok(())
    }

    pub async fn start_container(&self, container_id: &str) -> Result<(), BridgeError> {
        self.base_only(Rpc::Start, container_id).await
    }

    /// Asks the container to shut down. A container the guest no longer has is already
    /// down, so that answer is success, as in hcsshim.
    pub async fn shutdown_graceful(&self, container_id: &str) -> Result<(), BridgeError> {
        self.shutdown(Rpc::ShutdownGraceful, container_id).await
    }

    /// Terminates the container; one the guest no longer has counts as terminated.
    pub async fn shutdown_forced(&self, container_id: &str) -> Result<(), BridgeError> {
        self.shutdown(Rpc::ShutdownForced, container_id).await
    }

    async fn shutdown(&self, rpc: Rpc, container_id: &str) -> Result<(), BridgeError> {
        match self.base_only(rpc, container_id).await {
            Err(e) if e.is_container_gone() => {
                tracing::debug!(container_id, rpc = rpc.name(), "container already gone");
                Ok(())
            }
            other => other,
        }
    }

    pub async fn delete_container_state(&self, container_id: &str) -> Result<(), BridgeError> {
        self.base_only(Rpc::DeleteContainerState, container_id)
            .await
    }

    async fn base_only(&self, rpc: Rpc, container_id: &str) -> Result<(), BridgeError> {
        let request = BaseRequest {
            base: RequestBase::new(container_id),
        };
        let _: BaseResponse = self
            .bridge
            .request(rpc, container_id, &request, self.timeout())
            .await?;
        Ok(())
    }

    /// Runs a schema v2 property query (e.g. `{"PropertyTypes":["SystemGUID"]}`).
    pub async fn get_properties(
        &self,
        container_id: &str,
        query: serde_json::Value,
    ) -> Result<serde_json::Value, BridgeError> {
        let request = GetPropertiesRequest {
            base: RequestBase::new(container_id),
            query: JsonString(query),
        };
        let answer: GetPropertiesResponse = self
            .bridge
            .request(Rpc::GetProperties, container_id, &request, self.timeout())
            .await?;
        Ok(answer.properties.0)
    }

    pub async fn dump_stacks(&self) -> Result<String, BridgeError> {
        let request = BaseRequest {
            base: RequestBase::null_container(),
        };
        let answer: DumpStacksResponse = self
            .bridge
            .request(Rpc::DumpStacks, NULL_CONTAINER_ID, &request, self.timeout())
            .await?;
        Ok(answer.guest_stacks)
    }

    /// Starts a process. For each `CreateStd*Pipe` a relay listener is bound before the
    /// request is sent, and the guest's dial-back is accepted while the request is answered.
    pub async fn execute_process(
        &self,
        container_id: &str,
        parameters: ProcessParameters,
    ) -> Result<GuestProcess, BridgeError> {
        let stdin = self.relay_listener(parameters.create_std_in_pipe).await?;
        let stdout = self.relay_listener(parameters.create_std_out_pipe).await?;
        let stderr = self.relay_listener(parameters.create_std_err_pipe).await?;
        let settings = ExecuteProcessSettings {
            process_parameters: JsonString(parameters),
            stdio_relay_settings: (stdin.is_some() || stdout.is_some() || stderr.is_some()).then(
                || StdioRelaySettings {
                    std_in: stdin.as_ref().map(|(service, _)| *service),
                    std_out: stdout.as_ref().map(|(service, _)| *service),
                    std_err: stderr.as_ref().map(|(service, _)| *service),
                },
            ),
        };
        let request = ExecuteProcessRequest {
            base: RequestBase::new(container_id),
            settings,
        };
        let limit = self.timeouts.stdio_connect;
        // The guest may dial back before or after it answers; accept while waiting, and give
        // up on the pipes as soon as the request itself fails.
        let accepts = async {
            Ok::<_, BridgeError>((
                accept_relay(stdin, limit).await?,
                accept_relay(stdout, limit).await?,
                accept_relay(stderr, limit).await?,
            ))
        };
        let answer = self.bridge.request::<_, ExecuteProcessResponse>(
            Rpc::ExecuteProcess,
            container_id,
            &request,
            self.timeout(),
        );
        tokio::pin!(accepts, answer);
        let mut pipes = None;
        let answer = loop {
            tokio::select! {
                answer = &mut answer => break answer?,
                accepted = &mut accepts, if pipes.is_none() => pipes = Some(accepted?),
            }
        };
        let (stdin, stdout, stderr) = match pipes {
            Some(pipes) => pipes,
            None => accepts.await?,
        };
        Ok(GuestProcess {
            container_id: container_id.to_owned(),
            process_id: answer.process_id,
            stdin: stdin.map(BoxStreamDebug),
            stdout: stdout.map(BoxStreamDebug),
            stderr: stderr.map(BoxStreamDebug),
        })
    }

    async fn relay_listener(&self, wanted: bool) -> Result<Option<(Uuid, Listener)>, BridgeError> {
        if !wanted {
            return Ok(None);
        }
        let port = self.next_port.fetch_add(1, Ordering::Relaxed);
        let service = vsock_service_id(port);
        let listener = self
            .relay
            .listen(service)
            .await
            .map_err(|e| BridgeError::io(format!("listening for stdio relay {service}"), e))?;
        Ok(Some((service, listener)))
    }

    /// Waits for a process to exit and returns its exit code. `None` waits without limit,
    /// which is how the workload's wait stays outstanding for the container's life.
    pub async fn wait_for_process(
        &self,
        container_id: &str,
        process_id: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, BridgeError> {
        let timeout_in_ms = timeout.map_or(u32::MAX, |t| {
            u32::try_from(t.as_millis()).unwrap_or(u32::MAX - 1)
        });
        let request = WaitForProcessRequest {
            base: RequestBase::new(container_id),
            process_id,
            timeout_in_ms,
        };
        // The guest enforces the wait's own timeout; the bridge adds a margin, not a limit.
        let limit = timeout.map(|t| t + self.timeouts.request);
        let answer: WaitForProcessResponse = self
            .bridge
            .request(Rpc::WaitForProcess, container_id, &request, limit)
            .await?;
        Ok(answer.exit_code)
    }

    /// Delivers a console control event, or terminates the process when `signal` is `None`.
    /// Returns whether the signal reached a process: one that has already exited is not an
    /// error (there is nothing left to signal), as in hcsshim.
    pub async fn signal_process(
        &self,
        container_id: &str,
        process_id: u32,
        signal: Option<WindowsSignal>,
    ) -> Result<bool, BridgeError> {
        let request = SignalProcessRequest {
            base: RequestBase::new(container_id),
            process_id,
            options: signal.map(|signal| SignalOptions { signal }),
        };
        let answer: Result<BaseResponse, _> = self
            .bridge
            .request(Rpc::SignalProcess, container_id, &request, self.timeout())
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if e.is_process_gone() => {
                tracing::debug!(container_id, process_id, "signalled process already gone");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn resize_console(
        &self,
        container_id: &str,
        process_id: u32,
        height: u16,
        width: u16,
    ) -> Result<(), BridgeError> {
        let request = ResizeConsoleRequest {
            base: RequestBase::new(container_id),
            process_id,
            height,
            width,
        };
        let _: BaseResponse = self
            .bridge
            .request(Rpc::ResizeConsole, container_id, &request, self.timeout())
            .await?;
        Ok(())
    }

    /// Closes the bridge; outstanding requests fail.
    pub fn close(&self) {
        self.bridge.close();
    }
}

/// pane drives Windows guests only: a Linux guest takes vsock ports rather than the hvsock
/// GUIDs pane sends for stdio, and other settings besides. hcsshim reads the guest's OS from
/// `RuntimeOsType`, case-insensitively, empty meaning Windows
/// (internal/gcs/guestconnection.go `connect`).
fn require_windows_guest(capabilities: &Capabilities) -> Result<(), BridgeError> {
    let os = capabilities.runtime_os_type.as_str();
    if os.is_empty() || os.eq_ignore_ascii_case("windows") {
        return Ok(());
    }
    Err(BridgeError::Protocol(format!(
        "the guest runs {os} (RuntimeOsType {os:?}); pane runs Windows guests only: boot the \
         utility VM from a Windows base image"
    )))
}

async fn accept_relay(
    listener: Option<(Uuid, Listener)>,
    limit: Duration,
) -> Result<Option<BoxStream>, BridgeError> {
    let Some((service, listener)) = listener else {
        return Ok(None);
    };
    // Each relay listener takes exactly one connection and is then dropped.
    let stream = listener
        .accept(limit)
        .await
        .map_err(|e| BridgeError::io(format!("the guest did not dial stdio relay {service}"), e))?;
    Ok(Some(stream))
}
