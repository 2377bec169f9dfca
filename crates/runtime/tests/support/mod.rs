//! Test support shared by the runtime tests and benchmarks.
pub mod fake_hcs;
pub mod fake_layers;
pub mod fake_network;
pub mod fixtures;
#[cfg(unix)]
pub mod guest;
