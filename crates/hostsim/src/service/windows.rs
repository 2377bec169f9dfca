//! Real processes for `HcsCreateProcess`: started with `std::process::Command`, with the
//! pipes the parameters ask for; the host ends are duplicated into the calling process, so
//! the handles `HcsWaitForOperationResultAndProcessInfo` returns are valid there, as
//! vmcompute hands them over.
//!
//! `unsafe` is limited to the Win32 calls on handles (pipe creation, duplication into the
//! client, termination, console control events).
#![allow(unsafe_code)]

use std::os::windows::io::{AsHandle, AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::os::windows::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::Value;
use windows::Win32::Foundation::{
    CloseHandle, DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS, DuplicateHandle, HANDLE,
};
use windows::Win32::System::Console::{CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent};
use windows::Win32::System::Pipes::CreatePipe;
use windows::Win32::System::Threading::{
    CREATE_NEW_PROCESS_GROUP, GetCurrentProcess, OpenProcess, PROCESS_DUP_HANDLE, TerminateProcess,
};

use super::{OnExit, OsProcess, Spawner};
use crate::hresult::{E_FAIL, E_INVALIDARG};
use crate::protocol::ProcessInfo;

/// The exit code of a process ended by `HcsTerminateProcess` (the simulator's choice; HCS
/// does not document one).
const TERMINATED_EXIT_CODE: u32 = 1;
/// `STATUS_CONTROL_C_EXIT`: the exit of a console process ended by a control event it could
/// not be sent (see [`WindowsProcess::signal`]).
const STATUS_CONTROL_C_EXIT: u32 = 0xC000_013A;

fn hresult(e: &std::io::Error) -> u32 {
    e.raw_os_error()
        .and_then(|c| u32::try_from(c).ok())
        .map_or(E_FAIL, |c| 0x8007_0000 | (c & 0xFFFF))
}

fn win_error(e: &windows::core::Error) -> u32 {
    e.code().0.cast_unsigned()
}

/// Splits a Windows command line into the program (first token, quotes removed) and the
/// rest, passed through unchanged as the process's arguments.
pub fn split_command_line(line: &str) -> (String, &str) {
    let line = line.trim_start();
    if let Some(quoted) = line.strip_prefix('"') {
        match quoted.find('"') {
            Some(end) => (quoted[..end].to_owned(), quoted[end + 1..].trim_start()),
            None => (quoted.to_owned(), ""),
        }
    } else {
        match line.find([' ', '\t']) {
            Some(end) => (line[..end].to_owned(), line[end..].trim_start()),
            None => (line.to_owned(), ""),
        }
    }
}

/// An anonymous pipe: (read end, write end), neither inheritable.
fn pipe() -> Result<(OwnedHandle, OwnedHandle), (u32, String)> {
    let (mut read, mut write) = (HANDLE::default(), HANDLE::default());
    // SAFETY: both out-pointers are valid; default (non-inheritable) security attributes.
    unsafe { CreatePipe(&raw mut read, &raw mut write, None, 0) }
        .map_err(|e| (win_error(&e), format!("CreatePipe: {e}")))?;
    // SAFETY: CreatePipe succeeded, so both handles are open and owned by nobody else.
    Ok(unsafe {
        (
            OwnedHandle::from_raw_handle(read.0 as RawHandle),
            OwnedHandle::from_raw_handle(write.0 as RawHandle),
        )
    })
}

/// Moves `handle` into process `target` (an open handle with `PROCESS_DUP_HANDLE`);
/// returns its value there.
fn give(target: HANDLE, handle: OwnedHandle) -> Result<u64, (u32, String)> {
    let mut theirs = HANDLE::default();
    let raw = HANDLE(handle.as_raw_handle());
    // The source is closed by the call (DUPLICATE_CLOSE_SOURCE), even on failure.
    std::mem::forget(handle);
    // SAFETY: `raw` is a handle this process owns (released from its OwnedHandle above);
    // `target` is an open process handle; `theirs` is a valid out-pointer.
    unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            raw,
            target,
            &raw mut theirs,
            0,
            false,
            DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE,
        )
    }
    .map_err(|e| {
        (
            win_error(&e),
            format!("DuplicateHandle into the client: {e}"),
        )
    })?;
    Ok(theirs.0 as u64)
}

/// Starts processes on this (wine's) Windows, without filesystem isolation.
#[derive(Debug, Default)]
pub struct WindowsSpawner;

struct WindowsProcess {
    pid: u32,
    handle: OwnedHandle,
}

impl OsProcess for WindowsProcess {
    fn terminate(&self) -> Result<(), u32> {
        // SAFETY: `handle` is an open handle to the process with terminate access.
        unsafe { TerminateProcess(HANDLE(self.handle.as_raw_handle()), TERMINATED_EXIT_CODE) }
            .map_err(|e| win_error(&e))
    }

    /// `CtrlBreak` and `CtrlC` go to the process's group as a break event (a console cannot
    /// send Ctrl+C to another group); the close, log-off and shutdown events, which only the
    /// system sends, end the process as its default handler would.
    fn signal(&self, signal: &str) -> Result<(), u32> {
        match signal {
            "CtrlC" | "CtrlBreak" => {
                // SAFETY: plain call; the group id is the process's id (it was started with
                // CREATE_NEW_PROCESS_GROUP).
                unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, self.pid) }
                    .map_err(|e| win_error(&e))
            }
            _ => {
                // SAFETY: as in `terminate`.
                unsafe {
                    TerminateProcess(HANDLE(self.handle.as_raw_handle()), STATUS_CONTROL_C_EXIT)
                }
                .map_err(|e| win_error(&e))
            }
        }
    }
}

struct ClientProcess(HANDLE);

impl Drop for ClientProcess {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpenProcess and is closed once.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

impl Spawner for WindowsSpawner {
    #[allow(clippy::too_many_lines)] // the parameters, read in their documented order
    fn spawn(
        &self,
        parameters: &Value,
        client_pid: u32,
        on_exit: OnExit,
    ) -> Result<(Box<dyn OsProcess>, ProcessInfo), (u32, String)> {
        let flag = |name: &str| {
            parameters
                .get(name)
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let line = parameters
            .get("CommandLine")
            .and_then(Value::as_str)
            .or_else(|| parameters.get("ApplicationName").and_then(Value::as_str))
            .unwrap_or_default();
        let (program, rest) = split_command_line(line);
        if program.is_empty() {
            return Err((
                E_INVALIDARG,
                "ProcessParameters has no CommandLine".to_owned(),
            ));
        }
        let mut command = Command::new(&program);
        if !rest.is_empty() {
            command.raw_arg(rest);
        }
        // No filesystem isolation: a working directory that exists on this host is used,
        // one that only the container would have is ignored.
        if let Some(dir) = parameters.get("WorkingDirectory").and_then(Value::as_str)
            && std::path::Path::new(dir).is_dir()
        {
            command.current_dir(dir);
        }
        if let Some(environment) = parameters.get("Environment").and_then(Value::as_object) {
            for (key, value) in environment {
                command.env(key, value.as_str().unwrap_or_default());
            }
        }
        command.creation_flags(CREATE_NEW_PROCESS_GROUP.0);

        // SAFETY: plain call; the handle is closed by ClientProcess.
        let client = unsafe { OpenProcess(PROCESS_DUP_HANDLE, false, client_pid) }
            .map(ClientProcess)
            .map_err(|e| (win_error(&e), format!("OpenProcess({client_pid}): {e}")))?;

        let mut ours = [None, None, None];
        if flag("CreateStdInPipe") {
            let (read, write) = pipe()?;
            command.stdin(Stdio::from(read));
            ours[0] = Some(write);
        } else {
            command.stdin(Stdio::null());
        }
        let mut stdout_write = None;
        if flag("CreateStdOutPipe") {
            let (read, write) = pipe()?;
            stdout_write = Some(
                write
                    .try_clone()
                    .map_err(|e| (hresult(&e), e.to_string()))?,
            );
            command.stdout(Stdio::from(write));
            ours[1] = Some(read);
        } else {
            command.stdout(Stdio::null());
        }
        // EmulateConsole: "if set, ignore StdErrPipe"; errors then share the output pipe.
        if flag("CreateStdErrPipe") && !flag("EmulateConsole") {
            let (read, write) = pipe()?;
            command.stderr(Stdio::from(write));
            ours[2] = Some(read);
        } else if let (true, Some(write)) = (flag("EmulateConsole"), stdout_write.take()) {
            command.stderr(Stdio::from(write));
        } else {
            command.stderr(Stdio::null());
        }
        drop(stdout_write);

        let mut child = command
            .spawn()
            .map_err(|e| (hresult(&e), format!("starting {program:?}: {e}")))?;
        // The command's copies of the child ends must close, or readers never see EOF.
        drop(command);
        let pid = child.id();
        let handle = child
            .as_handle()
            .try_clone_to_owned()
            .map_err(|e| (hresult(&e), e.to_string()))?;
        std::thread::spawn(move || {
            let code = child
                .wait()
                .ok()
                .and_then(|s| s.code())
                .map_or(E_FAIL, i32::cast_unsigned);
            on_exit(code);
        });
        let [stdin, stdout, stderr] = ours;
        let mut info = ProcessInfo {
            pid,
            ..ProcessInfo::default()
        };
        let process = Box::new(WindowsProcess { pid, handle });
        let hand = |end: Option<OwnedHandle>| -> Result<u64, (u32, String)> {
            end.map_or(Ok(0), |h| give(client.0, h))
        };
        match (hand(stdin), hand(stdout), hand(stderr)) {
            (Ok(i), Ok(o), Ok(e)) => {
                info.stdin = i;
                info.stdout = o;
                info.stderr = e;
                Ok((process, info))
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                let _ = process.terminate();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_command_line;

    #[test]
    fn command_lines_split_at_the_program() {
        assert_eq!(
            split_command_line("cmd /c echo hi"),
            ("cmd".to_owned(), "/c echo hi")
        );
        assert_eq!(
            split_command_line(r#""C:\a b\x.exe" -y "z""#),
            (r"C:\a b\x.exe".to_owned(), r#"-y "z""#)
        );
        assert_eq!(split_command_line("ping"), ("ping".to_owned(), ""));
    }
}
