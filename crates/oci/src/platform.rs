//! Choosing the manifest of a multi-platform image for a Windows host.
//!
//! Windows images are built per Windows build. The best is the host's exact build (process
//! isolation works); failing that the newest build not newer than the host (it runs under
//! Hyper-V isolation; a guest newer than its host does not boot). Without a known host build
//! the newest windows/amd64 entry is taken, and the caller is told so.

use std::fmt;

use pane_spec::OsVersion;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCandidate {
    pub os: String,
    pub architecture: String,
    pub os_version: Option<String>,
}

impl fmt::Display for PlatformCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(version) = &self.os_version {
            write!(f, " {version}")?;
        }
        Ok(())
    }
}

/// One entry of an image index: its manifest digest and platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: String,
    /// The entry's declared media type and size, checked against what is fetched.
    pub media_type: Option<String>,
    pub size: Option<u64>,
    pub platform: PlatformCandidate,
}

#[derive(serde::Deserialize)]
struct IndexDocument {
    #[serde(default)]
    manifests: Vec<IndexDocumentEntry>,
}

#[derive(serde::Deserialize)]
struct IndexDocumentEntry {
    digest: String,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    platform: Option<PlatformFields>,
}

#[derive(serde::Deserialize, Default)]
struct PlatformFields {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(rename = "os.version", default)]
    os_version: Option<String>,
}

/// The entries of an image index (or Docker manifest list).
///
/// Parsed here rather than with oci-spec: oci-spec 0.10 reads a platform's `os.version`
/// under the wrong key (`os_version`), which would lose every Windows build.
pub fn parse_index(bytes: &[u8]) -> Result<Vec<IndexEntry>, serde_json::Error> {
    let document: IndexDocument = serde_json::from_slice(bytes)?;
    Ok(document
        .manifests
        .into_iter()
        .map(|entry| {
            let platform = entry.platform.unwrap_or_default();
            IndexEntry {
                digest: entry.digest,
                media_type: entry.media_type,
                size: entry.size,
                platform: PlatformCandidate {
                    os: platform.os,
                    architecture: platform.architecture,
                    os_version: platform.os_version,
                },
            }
        })
        .collect())
}

/// The chosen entry and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformChoice {
    pub index: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no platform of this image runs on {wanted}; it offers: {offered}")]
pub struct PlatformError {
    pub wanted: String,
    pub offered: String,
}

/// Picks the entry for a Windows host of `architecture` and (if known) `host` build.
pub fn select_platform(
    candidates: &[PlatformCandidate],
    architecture: &str,
    host: Option<&OsVersion>,
) -> Result<PlatformChoice, PlatformError> {
    let windows: Vec<(usize, Option<OsVersion>)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.os == "windows" && c.architecture == architecture)
        .map(|(i, c)| (i, c.os_version.as_deref().and_then(|v| v.parse().ok())))
        .collect();
    let newest = |entries: &mut dyn Iterator<Item = &(usize, Option<OsVersion>)>| {
        entries
            .max_by_key(|(i, version)| (*version, std::cmp::Reverse(*i)))
            .map(|(i, _)| *i)
    };
    let error = || PlatformError {
        wanted: match host {
            Some(build) => format!("windows/{architecture} {build}"),
            None => format!("windows/{architecture}"),
        },
        offered: if candidates.is_empty() {
            "nothing".to_owned()
        } else {
            candidates
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    let Some(host) = host else {
        let index = newest(&mut windows.iter()).ok_or_else(error)?;
        let note = (windows.len() > 1).then(|| {
            "the host build is unknown, so the newest windows entry was taken; pass --host-build to choose".to_owned()
        });
        return Ok(PlatformChoice { index, note });
    };
    if let Some(index) = newest(
        &mut windows
            .iter()
            .filter(|(_, v)| v.is_some_and(|v| v.same_build(host))),
    ) {
        return Ok(PlatformChoice { index, note: None });
    }
    let older = windows.iter().filter(|(_, v)| {
        v.is_some_and(|v| (v.major, v.minor, v.build) <= (host.major, host.minor, host.build))
    });
    if let Some(index) = newest(&mut older.clone()) {
        let note = format!(
            "no entry for build {}; took {} (needs Hyper-V isolation)",
            host.build, candidates[index]
        );
        return Ok(PlatformChoice {
            index,
            note: Some(note),
        });
    }
    // Entries that do not say their build may still run; take one rather than fail.
    windows
        .iter()
        .find(|(_, v)| v.is_none())
        .map(|(index, _)| PlatformChoice {
            index: *index,
            note: Some("the image does not name its Windows build".to_owned()),
        })
        .ok_or_else(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(version: &str) -> PlatformCandidate {
        PlatformCandidate {
            os: "windows".into(),
            architecture: "amd64".into(),
            os_version: Some(version.into()),
        }
    }

    fn index() -> Vec<PlatformCandidate> {
        vec![
            PlatformCandidate {
                os: "linux".into(),
                architecture: "amd64".into(),
                os_version: None,
            },
            windows("10.0.17763.6054"),
            windows("10.0.20348.2700"),
            windows("10.0.20348.2527"),
            windows("10.0.26100.1742"),
            PlatformCandidate {
                os: "windows".into(),
                architecture: "arm64".into(),
                os_version: Some("10.0.26100.1742".into()),
            },
        ]
    }

    fn host(text: &str) -> OsVersion {
        text.parse().unwrap()
    }

    #[test]
    fn exact_build_wins_with_the_newest_update() {
        let choice = select_platform(&index(), "amd64", Some(&host("10.0.20348.1"))).unwrap();
        assert_eq!(
            choice,
            PlatformChoice {
                index: 2,
                note: None
            }
        );
    }

    #[test]
    fn otherwise_the_newest_older_build() {
        let choice = select_platform(&index(), "amd64", Some(&host("10.0.22631"))).unwrap();
        assert_eq!(choice.index, 2);
        assert!(choice.note.unwrap().contains("Hyper-V"));
    }

    #[test]
    fn unknown_host_takes_the_newest_and_says_so() {
        let choice = select_platform(&index(), "amd64", None).unwrap();
        assert_eq!(choice.index, 4);
        assert!(choice.note.unwrap().contains("--host-build"));
    }

    #[test]
    fn nothing_fits_lists_what_is_offered() {
        let err = select_platform(&index(), "amd64", Some(&host("10.0.14393"))).unwrap_err();
        assert_eq!(err.wanted, "windows/amd64 10.0.14393");
        assert!(
            err.offered
                .contains("linux/amd64, windows/amd64 10.0.17763.6054"),
            "{err}"
        );
        let err = select_platform(&index()[..1], "amd64", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no platform of this image runs on windows/amd64; it offers: linux/amd64"
        );
    }
}
