//! The service's loopback listener: a thread a connection, each speaking one of the
//! conversations of [`crate::protocol`].

use std::io::{self, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::{FaultAction, Host};
use crate::protocol::{self, Event, Request};

/// Makes the delivery order of events reproducible: each event of a subscription waits a
/// pseudo-random 0–15 ms drawn from this seed, so a system's and its processes' events
/// interleave differently from seed to seed (HCS promises no order between them).
pub const SEED_ENV: &str = "PANE_HOSTSIM_SEED";

/// When set (to anything), the service logs each request, its result and each handle
/// closing to stderr.
pub const TRACE_ENV: &str = "PANE_HOSTSIM_TRACE";

fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(TRACE_ENV).is_some())
}

/// Serves `listener` until it fails.
pub fn serve(host: &Arc<Host>, listener: &TcpListener, seed: Option<u64>) -> io::Result<()> {
    let mut connection = 0u64;
    loop {
        let (stream, _) = listener.accept()?;
        connection += 1;
        let host = Arc::clone(host);
        let seed = seed.map(|s| s ^ connection.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        std::thread::spawn(move || {
            if let Err(e) = conversation(&host, &stream, seed) {
                eprintln!("pane-hostsim-service: connection {connection}: {e}");
            }
        });
    }
}

fn conversation(host: &Host, stream: &TcpStream, seed: Option<u64>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(request) = protocol::receive::<Request>(&mut reader)? else {
        return Ok(());
    };
    if tracing() {
        eprintln!(
            "request {}",
            serde_json::to_string(&request).unwrap_or_default()
        );
    }
    match host.fault(&request) {
        None => {}
        Some(FaultAction::Fail(hresult)) => {
            let response = crate::protocol::Response::error(
                hresult,
                &format!("fault injected into {}", request.name()),
            );
            return protocol::send(stream, &response);
        }
        Some(FaultAction::Stall(time)) => std::thread::sleep(time),
        Some(FaultAction::Crash) => {
            eprintln!(
                "pane-hostsim-service: crashing at {} (fault injected)",
                request.name()
            );
            std::process::exit(3);
        }
    }
    let (tx, rx) = mpsc::channel();
    let response = match request {
        Request::Create { id, document } => host.create(id, &document, tx),
        Request::Open { id } => host.open(&id, tx),
        Request::CreateProcess {
            id,
            parameters,
            client_pid,
        } => host.create_process(&id, &parameters, client_pid, tx),
        Request::OpenProcess { id, pid } => host.open_process(&id, pid, tx),
        request => {
            let response = host.handle(request);
            if tracing() {
                eprintln!(
                    "  -> 0x{:08X} {}",
                    response.hresult,
                    response.document.as_deref().unwrap_or("")
                );
            }
            return protocol::send(stream, &response);
        }
    };
    if tracing() {
        eprintln!(
            "  -> 0x{:08X} handle {:?} {}",
            response.hresult,
            response.handle,
            response.document.as_deref().unwrap_or("")
        );
    }
    let failed = response.hresult & 0x8000_0000 != 0;
    let system_handle = response.handle;
    protocol::send(stream, &response)?;
    if failed {
        return Ok(());
    }
    // The connection is the handle from here on.
    let streamed = stream_events(stream, reader, rx, seed);
    if tracing() {
        eprintln!("handle closed: system handle {system_handle:?}");
    }
    if let Some(handle) = system_handle {
        host.close_handle(handle);
    }
    streamed
}

/// Writes the handle's events (on a thread of its own) until the client closes the
/// connection, which this thread sees as the end of its input.
fn stream_events(
    stream: &TcpStream,
    mut reader: BufReader<TcpStream>,
    events: mpsc::Receiver<Event>,
    seed: Option<u64>,
) -> io::Result<()> {
    let closed = Arc::new(AtomicBool::new(false));
    let writer = {
        let closed = Arc::clone(&closed);
        let stream = stream.try_clone()?;
        std::thread::spawn(move || {
            let mut state = seed.unwrap_or(0) | 1;
            while !closed.load(Ordering::SeqCst) {
                match events.recv_timeout(Duration::from_millis(200)) {
                    Ok(event) => {
                        if seed.is_some() {
                            // xorshift64
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            std::thread::sleep(Duration::from_millis(state % 16));
                        }
                        if protocol::send(&stream, &event).is_err() {
                            return;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // The object is gone; the handle stays open until the client closes it.
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })
    };
    let mut sink = Vec::new();
    let _ = io::copy(&mut reader, &mut sink);
    closed.store(true, Ordering::SeqCst);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(writer);
    Ok(())
}
