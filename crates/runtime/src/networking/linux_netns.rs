//! The network seam on Linux: where Windows makes an HCN namespace for a container, this
//! makes a named network namespace (`ip netns add pane-<id>`), and hands CNI plugins its
//! path. Linux has no HCN networks, so only CNI networks can be joined; it exists so the
//! CNI path of the runtime runs against real plugins on a Linux machine.

use std::path::PathBuf;
use std::process::Command;

use async_trait::async_trait;
use uuid::Uuid;

use crate::backend::{Endpoint, HostError, Network, PublishedPort};

/// Where iproute2 keeps named namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// `ERROR_NOT_SUPPORTED` as an HRESULT.
const E_NOT_SUPPORTED: u32 = 0x8007_0032;
/// `ERROR_NOT_FOUND` as an HRESULT, as HCN answers for an object it does not have.
const E_NOT_FOUND: u32 = 0x8007_0490;
/// `E_FAIL`.
const E_FAIL: u32 = 0x8000_4005;

#[derive(Debug, Default)]
pub struct LinuxNetns;

fn name(id: Uuid) -> String {
    format!("pane-{}", id.simple())
}

/// The path of namespace `id` (what CNI gets as `CNI_NETNS`).
pub fn netns_path(id: Uuid) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name(id))
}

async fn ip(call: &'static str, args: Vec<String>) -> Result<(), HostError> {
    let output = tokio::task::spawn_blocking(move || Command::new("ip").args(&args).output())
        .await
        .map_err(|e| HostError::new(call, E_FAIL, e.to_string()))?
        .map_err(|e| {
            HostError::new(
                call,
                E_FAIL,
                format!("cannot run `ip` ({e}); install iproute2"),
            )
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(HostError::new(
            call,
            E_FAIL,
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

#[async_trait]
impl Network for LinuxNetns {
    async fn create_namespace(&self, id: Uuid) -> Result<serde_json::Value, HostError> {
        ip("ip netns add", vec!["netns".into(), "add".into(), name(id)]).await?;
        Ok(serde_json::json!({ "ID": id.to_string(), "Path": netns_path(id) }))
    }

    async fn delete_namespace(&self, id: Uuid) -> Result<(), HostError> {
        if !netns_path(id).exists() {
            return Ok(());
        }
        ip(
            "ip netns delete",
            vec!["netns".into(), "delete".into(), name(id)],
        )
        .await
    }

    async fn create_endpoint(
        &self,
        network: &str,
        _: Uuid,
        _: Uuid,
        _: &[PublishedPort],
    ) -> Result<Endpoint, HostError> {
        Err(HostError::new(
            "HcnCreateEndpoint",
            E_NOT_SUPPORTED,
            format!(
                "no CNI configuration names network {network:?}, and HCN networks exist only on Windows"
            ),
        ))
    }

    async fn delete_endpoint(&self, _: Uuid) -> Result<(), HostError> {
        Ok(())
    }

    fn cni_netns(&self, id: Uuid) -> String {
        netns_path(id).to_string_lossy().into_owned()
    }

    async fn query_namespace(&self, id: Uuid) -> Result<serde_json::Value, HostError> {
        // Interfaces in a Linux namespace are not HCN endpoints: no `Resources` to list.
        if netns_path(id).exists() {
            Ok(serde_json::json!({ "ID": id.to_string(), "Path": netns_path(id) }))
        } else {
            Err(HostError::new(
                "HcnOpenNamespace",
                E_NOT_FOUND,
                id.to_string(),
            ))
        }
    }

    async fn query_endpoint(&self, id: Uuid) -> Result<Endpoint, HostError> {
        Err(HostError::new(
            "HcnOpenEndpoint",
            E_NOT_FOUND,
            id.to_string(),
        ))
    }
}
