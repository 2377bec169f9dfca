//! On Windows the layer API loads or says why not; on a container host (`--ignored`), the
//! layer id of a folder name is stable.
#![cfg(windows)]
#![allow(clippy::unwrap_used)] // test code

use pane_wclayer::LayerError;

#[test]
fn a_missing_vmcompute_is_reported_not_fatal() {
    match pane_wclayer::sys::name_to_guid("sha256-0000") {
        Ok(_) | Err(LayerError::Unavailable(_)) => {}
        Err(other) => panic!("unexpected: {other}"),
    }
}

#[test]
#[ignore = "needs a Windows host with the Containers feature"]
fn name_to_guid_is_deterministic() {
    let first = pane_wclayer::sys::name_to_guid("sha256-abc").unwrap();
    assert_eq!(
        first,
        pane_wclayer::sys::name_to_guid("sha256-abc").unwrap()
    );
    assert_ne!(
        first,
        pane_wclayer::sys::name_to_guid("sha256-abd").unwrap()
    );
}
