//! What a utility VM is given so its container sees the image and the spec's mounts: a
//! VSMB share per layer and per mounted folder, a share of the parent folder restricted to
//! the file for a mounted file, and a mapped pipe for a mounted host pipe
//! (hcsshim's `uvm/vsmb.go`, `uvm/pipes.go`, `hcsoci/resources_wcow.go`).

use std::collections::BTreeMap;

use pane_spec::Mount;

use super::{LayerRef, PIPE_PREFIX, is_pipe, read_only_share_options};
use crate::schema::{
    MappedDirectory, MappedPipe, ModifySettingRequest, VirtualSmbShare, VirtualSmbShareOptions,
};

/// Where the guest sees VSMB share `name`: `\\?\VMSMB\VSMB-{dcc079ae-…}\<name>`.
pub const VSMB_GUEST_ROOT: &str = r"\\?\VMSMB\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}";
const VSMB_SHARES: &str = "VirtualMachine/Devices/VirtualSmb/Shares";

/// The guest path of VSMB share `name`.
pub fn vsmb_guest_path(share_name: &str) -> String {
    format!(r"{VSMB_GUEST_ROOT}\{share_name}")
}

/// What a mount's source is on the host; only the host can tell a file from a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Directory,
    File,
    /// A host named pipe (`\\.\pipe\NAME`), known by its path alone.
    Pipe,
}

impl SourceKind {
    /// A pipe by its path; otherwise what the host said (`on_host`).
    pub fn of(
        source: &str,
        on_host: impl FnOnce() -> Result<Self, String>,
    ) -> Result<Self, String> {
        if is_pipe(source) {
            Ok(Self::Pipe)
        } else {
            on_host()
        }
    }
}

/// A spec mount with what its source turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmMount {
    pub mount: Mount,
    pub kind: SourceKind,
}

/// One change to the VM, and why it is made.
#[derive(Debug, Clone, PartialEq)]
pub struct VmRequest {
    pub request: ModifySettingRequest,
    pub purpose: SharePurpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharePurpose {
    Layer,
    Mount,
    Pipe,
}

/// Every share and pipe a container's VM needs, in the order they are added, and the
/// layers, mounts and pipes as the guest sees them.
#[derive(Debug, Clone, Default)]
pub struct VmShares {
    pub requests: Vec<VmRequest>,
    pub guest_layers: Vec<LayerRef>,
    pub guest_mounts: Vec<MappedDirectory>,
    pub guest_pipes: Vec<MappedPipe>,
}

/// A share already added, keyed as hcsshim keys them: by folder and read-only-ness.
struct Added {
    name: String,
    /// For a share restricted to files: which.
    allowed_files: Vec<String>,
}

impl VmShares {
    /// Layers first, then the mounts in spec order, as shares `s0`, `s1`, … One folder
    /// shared twice the same way is one share, as in hcsshim. hcsshim counts its names from
    /// `s1` in hex across a VM's life; the name is opaque to HCS and the guest and only has
    /// to be unique in the VM, which holds one container here, so pane numbers from `s0`.
    pub fn new(layers: &[LayerRef], mounts: &[VmMount]) -> Self {
        let mut shares = Self::default();
        let mut added: BTreeMap<(String, bool), Added> = BTreeMap::new();
        for layer in layers {
            let name = format!("s{}", added.len());
            // Layers alone read every file whatever its ACL (backup privilege), as hcsshim
            // gives them; a user's read-only mount keeps the host's permissions.
            let options = VirtualSmbShareOptions {
                take_backup_privilege: Some(true),
                ..read_only_share_options()
            };
            shares.push(
                SharePurpose::Layer,
                "Add",
                share(&name, &layer.path, None, options),
            );
            shares.guest_layers.push(LayerRef {
                id: layer.id.clone(),
                path: vsmb_guest_path(&name),
            });
            added.insert(
                (layer.path.clone(), true),
                Added {
                    name,
                    allowed_files: Vec::new(),
                },
            );
        }
        for VmMount { mount, kind } in mounts {
            if *kind == SourceKind::Pipe {
                shares.add_pipe(mount);
                continue;
            }
            let read_only = mount.read_only;
            let mut options = if read_only {
                read_only_share_options()
            } else {
                VirtualSmbShareOptions::default()
            };
            let (folder, file) = match kind {
                SourceKind::Directory | SourceKind::Pipe => (mount.source.clone(), None),
                SourceKind::File => {
                    let (folder, file) = split_file(&mount.source);
                    options.restrict_file_access = Some(true);
                    options.single_file_mapping = Some(true);
                    (folder, Some(file))
                }
            };
            let next = format!("s{}", added.len());
            let key = (folder.clone(), read_only);
            let existing = added.contains_key(&key);
            let entry = added.entry(key).or_insert(Added {
                name: next,
                allowed_files: Vec::new(),
            });
            if file.is_some() {
                entry.allowed_files.push(mount.source.clone());
            }
            // A later file of an already shared folder widens its allowed files (an
            // Update); a folder shared again needs no request at all.
            if !existing || file.is_some() {
                let allowed = file.is_some().then(|| entry.allowed_files.clone());
                let request_type = if existing { "Update" } else { "Add" };
                let settings = share(&entry.name, &folder, allowed, options);
                shares.push(SharePurpose::Mount, request_type, settings);
            }
            let share_path = vsmb_guest_path(&entry.name);
            shares.guest_mounts.push(MappedDirectory {
                host_path: match file {
                    Some(file) => format!(r"{share_path}\{file}"),
                    None => share_path,
                },
                host_path_type: None,
                container_path: mount.target.clone(),
                read_only: read_only.then_some(true),
            });
        }
        shares
    }

    /// A host pipe is mapped into the VM by name (no settings), and the container reaches
    /// it through the VM's `IPC$` share.
    fn add_pipe(&mut self, mount: &Mount) {
        let host_name = mount.source.get(PIPE_PREFIX.len()..).unwrap_or_default();
        let container_name = mount.target.get(PIPE_PREFIX.len()..).unwrap_or_default();
        self.requests.push(VmRequest {
            request: ModifySettingRequest {
                resource_path: Some(format!(
                    "VirtualMachine/Devices/MappedPipes/{}",
                    mount.source
                )),
                request_type: Some("Add".to_owned()),
                settings: None,
                guest_request: None,
            },
            purpose: SharePurpose::Pipe,
        });
        self.guest_pipes.push(MappedPipe {
            container_pipe_name: container_name.to_owned(),
            host_path: format!(r"{VSMB_GUEST_ROOT}\IPC$\{host_name}"),
            host_path_type: None,
        });
    }

    fn push(&mut self, purpose: SharePurpose, request_type: &str, share: VirtualSmbShare) {
        self.requests.push(VmRequest {
            request: ModifySettingRequest {
                resource_path: Some(VSMB_SHARES.to_owned()),
                request_type: Some(request_type.to_owned()),
                settings: serde_json::to_value(share).ok(),
                guest_request: None,
            },
            purpose,
        });
    }
}

fn share(
    name: &str,
    path: &str,
    allowed_files: Option<Vec<String>>,
    options: VirtualSmbShareOptions,
) -> VirtualSmbShare {
    VirtualSmbShare {
        name: name.to_owned(),
        path: path.to_owned(),
        allowed_files,
        options: Some(options),
    }
}

/// `C:\cfg\app.json` → (`C:\cfg`, `app.json`); a file in a drive root keeps its `C:\`.
fn split_file(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('\\');
    match trimmed.rfind('\\') {
        Some(at) => {
            let folder = &trimmed[..at];
            let folder = if folder.ends_with(':') {
                format!(r"{folder}\")
            } else {
                folder.to_owned()
            };
            (folder, trimmed[at + 1..].to_owned())
        }
        None => (String::new(), trimmed.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(source: &str, target: &str, read_only: bool, kind: SourceKind) -> VmMount {
        VmMount {
            mount: Mount {
                source: source.into(),
                target: target.into(),
                read_only,
            },
            kind,
        }
    }

    #[test]
    fn files_split_from_their_folder() {
        assert_eq!(
            split_file(r"C:\cfg\app.json"),
            (r"C:\cfg".into(), "app.json".into())
        );
        assert_eq!(split_file(r"C:\a.txt"), (r"C:\".into(), "a.txt".into()));
        assert_eq!(
            split_file(r"\\srv\share\x.ini"),
            (r"\\srv\share".into(), "x.ini".into())
        );
    }

    #[test]
    fn two_files_of_one_folder_share_it_once_and_widen_it() {
        let shares = VmShares::new(
            &[],
            &[
                mount(r"C:\cfg\a.json", r"C:\app\a.json", true, SourceKind::File),
                mount(r"C:\cfg\b.json", r"C:\app\b.json", true, SourceKind::File),
            ],
        );
        let kinds: Vec<_> = shares
            .requests
            .iter()
            .map(|r| r.request.request_type.clone().unwrap())
            .collect();
        assert_eq!(kinds, ["Add", "Update"]);
        let update = shares.requests[1].request.settings.clone().unwrap();
        assert_eq!(update["Name"], "s0");
        assert_eq!(
            update["AllowedFiles"],
            serde_json::json!([r"C:\cfg\a.json", r"C:\cfg\b.json"])
        );
        assert_eq!(
            shares.guest_mounts[1].host_path,
            vsmb_guest_path(r"s0\b.json")
        );
    }

    #[test]
    fn a_folder_mounted_twice_the_same_way_is_one_share() {
        let shares = VmShares::new(
            &[],
            &[
                mount(r"D:\data", r"C:\a", false, SourceKind::Directory),
                mount(r"D:\data", r"C:\b", false, SourceKind::Directory),
                mount(r"D:\data", r"C:\c", true, SourceKind::Directory),
            ],
        );
        assert_eq!(shares.requests.len(), 2, "{:?}", shares.requests);
        assert_eq!(
            shares.guest_mounts[0].host_path,
            shares.guest_mounts[1].host_path
        );
        assert_ne!(
            shares.guest_mounts[0].host_path,
            shares.guest_mounts[2].host_path
        );
    }
}
