//! HRESULT names, so errors say `HCS_E_INVALID_JSON` rather than only a number.

use std::fmt;

/// An HRESULT as HCS and the guest report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HResult(pub u32);

/// vmcompute sets this bit (0xC037…) where computecore and the guest report the same
/// condition without it (0x8037…); lookups ignore it.
const CUSTOMER_SEVERITY_BIT: u32 = 0x4000_0000;

impl HResult {
    pub const S_OK: HResult = HResult(0);

    /// Converts the signed form the wire and the Windows API use.
    #[allow(clippy::cast_sign_loss)] // an HRESULT is a bit pattern; the sign is its severity bit
    pub fn from_i32(value: i32) -> Self {
        Self(value as u32)
    }

    #[allow(clippy::cast_possible_wrap)]
    pub fn as_i32(self) -> i32 {
        self.0 as i32
    }

    pub fn is_failure(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// The symbolic name and a short description, when the code is a known one.
    pub fn describe(self) -> Option<(&'static str, &'static str)> {
        let normalized = self.0 & !CUSTOMER_SEVERITY_BIT;
        KNOWN
            .iter()
            .find(|(code, _, _)| *code == normalized)
            .map(|(_, name, text)| (*name, *text))
    }

    /// Same condition, whichever API reported it (see [`CUSTOMER_SEVERITY_BIT`]).
    pub fn same_code(self, other: HResult) -> bool {
        self.0 & !CUSTOMER_SEVERITY_BIT == other.0 & !CUSTOMER_SEVERITY_BIT
    }
}

impl fmt::Display for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)?;
        if let Some((name, text)) = self.describe() {
            write!(f, " ({name}: {text})")?;
        }
        Ok(())
    }
}

/// Codes from winerror.h that HCS, computestorage and the guest agent return, with the
/// customer bit cleared.
const KNOWN: &[(u32, &str, &str)] = &[
    (
        0x8007_0002,
        "ERROR_FILE_NOT_FOUND",
        "the system cannot find the file specified",
    ),
    (
        0x8007_0003,
        "ERROR_PATH_NOT_FOUND",
        "the system cannot find the path specified",
    ),
    (
        0x8007_0005,
        "E_ACCESSDENIED",
        "access is denied; run elevated",
    ),
    (0x8007_000D, "ERROR_INVALID_DATA", "the data is invalid"),
    (
        0x8007_0020,
        "ERROR_SHARING_VIOLATION",
        "the file is in use by another process",
    ),
    (
        0x8007_0032,
        "ERROR_NOT_SUPPORTED",
        "the request is not supported",
    ),
    (0x8007_0057, "E_INVALIDARG", "an argument is invalid"),
    (
        0x8007_007E,
        "ERROR_MOD_NOT_FOUND",
        "the module could not be found",
    ),
    (0x8007_0490, "ERROR_NOT_FOUND", "element not found"),
    (
        0x8037_0100,
        "HCS_E_TERMINATED_DURING_START",
        "the compute system exited while starting",
    ),
    (
        0x8037_0101,
        "HCS_E_IMAGE_MISMATCH",
        "the container OS does not match the host OS",
    ),
    (
        0x8037_0102,
        "HCS_E_HYPERV_NOT_INSTALLED",
        "Hyper-V is not installed",
    ),
    (
        0x8037_0105,
        "HCS_E_INVALID_STATE",
        "the operation is not valid in the current state",
    ),
    (
        0x8037_0106,
        "HCS_E_UNEXPECTED_EXIT",
        "the compute system exited unexpectedly",
    ),
    (
        0x8037_0107,
        "HCS_E_TERMINATED",
        "the compute system was terminated",
    ),
    (
        0x8037_0108,
        "HCS_E_CONNECT_FAILED",
        "connecting to the guest failed",
    ),
    (
        0x8037_0109,
        "HCS_E_CONNECTION_TIMEOUT",
        // Also what the guest answers a WaitForProcess whose timeout passed (0xC0370109,
        // hcsshim's gcserr `HvVmcomputeTimeout`), so not only about connecting.
        "the guest connection or operation timed out",
    ),
    (
        0x8037_010A,
        "HCS_E_CONNECTION_CLOSED",
        "the guest connection was closed",
    ),
    (
        0x8037_010B,
        "HCS_E_UNKNOWN_MESSAGE",
        "the guest does not know this message",
    ),
    (
        0x8037_010C,
        "HCS_E_UNSUPPORTED_PROTOCOL_VERSION",
        "unsupported guest protocol version",
    ),
    (
        0x8037_010D,
        "HCS_E_INVALID_JSON",
        "the document is not valid for this Windows build",
    ),
    (
        0x8037_010E,
        "HCS_E_SYSTEM_NOT_FOUND",
        "the compute system does not exist",
    ),
    (
        0x8037_010F,
        "HCS_E_SYSTEM_ALREADY_EXISTS",
        "a compute system with this id already exists",
    ),
    (
        0x8037_0110,
        "HCS_E_SYSTEM_ALREADY_STOPPED",
        "the compute system has already stopped",
    ),
    (0x8037_0111, "HCS_E_PROTOCOL_ERROR", "guest protocol error"),
    (
        0x8037_0112,
        "HCS_E_INVALID_LAYER",
        "a layer has an unrecognized format",
    ),
    (
        0x8037_0113,
        "HCS_E_WINDOWS_INSIDER_REQUIRED",
        "this needs a Windows Insider build",
    ),
    (
        0x8037_0114,
        "HCS_E_SERVICE_NOT_AVAILABLE",
        "the compute service is not available",
    ),
    (
        0x8037_0115,
        "HCS_E_OPERATION_NOT_STARTED",
        "the operation has not started",
    ),
    (
        0x8037_0116,
        "HCS_E_OPERATION_ALREADY_STARTED",
        "the operation has already started",
    ),
    (
        0x8037_0117,
        "HCS_E_OPERATION_PENDING",
        "the operation is still pending",
    ),
    (
        0x8037_0118,
        "HCS_E_OPERATION_TIMEOUT",
        "the operation timed out",
    ),
    (
        0x8037_0119,
        "HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET",
        "a callback is already set",
    ),
    (
        0x8037_011A,
        "HCS_E_OPERATION_RESULT_ALLOCATION_FAILED",
        "the result could not be allocated",
    ),
    (
        0x8037_011B,
        "HCS_E_ACCESS_DENIED",
        "access denied; run elevated",
    ),
    (
        0x8037_011C,
        "HCS_E_GUEST_CRITICAL_ERROR",
        "the guest hit a critical error",
    ),
    (
        0x8037_011D,
        "HCS_E_PROCESS_INFO_NOT_AVAILABLE",
        "process information is not available",
    ),
    (
        0x8037_011E,
        "HCS_E_SERVICE_DISCONNECT",
        "the compute service disconnected",
    ),
    (
        0x8037_011F,
        "HCS_E_PROCESS_ALREADY_STOPPED",
        "the process has already stopped",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_from_either_api() {
        let computecore = HResult(0x8037_010E);
        let vmcompute = HResult(0xC037_010E);
        assert_eq!(
            computecore.describe().map(|d| d.0),
            Some("HCS_E_SYSTEM_NOT_FOUND")
        );
        assert_eq!(
            vmcompute.describe().map(|d| d.0),
            Some("HCS_E_SYSTEM_NOT_FOUND")
        );
        assert!(computecore.same_code(vmcompute));
        assert_eq!(
            HResult(0x8037_010D).to_string(),
            "0x8037010D (HCS_E_INVALID_JSON: the document is not valid for this Windows build)"
        );
    }

    #[test]
    fn unknown_codes_print_as_hex_only() {
        assert_eq!(HResult(0x8000_4005).to_string(), "0x80004005");
        assert_eq!(HResult::from_i32(-2_147_024_891), HResult(0x8007_0005));
        assert_eq!(HResult(0x8007_0005).as_i32(), -2_147_024_891);
        assert!(HResult(0x8007_0005).is_failure());
        assert!(!HResult::S_OK.is_failure());
    }
}
