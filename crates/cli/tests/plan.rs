//! `pane plan` end to end on Linux, against the example image layout.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn repo(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
        .to_string_lossy()
        .into_owned()
}

fn pane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pane"))
        .args(args)
        .env_remove("PANE_HOST_BUILD")
        .env_remove("PANE_ROOT")
        .output()
        .expect("the pane binary runs")
}

fn plan_json(spec: &str, extra: &[&str]) -> Value {
    let layout = repo("examples/images/nanoserver-demo");
    // A fixed host, so that CPU limits do not depend on the machine the tests run on (on
    // Windows the plan would otherwise count this host's processors).
    let mut args = vec![
        "--json",
        "plan",
        spec,
        "--image-layout",
        &layout,
        "--host-processors",
        "4",
    ];
    args.extend_from_slice(extra);
    let output = pane(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn calls(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["api"].as_str().unwrap(),
                s["call"].as_str().unwrap()
            )
        })
        .collect()
}

fn step<'a>(plan: &'a Value, call: &str, target_suffix: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["call"] == call && s["target"].as_str().unwrap().ends_with(target_suffix))
        .unwrap_or_else(|| panic!("no {call} step for *{target_suffix}"))
}

#[test]
fn process_plan_on_a_matching_host() {
    let plans = plan_json(
        &repo("examples/nanoserver-batch.yaml"),
        &["--host-build", "10.0.20348.1"],
    );
    let plan = &plans[0];
    assert_eq!(plan["isolation"]["isolation"], "process");
    assert_eq!(
        plan["image_build"], "10.0.20348.2700",
        "the exact build was chosen from the index"
    );
    assert_eq!(
        calls(plan),
        [
            "layers BackupWrite + ProcessBaseImage",
            "layers CreateScratchLayer",
            "layers ActivateLayer + PrepareLayer",
            "hcs HcsCreateComputeSystem",
            "hcs HcsStartComputeSystem",
            "hcs HcsCreateProcess",
            "hcs HcsSetProcessCallback"
        ]
    );
    let document = &step(plan, "HcsCreateComputeSystem", "-1")["document"];
    assert_eq!(document["Owner"], "pane");
    assert_eq!(document["Container"]["Memory"]["SizeInMB"], 256);
    assert_eq!(
        document["Container"]["Processor"]["Maximum"], 1250,
        "500m of 4 host processors"
    );
    assert_eq!(
        document["Container"]["MappedDirectories"][0]["ReadOnly"],
        true
    );
    assert!(document.get("ShouldTerminateOnLastHandleClosed").is_none());
    let notes = plan["notes"].to_string();
    assert!(
        notes
            .contains(r"not on this machine, so planned as the folders they name: C:\\jobs\\input"),
        "a plan needs no host, and says what it assumed: {notes}"
    );
    let process = &step(plan, "HcsCreateProcess", "-1")["document"];
    assert_eq!(process["User"], "ContainerUser");
    assert_eq!(process["WorkingDirectory"], r"C:\work");
}

#[test]
fn hyperv_plan_when_builds_differ() {
    let spec = temp_spec(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nresources: {cpu: 3, memory: 3000Mi}\n",
    );
    let plans = plan_json(
        spec.path().to_str().unwrap(),
        &["--host-build", "10.0.22631"],
    );
    let plan = &plans[0];
    assert_eq!(plan["isolation"]["isolation"], "hyperv");
    assert_eq!(plan["isolation"]["reason"], "builds_differ");
    let calls = calls(plan);
    let gcs: Vec<&str> = calls
        .iter()
        .filter(|c| c.starts_with("gcs "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        gcs,
        [
            "gcs listen hvsock",
            "gcs NegotiateProtocol",
            "gcs Create",
            "gcs Start",
            "gcs ModifySettings",
            "gcs ModifySettings",
            "gcs ModifySettings",
            "gcs Create",
            "gcs GetProperties",
            "gcs Start",
            "gcs ExecuteProcess",
            "gcs WaitForProcess"
        ]
    );
    let vm = &step(plan, "HcsCreateComputeSystem", "@vm")["document"]["VirtualMachine"];
    assert_eq!(vm["ComputeTopology"]["Memory"]["SizeInMB"], 3000);
    assert_eq!(vm["ComputeTopology"]["Processor"]["Count"], 3);
    assert_eq!(vm["Chipset"]["Uefi"]["BootThis"]["DeviceType"], "VmbFs");
    let steps = plan["steps"].as_array().unwrap();
    let combined = steps
        .iter()
        .find(|s| s["document"]["ResourceType"] == "CombinedLayers")
        .unwrap();
    assert!(combined["document"]["Settings"].get("FilterType").is_none());
    let hosted = &steps.iter().rev().find(|s| s["call"] == "Create").unwrap()["document"];
    assert_eq!(hosted["Container"]["Storage"]["Path"], r"c:\mounts\scsi\m0");
}

#[test]
fn gpus_need_process_isolation() {
    let spec = temp_spec(
        "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nisolation: hyperv\nresources: {gpu: {vendor: nvidia, model: a6000}}\n",
    );
    let layout = repo("examples/images/nanoserver-demo");
    let refused = pane(&[
        "plan",
        spec.path().to_str().unwrap(),
        "--image-layout",
        &layout,
        "--host-build",
        "10.0.20348",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("isolation: process"), "{stderr}");

    let adapters = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        adapters.path(),
        r#"[{"description":"Microsoft Basic Render Driver","vendor_id":5140,"device_id":140,"luid":{"low_part":1,"high_part":0}},
            {"description":"NVIDIA RTX A6000","vendor_id":4318,"device_id":8752,"luid":{"low_part":2,"high_part":0}}]"#,
    )
    .unwrap();
    let adapters = adapters.path().to_str().unwrap();
    let plans = plan_json(
        spec.path().to_str().unwrap(),
        &[
            "--host-build",
            "10.0.20348",
            "--gpu-adapters",
            adapters,
            "--isolation",
            "process",
        ],
    );
    let document = &step(&plans[0], "HcsCreateComputeSystem", "-1")["document"];
    assert_eq!(
        document["Container"]["AssignedDevices"][0]["InterfaceClassGuid"],
        "5B45201D-F2F2-4F3B-85BB-30FF1F953599"
    );
}

#[test]
fn text_plan_shows_steps_and_documents() {
    let layout = repo("examples/images/nanoserver-demo");
    let output = pane(&[
        "plan",
        &repo("examples/nanoserver-batch.yaml"),
        "--image-layout",
        &layout,
        "--host-build",
        "10.0.20348",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("plan for nanoserver-batch-1"), "{text}");
    assert!(text.contains("[hcs] HcsCreateComputeSystem"), "{text}");
    assert!(text.contains("\"SchemaVersion\""), "{text}");
}

fn temp_spec(yaml: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    file
}
