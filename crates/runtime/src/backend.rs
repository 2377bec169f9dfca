//! The seams between the runtime and the operating system. The runtime drives HCS only
//! through [`Compute`], so every orchestration path, including each failure half way
//! through a create, runs on Linux against a double that models HCS's states and errors;
//! on Windows the implementation is a thin layer over `pane_hcs::sys`.

use std::time::Duration;

use async_trait::async_trait;
use pane_hcs::HcsEvent;
use pane_hcs::hresult::HResult;
use pane_hcs::schema::{
    ComputeSystem, ModifySettingRequest, ProcessParameters, Properties, PropertyQuery,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::error::RuntimeError;

/// A failed host call: which, and its HRESULT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call} failed with HRESULT {hresult}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
pub struct HostError {
    pub call: &'static str,
    pub hresult: HResult,
    pub message: String,
}

impl HostError {
    pub fn new(call: &'static str, hresult: u32, message: impl Into<String>) -> Self {
        Self {
            call,
            hresult: HResult(hresult),
            message: message.into(),
        }
    }
}

impl From<HostError> for RuntimeError {
    /// The call becomes the step and the HRESULT stays a number, so the message carries
    /// only what `RuntimeError`'s own text lacks: the code's name and the host's words.
    /// (It used to be the whole `HostError` text, which said the call and its HRESULT a
    /// second time, `HcnCreateEndpoint failed with HRESULT 0x80070020: HcnCreateEndpoint
    /// failed with HRESULT 0x80070020 (…): …`, as wine-e2e's HCN faults showed.)
    fn from(e: HostError) -> Self {
        let name = e
            .hresult
            .describe()
            .map(|(name, text)| format!("{name}: {text}"));
        let message = match (name, e.message.is_empty()) {
            (Some(name), true) => name,
            (Some(name), false) => format!("{name}: {}", e.message),
            (None, true) => "the host gave no further detail".to_owned(),
            (None, false) => e.message,
        };
        RuntimeError::Host {
            step: e.call.to_owned(),
            hresult: Some(e.hresult.0),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_error_names_its_call_and_hresult_once() {
        let error: RuntimeError =
            HostError::new("HcnCreateEndpoint", 0x8007_0020, "{\"Error\":1}").into();
        let text = error.to_string();
        assert_eq!(text.matches("HcnCreateEndpoint").count(), 1, "{text}");
        assert_eq!(text.matches("0x80070020").count(), 1, "{text}");
        assert!(text.contains("ERROR_SHARING_VIOLATION"), "{text}");
        assert!(text.ends_with("{\"Error\":1}"), "{text}");
        let bare: RuntimeError = HostError::new("HcsStart", 0x8000_0001, "").into();
        assert_eq!(
            bare.to_string(),
            "HcsStart failed with HRESULT 0x80000001: the host gave no further detail"
        );
    }
}

/// A console's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsoleSize {
    pub rows: u16,
    pub columns: u16,
}

pub trait ProcessInput: AsyncWrite + Send + Unpin {}
impl<T: AsyncWrite + Send + Unpin> ProcessInput for T {}
pub trait ProcessOutput: AsyncRead + Send + Unpin {}
impl<T: AsyncRead + Send + Unpin> ProcessOutput for T {}

/// A process started in a compute system, with the pipes it asked for.
pub struct ProcessIo {
    pub pid: u32,
    pub stdin: Option<Box<dyn ProcessInput>>,
    pub stdout: Option<Box<dyn ProcessOutput>>,
    pub stderr: Option<Box<dyn ProcessOutput>>,
}

impl std::fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessIo")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// Events of one compute system and its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeEvent {
    System(HcsEvent),
    Process { pid: u32, event: HcsEvent },
}

/// The HCS operations the runtime uses, addressed by compute-system id.
#[async_trait]
pub trait Compute: Send + Sync {
    async fn create(&self, id: &str, document: &ComputeSystem) -> Result<(), HostError>;
    /// Attaches to a system created earlier (adoption after a restart).
    async fn open(&self, id: &str) -> Result<(), HostError>;
    async fn start(&self, id: &str) -> Result<(), HostError>;
    /// Asks for a graceful shutdown; the exit arrives as an event.
    async fn shutdown(&self, id: &str, timeout: Duration) -> Result<(), HostError>;
    async fn terminate(&self, id: &str) -> Result<(), HostError>;
    /// Lets go of the handle; the system itself is not touched.
    async fn close(&self, id: &str);
    async fn properties(&self, id: &str, query: &PropertyQuery) -> Result<Properties, HostError>;
    async fn modify(&self, id: &str, request: &ModifySettingRequest) -> Result<(), HostError>;
    async fn create_process(
        &self,
        id: &str,
        parameters: &ProcessParameters,
    ) -> Result<ProcessIo, HostError>;
    /// Attaches to a process another pane process started in `id` (opened first), so its
    /// exit arrives as an event here and it can be signalled.
    async fn open_process(&self, id: &str, pid: u32) -> Result<(), HostError>;
    /// A console event (`CtrlC`, `CtrlShutdown`), or terminate when `None`.
    async fn signal_process(
        &self,
        id: &str,
        pid: u32,
        signal: Option<&str>,
    ) -> Result<(), HostError>;
    /// Resizes the console of a process created with `EmulateConsole`
    /// (`HcsModifyProcess` with a `ConsoleSize` operation).
    async fn resize_console(&self, id: &str, pid: u32, size: ConsoleSize) -> Result<(), HostError>;
    /// The system's and its processes' events from now on.
    fn events(&self, id: &str) -> Result<mpsc::UnboundedReceiver<ComputeEvent>, HostError>;
    /// Systems carrying `owner` as their owner tag.
    async fn enumerate(&self, owner: &str) -> Result<Vec<Properties>, HostError>;
    /// Lets the utility VM `vm_id` (its compute-system id) open `path` (a VHDX).
    async fn grant_vm_access(&self, vm_id: &str, path: &std::path::Path) -> Result<(), HostError>;

    /// CPU and memory of a system: HCS's `Statistics` query. Process-isolated containers
    /// are read from their silo's job object on Windows instead, as that query is slow.
    async fn statistics(&self, id: &str) -> Result<pane_hcs::schema::Statistics, HostError> {
        let query = PropertyQuery {
            property_types: Some(vec!["Statistics".to_owned()]),
        };
        Ok(self
            .properties(id, &query)
            .await?
            .statistics
            .unwrap_or_default())
    }
}

/// Reaches the guest compute service of a utility VM: hvsock on Windows. The guest dials the
/// host once it has booted, so the listener is bound before the VM starts.
#[async_trait]
pub trait GuestConnector: Send + Sync {
    /// Listens for the GCS of the VM whose `RuntimeId` is `vm`.
    async fn listen(&self, vm: uuid::Uuid) -> std::io::Result<pane_gcs::transport::Listener>;
    /// Where that VM's stdio relays are listened for.
    fn relay(&self, vm: uuid::Uuid) -> pane_gcs::Transport;
    /// Routes the host's hvsock traffic for the hosted container whose `SystemGUID` is
    /// `container` into the VM whose `RuntimeId` is `vm`, as hcsshim does after creating
    /// a hosted container: container↔host hvsock services (gMSA's) depend on it. The
    /// route lasts as long as the returned guard.
    async fn redirect_container(
        &self,
        container: uuid::Uuid,
        vm: uuid::Uuid,
    ) -> std::io::Result<AddressRedirect>;
}

/// Keeps a hosted container's hvsock route while it lives.
pub struct AddressRedirect(#[allow(dead_code)] Box<dyn Send + Sync>);

impl AddressRedirect {
    pub fn new(route: impl Send + Sync + 'static) -> Self {
        Self(Box::new(route))
    }
}

impl std::fmt::Debug for AddressRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressRedirect").finish_non_exhaustive()
    }
}

/// Scratch-layer operations (vmcompute on Windows). Parents are never activated: only the
/// scratch is, over its parents.
#[async_trait]
pub trait Layers: Send + Sync {
    async fn create_scratch(
        &self,
        scratch: &std::path::Path,
        parents: &[std::path::PathBuf],
    ) -> Result<(), HostError>;
    /// Grows a scratch layer's disk (`sandbox.vhdx`) to `size_bytes`; it is created at
    /// 20 GiB and cannot shrink.
    async fn expand_scratch(
        &self,
        scratch: &std::path::Path,
        size_bytes: u64,
    ) -> Result<(), HostError>;
    /// Activates and prepares the scratch; returns its volume path.
    async fn activate(
        &self,
        scratch: &std::path::Path,
        parents: &[std::path::PathBuf],
    ) -> Result<String, HostError>;
    async fn deactivate(&self, scratch: &std::path::Path) -> Result<(), HostError>;
    async fn destroy(&self, scratch: &std::path::Path) -> Result<(), HostError>;
}

/// The backend of a host without HCS (Linux, macOS, Windows without the Containers
/// feature): every call fails with `reason`, so commands that only read pane's records
/// (`ps`, `inspect`, `logs`) still work there and the others say what is missing.
#[derive(Debug, Clone)]
pub struct NoHost {
    pub reason: String,
}

/// `ERROR_NOT_SUPPORTED` as an HRESULT.
const NOT_SUPPORTED: u32 = 0x8007_0032;

impl NoHost {
    fn refuse(&self, call: &'static str) -> HostError {
        HostError::new(call, NOT_SUPPORTED, self.reason.clone())
    }
}

#[async_trait]
impl Compute for NoHost {
    async fn create(&self, _: &str, _: &ComputeSystem) -> Result<(), HostError> {
        Err(self.refuse("HcsCreateComputeSystem"))
    }
    async fn open(&self, _: &str) -> Result<(), HostError> {
        Err(self.refuse("HcsOpenComputeSystem"))
    }
    async fn start(&self, _: &str) -> Result<(), HostError> {
        Err(self.refuse("HcsStartComputeSystem"))
    }
    async fn shutdown(&self, _: &str, _: Duration) -> Result<(), HostError> {
        Err(self.refuse("HcsShutDownComputeSystem"))
    }
    async fn terminate(&self, _: &str) -> Result<(), HostError> {
        Err(self.refuse("HcsTerminateComputeSystem"))
    }
    async fn close(&self, _: &str) {}
    async fn properties(&self, _: &str, _: &PropertyQuery) -> Result<Properties, HostError> {
        Err(self.refuse("HcsGetComputeSystemProperties"))
    }
    async fn modify(&self, _: &str, _: &ModifySettingRequest) -> Result<(), HostError> {
        Err(self.refuse("HcsModifyComputeSystem"))
    }
    async fn create_process(&self, _: &str, _: &ProcessParameters) -> Result<ProcessIo, HostError> {
        Err(self.refuse("HcsCreateProcess"))
    }
    async fn open_process(&self, _: &str, _: u32) -> Result<(), HostError> {
        Err(self.refuse("HcsOpenProcess"))
    }
    async fn resize_console(&self, _: &str, _: u32, _: ConsoleSize) -> Result<(), HostError> {
        Err(self.refuse("HcsModifyProcess"))
    }
    async fn signal_process(&self, _: &str, _: u32, _: Option<&str>) -> Result<(), HostError> {
        Err(self.refuse("HcsSignalProcess"))
    }
    fn events(&self, _: &str) -> Result<mpsc::UnboundedReceiver<ComputeEvent>, HostError> {
        Err(self.refuse("HcsSetComputeSystemCallback"))
    }
    async fn enumerate(&self, _: &str) -> Result<Vec<Properties>, HostError> {
        Err(self.refuse("HcsEnumerateComputeSystems"))
    }
    async fn grant_vm_access(&self, _: &str, _: &std::path::Path) -> Result<(), HostError> {
        Err(self.refuse("HcsGrantVmAccess"))
    }
}

#[async_trait]
impl Layers for NoHost {
    async fn create_scratch(
        &self,
        _: &std::path::Path,
        _: &[std::path::PathBuf],
    ) -> Result<(), HostError> {
        Err(self.refuse("CreateSandboxLayer"))
    }
    async fn expand_scratch(&self, _: &std::path::Path, _: u64) -> Result<(), HostError> {
        Err(self.refuse("ExpandSandboxSize"))
    }
    async fn activate(
        &self,
        _: &std::path::Path,
        _: &[std::path::PathBuf],
    ) -> Result<String, HostError> {
        Err(self.refuse("ActivateLayer"))
    }
    async fn deactivate(&self, _: &std::path::Path) -> Result<(), HostError> {
        Err(self.refuse("DeactivateLayer"))
    }
    async fn destroy(&self, _: &std::path::Path) -> Result<(), HostError> {
        Err(self.refuse("DestroyLayer"))
    }
}

/// An endpoint on one of the node's networks, in a container's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: uuid::Uuid,
    pub network: String,
    pub ip: Option<std::net::IpAddr>,
    pub mac: Option<String>,
    /// The endpoint as HCN describes it (`HostComputeEndpoint`); a Hyper-V guest is handed it.
    pub document: serde_json::Value,
}

/// A container port published on a host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: pane_spec::Protocol,
}

/// Container networking (HCN on Windows): a namespace per container and an endpoint in it
/// per network joined. Ids are chosen by the runtime, so a record names them before they
/// exist. Deleting what is already gone is not an error.
#[async_trait]
pub trait Network: Send + Sync {
    /// Creates the namespace; returns its HCN document (a Hyper-V guest is handed it).
    async fn create_namespace(&self, id: uuid::Uuid) -> Result<serde_json::Value, HostError>;
    async fn delete_namespace(&self, id: uuid::Uuid) -> Result<(), HostError>;
    /// Creates an endpoint on the network named `network`, publishing `ports` through it,
    /// and adds it to `namespace`.
    async fn create_endpoint(
        &self,
        network: &str,
        id: uuid::Uuid,
        namespace: uuid::Uuid,
        ports: &[PublishedPort],
    ) -> Result<Endpoint, HostError>;
    async fn delete_endpoint(&self, id: uuid::Uuid) -> Result<(), HostError>;
    /// What CNI plugins are handed as `CNI_NETNS` for namespace `id`: on Windows the
    /// HCN namespace GUID, as containerd hands it; elsewhere the namespace's path.
    fn cni_netns(&self, id: uuid::Uuid) -> String {
        id.to_string()
    }
    /// Namespace `id` as HCN reports it now (`HostComputeNamespace`, with `Resources`
    /// naming the endpoints in it, whoever attached them: CNI plugins add theirs to the
    /// namespace pane made).
    async fn query_namespace(&self, id: uuid::Uuid) -> Result<serde_json::Value, HostError>;
    /// Endpoint `id` as HCN reports it; a Hyper-V guest is handed it.
    async fn query_endpoint(&self, id: uuid::Uuid) -> Result<Endpoint, HostError>;
}
