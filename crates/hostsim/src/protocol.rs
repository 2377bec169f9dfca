//! The wire between the client DLL and the service: one JSON object a line over loopback TCP.
//!
//! A connection carries one of two conversations, chosen by its first request:
//! - a handle (`Create`, `Open`, `CreateProcess`, `OpenProcess`): after the [`Response`] the
//!   connection stays open as the handle, and the service writes the system's or process's
//!   [`Event`] lines on it. Closing the connection closes the handle, whatever ends it: the
//!   client's close call, its exit or its crash (as vmcompute runs down the RPC context of
//!   a client that died). Events are registered before the object exists, so none is lost
//!   between creation and a callback registered right after.
//! - anything else: one request, one [`Response`], then the connection closes.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// The file (under `%ProgramData%`) where the service writes the address it listens on.
pub const ADDRESS_FILE: &str = r"pane-hostsim\service.addr";
/// Overrides [`ADDRESS_FILE`] for both the service and the DLL.
pub const ADDRESS_ENV: &str = "PANE_HOSTSIM_ADDR";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op")]
pub enum Request {
    /// `HcsCreateComputeSystem`; a handle conversation.
    Create {
        id: String,
        document: String,
    },
    /// `HcsOpenComputeSystem`; a handle conversation.
    Open {
        id: String,
    },
    Start {
        id: String,
        options: Option<String>,
    },
    Shutdown {
        id: String,
        options: Option<String>,
    },
    Terminate {
        id: String,
        options: Option<String>,
    },
    Pause {
        id: String,
        options: Option<String>,
    },
    Resume {
        id: String,
        options: Option<String>,
    },
    Properties {
        id: String,
        query: Option<String>,
    },
    Modify {
        id: String,
        settings: String,
    },
    Enumerate {
        query: Option<String>,
    },
    /// `HcsCreateProcess`, a handle conversation; the pipe ends are duplicated into
    /// `client_pid`.
    CreateProcess {
        id: String,
        parameters: String,
        client_pid: u32,
    },
    /// `HcsOpenProcess`; a handle conversation.
    OpenProcess {
        id: String,
        pid: u32,
    },
    ProcessProperties {
        id: String,
        pid: u32,
        query: Option<String>,
    },
    Signal {
        id: String,
        pid: u32,
        options: Option<String>,
    },
    TerminateProcess {
        id: String,
        pid: u32,
        options: Option<String>,
    },
    ModifyProcess {
        id: String,
        pid: u32,
        settings: Option<String>,
    },
    GrantVmAccess {
        vm_id: String,
        path: String,
    },
    /// For test scripts: the console sizes of system `id`'s console processes, by pid (the
    /// size each was created with, then each `ConsoleSize` modify).
    Consoles {
        id: String,
    },
    /// Arms a fault: the `nth` (1-based, counted from now) request named `call` (a request's
    /// `op`, or a layer call's name such as `ActivateLayer`) fails with `hresult`, or is
    /// answered after `stall_ms`, or makes the service exit (`crash`).
    Fault {
        call: String,
        nth: u32,
        hresult: Option<u32>,
        stall_ms: Option<u64>,
        crash: bool,
    },
    /// One of computenetwork's calls (`HcnCreateEndpoint`, …; `HcnList` lists every
    /// namespace and endpoint, for test scripts): `id` is the object's GUID, `parent` the
    /// network's for `HcnCreateEndpoint`, `settings` the settings or query document.
    Hcn {
        call: String,
        id: Option<String>,
        parent: Option<String>,
        settings: Option<String>,
    },
    /// One of vmcompute's layer calls (`ActivateLayer`, …); `parents` are the descriptor
    /// paths, topmost first; `size` is `ExpandSandboxSize`'s, `source` `ImportLayer`'s
    /// import folder.
    Layer {
        call: String,
        path: String,
        parents: Vec<String>,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
}

impl Request {
    /// The name faults are armed with: the `op`, or for a layer call the call's name.
    pub fn name(&self) -> String {
        if let Request::Layer { call, .. } | Request::Hcn { call, .. } = self {
            return call.clone();
        }
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Pipe handles as numbers valid in the client process.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub stdin: u64,
    pub stdout: u64,
    pub stderr: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub hresult: u32,
    /// The result document (or, on failure, a `ResultError` document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
}

impl Response {
    pub fn ok() -> Self {
        Self::default()
    }

    pub fn document(document: String) -> Self {
        Self {
            document: Some(document),
            ..Self::default()
        }
    }

    /// A failure with the documented `ResultError` document.
    pub fn error(hresult: u32, message: &str) -> Self {
        let document = serde_json::json!({
            "Error": hresult.cast_signed(),
            "ErrorMessage": message,
        });
        Self {
            hresult,
            document: Some(document.to_string()),
            ..Self::default()
        }
    }
}

/// An event for a registered callback: `HCS_EVENT_TYPE` and its `EventData` document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub kind: u32,
    pub data: Option<String>,
}

/// Writes `value` as one line.
pub fn send<T: Serialize>(mut writer: impl Write, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)?;
    writer.flush()
}

/// Reads one line as `T`; `Ok(None)` at end of stream.
pub fn receive<T: for<'de> Deserialize<'de>>(reader: &mut impl BufRead) -> io::Result<Option<T>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_lines() {
        let request = Request::CreateProcess {
            id: "c1".into(),
            parameters: "{}".into(),
            client_pid: 7,
        };
        let mut buffer = Vec::new();
        send(&mut buffer, &request).unwrap();
        assert_eq!(buffer.last(), Some(&b'\n'));
        assert!(!buffer[..buffer.len() - 1].contains(&b'\n'));
        let back: Request = receive(&mut buffer.as_slice()).unwrap().unwrap();
        assert_eq!(back, request);
        assert_eq!(receive::<Request>(&mut &b""[..]).unwrap(), None);
    }

    #[test]
    fn errors_carry_a_result_error_document() {
        let response = Response::error(0x8037_010D, "bad");
        let document: serde_json::Value =
            serde_json::from_str(response.document.as_deref().unwrap()).unwrap();
        assert_eq!(document["Error"], 0x8037_010D_u32.cast_signed());
        assert_eq!(document["ErrorMessage"], "bad");
    }
}
