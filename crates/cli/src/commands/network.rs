//! `pane network ls` and `pane network inspect`: the CNI networks of the configuration
//! directories and, on a Windows container host, the HCN networks.

use std::process::ExitCode;

use pane_runtime::cni_networks::CniNetworkSummary;

use crate::cli::{GlobalArgs, NetworkInspectArgs};
use crate::exit;
use crate::host_runtime::Host;

type Failure = Box<dyn std::error::Error>;

/// One row of `pane network ls`.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: String,
    /// `cni`, or `hcn/<HCN type>`.
    kind: String,
    subnets: Vec<String>,
    /// The configuration file, or `HCN` for a host network.
    source: String,
    /// The CNI plugin chain.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    plugins: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    node_slice: bool,
}

fn cni_row(network: CniNetworkSummary) -> Row {
    Row {
        name: network.name,
        kind: "cni".into(),
        subnets: network.subnets,
        source: network.file.display().to_string(),
        plugins: network.plugins,
        node_slice: network.uses_slice,
    }
}

pub fn ls(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let host = Host::open(global)?;
    let mut rows = Vec::new();
    let mut status = ExitCode::SUCCESS;
    if let Some(cni) = host.runtime.cni() {
        match cni.list() {
            Ok((networks, broken)) => {
                rows.extend(networks.into_iter().map(cni_row));
                for error in broken {
                    eprintln!("pane: skipped a CNI configuration: {error}");
                }
            }
            Err(e) => status = super::containers::report(&e),
        }
    }
    match hcn_networks(&host) {
        Ok(networks) => rows.extend(networks),
        Err(e) => eprintln!("pane: {e}"),
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(status);
    }
    println!("{:<24} {:<16} {:<22} SOURCE", "NAME", "TYPE", "SUBNET");
    for row in &rows {
        let kind = if row.node_slice {
            format!("{} (slice)", row.kind)
        } else {
            row.kind.clone()
        };
        let subnets = if row.subnets.is_empty() {
            "-".to_owned()
        } else {
            row.subnets.join(",")
        };
        println!("{:<24} {kind:<16} {subnets:<22} {}", row.name, row.source);
    }
    if rows.is_empty() {
        let dirs = host
            .runtime
            .cni()
            .map(|c| {
                c.conf_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        eprintln!(
            "pane: no networks; put CNI configuration lists in {dirs} (see docs/cni.md), or on Windows create an HCN network"
        );
    }
    Ok(status)
}

pub fn inspect(global: &GlobalArgs, args: &NetworkInspectArgs) -> Result<ExitCode, Failure> {
    let host = Host::open(global)?;
    if let Some(cni) = host.runtime.cni() {
        match cni.detail(&args.name) {
            Ok(Some(detail)) => {
                println!("{}", serde_json::to_string_pretty(&detail)?);
                return Ok(ExitCode::SUCCESS);
            }
            Ok(None) => {}
            Err(e) => return Ok(super::containers::report(&e)),
        }
    }
    if let Some(network) = hcn_network(&host, &args.name) {
        println!("{}", serde_json::to_string_pretty(&network)?);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "pane: no network {:?}; `pane network ls` lists the networks pane can use",
        args.name
    );
    Ok(ExitCode::from(exit::INVALID_INPUT))
}

#[cfg(windows)]
fn hcn_list(host: &Host) -> Result<Vec<pane_net::HostComputeNetwork>, String> {
    if let Some(reason) = &host.unusable {
        return Err(format!("HCN networks are not listed: {reason}"));
    }
    host.tokio
        .block_on(pane_runtime::windows_backend::hcn_networks())
        .map_err(|e| format!("cannot list HCN networks: {e}"))
}

#[cfg(not(windows))]
#[allow(clippy::unnecessary_wraps)] // the Windows twin can fail
fn hcn_list(_: &Host) -> Result<Vec<pane_net::HostComputeNetwork>, String> {
    // HCN exists only on Windows; nothing to list, and nothing to say about it.
    Ok(Vec::new())
}

fn hcn_networks(host: &Host) -> Result<Vec<Row>, String> {
    Ok(hcn_list(host)?
        .into_iter()
        .map(|network| Row {
            subnets: network.subnets(),
            kind: format!("hcn/{}", network.kind),
            name: network.name,
            source: "HCN".into(),
            plugins: Vec::new(),
            node_slice: false,
        })
        .collect())
}

fn hcn_network(host: &Host, name: &str) -> Option<pane_net::HostComputeNetwork> {
    match hcn_list(host) {
        Ok(networks) => networks.into_iter().find(|n| n.name == name),
        Err(e) => {
            eprintln!("pane: {e}");
            None
        }
    }
}
