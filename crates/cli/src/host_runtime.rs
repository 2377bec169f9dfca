//! The runtime a container command works with: HCS and vmcompute on a Windows host with the
//! Containers feature; elsewhere a backend that refuses every host call, so the commands
//! that only read pane's records (`ps`, `inspect`, `logs`) still work and the others say
//! what the host lacks.

use std::sync::Arc;

use pane_runtime::backend::{Compute, Layers, NoHost};
use pane_runtime::hcs_runtime::{HcsRuntime, RuntimeSettings};
use pane_runtime::host::{self, HcsSupport};
use pane_runtime::images::ImageSettings;

use crate::cli::GlobalArgs;

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
