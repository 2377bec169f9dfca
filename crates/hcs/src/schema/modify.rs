use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// `HcsModifyComputeSystem`'s request: a host-side change, a guest-side one, or both.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifySettingRequest {
    pub resource_path: Option<String>,
    /// `Add`, `Remove`, `Update` or `PreAdd`.
    pub request_type: Option<String>,
    pub settings: Option<serde_json::Value>,
    pub guest_request: Option<serde_json::Value>,
}

/// GPU partitioning for a VM (documented by Microsoft, unused by hcsshim). Applied with a
/// modify at `VirtualMachine/ComputeTopology/Gpu`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GpuConfiguration {
    /// `Disabled`, `Default`, `List` or `Mirror`.
    pub assignment_mode: Option<String>,
    /// Device-interface path → partition id (`0xFFFF`: any).
    pub assignment_request: Option<BTreeMap<String, u16>>,
    pub allow_vendor_extension: Option<bool>,
}
