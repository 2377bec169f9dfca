//! Shared inputs: a Windows image and its one-layer chain.
#![allow(dead_code)]

use pane_hcs::doc::LayerRef;
use pane_oci::ImageFacts;

pub fn image() -> ImageFacts {
    ImageFacts {
        reference: "mcr.microsoft.com/windows/nanoserver:ltsc2022".into(),
        manifest_digest: "sha256:0".into(),
        os: "windows".into(),
        architecture: "amd64".into(),
        os_version: Some("10.0.20348.2700".into()),
        entrypoint: vec![],
        cmd: vec!["cmd.exe".into()],
        env: vec![],
        working_dir: None,
        user: Some("ContainerUser".into()),
        layers: vec![],
        platform_note: None,
    }
}

pub fn chain() -> Vec<LayerRef> {
    vec![LayerRef {
        id: "1f0e2d3c-4b5a-5968-8776-a5b4c3d2e1f0".into(),
        path: r"C:\ProgramData\pane\layers\sha256-a0".into(),
    }]
}
