//! Container records: what pane knows about each container, written atomically under
//! `<root>/containers/` *before* each step that creates something on the host, so a crash
//! at any point leaves a record saying what may exist and needs adopting or cleaning up.
//!
//! [`state`] holds where a container is in its life (the record's [`Phase`], and the
//! [`ContainerState`] the `Runtime` contract reports from it);
//! [`lock`] the per-container lock every pane process sharing the root takes before it
//! changes a record and what it names on the host.

pub mod lock;
pub mod state;

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::id::ContainerId;
use crate::isolation::Isolation;

pub use lock::{ContainerLock, ContainerLocks};
pub use state::{ContainerState, Phase, WaitOutcome, WaitReason, phase_state};

/// What exists on the host for a container, so it can be found again or released.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility_vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<PathBuf>,
    #[serde(default)]
    pub scratch_activated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_namespace: Option<String>,
    /// HCN endpoint ids, one per network joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Container ports published on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::backend::PublishedPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Each network joined, in the spec's order: named before it is attached (so a
    /// crash leaves a record of what to detach), filled in once it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NetworkAttachment>,
    /// The address the orchestrator asked for (the CNI `ips` capability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_ip: Option<IpAddr>,
    /// The workload's process id, so a restarted pane can watch it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<u32>,
}

/// How a container joins a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// An existing HCN network: pane makes the endpoint.
    Hcn,
    /// A CNI configuration list: its plugins make the endpoints (ADD), and take them
    /// away (DEL).
    Cni,
}

/// One network a container joined, as `pane inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    pub kind: AttachmentKind,
    /// The interface name handed to CNI (`CNI_IFNAME`).
    pub interface: String,
    /// `CNI_NETNS`: the HCN namespace GUID on Windows, a namespace path on Linux.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_CONTAINERID`: the container's namespace GUID, not its name. Plugins key
    /// host-wide state by it (win-bridge's endpoint name, host-local's allocations,
    /// portmap's chains), and two pane instances on one host may both have a `web-1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cni_container_id: String,
    /// Addresses in CIDR form (`10.200.3.2/24`), or bare for an HCN endpoint without
    /// a prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl NetworkAttachment {
    /// The first address, without its prefix.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ips
            .iter()
            .find_map(|a| a.split('/').next()?.parse().ok())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: ContainerId,
    /// The owner tag (daemon name) of its compute systems.
    pub owner: String,
    #[serde(flatten)]
    pub phase: Phase,
    /// The service spec as JSON; [`ContainerRecord::spec`] validates it again on load.
    pub spec: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_manifest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    #[serde(default)]
    pub resources: HostResources,
    /// The HCS documents sent, by name, for `inspect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<(String, serde_json::Value)>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl ContainerRecord {
    pub fn new(id: ContainerId, owner: &str, spec: &pane_spec::ServiceSpec) -> Self {
        Self {
            id,
            owner: owner.to_owned(),
            phase: Phase::Creating,
            spec: serde_json::to_value(spec).unwrap_or(serde_json::Value::Null),
            image_manifest: None,
            isolation: None,
            resources: HostResources::default(),
            documents: Vec::new(),
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        }
    }

    /// The spec, validated again (a record written by another pane version may not parse).
    pub fn spec(&self) -> Result<pane_spec::ServiceSpec, RuntimeError> {
        pane_spec::parse_service(&self.spec.to_string()).map_err(|e| RuntimeError::State {
            path: self.id.to_string(),
            reason: format!("its recorded spec no longer validates: {e}"),
        })
    }
}

/// Whether a write must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to disk before returning: for every record written before a step that
    /// creates something on the host.
    Synced,
    /// Atomic but left to the page cache: for facts a restart can re-derive, such as an exit
    /// code (lost, the container is reported as lost, which reconcile does anyway).
    Relaxed,
}

/// The records directory. Clones share one lock, so an update (load, change, save) and a
/// removal of the same record never interleave within a process.
#[derive(Debug, Clone)]
pub struct RecordStore {
    dir: PathBuf,
    lock: std::sync::Arc<std::sync::Mutex<()>>,
}

fn state_error(path: &Path, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::State {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl RecordStore {
    pub fn open(root: &Path) -> Result<Self, RuntimeError> {
        // The root is made private before anything is created in it (see pane_oci's
        // `secure_root`): container records name layers and commands that others must not
        // plant.
        pane_oci::store::secure_root(root).map_err(|e| state_error(root, e))?;
        let dir = root.join("containers");
        std::fs::create_dir_all(&dir).map_err(|e| state_error(&dir, e))?;
        Ok(Self {
            dir,
            lock: std::sync::Arc::default(),
        })
    }

    fn path(&self, id: &ContainerId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Write, fsync, rename, fsync the directory: after a crash the record is the old one or
    /// the new one, never a torn mix, and a saved record survives.
    pub fn save(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        self.write(record, Durability::Synced)
    }

    /// As [`RecordStore::save`], with the durability the caller needs.
    pub fn write(
        &self,
        record: &ContainerRecord,
        durability: Durability,
    ) -> Result<(), RuntimeError> {
        let path = self.path(&record.id);
        // Unique per writer, so two pane processes saving one record never share a file.
        let temporary = self.dir.join(format!(
            "{}.json.{}-{:?}.tmp",
            record.id,
            std::process::id(),
            std::thread::current().id()
        ));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| state_error(&path, e))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            if durability == Durability::Synced {
                file.sync_all()?;
            }
            // `pane ps` in another process may hold the record open (Windows then refuses
            // the rename for a moment).
            pane_oci::replace_file(&temporary, &path)?;
            #[cfg(unix)]
            if durability == Durability::Synced {
                std::fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| state_error(&path, e))
    }

    pub fn load(&self, id: &ContainerId) -> Result<ContainerRecord, RuntimeError> {
        let path = self.path(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound { id: id.to_string() });
            }
            Err(e) => return Err(state_error(&path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| state_error(&path, e))
    }

    /// Every record; temporary files of interrupted writes are ignored.
    /// The images containers were made from, as `(reference, manifest digest)`: what an
    /// image prune keeps and an image removal refuses (unless forced).
    pub fn images_in_use(&self) -> Result<Vec<(String, String)>, RuntimeError> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|r| {
                let reference = r.spec.get("image")?.get("name")?.as_str()?.to_owned();
                Some((reference, r.image_manifest?))
            })
            .collect())
    }

    pub fn list(&self) -> Result<Vec<ContainerRecord>, RuntimeError> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .map_err(|e| state_error(&self.dir, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|stem| stem.parse::<ContainerId>().ok())
            else {
                continue;
            };
            records.push(self.load(&id)?);
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Loads, changes and saves a record as one step; `change` returns whether to save. A
    /// record removed meanwhile stays removed (`Ok(None)`).
    pub fn update(
        &self,
        id: &ContainerId,
        durability: Durability,
        change: impl FnOnce(&mut ContainerRecord) -> bool,
    ) -> Result<Option<ContainerRecord>, RuntimeError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut record = match self.load(id) {
            Ok(record) => record,
            Err(RuntimeError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if change(&mut record) {
            self.write(&record, durability)?;
        }
        Ok(Some(record))
    }

    /// Forgets a container; removing an absent record is not an error.
    pub fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(state_error(&self.path(id), e));
            }
            _ => {}
        }
        // What writes of this record left when their process died between writing and
        // renaming (nothing else ever removes them).
        let prefix = format!("{id}.json.");
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&prefix) && name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> pane_spec::ServiceSpec {
        pane_spec::parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nresources: {cpu: 1.5, memory: 512Mi}\n")
            .unwrap()
    }

    #[test]
    fn records_round_trip_and_keep_the_spec_valid() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path()).unwrap();
        let mut record = ContainerRecord::new(ContainerId::new("web", 1), "pane", &spec());
        record.resources.scratch = Some(PathBuf::from(
            r"C:\ProgramData\pane\containers\web-1\scratch",
        ));
        record.isolation = Some(Isolation::Process);
        store.save(&record).unwrap();
        assert_eq!(store.load(&record.id).unwrap(), record);
        assert_eq!(store.load(&record.id).unwrap().spec().unwrap(), spec());

        record.phase = Phase::Exited { code: 3 };
        store.save(&record).unwrap();
        assert_eq!(
            store.load(&record.id).unwrap().phase,
            Phase::Exited { code: 3 }
        );
    }

    /// A record as pane wrote it before `Phase` moved to `records::state`: the file format
    /// is the contract with every record already on a host, so it must load unchanged.
    #[test]
    fn a_record_written_before_the_reorganisation_still_loads() {
        let written = r#"{
  "id": {"service": "web", "replica": 1},
  "owner": "pane",
  "phase": "exited",
  "code": 3,
  "spec": {"image": {"name": "mcr.microsoft.com/windows/nanoserver:ltsc2022"}},
  "image_manifest": "sha256:0123",
  "isolation": "hyperv",
  "resources": {
    "utility_vm": "web-1@vm",
    "scratch": "C:\\ProgramData\\pane\\containers\\web-1\\scratch",
    "scratch_activated": true,
    "network_namespace": "5f1ec0de-7a2b-4c3d-9e8f-0a1b2c3d4e5f",
    "ports": [{"container_port": 80, "host_port": 8080, "protocol": "tcp"}],
    "attachments": [{"network": "nat", "kind": "hcn", "interface": "eth0", "ips": ["10.0.0.2"]}],
    "init_pid": 4
  },
  "documents": [["utility_vm", {"Owner": "pane"}]],
  "created_at": "2026-01-02T03:04:05Z",
  "started_at": "2026-01-02T03:04:06Z",
  "finished_at": "2026-01-02T03:04:07Z"
}"#;
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("containers/web-1.json"), written).unwrap();
        let record = store.load(&ContainerId::new("web", 1)).unwrap();
        assert_eq!(record.phase, Phase::Exited { code: 3 });
        assert_eq!(
            phase_state(&record.phase),
            ContainerState::Exited { code: 3 }
        );
        assert_eq!(record.isolation, Some(Isolation::Hyperv));
        assert_eq!(record.resources.utility_vm.as_deref(), Some("web-1@vm"));
        assert_eq!(record.resources.attachments[0].kind, AttachmentKind::Hcn);
        assert_eq!(record.resources.init_pid, Some(4));
        // Written back, the phase keeps its flattened names.
        let saved = serde_json::to_value(&record).unwrap();
        assert_eq!(saved["phase"], "exited");
        assert_eq!(saved["code"], 3);
        for phase in ["creating", "created", "running", "removing"] {
            let text = written.replace(r#""phase": "exited","#, &format!(r#""phase": "{phase}","#));
            std::fs::write(dir.path().join("containers/web-1.json"), text).unwrap();
            let loaded = store.load(&ContainerId::new("web", 1)).unwrap();
            assert_eq!(serde_json::to_value(&loaded.phase).unwrap()["phase"], phase);
        }
        let failed = written.replace(r#""code": 3,"#, r#""reason": "the VM did not boot","#);
        let failed = failed.replace(r#""phase": "exited","#, r#""phase": "failed","#);
        std::fs::write(dir.path().join("containers/web-1.json"), failed).unwrap();
        assert_eq!(
            store.load(&ContainerId::new("web", 1)).unwrap().phase,
            Phase::Failed {
                reason: "the VM did not boot".into()
            }
        );
    }

    #[test]
    fn list_skips_interrupted_writes_and_remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path()).unwrap();
        for (service, replica) in [("web", 2), ("api", 1), ("web", 1)] {
            store
                .save(&ContainerRecord::new(
                    ContainerId::new(service, replica),
                    "pane",
                    &spec(),
                ))
                .unwrap();
        }
        std::fs::write(dir.path().join("containers/web-3.json.tmp"), b"{half").unwrap();
        let ids: Vec<String> = store
            .list()
            .unwrap()
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(ids, ["api-1", "web-1", "web-2"]);
        // A write of web-1 that died before its rename, and one of web-10, which stays.
        let interrupted = dir.path().join("containers/web-1.json.77-ThreadId(2).tmp");
        let other = dir.path().join("containers/web-10.json.77-ThreadId(2).tmp");
        std::fs::write(&interrupted, b"{half").unwrap();
        std::fs::write(&other, b"{half").unwrap();
        store.remove(&ContainerId::new("web", 1)).unwrap();
        store.remove(&ContainerId::new("web", 1)).unwrap();
        assert!(
            !interrupted.exists(),
            "removal takes the record's interrupted writes"
        );
        assert!(other.exists());
        assert!(matches!(
            store.load(&ContainerId::new("web", 1)),
            Err(RuntimeError::NotFound { .. })
        ));
    }
}
