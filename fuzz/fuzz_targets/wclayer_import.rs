//! Arbitrary bytes as a layer staged for `ImportLayer`: the backup-stream encoding and the
//! import folder writer must refuse or stage without panicking, and never write outside the
//! staging folder.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use pane_wclayer::import::import_stream;
use pane_wclayer::import::legacy::LegacyImportFolder;

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let root = std::env::temp_dir().join(format!(
        "pane-fuzz-import-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let staging = root.join("staging");
    if std::fs::create_dir_all(&root).is_err() {
        return;
    }
    if let Ok(mut folder) = LegacyImportFolder::create(&staging) {
        let _ = import_stream(data, &mut folder);
        let _ = folder.finish();
    }
    let outside: Vec<_> = std::fs::read_dir(&root)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(outside.iter().all(|name| name == "staging"), "{outside:?}");
    let _ = std::fs::remove_dir_all(&root);
});
