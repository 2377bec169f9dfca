//! A registry client for the distribution API: manifests and blobs, anonymous, basic and
//! bearer-token auth (refreshed on 401), plain HTTP for registries marked insecure, and
//! retries with backoff on 429, 5xx and dropped connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RANGE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};

use crate::credentials::{CredentialSource, Credentials, CredentialsError};

/// Every manifest type a Windows image may come as.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const NEEDS_CREDENTIALS: &str = "; it needs credentials: set them in the spec's image.auth, in \
    ~/.docker/config.json, or in PANE_REGISTRY_USERNAME / PANE_REGISTRY_PASSWORD";

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
}

fn body_hint(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", body.chars().take(300).collect::<String>())
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
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            credentials: CredentialSource::standard(),
            attempts: 5,
            first_backoff: Duration::from_millis(200),
        }
    }
}

#[derive(Debug)]
pub struct RegistryClient {
    http: Client,
    options: RegistryOptions,
    /// `Authorization` values by `registry/repository`.
    authorizations: Mutex<HashMap<String, String>>,
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
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| RegistryError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            options,
            authorizations: Mutex::default(),
        })
    }

    fn base_url(&self, registry: &str) -> String {
        let host = if registry == "docker.io" {
            DOCKER_HUB_API
        } else {
            registry
        };
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        let loopback =
            matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.starts_with("127.");
        let scheme = if loopback || self.options.insecure.iter().any(|i| i == registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    pub async fn manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.base_url(registry)
        );
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
        let bytes = response
            .bytes()
            .await
            .map_err(|source| RegistryError::Connect { url, source })?
            .to_vec();
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest_header,
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
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base_url(registry));
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
    }

    /// Fetches a non-distributable layer from one of its `urls` (no registry auth is sent).
    pub async fn foreign(&self, url: &str, offset: u64) -> Result<Response, RegistryError> {
        let mut request = self.http.get(url);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Connect {
                url: url.to_owned(),
                source,
            })?;
        success(url, response).await
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
                Err(source) if attempt < self.options.attempts => {
                    tracing::debug!(url, attempt, error = %source, "request failed; retrying");
                    self.backoff(attempt, None).await;
                    continue;
                }
                Err(source) => {
                    return Err(RegistryError::Connect {
                        url: url.to_owned(),
                        source,
                    });
                }
            };
            let status = response.status();
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
                let hint = if self.options.credentials.for_registry(registry)?.is_some() {
                    "; check the username and password or token".to_owned()
                } else {
                    NEEDS_CREDENTIALS.to_owned()
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

    /// Turns a `WWW-Authenticate` challenge into an `Authorization` value.
    async fn answer_challenge(
        &self,
        registry: &str,
        repository: &str,
        challenge: &str,
    ) -> Result<String, RegistryError> {
        let credentials = self.options.credentials.for_registry(registry)?;
        let (scheme, parameters) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            return match credentials {
                Some(Credentials::Basic { username, password }) => Ok(basic(&username, &password)),
                Some(Credentials::IdentityToken(_)) => Err(RegistryError::Unauthorized {
                    registry: registry.to_owned(),
                    hint: "; it asks for a username and password, not a token".to_owned(),
                }),
                None => Err(RegistryError::Unauthorized {
                    registry: registry.to_owned(),
                    hint: NEEDS_CREDENTIALS.to_owned(),
                }),
            };
        }
        let realm = parameters.get("realm").ok_or_else(|| {
            RegistryError::Protocol(format!(
                "{registry} sent an unusable auth challenge: {challenge:?}"
            ))
        })?;
        let scope = parameters
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{repository}:pull"));
        let mut query = vec![("scope", scope)];
        if let Some(service) = parameters.get("service") {
            query.push(("service", service.clone()));
        }
        let separator = if realm.contains('?') { '&' } else { '?' };
        let query_string = query
            .iter()
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let token_url = format!("{realm}{separator}{query_string}");
        let request = match &credentials {
            Some(Credentials::IdentityToken(token)) => {
                let mut form = query.clone();
                form.push(("grant_type", "refresh_token".to_owned()));
                form.push(("refresh_token", token.clone()));
                form.push(("client_id", "pane".to_owned()));
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", url_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.http
                    .post(realm)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            Some(Credentials::Basic { username, password }) => self
                .http
                .get(&token_url)
                .header(AUTHORIZATION, basic(username, password)),
            None => self.http.get(&token_url),
        };
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Connect {
                url: realm.clone(),
                source,
            })?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_owned(),
                hint: format!(" (token service {realm})"),
            });
        }
        let response = success(realm, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| RegistryError::Connect {
                url: realm.clone(),
                source,
            })?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Protocol(format!("token service {realm}: {e}")))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                RegistryError::Protocol(format!("token service {realm} returned no token"))
            })?;
        Ok(format!("Bearer {token}"))
    }
}

fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
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
    let body = response.text().await.unwrap_or_default();
    Err(RegistryError::Http {
        url: url.to_owned(),
        status,
        body,
    })
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", {realm, service, scope}).
fn parse_challenge(challenge: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = challenge
        .trim()
        .split_once(' ')
        .unwrap_or((challenge.trim(), ""));
    let mut parameters = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        parameters.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = remaining.trim_start_matches(',').trim();
    }
    (scheme.to_owned(), parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("Basic", "Registry Realm")
        );
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
