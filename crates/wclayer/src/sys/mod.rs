//! The Windows layer API (vmcompute.dll's graph-driver calls), loaded at run time.
#[cfg(windows)]
mod windows;

#[cfg(windows)]
pub use self::windows::{
    activate, activate_and_prepare, create_scratch, deactivate, destroy, expand_scratch,
    mount_path, name_to_guid, prepare, process_utility_vm, unprepare,
};
