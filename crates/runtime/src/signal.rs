//! The signals a Windows container can honour.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Windows has no POSIX signals; these three map onto what HCS offers: a `CTRL_SHUTDOWN`
/// event, a `CTRL_C` event, and terminating the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signal {
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Kill => "SIGKILL",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a signal Windows containers support; use SIGTERM, SIGINT or SIGKILL (or 15, 2, 9)"
)]
pub struct SignalError(pub String);

impl FromStr for Signal {
    type Err = SignalError;

    /// Accepts `SIGTERM`, `TERM`, `term` and the numbers 15, 2 and 9, as `docker kill -s` does.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.trim().to_ascii_uppercase();
        match upper.strip_prefix("SIG").unwrap_or(&upper) {
            "TERM" | "15" => Ok(Signal::Term),
            "INT" | "2" => Ok(Signal::Int),
            "KILL" | "9" => Ok(Signal::Kill),
            _ => Err(SignalError(text.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_short_names_and_numbers() {
        for (text, signal) in [
            ("SIGTERM", Signal::Term),
            ("term", Signal::Term),
            ("15", Signal::Term),
            (" SIGINT ", Signal::Int),
            ("2", Signal::Int),
            ("SIGKILL", Signal::Kill),
            ("kill", Signal::Kill),
            ("9", Signal::Kill),
        ] {
            assert_eq!(text.parse::<Signal>(), Ok(signal), "{text}");
        }
    }

    #[test]
    fn refuses_signals_windows_cannot_deliver() {
        for text in ["SIGHUP", "SIGUSR1", "1", "", "SIG", "SIGSIGTERM"] {
            assert!(text.parse::<Signal>().is_err(), "{text}");
        }
    }
}
