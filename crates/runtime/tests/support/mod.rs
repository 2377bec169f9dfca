//! Test support shared by the runtime tests.
pub mod fake_hcs;
pub mod fake_layers;
