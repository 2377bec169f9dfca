//! Reading what a registry sends without trusting it: bodies up to a cap, failures
//! classified (a stall, a refused certificate, a dropped connection), digests checked before
//! they become part of a URL.

use futures_util::StreamExt as _;
use reqwest::Response;

use super::{RegistryClient, RegistryError};

/// Up to `limit` bytes of a body; the rest is never read. Failures end the prefix.
pub(super) async fn read_prefix(response: Response, limit: u64) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = usize::try_from(limit).unwrap_or(usize::MAX) - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= limit {
            break;
        }
    }
    body
}

impl RegistryClient {
    /// A failed request as the user should read it: a stall, a refused certificate, or a
    /// connection problem.
    pub(crate) fn request_error(&self, url: &str, source: reqwest::Error) -> RegistryError {
        if source.is_timeout() {
            return RegistryError::Timeout {
                url: url.to_owned(),
                seconds: self.options.read_timeout.as_secs(),
            };
        }
        if let Some(detail) = certificate_problem(&source) {
            return RegistryError::Certificate {
                url: url.to_owned(),
                detail,
            };
        }
        RegistryError::Connect {
            url: url.to_owned(),
            source,
        }
    }

    /// The body, refused as soon as it exceeds `limit` bytes (by its Content-Length, or
    /// while it streams).
    pub(crate) async fn read_capped(
        &self,
        url: &str,
        response: Response,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::TooLarge {
            url: url.to_owned(),
            what,
            limit,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| self.request_error(url, source))?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The certificate failure behind a request error, if that is what it is. Neither reqwest
/// nor its TLS backends (rustls here, schannel on Windows) expose a typed certificate error
/// through `reqwest::Error`, so the cause chain's messages are read.
pub(super) fn certificate_problem(error: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            return Some(text);
        }
        cause = current.source();
    }
    None
}

/// Refuses a digest that is not `algorithm:hex` of a known algorithm before it is put into
/// a URL path (a hostile index could otherwise steer requests with `../` or `?`).
pub fn validate_digest(digest: &str) -> Result<(), RegistryError> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        let length = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return false,
        };
        hex.len() == length
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(RegistryError::BadDigest {
            digest: digest.chars().take(200).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_they_reach_a_url() {
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABCDEF",
            &format!("sha256:{}?x=1", "a".repeat(64)),
            &format!("md5:{}", "a".repeat(32)),
            "",
        ] {
            assert!(validate_digest(bad).is_err(), "{bad}");
        }
    }

    /// A TLS server with a self-signed certificate (openssl makes it, Python serves it) that
    /// counts the connections it accepts. Unix only: wine cannot start either program.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_certificate_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is needed for this test (apt-get install openssl)");
        assert!(made.success());
        let script = r"
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server = socket.socket()
server.bind(('127.0.0.1', 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    print('accepted', flush=True)
    try:
        context.wrap_socket(connection, server_side=True).close()
    except Exception:
        connection.close()
";
        let mut server = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&cert)
            .arg(&key)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed for this test");
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().unwrap()));
        let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let client = RegistryClient::new(crate::registry::RegistryOptions {
            attempts: 5,
            first_backoff: std::time::Duration::from_millis(10),
            ..crate::registry::RegistryOptions::default()
        })
        .unwrap();
        let url = format!("https://127.0.0.1:{port}/v2/");
        let error = client
            .send("tls.example", "app", &url, |request| request)
            .await
            .unwrap_err();
        let _ = server.kill();
        let _ = server.wait();
        let accepted = lines
            .map_while(Result::ok)
            .filter(|l| l == "accepted")
            .count();
        assert!(
            matches!(error, RegistryError::Certificate { .. }),
            "{error}"
        );
        assert_eq!(accepted, 1, "one attempt, not five");
    }
}
