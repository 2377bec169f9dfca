//! The guest side of Hyper-V isolation for tests: the in-tree guest peer (real processes)
//! behind [`GuestConnector`], over Unix sockets. Like a utility VM's guest agent, it dials
//! the host's listener once, and it dies with the VM: when the double's VM system stops,
//! the connection drops and every outstanding request fails.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pane_gcs::transport::{GCS_SERVICE_ID, Listener};
use pane_gcs::{GuestPeer, PeerConfig, Rpc, Transport};
use pane_runtime::backend::{AddressRedirect, Compute, ComputeEvent, GuestConnector};
use uuid::Uuid;

use super::fake_hcs::FakeHcs;

pub struct PeerGuests {
    dir: PathBuf,
    hcs: Arc<FakeHcs>,
    /// Faults every new guest starts with, as `(rpc, hresult)`.
    faults: Mutex<Vec<(Rpc, i32)>>,
    peers: Mutex<Vec<GuestPeer>>,
    /// hvsock routes from hosted containers' system GUIDs to VMs' runtime ids.
    routes: Arc<Mutex<Vec<(Uuid, Uuid)>>>,
}

impl PeerGuests {
    pub fn new(dir: PathBuf, hcs: Arc<FakeHcs>) -> Self {
        Self {
            dir,
            hcs,
            faults: Mutex::default(),
            peers: Mutex::default(),
            routes: Arc::default(),
        }
    }

    /// The next guest to boot answers `rpc` with `hresult` once.
    pub fn fail_once(&self, rpc: Rpc, hresult: i32) {
        self.faults.lock().unwrap().push((rpc, hresult));
    }

    /// The hvsock routes in place, as `(container SystemGUID, VM RuntimeId)`.
    pub fn routes(&self) -> Vec<(Uuid, Uuid)> {
        self.routes.lock().unwrap().clone()
    }

    /// The guests booted so far, oldest first.
    pub fn peers(&self) -> Vec<GuestPeer> {
        self.peers.lock().unwrap().clone()
    }

    fn transport(&self, vm: Uuid) -> Transport {
        // Short paths: Unix socket names are limited to 108 bytes.
        let dir = self.dir.join(&vm.simple().to_string()[..8]);
        std::fs::create_dir_all(&dir).unwrap();
        Transport::Unix { dir }
    }
}

#[async_trait]
impl GuestConnector for PeerGuests {
    async fn listen(&self, vm: Uuid) -> std::io::Result<Listener> {
        let transport = self.transport(vm);
        let listener = transport.listen(GCS_SERVICE_ID).await?;
        let peer = GuestPeer::new(PeerConfig::windows_guest(transport.clone()));
        for (rpc, hresult) in self.faults.lock().unwrap().drain(..) {
            peer.fail_once(rpc, hresult);
        }
        self.peers.lock().unwrap().push(peer.clone());
        let system = self.hcs.system_with_runtime_id(&vm.to_string());
        let vm_events = system.and_then(|id| self.hcs.events(&id).ok());
        tokio::spawn(async move {
            let Ok(stream) = transport.connect(GCS_SERVICE_ID).await else {
                return;
            };
            let serve = peer.serve(stream);
            let vm_stopped = async {
                let Some(mut events) = vm_events else {
                    return std::future::pending().await;
                };
                while let Some(event) = events.recv().await {
                    if let ComputeEvent::System(pane_hcs::HcsEvent::SystemExited { .. }) = event {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                () = vm_stopped => {}
            }
        });
        Ok(listener)
    }

    fn relay(&self, vm: Uuid) -> Transport {
        self.transport(vm)
    }

    async fn redirect_container(
        &self,
        container: Uuid,
        vm: Uuid,
    ) -> std::io::Result<AddressRedirect> {
        let routes = Arc::clone(&self.routes);
        routes.lock().unwrap().push((container, vm));
        Ok(AddressRedirect::new(Route { routes, container }))
    }
}

/// A route in the host's hvsock address table; dropped, it is taken out.
struct Route {
    routes: Arc<Mutex<Vec<(Uuid, Uuid)>>>,
    container: Uuid,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.routes
            .lock()
            .unwrap()
            .retain(|(container, _)| *container != self.container);
    }
}
