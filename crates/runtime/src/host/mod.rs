//! What this machine can do: its OS, its Windows build, and whether HCS is usable here.

use std::fmt;

use pane_spec::OsVersion;
use serde::Serialize;

#[cfg(windows)]
pub mod silo;
#[cfg(windows)]
mod windows;

/// Facts about the host that decide what pane can do on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// `windows`, `linux`, … as Rust names the target OS.
    pub os: &'static str,
    pub arch: &'static str,
    /// The Windows build, when this is Windows and it could be read.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_display"
    )]
    pub os_version: Option<OsVersion>,
    /// `Windows Server 2022 Datacenter` and the like, from the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    pub hcs: HcsSupport,
}

/// Whether the Host Compute Service can be called, and if not, why and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HcsSupport {
    Available,
    Unavailable { reason: String, fix: String },
}

impl fmt::Display for HcsSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HcsSupport::Available => f.write_str("usable"),
            HcsSupport::Unavailable { reason, fix } => write!(f, "not usable: {reason}; {fix}"),
        }
    }
}

/// Reads the host's facts. Never fails: what cannot be read is reported as unknown.
pub fn probe() -> HostInfo {
    #[cfg(windows)]
    {
        windows::probe()
    }
    #[cfg(not(windows))]
    {
        HostInfo {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            os_version: None,
            product_name: None,
            hcs: HcsSupport::Unavailable {
                reason: format!(
                    "this is a {} host; HCS exists only on Windows",
                    std::env::consts::OS
                ),
                fix: "run containers on Windows Server 2019 or later, or Windows 10/11, with the \
                      Containers feature; `pane spec check` works everywhere"
                    .to_owned(),
            },
        }
    }
}

/// The host's display adapters; `None` where they cannot be enumerated (off Windows).
pub fn gpu_adapters() -> Option<Result<Vec<crate::gpu::GpuAdapter>, String>> {
    #[cfg(windows)]
    {
        Some(windows::gpu_adapters())
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// Logical processors on this host across all processor groups (hcsshim's
/// `processorinfo.ProcessorCount`); elsewhere what the standard library sees.
///
/// hcsshim clamps a utility VM against HCS's processor topology instead, which also
/// counts the processors a "minroot" host keeps from its own partition; pane has no binding
/// for that query yet and clamps both containers and VMs against this count, so on such a
/// host a VM may get fewer processors than hcsshim would give it.
pub fn processor_count() -> u32 {
    #[cfg(windows)]
    if let Some(count) = windows::processor_count() {
        return count;
    }
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// The zone this host keeps its clock in, which utility VMs inherit; UTC where it cannot be
/// read (and off Windows, where no utility VM runs).
pub fn time_zone() -> pane_gcs::messages::TimeZoneInformation {
    #[cfg(windows)]
    if let Some(zone) = windows::time_zone() {
        return zone;
    }
    pane_gcs::messages::TimeZoneInformation::utc()
}

// serde's `serialize_with` hands the field by reference, so the signature is fixed.
#[allow(clippy::ref_option)]
fn opt_display<S: serde::Serializer, T: fmt::Display>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_this_process_platform() {
        let host = probe();
        assert_eq!(host.os, std::env::consts::OS);
        assert_eq!(host.arch, std::env::consts::ARCH);
        if cfg!(not(windows)) {
            assert!(matches!(host.hcs, HcsSupport::Unavailable { .. }));
            assert_eq!(host.os_version, None);
        }
    }
}
