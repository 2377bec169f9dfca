//! Bridge errors. A guest failure names the step, the container and the HRESULT.

use std::time::Duration;

use pane_hcs::hresult::HResult;

use crate::frame::FrameError;
use crate::messages::ErrorRecord;

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
