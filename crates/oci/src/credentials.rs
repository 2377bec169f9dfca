//! Registry credentials: given inline, from a Docker `config.json`, or from the environment.
//! Secrets never appear in `Debug` output or logs.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Inline credentials win; then `PANE_REGISTRY_USERNAME`/`PANE_REGISTRY_PASSWORD`; then the
/// Docker config's `auths` entry for the registry.
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
}

/// Where credentials for a registry come from.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    /// Given by the caller (the spec, a flag); used for every registry of the pull.
    pub inline: Option<Credentials>,
    /// A Docker `config.json`; `None` disables the lookup.
    pub docker_config: Option<PathBuf>,
    /// Whether `PANE_REGISTRY_USERNAME` / `PANE_REGISTRY_PASSWORD` are consulted.
    pub environment: bool,
}

impl CredentialSource {
    /// The usual setup: environment, then `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`.
    pub fn standard() -> Self {
        Self {
            inline: None,
            docker_config: default_docker_config(),
            environment: true,
        }
    }

    pub fn for_registry(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        if let Some(inline) = &self.inline {
            return Ok(Some(inline.clone()));
        }
        if self.environment
            && let (Ok(username), Ok(password)) = (
                std::env::var("PANE_REGISTRY_USERNAME"),
                std::env::var("PANE_REGISTRY_PASSWORD"),
            )
        {
            return Ok(Some(Credentials::Basic { username, password }));
        }
        match &self.docker_config {
            Some(path) if path.is_file() => from_docker_config(path, registry),
            _ => Ok(None),
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
                environment: false,
            },
            Some(RegistryAuthRef::DockerConfig { path }) => Self {
                inline: None,
                docker_config: path.clone().or_else(default_docker_config),
                environment: false,
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

/// The `auths` entry for `registry`; Docker Hub is stored under its v1 index URL.
pub fn from_docker_config(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| CredentialsError::Json {
            path: path.to_owned(),
            source,
        })?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
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
    let Some(entry) = keys.iter().find_map(|k| {
        auths
            .get(k.as_str())
            .or_else(|| auths.get(&format!("{k}/")))
    }) else {
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
        assert!(!source.environment);
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
