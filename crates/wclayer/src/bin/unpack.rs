//! `pane-wclayer-unpack LAYER DIFF_ID STORE`: unpacks one layer file into a portable layer
//! store, for benchmarks and debugging.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layer, diff_id, store] = args.as_slice() else {
        eprintln!("usage: pane-wclayer-unpack LAYER DIFF_ID STORE_DIR");
        return ExitCode::from(2);
    };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let file = std::fs::File::open(layer)?;
        let store = pane_wclayer::LayerStore::open(std::path::Path::new(store))?;
        let start = Instant::now();
        let summary = store.unpack(file, diff_id)?;
        let seconds = start.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // a rate for people
        let rate = summary.uncompressed_bytes as f64 / seconds / 1e6;
        println!(
            "{} entries, {} bytes in {seconds:.2} s ({rate:.0} MB/s)",
            summary.entries, summary.uncompressed_bytes
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pane-wclayer-unpack: {e}");
            ExitCode::FAILURE
        }
    }
}
