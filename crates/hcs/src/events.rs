//! Compute-system and process events as HCS reports them, parsed from their JSON.

use serde::Deserialize;

use crate::hresult::HResult;

/// `HCS_EVENT_TYPE` values pane acts on.
pub mod event_type {
    pub const SYSTEM_EXITED: i32 = 0x1;
    pub const SYSTEM_CRASH_INITIATED: i32 = 0x2;
    pub const SYSTEM_CRASH_REPORT: i32 = 0x3;
    pub const SYSTEM_GUEST_CONNECTION_CLOSED: i32 = 0x6;
    pub const PROCESS_EXITED: i32 = 0x0001_0000;
    pub const SERVICE_DISCONNECT: i32 = 0x0200_0000;
}

/// An event from a compute system or one of its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HcsEvent {
    /// The system is gone. It carries no exit code: a container's exit code is its init
    /// process's.
    SystemExited {
        status: Option<HResult>,
        exit_type: Option<String>,
    },
    /// A process exited; `None` when HCS could not read its exit code.
    ProcessExited {
        exit_code: Option<u32>,
    },
    /// The compute service went away; nothing more will be reported.
    ServiceDisconnect,
    CrashInitiated,
    CrashReport,
    GuestConnectionClosed,
    Other {
        kind: i32,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SystemExitStatus {
    #[serde(default)]
    status: Option<i32>,
    #[serde(default)]
    exit_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessExitStatus {
    #[serde(default)]
    exit_code: Option<u32>,
    #[serde(default)]
    last_wait_result: i32,
}

impl HcsEvent {
    /// Parses an event; malformed data degrades to the event without its details.
    pub fn parse(kind: i32, data: &str) -> Self {
        match kind {
            event_type::SYSTEM_EXITED => {
                let status: Option<SystemExitStatus> = serde_json::from_str(data).ok();
                HcsEvent::SystemExited {
                    status: status
                        .as_ref()
                        .and_then(|s| s.status)
                        .filter(|s| *s != 0)
                        .map(HResult::from_i32),
                    exit_type: status.and_then(|s| s.exit_type),
                }
            }
            event_type::PROCESS_EXITED => {
                let status: Option<ProcessExitStatus> = serde_json::from_str(data).ok();
                // hcsshim: a non-zero LastWaitResult means the exit code is not trustworthy.
                let exit_code = status
                    .filter(|s| s.last_wait_result == 0)
                    .and_then(|s| s.exit_code);
                HcsEvent::ProcessExited { exit_code }
            }
            event_type::SERVICE_DISCONNECT => HcsEvent::ServiceDisconnect,
            event_type::SYSTEM_CRASH_INITIATED => HcsEvent::CrashInitiated,
            event_type::SYSTEM_CRASH_REPORT => HcsEvent::CrashReport,
            event_type::SYSTEM_GUEST_CONNECTION_CLOSED => HcsEvent::GuestConnectionClosed,
            kind => HcsEvent::Other { kind },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exits_of_systems_and_processes() {
        assert_eq!(
            HcsEvent::parse(1, r#"{"Status":-2143878910,"ExitType":"UnexpectedExit"}"#),
            HcsEvent::SystemExited {
                status: Some(HResult(0x8037_0102)),
                exit_type: Some("UnexpectedExit".into())
            }
        );
        assert_eq!(
            HcsEvent::parse(1, ""),
            HcsEvent::SystemExited {
                status: None,
                exit_type: None
            }
        );
        assert_eq!(
            HcsEvent::parse(
                0x1_0000,
                r#"{"ProcessId":4,"Exited":true,"ExitCode":3,"LastWaitResult":0}"#
            ),
            HcsEvent::ProcessExited { exit_code: Some(3) }
        );
        assert_eq!(
            HcsEvent::parse(0x1_0000, r#"{"ExitCode":3,"LastWaitResult":5}"#),
            HcsEvent::ProcessExited { exit_code: None }
        );
        assert_eq!(
            HcsEvent::parse(0x0200_0000, ""),
            HcsEvent::ServiceDisconnect
        );
        assert_eq!(HcsEvent::parse(42, "{}"), HcsEvent::Other { kind: 42 });
    }
}
