//! `pane-wclayer-unpack LAYER DIFF_ID STORE`: unpacks one layer file into a portable layer
//! store; with `--import-folder`, stages it as the legacy import folder `ImportLayer` reads
//! (what a Windows import writes before calling it). For benchmarks and debugging.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use pane_wclayer::import::legacy::stage_layer;
use pane_wclayer::reader::LayerSummary;

fn unpack(
    layer: &str,
    diff_id: &str,
    store: &str,
) -> Result<LayerSummary, Box<dyn std::error::Error>> {
    let file = std::fs::File::open(layer)?;
    let store = pane_wclayer::LayerStore::open(Path::new(store))?;
    Ok(store.unpack(file, diff_id)?)
}

fn stage(
    layer: &str,
    diff_id: &str,
    staging: &str,
) -> Result<LayerSummary, Box<dyn std::error::Error>> {
    let file = std::io::BufReader::new(std::fs::File::open(layer)?);
    Ok(stage_layer(file, diff_id, Path::new(staging))?.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (import_folder, args) = match args.split_first() {
        Some((flag, rest)) if flag == "--import-folder" => (true, rest),
        _ => (false, args.as_slice()),
    };
    let [layer, diff_id, target] = args else {
        eprintln!("usage: pane-wclayer-unpack [--import-folder] LAYER DIFF_ID TARGET_DIR");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let result = if import_folder {
        stage(layer, diff_id, target)
    } else {
        unpack(layer, diff_id, target)
    };
    match result {
        Ok(summary) => {
            let seconds = start.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)] // a rate for people
            let rate = summary.uncompressed_bytes as f64 / seconds / 1e6;
            println!(
                "{} entries, {} bytes in {seconds:.2} s ({rate:.0} MB/s)",
                summary.entries, summary.uncompressed_bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pane-wclayer-unpack: {e}");
            ExitCode::FAILURE
        }
    }
}
