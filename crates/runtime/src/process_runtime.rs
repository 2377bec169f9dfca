//! The process-isolated container lifecycle over the [`Compute`] and [`Layers`] seams:
//! create (scratch, activation, compute system; every step undone on failure), start (the
//! workload, its exit watched through events), wait, stop, remove. Records are saved before
//! each step that creates something.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use pane_gcs::messages::TimeZoneInformation;
use pane_hcs::doc::LayerRef;
use pane_hcs::schema::ProcessParameters;
use pane_oci::ImageFacts;
use pane_spec::ServiceSpec;
use tokio::sync::watch;

use crate::backend::{Compute, Layers};
use crate::error::RuntimeError;
use crate::host_exit::{host_system_exit, host_workload_exit};
use crate::host_files::{HostFiles, LocalFiles};
use crate::id::ContainerId;
use crate::isolation::Isolation;
use crate::logs::{self, LineSplitter, LogWriter, read_logs};
use crate::process::init_process;
use crate::process_docs::{ProcessDocumentInput, process_document};
use crate::records::{ContainerRecord, Durability, Phase, RecordStore};
use crate::rollback::Rollback;
use crate::signal::Signal;
use crate::state::{WaitOutcome, WaitReason};
use crate::types::{ExecEvent, ExecEventStream, ExecOptions, LogEntry, LogOptions, LogStream};

/// Hands a pipe's bytes to `sink` as they arrive, until the pipe closes or `sink` returns
/// false.
async fn drain(
    mut reader: Box<dyn crate::backend::ProcessOutput>,
    mut sink: impl FnMut(&[u8]) -> bool,
) {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(n) = reader.read(&mut buffer).await {
        if n == 0 || !sink(&buffer[..n]) {
            break;
        }
    }
}

/// Persists a pipe as log lines until it closes, handing each chunk to `forward` too (an
/// exec's stream); the log keeps going if `forward`'s reader has gone.
pub(crate) async fn log_pump(
    reader: Box<dyn crate::backend::ProcessOutput>,
    mut splitter: LineSplitter,
    writer: SharedLog,
    mut forward: impl FnMut(&[u8]) + Send,
) {
    let append = |entries: Vec<LogEntry>| {
        if let Ok(mut writer) = writer.lock() {
            for entry in &entries {
                if let Err(e) = writer.append(entry) {
                    tracing::warn!(error = %e, "a log line was not persisted");
                }
            }
        }
    };
    drain(reader, |bytes| {
        forward(bytes);
        append(splitter.push(bytes));
        true
    })
    .await;
    append(splitter.finish().into_iter().collect());
}

pub(crate) type SharedLog = Arc<Mutex<LogWriter>>;

/// The workload's pipes into its log, one task per pipe.
pub(crate) fn spawn_log_pumps(
    stdout: Option<Box<dyn crate::backend::ProcessOutput>>,
    stderr: Option<Box<dyn crate::backend::ProcessOutput>>,
    writer: &SharedLog,
) -> Vec<tokio::task::JoinHandle<()>> {
    [(stdout, LogStream::Stdout), (stderr, LogStream::Stderr)]
        .into_iter()
        .filter_map(|(reader, stream)| {
            reader.map(|reader| {
                tokio::spawn(log_pump(
                    reader,
                    LineSplitter::new(stream),
                    Arc::clone(writer),
                    |_| {},
                ))
            })
        })
        .collect()
}

/// How a container's workload ends: `Some(code)` when the workload itself exited, `None`
/// when the container went without it (its system exited, the guest connection closed).
pub(crate) type WorkloadExit =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<i32>> + Send>>;

/// The compute systems a record says may exist: the container itself (process isolation)
/// or its utility VM (Hyper-V).
fn systems_of(record: &ContainerRecord) -> Vec<String> {
    match record.isolation {
        Some(Isolation::Hyperv) => vec![
            record
                .resources
                .utility_vm
                .clone()
                .unwrap_or_else(|| crate::hyperv::utility_vm_id(&record.id)),
        ],
        _ => vec![record.id.to_string()],
    }
}

/// Tries at removing a container folder whose files another process may still hold
/// (50 ms, 100 ms, … : 2.75 s in all).
const FOLDER_REMOVE_ATTEMPTS: u32 = 10;

/// How long an exit waits for its output to drain: a grandchild can hold the pipes open
/// after the workload has gone, and the exit must not wait on it.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

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

/// What [`ProcessRuntime::reconcile`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reconciled {
    /// Running containers watched again.
    pub adopted: Vec<ContainerId>,
    /// Interrupted creates and removes whose leftovers were released.
    pub cleaned: Vec<ContainerId>,
    /// Containers whose compute system disappeared while pane was down.
    pub lost: Vec<ContainerId>,
    /// Compute systems with this owner tag and no record, terminated.
    pub orphans: Vec<String>,
}

/// Where things go on the host.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Directory of per-container folders (scratch layers live there).
    pub containers: PathBuf,
    pub owner: String,
    pub host_processors: u32,
}

pub struct ProcessRuntime {
    pub(crate) compute: Arc<dyn Compute>,
    pub(crate) layers: Arc<dyn Layers>,
    pub(crate) records: RecordStore,
    pub(crate) layout: Layout,
    /// Exit outcomes of started containers, published by their watcher tasks.
    exits: Mutex<HashMap<ContainerId, watch::Receiver<Option<WaitOutcome>>>>,
    /// One writer per container log, shared by the workload's and the execs' pumps so
    /// rotation happens in one place.
    logs: Arc<Mutex<HashMap<ContainerId, SharedLog>>>,
    /// Joins containers to networks; without it specs with `networks` are refused.
    pub(crate) network: Option<Arc<dyn crate::backend::Network>>,
    /// Reaches utility VMs' guests; without it Hyper-V isolation is refused.
    pub(crate) guest: Option<Arc<dyn crate::backend::GuestConnector>>,
    /// The guest connections of this process's Hyper-V containers.
    pub(crate) guests: Mutex<HashMap<ContainerId, Arc<pane_gcs::GuestConnection>>>,
    /// The hvsock routes into the VMs of this process's Hyper-V containers.
    pub(crate) hv_routes: Mutex<HashMap<ContainerId, crate::backend::AddressRedirect>>,
    /// What mount sources and layer folders are on the host.
    pub(crate) files: Arc<dyn HostFiles>,
    /// The zone utility VMs keep their clock in unless a spec asks for UTC.
    pub(crate) time_zone: TimeZoneInformation,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("records", &self.records)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl ProcessRuntime {
    pub fn new(
        compute: Arc<dyn Compute>,
        layers: Arc<dyn Layers>,
        records: RecordStore,
        layout: Layout,
    ) -> Self {
        Self {
            compute,
            layers,
            records,
            layout,
            exits: Mutex::default(),
            logs: Arc::default(),
            guest: None,
            guests: Mutex::default(),
            network: None,
            hv_routes: Mutex::default(),
            files: Arc::new(LocalFiles),
            time_zone: crate::host::time_zone(),
        }
    }

    /// Answers questions about mount sources and layer folders through `files`.
    #[must_use]
    pub fn with_host_files(mut self, files: Arc<dyn HostFiles>) -> Self {
        self.files = files;
        self
    }

    /// Gives utility VMs `time_zone` instead of this host's.
    #[must_use]
    pub fn with_host_time_zone(mut self, time_zone: TimeZoneInformation) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// Enables networks through `network`.
    #[must_use]
    pub fn with_network(mut self, network: Arc<dyn crate::backend::Network>) -> Self {
        self.network = Some(network);
        self
    }

    /// Enables Hyper-V isolation through `connector`.
    #[must_use]
    pub fn with_guest_connector(
        mut self,
        connector: Arc<dyn crate::backend::GuestConnector>,
    ) -> Self {
        self.guest = Some(connector);
        self
    }

    /// The container's log writer, opened on first use.
    pub(crate) fn log_writer(&self, id: &ContainerId) -> Result<SharedLog, RuntimeError> {
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

    pub(crate) fn folder(&self, id: &ContainerId) -> PathBuf {
        self.layout.containers.join(id.to_string())
    }

    fn scratch(&self, id: &ContainerId) -> PathBuf {
        self.folder(id).join("scratch")
    }

    /// Creates the container: record, scratch layer over `chain` (topmost first),
    /// activation, compute system. On failure every completed step is undone and the record
    /// removed; the error names the step.
    pub async fn create(
        &self,
        id: &ContainerId,
        spec: &ServiceSpec,
        image: &ImageFacts,
        chain: &[LayerRef],
    ) -> Result<(), RuntimeError> {
        self.create_isolated(id, spec, image, chain, Isolation::Process)
            .await
    }

    /// As [`ProcessRuntime::create`], in the isolation given: Hyper-V boots a utility VM
    /// and creates the container in it through the guest compute service.
    pub async fn create_isolated(
        &self,
        id: &ContainerId,
        spec: &ServiceSpec,
        image: &ImageFacts,
        chain: &[LayerRef],
        isolation: Isolation,
    ) -> Result<(), RuntimeError> {
        if self.records.load(id).is_ok() {
            return Err(RuntimeError::AlreadyExists { id: id.to_string() });
        }
        let mut record = ContainerRecord::new(id.clone(), &self.layout.owner, spec);
        record.image_manifest = Some(image.manifest_digest.clone());
        record.isolation = Some(isolation);
        let scratch = self.scratch(id);
        record.resources.scratch = Some(scratch.clone());
        // Every host resource is named up front, so the first save already tells a
        // restarted pane what a crash at any later step may have left.
        crate::network::name_network_objects(&mut record, &spec.networks);
        match isolation {
            Isolation::Process => record.resources.compute_system = Some(id.to_string()),
            Isolation::Hyperv => {
                record.resources.utility_vm = Some(crate::hyperv::utility_vm_id(id));
            }
        }
        self.records.save(&record)?;
        let mut rollback = Rollback::new();
        let steps = match isolation {
            Isolation::Process => {
                self.create_steps(&mut rollback, &mut record, spec, chain, &scratch)
                    .await
            }
            Isolation::Hyperv => {
                self.hyperv_create_steps(&mut rollback, &mut record, spec, chain, &scratch)
                    .await
            }
        };
        match steps {
            Ok(()) => {
                rollback.commit();
                Ok(())
            }
            Err(error) => {
                rollback.unwind().await;
                if rollback.leftovers.is_empty() {
                    self.remove_folder(id).await?;
                    self.records.remove(id)?;
                } else {
                    // Keep the record so a later reconcile can finish the cleanup.
                    record.phase = Phase::Failed {
                        reason: format!("{error}; left behind: {}", rollback.leftovers.join("; ")),
                    };
                    self.records.save(&record)?;
                }
                Err(error)
            }
        }
    }

    async fn create_steps(
        &self,
        rollback: &mut Rollback,
        record: &mut ContainerRecord,
        spec: &ServiceSpec,
        chain: &[LayerRef],
        scratch: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let storage = spec.resources.storage.map(pane_spec::MemorySize::bytes);
        let parents = self
            .create_scratch(rollback, scratch, chain, storage)
            .await?;
        let layers = Arc::clone(&self.layers);
        let undo_scratch = scratch.to_owned();
        let volume = rollback
            .step(
                "activate scratch layer",
                async { Ok(self.layers.activate(scratch, &parents).await?) },
                move || async move { Ok(layers.deactivate(&undo_scratch).await?) },
            )
            .await?;
        record.resources.scratch_activated = true;
        let attached = self
            .attach_networks(rollback, record, &spec.networks, &spec.ports)
            .await?;
        let id = record.id.to_string();
        let (document, clamped) = process_document(&ProcessDocumentInput {
            owner: &self.layout.owner,
            spec,
            chain,
            scratch_volume: &volume,
            host_processors: self.layout.host_processors,
            network_namespace: attached.as_ref().map(|a| a.namespace),
            files: self.files.as_ref(),
        })?;
        if let Some(clamp) = clamped {
            tracing::warn!(%id, "{clamp}");
        }
        record.documents = vec![(
            "container".to_owned(),
            serde_json::to_value(&document).unwrap_or_default(),
        )];
        self.create_system(rollback, "create compute system", &id, &document)
            .await?;
        record.phase = Phase::Created;
        self.records.save(record)
    }

    /// Creates the container's scratch layer over `chain` (grown to `size_bytes` when the
    /// spec asks for more than it starts with), undone by destroying it; returns the parent
    /// folders.
    pub(crate) async fn create_scratch(
        &self,
        rollback: &mut Rollback,
        scratch: &std::path::Path,
        chain: &[LayerRef],
        size_bytes: Option<u64>,
    ) -> Result<Vec<PathBuf>, RuntimeError> {
        let parents: Vec<PathBuf> = chain.iter().map(|l| PathBuf::from(&l.path)).collect();
        let layers = Arc::clone(&self.layers);
        let undo_scratch = scratch.to_owned();
        rollback
            .step(
                "create scratch layer",
                async {
                    self.layers.create_scratch(scratch, &parents).await?;
                    if let Some(size) = size_bytes {
                        // Undone with the layer: a failed expand leaves no scratch behind.
                        if let Err(e) = self.layers.expand_scratch(scratch, size).await {
                            let _ = self.layers.destroy(scratch).await;
                            return Err(e.into());
                        }
                    }
                    Ok(())
                },
                move || async move { Ok(layers.destroy(&undo_scratch).await?) },
            )
            .await?;
        Ok(parents)
    }

    /// Creates compute system `id` as step `step`, undone by terminating and closing it.
    pub(crate) async fn create_system(
        &self,
        rollback: &mut Rollback,
        step: &str,
        id: &str,
        document: &pane_hcs::schema::ComputeSystem,
    ) -> Result<(), RuntimeError> {
        let compute = Arc::clone(&self.compute);
        let undo_id = id.to_owned();
        rollback
            .step(
                step,
                async { Ok(self.compute.create(id, document).await?) },
                move || async move {
                    // Terminate may find it never started or already gone; close removes it.
                    let _ = compute.terminate(&undo_id).await;
                    compute.close(&undo_id).await;
                    Ok(())
                },
            )
            .await
    }

    /// Starts the system and launches the workload; its exit is watched through events.
    pub async fn start(
        &self,
        id: &ContainerId,
        spec: &ServiceSpec,
        image: &ImageFacts,
    ) -> Result<(), RuntimeError> {
        let mut record = self.records.load(id)?;
        match record.phase {
            Phase::Created => {}
            // As `docker start` of a stopped container: the same command again, over the
            // same scratch layer.
            Phase::Exited { .. } => self.recreate_system(&record).await?,
            _ => {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    operation: "start",
                    state: format!("{:?}", record.phase),
                });
            }
        }
        let parameters = init_process(spec, image)?;
        if record.isolation == Some(Isolation::Hyperv) {
            return self.hyperv_start(&mut record, parameters).await;
        }
        let system = id.to_string();
        // Created by another pane process (`pane create`, then `pane start`): open it here.
        self.compute.open(&system).await?;
        let events = self.compute.events(&system)?;
        let writer = self.log_writer(id)?;
        self.compute.start(&system).await?;
        let mut process = match self.compute.create_process(&system, &parameters).await {
            Ok(process) => process,
            Err(e) => {
                let _ = self.compute.terminate(&system).await;
                return Err(e.into());
            }
        };
        let output = spawn_log_pumps(process.stdout.take(), process.stderr.take(), &writer);
        record.phase = Phase::Running;
        record.started_at = Some(Utc::now());
        record.resources.init_pid = Some(process.pid);
        self.records.save(&record)?;
        self.watch_exit(id, host_workload_exit(events, process.pid), output, system);
        drop(process);
        Ok(())
    }

    /// Creates an exited container's silo again from the document it was created with (the
    /// old one ended with its workload).
    async fn recreate_system(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        if record.isolation == Some(Isolation::Hyperv) {
            return Err(RuntimeError::Unsupported {
                operation: "restarting a Hyper-V container",
                reason: format!(
                    "the utility VM of {} ended with its workload; remove the container and \
                     create it again",
                    record.id
                ),
            });
        }
        let document = record
            .documents
            .iter()
            .find(|(name, _)| name == "container")
            .and_then(|(_, document)| serde_json::from_value(document.clone()).ok())
            .ok_or_else(|| RuntimeError::State {
                path: record.id.to_string(),
                reason: "its record keeps no container document to start it again from".into(),
            })?;
        let system = record.id.to_string();
        let _ = self.compute.open(&system).await;
        let _ = self.compute.terminate(&system).await;
        self.compute.close(&system).await;
        Ok(self.compute.create(&system, &document).await?)
    }

    /// Publishes the container's outcome when its workload (or the whole system) exits.
    pub(crate) fn watch_exit(
        &self,
        id: &ContainerId,
        exit: WorkloadExit,
        output: Vec<tokio::task::JoinHandle<()>>,
        system: String,
    ) {
        let (publish, outcome) = watch::channel(None);
        if let Ok(mut exits) = self.exits.lock() {
            exits.insert(id.clone(), outcome);
        }
        let records = self.records.clone();
        let compute = Arc::clone(&self.compute);
        let logs = Arc::clone(&self.logs);
        let id = id.clone();
        tokio::spawn(async move {
            let workload_exit = exit.await;
            // Logs read after a wait hold everything the workload wrote.
            for pump in output {
                let _ = tokio::time::timeout(OUTPUT_DRAIN, pump).await;
            }
            // Nothing writes to the log after the workload: close it, so another pane
            // process can remove the folder (Windows refuses to delete an open file).
            if workload_exit.is_some()
                && let Ok(mut logs) = logs.lock()
            {
                logs.remove(&id);
            }
            // Only a running record becomes exited: a removal in progress keeps its phase, and
            // a record already exited (by the pane that holds the workload) gives its code.
            let recorded = records.update(&id, Durability::Relaxed, |record| {
                if record.phase != Phase::Running {
                    return false;
                }
                record.phase = Phase::Exited {
                    code: workload_exit.unwrap_or(WaitOutcome::LOST_EXIT_CODE),
                };
                record.finished_at = Some(Utc::now());
                true
            });
            let outcome = match (workload_exit, recorded) {
                (Some(code), _) => WaitOutcome::exited(code, Utc::now()),
                (None, Ok(Some(record))) => match record.phase {
                    Phase::Exited { code } if code != WaitOutcome::LOST_EXIT_CODE => {
                        WaitOutcome::exited(code, record.finished_at.unwrap_or_else(Utc::now))
                    }
                    _ => WaitOutcome::runtime_error(Utc::now()),
                },
                (None, _) => WaitOutcome::runtime_error(Utc::now()),
            };
            let _ = publish.send(Some(outcome));
            if workload_exit.is_some() {
                // As containerd's shim does: once the workload is gone its silo (or utility
                // VM) goes too, so an exited container holds nothing but its scratch layer.
                let _ = compute.terminate(&system).await;
            }
        });
    }

    /// Waits for the workload to end.
    pub async fn wait(&self, id: &ContainerId) -> Result<WaitOutcome, RuntimeError> {
        let receiver = self
            .exits
            .lock()
            .ok()
            .and_then(|exits| exits.get(id).cloned());
        let Some(mut receiver) = receiver else {
            let record = self.records.load(id)?;
            return match record.phase {
                Phase::Exited { code } => Ok(WaitOutcome {
                    exit_code: code,
                    reason: WaitReason::Exited,
                    signal: None,
                    finished_at: record.finished_at,
                }),
                phase => Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    operation: "wait for",
                    state: format!("{phase:?}"),
                }),
            };
        };
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RuntimeError::Host {
                step: "wait".into(),
                hresult: None,
                message: "the exit watcher stopped".into(),
            })?
            .clone();
        outcome.ok_or_else(|| RuntimeError::Host {
            step: "wait".into(),
            hresult: None,
            message: "no outcome".into(),
        })
    }

    /// Graceful shutdown, then terminate if the workload is still there after `timeout`.
    pub async fn stop(
        &self,
        id: &ContainerId,
        timeout: Duration,
    ) -> Result<WaitOutcome, RuntimeError> {
        let record = self.records.load(id)?;
        let grace = timeout.max(Duration::from_secs(1));
        // Hyper-V: the container's own shutdown in the guest, and the VM as the last resort.
        let system = systems_of(&record).remove(0);
        let graceful = if record.isolation == Some(Isolation::Hyperv) {
            self.hyperv_shutdown(&record, grace).await
        } else {
            self.compute
                .shutdown(&system, grace)
                .await
                .map_err(RuntimeError::from)
        };
        let waited = tokio::time::timeout(timeout, self.wait(id)).await;
        let (signal, outcome) = if let (Ok(()), Ok(outcome)) = (graceful, waited) {
            ("SIGTERM", outcome?)
        } else {
            let _ = self.compute.terminate(&system).await;
            ("SIGKILL", self.wait(id).await?)
        };
        Ok(WaitOutcome {
            reason: WaitReason::Signal,
            signal: Some(signal.to_owned()),
            ..outcome
        })
    }

    /// Delivers `signal` to the workload: SIGTERM and SIGINT become the console events
    /// `CtrlShutdown` and `CtrlC`; SIGKILL terminates it.
    pub async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        let record = self.records.load(id)?;
        let pid = match (&record.phase, record.resources.init_pid) {
            (Phase::Running, Some(pid)) => pid,
            (phase, _) => {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    operation: "kill",
                    state: format!("{phase:?}"),
                });
            }
        };
        if record.isolation == Some(Isolation::Hyperv) {
            return self.hyperv_kill(id, pid, signal).await;
        }
        let console_event = match signal {
            Signal::Term => Some("CtrlShutdown"),
            Signal::Int => Some("CtrlC"),
            Signal::Kill => None,
        };
        Ok(self
            .compute
            .signal_process(&id.to_string(), pid, console_event)
            .await?)
    }

    /// Runs a command in the running container; the stream carries its output and ends with
    /// exactly one exit.
    pub async fn exec(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
    ) -> Result<ExecEventStream, RuntimeError> {
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
        let parameters = ProcessParameters {
            command_line: pane_hcs::command_line::join(&options.command),
            environment: options.env.iter().cloned().collect(),
            working_directory: options.working_dir.clone(),
            user: options.user.clone(),
            emulate_console: options.tty,
            create_std_in_pipe: options.stdin.is_some(),
            create_std_out_pipe: true,
            create_std_err_pipe: !options.tty,
            ..ProcessParameters::default()
        };
        let writer = self.log_writer(id)?;
        let (pipes, exit) = if record.isolation == Some(Isolation::Hyperv) {
            self.hyperv_exec(id, parameters).await?
        } else {
            let system = id.to_string();
            let events = self.compute.events(&system)?;
            let process = self.compute.create_process(&system, &parameters).await?;
            let exit = host_workload_exit(events, process.pid);
            (crate::hyperv::ProcessPipes::from(process), exit)
        };
        if let (Some(bytes), Some(mut input)) = (options.stdin.clone(), pipes.stdin) {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                // A command that exits without reading all of it closes the pipe: fine.
                let _ = input.write_all(&bytes).await;
                let _ = input.shutdown().await;
            });
        }
        let (stdout, stderr) = (pipes.stdout, pipes.stderr);
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
        let out = stdout.map(|reader| pump(reader, LogStream::Stdout, ExecEvent::Stdout));
        let err = stderr.map(|reader| pump(reader, LogStream::Stderr, ExecEvent::Stderr));
        tokio::spawn(async move {
            let code = exit.await.unwrap_or(WaitOutcome::LOST_EXIT_CODE);
            // All output first, then the exit, so the stream's order is the process's.
            for pump in [out, err].into_iter().flatten() {
                let _ = pump.await;
            }
            let _ = sender.send(ExecEvent::Exit(code));
        });
        Ok(Box::pin(Events(receiver)))
    }

    /// After a restart: adopts running containers it has records for (their exits are
    /// watched again), finishes the cleanup of creates and removes that were interrupted,
    /// and terminates compute systems carrying this owner tag that no record knows.
    pub async fn reconcile(&self) -> Result<Reconciled, RuntimeError> {
        let mut report = Reconciled::default();
        let owned: Vec<String> = self
            .compute
            .enumerate(&self.layout.owner)
            .await?
            .into_iter()
            .filter_map(|p| p.id)
            .collect();
        let records = self.records.list()?;
        for record in &records {
            let exists = systems_of(record).iter().any(|s| owned.contains(s));
            let hyperv = record.isolation == Some(Isolation::Hyperv);
            match (&record.phase, exists, record.resources.init_pid) {
                (Phase::Running, true, Some(pid)) if !hyperv => {
                    self.watch_again(&record.id, pid).await?;
                    report.adopted.push(record.id.clone());
                }
                (Phase::Running, true, _) => {
                    // The guest connection died with the pane that held it and a guest
                    // agent takes one connection per boot: nothing could collect the
                    // workload's exit or stop it cleanly, so the VM is ended now.
                    self.end_systems(record).await;
                    self.records.update(&record.id, Durability::Synced, |r| {
                        r.phase = Phase::Exited {
                            code: WaitOutcome::LOST_EXIT_CODE,
                        };
                        r.finished_at = Some(Utc::now());
                        true
                    })?;
                    report.lost.push(record.id.clone());
                }
                (Phase::Creating | Phase::Removing | Phase::Failed { .. }, _, _) => {
                    self.release(record).await?;
                    self.records.remove(&record.id)?;
                    report.cleaned.push(record.id.clone());
                }
                (Phase::Running, false, _) => {
                    let mut lost = record.clone();
                    lost.phase = Phase::Exited {
                        code: WaitOutcome::LOST_EXIT_CODE,
                    };
                    lost.finished_at = Some(Utc::now());
                    self.records.save(&lost)?;
                    report.lost.push(record.id.clone());
                }
                _ => {}
            }
        }
        for system in owned {
            let known = records.iter().any(|r| systems_of(r).contains(&system));
            if !known {
                let _ = self.compute.open(&system).await;
                let _ = self.compute.terminate(&system).await;
                self.compute.close(&system).await;
                report.orphans.push(system);
            }
        }
        Ok(report)
    }

    /// Watches a running container that another pane process started: opens its compute
    /// system and waits for its workload's exit, so `wait`, `stop` and `kill` work from here.
    /// Its output keeps flowing into the log from the process that holds the pipes.
    pub async fn attach(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let known = self.exits.lock().is_ok_and(|exits| exits.contains_key(id));
        if known {
            return Ok(());
        }
        let record = self.records.load(id)?;
        match (&record.phase, record.resources.init_pid) {
            (Phase::Running, Some(pid)) => self.watch_again(id, pid).await,
            _ => Ok(()),
        }
    }

    async fn watch_again(&self, id: &ContainerId, pid: u32) -> Result<(), RuntimeError> {
        let record = self.records.load(id)?;
        if record.isolation == Some(Isolation::Hyperv) {
            // The workload lives in the guest; from here only the VM's end can be seen, and
            // the exit code is the one the holder of the guest connection records.
            let vm = systems_of(&record).remove(0);
            self.compute.open(&vm).await?;
            let events = self.compute.events(&vm)?;
            self.watch_exit(id, host_system_exit(events), Vec::new(), vm);
            return Ok(());
        }
        let system = id.to_string();
        self.compute.open(&system).await?;
        let events = self.compute.events(&system)?;
        // A workload that has already gone cannot be opened; the system's exit then ends
        // the wait, with the code its starter recorded.
        let exit = match self.compute.open_process(&system, pid).await {
            Ok(()) => host_workload_exit(events, pid),
            Err(e) => {
                tracing::debug!(%id, error = %e, "the workload is not there to watch");
                host_system_exit(events)
            }
        };
        // The workload's pipes belong to the process that started it; the log keeps what
        // that process copied.
        self.watch_exit(id, exit, Vec::new(), system);
        Ok(())
    }

    /// Takes away whatever a record says may exist; absent pieces are fine.
    async fn release(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        self.end_systems(record).await;
        self.release_networks(record).await?;
        if let Some(scratch) = &record.resources.scratch {
            self.layers.deactivate(scratch).await?;
            self.layers.destroy(scratch).await?;
        }
        self.remove_folder(&record.id).await
    }

    /// Terminates and lets go of the compute systems a record says may exist. This process
    /// may hold no handle yet, and a system that is gone already is fine.
    async fn end_systems(&self, record: &ContainerRecord) {
        for system in systems_of(record) {
            let _ = self.compute.open(&system).await;
            let _ = self.compute.terminate(&system).await;
            self.compute.close(&system).await;
        }
    }

    /// The container's folder (its log; the scratch layer is already destroyed by then).
    async fn remove_folder(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let folder = self.folder(id);
        let mut attempt = 0;
        loop {
            match tokio::fs::remove_dir_all(&folder).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                // On Windows a file another process still has open (the log, while the
                // supervisor of a just-terminated workload winds down) cannot be deleted
                // yet; it is released within moments.
                Err(_) if attempt < FOLDER_REMOVE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50) * attempt).await;
                }
                Err(e) => {
                    return Err(RuntimeError::State {
                        path: folder.display().to_string(),
                        reason: format!("cannot remove the container folder: {e}"),
                    });
                }
            }
        }
    }

    /// Removes the container and everything it holds on the host. A running container is
    /// refused unless `force`.
    pub async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), RuntimeError> {
        let mut record = self.records.load(id)?;
        if record.phase == Phase::Running && !force {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                operation: "remove",
                state: "running".into(),
            });
        }
        record.phase = Phase::Removing;
        // Relaxed: if this is lost in a crash, the record keeps its old phase and still lists
        // everything the container holds, so the remove can simply be run again.
        self.records.write(&record, Durability::Relaxed)?;
        self.forget_guest(id);
        self.end_systems(&record).await;
        self.release_networks(&record).await?;
        if let Some(scratch) = &record.resources.scratch {
            if record.resources.scratch_activated {
                self.layers.deactivate(scratch).await?;
            }
            self.layers.destroy(scratch).await?;
        }
        if let Ok(mut exits) = self.exits.lock() {
            exits.remove(id);
        }
        if let Ok(mut logs) = self.logs.lock() {
            logs.remove(id);
        }
        self.remove_folder(id).await?;
        self.records.remove(id)
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
