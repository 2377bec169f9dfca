//! Container networking: the HCN (Host Compute Network) documents for a container's
//! namespace and its endpoints, and on Windows the computenetwork API that creates them
//! (`sys`, loaded at run time so pane starts on hosts without it); and a CNI client
//! (`cni`) that runs plugin chains, portable to every OS.

pub mod cni;
pub mod schema;
pub mod slice;
pub mod sys;

pub use schema::{
    EndpointPolicy, HostComputeEndpoint, HostComputeNamespace, HostComputeNetwork,
    HostComputeQuery, IpConfig, ModifyNamespaceSettingRequest, PROTOCOL_TCP, PROTOCOL_UDP,
    SchemaVersion, namespace_endpoint_ids,
};
pub use slice::{NodeSlice, SliceError};

/// An HCN call that failed: which, its HRESULT and HCN's error record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call} failed with HRESULT 0x{hresult:08X}{}", if record.is_empty() { String::new() } else { format!(": {record}") })]
pub struct HcnError {
    pub call: &'static str,
    pub hresult: u32,
    pub record: String,
}

/// `HCN_E_NETWORK_NOT_FOUND`.
pub const HCN_E_NETWORK_NOT_FOUND: u32 = 0x803B_0001;
/// `HCN_E_ENDPOINT_NOT_FOUND`.
pub const HCN_E_ENDPOINT_NOT_FOUND: u32 = 0x803B_0002;
/// `ERROR_NOT_FOUND` as an HRESULT: what HCN answers for a namespace it does not have.
pub const E_NOT_FOUND: u32 = 0x8007_0490;

impl HcnError {
    /// The object is not there (deleting it again is then no error).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.hresult,
            HCN_E_NETWORK_NOT_FOUND | HCN_E_ENDPOINT_NOT_FOUND | E_NOT_FOUND
        )
    }
}
