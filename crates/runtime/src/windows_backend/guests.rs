//! The guest compute service of utility VMs, over Hyper-V sockets.
//!
//! A build with the `wine-substitutes` feature (only `.ci/wine-e2e` makes one) reaches the
//! simulated host's guest over loopback TCP instead, because wine has no `AF_HYPERV`: see
//! [`simulated`]. Nothing else of the Hyper-V path changes with the feature.

use async_trait::async_trait;

/// The guest compute service over Hyper-V sockets.
#[derive(Debug, Default)]
pub struct HvSocketGuests;

#[cfg(not(feature = "wine-substitutes"))]
#[async_trait]
impl crate::backend::GuestConnector for HvSocketGuests {
    async fn listen(&self, vm: uuid::Uuid) -> std::io::Result<pane_gcs::transport::Listener> {
        pane_gcs::Transport::HvSock { vm_id: vm }
            .listen(pane_gcs::transport::GCS_SERVICE_ID)
            .await
    }

    fn relay(&self, vm: uuid::Uuid) -> pane_gcs::Transport {
        pane_gcs::Transport::HvSock { vm_id: vm }
    }

    async fn redirect_container(
        &self,
        container: uuid::Uuid,
        vm: uuid::Uuid,
    ) -> std::io::Result<crate::backend::AddressRedirect> {
        let route = tokio::task::spawn_blocking(move || {
            pane_gcs::transport::address_info::redirect_container(container, vm)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(crate::backend::AddressRedirect::new(route))
    }
}

#[cfg(feature = "wine-substitutes")]
#[async_trait]
impl crate::backend::GuestConnector for HvSocketGuests {
    async fn listen(&self, vm: uuid::Uuid) -> std::io::Result<pane_gcs::transport::Listener> {
        simulated::listen(vm).await
    }

    fn relay(&self, vm: uuid::Uuid) -> pane_gcs::Transport {
        simulated::transport(vm)
    }

    async fn redirect_container(
        &self,
        _container: uuid::Uuid,
        _vm: uuid::Uuid,
    ) -> std::io::Result<crate::backend::AddressRedirect> {
        // No hvsock exists to route; the simulated guest reaches nothing through one.
        Ok(crate::backend::AddressRedirect::new(()))
    }
}

/// The simulated host's stand-in for hvsock addressing: pane listens on a loopback base
/// port for VM `vm` (its GCS there, its stdio relays on the ports above, as
/// `Transport::Tcp` numbers them) and leaves `127.0.0.1:PORT` in the simulator's
/// rendezvous folder under the VM's `RuntimeId`, which the simulator reads when it starts
/// the VM and hands to the guest peer it starts. Every later pane process (a shim, an exec)
/// finds the VM's relays from the same file.
#[cfg(feature = "wine-substitutes")]
mod simulated {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    use pane_gcs::Transport;
    use pane_gcs::transport::{GCS_SERVICE_ID, Listener};

    /// `crates/hostsim/src/service/guest.rs`'s `RENDEZVOUS_DIR`.
    const RENDEZVOUS_DIR: &str = r"C:\ProgramData\pane-hostsim\hvsock";
    /// Base ports are 256 apart (one VM's first 255 relays stay below the next VM's base),
    /// from 20000 to below 32768, where Linux (and so wine) picks ephemeral ports.
    const SPACING: u16 = 256;
    const SLOTS: u64 = 48;

    fn rendezvous(vm: uuid::Uuid) -> PathBuf {
        PathBuf::from(RENDEZVOUS_DIR).join(vm.to_string())
    }

    fn tcp(base_port: u16) -> Transport {
        Transport::Tcp {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port,
        }
    }

    pub(super) async fn listen(vm: uuid::Uuid) -> std::io::Result<Listener> {
        let seed = vm.as_u64_pair().0 ^ u64::from(std::process::id());
        let mut last = None;
        for attempt in 0..32u64 {
            let slot =
                u16::try_from(seed.wrapping_add(attempt.wrapping_mul(7919)) % SLOTS).unwrap_or(0);
            let base_port = 20_000 + slot * SPACING;
            match tcp(base_port).listen(GCS_SERVICE_ID).await {
                Ok(listener) => {
                    std::fs::create_dir_all(RENDEZVOUS_DIR)?;
                    std::fs::write(rendezvous(vm), format!("127.0.0.1:{base_port}"))?;
                    return Ok(listener);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no loopback port for the guest")))
    }

    pub(super) fn transport(vm: uuid::Uuid) -> Transport {
        let base_port = std::fs::read_to_string(rendezvous(vm))
            .ok()
            .and_then(|text| text.trim().rsplit(':').next()?.parse().ok())
            // Port 0 fails every bind and dial with a clear error.
            .unwrap_or(0);
        tcp(base_port)
    }
}
