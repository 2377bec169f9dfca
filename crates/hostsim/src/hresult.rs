//! The HRESULTs the simulator returns, with the values of the HCS error-code reference
//! (`Reference/HCSHResult.md`) and winerror.h.

pub const S_OK: u32 = 0;
pub const E_NOTIMPL: u32 = 0x8000_4001;
pub const E_POINTER: u32 = 0x8000_4003;
pub const E_OUTOFMEMORY: u32 = 0x8007_000E;
pub const E_FAIL: u32 = 0x8000_4005;
pub const E_INVALIDARG: u32 = 0x8007_0057;
pub const E_HANDLE: u32 = 0x8007_0006;
/// `HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE)`: what a client sees when vmcompute is down.
pub const RPC_SERVER_UNAVAILABLE: u32 = 0x8007_06BA;
/// `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)`.
pub const NOT_FOUND: u32 = 0x8007_0490;

pub const HCS_E_INVALID_STATE: u32 = 0x8037_0105;
pub const HCS_E_INVALID_JSON: u32 = 0x8037_010D;
pub const HCS_E_SYSTEM_NOT_FOUND: u32 = 0x8037_010E;
pub const HCS_E_SYSTEM_ALREADY_EXISTS: u32 = 0x8037_010F;
pub const HCS_E_SYSTEM_ALREADY_STOPPED: u32 = 0x8037_0110;
pub const HCS_E_OPERATION_NOT_STARTED: u32 = 0x8037_0115;
pub const HCS_E_OPERATION_ALREADY_STARTED: u32 = 0x8037_0116;
pub const HCS_E_OPERATION_TIMEOUT: u32 = 0x8037_0118;
pub const HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET: u32 = 0x8037_0119;
pub const HCS_E_PROCESS_INFO_NOT_AVAILABLE: u32 = 0x8037_011D;
pub const HCS_E_PROCESS_ALREADY_STOPPED: u32 = 0x8037_011F;

// HCN (`virtualization/api/hcn/Reference/HCNHResult.md`).
pub const HCN_E_NETWORK_NOT_FOUND: u32 = 0x803B_0001;
pub const HCN_E_ENDPOINT_NOT_FOUND: u32 = 0x803B_0002;
pub const HCN_E_SUBNET_NOT_FOUND: u32 = 0x803B_0005;
pub const HCN_E_INVALID_ENDPOINT: u32 = 0x803B_000C;
pub const HCN_E_INVALID_POLICY: u32 = 0x803B_000D;
pub const HCN_E_REQUEST_UNSUPPORTED: u32 = 0x803B_0015;
pub const HCN_E_INVALID_JSON: u32 = 0x803B_001B;
pub const HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS: u32 = 0x803B_002B;
pub const HCN_E_INVALID_INTERNAL_PORT: u32 = 0x803B_002D;
pub const HCN_E_ENDPOINT_NOT_ATTACHED: u32 = 0x803B_0034;
/// `HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION)`: what HNS answers for a port mapping whose
/// external port and protocol another endpoint already publishes ("The process cannot
/// access the file because it is being used by another process", docker/for-win#3218,
/// #3893, where the cause was the same host port bound twice).
pub const HCN_PORT_IN_USE: u32 = 0x8007_0020;
/// `HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)`: an id taken (the simulator's choice; the HCN
/// table has no code for an endpoint or namespace id in use).
pub const ALREADY_EXISTS: u32 = 0x8007_00B7;

// Win32 errors as HRESULTs (`HRESULT_FROM_WIN32`), for vmcompute's layer calls.
pub const FILE_NOT_FOUND: u32 = 0x8007_0002;
pub const PATH_NOT_FOUND: u32 = 0x8007_0003;
pub const INVALID_DATA: u32 = 0x8007_000D;
pub const BUSY: u32 = 0x8007_00AA;
/// `ERROR_INVALID_STATE`, not `HCS_E_INVALID_STATE`.
pub const WIN32_INVALID_STATE: u32 = 0x8007_139F;

/// An I/O error as the HRESULT of its Win32 code (`E_FAIL` when it has none).
pub fn from_io(e: &std::io::Error) -> u32 {
    e.raw_os_error()
        .and_then(|c| u32::try_from(c).ok())
        .map_or(E_FAIL, |c| 0x8007_0000 | (c & 0xFFFF))
}
