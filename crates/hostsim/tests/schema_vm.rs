//! The `VirtualMachine` tree of the schema: pane's own Hyper-V documents (the `pane-hcs`
//! golden files) pass through the entry points the service uses, and each kind of refusal
//! names the member.
#![allow(clippy::unwrap_used)] // test code

use computecore::schema::{compute_system, modify_setting_request};
use serde_json::Value;

macro_rules! golden {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../hcs/tests/golden/",
            $name
        ))
    };
}

const UTILITY_VM: &str = golden!("utility_vm.json");

#[test]
fn pane_utility_vm_documents_pass() {
    for (name, text) in [
        ("utility_vm.json", UTILITY_VM),
        (
            "utility_vm_cpu_clamped.json",
            golden!("utility_vm_cpu_clamped.json"),
        ),
        (
            "utility_vm_fractional_cpu.json",
            golden!("utility_vm_fractional_cpu.json"),
        ),
    ] {
        if let Err(e) = compute_system(text) {
            panic!("{name}: {e}");
        }
    }
}

/// The shared structs this tree changed (`HvSocketSystemConfig.ServiceTable`) still take pane's
/// process-isolated documents.
#[test]
fn pane_container_documents_still_pass() {
    for (name, text) in [
        ("process_container.json", golden!("process_container.json")),
        (
            "process_container_cpu_clamped.json",
            golden!("process_container_cpu_clamped.json"),
        ),
        (
            "process_container_gpu.json",
            golden!("process_container_gpu.json"),
        ),
    ] {
        if let Err(e) = compute_system(text) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn pane_vm_share_requests_pass() {
    let requests: Vec<Value> = serde_json::from_str(golden!("vm_shares.json")).unwrap();
    assert!(!requests.is_empty());
    for (i, request) in requests.iter().enumerate() {
        if let Err(e) = modify_setting_request(&request.to_string()) {
            panic!("vm_shares.json[{i}]: {e}");
        }
    }
}

/// The utility VM document with `edit` applied to its `VirtualMachine`.
fn utility_vm_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut document: Value = serde_json::from_str(UTILITY_VM).unwrap();
    edit(&mut document["VirtualMachine"]);
    document.to_string()
}

fn refusal(document: &str) -> String {
    compute_system(document).unwrap_err().path
}

#[test]
fn an_unknown_member_is_refused_with_its_path() {
    let document = utility_vm_with(|vm| vm["Devices"]["Scsi"]["x"] = Value::Null);
    // `Scsi` is a map of controllers: `x` is a controller, and null is not one.
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Devices.Scsi.x"
    );
    let scsi = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a";
    let document = utility_vm_with(|vm| vm["Devices"]["Scsi"][scsi]["x"] = serde_json::json!(1));
    assert_eq!(
        refusal(&document),
        format!("ComputeSystem.VirtualMachine.Devices.Scsi.{scsi}.x")
    );
    let document = utility_vm_with(|vm| vm["Devices"]["Scsci"] = serde_json::json!({}));
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Devices.Scsci"
    );
    let document = utility_vm_with(|vm| {
        vm["ComputeTopology"]["Memory"]["SizeInGB"] = serde_json::json!(1);
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.ComputeTopology.Memory.SizeInGB"
    );
    let document = utility_vm_with(|vm| {
        vm["Devices"]["VirtualSmb"]["Shares"][0]["Options"]["Readonly"] = serde_json::json!(true);
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Devices.VirtualSmb.Shares[0].Options.Readonly"
    );
}

#[test]
fn a_wrong_type_is_refused() {
    let document = utility_vm_with(|vm| {
        vm["ComputeTopology"]["Processor"]["Count"] = serde_json::json!("2");
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.ComputeTopology.Processor.Count"
    );
    let document = utility_vm_with(|vm| vm["StopOnReset"] = serde_json::json!(1));
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.StopOnReset"
    );
    let document = utility_vm_with(|vm| {
        vm["Devices"]["VirtualSmb"]["Shares"] = serde_json::json!({"os": {}});
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Devices.VirtualSmb.Shares"
    );
}

#[test]
fn a_bad_enum_is_refused() {
    let document = utility_vm_with(|vm| {
        vm["Chipset"]["Uefi"]["BootThis"]["DeviceType"] = serde_json::json!("VmbFS");
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Chipset.Uefi.BootThis.DeviceType"
    );
    let scsi = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a";
    let document = utility_vm_with(|vm| {
        vm["Devices"]["Scsi"][scsi]["Attachments"]["0"]["Type"] = serde_json::json!("Vhdx");
    });
    assert_eq!(
        refusal(&document),
        format!("ComputeSystem.VirtualMachine.Devices.Scsi.{scsi}.Attachments.0.Type")
    );
}

#[test]
fn a_bad_map_key_is_refused() {
    let scsi = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a";
    let document = utility_vm_with(|vm| {
        let attachments = &mut vm["Devices"]["Scsi"][scsi]["Attachments"];
        attachments["lun1"] = attachments["0"].clone();
    });
    assert_eq!(
        refusal(&document),
        format!("ComputeSystem.VirtualMachine.Devices.Scsi.{scsi}.Attachments.lun1")
    );
    let document = utility_vm_with(|vm| {
        vm["Devices"]["HvSocket"]["HvSocketConfig"]["ServiceTable"]["gcs"] = serde_json::json!({});
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Devices.HvSocket.HvSocketConfig.ServiceTable.gcs"
    );
}

#[test]
fn a_missing_path_is_refused() {
    let document = utility_vm_with(|vm| {
        vm["Devices"]["VirtualSmb"]["Shares"][0]
            .as_object_mut()
            .unwrap()
            .remove("Path");
    });
    assert_eq!(
        refusal(&document),
        "ComputeSystem.VirtualMachine.Devices.VirtualSmb.Shares[0].Path"
    );
}

#[test]
fn hcsshim_members_the_reference_lacks_are_accepted() {
    let document = utility_vm_with(|vm| {
        vm["GuestState"] = serde_json::json!({"GuestStateFileType": "BlockStorage"});
        vm["ComputeTopology"]["Memory"]["EnableEpf"] = serde_json::json!(true);
        vm["Devices"]["HvSocket"]["HvSocketConfig"]["ServiceTable"]["172dad59-976d-45f2-8b6c-6d1b13f2ac4d"]
            ["Disabled"] = serde_json::json!(false);
    });
    compute_system(&document).unwrap();
}

#[test]
fn modify_settings_are_checked_by_resource_path() {
    let scsi = "VirtualMachine/Devices/Scsi/df6d0690-79e5-55b6-a5ec-c1e2f77f580a/Attachments/1";
    let good = serde_json::json!({
        "ResourcePath": scsi,
        "RequestType": "Add",
        "Settings": {"Type": "VirtualDisk", "Path": "C:\\s.vhdx"},
    });
    modify_setting_request(&good.to_string()).unwrap();
    let bad = serde_json::json!({
        "ResourcePath": scsi,
        "RequestType": "Add",
        "Settings": {"Type": "VirtualDisk", "Path": "C:\\s.vhdx", "Lun": 1},
    });
    assert_eq!(
        modify_setting_request(&bad.to_string()).unwrap_err().path,
        "ModifySettingRequest.Settings.Lun"
    );
    let nic = serde_json::json!({
        "ResourcePath": "VirtualMachine/Devices/NetworkAdapters/6f0b7c52-5d0b-4d57-9d3e-6c1d2ab1f4f0",
        "RequestType": "Add",
        "Settings": {"EndpointId": "not-a-guid"},
    });
    assert_eq!(
        modify_setting_request(&nic.to_string()).unwrap_err().path,
        "ModifySettingRequest.Settings.EndpointId"
    );
    // A share is added with its path but removed by name alone.
    let add = serde_json::json!({
        "ResourcePath": "VirtualMachine/Devices/VirtualSmb/Shares",
        "RequestType": "Add",
        "Settings": {"Name": "s0"},
    });
    assert_eq!(
        modify_setting_request(&add.to_string()).unwrap_err().path,
        "ModifySettingRequest.Settings.Path"
    );
    let remove = add.to_string().replace("\"Add\"", "\"Remove\"");
    modify_setting_request(&remove).unwrap();
    // A path the simulator does not know keeps any settings.
    let other = serde_json::json!({
        "ResourcePath": "VirtualMachine/Devices/Licensing",
        "RequestType": "Update",
        "Settings": {"Anything": 1},
    });
    modify_setting_request(&other.to_string()).unwrap();
}
