//! Feeds arbitrary bytes to the bridge frame decoder, and every decoded body to the
//! message parsers the host applies to guest input. Nothing may panic or allocate beyond
//! the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pane_gcs::frame::{self, MAX_MESSAGE_SIZE};
use pane_gcs::messages::{ContainerNotification, ExecuteProcessResponse, NegotiateProtocolResponse, ResponseBase};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, used))) = frame::decode(rest, MAX_MESSAGE_SIZE) {
        assert!(used >= frame::HEADER_LEN && used <= rest.len());
        assert!(frame.body.len() + frame::HEADER_LEN == used);
        let _ = frame.message_type.kind();
        let _ = frame.message_type.rpc();
        let _ = serde_json::from_slice::<ResponseBase>(&frame.body);
        let _ = serde_json::from_slice::<NegotiateProtocolResponse>(&frame.body);
        let _ = serde_json::from_slice::<ExecuteProcessResponse>(&frame.body);
        let _ = serde_json::from_slice::<ContainerNotification>(&frame.body);
        rest = &rest[used..];
    }
});
