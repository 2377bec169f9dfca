//! A host for Hyper-V containers: the HCS, layer and network doubles and guest peers over
//! real Unix sockets, with a base layer carrying the utility VM's template disk, as
//! Windows base images do.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::sync::Arc;

use pane_hcs::doc::LayerRef;
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::records::RecordStore;

use super::fake_hcs::FakeHcs;
use super::fake_layers::FakeLayers;
use super::fake_network::FakeNetwork;
use super::guest::PeerGuests;

pub struct HypervWorld {
    pub hcs: Arc<FakeHcs>,
    pub layers: Arc<FakeLayers>,
    pub network: Arc<FakeNetwork>,
    pub guests: Arc<PeerGuests>,
    pub records: RecordStore,
    pub base_layer: PathBuf,
    pub dir: tempfile::TempDir,
}

impl HypervWorld {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base_layer = dir.path().join("layers").join("base");
        std::fs::create_dir_all(base_layer.join("UtilityVM/Files")).unwrap();
        std::fs::write(
            base_layer.join("UtilityVM/SystemTemplate.vhdx"),
            b"template",
        )
        .unwrap();
        let hcs = Arc::new(FakeHcs::default());
        Self {
            guests: Arc::new(PeerGuests::new(dir.path().join("g"), hcs.clone())),
            hcs,
            layers: Arc::new(FakeLayers::default()),
            network: Arc::new(FakeNetwork::default()),
            records: RecordStore::open(dir.path()).unwrap(),
            base_layer,
            dir,
        }
    }

    /// A pane process over this host and state directory.
    pub fn runtime(&self) -> ContainerLifecycle {
        ContainerLifecycle::new(
            self.hcs.clone(),
            self.layers.clone(),
            self.records.clone(),
            Layout {
                containers: self.dir.path().join("containers"),
                owner: "pane".into(),
                host_processors: 4,
            },
        )
        .with_guest_connector(self.guests.clone())
        .with_network(self.network.clone())
    }

    pub fn chain(&self) -> Vec<LayerRef> {
        vec![LayerRef {
            id: "1f0e2d3c-4b5a-5968-8776-a5b4c3d2e1f0".into(),
            path: self.base_layer.display().to_string(),
        }]
    }
}
