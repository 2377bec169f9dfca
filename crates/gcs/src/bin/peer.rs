//! `pane-gcs-peer`: a stand-in guest compute service for development.
//!
//! It dials the host's GCS service over a Unix socket directory or TCP loopback (as the
//! utility VM's guest agent dials hvsock) and serves the bridge, running real processes.
//!
//! ```text
//! pane-gcs-peer --unix /tmp/bridge          # service files in /tmp/bridge
//! pane-gcs-peer --tcp 127.0.0.1:41000       # GCS on 41000, stdio relays above it
//! ```

use std::process::ExitCode;

use pane_gcs::transport::{GCS_SERVICE_ID, Transport};
use pane_gcs::{GuestPeer, PeerConfig};

const USAGE: &str = "usage: pane-gcs-peer (--unix DIR | --tcp ADDRESS:BASE_PORT)";

fn transport_from_args(args: &[String]) -> Result<Transport, String> {
    match args {
        #[cfg(unix)]
        [flag, dir] if flag == "--unix" => Ok(Transport::Unix { dir: dir.into() }),
        [flag, address] if flag == "--tcp" => {
            let address: std::net::SocketAddr = address
                .parse()
                .map_err(|e| format!("--tcp {address}: {e}; expected e.g. 127.0.0.1:41000"))?;
            Ok(Transport::Tcp {
                address: address.ip(),
                base_port: address.port(),
            })
        }
        _ => Err(USAGE.to_owned()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let transport = match transport_from_args(&args) {
        Ok(transport) => transport,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pane-gcs-peer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stream = transport.connect(GCS_SERVICE_ID).await?;
        GuestPeer::new(PeerConfig::windows_guest(transport))
            .serve(stream)
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pane-gcs-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
