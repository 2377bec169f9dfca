//! Docker credential helpers (`docker-credential-<name> get`), run as Docker runs them: the
//! server URL on stdin, a JSON object `{ServerURL, Username, Secret}` on stdout, and the
//! text "credentials not found" with a failing exit when the helper has none.
//! (Protocol: docker/docker-credential-helpers, `client` and `credentials` packages.)

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Credentials, CredentialsError};

/// The longest a helper may take; a keychain prompt nobody answers must not hang a pull.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// A helper's answer is one small JSON object.
const MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// What helpers print when they hold nothing for the server (`credentials.ErrCredentialsNotFound`).
const NOT_FOUND: &str = "credentials not found";
/// Docker's marker for an identity token in place of a username.
const TOKEN_USERNAME: &str = "<token>";

#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Asks helper `name` (named by `key` in `config`) for `server_url`'s credentials.
pub(super) fn get(
    name: &str,
    key: &'static str,
    server_url: &str,
    registry: &str,
    config: &Path,
) -> Result<Option<Credentials>, CredentialsError> {
    let missing = |problem: String| CredentialsError::HelperMissing {
        helper: name.to_owned(),
        key,
        registry: registry.to_owned(),
        path: config.to_owned(),
        problem,
    };
    let failed = |problem: String| CredentialsError::HelperFailed {
        helper: name.to_owned(),
        registry: registry.to_owned(),
        problem,
    };
    // The name becomes part of a program name looked up on PATH: nothing that is a path.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(missing("the name is not a plain helper name".to_owned()));
    }
    let mut program = Command::new(format!("docker-credential-{name}"));
    program.arg("get");
    let (status, output) = match run(program, server_url, HELPER_TIMEOUT) {
        Ok(answer) => answer,
        Err(HelperRun::NotStarted(e)) => return Err(missing(e.to_string())),
        Err(HelperRun::Failed(problem)) => return Err(failed(problem)),
    };
    let text = String::from_utf8_lossy(&output);
    if !status.success() {
        if text.contains(NOT_FOUND) {
            return Ok(None);
        }
        return Err(failed(format!("{status}: {}", printable(&text))));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output)
        .map_err(|e| failed(format!("its answer is not the helper JSON object: {e}")))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == TOKEN_USERNAME {
        Credentials::IdentityToken(answer.secret)
    } else {
        Credentials::Basic {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

enum HelperRun {
    NotStarted(std::io::Error),
    Failed(String),
}

/// Runs `program` with `input` on stdin; its exit status and up to [`MAX_OUTPUT_BYTES`] of
/// its stdout, all within `timeout`.
fn run(
    mut program: Command,
    input: &str,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, Vec<u8>), HelperRun> {
    let mut child = program
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(HelperRun::NotStarted)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit status says more.
        let _ = stdin.write_all(input.as_bytes());
    }
    let stdout = child.stdout.take();
    // The output arrives over a channel, not a join: a process the helper started may keep
    // its stdout open after the helper exits, and the wait for it must end with the timeout.
    let (sender, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut read = Vec::new();
        if let Some(stdout) = stdout {
            let _ = stdout.take(MAX_OUTPUT_BYTES).read_to_end(&mut read);
        }
        let _ = sender.send(read);
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HelperRun::Failed(format!(
                    "no answer within {} s",
                    timeout.as_secs()
                )));
            }
            Err(e) => return Err(HelperRun::Failed(e.to_string())),
        }
    };
    let remaining = timeout.saturating_sub(started.elapsed());
    let output = output.recv_timeout(remaining).map_err(|_| {
        HelperRun::Failed(format!(
            "it exited, but its output did not end within {} s (a process it started holds \
             it open)",
            timeout.as_secs()
        ))
    })?;
    Ok((status, output))
}

/// The first line of a helper's message, without control characters, for an error.
fn printable(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_whose_child_keeps_its_output_open_is_not_waited_for_forever() {
        // The helper answers and exits; the process it left behind holds stdout for 20 s.
        let mut program = Command::new("sh");
        program.args(["-c", r#"sleep 20 & echo '{"Username":"u","Secret":"s"}'"#]);
        let outcome = run(program, "https://r.example", Duration::from_secs(1));
        match outcome {
            Err(HelperRun::Failed(problem)) => {
                assert!(problem.contains("did not end"), "{problem}");
            }
            Ok((status, output)) => panic!(
                "waited for the helper's child: {status}, {}",
                String::from_utf8_lossy(&output)
            ),
            Err(HelperRun::NotStarted(e)) => panic!("sh did not start: {e}"),
        }
    }
}
