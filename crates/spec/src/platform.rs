//! Windows OS versions as images (`os.version`) and hosts report them.

use std::fmt;
use std::str::FromStr;

/// `major.minor.build[.revision]`, e.g. `10.0.20348.2700` (Windows Server 2022).
///
/// Windows container compatibility is decided by the build number; the revision (UBR) only
/// says which monthly update is installed, so it never takes part in matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OsVersion {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub revision: Option<u32>,
}

impl OsVersion {
    pub const fn new(major: u32, minor: u32, build: u32) -> Self {
        Self {
            major,
            minor,
            build,
            revision: None,
        }
    }

    /// Same `major.minor.build`: the rule for process isolation.
    pub fn same_build(&self, other: &OsVersion) -> bool {
        (self.major, self.minor, self.build) == (other.major, other.minor, other.build)
    }

    /// The marketing name of well-known builds, for messages.
    pub fn release_name(&self) -> Option<&'static str> {
        if (self.major, self.minor) != (10, 0) {
            return None;
        }
        Some(match self.build {
            14393 => "Windows Server 2016",
            17763 => "Windows Server 2019",
            20348 => "Windows Server 2022",
            26100 => "Windows Server 2025",
            22000 => "Windows 11 21H2",
            22621 => "Windows 11 22H2",
            22631 => "Windows 11 23H2",
            _ => return None,
        })
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)?;
        if let Some(revision) = self.revision {
            write!(f, ".{revision}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a Windows version; expected major.minor.build[.revision] like 10.0.20348")]
pub struct OsVersionError {
    pub text: String,
}

impl FromStr for OsVersion {
    type Err = OsVersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || OsVersionError {
            text: text.to_owned(),
        };
        let parts: Vec<&str> = text.split('.').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(error());
        }
        let mut numbers = Vec::with_capacity(parts.len());
        for part in parts {
            // u32::from_str takes a leading '+'; a version component never has one.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error());
            }
            numbers.push(part.parse::<u32>().map_err(|_| error())?);
        }
        Ok(Self {
            major: numbers[0],
            minor: numbers[1],
            build: numbers[2],
            revision: numbers.get(3).copied(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_and_four_part_versions() {
        let full: OsVersion = "10.0.20348.2700".parse().unwrap();
        assert_eq!(
            (full.major, full.minor, full.build, full.revision),
            (10, 0, 20348, Some(2700))
        );
        let short: OsVersion = "10.0.26100".parse().unwrap();
        assert_eq!(short, OsVersion::new(10, 0, 26100));
        assert_eq!(full.to_string(), "10.0.20348.2700");
        assert_eq!(full.release_name(), Some("Windows Server 2022"));
    }

    #[test]
    fn rejects_malformed_versions() {
        for text in [
            "",
            "10",
            "10.0",
            "10.0.",
            "10.0.x",
            "10.0.20348.1.2",
            "10.0.-1",
            "10.0.+5",
            " 10.0.20348",
            "10.0.20348 ",
            "10..20348",
            "10.0.99999999999",
            "１０.0.20348",
        ] {
            assert!(
                text.parse::<OsVersion>().is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn build_match_ignores_revision() {
        let a: OsVersion = "10.0.20348.2700".parse().unwrap();
        let b: OsVersion = "10.0.20348.1".parse().unwrap();
        let c: OsVersion = "10.0.26100.2700".parse().unwrap();
        assert!(a.same_build(&b));
        assert!(!a.same_build(&c));
    }
}
