//! Tracing to stderr, at the level -v/-q ask for. `PANE_LOG` (an env-filter directive such
//! as `pane_runtime=trace`) overrides the flags.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "warn",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "error",
        _ => "off",
    };
    let filter = EnvFilter::try_from_env("PANE_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
