//! Memory sizes and CPU counts as users write them.
//!
//! Sizes follow Kubernetes quantities: `Ki Mi Gi Ti Pi Ei` are powers of 1024 and
//! `k K M G T P E` powers of 1000. Docker reads `512m` as 512 MiB and Kubernetes as 0.512
//! bytes, so lower-case `m`/`g` are refused rather than guessed.

use std::fmt;

/// A number of bytes, more than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize(u64);

impl MemorySize {
    pub fn from_bytes(bytes: u64) -> Option<Self> {
        (bytes > 0).then_some(Self(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Whole MiB, rounded up, which is how HCS documents take memory.
    pub fn mebibytes_ceil(self) -> u64 {
        self.0.div_ceil(1 << 20)
    }
}

impl fmt::Display for MemorySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 6] = [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ];
        for (unit, shift) in UNITS {
            if self.0 >= 1 << shift && self.0.trailing_zeros() >= shift {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Why a size or CPU count was refused; `Display` is the problem, [`QuantityError::fix`] the
/// way out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("is empty")]
    Empty,
    #[error("must be more than zero")]
    Zero,
    #[error("is negative")]
    Negative,
    #[error("is not a number")]
    NotANumber,
    #[error("uses exponent notation")]
    Exponent,
    #[error("has an unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("uses {0:?}, which Docker reads as binary and Kubernetes as milli")]
    AmbiguousUnit(String),
    #[error("has a space inside it")]
    Space,
    #[error("is too large")]
    Overflow,
    #[error("has more precision than {0}")]
    TooPrecise(&'static str),
    #[error("is more than {0} cores")]
    TooManyCores(u32),
}

impl QuantityError {
    pub fn memory_fix(&self) -> String {
        match self {
            QuantityError::AmbiguousUnit(unit) => {
                let upper = unit.to_ascii_uppercase();
                format!("write {upper}i for binary units (e.g. 512Mi) or {upper} for decimal ones")
            }
            QuantityError::Overflow => "expected at most 16Ei".to_owned(),
            QuantityError::TooPrecise(_) => "expected at most 9 decimal places".to_owned(),
            _ => "expected a size like 512Mi, 2Gi or 1G".to_owned(),
        }
    }

    pub fn cpu_fix(&self) -> String {
        match self {
            QuantityError::TooManyCores(max) => format!("expected at most {max} cores"),
            QuantityError::TooPrecise(_) => {
                "expected whole thousandths of a core, like 0.25 or 250m".to_owned()
            }
            _ => "expected a number of cores like 2, 1.5 or 500m".to_owned(),
        }
    }
}

const MAX_FRACTION_DIGITS: usize = 9;

/// Parses `512Mi`, `2Gi`, `1G`, `1.5Gi`, `1048576` (bytes). Fractions round up to whole bytes.
pub fn parse_memory(text: &str) -> Result<MemorySize, QuantityError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    if text.starts_with('-') {
        return Err(QuantityError::Negative);
    }
    let unit_start = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_start);
    let multiplier = memory_unit(unit)?;
    let decimal = Decimal::parse(number)?;
    let bytes = decimal
        .times_ceil(multiplier)
        .ok_or(QuantityError::Overflow)?;
    MemorySize::from_bytes(bytes).ok_or(QuantityError::Zero)
}

fn memory_unit(unit: &str) -> Result<u128, QuantityError> {
    let binary = |shift: u32| Ok(1u128 << shift);
    let decimal = |exp: u32| Ok(10u128.pow(exp));
    match unit {
        "" => Ok(1),
        u if u.starts_with(char::is_whitespace) => Err(QuantityError::Space),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "k" | "K" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "m" | "g" | "t" | "mb" | "gb" | "MB" | "GB" | "mi" | "gi" => {
            Err(QuantityError::AmbiguousUnit(unit.to_owned()))
        }
        u if u.starts_with(['e', 'E']) && u[1..].chars().all(|c| c.is_ascii_digit()) => {
            Err(QuantityError::Exponent)
        }
        u if u.starts_with(|c: char| c.is_alphabetic()) => {
            Err(QuantityError::UnknownUnit(u.to_owned()))
        }
        _ => Err(QuantityError::NotANumber),
    }
}

/// An exact non-negative decimal `digits[.digits]`, kept as an integer and a scale so no
/// float rounding creeps into byte counts.
struct Decimal {
    mantissa: u128,
    scale: u32,
}

impl Decimal {
    fn parse(number: &str) -> Result<Self, QuantityError> {
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        let well_formed = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && !(number.contains('.') && fraction.is_empty());
        if !well_formed {
            return Err(QuantityError::NotANumber);
        }
        if fraction.len() > MAX_FRACTION_DIGITS {
            return Err(QuantityError::TooPrecise("nine decimal places"));
        }
        let digits = format!("{whole}{fraction}");
        let mantissa = digits
            .parse::<u128>()
            .map_err(|_| QuantityError::Overflow)?;
        #[allow(clippy::cast_possible_truncation)] // bounded by MAX_FRACTION_DIGITS
        let scale = fraction.len() as u32;
        Ok(Self { mantissa, scale })
    }

    fn times_ceil(&self, multiplier: u128) -> Option<u64> {
        let scaled = self.mantissa.checked_mul(multiplier)?;
        let value = scaled.div_ceil(10u128.pow(self.scale));
        u64::try_from(value).ok()
    }
}

/// CPU as thousandths of a core (`1.5` → 1500), so fractional limits stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuCount(u32);

impl CpuCount {
    /// Generous upper bound: far above any host or utility VM, low enough to catch typos.
    pub const MAX_CORES: u32 = 1024;

    pub fn from_millicores(millicores: u32) -> Option<Self> {
        (millicores > 0 && millicores <= Self::MAX_CORES * 1000).then_some(Self(millicores))
    }

    pub fn millicores(self) -> u32 {
        self.0
    }

    pub fn cores(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// Whole processors to give a container or VM: `1.5` cores needs 2.
    pub fn whole_cores_ceil(self) -> u32 {
        self.0.div_ceil(1000)
    }
}

impl fmt::Display for CpuCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// Parses a CPU count written as text: `2`, `1.5`, `0.25` or Kubernetes millicores `250m`.
pub fn parse_cpu(text: &str) -> Result<CpuCount, QuantityError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    if text.starts_with('-') {
        return Err(QuantityError::Negative);
    }
    let millicores = if let Some(milli) = text.strip_suffix('m') {
        let value = Decimal::parse(milli)?;
        if value.scale > 0 {
            return Err(QuantityError::TooPrecise("one millicore"));
        }
        value.mantissa
    } else {
        if text.contains(['e', 'E']) && text.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(QuantityError::Exponent);
        }
        let value = Decimal::parse(text)?;
        let scaled = value
            .mantissa
            .checked_mul(1000)
            .ok_or(QuantityError::Overflow)?;
        let divisor = 10u128.pow(value.scale);
        if scaled % divisor != 0 {
            return Err(QuantityError::TooPrecise("a thousandth of a core"));
        }
        scaled / divisor
    };
    cpu_from_millicores(millicores)
}

/// Accepts a CPU count that YAML already typed as a number (`cpu: 1.5`).
pub fn cpu_from_f64(cores: f64) -> Result<CpuCount, QuantityError> {
    if cores.is_nan() {
        return Err(QuantityError::NotANumber);
    }
    if cores < 0.0 {
        return Err(QuantityError::Negative);
    }
    if cores > f64::from(CpuCount::MAX_CORES) {
        return Err(QuantityError::TooManyCores(CpuCount::MAX_CORES));
    }
    let millis = cores * 1000.0;
    let rounded = millis.round();
    if (millis - rounded).abs() > 1e-6 {
        return Err(QuantityError::TooPrecise("a thousandth of a core"));
    }
    // In range: 0 ..= MAX_CORES * 1000 after the checks above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    cpu_from_millicores(u128::from(rounded as u32))
}

fn cpu_from_millicores(millicores: u128) -> Result<CpuCount, QuantityError> {
    if millicores == 0 {
        return Err(QuantityError::Zero);
    }
    u32::try_from(millicores)
        .ok()
        .and_then(CpuCount::from_millicores)
        .ok_or(QuantityError::TooManyCores(CpuCount::MAX_CORES))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KI: u64 = 1 << 10;
    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;

    #[test]
    fn memory_accepts_binary_decimal_fractional_and_bare_bytes() {
        let cases: &[(&str, u64)] = &[
            ("512Mi", 512 * MI),
            ("2Gi", 2 * GI),
            ("1G", 1_000_000_000),
            ("1k", 1000),
            ("1K", 1000),
            ("64Ki", 64 * KI),
            ("1.5Gi", 3 * GI / 2),
            ("0.5Mi", MI / 2),
            ("1048576", MI),
            ("1", 1),
            (" 2Gi ", 2 * GI),
            ("15Ei", 15 << 60),
            // Fractions of a byte round up rather than silently to zero.
            ("0.1", 1),
            ("1.0000001Ki", 1025),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                parse_memory(text).map(MemorySize::bytes),
                Ok(*bytes),
                "{text}"
            );
        }
    }

    #[test]
    fn memory_refuses_every_bad_form_with_its_reason() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::Empty),
            ("   ", QuantityError::Empty),
            ("0", QuantityError::Zero),
            ("0Mi", QuantityError::Zero),
            ("0.0Gi", QuantityError::Zero),
            ("-1Gi", QuantityError::Negative),
            ("16Ei", QuantityError::Overflow),
            (
                "99999999999999999999999999999999999999999",
                QuantityError::Overflow,
            ),
            ("1e3", QuantityError::Exponent),
            ("1E9", QuantityError::Exponent),
            ("512m", QuantityError::AmbiguousUnit("m".into())),
            ("2g", QuantityError::AmbiguousUnit("g".into())),
            ("2GB", QuantityError::AmbiguousUnit("GB".into())),
            ("2Xi", QuantityError::UnknownUnit("Xi".into())),
            // Cyrillic "М" looks like M but is not a unit.
            ("512\u{41c}i", QuantityError::UnknownUnit("\u{41c}i".into())),
            // Full-width digits are digits to Unicode, not to a size.
            ("\u{ff15}\u{ff11}\u{ff12}Mi", QuantityError::NotANumber),
            ("Mi", QuantityError::NotANumber),
            ("1.Gi", QuantityError::NotANumber),
            (".5Gi", QuantityError::NotANumber),
            ("1.2.3Gi", QuantityError::NotANumber),
            ("1 Gi", QuantityError::Space),
            (
                "1.0000000001Gi",
                QuantityError::TooPrecise("nine decimal places"),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(parse_memory(text), Err(error.clone()), "{text:?}");
        }
    }

    #[test]
    fn memory_displays_in_the_largest_exact_binary_unit() {
        assert_eq!(parse_memory("2048Mi").unwrap().to_string(), "2Gi");
        assert_eq!(parse_memory("1G").unwrap().to_string(), "1000000000");
        assert_eq!(parse_memory("1536Ki").unwrap().to_string(), "1536Ki");
        assert_eq!(parse_memory("1.5Gi").unwrap().mebibytes_ceil(), 1536);
        assert_eq!(parse_memory("1").unwrap().mebibytes_ceil(), 1);
    }

    #[test]
    fn cpu_text_accepts_decimals_and_millicores() {
        let cases: &[(&str, u32)] = &[
            ("2", 2000),
            ("1.5", 1500),
            ("0.25", 250),
            ("0.001", 1),
            ("250m", 250),
            ("1024", 1_024_000),
            ("1.500", 1500),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_cpu(text).map(CpuCount::millicores),
                Ok(*millis),
                "{text}"
            );
        }
    }

    #[test]
    fn cpu_text_refuses_every_bad_form() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::Empty),
            ("0", QuantityError::Zero),
            ("0m", QuantityError::Zero),
            ("-1", QuantityError::Negative),
            ("1e3", QuantityError::Exponent),
            ("1025", QuantityError::TooManyCores(1024)),
            (
                "99999999999999999999999999999999999999",
                QuantityError::Overflow,
            ),
            (
                "0.0001",
                QuantityError::TooPrecise("a thousandth of a core"),
            ),
            ("1.5m", QuantityError::TooPrecise("one millicore")),
            ("two", QuantityError::NotANumber),
            ("\u{0662}", QuantityError::NotANumber),
            ("1.", QuantityError::NotANumber),
        ];
        for (text, error) in cases {
            assert_eq!(parse_cpu(text), Err(error.clone()), "{text:?}");
        }
    }

    #[test]
    fn cpu_numbers_from_yaml() {
        assert_eq!(cpu_from_f64(1.5).map(CpuCount::millicores), Ok(1500));
        assert_eq!(cpu_from_f64(1e3).map(CpuCount::millicores), Ok(1_000_000));
        assert_eq!(cpu_from_f64(0.0), Err(QuantityError::Zero));
        assert_eq!(cpu_from_f64(-0.5), Err(QuantityError::Negative));
        assert_eq!(cpu_from_f64(f64::NAN), Err(QuantityError::NotANumber));
        assert_eq!(
            cpu_from_f64(f64::INFINITY),
            Err(QuantityError::TooManyCores(1024))
        );
        assert_eq!(cpu_from_f64(1e300), Err(QuantityError::TooManyCores(1024)));
        assert_eq!(
            cpu_from_f64(0.3333),
            Err(QuantityError::TooPrecise("a thousandth of a core"))
        );
    }

    #[test]
    fn cpu_rounds_up_to_whole_processors() {
        assert_eq!(parse_cpu("1.5").unwrap().whole_cores_ceil(), 2);
        assert_eq!(parse_cpu("250m").unwrap().whole_cores_ceil(), 1);
        assert_eq!(parse_cpu("4").unwrap().whole_cores_ceil(), 4);
        assert_eq!(parse_cpu("250m").unwrap().to_string(), "250m");
        assert_eq!(parse_cpu("3").unwrap().to_string(), "3");
    }
}
