//! CNI specification versions: which pane speaks, and which commands each one has.

/// A `major.minor.patch` CNI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub const V0_3_0: Self = Self(0, 3, 0);
    pub const V0_4_0: Self = Self(0, 4, 0);
    pub const V1_0_0: Self = Self(1, 0, 0);
    pub const V1_1_0: Self = Self(1, 1, 0);

    pub const SUPPORTED_TEXT: &'static str = "0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0";

    /// The versions whose result format pane reads and writes. Earlier results (0.1,
    /// 0.2) have another shape, and later majors may too.
    pub fn is_supported(self) -> bool {
        matches!(self, Self(0, 3, 0 | 1) | Self(0, 4, 0) | Self(1, 0 | 1, 0))
    }

    /// CHECK arrived in 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// STATUS and GC arrived in 1.1.0.
    pub fn has_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }

    /// Results of 0.3.x and 0.4.0 give each IP a `version` field that 1.0 dropped.
    pub fn ips_have_version(self) -> bool {
        self < Self::V1_0_0
    }
}

pub fn parse_version(text: &str) -> Result<Version, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    };
    match parts.as_slice() {
        [a, b, c] => match (number(a), number(b), number(c)) {
            (Some(a), Some(b), Some(c)) => Ok(Version(a, b, c)),
            _ => Err(format!("{text:?} is not a version of the form 1.0.0")),
        },
        _ => Err(format!("{text:?} is not a version of the form 1.0.0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly_and_order_numerically() {
        assert_eq!(parse_version("1.1.0"), Ok(Version::V1_1_0));
        assert!(parse_version("0.10.0").is_ok_and(|v| v > Version::V0_4_0));
        for bad in ["", "1.0", "1.0.0.0", "1.+0.0", "a.b.c", "1.0.0-rc1"] {
            assert!(parse_version(bad).is_err(), "{bad:?}");
        }
        assert!(!Version(0, 2, 0).is_supported() && !Version(1, 2, 0).is_supported());
        assert!(Version::V0_4_0.has_check() && !Version(0, 3, 1).has_check());
        assert!(Version::V1_1_0.has_status_and_gc() && !Version::V1_0_0.has_status_and_gc());
    }
}
