//! Bridge errors. A guest failure names the step, the container and the HRESULT.

use std::time::Duration;

use pane_hcs::hresult::HResult;

use crate::frame::FrameError;
use crate::messages::ErrorRecord;

const ERROR_NOT_FOUND: HResult = HResult(0x8007_0490);
const HCS_E_SYSTEM_NOT_FOUND: HResult = HResult(0xC037_010E);

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The guest answered with a failure HRESULT.
    #[error(
        "guest {rpc} for container {container_id} failed with HRESULT {hresult}{}",
        describe(message, records)
    )]
    Guest {
        rpc: &'static str,
        container_id: String,
        hresult: HResult,
        message: String,
        records: Vec<ErrorRecord>,
    },
    /// The bridge is gone; every outstanding and later request fails with this.
    #[error("the guest bridge is closed: {reason}")]
    Closed { reason: String },
    #[error("guest {rpc} got no answer within {after:?}")]
    Timeout { rpc: &'static str, after: Duration },
    #[error("the guest broke the protocol: {0}")]
    Protocol(String),
    #[error("malformed message from the guest: {0}")]
    Frame(#[from] FrameError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn describe(message: &str, records: &[ErrorRecord]) -> String {
    let mut text = String::new();
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(message);
    }
    for record in records
        .iter()
        .filter(|r| !r.message.is_empty() && r.message != message)
    {
        text.push_str("; ");
        text.push_str(&record.message);
    }
    text
}

impl BridgeError {
    /// The guest's HRESULT, when the guest answered with one.
    pub fn hresult(&self) -> Option<HResult> {
        match self {
            BridgeError::Guest { hresult, .. } => Some(*hresult),
            _ => None,
        }
    }

    /// The guest no longer knows the process: `ERROR_NOT_FOUND` (0x80070490), which hcsshim's
    /// guest returns for a signal to an exited process (internal/guest/runtime/hcsv2/process.go
    /// `Kill`) and hcsshim's host then takes as success (internal/gcs/process.go `Signal`).
    pub fn is_process_gone(&self) -> bool {
        self.hresult() == Some(ERROR_NOT_FOUND)
    }

    /// The guest no longer knows the container: `HCS_E_SYSTEM_NOT_FOUND`, 0xC037010E from the
    /// guest (internal/bridgeutils/gcserr), which hcsshim's host takes as success for a shutdown
    /// (internal/gcs/container.go `shutdown`). The 0x8037010E form computecore uses for the
    /// same condition counts too.
    pub fn is_container_gone(&self) -> bool {
        self.hresult()
            .is_some_and(|h| h.same_code(HCS_E_SYSTEM_NOT_FOUND))
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_errors_name_step_container_code_and_records() {
        let err = BridgeError::Guest {
            rpc: "ModifySettings",
            container_id: "web-1".into(),
            hresult: HResult(0x8037_010D),
            message: "invalid JSON".into(),
            records: vec![ErrorRecord {
                message: "$.FilterType is not allowed".into(),
                ..ErrorRecord::default()
            }],
        };
        assert_eq!(
            err.to_string(),
            "guest ModifySettings for container web-1 failed with HRESULT 0x8037010D \
             (HCS_E_INVALID_JSON: the document is not valid for this Windows build): invalid JSON; \
             $.FilterType is not allowed"
        );
    }
}
