//! Hyper-V sockets (`AF_HYPERV`) through socket2, handed to tokio as TCP-shaped sockets.
//!
//! Winsock treats every stream socket alike for I/O, so after accept/connect an `AF_HYPERV`
//! socket is driven by tokio's TCP types. Accept itself is not: std's converts the peer
//! address and refuses `AF_HYPERV` (see `accept.rs`), so socket2 accepts. Not yet run on a
//! Windows host (neither Linux nor wine has `AF_HYPERV`): the shapes follow go-winio and
//! Microsoft's "Make your own integration services" hvsocket page.
#![allow(unsafe_code)]

use std::io;
use std::os::windows::io::{FromRawSocket, IntoRawSocket};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use uuid::Uuid;
use windows::Win32::Networking::WinSock::{ADDRESS_FAMILY, AF_HYPERV};
use windows::Win32::System::Hypervisor::{HV_PROTOCOL_RAW, SOCKADDR_HV};
use windows::core::GUID;

use super::BoxStream;

const BACKLOG: i32 = 16;

#[derive(Debug)]
pub struct HvListener(Socket);

impl HvListener {
    pub async fn accept(&self) -> io::Result<BoxStream> {
        let socket = super::accept::accept(&self.0).await?;
        // SAFETY: the raw socket comes from `into_raw_socket`, so ownership moves to the std
        // stream exactly once.
        let stream = unsafe { std::net::TcpStream::from_raw_socket(socket.into_raw_socket()) };
        Ok(Box::new(tokio::net::TcpStream::from_std(stream)?))
    }
}

fn socket() -> io::Result<Socket> {
    #[allow(clippy::cast_possible_wrap)] // both constants are small positive numbers
    Socket::new(
        Domain::from(i32::from(AF_HYPERV)),
        Type::STREAM,
        Some(Protocol::from(HV_PROTOCOL_RAW as i32)),
    )
}

fn address(vm_id: Uuid, service: Uuid) -> io::Result<SockAddr> {
    let hv = SOCKADDR_HV {
        Family: ADDRESS_FAMILY(AF_HYPERV),
        Reserved: 0,
        VmId: GUID::from_u128(vm_id.as_u128()),
        ServiceId: GUID::from_u128(service.as_u128()),
    };
    let len = i32::try_from(std::mem::size_of::<SOCKADDR_HV>())
        .map_err(|_| io::Error::other("SOCKADDR_HV size does not fit socklen"))?;
    // SAFETY: socket2 hands a zeroed sockaddr_storage (128 bytes, suitably aligned), which is
    // larger than SOCKADDR_HV (36 bytes); writing one SOCKADDR_HV at its start and reporting
    // that length is exactly what `try_init` asks of the closure.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, storage_len| {
            storage.cast::<SOCKADDR_HV>().write_unaligned(hv);
            *storage_len = len;
            Ok(())
        })?
    };
    Ok(addr)
}

pub fn listen(vm_id: Uuid, service: Uuid) -> io::Result<HvListener> {
    let socket = socket()?;
    socket.bind(&address(vm_id, service)?)?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(HvListener(socket))
}

pub async fn connect(vm_id: Uuid, service: Uuid) -> io::Result<BoxStream> {
    let address = address(vm_id, service)?;
    let socket = tokio::task::spawn_blocking(move || {
        let socket = socket()?;
        socket.connect(&address)?;
        socket.set_nonblocking(true)?;
        Ok::<_, io::Error>(socket)
    })
    .await
    .map_err(io::Error::other)??;
    // SAFETY: as in `listen`: ownership of the raw socket moves to the std stream once.
    let stream = unsafe { std::net::TcpStream::from_raw_socket(socket.into_raw_socket()) };
    Ok(Box::new(tokio::net::TcpStream::from_std(stream)?))
}
