//! Registry credentials: given inline, from a Docker `config.json` (its `auths`, or the
//! credential helpers it names), or from the environment. Every credential is bound to one
//! registry host, as Docker, containerd and containers/image bind them, so a spec naming
//! another registry never receives it. Secrets never appear in `Debug` output or logs.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

mod helper;

pub use helper::HELPER_TIMEOUT;

/// Inline credentials win; then the `PANE_REGISTRY_USERNAME`/`PANE_REGISTRY_PASSWORD` pair
/// when `PANE_REGISTRY` names the registry; then the Docker config (credential helper,
/// credential store, `auths` entry).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An identity token (`docker login` stores one as `identitytoken`), exchanged for
    /// access tokens as a refresh token.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read Docker config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Docker config {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the `auth` entry for {registry} in {path} is not base64 of user:password")]
    BadAuth { registry: String, path: PathBuf },
    #[error(
        "{path} names the credential helper {helper:?} ({key}) for {registry}, but \
         docker-credential-{helper} cannot be run: {problem}; install it on the PATH, or remove \
         {key} from {path}"
    )]
    HelperMissing {
        helper: String,
        key: &'static str,
        registry: String,
        path: PathBuf,
        problem: String,
    },
    #[error("docker-credential-{helper} get failed for {registry}: {problem}")]
    HelperFailed {
        helper: String,
        registry: String,
        problem: String,
    },
}

/// The `PANE_REGISTRY_USERNAME`/`PANE_REGISTRY_PASSWORD` pair, bound to the registry
/// `PANE_REGISTRY` names. Without that name the pair is used for no registry at all: a pair
/// sent to whichever registry asks would reach any registry a spec names.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvironmentCredentials {
    /// `host[:port]` from `PANE_REGISTRY`.
    pub registry: Option<String>,
    pub credentials: Credentials,
}

impl fmt::Debug for EnvironmentCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvironmentCredentials")
            .field("registry", &self.registry)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl EnvironmentCredentials {
    /// The pair from this process's environment, if both halves are set.
    pub fn from_env() -> Option<Self> {
        let username = std::env::var("PANE_REGISTRY_USERNAME").ok()?;
        let password = std::env::var("PANE_REGISTRY_PASSWORD").ok()?;
        Some(Self {
            registry: std::env::var("PANE_REGISTRY")
                .ok()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
            credentials: Credentials::Basic { username, password },
        })
    }

    fn serves(&self, registry: &str) -> bool {
        self.registry
            .as_deref()
            .is_some_and(|bound| same_registry(bound, registry))
    }
}

/// Whether two registry names are the same host (Docker Hub has several names).
fn same_registry(a: &str, b: &str) -> bool {
    let canonical = |name: &str| {
        let name = name
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        match name.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1" => {
                "docker.io".to_owned()
            }
            _ => name,
        }
    };
    canonical(a) == canonical(b)
}

/// Where credentials for a registry come from.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    /// Given by the caller for one image (the spec's `image.auth`): a [`RegistryClient`]
    /// serves the pull of that image, so these reach its registry only.
    ///
    /// [`RegistryClient`]: crate::registry::RegistryClient
    pub inline: Option<Credentials>,
    /// A Docker `config.json`; `None` disables the lookup.
    pub docker_config: Option<PathBuf>,
    /// The environment's pair, used for the registry it is bound to.
    pub environment: Option<EnvironmentCredentials>,
}

impl CredentialSource {
    /// The usual setup: the environment's bound pair, then `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`.
    pub fn standard() -> Self {
        Self {
            inline: None,
            docker_config: default_docker_config(),
            environment: EnvironmentCredentials::from_env(),
        }
    }

    pub fn for_registry(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        if let Some(inline) = &self.inline {
            return Ok(Some(inline.clone()));
        }
        if let Some(environment) = &self.environment
            && environment.serves(registry)
        {
            return Ok(Some(environment.credentials.clone()));
        }
        match &self.docker_config {
            Some(path) if path.is_file() => from_docker_config(path, registry),
            _ => Ok(None),
        }
    }

    /// Why the environment's pair was not offered to `registry`, when it is set.
    pub fn unused_environment_hint(&self, registry: &str) -> Option<String> {
        let environment = self.environment.as_ref()?;
        match environment.registry.as_deref() {
            None => Some(format!(
                "; PANE_REGISTRY_USERNAME/PANE_REGISTRY_PASSWORD are set but bound to no \
                 registry: set PANE_REGISTRY={registry} to use them here"
            )),
            Some(bound) if !same_registry(bound, registry) => Some(format!(
                "; PANE_REGISTRY_USERNAME/PANE_REGISTRY_PASSWORD are bound to {bound} \
                 (PANE_REGISTRY), not {registry}"
            )),
            Some(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "image.auth names the environment variable {name}, which is not set; set it on this host or change the spec"
)]
pub struct MissingVariable {
    pub name: String,
}

impl CredentialSource {
    /// The source a spec's `image.auth` names. Environment variables are read now, so a
    /// missing one is reported before any network traffic.
    pub fn from_spec(auth: Option<&pane_spec::RegistryAuthRef>) -> Result<Self, MissingVariable> {
        use pane_spec::RegistryAuthRef;
        let read = |name: &str| {
            std::env::var(name).map_err(|_| MissingVariable {
                name: name.to_owned(),
            })
        };
        Ok(match auth {
            None => Self::standard(),
            Some(RegistryAuthRef::Env {
                username_env,
                password_env,
            }) => Self {
                inline: Some(Credentials::Basic {
                    username: read(username_env)?,
                    password: read(password_env)?,
                }),
                docker_config: None,
                environment: None,
            },
            Some(RegistryAuthRef::DockerConfig { path }) => Self {
                inline: None,
                docker_config: path.clone().or_else(default_docker_config),
                environment: None,
            },
        })
    }
}

fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// Docker config files are small; a larger one is not a config.
const MAX_DOCKER_CONFIG_BYTES: u64 = 4 << 20;

/// The credentials `config.json` holds for `registry`, in Docker's order: the registry's
/// `credHelpers` entry, then the `credsStore` helper, then the `auths` entry (which is also
/// where a store's "not found" falls back to). Docker Hub is stored under its v1 index URL.
pub fn from_docker_config(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    let read_error = |source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_DOCKER_CONFIG_BYTES),
        &mut text,
    )
    .map_err(read_error)?;
    let config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| CredentialsError::Json {
            path: path.to_owned(),
            source,
        })?;
    let keys: Vec<String> = if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            registry.to_owned(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    };
    let lookup = |section: &str| {
        let map = config.get(section)?.as_object()?;
        keys.iter()
            .find_map(|k| map.get(k.as_str()).or_else(|| map.get(&format!("{k}/"))))
    };
    let server_url = if registry == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    if let Some(name) = lookup("credHelpers").and_then(|h| h.as_str()) {
        return helper::get(name, "credHelpers", server_url, registry, path);
    }
    if let Some(name) = config
        .get("credsStore")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        && let Some(found) = helper::get(name, "credsStore", server_url, registry, path)?
    {
        return Ok(Some(found));
    }
    let Some(entry) = lookup("auths") else {
        return Ok(None);
    };
    if let Some(token) = entry
        .get("identitytoken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials::IdentityToken(token.to_owned())));
    }
    let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let bad = || CredentialsError::BadAuth {
        registry: registry.to_owned(),
        path: path.to_owned(),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_auth_reads_the_named_variables_and_reports_missing_ones() {
        let auth = pane_spec::RegistryAuthRef::Env {
            username_env: "PANE_TEST_SPEC_USER".into(),
            password_env: "PANE_TEST_SPEC_PASSWORD_UNSET".into(),
        };
        // Neither variable is set anywhere: the first one named is reported.
        let err = CredentialSource::from_spec(Some(&auth)).unwrap_err();
        assert_eq!(err.name, "PANE_TEST_SPEC_USER");
        let config = pane_spec::RegistryAuthRef::DockerConfig {
            path: Some("/etc/pane/config.json".into()),
        };
        let source = CredentialSource::from_spec(Some(&config)).unwrap();
        assert_eq!(
            source.docker_config.as_deref(),
            Some(Path::new("/etc/pane/config.json"))
        );
        assert!(source.environment.is_none());
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{
                "registry.example.com:5000":{"auth":"Ym90OnMzY3JldDpwYXJ0"},
                "https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"},
                "token.example.com":{"identitytoken":"refresh-me"},
                "broken.example.com":{"auth":"!!!"}
            }}"#,
        )
        .unwrap();
        assert_eq!(
            from_docker_config(&path, "registry.example.com:5000").unwrap(),
            Some(Credentials::Basic {
                username: "bot".into(),
                password: "s3cret:part".into()
            })
        );
        assert_eq!(
            from_docker_config(&path, "docker.io").unwrap(),
            Some(Credentials::Basic {
                username: "hub".into(),
                password: "hubpw".into()
            })
        );
        assert_eq!(
            from_docker_config(&path, "token.example.com").unwrap(),
            Some(Credentials::IdentityToken("refresh-me".into()))
        );
        assert_eq!(
            from_docker_config(&path, "other.example.com").unwrap(),
            None
        );
        assert!(matches!(
            from_docker_config(&path, "broken.example.com"),
            Err(CredentialsError::BadAuth { .. })
        ));
        let shown = format!(
            "{:?}",
            from_docker_config(&path, "registry.example.com:5000").unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
