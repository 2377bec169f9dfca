//! The shim's messages. The first exchange is the handshake: the client says which
//! protocol version it speaks, the shim welcomes it or refuses it naming both versions, so
//! an old shim and a new `pane` (or the reverse) never misread each other. Requests carry an
//! id the response repeats; exec and attach open a session whose stdio travels in data
//! frames and whose end is an `exited` message.

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. A change that an older peer would misread
/// raises it.
pub const PROTOCOL: u32 = 1;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        protocol: u32,
        client: String,
    },
    Request {
        id: u64,
        op: Op,
    },
    /// The client has no more input for the session.
    CloseInput {
        session: u64,
    },
}

/// An operation on the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    State,
    Stats,
    /// Answered when the workload ends, with its exit code.
    Wait,
    Kill {
        signal: String,
    },
    /// A graceful stop, then termination after `timeout_ms`; answered with the exit code.
    Stop {
        timeout_ms: u64,
    },
    Exec(ExecRequest),
    /// The workload's output from now on, and its input when it was started with one.
    /// With `stdin_once` (docker's name: `run -i`, whose client owns the input) the end of
    /// this client's input closes the workload's; otherwise the input stays open for the
    /// next client. Added after protocol 1 shipped: an older shim ignores it.
    Attach {
        stdin: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stdin_once: bool,
    },
    Resize {
        session: u64,
        size: ConsoleSize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A console of this size (HCS `EmulateConsole` with `ConsoleSize`); none for pipes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<ConsoleSize>,
    pub stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSize {
    pub rows: u16,
    pub columns: u16,
}

/// What the shim sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShimMessage {
    Welcome {
        protocol: u32,
        shim: String,
    },
    Refused {
        protocol: u32,
        reason: String,
    },
    Response {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The session's process ended; no data of it follows.
    Exited {
        session: u64,
        code: i32,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_wire_form() {
        let exec = ClientMessage::Request {
            id: 3,
            op: Op::Exec(ExecRequest {
                command: vec!["cmd".into(), "/c".into(), "dir".into()],
                env: Vec::new(),
                workdir: None,
                user: None,
                terminal: Some(ConsoleSize {
                    rows: 24,
                    columns: 80,
                }),
                stdin: true,
            }),
        };
        assert_eq!(
            serde_json::to_value(&exec).unwrap(),
            serde_json::json!({"type": "request", "id": 3, "op": {"op": "exec", "command": ["cmd", "/c", "dir"], "terminal": {"rows": 24, "columns": 80}, "stdin": true}})
        );
        let kill =
            serde_json::json!({"type": "request", "id": 4, "op": {"op": "kill", "signal": "TERM"}});
        assert_eq!(
            serde_json::from_value::<ClientMessage>(kill).unwrap(),
            ClientMessage::Request {
                id: 4,
                op: Op::Kill {
                    signal: "TERM".into()
                }
            }
        );
    }
}
