//! The CNI networks a container can join: configuration lists found in pane's (and
//! optionally containerd's) configuration directories, the node slice filled into the
//! `host-local` IPAM of the networks that use it, and the plugin runs (ADD, DEL, GC) off
//! the async threads.
//!
//! A network "uses the slice" when a plugin's `ipam` says `"nodeSlice": true`, or when
//! the list is the owner's overlay network (`<owner>-overlay`, `pane-overlay` by default)
//! and its `host-local` IPAM names no range of its own. pane then hands the plugin a
//! `host-local` range over the slice, without the network address, the gateway (the
//! slice's first host) and the broadcast address, and keeps the allocations under
//! `<root>/cni/ipam`, so they survive a pane restart and are given back by DEL.
//!
//! A slice that changes while containers hold addresses from the old one: those
//! containers keep their addresses until they are removed (DEL runs with the
//! configuration cached at ADD, so it frees the old address in the old range), and new
//! containers get addresses from the new slice. `pane network inspect` shows the
//! addresses still held outside the current slice.
//!
//! What `pane network ls` and `inspect` show of the networks is in `inspect.rs`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pane_net::NodeSlice;
use pane_net::cni::{
    Attachment, AttachmentCache, CniClient, CniError, CniResult, DirScan, NetworkConfigList,
    PluginExec, scan_dir,
};
use pane_net::slice::NODE_SLICE_KEY;
use serde_json::{Map, Value};

use crate::error::RuntimeError;

mod inspect;

pub use inspect::{AttachmentSummary, CniNetworkDetail, CniNetworkSummary};

/// containerd's default configuration directory on Windows, read when asked
/// (`--cni-containerd`), after pane's own.
pub const CONTAINERD_CONF_DIR: &str = r"C:\Program Files\containerd\cni\conf";
/// containerd's default plugin directory on Windows.
pub const CONTAINERD_BIN_DIR: &str = r"C:\Program Files\containerd\cni\bin";

/// Where the CNI configuration and plugins are, and the node's slice.
#[derive(Debug, Clone)]
pub struct CniSettings {
    /// Searched in order; the first list of a name wins.
    pub conf_dirs: Vec<PathBuf>,
    /// `CNI_PATH`.
    pub bin_dirs: Vec<PathBuf>,
    pub node_slice: Option<NodeSlice>,
    pub plugin_timeout: Duration,
}

impl CniSettings {
    /// `<root>/cni/conf` and `<root>/cni/bin`, no slice, the default plugin timeout.
    pub fn under_root(root: &Path) -> Self {
        Self {
            conf_dirs: vec![root.join("cni").join("conf")],
            bin_dirs: vec![root.join("cni").join("bin")],
            node_slice: None,
            plugin_timeout: pane_net::cni::exec::DEFAULT_TIMEOUT,
        }
    }
}

/// The owner's overlay network: `<owner>-overlay` (`pane-overlay` for the default owner).
pub fn overlay_network_name(owner: &str) -> String {
    format!("{owner}-overlay")
}

/// A network ready for ADD: its list as the plugins get it.
#[derive(Debug, Clone)]
pub struct PreparedNetwork {
    pub list: NetworkConfigList,
    /// Its addresses come from the node slice.
    pub uses_slice: bool,
}

/// pane's CNI networks: configuration lookup, the node slice and the plugin runs.
#[derive(Debug, Clone)]
pub struct CniNetworks {
    client: CniClient,
    conf_dirs: Vec<PathBuf>,
    node_slice: Option<NodeSlice>,
    ipam_dir: PathBuf,
    overlay: String,
}

fn cni_failure(step: String) -> impl FnOnce(CniError) -> RuntimeError {
    move |e| RuntimeError::Host {
        step,
        hresult: None,
        message: e.to_string(),
    }
}

fn config_error(e: &pane_net::cni::ConfigError) -> RuntimeError {
    RuntimeError::invalid(
        if e.field.is_empty() {
            format!("CNI configuration {}", e.file.display())
        } else {
            format!("CNI configuration {} field `{}`", e.file.display(), e.field)
        },
        e.message.clone(),
        "fix the file, or move it out of the configuration directory",
    )
}

impl CniNetworks {
    /// The networks of `settings`, with the attachment cache under `<root>/cni/cache`
    /// and the slice's allocations under `<root>/cni/ipam`.
    pub fn open(root: &Path, owner: &str, settings: CniSettings) -> Self {
        let mut exec = PluginExec::new(settings.bin_dirs);
        exec.timeout = settings.plugin_timeout;
        let cache = AttachmentCache::new(root.join("cni").join("cache"));
        Self {
            client: CniClient::new(exec, cache),
            conf_dirs: settings.conf_dirs,
            node_slice: settings.node_slice,
            ipam_dir: root.join("cni").join("ipam"),
            overlay: overlay_network_name(owner),
        }
    }

    pub fn overlay_network(&self) -> &str {
        &self.overlay
    }

    pub fn node_slice(&self) -> Option<NodeSlice> {
        self.node_slice
    }

    pub fn conf_dirs(&self) -> &[PathBuf] {
        &self.conf_dirs
    }

    fn scans(&self) -> Result<Vec<DirScan>, RuntimeError> {
        self.conf_dirs
            .iter()
            .map(|dir| scan_dir(dir).map_err(|e| config_error(&e)))
            .collect()
    }

    /// The network named `name`, ready for ADD, or `None` when no configuration names
    /// it (it may then be an HCN network). A file that claims the name but cannot be
    /// used is an error naming the file and field.
    pub fn find(&self, name: &str) -> Result<Option<PreparedNetwork>, RuntimeError> {
        let scans = self.scans()?;
        for scan in &scans {
            match scan.find(name) {
                Ok(Some(list)) => {
                    let prepared = self.prepare(list)?;
                    if prepared.uses_slice {
                        Self::refuse_a_shared_slice(&scans, &prepared, |l| self.prepare(l))?;
                    }
                    return Ok(Some(prepared));
                }
                Ok(None) => {}
                Err(e) => return Err(config_error(e)),
            }
        }
        Ok(None)
    }

    /// host-local keeps each network's allocations apart (`dataDir/<network>`), so two
    /// networks over one slice would hand out the same address twice: only one network
    /// may take the slice.
    fn refuse_a_shared_slice(
        scans: &[DirScan],
        prepared: &PreparedNetwork,
        prepare: impl Fn(&NetworkConfigList) -> Result<PreparedNetwork, RuntimeError>,
    ) -> Result<(), RuntimeError> {
        let other = scans
            .iter()
            .flat_map(|scan| scan.lists.iter())
            .filter(|list| list.name != prepared.list.name)
            .find(|list| prepare(list).is_ok_and(|p| p.uses_slice));
        match other {
            None => Ok(()),
            Some(other) => Err(RuntimeError::invalid(
                format!("network {}", prepared.list.name),
                format!(
                    "it and network {} ({}) both take their addresses from the node slice, and each would hand out the same addresses",
                    other.name,
                    other.source.display()
                ),
                format!(
                    "let one network take the slice: remove `nodeSlice` from one of {} and {}",
                    prepared.list.source.display(),
                    other.source.display()
                ),
            )),
        }
    }

    /// `list` as the plugins get it: the slice filled into the IPAM that asks for it.
    fn prepare(&self, list: &NetworkConfigList) -> Result<PreparedNetwork, RuntimeError> {
        let mut list = list.clone();
        let mut uses_slice = false;
        for (index, plugin) in list.plugins.iter_mut().enumerate() {
            let Some(Value::Object(ipam)) = plugin.raw.get("ipam") else {
                continue;
            };
            let field = |member: &str| format!("plugins[{index}].ipam.{member}");
            let asks = match ipam.get(NODE_SLICE_KEY) {
                None => false,
                Some(Value::Bool(asks)) => *asks,
                Some(_) => {
                    return Err(config_error(&pane_net::cni::ConfigError {
                        file: list.source.clone(),
                        field: field(NODE_SLICE_KEY),
                        message: "must be true or false".into(),
                    }));
                }
            };
            let host_local = ipam.get("type").and_then(Value::as_str) == Some("host-local");
            let names_range = ["ranges", "subnet", "rangeStart"]
                .iter()
                .any(|k| ipam.contains_key(*k));
            let overlay_default = list.name == self.overlay && host_local && !names_range;
            if !asks && !overlay_default {
                continue;
            }
            let refuse = |member: &str, message: String| {
                config_error(&pane_net::cni::ConfigError {
                    file: list.source.clone(),
                    field: field(member),
                    message,
                })
            };
            if !host_local {
                return Err(refuse(
                    "type",
                    "the node slice is handed out through `host-local`; set `\"type\": \"host-local\"`"
                        .into(),
                ));
            }
            if names_range {
                return Err(refuse(
                    NODE_SLICE_KEY,
                    "the IPAM names its own range and asks for the node slice; remove `ranges`/`subnet` or `nodeSlice`".into(),
                ));
            }
            let Some(slice) = self.node_slice else {
                return Err(RuntimeError::invalid(
                    format!("network {}", list.name),
                    format!(
                        "it takes its addresses from the node slice ({}), and this node has none",
                        list.source.display()
                    ),
                    "give pane the node's slice (`--node-slice 10.200.3.0/24`, or the runtime's `node_slice`)",
                ));
            };
            let data_dir = self.ipam_dir.to_string_lossy().into_owned();
            let ipam = slice.host_local_ipam(ipam, &data_dir);
            plugin.raw.insert("ipam".into(), Value::Object(ipam));
            // The per-container address request reaches host-local through the plugin
            // that owns this IPAM.
            plugin.capabilities.insert("ips".into(), true);
            // In the configuration itself too: the attachment cache keeps the list as
            // JSON, and DEL from it must hand the plugin what ADD did.
            let capabilities = plugin
                .raw
                .entry("capabilities")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(capabilities) = capabilities {
                capabilities.insert("ips".into(), true.into());
            }
            uses_slice = true;
        }
        Ok(PreparedNetwork { list, uses_slice })
    }

    /// Whether a cache entry exists for this attachment (a DEL is then owed).
    pub fn is_cached(&self, network: &str, attachment: &Attachment) -> bool {
        self.client
            .cache()
            .load(network, &attachment.container_id, &attachment.ifname)
            .is_ok_and(|e| e.is_some())
    }

    /// ADD on a blocking thread. A full slice is reported as such.
    pub async fn add(
        &self,
        network: &PreparedNetwork,
        attachment: Attachment,
    ) -> Result<CniResult, RuntimeError> {
        let client = self.client.clone();
        let list = network.list.clone();
        let outcome = blocking(move || client.add(&list, &attachment)).await;
        let name = &network.list.name;
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                if network.uses_slice
                    && let Some(slice) = self.node_slice
                {
                    let held = self.held_addresses(name);
                    let in_slice = held.iter().filter(|a| slice.contains(**a)).count();
                    if in_slice as u128 >= slice.usable() {
                        return Err(RuntimeError::Host {
                            step: format!("attach to network {name}"),
                            hresult: None,
                            message: format!(
                                "the node slice {slice} is full: {in_slice} of its {} container addresses are in use; remove containers or give this node a larger slice ({e})",
                                slice.usable()
                            ),
                        });
                    }
                }
                Err(cni_failure(format!("attach to network {name}"))(e))
            }
            Err(e) => Err(e),
        }
    }

    /// DEL on a blocking thread, from the cache when ADD got that far.
    pub async fn del(&self, network: &str, attachment: Attachment) -> Result<(), RuntimeError> {
        let client = self.client.clone();
        let current = self.find(network).ok().flatten().map(|p| p.list);
        let name = network.to_owned();
        blocking(move || client.del(current.as_ref(), &name, &attachment))
            .await?
            .map_err(cni_failure(format!("detach from network {network}")))
    }

    /// The addresses `host-local` holds for `network` in pane's IPAM directory.
    pub fn held_addresses(&self, network: &str) -> Vec<IpAddr> {
        let Ok(entries) = std::fs::read_dir(self.ipam_dir.join(network)) else {
            return Vec::new();
        };
        let mut held: Vec<IpAddr> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        held.sort();
        held
    }

    /// DELs every cached attachment whose CNI container ID is not in `live` (a create
    /// killed after ADD, a record lost while its DEL failed), from the cache, so each
    /// plugin gets what its ADD used. Returns what was detached and what could not be.
    ///
    /// GC is not run: its valid-attachment list would name only this pane's
    /// attachments, while plugin state (host-local's data directory, portmap's chains,
    /// HCN endpoints) is shared with every runtime on the host that uses the network;
    /// GC would free theirs. The cache names exactly what pane attached.
    pub async fn collect_stale(
        &self,
        live: &HashSet<String>,
    ) -> (Vec<(String, String)>, Vec<String>) {
        let client = self.client.clone();
        let cached = match blocking(move || client.cache().list_all()).await {
            Ok(Ok(cached)) => cached,
            Ok(Err(e)) => return (Vec::new(), vec![e.to_string()]),
            Err(e) => return (Vec::new(), vec![e.to_string()]),
        };
        let mut released = Vec::new();
        let mut failures = Vec::new();
        for entry in cached {
            if live.contains(&entry.container_id) {
                continue;
            }
            let attachment = Attachment {
                container_id: entry.container_id.clone(),
                netns: entry.netns.clone(),
                ifname: entry.if_name.clone(),
                ..Attachment::default()
            };
            match self.del(&entry.network_name, attachment).await {
                Ok(()) => released.push((entry.network_name, entry.container_id)),
                Err(e) => failures.push(e.to_string()),
            }
        }
        (released, failures)
    }
}

/// The CNI IPAM's configured subnets, for display.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Host {
            step: "run a CNI plugin".into(),
            hresult: None,
            message: e.to_string(),
        })
}

/// The capability arguments of one attachment: `portMappings` for the ports published
/// through it, `ips` for a requested address.
pub fn capability_args(
    ports: &[crate::backend::PublishedPort],
    requested: Option<String>,
) -> Map<String, Value> {
    let mut args = Map::new();
    if !ports.is_empty() {
        let mappings = ports
            .iter()
            .map(|p| {
                serde_json::json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": match p.protocol {
                        pane_spec::Protocol::Tcp => "tcp",
                        pane_spec::Protocol::Udp => "udp",
                    },
                })
            })
            .collect();
        args.insert("portMappings".into(), Value::Array(mappings));
    }
    if let Some(address) = requested {
        args.insert("ips".into(), Value::Array(vec![Value::String(address)]));
    }
    args
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    fn networks_in(
        owner: &str,
        slice: Option<&str>,
        files: &[(&str, &str)],
    ) -> (tempfile::TempDir, CniNetworks) {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = CniSettings::under_root(dir.path());
        std::fs::create_dir_all(&settings.conf_dirs[0]).unwrap();
        for (name, text) in files {
            std::fs::write(settings.conf_dirs[0].join(name), text).unwrap();
        }
        settings.node_slice = slice.map(|s| s.parse().unwrap());
        let networks = CniNetworks::open(dir.path(), owner, settings);
        (dir, networks)
    }

    fn list(name: &str, ipam: &str) -> String {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge","ipam":{ipam}}}]}}"#
        )
    }

    fn refusal(networks: &CniNetworks, name: &str) -> String {
        networks.find(name).unwrap_err().to_string()
    }

    #[test]
    fn the_owners_overlay_takes_the_slice_unless_its_ipam_names_a_range() {
        let (_dir, networks) = networks_in(
            "zl",
            Some("10.200.3.0/24"),
            &[
                (
                    "1.conflist",
                    &list("zl-overlay", r#"{"type":"host-local"}"#),
                ),
                (
                    "2.conflist",
                    &list("pane-overlay", r#"{"type":"host-local"}"#),
                ),
                (
                    "3.conflist",
                    &list("own", r#"{"type":"host-local","subnet":"192.168.9.0/24"}"#),
                ),
            ],
        );
        assert_eq!(networks.overlay_network(), "zl-overlay");
        let overlay = networks.find("zl-overlay").unwrap().unwrap();
        assert!(overlay.uses_slice);
        assert!(
            overlay.list.plugins[0].wants("ips"),
            "a requested address reaches host-local"
        );
        assert_eq!(
            overlay.list.plugins[0].raw["ipam"]["ranges"][0][0]["subnet"],
            "10.200.3.0/24"
        );
        // Another owner's overlay name is just a network here.
        assert!(!networks.find("pane-overlay").unwrap().unwrap().uses_slice);
        assert!(!networks.find("own").unwrap().unwrap().uses_slice);
        let (_other_dir, backend_only) = networks_in(
            "zl",
            Some("10.200.3.0/24"),
            &[(
                "4.conflist",
                &list("backend", r#"{"type":"host-local","nodeSlice":true}"#),
            )],
        );
        let backend = backend_only.find("backend").unwrap().unwrap();
        assert!(backend.uses_slice);
        assert!(
            backend.list.plugins[0].raw["ipam"]
                .get("nodeSlice")
                .is_none()
        );
        assert_eq!(
            backend.list.to_json()["plugins"][0]["capabilities"]["ips"],
            true,
            "the cached configuration keeps the capability ADD used"
        );
    }

    #[test]
    fn two_networks_cannot_share_the_slice() {
        let (_dir, networks) = networks_in(
            "pane",
            Some("10.200.3.0/24"),
            &[
                (
                    "1.conflist",
                    &list("pane-overlay", r#"{"type":"host-local"}"#),
                ),
                (
                    "4.conflist",
                    &list("backend", r#"{"type":"host-local","nodeSlice":true}"#),
                ),
                (
                    "5.conflist",
                    &list("other", r#"{"type":"host-local","subnet":"10.9.0.0/24"}"#),
                ),
            ],
        );
        for name in ["pane-overlay", "backend"] {
            let err = refusal(&networks, name);
            assert!(
                err.contains("1.conflist") && err.contains("4.conflist"),
                "{err}"
            );
        }
        assert!(
            networks.find("other").unwrap().is_some(),
            "others are not held up"
        );
    }

    #[test]
    fn a_slice_request_the_ipam_cannot_honour_is_refused_at_its_field() {
        let (_dir, networks) = networks_in(
            "pane",
            Some("10.200.3.0/24"),
            &[
                (
                    "1.conflist",
                    &list("dhcp", r#"{"type":"dhcp","nodeSlice":true}"#),
                ),
                (
                    "2.conflist",
                    &list(
                        "both",
                        r#"{"type":"host-local","nodeSlice":true,"ranges":[]}"#,
                    ),
                ),
                (
                    "3.conflist",
                    &list("typo", r#"{"type":"host-local","nodeSlice":1}"#),
                ),
            ],
        );
        assert!(refusal(&networks, "dhcp").contains("field `plugins[0].ipam.type`"));
        assert!(refusal(&networks, "both").contains("field `plugins[0].ipam.nodeSlice`"));
        assert!(refusal(&networks, "typo").contains("must be true or false"));
        assert!(networks.find("absent").unwrap().is_none());
    }

    #[test]
    fn capability_arguments_carry_ports_and_the_requested_address() {
        let ports = [crate::backend::PublishedPort {
            container_port: 80,
            host_port: 8080,
            protocol: pane_spec::Protocol::Udp,
        }];
        let args = capability_args(&ports, Some("10.200.3.9/24".into()));
        assert_eq!(
            Value::Object(args),
            serde_json::json!({
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp"}],
                "ips": ["10.200.3.9/24"]
            })
        );
        assert!(capability_args(&[], None).is_empty());
    }
}
