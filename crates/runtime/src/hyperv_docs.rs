//! The Hyper-V documents `pane plan` shows and the runtime sends: VSMB shares for the layers
//! and mount sources, the container scratch on SCSI, and the guest's combined layers. One
//! source for both, so a plan is exactly what a create does.

use pane_gcs::settings::{CombinedLayers, GuestLayer, GuestRequest, vsmb_guest_path};
use pane_hcs::doc::{self, LayerRef, SCSI_CONTROLLERS};
use pane_hcs::schema::{Attachment, MappedDirectory, ModifySettingRequest, VirtualSmbShare};
use pane_spec::Mount;
use uuid::Uuid;

/// The container scratch disk's LUN on the first SCSI controller (LUN 0 is the VM's own).
pub const CONTAINER_SCRATCH_LUN: i32 = 1;

/// One VSMB share add.
#[derive(Debug, Clone)]
pub struct ShareRequest {
    pub request: ModifySettingRequest,
    /// A read-only image layer (else a mount source).
    pub layer: bool,
}

/// Every share a container's VM needs, and the layers and mounts as the guest sees them.
#[derive(Debug, Clone)]
pub struct VmShares {
    pub requests: Vec<ShareRequest>,
    pub guest_layers: Vec<LayerRef>,
    pub guest_mounts: Vec<MappedDirectory>,
}

impl VmShares {
    /// Layers first, then mount sources, as shares `s0`, `s1`, …
    pub fn new(layers: &[LayerRef], mounts: &[Mount]) -> Self {
        let mut shares = Self {
            requests: Vec::new(),
            guest_layers: Vec::new(),
            guest_mounts: Vec::new(),
        };
        for (index, layer) in layers.iter().enumerate() {
            let share = format!("s{index}");
            shares.requests.push(ShareRequest {
                request: vsmb_add(&share, &layer.path, true),
                layer: true,
            });
            shares.guest_layers.push(LayerRef {
                id: layer.id.clone(),
                path: vsmb_guest_path(&share),
            });
        }
        for (offset, mount) in mounts.iter().enumerate() {
            let share = format!("s{}", layers.len() + offset);
            shares.requests.push(ShareRequest {
                request: vsmb_add(&share, &mount.source, mount.read_only),
                layer: false,
            });
            shares.guest_mounts.push(MappedDirectory {
                host_path: vsmb_guest_path(&share),
                host_path_type: None,
                container_path: mount.target.clone(),
                read_only: mount.read_only.then_some(true),
            });
        }
        shares
    }
}

/// A VSMB share add: layers get hcsshim's read-only options plus backup privilege (to read
/// every file whatever its ACL); writable mount sources get none of the read-only flags.
pub fn vsmb_add(share: &str, path: &str, layer_or_read_only: bool) -> ModifySettingRequest {
    let options = if layer_or_read_only {
        pane_hcs::schema::VirtualSmbShareOptions {
            take_backup_privilege: Some(true),
            ..doc::read_only_share_options()
        }
    } else {
        pane_hcs::schema::VirtualSmbShareOptions::default()
    };
    let share = VirtualSmbShare {
        name: share.to_owned(),
        path: path.to_owned(),
        allowed_files: None,
        options: Some(options),
    };
    ModifySettingRequest {
        resource_path: Some("VirtualMachine/Devices/VirtualSmb/Shares".to_owned()),
        request_type: Some("Add".to_owned()),
        settings: serde_json::to_value(share).ok(),
        guest_request: None,
    }
}

/// Hot-adds a VHDX on the first SCSI controller at `lun`.
pub fn scsi_attach(vhdx: &str, lun: i32) -> ModifySettingRequest {
    ModifySettingRequest {
        resource_path: Some(format!(
            "VirtualMachine/Devices/Scsi/{}/Attachments/{lun}",
            SCSI_CONTROLLERS[0]
        )),
        request_type: Some("Add".to_owned()),
        settings: serde_json::to_value(Attachment {
            kind: "VirtualDisk".to_owned(),
            path: vhdx.to_owned(),
            ..Attachment::default()
        })
        .ok(),
        guest_request: None,
    }
}

/// The container root in the guest: the layers over the mounted scratch. No `FilterType`:
/// Windows Server 2022 guests reject it.
pub fn combine_layers(guest_scratch: &str, guest_layers: &[LayerRef]) -> GuestRequest {
    GuestRequest::combine_layers(&CombinedLayers {
        container_root_path: guest_scratch.to_owned(),
        layers: guest_layers
            .iter()
            .map(|l| GuestLayer {
                id: Uuid::parse_str(&l.id).unwrap_or_default(),
                path: l.path.clone(),
            })
            .collect(),
        scratch_path: None,
        filter_type: None,
    })
}

/// Where the guest mounts the container scratch.
pub fn guest_scratch() -> String {
    doc::guest_scratch_path(0)
}
