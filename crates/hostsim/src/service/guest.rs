//! The guest of a simulated utility VM: the in-tree guest peer (`pane-gcs-peer.exe`), started
//! when the VM starts and ended when it stops, running its processes as real wine processes.
//!
//! A real guest dials the host's GCS service over hvsock (the VM's `RuntimeId` and the GCS
//! service id). Wine has no `AF_HYPERV`, so the one hop that differs is a loopback TCP
//! rendezvous: a pane built with `wine-substitutes` listens on loopback for the VM and
//! writes `127.0.0.1:PORT` to `<RENDEZVOUS_DIR>\<RuntimeId>` before it starts the VM; the
//! simulator, starting the VM, starts the peer with `--tcp` at that address. The peer then
//! dials as the guest would, and the bridge protocol, the stdio relays and every message
//! run as on a host. Nothing boots: the VM's documents are validated, not executed.

use serde_json::json;

use super::{OsProcess, Spawner};

/// Where a pane built with `wine-substitutes` leaves each VM's loopback address.
pub const RENDEZVOUS_DIR: &str = r"C:\ProgramData\pane-hostsim\hvsock";

/// The guest peer's program (`PANE_HOSTSIM_GUEST_PEER`, else where `.ci/wine-e2e` puts it).
fn peer_program() -> String {
    std::env::var("PANE_HOSTSIM_GUEST_PEER")
        .unwrap_or_else(|_| r"C:\hostsim\pane-gcs-peer.exe".to_owned())
}

/// Starts the guest of the VM `runtime_id`, if its host side listens; otherwise the VM runs
/// without a guest agent (as a VM whose GCS never dials: the host's wait times out).
pub fn boot(spawner: &dyn Spawner, runtime_id: uuid::Uuid) -> Option<Box<dyn OsProcess>> {
    let rendezvous = std::path::Path::new(RENDEZVOUS_DIR).join(runtime_id.to_string());
    let Ok(address) = std::fs::read_to_string(&rendezvous) else {
        eprintln!("pane-hostsim: VM {runtime_id} starts without a guest: nothing listens for it");
        return None;
    };
    let address = address.trim();
    if address.parse::<std::net::SocketAddr>().is_err() {
        eprintln!(
            "pane-hostsim: VM {runtime_id}: {address:?} in {} is no address",
            rendezvous.display()
        );
        return None;
    }
    let parameters = json!({ "CommandLine": format!("{} --tcp {address}", peer_program()) });
    let on_exit = Box::new(move |code: u32| {
        eprintln!("pane-hostsim: the guest of VM {runtime_id} exited with {code}");
    });
    match spawner.spawn(&parameters, std::process::id(), on_exit) {
        Ok((process, info)) => {
            eprintln!(
                "pane-hostsim: VM {runtime_id}'s guest is pid {} at {address}",
                info.pid
            );
            Some(process)
        }
        Err((hresult, why)) => {
            eprintln!("pane-hostsim: VM {runtime_id}'s guest did not start ({hresult:#x}): {why}");
            None
        }
    }
}
