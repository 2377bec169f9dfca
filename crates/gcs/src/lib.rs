//! The bridge between the host and the guest compute service (GCS) of a Hyper-V utility VM.
//!
//! - [`frame`]: the 16-byte header and message type encoding;
//! - [`messages`] and [`settings`]: every request, response and guest setting, field for
//!   field as hcsshim sends them;
//! - [`bridge::Bridge`]: requests multiplexed by id, notifications, timeouts, close;
//! - [`host::GuestConnection`]: negotiation, cold start, container and process calls, stdio
//!   relay;
//! - [`transport`]: hvsock on Windows, Unix sockets and TCP loopback everywhere;
//! - [`peer::GuestPeer`]: a guest that runs real processes, for tests and development.

pub mod bridge;
pub mod error;
pub mod frame;
pub mod host;
pub mod messages;
pub mod peer;
pub mod rpc;
pub mod settings;
pub mod transport;

pub use bridge::Bridge;
pub use error::BridgeError;
pub use host::{ConnectOptions, GuestConnection, GuestProcess, Timeouts};
pub use peer::{GuestPeer, PeerConfig};
pub use rpc::Rpc;
pub use transport::Transport;
