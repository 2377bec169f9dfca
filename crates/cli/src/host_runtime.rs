//! The runtime a container command works with: HCS and vmcompute on a Windows host with the
//! Containers feature; elsewhere a backend that refuses every host call, so the commands
//! that only read pane's records (`ps`, `inspect`, `logs`) still work and the others say
//! what the host lacks.

use std::sync::Arc;

use pane_runtime::backend::{Compute, Layers, NoHost};
use pane_runtime::hcs_runtime::{HcsRuntime, RuntimeSettings};
use pane_runtime::host::{self, HcsSupport};
use pane_runtime::images::ImageSettings;

use pane_runtime::cni_networks::{self, CniNetworks, CniSettings};

use crate::cli::GlobalArgs;

/// Where the CNI configuration and plugins are: the flags, else under `--root`; with
/// `--cni-containerd`, containerd's directories after those.
pub fn cni_settings(global: &GlobalArgs) -> CniSettings {
    let mut settings = CniSettings::under_root(&global.root);
    if let Some(dir) = &global.cni_conf_dir {
        settings.conf_dirs = vec![dir.clone()];
    }
    if !global.cni_bin_dir.is_empty() {
        settings.bin_dirs.clone_from(&global.cni_bin_dir);
    }
    if global.cni_containerd {
        if cfg!(windows) {
            settings
                .conf_dirs
                .push(cni_networks::CONTAINERD_CONF_DIR.into());
            settings
                .bin_dirs
                .push(cni_networks::CONTAINERD_BIN_DIR.into());
        } else {
            // Off Windows the path would be read relative to the working directory.
            tracing::warn!(
                "--cni-containerd names containerd's Windows directories; ignored here (use --cni-conf-dir)"
            );
        }
    }
    settings.node_slice = global.node_slice;
    settings
}

type Failure = Box<dyn std::error::Error>;

pub struct Host {
    pub runtime: HcsRuntime,
    /// Why containers cannot run here, when they cannot.
    pub unusable: Option<String>,
    pub tokio: tokio::runtime::Runtime,
}

impl Host {
    pub fn open(global: &GlobalArgs) -> Result<Self, Failure> {
        let info = host::probe();
        let unusable = match &info.hcs {
            HcsSupport::Available => None,
            HcsSupport::Unavailable { reason, fix } => Some(format!("{reason}; {fix}")),
        };
        let (compute, layers) = backends(unusable.as_deref());
        let container_host = unusable.is_none();
        let processors = host::processor_count();
        let runtime = HcsRuntime::new(
            compute,
            layers,
            RuntimeSettings {
                root: global.root.clone(),
                owner: global.owner.clone(),
                host_build: info.os_version,
                host_processors: processors,
                images: ImageSettings {
                    host_build: info.os_version,
                    read_timeout: std::time::Duration::from_secs(global.registry_timeout),
                    ..ImageSettings::default()
                },
            },
        )?;
        let runtime = runtime.with_cni(Arc::new(CniNetworks::open(
            &global.root,
            &global.owner,
            cni_settings(global),
        )));
        // A detached container's supervisor holds it; reconcile asks its shim.
        let runtime = runtime.with_holders(Arc::new(
            pane_runtime::shim_target::ShimHolders::under(&global.root, env!("CARGO_PKG_VERSION")),
        ));
        let runtime = if container_host {
            with_guests(runtime)
        } else {
            runtime
        };
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime,
            unusable,
            tokio,
        })
    }

    /// Fails with what this host lacks, before a command starts anything.
    pub fn require_containers(&self) -> Result<(), String> {
        match &self.unusable {
            None => Ok(()),
            Some(reason) => Err(format!("containers cannot run on this host: {reason}")),
        }
    }
}

#[cfg(windows)]
fn backends(unusable: Option<&str>) -> (Arc<dyn Compute>, Arc<dyn Layers>) {
    match unusable {
        None => (
            Arc::new(pane_runtime::windows_backend::HcsCompute::default()),
            Arc::new(pane_runtime::windows_backend::VmcomputeLayers),
        ),
        Some(reason) => no_host(reason),
    }
}

#[cfg(windows)]
fn with_guests(runtime: HcsRuntime) -> HcsRuntime {
    runtime
        .with_guest_connector(Arc::new(pane_runtime::windows_backend::HvSocketGuests))
        .with_network(Arc::new(pane_runtime::windows_backend::HcnNetwork))
}

#[cfg(not(windows))]
fn with_guests(runtime: HcsRuntime) -> HcsRuntime {
    runtime
}

#[cfg(not(windows))]
fn backends(unusable: Option<&str>) -> (Arc<dyn Compute>, Arc<dyn Layers>) {
    no_host(unusable.unwrap_or("HCS exists only on Windows"))
}

fn no_host(reason: &str) -> (Arc<dyn Compute>, Arc<dyn Layers>) {
    let backend = Arc::new(NoHost {
        reason: reason.to_owned(),
    });
    (backend.clone(), backend)
}
