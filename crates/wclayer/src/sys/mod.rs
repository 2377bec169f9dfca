//! The Windows layer API (vmcompute.dll's graph-driver calls), loaded at run time, and the
//! file calls an import needs (backup semantics, privileges, SDDL).
#[cfg(windows)]
mod backup_write;
#[cfg(windows)]
mod files;
#[cfg(windows)]
mod prepare_gate;
#[cfg(windows)]
pub mod safe_open;
#[cfg(windows)]
mod windows;

#[cfg(windows)]
pub use self::files::{
    BackupFile, copy_with_metadata, enable_backup_privileges, security_descriptor_from_sddl,
    set_basic_info_of_directory,
};
#[cfg(windows)]
pub use self::safe_open::{Create, Root};
#[cfg(windows)]
pub use self::windows::{
    activate, activate_and_prepare, create_scratch, deactivate, destroy, expand_scratch,
    import_layer, layer_id, mount_path, name_to_guid, prepare, process_base_image,
    process_utility_vm, unprepare,
};

/// The binary form of an SDDL security descriptor (`MSWINDOWS.sd`). Only Windows can
/// convert one; layers written since 2018 carry the binary form (`MSWINDOWS.rawsd`).
#[cfg(not(windows))]
pub fn security_descriptor_from_sddl(_sddl: &str) -> Result<Vec<u8>, String> {
    Err(
        "its security descriptor is in SDDL form (MSWINDOWS.sd), which only a Windows host \
         can convert; re-export the layer with a current tool to get MSWINDOWS.rawsd"
            .to_owned(),
    )
}
