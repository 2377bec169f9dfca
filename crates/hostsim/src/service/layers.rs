//! vmcompute's layer calls (`ActivateLayer`, `PrepareLayer`, `GetLayerMountPath`,
//! `CreateSandboxLayer`, …), as hcsshim's `internal/wclayer` uses them. Microsoft does not
//! document these functions; their arguments and the two-call `GetLayerMountPath` follow
//! hcsshim, and where it is silent the simulator's choice is said here.
//!
//! State (which layers are activated and prepared) lives in the service, so it is shared by
//! every client and survives one that dies. Layer folders are real folders on wine's disk;
//! nothing is mounted: the "volume" a layer gets is a name only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::layer_import::{Refusal, import_layer, process_base_image, process_utility_image};
use crate::hresult::{
    ALREADY_EXISTS, BUSY, E_INVALIDARG, FILE_NOT_FOUND, PATH_NOT_FOUND,
    WIN32_INVALID_STATE as INVALID_STATE, from_io as io_hresult,
};
use crate::protocol::Response;

/// The sandbox file `CreateSandboxLayer` makes (hcsshim's scratch layers have it).
pub const SANDBOX_FILE: &str = "sandbox.vhdx";

/// A namespace for the simulator's `NameToGuid` (the real hash is undocumented; only its
/// being a stable function of the name matters to callers).
const NAME_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5061_6e65_4873_696d_4e61_6d65_4775_6964);

#[derive(Debug, Default, Clone, Copy)]
struct LayerState {
    activated: bool,
    prepared: bool,
}

/// The layers vmcompute knows about, by folder (compared case-insensitively, as NTFS does).
#[derive(Debug, Default)]
pub struct Layers {
    state: Mutex<HashMap<String, LayerState>>,
}

fn key(path: &str) -> String {
    path.trim_end_matches(['\\', '/']).to_lowercase()
}

fn error(hresult: u32, call: &str, path: &str, why: &str) -> Response {
    Response::error(hresult, &format!("{call}({path}): {why}"))
}

/// `NameToGuid(name)`.
pub fn name_to_guid(name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&NAME_NAMESPACE, name.to_lowercase().as_bytes())
}

impl Layers {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, LayerState>) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// Serves one layer call. `parents` are the descriptor paths, topmost first.
    pub fn call(
        &self,
        call: &str,
        path: &str,
        parents: &[String],
        size: u64,
        source: Option<&str>,
    ) -> Response {
        if path.is_empty() {
            return error(E_INVALIDARG, call, path, "no layer path");
        }
        for parent in parents {
            if !Path::new(parent).is_dir() {
                return error(
                    PATH_NOT_FOUND,
                    call,
                    parent,
                    "a parent layer folder does not exist",
                );
            }
        }
        let folder = Path::new(path);
        match call {
            "ActivateLayer" => {
                if !folder.is_dir() {
                    return error(PATH_NOT_FOUND, call, path, "no such layer folder");
                }
                self.with(|s| s.entry(key(path)).or_default().activated = true);
                Response::ok()
            }
            "PrepareLayer" => self.with(|s| match s.get_mut(&key(path)) {
                Some(layer) if layer.activated => {
                    layer.prepared = true;
                    Response::ok()
                }
                _ => error(INVALID_STATE, call, path, "the layer is not activated"),
            }),
            "GetLayerMountPath" => self.with(|s| match s.get(&key(path)) {
                Some(layer) if layer.activated && layer.prepared => {
                    Response::document(format!("\\\\?\\Volume{{{}}}\\", name_to_guid(&key(path))))
                }
                _ => error(
                    INVALID_STATE,
                    call,
                    path,
                    "the layer is not activated and prepared",
                ),
            }),
            "UnprepareLayer" => {
                self.with(|s| {
                    if let Some(layer) = s.get_mut(&key(path)) {
                        layer.prepared = false;
                    }
                });
                Response::ok()
            }
            "DeactivateLayer" => {
                self.with(|s| s.remove(&key(path)));
                Response::ok()
            }
            "CreateSandboxLayer" => {
                let sandbox = folder.join(SANDBOX_FILE);
                if sandbox.exists() {
                    return error(ALREADY_EXISTS, call, path, "the sandbox exists already");
                }
                match std::fs::create_dir_all(folder).and_then(|()| std::fs::write(&sandbox, b"")) {
                    Ok(()) => Response::ok(),
                    Err(e) => error(io_hresult(&e), call, path, &e.to_string()),
                }
            }
            "ExpandSandboxSize" => {
                if !folder.join(SANDBOX_FILE).is_file() {
                    return error(FILE_NOT_FOUND, call, path, "no sandbox in this folder");
                }
                if size == 0 {
                    return error(E_INVALIDARG, call, path, "a size of 0");
                }
                Response::ok()
            }
            "DestroyLayer" => {
                let active = self.with(|s| s.get(&key(path)).is_some_and(|l| l.activated));
                if active {
                    return error(BUSY, call, path, "the layer is still activated");
                }
                // Destroying a folder that is already gone succeeds (the simulator's choice).
                match std::fs::remove_dir_all(folder) {
                    Ok(()) => Response::ok(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Response::ok(),
                    Err(e) => error(io_hresult(&e), call, path, &e.to_string()),
                }
            }
            "ImportLayer" => {
                let Some(source) = source else {
                    return error(E_INVALIDARG, call, path, "no import folder");
                };
                if parents.is_empty() {
                    // hcsshim imports a base layer with BackupWrite, never with ImportLayer.
                    return error(E_INVALIDARG, call, path, "no parent layers");
                }
                finished(call, path, import_layer(folder, Path::new(source), parents))
            }
            "ProcessBaseImage" => finished(call, path, process_base_image(folder)),
            "ProcessUtilityImage" => finished(call, path, process_utility_image(folder)),
            _ => error(E_INVALIDARG, call, path, "unknown layer call"),
        }
    }
}

fn finished(call: &str, path: &str, result: Result<(), Refusal>) -> Response {
    match result {
        Ok(()) => Response::ok(),
        Err((hresult, why)) => error(hresult, call, path, &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(layers: &Layers, name: &str, path: &Path) -> u32 {
        layers
            .call(name, &path.to_string_lossy(), &[], 0, None)
            .hresult
    }

    #[test]
    fn a_scratch_is_created_activated_prepared_mounted_and_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        let layers = Layers::default();
        assert_eq!(call(&layers, "ActivateLayer", &scratch), PATH_NOT_FOUND);
        assert_eq!(call(&layers, "CreateSandboxLayer", &scratch), 0);
        assert_eq!(
            call(&layers, "CreateSandboxLayer", &scratch),
            ALREADY_EXISTS
        );
        assert_eq!(call(&layers, "GetLayerMountPath", &scratch), INVALID_STATE);
        assert_eq!(call(&layers, "ActivateLayer", &scratch), 0);
        assert_eq!(call(&layers, "PrepareLayer", &scratch), 0);
        let mount = layers.call(
            "GetLayerMountPath",
            &scratch.to_string_lossy(),
            &[],
            0,
            None,
        );
        assert!(mount.document.unwrap().starts_with("\\\\?\\Volume{"));
        assert_eq!(call(&layers, "DestroyLayer", &scratch), BUSY);
        assert_eq!(call(&layers, "UnprepareLayer", &scratch), 0);
        assert_eq!(call(&layers, "DeactivateLayer", &scratch), 0);
        assert_eq!(call(&layers, "DestroyLayer", &scratch), 0);
        assert!(!scratch.exists());
    }

    #[test]
    fn missing_parents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layers = Layers::default();
        let response = layers.call(
            "CreateSandboxLayer",
            &dir.path().join("s").to_string_lossy(),
            &["/nonexistent/parent".to_owned()],
            0,
            None,
        );
        assert_eq!(response.hresult, PATH_NOT_FOUND);
    }

    #[test]
    fn names_map_to_stable_guids() {
        assert_eq!(name_to_guid("abc"), name_to_guid("ABC"));
        assert_ne!(name_to_guid("abc"), name_to_guid("abd"));
    }
}
