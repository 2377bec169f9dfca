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
    let mut child = Command::new(format!("docker-credential-{name}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| missing(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit status says more.
        let _ = stdin.write_all(server_url.as_bytes());
    }
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        if let Some(stdout) = stdout {
            let _ = stdout.take(MAX_OUTPUT_BYTES).read_to_end(&mut output);
        }
        output
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < HELPER_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "no answer within {} s",
                    HELPER_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let output = reader.join().unwrap_or_default();
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
