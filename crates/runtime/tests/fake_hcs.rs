//! The HCS double behaves like HCS where the runtime depends on it: states, the HRESULTs of
//! calls in the wrong state, exit events, owner enumeration and injected failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::time::Duration;

use pane_hcs::HcsEvent;
use pane_hcs::schema::{ComputeSystem, ProcessParameters, PropertyQuery, VirtualMachine};
use pane_runtime::backend::{Compute, ComputeEvent};
use support::fake_hcs::{self, FakeHcs, SystemState};
use tokio::io::AsyncReadExt;

fn container(owner: &str) -> ComputeSystem {
    ComputeSystem {
        owner: Some(owner.into()),
        ..ComputeSystem::default()
    }
}

#[tokio::test]
async fn systems_move_through_hcs_states_and_refuse_wrong_ones() {
    let hcs = FakeHcs::default();
    hcs.create("web-1", &container("pane")).await.unwrap();
    let again = hcs.create("web-1", &container("pane")).await.unwrap_err();
    assert_eq!(again.hresult.0, fake_hcs::HCS_E_SYSTEM_ALREADY_EXISTS);
    let early = hcs
        .create_process("web-1", &ProcessParameters::default())
        .await
        .unwrap_err();
    assert_eq!(
        early.hresult.0,
        fake_hcs::HCS_E_INVALID_STATE,
        "no process before start"
    );
    hcs.start("web-1").await.unwrap();
    assert_eq!(
        hcs.start("web-1").await.unwrap_err().hresult.0,
        fake_hcs::HCS_E_INVALID_STATE
    );
    hcs.terminate("web-1").await.unwrap();
    assert_eq!(hcs.state_of("web-1"), Some(SystemState::Stopped));
    assert_eq!(
        hcs.terminate("web-1").await.unwrap_err().hresult.0,
        fake_hcs::HCS_E_SYSTEM_ALREADY_STOPPED
    );
    hcs.close("web-1").await;
    assert_eq!(
        hcs.open("web-1").await.unwrap_err().hresult.0,
        fake_hcs::HCS_E_SYSTEM_NOT_FOUND,
        "gone once closed"
    );
}

#[tokio::test]
async fn processes_report_output_and_exit_through_events() {
    let hcs = FakeHcs::default();
    hcs.create("job-1", &container("pane")).await.unwrap();
    let mut events = hcs.events("job-1").unwrap();
    hcs.start("job-1").await.unwrap();
    let parameters = ProcessParameters {
        create_std_out_pipe: true,
        ..ProcessParameters::default()
    };
    let mut io = hcs.create_process("job-1", &parameters).await.unwrap();
    hcs.write_stdout("job-1", io.pid, b"hello\n").await;
    hcs.exit_process("job-1", io.pid, 7);
    let mut output = String::new();
    io.stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut output)
        .await
        .unwrap();
    assert_eq!(output, "hello\n");
    assert_eq!(
        events.recv().await.unwrap(),
        ComputeEvent::Process {
            pid: io.pid,
            event: HcsEvent::ProcessExited { exit_code: Some(7) }
        }
    );
    let err = hcs.signal_process("job-1", io.pid, None).await.unwrap_err();
    assert_eq!(err.hresult.0, fake_hcs::HCS_E_PROCESS_ALREADY_STOPPED);
    hcs.shutdown("job-1", Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        ComputeEvent::System(HcsEvent::SystemExited {
            status: None,
            exit_type: None
        })
    );
}

#[tokio::test]
async fn vms_have_a_runtime_id_of_their_own_and_owners_stay_apart() {
    let hcs = FakeHcs::default();
    let vm = ComputeSystem {
        owner: Some("pane".into()),
        virtual_machine: Some(VirtualMachine::default()),
        ..ComputeSystem::default()
    };
    hcs.create("web-1@vm", &vm).await.unwrap();
    hcs.create("other-1", &container("pane-dev")).await.unwrap();
    let properties = hcs
        .properties("web-1@vm", &PropertyQuery::default())
        .await
        .unwrap();
    let runtime_id = properties.runtime_id.unwrap();
    assert_ne!(
        runtime_id, "web-1@vm",
        "the hvsock VM id is not the system id"
    );
    let mine: Vec<String> = hcs
        .enumerate("pane")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.id)
        .collect();
    assert_eq!(mine, ["web-1@vm"]);
}

#[tokio::test]
async fn injected_failures_hit_the_named_call() {
    let hcs = FakeHcs::default();
    hcs.fail_once("HcsStartComputeSystem", 0x8037_0100);
    hcs.create("web-1", &container("pane")).await.unwrap();
    let err = hcs.start("web-1").await.unwrap_err();
    assert_eq!(err.hresult.0, 0x8037_0100);
    assert!(
        err.to_string().contains("HCS_E_TERMINATED_DURING_START"),
        "{err}"
    );
    hcs.start("web-1").await.unwrap();
    assert_eq!(
        hcs.calls(),
        [
            "HcsCreateComputeSystem web-1",
            "HcsStartComputeSystem web-1",
            "HcsStartComputeSystem web-1"
        ]
    );
}
