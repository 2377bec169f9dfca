//! On Windows: the API loads or says why not. With `--ignored`, on a host with the
//! Containers feature, real HCS calls.
#![cfg(windows)]
#![allow(clippy::unwrap_used)] // test code

use pane_hcs::HcsError;

#[test]
fn loading_reports_missing_hcs_instead_of_failing() {
    // Under wine or without the Containers feature this is `Unavailable`; on a container host
    // it loads. Anything else (a missing export, a crash) is a bug.
    match pane_hcs::sys::available() {
        Ok(()) | Err(HcsError::Unavailable { .. }) => {}
        Err(other) => panic!("unexpected: {other}"),
    }
}

#[tokio::test]
#[ignore = "needs a Windows host with the Containers feature, run elevated"]
async fn enumerates_compute_systems_by_owner() {
    let systems = pane_hcs::sys::enumerate("pane-functional-test-nobody")
        .await
        .unwrap();
    assert!(systems.is_empty(), "no system carries this owner tag");
}
