//! Builder output compared field for field with checked-in documents (`tests/golden/`).
//! `PANE_BLESS=1 cargo test -p pane-hcs --test golden` rewrites them after a deliberate
//! change; review the diff like code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::PathBuf;

use pane_hcs::doc::{
    HostedContainerInput, LayerRef, ProcessContainerInput, SourceKind, UtilityVmInput, VmMount,
    VmShares, hosted_container, process_container, utility_vm, vsmb_guest_path,
};
use pane_hcs::schema::{ComputeSystem, HostedSystem, ModifySettingRequest};
use pane_spec::{Mount, Resources};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, document: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let actual = serde_json::to_string_pretty(document).unwrap() + "\n";
    if std::env::var_os("PANE_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with PANE_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from {}", path.display());
    // Round trip: what HCS would echo back parses to the same document.
    let back: T = serde_json::from_str(&actual).unwrap();
    assert_eq!(&back, document);
}

fn layers() -> Vec<LayerRef> {
    vec![
        LayerRef {
            id: "8b6a6a2f-5c0f-5b7e-9e4f-0c6c3b1e2a11".into(),
            path: r"C:\ProgramData\pane\layers\sha256-b1".into(),
        },
        LayerRef {
            id: "1f0e2d3c-4b5a-5968-8776-a5b4c3d2e1f0".into(),
            path: r"C:\ProgramData\pane\layers\sha256-a0".into(),
        },
    ]
}

fn resources(cpu: &str, memory: &str) -> Resources {
    Resources {
        cpu: Some(pane_spec::quantity::parse_cpu(cpu).unwrap()),
        memory: Some(pane_spec::quantity::parse_memory(memory).unwrap()),
        gpu: None,
        storage: None,
    }
}

fn mount(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        source: source.into(),
        target: target.into(),
        read_only,
    }
}

/// A read-only and a writable folder, a single file and a host pipe: every kind of mount.
fn mounts() -> Vec<VmMount> {
    vec![
        VmMount {
            mount: mount(r"D:\sites\shop", r"C:\inetpub\wwwroot\content", true),
            kind: SourceKind::Directory,
        },
        VmMount {
            mount: mount(r"D:\uploads", r"C:\inetpub\uploads", false),
            kind: SourceKind::Directory,
        },
        VmMount {
            mount: mount(
                r"D:\config\web.config",
                r"C:\inetpub\wwwroot\web.config",
                true,
            ),
            kind: SourceKind::File,
        },
        VmMount {
            mount: mount(r"\\.\pipe\docker_engine", r"\\.\pipe\docker_engine", false),
            kind: SourceKind::Pipe,
        },
    ]
}

const NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_0c1e_7d2b_4c3a_9e8f_1a2b_3c4d_5e6f);
const SCRATCH_VOLUME: &str = r"\\?\Volume{0b6d3a52-1f3e-4c39-9f6c-2a51d3b8e0aa}\";

fn process_input<'a>(
    resources: &'a Resources,
    mounts: &'a [Mount],
    layers: &'a [LayerRef],
) -> ProcessContainerInput<'a> {
    ProcessContainerInput {
        owner: "pane",
        hostname: Some("storefront-web"),
        layers,
        scratch_volume: SCRATCH_VOLUME,
        resources,
        host_processors: 8,
        network_namespace: Some(NAMESPACE),
        dns_search: &[],
        mounts,
        gpu: false,
    }
}

#[test]
fn process_isolated_container() {
    let mounts: Vec<Mount> = mounts().into_iter().map(|m| m.mount).collect();
    let resources = resources("2", "2Gi");
    let layers = layers();
    let document = process_container(&process_input(&resources, &mounts, &layers));
    check::<ComputeSystem>("process_container", &document);
}

#[test]
fn process_isolated_container_with_more_cpus_than_the_host() {
    let resources = resources("8", "2Gi");
    let layers = layers();
    let document = process_container(&ProcessContainerInput {
        host_processors: 4,
        hostname: None,
        network_namespace: None,
        dns_search: &[],
        ..process_input(&resources, &[], &layers)
    });
    check::<ComputeSystem>("process_container_cpu_clamped", &document);
}

#[test]
fn process_isolated_container_with_gpu_and_fractional_cpu() {
    let layers = layers();
    let document = process_container(&ProcessContainerInput {
        owner: "pane-dev",
        hostname: Some("render-1"),
        layers: &layers[1..],
        scratch_volume: SCRATCH_VOLUME,
        resources: &resources("1.5", "512Mi"),
        host_processors: 4,
        network_namespace: None,
        dns_search: &[],
        mounts: &[],
        gpu: true,
    });
    check::<ComputeSystem>("process_container_gpu", &document);
}

fn vm_input(resources: &Resources, host_processors: u32) -> UtilityVmInput<'_> {
    UtilityVmInput {
        owner: "pane",
        os_files: r"C:\ProgramData\pane\layers\sha256-a0\UtilityVM\Files",
        scratch_vhdx: r"C:\ProgramData\pane\containers\web-1\vm\sandbox.vhdx",
        resources,
        host_processors,
    }
}

#[test]
fn utility_vm_for_hyperv_isolation() {
    let defaults = Resources::default();
    check::<ComputeSystem>("utility_vm", &utility_vm(&vm_input(&defaults, 8)));
    let sized = utility_vm(&vm_input(&resources("4", "16Gi"), 8));
    let topology = sized.virtual_machine.unwrap().compute_topology.unwrap();
    assert_eq!(topology.memory.unwrap().size_in_mb, Some(16384));
    assert_eq!(topology.processor.unwrap().count, Some(4));
}

#[test]
fn utility_vm_with_more_cpus_than_the_host() {
    let eight = resources("8", "2Gi");
    check::<ComputeSystem>("utility_vm_cpu_clamped", &utility_vm(&vm_input(&eight, 4)));
}

#[test]
fn utility_vm_with_half_a_cpu() {
    let half = resources("500m", "1Gi");
    check::<ComputeSystem>(
        "utility_vm_fractional_cpu",
        &utility_vm(&vm_input(&half, 4)),
    );
}

#[test]
fn vm_shares_for_layers_and_every_kind_of_mount() {
    let shares = VmShares::new(&layers(), &mounts());
    let requests: Vec<ModifySettingRequest> =
        shares.requests.into_iter().map(|r| r.request).collect();
    check::<Vec<ModifySettingRequest>>("vm_shares", &requests);
}

fn hosted_input<'a>(
    shares: &'a VmShares,
    resources: &'a Resources,
    vm_processors: u32,
) -> HostedContainerInput<'a> {
    HostedContainerInput {
        hostname: Some("render-farm-render-1"),
        layers: &shares.guest_layers,
        scratch_path: r"c:\mounts\scsi\m0",
        resources,
        vm_processors,
        network_namespace: Some(NAMESPACE),
        dns_search: &[],
        mounts: &shares.guest_mounts,
        pipes: &shares.guest_pipes,
    }
}

#[test]
fn hosted_container_in_the_guest() {
    let shares = VmShares::new(&layers(), &mounts());
    assert_eq!(shares.guest_layers[0].path, pane_gcs_vsmb_path("s0"));
    assert_eq!(shares.guest_layers[0].path, vsmb_guest_path("s0"));
    let resources = resources("4", "16Gi");
    let document = hosted_container(&hosted_input(&shares, &resources, 4));
    check::<HostedSystem>("hosted_container", &document);
}

#[test]
fn hosted_container_with_half_a_cpu() {
    let shares = VmShares::new(&layers(), &[]);
    let resources = resources("500m", "1Gi");
    let document = hosted_container(&HostedContainerInput {
        hostname: None,
        network_namespace: None,
        dns_search: &[],
        ..hosted_input(&shares, &resources, 1)
    });
    check::<HostedSystem>("hosted_container_fractional_cpu", &document);
}

/// The guest path of a VSMB share, spelled out so the golden files pin the exact string.
fn pane_gcs_vsmb_path(share: &str) -> String {
    format!(r"\\?\VMSMB\VSMB-{{dcc079ae-60ba-4d07-847c-3493609c0870}}\{share}")
}
