use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Container, VirtualMachine};

/// The document given to `HcsCreateComputeSystem`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputeSystem {
    /// Who owns the system; each pane daemon enumerates and cleans up only its own.
    pub owner: Option<String>,
    pub schema_version: Option<SchemaVersion>,
    pub hosting_system_id: Option<String>,
    pub hosted_system: Option<HostedSystem>,
    pub container: Option<Container>,
    pub virtual_machine: Option<VirtualMachine>,
    pub should_terminate_on_last_handle_closed: Option<bool>,
}

/// The document sent to the guest to create a container inside a utility VM.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostedSystem {
    pub schema_version: Option<SchemaVersion>,
    pub container: Option<Container>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchemaVersion {
    pub major: u32,
    pub minor: u32,
}

impl SchemaVersion {
    /// The version hcsshim writes for every non-confidential document.
    pub const V2_1: SchemaVersion = SchemaVersion { major: 2, minor: 1 };
}
