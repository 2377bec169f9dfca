//! Arbitrary bytes as a Windows layer (tar, gzip or zstd): the reader must refuse or accept
//! without panicking, and every entry it accepts must carry a validated path.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use pane_wclayer::LayerReader;
use pane_wclayer::reader::validate_path;

fuzz_target!(|data: &[u8]| {
    let _ = LayerReader.read(data, |entry, content| {
        assert_eq!(validate_path(&entry.path).as_deref(), Ok(entry.path.as_str()));
        let mut sink = Vec::new();
        let _ = content.take(1 << 20).read_to_end(&mut sink);
        Ok(())
    });
});
