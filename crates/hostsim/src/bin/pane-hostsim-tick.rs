//! `pane-hostsim-tick [SECONDS]`: a workload for containers under the simulator. Prints
//! `tick N` once a second for SECONDS (default 60), then exits 0; it goes on when its output
//! is gone (a killed supervisor), so adoption can be tested. Wine's own tools do not
//! wait (its `ping` to loopback returns at once), so tests that need a process that runs
//! for a while use this one, installed on wine's `C:` (there is no filesystem isolation).

use std::io::Write;
use std::time::Duration;

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut out = std::io::stdout();
    for tick in 1..=seconds {
        let _ = writeln!(out, "tick {tick}").and_then(|()| out.flush());
        std::thread::sleep(Duration::from_secs(1));
    }
}
