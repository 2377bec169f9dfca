//! Windows calls the store needs (its access list); the only `unsafe` in this crate.

#[cfg(windows)]
pub mod windows;
