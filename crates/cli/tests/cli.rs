//! The `pane` binary as users run it: output, JSON and exit codes.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers, not product code

use std::path::PathBuf;
use std::process::{Command, Output};

fn pane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pane"))
        .args(args)
        .env_remove("PANE_ROOT")
        .env_remove("PANE_LOG")
        .output()
        .expect("the pane binary runs")
}

fn repo_file(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(relative)
        .to_string_lossy()
        .into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn spec_check_accepts_every_example() {
    let files = [
        "iis-servercore.yaml",
        "nanoserver-batch.yaml",
        "gpu-hyperv.yaml",
    ]
    .map(|name| repo_file(&format!("../../examples/{name}")));
    let mut args = vec!["spec", "check"];
    args.extend(files.iter().map(String::as_str));
    let output = pane(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        stdout(&output).matches(": OK (").count(),
        3,
        "{}",
        stdout(&output)
    );
}

#[test]
fn spec_check_prints_five_located_problems_and_exits_2() {
    let file = repo_file("tests/fixtures/five-mistakes.yaml");
    let output = pane(&["spec", "check", &file]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(text.contains("5 problems"), "{text}");
    let located: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("  {file}:")))
        .collect();
    assert_eq!(located.len(), 5, "{text}");
    for expected in [
        "services.web.image",
        "services.web.isolation",
        "services.web.resouces",
        "services.web.ports[0]",
        "services.worker.resources.cpu",
    ] {
        assert!(
            located.iter().any(|l| l.contains(expected)),
            "{expected} missing from:\n{text}"
        );
    }
}

#[test]
fn spec_check_json_lists_problems_with_positions() {
    let file = repo_file("tests/fixtures/five-mistakes.yaml");
    let output = pane(&["--json", "spec", "check", &file]);
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = report["files"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 5);
    assert_eq!(problems[0]["path"], "services.web.image");
    assert_eq!(problems[0]["line"], 5);
    assert_eq!(report["files"][0]["valid"], false);
}

#[test]
fn spec_check_on_a_missing_file_exits_1() {
    let output = pane(&["spec", "check", "no-such-spec.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("cannot read"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn version_reports_host_and_root() {
    let output = pane(&["--json", "version", "--root", "state-here"]);
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["host"]["os"], std::env::consts::OS);
    assert_eq!(report["root"], "state-here");
    assert!(report["host"]["hcs"]["status"].is_string());
}

#[test]
fn exec_with_a_console_and_no_terminal_is_refused_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pane"))
        .arg("--root")
        .arg(root.path())
        .args(["exec", "-t", "web-1", "--", "cmd"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a terminal") && stderr.contains("drop -t"),
        "{stderr}"
    );
}
