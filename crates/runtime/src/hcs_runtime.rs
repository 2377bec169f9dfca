//! [`HcsRuntime`]: the [`Runtime`] an orchestrator embeds. It joins the image service
//! (pull policy, layer chains) to the container lifecycle over the backend seams, and
//! answers state, inspect, list and stats from the records pane keeps.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use pane_oci::credentials::CredentialSource;
use pane_spec::{ImageReference, OsVersion, PullPolicy, ServiceSpec};

use crate::backend::{Compute, Layers};
use crate::error::{Result, RuntimeError};
use crate::id::ContainerId;
use crate::images::{ImageService, ImageSettings};
use crate::isolation::{Isolation, decide_isolation};
use crate::lifecycle::{ContainerLifecycle, Layout, Reconciled};
use crate::records::state::{ContainerState, WaitOutcome};
use crate::records::{ContainerRecord, Phase, RecordStore, phase_state};
use crate::runtime::Runtime;
use crate::signal::Signal;
use crate::types::{
    ContainerInspect, ContainerStats, ContainerSummary, ExecEventStream, ExecOptions, ImageInfo,
    LogEntry, LogOptions, PruneResult, RegistryAuth,
};

/// Where pane keeps its state and how it names itself on the host.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `--root`: images, layers, container records and logs live under it.
    pub root: std::path::PathBuf,
    /// The owner tag of every compute system this instance creates (the daemon name), so
    /// several instances on one host leave each other's containers alone.
    pub owner: String,
    pub host_build: Option<OsVersion>,
    pub host_processors: u32,
    pub images: ImageSettings,
}

pub struct HcsRuntime {
    images: ImageService,
    containers: ContainerLifecycle,
    records: RecordStore,
    compute: Arc<dyn Compute>,
    host_build: Option<OsVersion>,
}

impl std::fmt::Debug for HcsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HcsRuntime")
            .field("images", &self.images)
            .field("containers", &self.containers)
            .finish_non_exhaustive()
    }
}

impl HcsRuntime {
    /// A runtime over `compute` and `layers` with its state under `settings.root`. Call
    /// [`HcsRuntime::reconcile`] once before serving, so containers from an earlier run are
    /// adopted or cleaned up.
    pub fn new(
        compute: Arc<dyn Compute>,
        layers: Arc<dyn Layers>,
        settings: RuntimeSettings,
    ) -> Result<Self> {
        let records = RecordStore::open(&settings.root)?;
        let layout = Layout {
            containers: settings.root.join("containers"),
            owner: settings.owner,
            host_processors: settings.host_processors,
        };
        Ok(Self {
            images: ImageService::open(&settings.root, settings.images)?,
            containers: ContainerLifecycle::new(
                Arc::clone(&compute),
                layers,
                records.clone(),
                layout,
            ),
            records,
            compute,
            host_build: settings.host_build,
        })
    }

    /// Joins containers to the networks their specs name through `network`.
    #[must_use]
    pub fn with_network(mut self, network: Arc<dyn crate::backend::Network>) -> Self {
        self.containers = self.containers.with_network(network);
        self
    }

    /// Lets containers join the CNI networks `cni` configures; their namespaces are
    /// made through the network backend ([`HcsRuntime::with_network`]).
    #[must_use]
    pub fn with_cni(mut self, cni: Arc<crate::networking::cni::CniNetworks>) -> Self {
        self.containers = self.containers.with_cni(cni);
        self
    }

    /// The CNI networks, when the runtime has them.
    pub fn cni(&self) -> Option<&crate::networking::cni::CniNetworks> {
        self.containers.cni()
    }

    /// Asks for `address` on the next create of `id`, from the network that hands out
    /// addresses (CNI's `ips` capability; `host-local` over the node slice honours it).
    pub fn request_address(&self, id: &ContainerId, address: IpAddr) {
        self.containers.request_address(id, address);
    }

    /// Enables Hyper-V isolation: utility VMs' guests are reached through `connector`.
    #[must_use]
    pub fn with_guest_connector(
        mut self,
        connector: Arc<dyn crate::backend::GuestConnector>,
    ) -> Self {
        self.containers = self.containers.with_guest_connector(connector);
        self
    }

    /// Reconcile leaves running containers that `holders` says are held elsewhere.
    #[must_use]
    pub fn with_holders(mut self, holders: Arc<dyn crate::types::Holders>) -> Self {
        self.containers = self.containers.with_holders(holders);
        self
    }

    pub fn images(&self) -> &ImageService {
        &self.images
    }

    /// An exec whose input is written while it runs, with a console when `options.tty`
    /// (see [`ContainerLifecycle::exec_session`]).
    pub async fn exec_session(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        input: bool,
    ) -> Result<crate::types::ExecSession> {
        self.containers.attach(id).await?;
        self.containers.exec_session(id, options, input).await
    }

    /// The running workload's stdio, from the process that started it.
    pub fn attachment(&self, id: &ContainerId) -> Result<crate::workload_io::WorkloadAttachment> {
        self.containers.attachment(id)
    }

    /// The folder of the container's log files, for following them (`pane logs -f`).
    pub fn log_dir(&self, id: &ContainerId) -> std::path::PathBuf {
        self.containers.log_dir(id)
    }

    /// Adopts running containers of an earlier run, finishes interrupted creates and
    /// removes, and terminates this owner's compute systems that no record knows.
    pub async fn reconcile(&self) -> Result<Reconciled> {
        self.containers.reconcile().await
    }

    fn record(&self, id: &ContainerId) -> Result<ContainerRecord> {
        self.records.load(id)
    }

    /// The spec and image a container was created from.
    async fn origin(
        &self,
        record: &ContainerRecord,
    ) -> Result<(ServiceSpec, pane_oci::ImageFacts)> {
        let spec = record.spec()?;
        let manifest = record
            .image_manifest
            .as_deref()
            .ok_or_else(|| RuntimeError::State {
                path: record.id.to_string(),
                reason: "its record names no image manifest".into(),
            })?;
        let image = self
            .images
            .facts_of(&spec.image.name.to_string(), manifest)
            .await?;
        Ok((spec, image))
    }

    /// Pulls as the spec says, decides isolation, resolves the layer chain and creates.
    async fn create(&self, id: &ContainerId, spec: &ServiceSpec) -> Result<()> {
        if self.records.load(id).is_ok() {
            return Err(RuntimeError::AlreadyExists { id: id.to_string() });
        }
        refuse_networking(spec)?;
        let credentials = CredentialSource::from_spec(spec.image.auth.as_ref()).map_err(|e| {
            RuntimeError::invalid(
                "image.auth",
                e.to_string(),
                "export the variable before creating the container",
            )
        })?;
        let image = self
            .images
            .ensure(&spec.image.name, spec.image.pull_policy, Some(credentials))
            .await?;
        let decision = decide_isolation(
            spec.isolation,
            parse_build(image.os_version.as_deref()).as_ref(),
            self.host_build.as_ref(),
        );
        if decision.isolation == Isolation::Hyperv && spec.resources.gpu.is_some() {
            return Err(crate::error::hyperv_gpu_refusal(decision));
        }
        tracing::info!(%id, %decision, "isolation decided");
        let chain = self.images.chain(&image).await?;
        self.containers
            .create_isolated(id, spec, &image, &chain, decision.isolation)
            .await
    }

    /// Containers' `(reference, manifest)`, so their images are kept.
    fn images_in_use(&self) -> Result<Vec<(String, String)>> {
        self.records.images_in_use()
    }
}

/// Ports are published through a network endpoint, so a spec with `ports` must join one;
/// refused rather than run without the ports it expects.
fn refuse_networking(spec: &ServiceSpec) -> Result<()> {
    if spec.ports.is_empty() || !spec.networks.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::invalid(
        "ports",
        "publishes ports but the container joins no network",
        "add `networks: [nat]` (the host's NAT network) to the spec",
    ))
}

fn parse_build(text: Option<&str>) -> Option<OsVersion> {
    text.and_then(|t| t.parse().ok())
}

#[async_trait]
impl Runtime for HcsRuntime {
    async fn pull_image_with_policy(
        &self,
        image: &ImageReference,
        policy: PullPolicy,
        auth: Option<&RegistryAuth>,
    ) -> Result<ImageInfo> {
        let credentials = auth.map(|auth| CredentialSource {
            inline: Some(auth.into()),
            docker_config: None,
            environment: None,
        });
        let facts = self.images.ensure(image, policy, credentials).await?;
        let size = self
            .images
            .content()
            .image(&facts.reference)
            .map(|record| self.images.content().image_size(&record))
            .unwrap_or_default();
        Ok(ImageInfo {
            reference: facts.reference,
            digest: facts.manifest_digest,
            size_bytes: size,
            os_version: facts.os_version,
        })
    }

    async fn create_container(&self, id: &ContainerId, spec: &ServiceSpec) -> Result<()> {
        use tracing::Instrument as _;
        self.create(id, spec)
            .instrument(tracing::info_span!("container.create", %id))
            .await
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let record = self.record(id)?;
        let (spec, image) = self.origin(&record).await?;
        self.containers.start(id, &spec, &image).await
    }

    async fn stop_container(&self, id: &ContainerId, timeout: Duration) -> Result<()> {
        let record = self.record(id)?;
        if record.phase != Phase::Running {
            // Stopping a container that is not running is a no-op, as in Docker.
            return Ok(());
        }
        self.containers.attach(id).await?;
        self.containers.stop(id, timeout).await.map(drop)
    }

    async fn kill_container(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        self.containers.attach(id).await?;
        self.containers.kill(id, signal).await
    }

    async fn remove_container(&self, id: &ContainerId, force: bool) -> Result<()> {
        self.containers.remove(id, force).await
    }

    async fn container_state(&self, id: &ContainerId) -> Result<ContainerState> {
        Ok(phase_state(&self.record(id)?.phase))
    }

    async fn container_logs(
        &self,
        id: &ContainerId,
        options: &LogOptions,
    ) -> Result<Vec<LogEntry>> {
        self.containers.logs(id, options)
    }

    async fn exec_stream(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
    ) -> Result<ExecEventStream> {
        self.containers.attach(id).await?;
        self.containers.exec(id, options).await
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let record = self.record(id)?;
        if record.phase != Phase::Running {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                operation: "read statistics of",
                state: phase_state(&record.phase).to_string(),
            });
        }
        self.containers.attach(id).await?;
        // A Hyper-V container is measured as its utility VM, which holds only it.
        let system = match (&record.isolation, &record.resources.utility_vm) {
            (Some(Isolation::Hyperv), Some(vm)) => vm.clone(),
            _ => id.to_string(),
        };
        let statistics = self.compute.statistics(&system).await?;
        Ok(ContainerStats {
            cpu_usage_usec: statistics.cpu_usage_usec(),
            memory_bytes: statistics.private_working_set_bytes(),
            memory_limit_bytes: record
                .spec()?
                .resources
                .memory
                .map(pane_spec::MemorySize::bytes),
            timestamp: Utc::now(),
        })
    }

    async fn wait_outcome(&self, id: &ContainerId) -> Result<WaitOutcome> {
        self.containers.attach(id).await?;
        self.containers.wait(id).await
    }

    async fn inspect_container(&self, id: &ContainerId) -> Result<ContainerInspect> {
        let record = self.record(id)?;
        let exit_code = match record.phase {
            Phase::Exited { code } => Some(code),
            _ => None,
        };
        Ok(ContainerInspect {
            spec: record.spec()?,
            state: phase_state(&record.phase),
            image_manifest: record.image_manifest,
            isolation: record.isolation,
            ip: record.resources.ip,
            ports: record.resources.ports.clone(),
            networks: record.resources.attachments.clone(),
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            exit_code,
            documents: record.documents,
            id: record.id,
        })
    }

    async fn container_ip(&self, id: &ContainerId) -> Result<Option<IpAddr>> {
        Ok(self.record(id)?.resources.ip)
    }

    async fn container_namespace_id(&self, id: &ContainerId) -> Result<Option<uuid::Uuid>> {
        Ok(self
            .record(id)?
            .resources
            .network_namespace
            .as_deref()
            .and_then(|ns| uuid::Uuid::parse_str(ns).ok()))
    }

    async fn container_pid(&self, id: &ContainerId) -> Result<Option<u32>> {
        let record = self.record(id)?;
        // Under Hyper-V the workload is a process in the guest: the host has no pid.
        if record.isolation == Some(Isolation::Hyperv) || record.phase != Phase::Running {
            return Ok(None);
        }
        Ok(record.resources.init_pid)
    }

    async fn list_containers(&self) -> Result<Vec<ContainerSummary>> {
        let mut summaries: Vec<ContainerSummary> = self
            .records
            .list()?
            .into_iter()
            .map(|record| ContainerSummary {
                image: record
                    .spec
                    .get("image")
                    .and_then(|i| i.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                state: phase_state(&record.phase),
                created_at: record.created_at,
                id: record.id,
            })
            .collect();
        summaries.sort_by_key(|s| s.created_at);
        Ok(summaries)
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let content = self.images.content();
        let records = content.images().map_err(|e| RuntimeError::State {
            path: "content store".into(),
            reason: e.to_string(),
        })?;
        Ok(records
            .into_iter()
            .map(|record| ImageInfo {
                size_bytes: content.image_size(&record),
                reference: record.reference,
                digest: record.manifest,
                os_version: record.os_version,
            })
            .collect())
    }

    async fn remove_image(&self, image: &ImageReference, force: bool) -> Result<()> {
        let reference = image.to_string();
        let content = self.images.content();
        let record = content
            .image(&reference)
            .map_err(|_| RuntimeError::ImageNotFound {
                image: reference.clone(),
            })?;
        let users: Vec<String> = self
            .records
            .list()?
            .into_iter()
            .filter(|r| r.image_manifest.as_deref() == Some(record.manifest.as_str()))
            .map(|r| r.id.to_string())
            .collect();
        if !users.is_empty() && !force {
            return Err(RuntimeError::WrongState {
                id: users.join(", "),
                operation: "remove the image of",
                state: format!("using {reference} (remove the containers, or force)"),
            });
        }
        content
            .untag(&reference)
            .await
            .map_err(|e| RuntimeError::State {
                path: "content store".into(),
                reason: e.to_string(),
            })?;
        self.images.prune(&self.images_in_use()?).await.map(drop)
    }

    async fn tag_image(&self, source: &ImageReference, target: &ImageReference) -> Result<()> {
        self.images
            .content()
            .tag(&source.to_string(), &target.to_string())
            .await
            .map_err(|_| RuntimeError::ImageNotFound {
                image: source.to_string(),
            })
    }

    async fn prune_images(&self) -> Result<PruneResult> {
        let pruned = self.images.prune(&self.images_in_use()?).await?.content;
        Ok(PruneResult {
            deleted: pruned.blobs,
            space_reclaimed: pruned.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_without_a_network_are_refused_with_the_fix() {
        let image = "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n";
        let plain = pane_spec::parse_service(image).unwrap();
        assert!(refuse_networking(&plain).is_ok());
        let ports = pane_spec::parse_service(&format!("{image}ports: [\"8080:80\"]\n")).unwrap();
        let refused = refuse_networking(&ports).unwrap_err().to_string();
        assert!(
            refused.contains("invalid ports") && refused.contains("networks: [nat]"),
            "{refused}"
        );
        let published =
            pane_spec::parse_service(&format!("{image}ports: [\"8080:80\"]\nnetworks: [nat]\n"))
                .unwrap();
        assert!(refuse_networking(&published).is_ok());
    }
}
