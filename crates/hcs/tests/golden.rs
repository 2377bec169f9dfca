//! Builder output compared field for field with checked-in documents (`tests/golden/`).
//! `PANE_BLESS=1 cargo test -p pane-hcs --test golden` rewrites them after a deliberate
//! change; review the diff like code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::PathBuf;

use pane_hcs::doc::{
    HostedContainerInput, LayerRef, ProcessContainerInput, UtilityVmInput, gpu_partition_request,
    hosted_container, process_container, utility_vm,
};
use pane_hcs::schema::{ComputeSystem, HostedSystem, MappedDirectory};
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

#[test]
fn process_isolated_container() {
    let mounts = vec![
        Mount {
            source: r"D:\sites\shop".into(),
            target: r"C:\inetpub\wwwroot\content".into(),
            read_only: true,
        },
        Mount {
            source: r"\\.\pipe\docker_engine".into(),
            target: r"\\.\pipe\docker_engine".into(),
            read_only: false,
        },
    ];
    let document = process_container(&ProcessContainerInput {
        owner: "pane",
        hostname: "storefront_web.1",
        layers: &layers(),
        scratch_volume: r"\\?\Volume{0b6d3a52-1f3e-4c39-9f6c-2a51d3b8e0aa}\",
        resources: &resources("2", "2Gi"),
        host_processors: 8,
        network_namespace: Some(Uuid::from_u128(0x6a1f_0c1e_7d2b_4c3a_9e8f_1a2b_3c4d_5e6f)),
        mounts: &mounts,
        gpu: false,
    });
    check::<ComputeSystem>("process_container", &document);
}

#[test]
fn process_isolated_container_with_gpu_and_fractional_cpu() {
    let document = process_container(&ProcessContainerInput {
        owner: "pane-dev",
        hostname: "render-1",
        layers: &layers()[1..],
        scratch_volume: r"\\?\Volume{0b6d3a52-1f3e-4c39-9f6c-2a51d3b8e0aa}\",
        resources: &resources("1.5", "512Mi"),
        host_processors: 4,
        network_namespace: None,
        mounts: &[],
        gpu: true,
    });
    check::<ComputeSystem>("process_container_gpu", &document);
}

#[test]
fn utility_vm_for_hyperv_isolation() {
    let document = utility_vm(&UtilityVmInput {
        owner: "pane",
        os_files: r"C:\ProgramData\pane\layers\sha256-a0\UtilityVM\Files",
        scratch_vhdx: r"C:\ProgramData\pane\containers\web-1\vm\sandbox.vhdx",
        resources: &Resources::default(),
        com1_pipe: Some(r"\\.\pipe\pane-uvm-web-1-com1"),
    });
    check::<ComputeSystem>("utility_vm", &document);
    let sized = utility_vm(&UtilityVmInput {
        owner: "pane",
        os_files: r"C:\l\UtilityVM\Files",
        scratch_vhdx: r"C:\c\vm\sandbox.vhdx",
        resources: &resources("4", "16Gi"),
        com1_pipe: None,
    });
    let topology = sized.virtual_machine.unwrap().compute_topology.unwrap();
    assert_eq!(topology.memory.unwrap().size_in_mb, Some(16384));
    assert_eq!(topology.processor.unwrap().count, Some(4));
}

#[test]
fn hosted_container_in_the_guest() {
    let guest_layers: Vec<LayerRef> = layers()
        .into_iter()
        .enumerate()
        .map(|(i, l)| LayerRef {
            id: l.id,
            path: pane_gcs_vsmb_path(&format!("s{i}")),
        })
        .collect();
    let mounts = vec![MappedDirectory {
        host_path: pane_gcs_vsmb_path("s2"),
        host_path_type: None,
        container_path: r"C:\out".into(),
        read_only: None,
    }];
    let document = hosted_container(&HostedContainerInput {
        hostname: "render-farm-render-1",
        layers: &guest_layers,
        scratch_path: r"c:\mounts\scsi\m0",
        resources: &resources("4", "16Gi"),
        network_namespace: Some(Uuid::from_u128(0x6a1f_0c1e_7d2b_4c3a_9e8f_1a2b_3c4d_5e6f)),
        mounts: &mounts,
    });
    check::<HostedSystem>("hosted_container", &document);
}

#[test]
fn experimental_gpu_partitioning_request() {
    let paths = vec![r"\\?\PCI#VEN_10DE&DEV_2230#4&1a2b3c4d&0&0008#{064092b3-625e-43bf-9eb5-dc845897dd59}\GPUPARAV".to_owned()];
    check("gpu_partition_request", &gpu_partition_request(&paths));
}

/// The guest path of a VSMB share, as the bridge crate spells it (kept literal here so the
/// golden files pin the exact string).
fn pane_gcs_vsmb_path(share: &str) -> String {
    format!(r"\\?\VMSMB\VSMB-{{dcc079ae-60ba-4d07-847c-3493609c0870}}\{share}")
}
