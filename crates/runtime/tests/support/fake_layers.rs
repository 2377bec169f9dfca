//! A double of the scratch-layer calls: layers exist or not, are active or not, and refuse
//! what vmcompute refuses (destroying an active layer, activating a missing one).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use pane_runtime::backend::{HostError, Layers};

pub const ERROR_PATH_NOT_FOUND: u32 = 0x8007_0003;
pub const ERROR_SHARING_VIOLATION: u32 = 0x8007_0020;
pub const ERROR_ALREADY_EXISTS: u32 = 0x8007_00B7;
pub const ERROR_INVALID_PARAMETER: u32 = 0x8007_0057;
/// The size `CreateSandboxLayer` gives a scratch disk.
pub const SCRATCH_START_BYTES: u64 = 20 << 30;

#[derive(Default)]
struct State {
    /// scratch → active
    layers: HashMap<PathBuf, bool>,
    /// scratch → disk size
    sizes: HashMap<PathBuf, u64>,
    faults: Vec<(&'static str, u32)>,
}

#[derive(Default)]
pub struct FakeLayers {
    state: Mutex<State>,
}

impl FakeLayers {
    /// The next `call` fails with `hresult`.
    pub fn fail_once(&self, call: &'static str, hresult: u32) {
        self.state.lock().unwrap().faults.push((call, hresult));
    }

    /// Scratch layers that exist, and whether each is active.
    pub fn layers(&self) -> Vec<(PathBuf, bool)> {
        let mut layers: Vec<(PathBuf, bool)> = self
            .state
            .lock()
            .unwrap()
            .layers
            .iter()
            .map(|(p, a)| (p.clone(), *a))
            .collect();
        layers.sort();
        layers
    }

    /// The disk size of an existing scratch layer.
    pub fn scratch_size(&self, scratch: &Path) -> Option<u64> {
        self.state.lock().unwrap().sizes.get(scratch).copied()
    }

    fn enter(&self, call: &'static str) -> Result<std::sync::MutexGuard<'_, State>, HostError> {
        let mut state = self.state.lock().unwrap();
        if let Some(index) = state.faults.iter().position(|(c, _)| *c == call) {
            let (_, hresult) = state.faults.remove(index);
            return Err(HostError::new(call, hresult, "injected"));
        }
        Ok(state)
    }
}

#[async_trait]
impl Layers for FakeLayers {
    async fn create_scratch(&self, scratch: &Path, _parents: &[PathBuf]) -> Result<(), HostError> {
        let mut state = self.enter("CreateScratchLayer")?;
        if state.layers.contains_key(scratch) {
            return Err(HostError::new(
                "CreateScratchLayer",
                ERROR_ALREADY_EXISTS,
                scratch.display().to_string(),
            ));
        }
        // As CreateSandboxLayer does: the folder with its `sandbox.vhdx`.
        std::fs::create_dir_all(scratch)
            .and_then(|()| std::fs::write(scratch.join("sandbox.vhdx"), b"vhdx"))
            .map_err(|e| HostError::new("CreateScratchLayer", 0x8007_0005, e.to_string()))?;
        state.layers.insert(scratch.to_owned(), false);
        state.sizes.insert(scratch.to_owned(), SCRATCH_START_BYTES);
        Ok(())
    }

    async fn expand_scratch(&self, scratch: &Path, size_bytes: u64) -> Result<(), HostError> {
        let mut state = self.enter("ExpandSandboxSize")?;
        // As vmcompute: the layer must exist, and a disk only grows.
        let current = *state.sizes.get(scratch).ok_or_else(|| {
            HostError::new(
                "ExpandSandboxSize",
                ERROR_PATH_NOT_FOUND,
                scratch.display().to_string(),
            )
        })?;
        if size_bytes < current {
            return Err(HostError::new(
                "ExpandSandboxSize",
                ERROR_INVALID_PARAMETER,
                "a scratch disk cannot shrink",
            ));
        }
        state.sizes.insert(scratch.to_owned(), size_bytes);
        Ok(())
    }

    async fn activate(&self, scratch: &Path, _parents: &[PathBuf]) -> Result<String, HostError> {
        let mut state = self.enter("ActivateLayer")?;
        let active = state.layers.get_mut(scratch).ok_or_else(|| {
            HostError::new(
                "ActivateLayer",
                ERROR_PATH_NOT_FOUND,
                scratch.display().to_string(),
            )
        })?;
        *active = true;
        Ok(r"\\?\Volume{5f1c2d3e-0000-0000-0000-000000000001}\".to_owned())
    }

    async fn deactivate(&self, scratch: &Path) -> Result<(), HostError> {
        let mut state = self.enter("DeactivateLayer")?;
        if let Some(active) = state.layers.get_mut(scratch) {
            *active = false;
        }
        Ok(())
    }

    async fn destroy(&self, scratch: &Path) -> Result<(), HostError> {
        let mut state = self.enter("DestroyLayer")?;
        if state.layers.get(scratch) == Some(&true) {
            return Err(HostError::new(
                "DestroyLayer",
                ERROR_SHARING_VIOLATION,
                "the layer is active",
            ));
        }
        state.layers.remove(scratch);
        state.sizes.remove(scratch);
        let _ = std::fs::remove_dir_all(scratch);
        Ok(())
    }
}
