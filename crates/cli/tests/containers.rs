//! Container commands as users run them. This host has no HCS, so the commands that need
//! one must refuse before creating anything; the ones that read pane's records (`ps`,
//! `inspect`, `logs`, `wait` of an ended container) work on records and logs written to a
//! real state directory.
#![cfg(not(windows))]
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers, not product code

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use pane_runtime::logs::LogWriter;
use pane_runtime::records::{ContainerRecord, Phase, RecordStore};
use pane_runtime::{ContainerId, LogEntry, LogStream};

fn pane(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pane"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PANE_LOG")
        .output()
        .expect("the pane binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A container that ran and exited with 3, with three lines of output.
fn ended_container(root: &Path) -> ContainerId {
    let id = ContainerId::new("batch", 1);
    let spec =
        pane_spec::parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n").unwrap();
    let mut record = ContainerRecord::new(id.clone(), "pane", &spec);
    record.phase = Phase::Exited { code: 3 };
    record.image_manifest = Some(format!("sha256:{}", "a".repeat(64)));
    record.started_at = Some(Utc::now());
    record.finished_at = Some(Utc::now());
    RecordStore::open(root).unwrap().save(&record).unwrap();
    let mut log =
        LogWriter::open(&root.join("containers").join(id.to_string()), 1 << 20, 2).unwrap();
    for (stream, message) in [
        (LogStream::Stdout, "step 1"),
        (LogStream::Stderr, "warning: slow disk"),
        (LogStream::Stdout, "step 2"),
    ] {
        log.append(&LogEntry {
            timestamp: Utc::now(),
            stream,
            message: message.into(),
            exec_id: None,
        })
        .unwrap();
    }
    id
}

#[test]
fn run_without_hcs_says_what_is_missing_and_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let output = pane(
        root.path(),
        &[
            "run",
            "mcr.microsoft.com/windows/nanoserver:ltsc2022",
            "--",
            "cmd",
            "/c",
            "echo hi",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("containers cannot run on this host"),
        "{stderr}"
    );
    assert!(stderr.contains("Containers feature"), "the fix: {stderr}");
    let listed = pane(root.path(), &["--json", "ps", "-a"]);
    assert_eq!(text(&listed.stdout).trim(), "[]");
}

#[test]
fn ps_lists_running_by_default_and_everything_with_all() {
    let root = tempfile::tempdir().unwrap();
    ended_container(root.path());
    let running = pane(root.path(), &["ps"]);
    assert_eq!(running.status.code(), Some(0));
    assert!(
        !text(&running.stdout).contains("batch-1"),
        "{}",
        text(&running.stdout)
    );
    let all = pane(root.path(), &["ps", "-a"]);
    let listing = text(&all.stdout);
    assert!(
        listing.contains("batch-1") && listing.contains("exited (3)"),
        "{listing}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&pane(root.path(), &["--json", "ps", "-a"]).stdout).unwrap();
    assert_eq!(json[0]["state"]["status"], "exited");
}

#[test]
fn logs_keep_streams_apart_and_tail_counts_lines() {
    let root = tempfile::tempdir().unwrap();
    ended_container(root.path());
    let output = pane(root.path(), &["logs", "batch-1"]);
    assert_eq!(text(&output.stdout), "step 1\nstep 2\n");
    assert_eq!(text(&output.stderr), "warning: slow disk\n");
    let tail = pane(root.path(), &["logs", "--tail", "1", "batch-1"]);
    assert_eq!(text(&tail.stdout), "step 2\n");
    // Following an ended container prints what there is and returns.
    let follow = pane(root.path(), &["logs", "-f", "batch-1"]);
    assert_eq!(follow.status.code(), Some(0));
    assert_eq!(text(&follow.stdout), "step 1\nstep 2\n");
    let bad = pane(root.path(), &["logs", "--since", "yesterday", "batch-1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--since"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn inspect_and_wait_read_the_record() {
    let root = tempfile::tempdir().unwrap();
    ended_container(root.path());
    let inspect: serde_json::Value =
        serde_json::from_slice(&pane(root.path(), &["inspect", "batch-1"]).stdout).unwrap();
    assert_eq!(inspect[0]["exit_code"], 3);
    assert_eq!(inspect[0]["id"]["service"], "batch");
    let wait = pane(root.path(), &["wait", "batch-1"]);
    assert_eq!(
        (wait.status.code(), text(&wait.stdout)),
        (Some(0), "3\n".to_owned())
    );
    let missing = pane(root.path(), &["inspect", "web-9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no container web-9"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn bad_ids_and_signals_are_input_errors() {
    let root = tempfile::tempdir().unwrap();
    let bad_id = pane(root.path(), &["stop", "not an id"]);
    assert_eq!(bad_id.status.code(), Some(2));
    assert!(
        text(&bad_id.stderr).contains("SERVICE-REPLICA"),
        "{}",
        text(&bad_id.stderr)
    );
    let bad_signal = pane(root.path(), &["kill", "--signal", "HUP", "web-1"]);
    assert_eq!(bad_signal.status.code(), Some(2));
    assert!(
        text(&bad_signal.stderr).contains("--signal"),
        "{}",
        text(&bad_signal.stderr)
    );
}

/// The supervisor of a running container was killed (kill -9): its socket is left with
/// nobody on it. exec, stop and kill say so and that its output is no longer logged, then
/// go to HCS by name (which this host lacks).
#[test]
fn a_dead_supervisor_is_reported_and_commands_go_to_hcs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let id = ContainerId::new("web", 1);
    let spec =
        pane_spec::parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n").unwrap();
    let mut record = ContainerRecord::new(id.clone(), "pane", &spec);
    record.phase = Phase::Running;
    record.started_at = Some(Utc::now());
    RecordStore::open(root).unwrap().save(&record).unwrap();
    let socket = root.join("shims").join("web-1.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    for args in [
        &["exec", "web-1", "--", "cmd", "/c", "ver"][..],
        &["stop", "web-1"][..],
        &["kill", "web-1"][..],
    ] {
        let output = pane(root, args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the supervisor of web-1 does not answer")
                && stderr.contains("reaching the container through HCS")
                && stderr.contains("no longer being logged"),
            "{args:?}: {stderr}"
        );
    }
}
