//! A guest compute service peer: the guest side of the bridge, for tests and development.
//!
//! It answers as hcsshim's guest bridge does (handlers by negotiated version, its HRESULTs,
//! its exit codes and notifications) and, where only the Windows inbox guest agent behaves
//! so, as that agent (the cold-start null container, strict settings). It keeps container
//! and process state, runs real local processes for `ExecuteProcess` with their stdio
//! dialled back over the transport, sends exit notifications, and can be told to fail,
//! stall or drop the connection on any RPC.

mod faults;
mod process;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub use faults::Fault;

use crate::frame::{self, Frame, MessageKind, MessageType};
use crate::messages::{
    Capabilities, ContainerNotification, CreateRequest, ExecuteProcessRequest,
    ExecuteProcessSettings, GetPropertiesRequest, JsonString, ModifySettingsRequest,
    NULL_CONTAINER_ID, NegotiateProtocolRequest, PROTOCOL_VERSION, RequestBase,
    ResizeConsoleRequest, SchemaVersion, SignalProcessRequest, WaitForProcessRequest,
    WindowsGuestCapabilities,
};
use crate::rpc::Rpc;
use crate::settings::ResourceType;
use crate::transport::BoxStream;

use faults::Faults;
use process::GuestProcess;

/// HRESULTs the peer answers with (as the wire's signed i32). Where hcsshim's guest has
/// the code (internal/bridgeutils/gcserr/errors.go), the value is its value, severity bits
/// included: the guest reports the HCS codes with the customer bit set (0xC037…).
#[allow(clippy::cast_possible_wrap)]
pub mod hresults {
    /// No handler for the message: unknown, not negotiated yet, or negotiated already.
    pub const E_NOTIMPL: i32 = 0x8000_4001_u32 as i32;
    pub const E_FAIL: i32 = 0x8000_4005_u32 as i32;
    pub const E_INVALIDARG: i32 = 0x8007_0057_u32 as i32;
    pub const ERROR_FILE_NOT_FOUND: i32 = 0x8007_0002_u32 as i32;
    pub const E_ACCESSDENIED: i32 = 0x8007_0005_u32 as i32;
    /// A process that is not there (any more).
    pub const ERROR_NOT_FOUND: i32 = 0x8007_0490_u32 as i32;
    /// A `WaitForProcess` whose timeout passed (gcserr `HvVmcomputeTimeout`).
    pub const VMCOMPUTE_TIMEOUT: i32 = 0xC037_0109_u32 as i32;
    pub const HCS_E_INVALID_STATE: i32 = 0x8037_0105_u32 as i32;
    /// For a stdio relay the peer cannot dial. Not in gcserr: hcsshim's guest answers any
    /// error without an HRESULT with `E_FAIL` (commonutils `SetErrorForResponseBaseUtil`);
    /// the peer keeps the more telling code.
    pub const HCS_E_CONNECT_FAILED: i32 = 0x8037_0108_u32 as i32;
    pub const HCS_E_UNSUPPORTED_PROTOCOL_VERSION: i32 = 0xC037_010C_u32 as i32;
    pub const HCS_E_INVALID_JSON: i32 = 0xC037_010D_u32 as i32;
    pub const HCS_E_SYSTEM_NOT_FOUND: i32 = 0xC037_010E_u32 as i32;
    pub const HCS_E_SYSTEM_ALREADY_EXISTS: i32 = 0xC037_010F_u32 as i32;

    pub(crate) fn from_io(e: &std::io::Error) -> i32 {
        match e.kind() {
            std::io::ErrorKind::NotFound => ERROR_FILE_NOT_FOUND,
            std::io::ErrorKind::PermissionDenied => E_ACCESSDENIED,
            _ => E_FAIL,
        }
    }
}

/// The peer's answer to a request: a JSON body, or an HRESULT and message.
type Answer = Result<Value, (i32, String)>;

/// How the peer presents itself.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub capabilities: Capabilities,
    /// Where it dials stdio relays back to the host.
    pub relay: crate::transport::Transport,
}

impl PeerConfig {
    /// Capabilities as a Windows Server 2022 guest agent reports them.
    pub fn windows_guest(relay: crate::transport::Transport) -> Self {
        Self {
            capabilities: Capabilities {
                send_host_create_message: true,
                send_host_start_message: true,
                supported_schema_versions: vec![SchemaVersion { major: 2, minor: 1 }],
                guest_defined_capabilities: WindowsGuestCapabilities {
                    namespace_add_request_supported: true,
                    signal_process_supported: true,
                    dump_stacks_supported: true,
                    delete_container_state_supported: true,
                    ..WindowsGuestCapabilities::default()
                },
                ..Capabilities::default()
            },
            relay,
        }
    }
}

/// A request as the peer received it, for tests to check what the host sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    pub rpc: Rpc,
    pub container_id: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct World {
    cold_started: bool,
    containers: HashMap<String, Container>,
    processes: HashMap<u32, Arc<GuestProcess>>,
}

#[derive(Debug)]
struct Container {
    document: Value,
    started: bool,
    init_pid: Option<u32>,
    /// Set by a shutdown request: the notification type to send when it is gone.
    stopping: Option<&'static str>,
    exited: bool,
}

/// The guest peer. Clones share state, so a test keeps one to inspect and steer it.
#[derive(Debug, Clone)]
pub struct GuestPeer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: PeerConfig,
    faults: Faults,
    world: Mutex<World>,
    received: Mutex<Vec<ReceivedRequest>>,
}

/// Lets handlers send frames (responses, notifications) to the host.
#[derive(Debug, Clone)]
struct Outbox(mpsc::UnboundedSender<Vec<u8>>);

impl Outbox {
    fn send(&self, message_type: MessageType, id: u64, body: &Value) {
        let mut bytes = serde_json::to_vec(body).unwrap_or_default();
        bytes.push(b'\n');
        if let Ok(frame) = frame::encode(message_type, id, &bytes) {
            let _ = self.0.send(frame);
        }
    }
}

impl GuestPeer {
    pub fn new(config: PeerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                faults: Faults::default(),
                world: Mutex::new(World::default()),
                received: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Answer every `rpc` with `hresult`.
    pub fn fail(&self, rpc: Rpc, hresult: i32) {
        self.shared.faults.add(rpc, Fault::Fail(hresult), None);
    }

    /// Answer the next `rpc` with `hresult`, then behave again.
    pub fn fail_once(&self, rpc: Rpc, hresult: i32) {
        self.shared.faults.add(rpc, Fault::Fail(hresult), Some(1));
    }

    /// Close the connection when the next `rpc` arrives, without answering it.
    pub fn drop_connection_on(&self, rpc: Rpc) {
        self.shared.faults.add(rpc, Fault::DropConnection, Some(1));
    }

    /// Never answer `rpc`.
    pub fn stall(&self, rpc: Rpc) {
        self.shared.faults.add(rpc, Fault::Stall, None);
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The RPC names received so far, in order.
    pub fn received_rpcs(&self) -> Vec<&'static str> {
        self.received().iter().map(|r| r.rpc.name()).collect()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.shared
            .world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serves one host connection until it closes, the stream fails, or a fault drops it.
    pub async fn serve(&self, stream: BoxStream) -> io::Result<()> {
        let (reader, mut writer) = tokio::io::split(stream);
        let mut reader = BufReader::new(reader);
        let (outbox, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();
        let outbox = Outbox(outbox);
        let write_task = tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        let mut handlers = tokio::task::JoinSet::new();
        // Every connection starts unnegotiated, as in hcsshim's guest (`ListenAndServe`).
        let mut negotiated = false;
        let result = loop {
            // The host has a 64 KiB limit; the guest sets none, but a bound keeps a broken
            // host from making the peer allocate without limit.
            let frame = match frame::read_frame(&mut reader, 16 << 20).await {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            };
            let Some(rpc) = handled_rpc(frame.message_type, negotiated) else {
                respond(
                    &outbox,
                    &frame,
                    Err((
                        hresults::E_NOTIMPL,
                        format!(
                            "no handler for {:?} {}",
                            frame.message_type,
                            if negotiated {
                                "after negotiation"
                            } else {
                                "before negotiation"
                            }
                        ),
                    )),
                );
                continue;
            };
            let body: Value = serde_json::from_slice(&frame.body).unwrap_or(Value::Null);
            let container_id = body
                .get("ContainerId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Ok(mut received) = self.shared.received.lock() {
                received.push(ReceivedRequest {
                    rpc,
                    container_id,
                    body,
                });
            }
            match self.shared.faults.take(rpc) {
                Some(Fault::DropConnection) => {
                    write_task.abort();
                    handlers.abort_all();
                    return Ok(());
                }
                Some(Fault::Stall) => continue,
                Some(Fault::Fail(hresult)) => {
                    respond(
                        &outbox,
                        &frame,
                        Err((hresult, format!("{} failed (injected)", rpc.name()))),
                    );
                    continue;
                }
                None => {}
            }
            if rpc == Rpc::NegotiateProtocol {
                // Answered in order: hcsshim's guest picks the handler by the version
                // negotiated when a message is read, so the next message sees this one.
                let answer = self.negotiate(&frame);
                negotiated = answer.is_ok();
                respond(&outbox, &frame, answer);
                continue;
            }
            let peer = self.clone();
            let outbox = outbox.clone();
            handlers.spawn(async move {
                let answer = peer.handle(rpc, &frame, &outbox).await;
                respond(&outbox, &frame, answer);
            });
        };
        handlers.abort_all();
        drop(outbox);
        let _ = write_task.await;
        result
    }

    /// Answers a request of the negotiated protocol; [`handled_rpc`] has picked `rpc`.
    async fn handle(&self, rpc: Rpc, frame: &Frame, outbox: &Outbox) -> Answer {
        match rpc {
            Rpc::Create => self.create(parse(frame)?),
            Rpc::Start => self.start(&container_of(frame)?),
            Rpc::ShutdownGraceful => self.shutdown(&container_of(frame)?, "GracefulExit", outbox),
            Rpc::ShutdownForced => self.shutdown(&container_of(frame)?, "ForcedExit", outbox),
            Rpc::ExecuteProcess => self.execute(parse(frame)?, outbox).await,
            Rpc::WaitForProcess => self.wait(parse(frame)?).await,
            Rpc::SignalProcess => self.signal(&parse(frame)?),
            Rpc::ResizeConsole => self.resize(&parse(frame)?),
            Rpc::GetProperties => self.properties(&parse(frame)?),
            Rpc::ModifySettings => Self::modify(&parse(frame)?),
            Rpc::DumpStacks => Ok(json!({"GuestStacks": self.describe()})),
            Rpc::DeleteContainerState => self.delete(&container_of(frame)?),
            Rpc::NegotiateProtocol
            | Rpc::UpdateContainer
            | Rpc::LifecycleNotification
            | Rpc::ModifyServiceSettings => Err((
                hresults::E_NOTIMPL,
                format!("no handler for {}", rpc.name()),
            )),
        }
    }

    fn negotiate(&self, frame: &Frame) -> Answer {
        let request: NegotiateProtocolRequest = parse(frame)?;
        if !(request.minimum_version..=request.maximum_version).contains(&PROTOCOL_VERSION) {
            return Err((
                hresults::HCS_E_UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "versions {}..={} offered, only {PROTOCOL_VERSION} spoken",
                    request.minimum_version, request.maximum_version
                ),
            ));
        }
        Ok(json!({"Version": PROTOCOL_VERSION, "Capabilities": self.shared.config.capabilities}))
    }

    /// The inbox agent needs the null-container Create before any container request.
    fn require_cold_start(&self, world: &World, container_id: &str) -> Result<(), (i32, String)> {
        if container_id != NULL_CONTAINER_ID
            && self.shared.config.capabilities.send_host_create_message
            && !world.cold_started
        {
            return Err((
                hresults::HCS_E_INVALID_STATE,
                "the utility VM has not been cold-started".to_owned(),
            ));
        }
        Ok(())
    }

    fn create(&self, request: CreateRequest) -> Answer {
        let id = request.base.container_id;
        let document = request.container_config.0;
        let mut world = self.world();
        if id == NULL_CONTAINER_ID {
            if document.get("SystemType").and_then(Value::as_str) != Some("Container") {
                return Err((
                    hresults::HCS_E_INVALID_JSON,
                    "$.SystemType must be \"Container\"".to_owned(),
                ));
            }
            world.cold_started = true;
            return Ok(json!({}));
        }
        self.require_cold_start(&world, &id)?;
        if world.containers.contains_key(&id) {
            return Err((
                hresults::HCS_E_SYSTEM_ALREADY_EXISTS,
                format!("container {id} already exists"),
            ));
        }
        world.containers.insert(
            id,
            Container {
                document,
                started: false,
                init_pid: None,
                stopping: None,
                exited: false,
            },
        );
        Ok(json!({}))
    }

    fn start(&self, id: &str) -> Answer {
        if id == NULL_CONTAINER_ID {
            return Ok(json!({}));
        }
        let mut world = self.world();
        self.require_cold_start(&world, id)?;
        let container = world.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        if container.started || container.exited {
            return Err((
                hresults::HCS_E_INVALID_STATE,
                format!("container {id} is not in the created state"),
            ));
        }
        container.started = true;
        Ok(json!({}))
    }

    fn shutdown(&self, id: &str, kind: &'static str, outbox: &Outbox) -> Answer {
        let mut world = self.world();
        let container = world.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        if container.exited {
            return Ok(json!({}));
        }
        container.stopping = Some(kind);
        let processes: Vec<Arc<GuestProcess>> = world
            .processes
            .values()
            .filter(|p| p.container_id == id && !p.has_exited())
            .cloned()
            .collect();
        if processes.is_empty() {
            notify_exit(&mut world, id, outbox);
            return Ok(json!({}));
        }
        drop(world);
        let signal =
            (kind == "GracefulExit").then_some(crate::messages::WindowsSignal::CtrlShutdown);
        for process in processes {
            let _ = process.signal(signal);
        }
        Ok(json!({}))
    }

    async fn execute(&self, request: ExecuteProcessRequest, outbox: &Outbox) -> Answer {
        let id = request.base.container_id.clone();
        {
            let world = self.world();
            self.require_cold_start(&world, &id)?;
            if id != NULL_CONTAINER_ID {
                let container = world.containers.get(&id).ok_or_else(|| not_found(&id))?;
                if !container.started || container.exited {
                    return Err((
                        hresults::HCS_E_INVALID_STATE,
                        format!("container {id} is not running"),
                    ));
                }
            }
        }
        let ExecuteProcessSettings {
            process_parameters: JsonString(parameters),
            stdio_relay_settings,
        } = request.settings;
        let (process, mut exit) = process::spawn(
            &id,
            &parameters,
            stdio_relay_settings,
            &self.shared.config.relay,
        )
        .await?;
        let pid = process.pid;
        {
            let mut world = self.world();
            world.processes.insert(pid, Arc::new(process));
            if let Some(container) = world.containers.get_mut(&id)
                && container.init_pid.is_none()
            {
                container.init_pid = Some(pid);
            }
        }
        // The container ends with its first (init) process; tell the host when it does.
        let peer = self.clone();
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let _ = exit.wait_for(Option::is_some).await;
            let mut world = peer.world();
            let is_init = world
                .containers
                .get(&id)
                .is_some_and(|c| c.init_pid == Some(pid));
            if is_init {
                notify_exit(&mut world, &id, &outbox);
            }
        });
        Ok(json!({"ProcessId": pid}))
    }

    async fn wait(&self, request: WaitForProcessRequest) -> Answer {
        let process = self.process(request.process_id)?;
        let mut exit = process.exit.clone();
        let wait = exit.wait_for(Option::is_some);
        let code = if request.timeout_in_ms == u32::MAX {
            wait.await.ok().and_then(|c| *c)
        } else {
            match tokio::time::timeout(
                Duration::from_millis(u64::from(request.timeout_in_ms)),
                wait,
            )
            .await
            {
                Ok(result) => result.ok().and_then(|c| *c),
                Err(_) => {
                    return Err((
                        hresults::VMCOMPUTE_TIMEOUT,
                        format!("process {} is still running", request.process_id),
                    ));
                }
            }
        };
        let code =
            code.ok_or_else(|| (hresults::E_FAIL, "the process exit was lost".to_owned()))?;
        // The wire carries a DWORD; negative codes keep their bit pattern, as on Windows.
        #[allow(clippy::cast_sign_loss)]
        Ok(json!({"ExitCode": code as u32}))
    }

    fn signal(&self, request: &SignalProcessRequest) -> Answer {
        self.process(request.process_id)?
            .signal(request.options.map(|o| o.signal))?;
        Ok(json!({}))
    }

    fn resize(&self, request: &ResizeConsoleRequest) -> Answer {
        self.process(request.process_id)?;
        Ok(json!({}))
    }

    fn properties(&self, request: &GetPropertiesRequest) -> Answer {
        let id = &request.base.container_id;
        let world = self.world();
        let container = world.containers.get(id).ok_or_else(|| not_found(id))?;
        let state = match (container.started, container.exited) {
            (_, true) => "Stopped",
            (true, false) => "Running",
            (false, false) => "Created",
        };
        let processes: Vec<Value> = world
            .processes
            .values()
            .filter(|p| p.container_id == *id && !p.has_exited())
            .map(|p| json!({"ProcessId": p.pid}))
            .collect();
        let mut properties = json!({
            "Id": id,
            "SystemType": "Container",
            "State": state,
            "ProcessList": processes,
        });
        let asked = |kind: &str| {
            request.query.0["PropertyTypes"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == kind))
        };
        if asked("SystemGUID") {
            properties["SystemGUID"] =
                json!(crate::transport::container_system_guid(id).to_string());
        }
        Ok(json!({"Properties": JsonString(properties)}))
    }

    /// Checks a guest modify the way the inbox agent does: unknown fields are refused with
    /// `HCS_E_INVALID_JSON` naming the JSON path.
    fn modify(request: &ModifySettingsRequest) -> Answer {
        let settings = &request.request.settings;
        let (allowed, required): (&[&str], &[&str]) = match request.request.resource_type {
            ResourceType::HvSocket => (
                &["LocalAddress", "ParentAddress"],
                &["LocalAddress", "ParentAddress"],
            ),
            ResourceType::MappedVirtualDisk => {
                (&["ContainerPath", "Lun"], &["ContainerPath", "Lun"])
            }
            ResourceType::CombinedLayers => (
                &["ContainerRootPath", "Layers", "ScratchPath"],
                &["ContainerRootPath"],
            ),
            ResourceType::Network => (&["AdapterId", "RequestType", "Settings"], &["AdapterId"]),
            ResourceType::NetworkNamespace | ResourceType::MappedDirectory => (&[], &[]),
        };
        if let (Some(object), false) = (settings.as_object(), allowed.is_empty()) {
            if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err((
                    hresults::HCS_E_INVALID_JSON,
                    format!("$.Settings.{unknown}: unknown field"),
                ));
            }
            if let Some(missing) = required.iter().find(|k| !object.contains_key(**k)) {
                return Err((
                    hresults::HCS_E_INVALID_JSON,
                    format!("$.Settings.{missing}: required field is missing"),
                ));
            }
        }
        Ok(json!({}))
    }

    fn delete(&self, id: &str) -> Answer {
        let mut world = self.world();
        let container = world.containers.get(id).ok_or_else(|| not_found(id))?;
        if !container.exited && container.started {
            return Err((
                hresults::HCS_E_INVALID_STATE,
                format!("container {id} is still running"),
            ));
        }
        world.containers.remove(id);
        world.processes.retain(|_, p| p.container_id != id);
        Ok(json!({}))
    }

    fn process(&self, pid: u32) -> Result<Arc<GuestProcess>, (i32, String)> {
        self.world()
            .processes
            .get(&pid)
            .cloned()
            .ok_or_else(|| (hresults::ERROR_NOT_FOUND, format!("no process {pid}")))
    }

    fn describe(&self) -> String {
        let world = self.world();
        format!(
            "pane guest peer: {} container(s), {} process(es)",
            world.containers.len(),
            world.processes.len()
        )
    }

    /// The hosted-container document the host sent with `Create`.
    pub fn container_document(&self, id: &str) -> Option<Value> {
        self.world().containers.get(id).map(|c| c.document.clone())
    }

    /// Processes the peer started and has not yet seen exit.
    pub fn running_processes(&self) -> usize {
        self.world()
            .processes
            .values()
            .filter(|p| !p.has_exited())
            .count()
    }
}

fn notify_exit(world: &mut World, id: &str, outbox: &Outbox) {
    let Some(container) = world.containers.get_mut(id) else {
        return;
    };
    if container.exited {
        return;
    }
    container.exited = true;
    let kind = container.stopping.unwrap_or("UnexpectedExit");
    let notification = ContainerNotification {
        base: RequestBase::new(id),
        kind: kind.to_owned(),
        // hcsshim's guest names no operation in an exit (bridge_v2.go `createContainerV2`).
        operation: "None".to_owned(),
        result: 0,
        result_info: String::new(),
    };
    outbox.send(
        MessageType::CONTAINER_NOTIFICATION,
        0,
        &to_value(&notification),
    );
}

/// Which handler answers `message_type`, as hcsshim's guest picks one by type and
/// negotiated version (internal/guest/bridge/bridge.go `Mux`, `AssignHandlers`): before
/// negotiation only `NegotiateProtocol` has one, after it every request but that one and
/// the three the guest never registers (`UpdateContainer`, `LifecycleNotification`,
/// `ModifyServiceSettings`). Anything else, of any kind, gets `E_NOTIMPL`.
fn handled_rpc(message_type: MessageType, negotiated: bool) -> Option<Rpc> {
    if message_type.kind() != Some(MessageKind::Request) {
        return None;
    }
    let rpc = message_type.rpc()?;
    let handled = match rpc {
        Rpc::NegotiateProtocol => !negotiated,
        Rpc::UpdateContainer | Rpc::LifecycleNotification | Rpc::ModifyServiceSettings => false,
        _ => negotiated,
    };
    handled.then_some(rpc)
}

/// Answers `request` under its response type with the answer's body or failure.
fn respond(outbox: &Outbox, request: &Frame, answer: Answer) {
    let body = match answer {
        Ok(mut body) => {
            if let Some(object) = body.as_object_mut() {
                object.insert("Result".to_owned(), json!(0));
            }
            body
        }
        Err((hresult, message)) => json!({
            "Result": hresult,
            "ErrorMessage": message,
            "ErrorRecords": [{"Result": hresult, "Message": message}],
        }),
    };
    outbox.send(request.message_type.response_to(), request.id, &body);
}

fn parse<T: serde::de::DeserializeOwned>(frame: &Frame) -> Result<T, (i32, String)> {
    serde_json::from_slice(&frame.body).map_err(|e| {
        (
            hresults::HCS_E_INVALID_JSON,
            format!("invalid request: {e}"),
        )
    })
}

fn container_of(frame: &Frame) -> Result<String, (i32, String)> {
    parse::<RequestBase>(frame).map(|base| base.container_id)
}

fn not_found(id: &str) -> (i32, String) {
    (
        hresults::HCS_E_SYSTEM_NOT_FOUND,
        format!("no container {id}"),
    )
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
