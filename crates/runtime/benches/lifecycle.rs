//! Runtime overhead per container: create + start + exit + wait + remove of a
//! process-isolated container against the HCS and layer doubles, so everything but the OS
//! calls is measured (`cargo bench -p pane-runtime --bench lifecycle`), once with the state
//! directory on disk and once on tmpfs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)] // bench code

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pane_runtime::ContainerId;
use pane_runtime::lifecycle::{ContainerLifecycle, Layout};
use pane_runtime::records::RecordStore;
use support::fake_hcs::FakeHcs;
use support::fake_layers::FakeLayers;
use support::fixtures;

const CONTAINERS: u32 = 1000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the lifecycle `CONTAINERS` times with the state directory under `base`.
fn measure(base: &std::path::Path, label: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir_in(base).unwrap();
        let hcs = Arc::new(FakeHcs::default());
        let layers = Arc::new(FakeLayers::default());
        let records = RecordStore::open(dir.path()).unwrap();
        let layout = Layout {
            containers: dir.path().join("containers"),
            owner: "pane".into(),
            host_processors: 4,
        };
        let pane = ContainerLifecycle::new(hcs.clone(), layers, records, layout);
        let spec =
            pane_spec::parse_service("image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n")
                .unwrap();
        let (image, chain) = (fixtures::image(), fixtures::chain());
        let mut samples = Vec::with_capacity(CONTAINERS as usize);
        let mut rss = Vec::new();
        for replica in 0..CONTAINERS {
            let id = ContainerId::new("bench", replica);
            let start = Instant::now();
            pane.create(&id, &spec, &image, &chain).await.unwrap();
            pane.start(&id, &spec, &image).await.unwrap();
            let system = id.to_string();
            let pid = hcs.process_ids(&system)[0];
            hcs.exit_process(&system, pid, 0);
            pane.wait(&id).await.unwrap();
            pane.remove(&id, false).await.unwrap();
            samples.push(start.elapsed());
            if replica % 250 == 0 {
                rss.push(rss_kib());
            }
        }
        samples.sort();
        let at = |per_mille: usize| samples[(samples.len() - 1) * per_mille / 1000];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label}: create+start+wait+remove over {CONTAINERS} containers: p50 {:.3} ms, p99 {:.3} ms",
            ms(at(500)),
            ms(at(990))
        );
        println!("{label}: RSS at 0/250/500/750 containers: {rss:?} KiB");
    });
}

fn main() {
    // Records are fsync'd before every step that creates something, so on a disk the
    // figure is mostly the disk's flush latency; on tmpfs it is pane's own work.
    measure(&std::env::temp_dir(), "state on disk (temp dir)");
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        measure(shm, "state on tmpfs (/dev/shm)");
    }
}
