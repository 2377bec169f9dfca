//! The local terminal while pane is connected to a container's console (`run -it`,
//! `exec -it`, `attach`): raw mode, restored on every way out; the window size and its
//! changes; and docker's detach keys, which end pane's session and leave the container
//! running.

use std::io::{IsTerminal as _, Write as _};
use std::str::FromStr;
use std::sync::Once;

use pane_shim::ConsoleSize;
use tokio::sync::mpsc;

/// docker's default: ctrl-p then ctrl-q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The key sequence that detaches, as the bytes a terminal in raw mode sends for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--detach-keys: `{key}` is not a key; give keys separated by commas, each a single character or ctrl-<a-z, @, [, \\, ], ^ or _> (docker's form, e.g. ctrl-p,ctrl-q)"
)]
pub struct DetachKeysError {
    key: String,
}

impl FromStr for DetachKeys {
    type Err = DetachKeysError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |key: &str| DetachKeysError {
            key: key.to_owned(),
        };
        let mut bytes = Vec::new();
        for key in text.split(',') {
            let byte = match key.strip_prefix("ctrl-") {
                // ctrl-<c> is the character with its top three bits cleared: ctrl-a 0x01,
                // ctrl-@ 0x00, ctrl-_ 0x1f.
                Some(name) => match name.as_bytes() {
                    [c @ (b'a'..=b'z' | b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => {
                        c.to_ascii_uppercase() & 0x1f
                    }
                    _ => return Err(refuse(key)),
                },
                None => match key.as_bytes() {
                    [c] if c.is_ascii_graphic() => *c,
                    _ => return Err(refuse(key)),
                },
            };
            bytes.push(byte);
        }
        Ok(Self(bytes))
    }
}

impl Default for DetachKeys {
    fn default() -> Self {
        Self(vec![0x10, 0x11])
    }
}

/// What one read of the keyboard amounts to.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned {
    /// For the container, in order.
    pub forward: Vec<u8>,
    /// The detach sequence was completed; what followed it in the read is dropped.
    pub detach: bool,
}

/// Finds the detach sequence in the keyboard's bytes across reads. Bytes that might begin
/// it are held back until the sequence completes (they are then not sent) or breaks (they
/// are sent, as docker does, so a lone ctrl-p still reaches the container).
#[derive(Debug)]
pub struct DetachScanner {
    keys: DetachKeys,
    held: usize,
}

impl DetachScanner {
    pub fn new(keys: DetachKeys) -> Self {
        Self { keys, held: 0 }
    }

    /// The keys held back as a possible start of the sequence, given up at end of input.
    pub fn finish(&mut self) -> Vec<u8> {
        let held = self.keys.0[..self.held].to_vec();
        self.held = 0;
        held
    }

    pub fn scan(&mut self, input: &[u8]) -> Scanned {
        let sequence = &self.keys.0;
        let mut forward = Vec::with_capacity(input.len());
        for &byte in input {
            if sequence.get(self.held) == Some(&byte) {
                self.held += 1;
                if self.held == sequence.len() {
                    self.held = 0;
                    return Scanned {
                        forward,
                        detach: true,
                    };
                }
                continue;
            }
            // The sequence broke: what was held goes out, and this byte may start it anew.
            forward.extend_from_slice(&sequence[..self.held]);
            self.held = 0;
            if sequence.first() == Some(&byte) {
                self.held = 1;
                if sequence.len() == 1 {
                    self.held = 0;
                    return Scanned {
                        forward,
                        detach: true,
                    };
                }
            } else {
                forward.push(byte);
            }
        }
        Scanned {
            forward,
            detach: false,
        }
    }
}

/// The local terminal in raw mode: keys reach the container as typed (ctrl-c included,
/// which a terminal in raw mode no longer turns into a signal for pane), and nothing is
/// echoed twice. Dropping it restores the terminal; so does a panic.
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    /// Raw mode when both standard input and output are terminals; `None` otherwise (a
    /// pipe on either side keeps its bytes as they are).
    pub fn enable() -> std::io::Result<Option<Self>> {
        if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            return Ok(None);
        }
        restore_on_panic();
        crossterm::terminal::enable_raw_mode()?;
        // A console that refuses VT input (an old conhost) still works in plain raw mode,
        // without arrow keys.
        #[cfg(windows)]
        if let Err(e) = windows_console::enable_virtual_terminal() {
            tracing::warn!(error = %e, "the console takes no VT sequences; arrow and function keys will not reach the container");
        }
        Ok(Some(Self(())))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    #[cfg(windows)]
    windows_console::restore();
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = std::io::stdout().flush();
}

/// What crossterm's raw mode leaves out on Windows, where a container's console speaks
/// VT sequences (as hcsshim's and docker's clients set it up): input as VT sequences, so
/// arrow and function keys reach it (cmd's history, `PSReadLine`), and VT processing of
/// its output. The modes before are put back on restore.
#[cfg(windows)]
mod windows_console {
    use std::sync::Mutex;

    use crossterm_winapi::{ConsoleMode, Handle};

    /// `ENABLE_VIRTUAL_TERMINAL_INPUT`.
    const VT_INPUT: u32 = 0x0200;
    /// `ENABLE_VIRTUAL_TERMINAL_PROCESSING`.
    const VT_PROCESSING: u32 = 0x0004;

    /// The input and output modes before, while pane's are on.
    static SAVED: Mutex<Option<(u32, u32)>> = Mutex::new(None);

    pub fn enable_virtual_terminal() -> std::io::Result<()> {
        let input = ConsoleMode::from(Handle::current_in_handle()?);
        let output = ConsoleMode::from(Handle::current_out_handle()?);
        let (input_mode, output_mode) = (input.mode()?, output.mode()?);
        input.set_mode(input_mode | VT_INPUT)?;
        if let Err(e) = output.set_mode(output_mode | VT_PROCESSING) {
            let _ = input.set_mode(input_mode);
            return Err(e);
        }
        if let Ok(mut saved) = SAVED.lock() {
            saved.get_or_insert((input_mode, output_mode));
        }
        Ok(())
    }

    pub fn restore() {
        let Some((input_mode, output_mode)) = SAVED.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        if let Ok(handle) = Handle::current_in_handle() {
            let _ = ConsoleMode::from(handle).set_mode(input_mode);
        }
        if let Ok(handle) = Handle::current_out_handle() {
            let _ = ConsoleMode::from(handle).set_mode(output_mode);
        }
    }
}

/// A panic's message would land in a raw terminal as a staircase and leave it unusable:
/// restore first, then let the default hook print.
fn restore_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// The local terminal's size now, or `None` when there is no terminal.
pub fn size() -> Option<ConsoleSize> {
    let (columns, rows) = crossterm::terminal::size().ok()?;
    (columns > 0 && rows > 0).then_some(ConsoleSize { rows, columns })
}

/// The terminal's new size each time it changes: on SIGWINCH on Unix; Windows consoles
/// have no such signal for a process that does not read console input events (pane reads
/// bytes), so the size is compared every quarter second there.
pub fn resizes() -> mpsc::Receiver<ConsoleSize> {
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = size();
        #[cfg(unix)]
        let mut changes =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) {
                Ok(changes) => changes,
                Err(e) => {
                    tracing::warn!(error = %e, "window size changes will not reach the container");
                    return;
                }
            };
        loop {
            #[cfg(unix)]
            if changes.recv().await.is_none() {
                return;
            }
            #[cfg(not(unix))]
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let now = size();
            if now != last
                && let Some(size) = now
                && sender.send(size).await.is_err()
            {
                return;
            }
            last = now;
        }
    });
    receiver
}

/// What tells pane to end while a session runs: SIGTERM or SIGHUP on Unix; the console
/// closing, a logoff, a shutdown or Ctrl+Break on Windows. Registered before raw mode is on, so none
/// of them kills pane with the terminal raw (a signal's default action would). Keys such
/// as ctrl-c are no signal in raw mode: they go to the container.
pub struct Terminations {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    #[cfg(windows)]
    events: Option<(
        tokio::signal::windows::CtrlClose,
        tokio::signal::windows::CtrlLogoff,
        tokio::signal::windows::CtrlShutdown,
        tokio::signal::windows::CtrlBreak,
    )>,
}

impl Terminations {
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(hangup)) => Some((term, hangup)),
                _ => None,
            };
            Self { signals }
        }
        #[cfg(windows)]
        {
            use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_logoff, ctrl_shutdown};
            // Ctrl+Break still raises its event with processed input off; unhandled it would
            // kill pane with the console raw.
            let events = match (ctrl_close(), ctrl_logoff(), ctrl_shutdown(), ctrl_break()) {
                (Ok(close), Ok(logoff), Ok(shutdown), Ok(brk)) => {
                    Some((close, logoff, shutdown, brk))
                }
                _ => None,
            };
            Self { events }
        }
    }

    /// Resolves when one arrives, naming it.
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((term, hangup)) = &mut self.signals {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = hangup.recv() => "SIGHUP",
            };
        }
        #[cfg(windows)]
        if let Some((close, logoff, shutdown, brk)) = &mut self.events {
            return tokio::select! {
                _ = close.recv() => "the console closing",
                _ = logoff.recv() => "a logoff",
                _ = shutdown.recv() => "a shutdown",
                _ = brk.recv() => "Ctrl+Break",
            };
        }
        std::future::pending().await
    }
}

impl std::fmt::Debug for Terminations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Terminations")
    }
}

/// Reads the keyboard on a thread of its own (a blocking read of the terminal), in
/// pieces as typed; the channel closes at end of input.
pub fn keyboard() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 16 * 1024];
        let Ok(mut stdin) = input() else {
            return;
        };
        while let Ok(n) = std::io::Read::read(&mut stdin, &mut buffer) {
            if n == 0 || sender.blocking_send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    receiver
}

/// pane's standard input as bytes. On Windows the handle is read with `ReadFile`, not
/// through std's console reader, which decodes UTF-16 and takes a ctrl-z typed at the
/// start of a read for the end of input: in a container's console ctrl-z is a key.
#[cfg(windows)]
fn input() -> std::io::Result<std::fs::File> {
    use std::os::windows::io::AsHandle as _;
    Ok(std::fs::File::from(
        std::io::stdin().as_handle().try_clone_to_owned()?,
    ))
}

#[cfg(not(windows))]
#[allow(clippy::unnecessary_wraps)] // the same signature as Windows', where it can fail
fn input() -> std::io::Result<std::io::Stdin> {
    Ok(std::io::stdin())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> DetachKeys {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn detach_keys_take_docker_s_form() {
        assert_eq!(keys("ctrl-p,ctrl-q"), DetachKeys(vec![0x10, 0x11]));
        assert_eq!(keys(DEFAULT_DETACH_KEYS), DetachKeys::default());
        assert_eq!(
            keys("ctrl-@,ctrl-_,ctrl-\\"),
            DetachKeys(vec![0, 0x1f, 0x1c])
        );
        assert_eq!(keys("a,ctrl-a"), DetachKeys(vec![b'a', 1]));
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "ctrl-P x"] {
            let error = bad.parse::<DetachKeys>().err();
            assert!(error.is_some(), "{bad:?} was taken");
        }
        let message = "ctrl-1".parse::<DetachKeys>().err().map(|e| e.to_string());
        assert!(
            message.is_some_and(|m| m.contains("`ctrl-1`") && m.contains("ctrl-p,ctrl-q")),
            "the refusal names the key and the form"
        );
    }

    #[test]
    fn the_sequence_detaches_and_is_not_sent() {
        let mut scanner = DetachScanner::new(DetachKeys::default());
        let found = scanner.scan(b"dir\r\x10\x11exit\r");
        assert_eq!(found.forward, b"dir\r");
        assert!(found.detach);
    }

    #[test]
    fn the_sequence_is_found_across_reads() {
        let mut scanner = DetachScanner::new(DetachKeys::default());
        let first = scanner.scan(b"ab\x10");
        assert_eq!(first.forward, b"ab", "a possible start is held back");
        assert!(!first.detach);
        let second = scanner.scan(b"\x11");
        assert!(second.detach);
        assert!(second.forward.is_empty());
    }

    #[test]
    fn a_broken_sequence_is_sent_whole() {
        let mut scanner = DetachScanner::new(DetachKeys::default());
        let found = scanner.scan(b"\x10x");
        assert_eq!(found.forward, b"\x10x");
        assert!(!found.detach);
        // ctrl-p ctrl-p ctrl-q: the first ctrl-p goes out, the second starts the sequence.
        let found = scanner.scan(b"\x10\x10\x11");
        assert_eq!(found.forward, b"\x10");
        assert!(found.detach);
    }

    #[test]
    fn keys_held_at_the_end_of_input_are_given_up() {
        let mut scanner = DetachScanner::new(DetachKeys::default());
        assert!(scanner.scan(b"x\x10").forward == b"x");
        assert_eq!(scanner.finish(), b"\x10");
        assert!(scanner.finish().is_empty());
    }

    #[test]
    fn a_single_key_detaches_at_once() {
        let mut scanner = DetachScanner::new(keys("ctrl-x"));
        let found = scanner.scan(b"ls\x18rest");
        assert_eq!(found.forward, b"ls");
        assert!(found.detach);
    }
}
