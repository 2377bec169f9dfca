//! Containers on CNI networks, for real: Debian's `containernetworking-plugins`
//! (`bridge`, `host-local`, `portmap`) run against Linux network namespaces that the
//! runtime's Linux network seam makes where Windows makes an HCN namespace. HCS and the
//! layers are the doubles; everything on the network path is real: the plugins, the
//! namespaces, veth pairs, bridges, iptables rules and host-local's allocation files.
//! Needs root, iproute2 and iptables (`.ci/test` installs them).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pane_runtime::ContainerId;
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::networking::cni::{CniNetworks, CniSettings};
use pane_runtime::networking::linux_netns::{LinuxNetns, netns_path};
use pane_runtime::records::RecordStore;
use serde_json::{Value, json};
use support::fake_hcs::FakeHcs;
use support::fake_layers::FakeLayers;
use support::fixtures::{chain, image};

const SYSTEM_PLUGINS: &str = "/usr/lib/cni";

fn require_tools() {
    assert!(
        Path::new(SYSTEM_PLUGINS).join("bridge").is_file(),
        "these tests need Debian's containernetworking-plugins in {SYSTEM_PLUGINS}"
    );
    assert!(
        Command::new("ip").arg("-V").output().is_ok(),
        "these tests need iproute2 (`ip`)"
    );
}

/// A pane root with a CNI configuration directory, a bridge of its own (removed on
/// drop) and a slice of its own, so tests run side by side.
struct Node {
    dir: tempfile::TempDir,
    hcs: Arc<FakeHcs>,
    layers: Arc<FakeLayers>,
    bridge: String,
    slice: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        for bridge in [self.bridge.clone(), format!("{}l", self.bridge)] {
            let _ = Command::new("ip")
                .args(["link", "delete", &bridge])
                .output();
        }
    }
}

impl Node {
    /// `third_octet` picks the slice `10.213.<third_octet>.0/<prefix>`. `None`, saying
    /// so, when not run as root: network namespaces, bridges and iptables need it. As root
    /// every test runs (CI runs as root).
    fn new(third_octet: u8, prefix: u8) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the CNI runtime tests make network namespaces and need root");
            return None;
        }
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cni").join("conf")).unwrap();
        Some(Self {
            dir,
            hcs: Arc::new(FakeHcs::default()),
            layers: Arc::new(FakeLayers::default()),
            bridge: format!("pane{third_octet}x{prefix}"),
            slice: format!("10.213.{third_octet}.0/{prefix}"),
        })
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn conf_dir(&self) -> PathBuf {
        self.root().join("cni").join("conf")
    }

    fn write_conf(&self, file: &str, conf: &Value) {
        std::fs::write(
            self.conf_dir().join(file),
            serde_json::to_vec_pretty(conf).unwrap(),
        )
        .unwrap();
    }

    /// The owner's overlay network: a bridge with host-local IPAM and no range of its
    /// own, so it takes the node slice.
    fn write_overlay(&self, extra_plugins: &[Value]) {
        let mut plugins = vec![json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipam": {"type": "host-local"}
        })];
        plugins.extend_from_slice(extra_plugins);
        self.write_conf(
            "10-overlay.conflist",
            &json!({"cniVersion": "1.0.0", "name": "pane-overlay", "plugins": plugins}),
        );
    }

    fn settings(&self, slice: Option<&str>) -> CniSettings {
        let mut settings = CniSettings::under_root(self.root());
        settings.bin_dirs = vec![self.root().join("bin"), PathBuf::from(SYSTEM_PLUGINS)];
        settings.node_slice = slice.map(|s| s.parse().unwrap());
        settings.plugin_timeout = Duration::from_secs(20);
        settings
    }

    fn cni(&self) -> Arc<CniNetworks> {
        Arc::new(CniNetworks::open(
            self.root(),
            "pane",
            self.settings(Some(&self.slice)),
        ))
    }

    /// A pane process over this node: a new runtime each call, as after a restart.
    fn runtime_with(&self, cni: Arc<CniNetworks>) -> ContainerLifecycle {
        let records = RecordStore::open(self.root()).unwrap();
        let layout = Layout {
            containers: self.root().join("containers"),
            owner: "pane".into(),
            host_processors: 4,
        };
        ContainerLifecycle::new(self.hcs.clone(), self.layers.clone(), records, layout)
            .with_network(Arc::new(LinuxNetns))
            .with_cni(cni)
    }

    fn runtime(&self) -> ContainerLifecycle {
        self.runtime_with(self.cni())
    }

    /// The addresses host-local holds for the overlay network.
    fn held(&self) -> Vec<IpAddr> {
        self.cni().held_addresses("pane-overlay")
    }

    fn cached(&self) -> usize {
        std::fs::read_dir(self.root().join("cni").join("cache").join("results"))
            .map_or(0, Iterator::count)
    }

    /// Nothing of any container is left: no namespace, address, cache entry, record.
    fn assert_clean(&self, namespaces: &[PathBuf]) {
        for ns in namespaces {
            assert!(!ns.exists(), "namespace {} left", ns.display());
        }
        assert_eq!(self.held(), Vec::<IpAddr>::new(), "addresses still held");
        assert_eq!(self.cached(), 0, "attachment cache entries left");
        let records = RecordStore::open(self.root()).unwrap().list().unwrap();
        assert!(records.is_empty(), "records left: {records:?}");
    }
}

fn spec(networks: &str, ports: &str) -> pane_spec::ServiceSpec {
    pane_spec::parse_service(&format!(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nnetworks: [{networks}]\nports: [{ports}]\ncommand: {{entrypoint: [cmd, /c, echo hi]}}\n"
    ))
    .unwrap()
}

fn namespace_of(runtime_root: &Path, id: &ContainerId) -> PathBuf {
    let record = RecordStore::open(runtime_root).unwrap().load(id).unwrap();
    let ns: uuid::Uuid = record
        .resources
        .network_namespace
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    netns_path(ns)
}

/// The IPv4 addresses of `eth0` inside a namespace, as the kernel has them.
fn addresses_in(namespace: &Path) -> String {
    let name = namespace.file_name().unwrap().to_str().unwrap();
    let output = Command::new("ip")
        .args(["-n", name, "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_containers_on_the_slice_get_distinct_addresses_and_rm_returns_them() {
    let Some(node) = Node::new(1, 24) else {
        return;
    };
    node.write_overlay(&[]);
    let runtime = node.runtime();
    let mut ips = Vec::new();
    let mut namespaces = Vec::new();
    for replica in 1..=3 {
        let id = ContainerId::new("web", replica);
        runtime
            .create(&id, &spec("pane-overlay", ""), &image(), &chain())
            .await
            .unwrap();
        let record = RecordStore::open(node.root()).unwrap().load(&id).unwrap();
        let ip = record.resources.ip.unwrap();
        let attachment = &record.resources.attachments[0];
        assert_eq!(attachment.interface, "eth0");
        assert_eq!(attachment.gateway.as_deref(), Some("10.213.1.1"));
        let namespace = namespace_of(node.root(), &id);
        assert!(
            addresses_in(&namespace).contains(&format!("{ip}/24")),
            "the kernel has the address in the container's namespace: {}",
            addresses_in(&namespace)
        );
        let document = &record.documents[0].1;
        assert_eq!(
            document["Container"]["Networking"]["Namespace"],
            record.resources.network_namespace.clone().unwrap()
        );
        ips.push(ip);
        namespaces.push(namespace);
    }
    println!("three containers on slice {}: {ips:?}", node.slice);
    let distinct: HashSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), 3, "{ips:?}");
    let slice: pane_net::NodeSlice = node.slice.parse().unwrap();
    for ip in &ips {
        assert!(slice.contains(*ip) && *ip != slice.gateway() && *ip != slice.network());
    }
    assert_eq!(node.held(), {
        let mut sorted = ips.clone();
        sorted.sort();
        sorted
    });
    for replica in 1..=3 {
        runtime
            .remove(&ContainerId::new("web", replica), false)
            .await
            .unwrap();
    }
    node.assert_clean(&namespaces);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_on_a_slash_26_get_distinct_addresses_then_a_full_slice_is_named()
{
    let Some(node) = Node::new(2, 26) else {
        return;
    };
    node.write_overlay(&[]);
    let runtime = Arc::new(node.runtime());
    let creates = (1..=50).map(|replica| {
        let runtime = Arc::clone(&runtime);
        tokio::spawn(async move {
            let id = ContainerId::new("batch", replica);
            runtime
                .create(&id, &spec("pane-overlay", ""), &image(), &chain())
                .await
                .map(|()| id)
        })
    });
    let mut ids = Vec::new();
    for create in creates.collect::<Vec<_>>() {
        ids.push(create.await.unwrap().unwrap());
    }
    let held = node.held();
    assert_eq!(held.len(), 50);
    assert_eq!(held.iter().collect::<HashSet<_>>().len(), 50);
    // A /26 holds 61 container addresses: 11 more fit, the 62nd does not.
    for replica in 51..=61 {
        let id = ContainerId::new("batch", replica);
        runtime
            .create(&id, &spec("pane-overlay", ""), &image(), &chain())
            .await
            .unwrap();
        ids.push(id);
    }
    let overflow = ContainerId::new("batch", 62);
    let err = runtime
        .create(&overflow, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "node slice 10.213.2.0/26 is full: 61 of its 61 container addresses are in use"
        ),
        "{err}"
    );
    let namespaces: Vec<PathBuf> = ids.iter().map(|id| namespace_of(node.root(), id)).collect();
    assert!(
        !netns_path(pane_runtime::network_namespace_id("pane", &overflow)).exists(),
        "the refused create left its namespace"
    );
    for id in &ids {
        runtime.remove(id, false).await.unwrap();
    }
    node.assert_clean(&namespaces);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_add_and_del_still_releases_what_add_took() {
    let Some(node) = Node::new(3, 24) else {
        return;
    };
    node.write_overlay(&[]);
    let id = ContainerId::new("api", 1);
    node.runtime()
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    let namespace = namespace_of(node.root(), &id);
    assert_eq!(node.held().len(), 1);
    // pane restarts, and the configuration file is gone by then (an upgrade, an edit):
    // DEL must still get what ADD used, from the cache.
    std::fs::remove_file(node.conf_dir().join("10-overlay.conflist")).unwrap();
    node.runtime().remove(&id, false).await.unwrap();
    node.assert_clean(&[namespace]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_reach_portmap_as_the_port_mappings_capability() {
    let Some(node) = Node::new(4, 24) else {
        return;
    };
    node.write_overlay(&[json!({"type": "portmap", "capabilities": {"portMappings": true}})]);
    let runtime = node.runtime();
    let id = ContainerId::new("site", 1);
    runtime
        .create(
            &id,
            &spec("pane-overlay", "\"18473:80\""),
            &image(),
            &chain(),
        )
        .await
        .unwrap();
    let ip = RecordStore::open(node.root())
        .unwrap()
        .load(&id)
        .unwrap()
        .resources
        .ip
        .unwrap();
    let nat = || {
        let out = Command::new("iptables")
            .args(["-t", "nat", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rules = nat();
    assert!(
        rules.contains("--dport 18473") && rules.contains(&format!("{ip}:80")),
        "portmap's DNAT for the published port: {rules}"
    );
    let namespace = namespace_of(node.root(), &id);
    runtime.remove(&id, false).await.unwrap();
    assert!(!nat().contains("--dport 18473"), "DEL removed the DNAT");
    node.assert_clean(&[namespace]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_address_is_handed_to_host_local() {
    let Some(node) = Node::new(5, 24) else {
        return;
    };
    node.write_overlay(&[]);
    let runtime = node.runtime();
    let id = ContainerId::new("db", 1);
    runtime.request_address(&id, "10.213.5.77".parse().unwrap());
    runtime
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    let record = RecordStore::open(node.root()).unwrap().load(&id).unwrap();
    assert_eq!(record.resources.ip, Some("10.213.5.77".parse().unwrap()));
    let namespace = namespace_of(node.root(), &id);
    runtime.remove(&id, false).await.unwrap();
    node.assert_clean(&[namespace]);
}

/// A plugin script in the node's own plugin directory.
fn script_plugin(node: &Node, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let bin = node.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_failing_mid_chain_or_hanging_leaves_nothing() {
    let Some(node) = Node::new(6, 24) else {
        return;
    };
    // Fails ADD with an error object; DEL succeeds, as the specification asks.
    script_plugin(
        &node,
        "refuse",
        r#"cat >/dev/null; if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0","code":7,"msg":"refused by policy"}'; exit 1; fi; exit 0"#,
    );
    script_plugin(
        &node,
        "hang",
        r#"cat >/dev/null; if [ "$CNI_COMMAND" = ADD ]; then sleep 600; fi; exit 0"#,
    );
    for (plugin, expected) in [("refuse", "code 7"), ("hang", "did not finish within")] {
        node.write_overlay(&[json!({"type": plugin})]);
        let mut settings = node.settings(Some(&node.slice));
        settings.plugin_timeout = Duration::from_secs(2);
        let cni = Arc::new(CniNetworks::open(node.root(), "pane", settings));
        let runtime = node.runtime_with(cni);
        let id = ContainerId::new("chain", 1);
        let started = Instant::now();
        let err = runtime
            .create(&id, &spec("pane-overlay", ""), &image(), &chain())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{plugin}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{plugin}: the create came back"
        );
        // The bridge plugin ran first and took an address: the chain's DEL gave it back.
        node.assert_clean(&[netns_path(pane_runtime::network_namespace_id("pane", &id))]);
        assert!(node.layers.layers().is_empty(), "{plugin}: scratch left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_that_need_the_slice_or_are_misconfigured_are_refused_before_anything_exists() {
    let Some(node) = Node::new(7, 24) else {
        return;
    };
    node.write_overlay(&[]);
    let without_slice = Arc::new(CniNetworks::open(node.root(), "pane", node.settings(None)));
    let id = ContainerId::new("early", 1);
    let err = node
        .runtime_with(without_slice)
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--node-slice"), "{err}");
    node.write_conf(
        "20-broken.conflist",
        &json!({"cniVersion": "1.0.0", "name": "backend", "plugins": [{"type": "bridge", "ipam": {"type": "host-local", "nodeSlice": "yes"}}]}),
    );
    let err = node
        .runtime()
        .create(&id, &spec("backend", ""), &image(), &chain())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("20-broken.conflist") && err.contains("plugins[0].ipam.nodeSlice"),
        "{err}"
    );
    // The broken file does not hide the overlay network.
    node.runtime()
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    let namespace = namespace_of(node.root(), &id);
    node.runtime().remove(&id, false).await.unwrap();
    node.assert_clean(&[namespace]);
    assert!(node.hcs.system_ids().is_empty());
}

/// The environment variable that turns [`child_create_stalled_after_add`] on.
const CHILD_ROOT: &str = "PANE_CNI_TEST_CHILD_ROOT";

/// Run by [`a_pane_killed_between_add_and_the_record_save_is_cleaned_by_reconcile`] in a
/// child process: a create whose compute system never comes, so the process is killed
/// after ADD and before the record says the container exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the kill -9 test"]
async fn child_create_stalled_after_add() {
    let Some(root) = std::env::var_os(CHILD_ROOT) else {
        return;
    };
    let root = PathBuf::from(root);
    let hcs = Arc::new(FakeHcs::default());
    hcs.stall("HcsCreateComputeSystem");
    let mut settings = CniSettings::under_root(&root);
    settings.bin_dirs = vec![PathBuf::from(SYSTEM_PLUGINS)];
    settings.node_slice = Some("10.213.8.0/24".parse().unwrap());
    let cni = Arc::new(CniNetworks::open(&root, "pane", settings));
    let runtime = ContainerLifecycle::new(
        hcs,
        Arc::new(FakeLayers::default()),
        RecordStore::open(&root).unwrap(),
        Layout {
            containers: root.join("containers"),
            owner: "pane".into(),
            host_processors: 4,
        },
    )
    .with_network(Arc::new(LinuxNetns))
    .with_cni(cni);
    let _ = runtime
        .create(
            &ContainerId::new("doomed", 1),
            &spec("pane-overlay", ""),
            &image(),
            &chain(),
        )
        .await;
    unreachable!("the compute system create never returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pane_killed_between_add_and_the_record_save_is_cleaned_by_reconcile() {
    let Some(node) = Node::new(8, 24) else {
        return;
    };
    node.write_overlay(&[]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_create_stalled_after_add",
            "--nocapture",
        ])
        .env(CHILD_ROOT, node.root())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.held().is_empty() {
        assert!(Instant::now() < deadline, "the child never got an address");
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past ADD: the address is held; the record still says "creating".
    let id = ContainerId::new("doomed", 1);
    let namespace = netns_path(pane_runtime::network_namespace_id("pane", &id));
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(namespace.exists() && node.held().len() == 1 && node.cached() == 1);
    let report = node.runtime().reconcile().await.unwrap();
    assert_eq!(report.cleaned, [id]);
    node.assert_clean(&[namespace]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_detaches_cached_attachments_whose_container_has_no_record() {
    let Some(node) = Node::new(9, 24) else {
        return;
    };
    node.write_overlay(&[]);
    let id = ContainerId::new("ghost", 1);
    let runtime = node.runtime();
    runtime
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    let namespace = namespace_of(node.root(), &id);
    // The record is lost (a removal that died after deleting it but before DEL).
    RecordStore::open(node.root()).unwrap().remove(&id).unwrap();
    let report = node.runtime().reconcile().await.unwrap();
    // The CNI container ID is the namespace GUID, not the container's name.
    assert_eq!(
        report.detached,
        [(
            "pane-overlay".to_owned(),
            pane_runtime::network_namespace_id("pane", &id).to_string()
        )]
    );
    assert!(node.held().is_empty() && node.cached() == 0);
    // The namespace had no record to name it; the test removes it.
    let _ = Command::new("ip")
        .args([
            "netns",
            "delete",
            namespace.file_name().unwrap().to_str().unwrap(),
        ])
        .output();
    std::fs::remove_dir_all(node.root().join("containers")).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_add_gives_the_address_back_with_the_other_undo_steps() {
    let Some(node) = Node::new(10, 24) else {
        return;
    };
    node.write_overlay(&[]);
    // The compute system is the step after ADD: its failure must undo ADD too.
    node.hcs.fail_once("HcsCreateComputeSystem", 0x8037_0100);
    let id = ContainerId::new("late", 1);
    let err = node
        .runtime()
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HcsCreateComputeSystem"), "{err}");
    node.assert_clean(&[netns_path(pane_runtime::network_namespace_id("pane", &id))]);
    assert!(node.layers.layers().is_empty(), "scratch left");
    assert!(node.hcs.system_ids().is_empty(), "system left");
}

/// A second network with a subnet of its own, beside the overlay.
fn write_lan(node: &Node, third_octet: u8) {
    node.write_conf(
        "20-lan.conflist",
        &json!({"cniVersion": "1.0.0", "name": "lan", "plugins": [{
            "type": "bridge",
            "bridge": format!("{}l", node.bridge),
            "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("10.214.{third_octet}.0/24")}]], "dataDir": node.root().join("lan-ipam")}
        }]}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_address_goes_to_the_first_network_and_is_refused_where_it_cannot_be_given() {
    let Some(node) = Node::new(11, 24) else {
        return;
    };
    node.write_overlay(&[]);
    write_lan(&node, 11);
    let runtime = node.runtime();
    let id = ContainerId::new("two", 1);
    runtime.request_address(&id, "10.213.11.50".parse().unwrap());
    runtime
        .create(&id, &spec("pane-overlay, lan", ""), &image(), &chain())
        .await
        .unwrap();
    let record = RecordStore::open(node.root()).unwrap().load(&id).unwrap();
    let ips: Vec<_> = record
        .resources
        .attachments
        .iter()
        .map(|a| a.ips.clone())
        .collect();
    assert_eq!(
        ips,
        [
            vec!["10.213.11.50/24".to_owned()],
            vec!["10.214.11.2/24".to_owned()]
        ]
    );
    let namespace = namespace_of(node.root(), &id);
    runtime.remove(&id, false).await.unwrap();
    // The first network has no `ips` capability: refused before anything exists.
    runtime.request_address(&id, "10.214.11.9".parse().unwrap());
    let err = runtime
        .create(&id, &spec("lan, pane-overlay", ""), &image(), &chain())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("network lan") && err.contains("`ips` capability"),
        "{err}"
    );
    // And the refused request does not linger for the next create.
    runtime
        .create(&id, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    let record = RecordStore::open(node.root()).unwrap().load(&id).unwrap();
    assert_eq!(record.resources.requested_ip, None);
    runtime.remove(&id, false).await.unwrap();
    node.assert_clean(&[namespace]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_slice_keeps_old_addresses_until_their_containers_go() {
    let Some(node) = Node::new(12, 24) else {
        return;
    };
    // No gateway on the bridge: the bridge plugin refuses to move a bridge's gateway
    // address to the new slice's while containers use the old one.
    node.write_conf(
        "10-overlay.conflist",
        &json!({"cniVersion": "1.0.0", "name": "pane-overlay", "plugins": [{
            "type": "bridge", "bridge": node.bridge, "ipam": {"type": "host-local"}
        }]}),
    );
    let old = ContainerId::new("old", 1);
    node.runtime()
        .create(&old, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    // The orchestrator moves the node to another slice; pane restarts with it.
    let moved = Arc::new(CniNetworks::open(
        node.root(),
        "pane",
        node.settings(Some("10.213.112.0/24")),
    ));
    let runtime = node.runtime_with(Arc::clone(&moved));
    let new = ContainerId::new("new", 1);
    runtime
        .create(&new, &spec("pane-overlay", ""), &image(), &chain())
        .await
        .unwrap();
    let ip_of = |id: &ContainerId| {
        RecordStore::open(node.root())
            .unwrap()
            .load(id)
            .unwrap()
            .resources
            .ip
            .unwrap()
    };
    assert_eq!(ip_of(&old).to_string(), "10.213.12.2");
    assert_eq!(ip_of(&new).to_string(), "10.213.112.2");
    let detail = moved.detail("pane-overlay").unwrap().unwrap();
    assert_eq!(
        detail.addresses_outside_slice,
        ["10.213.12.2".parse::<IpAddr>().unwrap()]
    );
    let namespaces = [
        namespace_of(node.root(), &old),
        namespace_of(node.root(), &new),
    ];
    runtime.remove(&old, false).await.unwrap();
    assert_eq!(
        node.held(),
        ["10.213.112.2".parse::<IpAddr>().unwrap()],
        "the old address came back"
    );
    runtime.remove(&new, false).await.unwrap();
    node.assert_clean(&namespaces);
    let _ = Command::new("ip")
        .args(["link", "delete", &format!("{}l", node.bridge)])
        .output();
}
