//! A simulated Windows container host, for running the real `pane.exe` under wine.
//!
//! Built for `x86_64-pc-windows-gnu`, this crate is `computecore.dll` (installed also as
//! `vmcompute.dll` and `computenetwork.dll`): the HCS, layer and HCN entry points pane
//! resolves, each a thin client of `pane-hostsim-service`, which holds the state (as
//! vmcompute.exe does on a real host). Behaviour follows Microsoft's HCS reference, not
//! pane's code, so the two can disagree. See README.md for what is simulated and what not.
//! On other targets only the portable model (protocol, schema validation, state machine)
//! is built, for its unit tests.

pub mod backup_stream;
pub mod hresult;
pub mod protocol;
pub mod schema;
mod schema_vm;
pub mod service;

#[cfg(windows)]
mod backup_exports;
#[cfg(windows)]
mod client;
#[cfg(windows)]
mod exports;
#[cfg(windows)]
mod ffi;
#[cfg(windows)]
mod hcn_exports;
#[cfg(windows)]
mod vmcompute_exports;
