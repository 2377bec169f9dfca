//! [`ContainerLifecycle`]: a container's life over the [`Compute`] and [`Layers`] seams, in
//! either isolation. Each step has its own file:
//!
//! - [`create`](ContainerLifecycle::create): record, scratch layer, network, compute system
//!   (a utility VM and the container in it, under Hyper-V); every step undone on failure;
//! - [`start`](ContainerLifecycle::start): the workload, its output into the log;
//! - [`exec`](ContainerLifecycle::exec): a command in the running container, as a stream;
//! - [`stop`](ContainerLifecycle::stop) and [`kill`](ContainerLifecycle::kill);
//! - [`remove`](ContainerLifecycle::remove): everything the container holds on the host;
//! - [`reconcile`](ContainerLifecycle::reconcile): after a restart, adopt what runs and
//!   clean up what was left half done;
//! - `watch`: the workload's exit, published to [`wait`](ContainerLifecycle::wait) and
//!   recorded;
//! - `stdio`: the workload's stdio shared with attached clients
//!   ([`attachment`](ContainerLifecycle::attachment)).
//!
//! The lifecycle owns the order of the steps, the records (saved before each step that
//! creates something), the per-container locks and the logs; what differs between process
//! and Hyper-V isolation it asks of the container's isolation (`isolated/`), which never
//! calls back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pane_gcs::messages::TimeZoneInformation;

use crate::backend::{Compute, GuestConnector, Layers, Network};
use crate::documents::host_files::{HostFiles, LocalFiles};
use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolated::hyperv::HypervIsolation;
use crate::isolated::process::ProcessIsolation;
use crate::isolated::{ContainerHost, IsolatedContainer};
use crate::isolation::Isolation;
use crate::logs::{self, LogWriter, SharedLog, read_logs};
use crate::networking::Networks;
use crate::networking::cni::CniNetworks;
use crate::records::{ContainerLocks, ContainerRecord, RecordStore, WaitOutcome};
use crate::types::{Holders, LogEntry, LogOptions};
use crate::workload_io::WorkloadAttachment;

mod create;
mod exec;
mod reconcile;
mod remove;
mod start;
mod stdio;
mod stop;
mod watch;

pub use crate::isolated::Layout;
pub use reconcile::Reconciled;

/// `<root>/locks/containers`, beside the records directory `<root>/containers`.
fn lock_dir(containers: &std::path::Path) -> PathBuf {
    containers.parent().map_or_else(
        || containers.join(".locks"),
        |root| root.join("locks").join("containers"),
    )
}

/// The container lifecycle of one pane process. Several processes may share a root: the
/// records and locks under it are what they agree through.
pub struct ContainerLifecycle {
    /// The host seams, the folders and the networks, shared with the isolations.
    host: ContainerHost,
    pub(crate) records: RecordStore,
    process: ProcessIsolation,
    hyperv: HypervIsolation,
    /// Exit outcomes of started containers, published by their watcher tasks.
    exits: Mutex<HashMap<ContainerId, tokio::sync::watch::Receiver<Option<WaitOutcome>>>>,
    /// One writer per container log, shared by the workload's and the execs' pumps so
    /// rotation happens in one place.
    logs: Arc<Mutex<HashMap<ContainerId, SharedLog>>>,
    /// Addresses asked for the next create of a container (the CNI `ips` capability).
    requested_addresses: Mutex<HashMap<ContainerId, std::net::IpAddr>>,
    /// One writer per container across the pane processes sharing the root.
    locks: ContainerLocks,
    /// Who else holds running containers (their supervisors); reconcile leaves theirs.
    holders: Option<Arc<dyn Holders>>,
    /// The running workloads this process holds, for attached clients.
    attachments: Arc<Mutex<HashMap<ContainerId, WorkloadAttachment>>>,
}

impl std::fmt::Debug for ContainerLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerLifecycle")
            .field("records", &self.records)
            .field("layout", &self.host.layout)
            .finish_non_exhaustive()
    }
}

impl ContainerLifecycle {
    pub fn new(
        compute: Arc<dyn Compute>,
        layers: Arc<dyn Layers>,
        records: RecordStore,
        layout: Layout,
    ) -> Self {
        Self {
            locks: ContainerLocks::new(lock_dir(&layout.containers)),
            host: ContainerHost {
                compute,
                layers,
                files: Arc::new(LocalFiles),
                layout,
                networks: Networks::default(),
            },
            records,
            process: ProcessIsolation,
            hyperv: HypervIsolation::new(crate::host::time_zone()),
            exits: Mutex::default(),
            logs: Arc::default(),
            requested_addresses: Mutex::default(),
            holders: None,
            attachments: Arc::default(),
        }
    }

    /// Answers questions about mount sources and layer folders through `files`.
    #[must_use]
    pub fn with_host_files(mut self, files: Arc<dyn HostFiles>) -> Self {
        self.host.files = files;
        self
    }

    /// Gives utility VMs `time_zone` instead of this host's.
    #[must_use]
    pub fn with_host_time_zone(mut self, time_zone: TimeZoneInformation) -> Self {
        self.hyperv.time_zone = time_zone;
        self
    }

    /// Enables networks through `network`.
    #[must_use]
    pub fn with_network(mut self, network: Arc<dyn Network>) -> Self {
        self.host.networks.backend = Some(network);
        self
    }

    /// Lets containers join the CNI networks of `cni` (the network backend makes their
    /// namespaces).
    #[must_use]
    pub fn with_cni(mut self, cni: Arc<CniNetworks>) -> Self {
        self.host.networks.cni = Some(cni);
        self
    }

    pub fn cni(&self) -> Option<&CniNetworks> {
        self.host.networks.cni.as_deref()
    }

    /// Enables Hyper-V isolation through `connector`.
    #[must_use]
    pub fn with_guest_connector(mut self, connector: Arc<dyn GuestConnector>) -> Self {
        self.hyperv.connector = Some(connector);
        self
    }

    /// Reconcile asks `holders` before it adopts or ends a running container.
    #[must_use]
    pub fn with_holders(mut self, holders: Arc<dyn Holders>) -> Self {
        self.holders = Some(holders);
        self
    }

    /// Asks for `address` on the next create of `id` (the orchestrator's per-container
    /// address; CNI's `ips` capability).
    pub fn request_address(&self, id: &ContainerId, address: std::net::IpAddr) {
        if let Ok(mut requested) = self.requested_addresses.lock() {
            requested.insert(id.clone(), address);
        }
    }

    fn take_requested_address(&self, id: &ContainerId) -> Option<std::net::IpAddr> {
        self.requested_addresses
            .lock()
            .ok()
            .and_then(|mut requested| requested.remove(id))
    }

    /// The isolation a record says the container runs in (records from before isolation
    /// was recorded are process-isolated).
    fn isolated(&self, isolation: Option<Isolation>) -> &dyn IsolatedContainer {
        match isolation {
            Some(Isolation::Hyperv) => &self.hyperv,
            Some(Isolation::Process) | None => &self.process,
        }
    }

    /// The compute system whose end is the container's end.
    fn system_of(&self, record: &ContainerRecord) -> String {
        self.isolated(record.isolation).system(record)
    }

    fn folder(&self, id: &ContainerId) -> PathBuf {
        self.host.folder(id)
    }

    /// The container's log writer, opened on first use.
    fn log_writer(&self, id: &ContainerId) -> Result<SharedLog, RuntimeError> {
        let mut logs = self
            .logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(writer) = logs.get(id) {
            return Ok(Arc::clone(writer));
        }
        let writer = LogWriter::open(&self.folder(id), logs::DEFAULT_LIMIT, logs::DEFAULT_KEEP)
            .map_err(|e| RuntimeError::State {
                path: self.folder(id).display().to_string(),
                reason: format!("cannot open the container log: {e}"),
            })?;
        let writer = Arc::new(Mutex::new(writer));
        logs.insert(id.clone(), Arc::clone(&writer));
        Ok(writer)
    }

    /// The folder holding the container's log, for `logs --follow`.
    pub fn log_dir(&self, id: &ContainerId) -> PathBuf {
        self.folder(id)
    }

    /// The container's output lines, oldest first, filtered as `options` asks.
    pub fn logs(
        &self,
        id: &ContainerId,
        options: &LogOptions,
    ) -> Result<Vec<LogEntry>, RuntimeError> {
        self.records.load(id)?;
        read_logs(&self.folder(id), options, logs::DEFAULT_KEEP).map_err(|e| RuntimeError::State {
            path: self.folder(id).display().to_string(),
            reason: format!("cannot read the container log: {e}"),
        })
    }
}
