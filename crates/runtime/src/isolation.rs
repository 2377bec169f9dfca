//! Choosing process or Hyper-V isolation.
//!
//! Process-isolated containers share the host kernel, so Windows only runs them when the
//! image was built for the host's build. Hyper-V isolation boots the image's own kernel in a
//! utility VM and runs anywhere, at the cost of a VM per container.

use std::fmt;

use pane_spec::{IsolationMode, OsVersion, platform::OsVersionError};
use serde::{Deserialize, Serialize};

/// The isolation a container actually gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    Process,
    Hyperv,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Process => "process",
            Isolation::Hyperv => "hyperv",
        })
    }
}

/// Why the isolation was chosen, so `pane plan` and `inspect` can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationReason {
    /// The spec asked for it.
    Requested,
    /// `auto`, and the image build equals the host build.
    BuildsMatch,
    /// `auto`, and the image targets another build.
    BuildsDiffer,
    /// `auto`, the image names its build but the host's is unknown: only a VM is safe.
    HostBuildUnknown,
    /// `auto`, and the image does not say which build it needs: try the host kernel.
    ImageBuildUnknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationDecision {
    pub isolation: Isolation,
    pub reason: IsolationReason,
}

impl fmt::Display for IsolationDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            IsolationReason::Requested => "requested explicitly",
            IsolationReason::BuildsMatch => "the image build matches the host",
            IsolationReason::BuildsDiffer => "the image was built for another Windows build",
            IsolationReason::HostBuildUnknown => "the host build is unknown",
            IsolationReason::ImageBuildUnknown => "the image does not name its Windows build",
        };
        write!(f, "{} isolation ({why})", self.isolation)
    }
}

/// The isolation policy. Explicit choices win; `auto` compares `major.minor.build`.
pub fn decide_isolation(
    requested: IsolationMode,
    image: Option<&OsVersion>,
    host: Option<&OsVersion>,
) -> IsolationDecision {
    let (isolation, reason) = match (requested, image, host) {
        (IsolationMode::Process, _, _) => (Isolation::Process, IsolationReason::Requested),
        (IsolationMode::Hyperv, _, _) => (Isolation::Hyperv, IsolationReason::Requested),
        (IsolationMode::Auto, None, _) => (Isolation::Process, IsolationReason::ImageBuildUnknown),
        (IsolationMode::Auto, Some(_), None) => {
            (Isolation::Hyperv, IsolationReason::HostBuildUnknown)
        }
        (IsolationMode::Auto, Some(image), Some(host)) if image.same_build(host) => {
            (Isolation::Process, IsolationReason::BuildsMatch)
        }
        (IsolationMode::Auto, Some(_), Some(_)) => {
            (Isolation::Hyperv, IsolationReason::BuildsDiffer)
        }
    };
    IsolationDecision { isolation, reason }
}

/// A version string that could not be read, and whose it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionSourceError {
    #[error("the image's os.version: {0}")]
    Image(OsVersionError),
    #[error("the host build: {0}")]
    Host(OsVersionError),
}

/// [`decide_isolation`] over the raw strings an image config and a host report.
pub fn decide_isolation_from_strings(
    requested: IsolationMode,
    image: Option<&str>,
    host: Option<&str>,
) -> Result<IsolationDecision, VersionSourceError> {
    let image = image
        .map(str::parse::<OsVersion>)
        .transpose()
        .map_err(VersionSourceError::Image)?;
    let host = host
        .map(str::parse::<OsVersion>)
        .transpose()
        .map_err(VersionSourceError::Host)?;
    Ok(decide_isolation(requested, image.as_ref(), host.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use IsolationMode::{Auto, Hyperv, Process};

    const LTSC2022: &str = "10.0.20348.2700";
    const LTSC2022_OTHER_UPDATE: &str = "10.0.20348.1";
    const LTSC2025: &str = "10.0.26100";

    #[test]
    fn decision_table() {
        // requested, image os.version, host build → isolation, reason
        type Row<'a> = (
            IsolationMode,
            Option<&'a str>,
            Option<&'a str>,
            Isolation,
            IsolationReason,
        );
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // Explicit values win whatever the builds.
            (Process, Some(LTSC2025), Some(LTSC2022), Isolation::Process, IsolationReason::Requested),
            (Process, None, None, Isolation::Process, IsolationReason::Requested),
            (Hyperv, Some(LTSC2022), Some(LTSC2022), Isolation::Hyperv, IsolationReason::Requested),
            (Hyperv, None, None, Isolation::Hyperv, IsolationReason::Requested),
            // Auto: equal build → process, whatever the update revision.
            (Auto, Some(LTSC2022), Some(LTSC2022), Isolation::Process, IsolationReason::BuildsMatch),
            (Auto, Some(LTSC2022_OTHER_UPDATE), Some(LTSC2022), Isolation::Process, IsolationReason::BuildsMatch),
            (Auto, Some("10.0.26100.1"), Some(LTSC2025), Isolation::Process, IsolationReason::BuildsMatch),
            // Auto: different build → Hyper-V, in either direction.
            (Auto, Some(LTSC2025), Some(LTSC2022), Isolation::Hyperv, IsolationReason::BuildsDiffer),
            (Auto, Some("10.0.17763.6054"), Some(LTSC2022), Isolation::Hyperv, IsolationReason::BuildsDiffer),
            (Auto, Some("6.3.20348"), Some(LTSC2022), Isolation::Hyperv, IsolationReason::BuildsDiffer),
            // Auto: host unknown → Hyper-V; image unknown → process.
            (Auto, Some(LTSC2022), None, Isolation::Hyperv, IsolationReason::HostBuildUnknown),
            (Auto, None, Some(LTSC2022), Isolation::Process, IsolationReason::ImageBuildUnknown),
            (Auto, None, None, Isolation::Process, IsolationReason::ImageBuildUnknown),
        ];
        for (requested, image, host, isolation, reason) in rows {
            let decision = decide_isolation_from_strings(*requested, *image, *host).unwrap();
            assert_eq!(
                decision,
                IsolationDecision {
                    isolation: *isolation,
                    reason: *reason
                },
                "{requested:?} image={image:?} host={host:?}"
            );
        }
    }

    #[test]
    fn malformed_versions_say_whose_they_are() {
        let err = decide_isolation_from_strings(Auto, Some("10.0"), Some(LTSC2022)).unwrap_err();
        assert!(matches!(err, VersionSourceError::Image(_)), "{err}");
        let err = decide_isolation_from_strings(Auto, Some(LTSC2022), Some("ten")).unwrap_err();
        assert!(matches!(err, VersionSourceError::Host(_)), "{err}");
        assert!(err.to_string().contains("host build"), "{err}");
    }

    #[test]
    fn decisions_explain_themselves() {
        let decision = decide_isolation_from_strings(Auto, Some(LTSC2025), Some(LTSC2022)).unwrap();
        assert_eq!(
            decision.to_string(),
            "hyperv isolation (the image was built for another Windows build)"
        );
    }
}
