//! Byte streams between host and guest.
//!
//! A Windows utility VM is reached over hvsock: an address is a VM id plus a service id, the
//! host listens and the guest dials. Elsewhere the same roles run over Unix sockets (one
//! socket file per service id in a directory) or TCP loopback (one port per service), so
//! the whole bridge, stdio relay included, is exercised with real sockets.

mod accept;
#[cfg(windows)]
pub mod address_info;
#[cfg(windows)]
mod hvsock;

use std::io;
use std::net::{IpAddr, SocketAddr};
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

/// The WCOW guest agent dials this service to reach the host.
pub const GCS_SERVICE_ID: Uuid = Uuid::from_u128(0xacef_5661_84a1_4e44_856b_6245_e69f_4620);
/// The namespace of the GUIDs a hosted container is known by to hvsock.
const CONTAINER_SYSTEM_GUID_NAMESPACE: Uuid =
    Uuid::from_u128(0xcab7_0344_facb_41e4_b5e5_ab65_9228_3e6e);

/// The `SystemGUID` a Windows guest gives a hosted container: a v5 UUID of the
/// UTF-16LE upper-cased container id (hcsshim's `hvsocketaddr` tool computes the same).
pub fn container_system_guid(container_id: &str) -> Uuid {
    let name: Vec<u8> = container_id
        .to_uppercase()
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    Uuid::new_v5(&CONTAINER_SYSTEM_GUID_NAMESPACE, &name)
}

/// The first stdio relay port; each pipe of each process takes the next one.
pub const FIRST_STDIO_PORT: u32 = 0x4000_0001;
/// Port 0x40000000, the Linux guest agent's, is the base of the vsock-port template.
const VSOCK_PORT_BASE: u32 = 0x4000_0000;
/// `XXXXXXXX-facb-11e6-bd58-64006a7986d3` with the port as the first field.
const VSOCK_TEMPLATE: u128 = 0x0000_0000_facb_11e6_bd58_6400_6a79_86d3;

/// The hvsock service id that stands for vsock `port`.
pub fn vsock_service_id(port: u32) -> Uuid {
    Uuid::from_u128(VSOCK_TEMPLATE | (u128::from(port) << 96))
}

/// The port of a vsock-template service id, if it is one.
pub fn vsock_port(service: Uuid) -> Option<u32> {
    let value = service.as_u128();
    // The top 32 bits are the port; the template fills the rest.
    #[allow(clippy::cast_possible_truncation)]
    (value & !(0xFFFF_FFFFu128 << 96) == VSOCK_TEMPLATE).then_some((value >> 96) as u32)
}

/// A connected bridge or relay stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Where services live. The caller picks one; both ends of a bridge must use the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Service `S` is the socket file `<dir>/<S>.sock`.
    #[cfg(unix)]
    Unix { dir: PathBuf },
    /// The GCS service is `base_port`; vsock-template service `p` is
    /// `base_port + (p - 0x40000000)`.
    Tcp { address: IpAddr, base_port: u16 },
    /// Hyper-V sockets to or from the VM `vm_id` (on the host: the utility VM's `RuntimeId`).
    #[cfg(windows)]
    HvSock { vm_id: Uuid },
}

impl Transport {
    /// Binds a listener for `service`. Bind before telling the peer to dial.
    pub async fn listen(&self, service: Uuid) -> io::Result<Listener> {
        match self {
            #[cfg(unix)]
            Transport::Unix { dir } => {
                let path = dir.join(format!("{service}.sock"));
                // A socket file left by a crashed run would make bind fail.
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                let listener = tokio::net::UnixListener::bind(&path)?;
                Ok(Listener(ListenerKind::Unix { listener, path }))
            }
            Transport::Tcp { address, base_port } => {
                let port = tcp_port(*base_port, service)?;
                let listener =
                    tokio::net::TcpListener::bind(SocketAddr::new(*address, port)).await?;
                Ok(Listener(ListenerKind::Tcp(listener)))
            }
            #[cfg(windows)]
            Transport::HvSock { vm_id } => {
                hvsock::listen(*vm_id, service).map(|l| Listener(ListenerKind::HvSock(l)))
            }
        }
    }

    /// Dials `service` (the guest side of a bridge or relay).
    pub async fn connect(&self, service: Uuid) -> io::Result<BoxStream> {
        match self {
            #[cfg(unix)]
            Transport::Unix { dir } => {
                let stream =
                    tokio::net::UnixStream::connect(dir.join(format!("{service}.sock"))).await?;
                Ok(Box::new(stream))
            }
            Transport::Tcp { address, base_port } => {
                let port = tcp_port(*base_port, service)?;
                let stream =
                    tokio::net::TcpStream::connect(SocketAddr::new(*address, port)).await?;
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
            #[cfg(windows)]
            Transport::HvSock { vm_id } => hvsock::connect(*vm_id, service).await,
        }
    }
}

fn tcp_port(base_port: u16, service: Uuid) -> io::Result<u16> {
    let offset = if service == GCS_SERVICE_ID {
        Some(0)
    } else {
        vsock_port(service).and_then(|p| p.checked_sub(VSOCK_PORT_BASE))
    };
    offset
        .and_then(|o| u32::from(base_port).checked_add(o))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("service {service} has no TCP port above {base_port}"),
            )
        })
}

/// A bound listener; a Unix listener removes its socket file when dropped.
#[derive(Debug)]
pub struct Listener(ListenerKind);

#[derive(Debug)]
enum ListenerKind {
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
    },
    Tcp(tokio::net::TcpListener),
    #[cfg(windows)]
    HvSock(hvsock::HvListener),
}

impl Listener {
    /// Accepts one connection, or fails with `TimedOut` after `timeout`.
    pub async fn accept(&self, timeout: Duration) -> io::Result<BoxStream> {
        let accept = async {
            match &self.0 {
                #[cfg(unix)]
                ListenerKind::Unix { listener, .. } => listener
                    .accept()
                    .await
                    .map(|(stream, _)| Box::new(stream) as BoxStream),
                ListenerKind::Tcp(listener) => {
                    let (stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    Ok(Box::new(stream) as BoxStream)
                }
                #[cfg(windows)]
                ListenerKind::HvSock(listener) => listener.accept().await,
            }
        };
        tokio::time::timeout(timeout, accept).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {timeout:?}"),
            )
        })?
    }
}

#[cfg(unix)]
impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenerKind::Unix { path, .. } = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn a_hosted_containers_system_guid_is_named_after_its_upper_cased_id() {
        // Computed apart (Python's SHA-1 over the namespace and UTF-16LE "WEB-1").
        let expected = Uuid::parse_str("b3e6b046-a832-5aff-9739-21ac8d299f00").unwrap();
        assert_eq!(container_system_guid("web-1"), expected);
        assert_eq!(container_system_guid("WEB-1"), expected);
    }

    #[test]
    fn vsock_service_ids_follow_the_template() {
        assert_eq!(
            vsock_service_id(0x4000_0001).to_string(),
            "40000001-facb-11e6-bd58-64006a7986d3"
        );
        assert_eq!(vsock_port(vsock_service_id(0x4000_0007)), Some(0x4000_0007));
        assert_eq!(vsock_port(GCS_SERVICE_ID), None);
        assert_eq!(
            GCS_SERVICE_ID.to_string(),
            "acef5661-84a1-4e44-856b-6245e69f4620"
        );
    }

    #[test]
    fn tcp_ports_are_offsets_from_the_base() {
        assert_eq!(tcp_port(20000, GCS_SERVICE_ID).unwrap(), 20000);
        assert_eq!(
            tcp_port(20000, vsock_service_id(FIRST_STDIO_PORT)).unwrap(),
            20001
        );
        assert!(tcp_port(65535, vsock_service_id(FIRST_STDIO_PORT)).is_err());
        assert!(tcp_port(20000, Uuid::nil()).is_err());
    }

    async fn round_trip(transport: Transport) {
        let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
        let dialer = transport.clone();
        let client = tokio::spawn(async move {
            let mut stream = dialer.connect(GCS_SERVICE_ID).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut reply = [0u8; 4];
            stream.read_exact(&mut reply).await.unwrap();
            reply
        });
        let mut server = listener.accept(Duration::from_secs(5)).await.unwrap();
        let mut request = [0u8; 4];
        server.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"ping");
        server.write_all(b"pong").await.unwrap();
        assert_eq!(&client.await.unwrap(), b"pong");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn unix_transport_connects_by_service_id() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(Transport::Unix {
            dir: dir.path().to_owned(),
        })
        .await;
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "listener removed its socket"
        );
    }

    #[tokio::test]
    async fn tcp_transport_connects_by_service_id() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_port = probe.local_addr().unwrap().port();
        drop(probe);
        round_trip(Transport::Tcp {
            address: [127, 0, 0, 1].into(),
            base_port,
        })
        .await;
    }

    #[tokio::test]
    async fn accept_times_out() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_port = probe.local_addr().unwrap().port();
        drop(probe);
        let transport = Transport::Tcp {
            address: [127, 0, 0, 1].into(),
            base_port,
        };
        let listener = transport.listen(GCS_SERVICE_ID).await.unwrap();
        let err = listener
            .accept(Duration::from_millis(20))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
