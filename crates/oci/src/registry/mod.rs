//! A registry client for the distribution API: manifests and blobs, anonymous, basic and
//! bearer-token auth (refreshed on 401), plain HTTP for registries marked insecure, and
//! retries with backoff on 429, 5xx and dropped connections.
//!
//! Every registry is hostile until proven otherwise: documents, tokens and error bodies are
//! read up to a cap, every read has an idle timeout, challenges are answered only for the
//! registry's own host, and certificate failures are final.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RANGE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};

use crate::credentials::{CredentialSource, CredentialsError};

mod auth;
mod limits;

pub use limits::validate_digest;
use limits::{certificate_problem, read_prefix};

/// Every manifest type a Windows image may come as.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const NEEDS_CREDENTIALS: &str = "; it needs credentials: set them in the spec's image.auth, in \
    ~/.docker/config.json, or in PANE_REGISTRY_USERNAME / PANE_REGISTRY_PASSWORD together with \
    PANE_REGISTRY naming this registry";

/// Manifests, indexes and configs larger than this are refused (as containers/image does).
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;
/// Token responses and error bodies larger than this are refused or cut.
pub const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// The default longest wait for a registry's next bytes.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: the registry answered {status}{}", body_hint(body))]
    Http {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error(
        "{registry} has no {repository}:{reference}; check the name and tag (`skopeo list-tags` shows the tags)"
    )]
    NotFound {
        registry: String,
        repository: String,
        reference: String,
    },
    #[error("{registry} refused the credentials{hint}")]
    Unauthorized { registry: String, hint: String },
    #[error("cannot reach {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("{0}")]
    Protocol(String),
    #[error(
        "{url}: the {what} is larger than {limit} bytes; a registry does not send one that \
         large, so pane stopped reading"
    )]
    TooLarge {
        url: String,
        what: &'static str,
        limit: u64,
    },
    #[error(
        "{url}: no answer for {seconds} s; the registry stalled (raise --registry-timeout if \
         it is only slow)"
    )]
    Timeout { url: String, seconds: u64 },
    #[error(
        "{host} asked for credentials after {registry} redirected there; pane answers \
         challenges only from {registry} itself, so the request was refused"
    )]
    ForeignChallenge { registry: String, host: String },
    #[error(
        "{registry} sends its token requests to {realm}, over plain HTTP, where credentials \
         and tokens would travel in the clear; pane refuses that unless the realm is as local \
         as the registry (mark the registry --insecure-registry only if it is plain HTTP \
         itself and you accept that)"
    )]
    InsecureRealm { registry: String, realm: String },
    #[error(
        "{url}: the TLS certificate was refused ({detail}); fix the registry's certificate or \
         trust its CA on this host"
    )]
    Certificate { url: String, detail: String },
    #[error("{digest:?} is not a valid digest (sha256:<64 hex> or sha512:<128 hex>)")]
    BadDigest { digest: String },
    #[error(
        "{url}: only {bytes} bytes arrived in {seconds} s; the registry is trickling its \
         answer (raise --registry-timeout if the link is really that slow)"
    )]
    TooSlow {
        url: String,
        bytes: u64,
        seconds: u64,
    },
    #[error(
        "{from} redirected to {to}, from HTTPS to plain HTTP; pane does not follow a redirect \
         that drops TLS"
    )]
    InsecureRedirect { from: String, to: String },
}

/// The start of an error body as it may be shown: control characters (terminal escapes,
/// carriage returns that overwrite a line) become spaces.
fn body_hint(body: &str) -> String {
    let shown: String = body
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let shown = shown.trim();
    if shown.is_empty() {
        String::new()
    } else {
        format!(": {shown}")
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `host:port` of registries reached over plain HTTP (as Docker's
    /// `--insecure-registry`); loopback registries always are.
    pub insecure: Vec<String>,
    pub credentials: CredentialSource,
    /// Attempts per request on 429, 5xx and connection failures.
    pub attempts: u32,
    pub first_backoff: Duration,
    /// The longest wait for a connection, for response headers, and between two reads of
    /// a body. A document (manifest, config, token) must also arrive whole within
    /// [`DOCUMENT_DEADLINE_READS`] of these.
    pub read_timeout: Duration,
}

/// A document must arrive whole within this many read timeouts, so a registry that trickles
/// a byte at a time cannot hold a pull (and the runtime's pull lock) forever.
pub const DOCUMENT_DEADLINE_READS: u32 = 4;

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            credentials: CredentialSource::standard(),
            attempts: 5,
            first_backoff: Duration::from_millis(200),
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

pub struct RegistryClient {
    http: Client,
    options: RegistryOptions,
    /// `Authorization` values by `registry/repository`; secrets, never shown.
    authorizations: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scopes: Vec<String> = self
            .authorizations
            .lock()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("RegistryClient")
            .field("options", &self.options)
            .field("authorized_scopes", &scopes)
            .finish_non_exhaustive()
    }
}

/// A fetched manifest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// From `Docker-Content-Digest` when the registry sent it.
    pub digest_header: Option<String>,
}

impl RegistryClient {
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        let http = Client::builder()
            .user_agent(concat!("pane/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy())
            .connect_timeout(options.read_timeout.min(Duration::from_secs(30)))
            .read_timeout(options.read_timeout)
            .build()
            .map_err(|e| RegistryError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            options,
            authorizations: Mutex::default(),
        })
    }

    fn base_url(&self, registry: &str) -> String {
        let host = api_host(registry);
        let scheme = if self.plain_http(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    /// Loopback registries and those marked insecure are reached over plain HTTP.
    fn plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.options.insecure.iter().any(|i| i == registry)
    }

    /// Whether `url` is on the registry's own host and port (a redirect may leave it).
    fn on_registry(&self, registry: &str, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.base_url(registry)).is_ok_and(|base| {
            base.scheme() == url.scheme()
                && base.host_str() == url.host_str()
                && base.port_or_known_default() == url.port_or_known_default()
        })
    }

    fn document_deadline(&self) -> Duration {
        self.options.read_timeout * DOCUMENT_DEADLINE_READS
    }

    pub async fn manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        if reference.contains(':') {
            validate_digest(reference)?;
        }
        let url = format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.base_url(registry)
        );
        let fetch = async {
            let response = self
                .send(registry, repository, &url, |request| {
                    request.header(ACCEPT, MANIFEST_ACCEPT)
                })
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Err(RegistryError::NotFound {
                    registry: registry.to_owned(),
                    repository: repository.to_owned(),
                    reference: reference.to_owned(),
                });
            }
            let response = success(&url, response).await?;
            let media_type = header(response.headers(), "content-type").unwrap_or_default();
            let digest_header = header(response.headers(), "docker-content-digest");
            let bytes = self
                .read_capped(&url, response, "manifest", MAX_DOCUMENT_BYTES)
                .await?;
            Ok(FetchedManifest {
                bytes,
                media_type,
                digest_header,
            })
        };
        self.within_deadline(&url, fetch).await
    }

    /// Fetches a small blob (an image config) of `size` bytes, as its descriptor declares;
    /// a longer body is cut and refused.
    pub async fn document_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base_url(registry));
        if size > MAX_DOCUMENT_BYTES {
            return Err(RegistryError::TooLarge {
                url,
                what: "image config",
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let fetch = async {
            let response = self.blob(registry, repository, digest, 0).await?;
            self.read_capped(&url, response, "image config", size).await
        };
        self.within_deadline(&url, fetch).await
    }

    async fn within_deadline<T>(
        &self,
        url: &str,
        work: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let deadline = self.document_deadline();
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(RegistryError::Timeout {
                    url: url.to_owned(),
                    seconds: deadline.as_secs(),
                })
            })
    }

    /// Starts a blob download at `offset` (a range request when not 0). The caller checks
    /// whether the answer is partial (206) or whole (200).
    pub async fn blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        offset: u64,
    ) -> Result<Response, RegistryError> {
        validate_digest(digest)?;
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base_url(registry));
        // Up to the response's headers (retries, a challenge and its token, an error body)
        // within the document deadline; the body is bounded by `read_timeout` per read and
        // by [`BodyPace`].
        let request = async {
            let response = self
                .send(registry, repository, &url, |request| {
                    if offset > 0 {
                        request.header(RANGE, format!("bytes={offset}-"))
                    } else {
                        request
                    }
                })
                .await?;
            if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
                return Ok(response);
            }
            success(&url, response).await
        };
        self.within_deadline(&url, request).await
    }

    /// A pace check for a body of this client's: see [`BodyPace`].
    pub fn body_pace(&self) -> BodyPace {
        BodyPace::new(self.options.read_timeout)
    }

    /// Fetches a non-distributable layer from one of its `urls` (no registry auth is sent).
    /// Only HTTPS: the URL comes from the manifest, so plain HTTP would let anyone on the
    /// path swap the layer's bytes before the digest check refuses them after the fact.
    pub async fn foreign(&self, url: &str, offset: u64) -> Result<Response, RegistryError> {
        if !url.starts_with("https://") {
            return Err(RegistryError::Protocol(format!(
                "the non-distributable layer URL {url:?} is not https://; pane fetches foreign \
                 layers over HTTPS only"
            )));
        }
        let mut request = self.http.get(url);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let fetch = async {
            let response = request
                .send()
                .await
                .map_err(|source| self.request_error(url, source))?;
            success(url, response).await
        };
        self.within_deadline(url, fetch).await
    }

    /// Sends with auth, answering a 401 challenge once and retrying transient failures.
    async fn send(
        &self,
        registry: &str,
        repository: &str,
        url: &str,
        decorate: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let key = format!("{registry}/{repository}");
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = decorate(self.http.get(url));
            if let Some(value) = self.authorization(&key) {
                request = request.header(AUTHORIZATION, value);
            }
            let response = match request.send().await {
                Ok(response) => response,
                // A refused certificate will be refused again: retrying only delays the
                // answer (and hammers a host that may be an impostor). Nor is a registry that stalled for a whole read timeout: trying again only
                // multiplies the wait (and holds the runtime's pull slot that much longer).
                Err(source) if source.is_timeout() || certificate_problem(&source).is_some() => {
                    return Err(self.request_error(url, source));
                }
                Err(source) if attempt < self.options.attempts => {
                    tracing::debug!(url, attempt, error = %source, "request failed; retrying");
                    self.backoff(attempt, None).await;
                    continue;
                }
                Err(source) => return Err(self.request_error(url, source)),
            };
            let status = response.status();
            // reqwest follows redirects (blob storage, CDNs) and drops the Authorization
            // header when one leaves the registry's host. A challenge from such a host must
            // not be answered with this registry's credentials, nor its token cached here.
            if status == StatusCode::UNAUTHORIZED && !self.on_registry(registry, response.url()) {
                return Err(RegistryError::ForeignChallenge {
                    registry: registry.to_owned(),
                    host: response.url().host_str().unwrap_or_default().to_owned(),
                });
            }
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge =
                    header(response.headers(), WWW_AUTHENTICATE.as_str()).unwrap_or_default();
                let value = self
                    .answer_challenge(registry, repository, &challenge)
                    .await?;
                self.set_authorization(&key, value);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                let hint = if self.credentials_for(registry).await?.is_some() {
                    "; check the username and password or token".to_owned()
                } else {
                    self.needs_credentials(registry)
                };
                return Err(RegistryError::Unauthorized {
                    registry: registry.to_owned(),
                    hint,
                });
            }
            let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if transient && attempt < self.options.attempts {
                let retry_after = header(response.headers(), RETRY_AFTER.as_str())
                    .and_then(|v| v.parse::<u64>().ok());
                tracing::debug!(url, attempt, %status, "transient registry error; retrying");
                self.backoff(attempt, retry_after.map(Duration::from_secs))
                    .await;
                continue;
            }
            return Ok(response);
        }
    }

    async fn backoff(&self, attempt: u32, retry_after: Option<Duration>) {
        let exponential =
            self.options.first_backoff * 2u32.saturating_pow(attempt.saturating_sub(1));
        tokio::time::sleep(
            retry_after
                .unwrap_or(exponential)
                .min(Duration::from_secs(30)),
        )
        .await;
    }

    fn authorization(&self, key: &str) -> Option<String> {
        self.authorizations.lock().ok()?.get(key).cloned()
    }

    fn set_authorization(&self, key: &str, value: String) {
        if let Ok(mut map) = self.authorizations.lock() {
            map.insert(key.to_owned(), value);
        }
    }
}

/// Follows at most ten redirects (reqwest's default), and none from HTTPS to plain HTTP:
/// a registry reached over TLS must not hand its blobs, tokens or manifests to a path
/// anyone on the network can rewrite.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|from| from.scheme() == "https");
        if downgrade {
            let refusal = RedirectRefused {
                from: attempt
                    .previous()
                    .last()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                to: attempt.url().to_string(),
            };
            attempt.error(refusal)
        } else if attempt.previous().len() > 10 {
            attempt.error("more than ten redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Why a redirect was not followed; found again in the request error's causes.
#[derive(Debug, thiserror::Error)]
#[error("a redirect from {from} to {to} leaves HTTPS")]
pub(crate) struct RedirectRefused {
    pub(crate) from: String,
    pub(crate) to: String,
}

/// Bounds how slowly a body may arrive. Each read must come within the read timeout
/// (reqwest's), and over every read timeout's span at least [`BodyPace::MIN_BYTES`] must
/// arrive, so a registry that trickles a byte just inside each timeout is cut off too (as
/// curl's low-speed limit does), while a slow but moving download is not.
#[derive(Debug)]
pub struct BodyPace {
    window: Duration,
    started: tokio::time::Instant,
    bytes: u64,
}

impl BodyPace {
    /// 64 KiB per read timeout: about 1 KiB/s with the default 60 s.
    pub const MIN_BYTES: u64 = 64 << 10;

    fn new(window: Duration) -> Self {
        Self {
            window,
            started: tokio::time::Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` that just arrived from `url`; refuses a body that is trickling.
    pub fn arrived(&mut self, url: &str, bytes: usize) -> Result<(), RegistryError> {
        self.bytes += bytes as u64;
        if self.started.elapsed() < self.window {
            return Ok(());
        }
        if self.bytes < Self::MIN_BYTES {
            return Err(RegistryError::TooSlow {
                url: url.to_owned(),
                bytes: self.bytes,
                seconds: self.window.as_secs(),
            });
        }
        *self = Self::new(self.window);
        Ok(())
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn success(url: &str, response: Response) -> Result<Response, RegistryError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    // Only the start of an error body is shown; an endless one must not be read to its end.
    let body = read_prefix(response, MAX_TOKEN_BYTES).await;
    Err(RegistryError::Http {
        url: url.to_owned(),
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The host the distribution API of `registry` lives on.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// Whether `registry` (`host`, `host:port`, `[v6]:port`) is this machine: the name
/// `localhost`, or an address in 127.0.0.0/8 or `::1`. Decided from the parsed address, not
/// the text, so `127.0.0.1.nip.io` is a remote host like any other (as containerd decides).
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else {
        match registry.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => registry,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_decided_from_the_parsed_address() {
        for loopback in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]:5000",
            "LOCALHOST:5000",
        ] {
            assert!(is_loopback(loopback), "{loopback}");
        }
        for remote in [
            "127.0.0.1.nip.io",
            "127.0.0.1.nip.io:5000",
            "127.attacker.example",
            "localhost.attacker.example:5000",
            "10.0.0.1:5000",
            "[::2]:5000",
            "mcr.microsoft.com",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        assert_eq!(
            client.base_url("127.0.0.1.nip.io:5000"),
            "https://127.0.0.1.nip.io:5000"
        );
    }

    #[test]
    fn error_bodies_are_shown_without_control_characters() {
        let shown = body_hint("\x1b[2Jpwned\rAccess denied\n\u{7}");
        assert_eq!(shown, ": [2Jpwned Access denied");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(body_hint(" \n "), "");
    }

    #[test]
    fn debug_output_shows_scopes_not_authorizations() {
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        client.set_authorization("r.example/app", "Bearer very-secret-token".to_owned());
        let shown = format!("{client:?}");
        assert!(!shown.contains("very-secret-token"), "{shown}");
        assert!(shown.contains("r.example/app"), "{shown}");
    }

    #[test]
    fn loopback_and_insecure_registries_use_plain_http() {
        let client = RegistryClient::new(RegistryOptions {
            insecure: vec!["10.0.0.5:5000".into()],
            ..RegistryOptions::default()
        })
        .unwrap();
        assert_eq!(client.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(client.base_url("localhost:5000"), "http://localhost:5000");
        assert_eq!(client.base_url("10.0.0.5:5000"), "http://10.0.0.5:5000");
        assert_eq!(
            client.base_url("mcr.microsoft.com"),
            "https://mcr.microsoft.com"
        );
        assert_eq!(client.base_url("docker.io"), "https://registry-1.docker.io");
    }
}
