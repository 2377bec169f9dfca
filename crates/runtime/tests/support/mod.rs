//! Test support shared by the runtime tests.
pub mod fake_hcs;
