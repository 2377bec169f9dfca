use std::time::Duration;

use crate::hresult::HResult;

/// A failed HCS call: which one, its HRESULT, and HCS's own explanation when it gave one.
#[derive(Debug, thiserror::Error)]
pub enum HcsError {
    #[error("{dll} cannot be loaded ({hresult}): the Windows Containers feature is not enabled")]
    Unavailable { dll: &'static str, hresult: HResult },
    #[error("{dll} has no {function}; this Windows build is too old for pane")]
    MissingFunction {
        dll: &'static str,
        function: &'static str,
    },
    #[error("{call} failed with HRESULT {hresult}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Call {
        call: &'static str,
        hresult: HResult,
        detail: Option<String>,
    },
    #[error("{call} did not finish within {after:?} and was cancelled")]
    Timeout { call: &'static str, after: Duration },
    #[error("{call}: unreadable JSON from HCS: {source}")]
    Json {
        call: &'static str,
        source: serde_json::Error,
    },
}

impl HcsError {
    pub fn hresult(&self) -> Option<HResult> {
        match self {
            HcsError::Unavailable { hresult, .. } | HcsError::Call { hresult, .. } => {
                Some(*hresult)
            }
            _ => None,
        }
    }
}

/// HCS result documents: `{"Error":…, "ErrorMessage":"…", "ErrorEvents":[{"Message":…}]}`.
pub fn result_detail(document: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(document).ok()?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(message) = value
        .get("ErrorMessage")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
    {
        parts.push(message.trim().to_owned());
    }
    for event in value
        .get("ErrorEvents")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(message) = event
            .get("Message")
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty())
        {
            parts.push(message.trim().to_owned());
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_carry_the_name_and_hcs_detail() {
        let detail = result_detail(
            r#"{"Error":-2143878899,"ErrorMessage":"The JSON document is invalid.","ErrorEvents":[{"Message":"$.Container.Foo is unknown"}]}"#,
        );
        let err = HcsError::Call {
            call: "HcsCreateComputeSystem",
            hresult: HResult(0x8037_010D),
            detail,
        };
        assert_eq!(
            err.to_string(),
            "HcsCreateComputeSystem failed with HRESULT 0x8037010D (HCS_E_INVALID_JSON: the document is not valid \
             for this Windows build): The JSON document is invalid.; $.Container.Foo is unknown"
        );
        assert_eq!(result_detail(""), None);
        assert_eq!(result_detail("{}"), None);
    }
}
