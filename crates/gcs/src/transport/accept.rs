//! Accepting on a socket of any address family.
//!
//! std's (and so tokio's and mio's) `TcpListener::accept` converts the peer's address into
//! a `SocketAddr` and fails for any family but IPv4 and IPv6, after the connection has been
//! taken off the queue: an `AF_HYPERV` listener wrapped as a `TcpListener` accepts every
//! guest connection and drops it. socket2 returns the peer address raw (`SockAddr`), so the
//! accept itself is done by socket2 on a non-blocking socket, polled; the accepted socket
//! is then handed to tokio for its I/O, which, unlike accept, does not care about the
//! family. (go-winio accepts hvsock connections with `AcceptEx` for the same reason.)
//!
//! A guest connects a handful of times per container (the bridge, then one stream per stdio
//! pipe), so a short poll interval costs nothing measurable and keeps accept cancellable:
//! dropping the future leaves no thread blocked in `accept`.

use std::io;
use std::time::Duration;

use socket2::Socket;

/// How long a pending accept sleeps between tries.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Waits for the next connection on `listener` (bound, listening, non-blocking) and returns
/// it as a non-blocking socket.
#[cfg_attr(not(windows), allow(dead_code))] // used by the hvsock transport; tested here
pub async fn accept(listener: &Socket) -> io::Result<Socket> {
    loop {
        match listener.accept() {
            Ok((socket, _peer)) => {
                socket.set_nonblocking(true)?;
                return Ok(socket);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code
mod tests {
    use std::os::fd::OwnedFd;

    use socket2::{Domain, SockAddr, Type};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A listener of a family std cannot name: a Unix socket stands in for `AF_HYPERV`.
    fn unix_listener(dir: &std::path::Path) -> (Socket, SockAddr) {
        let address = SockAddr::unix(dir.join("service.sock")).unwrap();
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&address).unwrap();
        listener.listen(4).unwrap();
        listener.set_nonblocking(true).unwrap();
        (listener, address)
    }

    #[tokio::test]
    async fn a_tcp_shaped_accept_drops_a_connection_of_another_family() {
        let dir = tempfile::tempdir().unwrap();
        let (listener, address) = unix_listener(dir.path());
        // What the hvsock transport did: the listener handed to tokio as a TcpListener.
        let std_listener = std::net::TcpListener::from(listener);
        let tcp = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let client = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        client.connect(&address).unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(5), tcp.accept())
            .await
            .expect("accept returns");
        assert!(refused.is_err(), "std cannot take a non-IP peer address");
    }

    #[tokio::test]
    async fn socket2_accepts_a_connection_of_any_family_and_tokio_drives_it() {
        let dir = tempfile::tempdir().unwrap();
        let (listener, address) = unix_listener(dir.path());
        let client = tokio::task::spawn_blocking(move || {
            let client = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            client.connect(&address).unwrap();
            let mut stream = std::os::unix::net::UnixStream::from(client);
            std::io::Write::write_all(&mut stream, b"ping").unwrap();
            stream
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), accept(&listener))
            .await
            .expect("accept returns")
            .unwrap();
        let std_stream = std::os::unix::net::UnixStream::from(OwnedFd::from(accepted));
        let mut stream = tokio::net::UnixStream::from_std(std_stream).unwrap();
        let mut buffer = [0u8; 4];
        stream.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"ping");
        stream.write_all(b"pong").await.unwrap();
        drop(client.await.unwrap());
    }
}
