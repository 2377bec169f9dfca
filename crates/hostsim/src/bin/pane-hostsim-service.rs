//! `pane-hostsim-service`: the simulated host's state, as `vmcompute.exe` holds it on a real
//! host. Listens on loopback TCP and writes its address where the client DLL looks for it.
//!
//! Usage: `pane-hostsim-service [ADDRESS]` (default `127.0.0.1:0`, any free port). The
//! address is written to `%ProgramData%\pane-hostsim\service.addr`, or only printed when
//! `PANE_HOSTSIM_ADDR` is set (then the clients read that variable instead).

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;

    use computecore::protocol::{ADDRESS_ENV, ADDRESS_FILE};
    use computecore::service::{Host, server, windows::WindowsSpawner};

    let wanted = std::env::args()
        .nth(1)
        .or_else(|| std::env::var(ADDRESS_ENV).ok())
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = match std::net::TcpListener::bind(&wanted) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pane-hostsim-service: cannot listen on {wanted}: {e}");
            return ExitCode::from(2);
        }
    };
    let address = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pane-hostsim-service: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::var_os(ADDRESS_ENV).is_none() {
        let Some(data) = std::env::var_os("ProgramData") else {
            eprintln!("pane-hostsim-service: %ProgramData% is not set");
            return ExitCode::from(2);
        };
        let file = std::path::Path::new(&data).join(ADDRESS_FILE);
        let staged = file.with_extension("tmp");
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&staged, address.to_string()))
            .and_then(|()| std::fs::rename(&staged, &file));
        if let Err(e) = written {
            eprintln!("pane-hostsim-service: writing {}: {e}", file.display());
            return ExitCode::from(2);
        }
    }
    println!("pane-hostsim-service listening on {address}");
    let seed = std::env::var(server::SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok());
    let host = Host::new(Box::new(WindowsSpawner));
    match server::serve(&host, &listener, seed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pane-hostsim-service: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "pane-hostsim-service runs on Windows (under wine); build it for x86_64-pc-windows-gnu"
    );
    std::process::ExitCode::from(2)
}
