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
        if let Some(refused) = refused_redirect(&source) {
            return RegistryError::InsecureRedirect {
                from: refused.from.clone(),
                to: refused.to.clone(),
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

/// The refused redirect behind a request error, if that is what it is.
fn refused_redirect(error: &reqwest::Error) -> Option<&super::RedirectRefused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<super::RedirectRefused>() {
            return Some(refused);
        }
        cause = current.source();
    }
    None
}

/// The certificate failure behind a request error, if that is what it is. Neither reqwest
/// nor its TLS backends expose a typed certificate error through `reqwest::Error`, so each
/// backend is read as it reports one:
/// - schannel (Windows, through native-tls) reports an OS error whose code is a `SEC_E_*` /
///   `CERT_E_*` / `TRUST_E_*` HRESULT; its text is localised, so the code is what is matched
///   (from `io::Error`, or the "(os error N)" that native-tls's message ends with);
/// - rustls (elsewhere) reports `invalid peer certificate: …`, text compiled into rustls and
///   never translated.
pub(super) fn certificate_problem(error: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        let code = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .or_else(|| os_error_code(&text));
        if code.is_some_and(is_certificate_hresult) {
            return Some(text);
        }
        let lower = text.to_ascii_lowercase();
        if lower.contains("invalid peer certificate") || lower.contains("unknownissuer") {
            return Some(text);
        }
        cause = current.source();
    }
    None
}

/// N of a message ending in "(os error N)", as std formats an OS error.
fn os_error_code(text: &str) -> Option<i32> {
    let start = text.rfind("(os error ")? + "(os error ".len();
    let digits = text[start..].split(')').next()?;
    digits.trim().parse().ok()
}

/// Whether `code` is an HRESULT schannel or the certificate chain engine gives for a
/// certificate it refuses (winerror.h).
fn is_certificate_hresult(code: i32) -> bool {
    const CODES: [u32; 14] = [
        0x8009_0322, // SEC_E_WRONG_PRINCIPAL: the name does not match
        0x8009_0325, // SEC_E_UNTRUSTED_ROOT
        0x8009_0327, // SEC_E_CERT_UNKNOWN
        0x8009_0328, // SEC_E_CERT_EXPIRED
        0x8009_0349, // SEC_E_CERT_WRONG_USAGE
        0x800B_0101, // CERT_E_EXPIRED
        0x800B_0109, // CERT_E_UNTRUSTEDROOT
        0x800B_010A, // CERT_E_CHAINING
        0x800B_010C, // CERT_E_REVOKED
        0x800B_010F, // CERT_E_CN_NO_MATCH
        0x800B_0110, // CERT_E_WRONG_USAGE
        0x800B_0111, // CERT_E_INVALID_NAME (name constraints)
        0x8009_6004, // TRUST_E_CERT_SIGNATURE
        0x8009_2012, // CRYPT_E_NO_REVOCATION_CHECK
    ];
    CODES.contains(&code.cast_unsigned())
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
    fn schannel_certificate_refusals_are_known_by_code_not_by_their_words() {
        // A German Windows: the text is translated, the code is not.
        let refused = std::io::Error::from_raw_os_error(0x8009_0325_u32.cast_signed());
        assert!(is_certificate_hresult(refused.raw_os_error().unwrap()));
        let message = "Die Zertifikatkette wurde von einer nicht vertrauenswürdigen \
                       Zertifizierungsstelle ausgestellt. (os error -2146893019)";
        assert_eq!(os_error_code(message), Some(0x8009_0325_u32.cast_signed()));
        assert!(os_error_code(message).is_some_and(is_certificate_hresult));
        // A connection that was refused is not a certificate problem.
        let reset = "Eine vorhandene Verbindung wurde geschlossen. (os error 10054)";
        assert!(!os_error_code(reset).is_some_and(is_certificate_hresult));
        assert_eq!(os_error_code("no code here"), None);
    }

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

    /// A TLS server with a self-signed certificate (openssl makes it, Python serves it). It
    /// prints "accepted" for each connection and answers each with `reply` (Python bytes),
    /// or closes it when `reply` is `None`. Unix only: wine cannot start either program.
    #[cfg(unix)]
    struct TlsServer {
        _dir: tempfile::TempDir,
        child: std::process::Child,
        lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
        port: u16,
    }

    #[cfg(unix)]
    impl TlsServer {
        fn start(reply: Option<&str>) -> Self {
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
            let answer = reply.map_or_else(
                || "pass".to_owned(),
                |reply| format!("tls.recv(65536)\n        tls.sendall({reply})"),
            );
            let script = format!(
                r"
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
        tls = context.wrap_socket(connection, server_side=True)
        {answer}
        tls.close()
    except Exception:
        connection.close()
"
            );
            let mut child = std::process::Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(&cert)
                .arg(&key)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3 is needed for this test");
            let mut lines =
                std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
            let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
            Self {
                _dir: dir,
                child,
                lines,
                port,
            }
        }

        /// Stops the server; the connections it accepted.
        fn stop(mut self) -> usize {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.lines
                .map_while(Result::ok)
                .filter(|l| l == "accepted")
                .count()
        }
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_certificate_is_not_retried() {
        let server = TlsServer::start(None);
        let client = RegistryClient::new(crate::registry::RegistryOptions {
            attempts: 5,
            first_backoff: std::time::Duration::from_millis(10),
            ..crate::registry::RegistryOptions::default()
        })
        .unwrap();
        let url = format!("https://127.0.0.1:{}/v2/", server.port);
        let error = client
            .send("tls.example", "app", &url, |request| request)
            .await
            .unwrap_err();
        let accepted = server.stop();
        assert!(
            matches!(error, RegistryError::Certificate { .. }),
            "{error}"
        );
        assert_eq!(accepted, 1, "one attempt, not five");
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redirect_from_https_to_plain_http_is_not_followed() {
        // Where the redirect points: a plain HTTP listener that records whether it was
        // reached.
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        target.set_nonblocking(true).unwrap();
        let location = format!("http://{}/v2/app/blobs/x", target.local_addr().unwrap());
        let server = TlsServer::start(Some(&format!(
            "b'HTTP/1.1 302 Found\\r\\nLocation: {location}\\r\\nContent-Length: 0\\r\\n\\r\\n'"
        )));
        // The same client as a registry's, except that it trusts the test's certificate.
        let options = crate::registry::RegistryOptions::default();
        let client = RegistryClient {
            http: reqwest::Client::builder()
                .redirect(super::super::redirect_policy())
                .tls_danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            options,
            authorizations: std::sync::Mutex::default(),
        };
        let url = format!("https://127.0.0.1:{}/v2/app/blobs/x", server.port);
        let error = client
            .send("tls.example", "app", &url, |request| request)
            .await
            .unwrap_err();
        server.stop();
        assert!(
            matches!(&error, RegistryError::InsecureRedirect { to, .. } if *to == location),
            "{error}"
        );
        assert!(
            target.accept().is_err(),
            "the plain HTTP target was reached"
        );
    }
}
