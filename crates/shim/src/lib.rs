//! The shim API: what a detached container's supervisor serves to every `pane` process, so
//! any of them can exec in, attach to, kill, stop, resize, wait for and read the stats and
//! state of the container, in both isolations (Hyper-V through the one guest connection the
//! shim holds).
//!
//! The protocol is length-prefixed frames over a per-container Unix socket or named pipe
//! (`endpoint`): JSON control messages, raw data frames for stdio (`frame`), a versioned
//! handshake (`protocol`). `docs/shim-api.md` says why this and not ttrpc or gRPC.

pub mod client;
pub mod endpoint;
pub mod frame;
pub mod protocol;
pub mod server;
mod sys;
pub mod target;

pub use client::{ClientSession, ShimClient, ShimClientError};
pub use protocol::{ConsoleSize, ExecRequest, Op, PROTOCOL};
pub use server::serve_connection;
pub use target::{Resize, Session, ShimTarget};
