//! What `pane network ls` and `pane network inspect` show of the CNI networks: each
//! network's plugins and subnets, and in full its configuration as the plugins get it, the
//! addresses its `host-local` holds and the containers attached to it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::{CniNetworks, PreparedNetwork};
use crate::error::RuntimeError;

/// What `pane network ls` shows of one CNI network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CniNetworkSummary {
    pub name: String,
    /// The plugin chain, first to last.
    pub plugins: Vec<String>,
    pub cni_version: String,
    pub file: PathBuf,
    /// The slice, when the network takes its addresses from it; else the subnets its
    /// IPAM names.
    pub subnets: Vec<String>,
    pub uses_slice: bool,
    /// Containers attached through pane.
    pub attachments: usize,
}

/// One CNI network in full, for `pane network inspect`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CniNetworkDetail {
    #[serde(flatten)]
    pub summary: CniNetworkSummary,
    /// The configuration list as its plugins get it (the slice filled in).
    pub configuration: Value,
    /// Addresses the slice's `host-local` holds for it.
    pub addresses_in_use: Vec<IpAddr>,
    /// Of those, the ones outside the current slice: held by containers created before
    /// the slice changed, given back when they are removed.
    pub addresses_outside_slice: Vec<IpAddr>,
    pub attachments: Vec<AttachmentSummary>,
}

/// A container attached to a CNI network, from the attachment cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttachmentSummary {
    pub container: String,
    pub interface: String,
    pub netns: String,
    pub ips: Vec<String>,
    /// ADD did not finish (pane died during it); the next reconcile DELs it.
    pub incomplete: bool,
}

impl CniNetworks {
    /// Every usable network, first directory first, and the files that are not usable.
    pub fn list(&self) -> Result<(Vec<CniNetworkSummary>, Vec<String>), RuntimeError> {
        let mut seen = HashSet::new();
        let mut networks = Vec::new();
        let mut broken = Vec::new();
        for scan in self.scans()? {
            broken.extend(scan.broken.into_iter().map(|b| b.error.to_string()));
            for list in scan.lists {
                if !seen.insert(list.name.clone()) {
                    continue;
                }
                match self.prepare(&list) {
                    Ok(prepared) => networks.push(self.summary(&prepared)),
                    Err(e) => broken.push(e.to_string()),
                }
            }
        }
        Ok((networks, broken))
    }

    fn summary(&self, prepared: &PreparedNetwork) -> CniNetworkSummary {
        let list = &prepared.list;
        let subnets = if prepared.uses_slice {
            self.node_slice
                .map(|s| vec![s.to_string()])
                .unwrap_or_default()
        } else {
            list.plugins
                .iter()
                .filter_map(|p| p.raw.get("ipam"))
                .flat_map(ipam_subnets)
                .collect()
        };
        CniNetworkSummary {
            name: list.name.clone(),
            plugins: list.plugins.iter().map(|p| p.plugin_type.clone()).collect(),
            cni_version: list.cni_version.clone(),
            file: list.source.clone(),
            subnets,
            uses_slice: prepared.uses_slice,
            attachments: self.client.cache().list(&list.name).map_or(0, |l| l.len()),
        }
    }

    /// The network named `name` in full, or `None` when no configuration names it.
    pub fn detail(&self, name: &str) -> Result<Option<CniNetworkDetail>, RuntimeError> {
        let Some(prepared) = self.find(name)? else {
            return Ok(None);
        };
        let held = if prepared.uses_slice {
            self.held_addresses(name)
        } else {
            Vec::new()
        };
        let outside = held
            .iter()
            .copied()
            .filter(|a| !self.node_slice.is_some_and(|s| s.contains(*a)))
            .collect();
        let attachments = self
            .client
            .cache()
            .list(name)
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let ips = entry
                    .result
                    .as_ref()
                    .and_then(|r| pane_net::cni::result::typed(r).ok())
                    .map(|r| r.ips.into_iter().map(|ip| ip.address).collect())
                    .unwrap_or_default();
                AttachmentSummary {
                    container: entry.container_id,
                    interface: entry.if_name,
                    netns: entry.netns,
                    ips,
                    incomplete: entry.result.is_none(),
                }
            })
            .collect();
        Ok(Some(CniNetworkDetail {
            summary: self.summary(&prepared),
            configuration: prepared.list.to_json(),
            addresses_in_use: held,
            addresses_outside_slice: outside,
            attachments,
        }))
    }
}

/// The subnets an IPAM configuration names (`subnet`, and each range's).
fn ipam_subnets(ipam: &Value) -> Vec<String> {
    let mut subnets = Vec::new();
    if let Some(subnet) = ipam.get("subnet").and_then(Value::as_str) {
        subnets.push(subnet.to_owned());
    }
    if let Some(Value::Array(sets)) = ipam.get("ranges") {
        for set in sets {
            for range in set.as_array().into_iter().flatten() {
                if let Some(subnet) = range.get("subnet").and_then(Value::as_str) {
                    subnets.push(subnet.to_owned());
                }
            }
        }
    }
    subnets
}
