//! Pull progress: one bar per layer on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pane_oci::pull::{LayerEvent, PullObserver};

pub struct PullProgress {
    bars: Option<MultiProgress>,
    quiet: bool,
    layers: Mutex<HashMap<String, ProgressBar>>,
}

impl PullProgress {
    /// Bars when stderr is a terminal and output is for people; `quiet` prints nothing.
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            bars,
            quiet,
            layers: Mutex::default(),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }
}

fn short(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .and_then(|hex| hex.get(..12))
        .unwrap_or(digest)
}

impl PullObserver for PullProgress {
    fn platform(&self, note: &str) {
        if !self.quiet {
            eprintln!("note: {note}");
        }
    }

    fn layer(&self, event: LayerEvent) {
        if self.quiet {
            return;
        }
        let Ok(mut layers) = self.layers.lock() else {
            return;
        };
        match (&self.bars, event) {
            (
                Some(bars),
                LayerEvent::Started {
                    digest,
                    size,
                    resumed_from,
                },
            ) => {
                let bar = bars.add(
                    ProgressBar::new(size)
                        .with_style(Self::style())
                        .with_prefix(short(&digest).to_owned()),
                );
                bar.set_position(resumed_from);
                layers.insert(digest, bar);
            }
            (Some(_), LayerEvent::Progress { digest, bytes }) => {
                if let Some(bar) = layers.get(&digest) {
                    bar.set_position(bytes);
                }
            }
            (Some(bars), LayerEvent::Done { digest, cached }) => {
                let bar = layers.remove(&digest).unwrap_or_else(|| {
                    bars.add(ProgressBar::new(0).with_prefix(short(&digest).to_owned()))
                });
                bar.finish_with_message(if cached { "already present" } else { "done" });
            }
            (
                None,
                LayerEvent::Started {
                    digest,
                    size,
                    resumed_from,
                },
            ) if resumed_from > 0 => {
                eprintln!(
                    "{}: resuming at {resumed_from} of {size} bytes",
                    short(&digest)
                );
            }
            (None, LayerEvent::Started { digest, size, .. }) => {
                eprintln!("{}: downloading {size} bytes", short(&digest));
            }
            (
                None,
                LayerEvent::Done {
                    digest,
                    cached: true,
                },
            ) => eprintln!("{}: already present", short(&digest)),
            (
                None,
                LayerEvent::Done {
                    digest,
                    cached: false,
                },
            ) => eprintln!("{}: done", short(&digest)),
            (None, LayerEvent::Progress { .. }) => {}
        }
    }
}
