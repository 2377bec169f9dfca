//! The Windows HCS API (computecore.dll), loaded at run time.
#[cfg(windows)]
mod windows;

#[cfg(windows)]
pub use self::windows::{ComputeSystem, Process, available, enumerate, grant_vm_access};
