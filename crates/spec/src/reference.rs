//! Image references (`mcr.microsoft.com/windows/nanoserver:ltsc2022`, `nginx`,
//! `registry:5000/team/app@sha256:…`), parsed by the grammar of the distribution project
//! and normalised the way Docker does.

use std::fmt;
use std::str::FromStr;

pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

/// A fully qualified image reference: registry, repository and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// `algorithm:hex`, e.g. `sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: String,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = text.split_once(':').ok_or(ReferenceError::InvalidDigest)?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !algorithm_ok {
            return Err(ReferenceError::InvalidDigest);
        }
        let expected_len = match algorithm {
            "sha256" => Some(64),
            "sha512" => Some(128),
            _ => None,
        };
        let hex_ok = hex.len() >= 32
            && expected_len.is_none_or(|len| hex.len() == len)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(ReferenceError::InvalidDigest);
        }
        Ok(Self {
            algorithm: algorithm.to_owned(),
            hex: hex.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the reference is empty")]
    Empty,
    #[error("the repository name must be lowercase")]
    Uppercase,
    #[error("the repository name is longer than {MAX_NAME_LENGTH} characters")]
    NameTooLong,
    #[error("{0:?} is not a valid registry host")]
    InvalidRegistry(String),
    #[error("{0:?} is not a valid repository path component")]
    InvalidComponent(String),
    #[error("{0:?} is not a valid tag")]
    InvalidTag(String),
    #[error("the digest must be algorithm:hex, e.g. sha256: followed by 64 lowercase hex digits")]
    InvalidDigest,
}

impl ReferenceError {
    pub fn fix(&self) -> &'static str {
        match self {
            ReferenceError::Empty | ReferenceError::InvalidComponent(_) => {
                "expected an image like mcr.microsoft.com/windows/nanoserver:ltsc2022"
            }
            ReferenceError::Uppercase => "write the repository in lowercase",
            ReferenceError::NameTooLong => "shorten the registry and repository name",
            ReferenceError::InvalidRegistry(_) => {
                "expected a host name with an optional port, like registry.example.com:5000"
            }
            ReferenceError::InvalidTag(_) => {
                "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            }
            ReferenceError::InvalidDigest => {
                "copy the digest exactly, e.g. from `pane images --digests`"
            }
        }
    }
}

impl ImageReference {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when the reference named neither a tag nor a digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The short form people type: `nginx:latest` rather than `docker.io/library/nginx:latest`.
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        let hub_prefix = format!("{DOCKER_HUB}/");
        match full.strip_prefix(&hub_prefix) {
            Some(rest) => rest.strip_prefix("library/").unwrap_or(rest).to_owned(),
            None => full,
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (text, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                (&rest[..colon], Some(validate_tag(&rest[colon + 1..])?))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if name.len() > MAX_NAME_LENGTH {
            return Err(ReferenceError::NameTooLong);
        }
        let (registry, path) = split_registry(name);
        let registry = match registry {
            Some(host) => {
                validate_registry(host)?;
                if host == DOCKER_HUB_LEGACY {
                    DOCKER_HUB.to_owned()
                } else {
                    host.to_owned()
                }
            }
            None => DOCKER_HUB.to_owned(),
        };
        for component in path.split('/') {
            validate_component(component)?;
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Docker's rule: the first component is a registry when it has a '.' or ':' or is
/// `localhost`; otherwise the whole name is a Docker Hub repository.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_registry(host: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidRegistry(host.to_owned());
    let (hostname, port) = if let Some(inner) = host.strip_prefix('[') {
        // Bracketed IPv6 literal, optionally with a port.
        let (address, after) = inner.split_once(']').ok_or_else(invalid)?;
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| invalid())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(invalid)?),
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(hostname) = hostname {
        let labels_ok = !hostname.is_empty()
            && hostname.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !labels_ok {
            return Err(invalid());
        }
    }
    if let Some(port) = port {
        let port_ok = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !port_ok {
            return Err(invalid());
        }
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn validate_component(component: &str) -> Result<(), ReferenceError> {
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase);
    }
    let invalid = || ReferenceError::InvalidComponent(component.to_owned());
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(invalid());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return Err(invalid());
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<String, ReferenceError> {
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG_LENGTH
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-']);
    if valid {
        Ok(tag.to_owned())
    } else {
        Err(ReferenceError::InvalidTag(tag.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<String, ReferenceError> {
        text.parse::<ImageReference>().map(|r| r.to_string())
    }

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("team/app", "docker.io/team/app:latest"),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            (
                "mcr.microsoft.com/windows/nanoserver:ltsc2022",
                "mcr.microsoft.com/windows/nanoserver:ltsc2022",
            ),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            (
                "my-reg.example.com/a__b/c-d---e.f_g",
                "my-reg.example.com/a__b/c-d---e.f_g:latest",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn digests_with_and_without_tags() {
        let by_digest = format!("mcr.microsoft.com/windows/servercore@sha256:{HEX}");
        let r: ImageReference = by_digest.parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), HEX);
        assert_eq!(r.to_string(), by_digest);
        let both: ImageReference = format!("nginx:1.25@sha256:{HEX}").parse().unwrap();
        assert_eq!(both.tag(), Some("1.25"));
        assert_eq!(both.familiar(), format!("nginx:1.25@sha256:{HEX}"));
    }

    #[test]
    fn familiar_form_drops_hub_defaults() {
        let r: ImageReference = "nginx".parse().unwrap();
        assert_eq!(r.familiar(), "nginx:latest");
        let r: ImageReference = "team/app:v2".parse().unwrap();
        assert_eq!(r.familiar(), "team/app:v2");
        let r: ImageReference = "mcr.microsoft.com/windows/nanoserver:ltsc2022"
            .parse()
            .unwrap();
        assert_eq!(
            r.familiar(),
            "mcr.microsoft.com/windows/nanoserver:ltsc2022"
        );
    }

    #[test]
    fn rejects_invalid_references() {
        let long = "a".repeat(256);
        let long_tag = format!("app:{}", "t".repeat(129));
        let cases: Vec<(&str, ReferenceError)> = vec![
            ("", ReferenceError::Empty),
            (":tag", ReferenceError::Empty),
            ("Nginx", ReferenceError::Uppercase),
            ("registry.io/Team/app", ReferenceError::Uppercase),
            ("app:", ReferenceError::InvalidTag(String::new())),
            ("app:-x", ReferenceError::InvalidTag("-x".into())),
            (&long_tag, ReferenceError::InvalidTag("t".repeat(129))),
            ("app@sha256:abc", ReferenceError::InvalidDigest),
            ("app@sha256:", ReferenceError::InvalidDigest),
            ("app@md5", ReferenceError::InvalidDigest),
            ("a//b", ReferenceError::InvalidComponent(String::new())),
            ("a/-b", ReferenceError::InvalidComponent("-b".into())),
            ("a/b..c", ReferenceError::InvalidComponent("b..c".into())),
            ("a/b___c", ReferenceError::InvalidComponent("b___c".into())),
            (
                "ünïcode",
                ReferenceError::InvalidComponent("ünïcode".into()),
            ),
            (
                "reg.io:0/app",
                ReferenceError::InvalidRegistry("reg.io:0".into()),
            ),
            (
                "reg.io:99999/app",
                ReferenceError::InvalidRegistry("reg.io:99999".into()),
            ),
            (
                "reg_io.com/app",
                ReferenceError::InvalidRegistry("reg_io.com".into()),
            ),
            ("[::1/app", ReferenceError::InvalidRegistry("[::1".into())),
            (&long, ReferenceError::NameTooLong),
        ];
        for (input, error) in cases {
            assert_eq!(parse(input), Err(error), "{input:?}");
        }
    }
}
