//! The guest compute service of utility VMs, over Hyper-V sockets.

use async_trait::async_trait;

/// The guest compute service over Hyper-V sockets.
#[derive(Debug, Default)]
pub struct HvSocketGuests;

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
