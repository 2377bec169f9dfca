//! Answering a registry's 401: Basic credentials, or a bearer token fetched from the
//! challenge's realm (with Basic credentials or an identity token as refresh token), never
//! over plain HTTP for an HTTPS registry.

use std::collections::HashMap;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use super::{MAX_TOKEN_BYTES, NEEDS_CREDENTIALS, RegistryClient, RegistryError, success};
use crate::credentials::Credentials;

impl RegistryClient {
    pub(super) fn needs_credentials(&self, registry: &str) -> String {
        let mut hint = NEEDS_CREDENTIALS.to_owned();
        if let Some(unused) = self.options.credentials.unused_environment_hint(registry) {
            hint.push_str(&unused);
        }
        hint
    }

    /// The credentials for `registry`, looked up off the async workers: a credential helper
    /// may take up to its timeout.
    pub(super) async fn credentials_for(
        &self,
        registry: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        let source = self.options.credentials.clone();
        let registry = registry.to_owned();
        tokio::task::spawn_blocking(move || source.for_registry(&registry))
            .await
            .map_err(|e| {
                RegistryError::Protocol(format!("the credential lookup did not finish: {e}"))
            })?
            .map_err(RegistryError::from)
    }

    /// Refuses a token service that would receive credentials in the clear (or is no web
    /// service at all).
    fn check_realm(&self, registry: &str, realm: &str) -> Result<(), RegistryError> {
        match realm.split_once("://").map(|(scheme, _)| scheme) {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => Ok(()),
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => {
                // A registry pane reaches over plain HTTP because it is loopback may send
                // its token requests over plain HTTP only to loopback too; one marked
                // insecure by the user may send them anywhere the user accepted.
                let realm_is_loopback = reqwest::Url::parse(realm).is_ok_and(|url| {
                    url.host_str()
                        .is_some_and(|host| super::is_loopback(host.trim_matches(['[', ']'])))
                });
                let insecure = self.options.insecure.iter().any(|i| i == registry);
                if insecure || (super::is_loopback(registry) && realm_is_loopback) {
                    Ok(())
                } else {
                    Err(RegistryError::InsecureRealm {
                        registry: registry.to_owned(),
                        realm: realm.to_owned(),
                    })
                }
            }
            _ => Err(RegistryError::Protocol(format!(
                "{registry} names a token service that is not an http(s) URL: {realm:?}"
            ))),
        }
    }

    /// Turns a `WWW-Authenticate` challenge into an `Authorization` value.
    pub(super) async fn answer_challenge(
        &self,
        registry: &str,
        repository: &str,
        challenge: &str,
    ) -> Result<String, RegistryError> {
        let credentials = self.credentials_for(registry).await?;
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
                    hint: self.needs_credentials(registry),
                }),
            };
        }
        let realm = parameters.get("realm").ok_or_else(|| {
            RegistryError::Protocol(format!(
                "{registry} sent an unusable auth challenge: {challenge:?}"
            ))
        })?;
        self.check_realm(registry, realm)?;
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
            .map_err(|source| self.request_error(realm, source))?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_owned(),
                hint: format!(" (token service {realm})"),
            });
        }
        let response = success(realm, response).await?;
        let bytes = self
            .read_capped(realm, response, "token response", MAX_TOKEN_BYTES)
            .await?;
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
    use crate::credentials::CredentialSource;
    use crate::registry::RegistryOptions;

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

    /// A client with Basic credentials, trying each request once.
    fn client_with_credentials() -> RegistryClient {
        RegistryClient::new(RegistryOptions {
            credentials: CredentialSource {
                inline: Some(Credentials::Basic {
                    username: "bot".into(),
                    password: "s3cret".into(),
                }),
                ..CredentialSource::default()
            },
            attempts: 1,
            ..RegistryOptions::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_plain_http_token_realm_of_an_https_registry_is_refused() {
        let client = client_with_credentials();
        // Port 9 (discard) on loopback: were the realm contacted, this would fail otherwise.
        let challenge = r#"Bearer realm="http://127.0.0.1:9/token",service="x""#;
        let error = client
            .answer_challenge("registry.example.com", "app", challenge)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RegistryError::InsecureRealm { .. }),
            "{error}"
        );
        let error = client
            .answer_challenge(
                "registry.example.com",
                "app",
                r#"Bearer realm="file:///etc/x""#,
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not an http(s) URL"), "{error}");
    }

    #[tokio::test]
    async fn a_loopback_registry_may_use_a_plain_http_realm_only_on_loopback() {
        let client = client_with_credentials();
        let remote = r#"Bearer realm="http://auth.example.com/token",service="x""#;
        let error = client
            .answer_challenge("127.0.0.1:5000", "app", remote)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RegistryError::InsecureRealm { .. }),
            "{error}"
        );
        // A loopback realm passes the check (and then finds nothing listening on port 9).
        let local = r#"Bearer realm="http://127.0.0.1:9/token",service="x""#;
        let error = client
            .answer_challenge("127.0.0.1:5000", "app", local)
            .await
            .unwrap_err();
        assert!(
            !matches!(error, RegistryError::InsecureRealm { .. }),
            "{error}"
        );
    }
}
