//! Choosing which host GPUs a container gets.

use std::fmt;

use pane_spec::{GpuSharing, GpuSpec, GpuVendor};
use serde::{Deserialize, Serialize};

use crate::isolation::Isolation;

/// PCI vendor ids of the vendors a spec can name.
pub const VENDOR_NVIDIA: u32 = 0x10de;
pub const VENDOR_AMD: u32 = 0x1002;
pub const VENDOR_INTEL: u32 = 0x8086;
/// Microsoft Basic Render Driver: the software rasteriser, present on every host, never a GPU.
pub const VENDOR_MICROSOFT_BASIC_RENDER: u32 = 0x1414;

/// A display adapter as DXGI enumerates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuAdapter {
    /// The adapter's description, e.g. `NVIDIA RTX A6000`.
    pub description: String,
    pub vendor_id: u32,
    pub device_id: u32,
    /// The adapter's locally unique id, as Windows splits it.
    pub luid: Luid,
    /// The device-interface path (`\\?\PCI#VEN_…`), when the host reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Luid {
    pub low_part: u32,
    pub high_part: i32,
}

/// The PCI vendor id a spec's vendor stands for; `None` matches any vendor.
pub fn vendor_id(vendor: GpuVendor) -> Option<u32> {
    match vendor {
        GpuVendor::All => None,
        GpuVendor::Nvidia => Some(VENDOR_NVIDIA),
        GpuVendor::Amd => Some(VENDOR_AMD),
        GpuVendor::Intel => Some(VENDOR_INTEL),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error(
        "GPU sharing `mps` needs the host's NVIDIA driver and cannot work inside a Hyper-V utility VM; \
         use `isolation: process` or `sharing: exclusive`"
    )]
    MpsUnderHyperv,
    #[error("no GPU on this host matches {wanted}; adapters here: {available}")]
    NoMatch { wanted: String, available: String },
    #[error(
        "the spec asks for {requested} GPU(s) matching {wanted}, but only {found} match; lower `resources.gpu.count`"
    )]
    TooFew {
        requested: u32,
        found: usize,
        wanted: String,
    },
}

/// The adapters a container gets: real GPUs of the wanted vendor whose description contains
/// the wanted model, in enumeration order, `count` of them (0 is read as 1).
pub fn select_gpus(
    adapters: &[GpuAdapter],
    spec: &GpuSpec,
    isolation: Isolation,
) -> Result<Vec<GpuAdapter>, GpuError> {
    if spec.sharing == GpuSharing::Mps && isolation == Isolation::Hyperv {
        return Err(GpuError::MpsUnderHyperv);
    }
    let wanted_vendor = vendor_id(spec.vendor);
    let wanted_model = spec
        .model
        .as_deref()
        .map(str::to_lowercase)
        .filter(|m| !m.is_empty());
    let matching: Vec<&GpuAdapter> = adapters
        .iter()
        .filter(|a| a.vendor_id != VENDOR_MICROSOFT_BASIC_RENDER)
        .filter(|a| wanted_vendor.is_none_or(|id| a.vendor_id == id))
        .filter(|a| {
            wanted_model
                .as_ref()
                .is_none_or(|model| a.description.to_lowercase().contains(model))
        })
        .collect();
    let requested = spec.count.max(1);
    let wanted = Wanted(spec).to_string();
    if matching.is_empty() {
        return Err(GpuError::NoMatch {
            wanted,
            available: describe_all(adapters),
        });
    }
    let requested_len = usize::try_from(requested).unwrap_or(usize::MAX);
    if matching.len() < requested_len {
        return Err(GpuError::TooFew {
            requested,
            found: matching.len(),
            wanted,
        });
    }
    Ok(matching.into_iter().take(requested_len).cloned().collect())
}

/// "vendor nvidia, model containing \"A6000\"" for messages.
struct Wanted<'a>(&'a GpuSpec);

impl fmt::Display for Wanted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match vendor_id(self.0.vendor) {
            Some(id) => write!(f, "vendor {} (0x{id:04x})", self.0.vendor.name())?,
            None => f.write_str("any vendor")?,
        }
        if let Some(model) = self.0.model.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ", model containing {model:?}")?;
        }
        Ok(())
    }
}

fn describe_all(adapters: &[GpuAdapter]) -> String {
    let real: Vec<String> = adapters
        .iter()
        .filter(|a| a.vendor_id != VENDOR_MICROSOFT_BASIC_RENDER)
        .map(|a| format!("{} (0x{:04x})", a.description, a.vendor_id))
        .collect();
    if real.is_empty() {
        "none".to_owned()
    } else {
        real.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(description: &str, vendor_id: u32, low_part: u32) -> GpuAdapter {
        GpuAdapter {
            description: description.into(),
            vendor_id,
            device_id: 0,
            luid: Luid {
                low_part,
                high_part: 0,
            },
            device_path: None,
        }
    }

    fn host() -> Vec<GpuAdapter> {
        vec![
            adapter(
                "Microsoft Basic Render Driver",
                VENDOR_MICROSOFT_BASIC_RENDER,
                1,
            ),
            adapter("NVIDIA RTX A6000", VENDOR_NVIDIA, 2),
            adapter("NVIDIA Tesla T4", VENDOR_NVIDIA, 3),
            adapter("AMD Radeon PRO W7800", VENDOR_AMD, 4),
            adapter("Intel(R) UHD Graphics 770", VENDOR_INTEL, 5),
            adapter("NVIDIA RTX A6000", VENDOR_NVIDIA, 6),
        ]
    }

    fn spec(count: u32, vendor: &str, model: Option<&str>, sharing: GpuSharing) -> GpuSpec {
        GpuSpec {
            count,
            vendor: GpuVendor::from_name(vendor).unwrap(),
            model: model.map(Into::into),
            sharing,
        }
    }

    fn chosen(result: Result<Vec<GpuAdapter>, GpuError>) -> Vec<u32> {
        result.unwrap().iter().map(|a| a.luid.low_part).collect()
    }

    #[test]
    fn decision_table() {
        use GpuSharing::{Exclusive, Mps, TimeSlice};
        // count, vendor, model, sharing, isolation → LUID low parts chosen
        type Row<'a> = (
            u32,
            &'a str,
            Option<&'a str>,
            GpuSharing,
            Isolation,
            &'a [u32],
        );
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // Vendor names map to PCI ids; Basic Render is never chosen.
            (1, "nvidia", None, Exclusive, Isolation::Process, &[2]),
            (1, "NVIDIA", None, Exclusive, Isolation::Process, &[2]),
            (1, "amd", None, Exclusive, Isolation::Process, &[4]),
            (1, "ati", None, Exclusive, Isolation::Process, &[4]),
            (1, "intel", None, Exclusive, Isolation::Process, &[5]),
            // `all` and empty mean any vendor.
            (1, "all", None, Exclusive, Isolation::Process, &[2]),
            (1, "", None, Exclusive, Isolation::Process, &[2]),
            (
                5,
                "all",
                None,
                Exclusive,
                Isolation::Process,
                &[2, 3, 4, 5, 6],
            ),
            // Model: case-insensitive substring; empty model is any.
            (1, "nvidia", Some("t4"), Exclusive, Isolation::Process, &[3]),
            (
                2,
                "nvidia",
                Some("a6000"),
                Exclusive,
                Isolation::Process,
                &[2, 6],
            ),
            (
                1,
                "all",
                Some("RADEON"),
                Exclusive,
                Isolation::Process,
                &[4],
            ),
            (1, "nvidia", Some(""), Exclusive, Isolation::Process, &[2]),
            // Count truncates; 0 means 1.
            (2, "nvidia", None, Exclusive, Isolation::Process, &[2, 3]),
            (0, "nvidia", None, Exclusive, Isolation::Process, &[2]),
            // MPS is fine on the host kernel; other sharing modes under Hyper-V too.
            (1, "nvidia", None, Mps, Isolation::Process, &[2]),
            (1, "nvidia", None, TimeSlice, Isolation::Hyperv, &[2]),
            (1, "nvidia", None, Exclusive, Isolation::Hyperv, &[2]),
        ];
        for (count, vendor, model, sharing, isolation, expected) in rows {
            let result = select_gpus(&host(), &spec(*count, vendor, *model, *sharing), *isolation);
            assert_eq!(
                chosen(result),
                *expected,
                "count={count} vendor={vendor} model={model:?} {sharing:?} {isolation}"
            );
        }
    }

    #[test]
    fn mps_is_refused_under_hyperv() {
        let err = select_gpus(
            &host(),
            &spec(1, "nvidia", None, GpuSharing::Mps),
            Isolation::Hyperv,
        )
        .unwrap_err();
        assert_eq!(err, GpuError::MpsUnderHyperv);
        assert!(err.to_string().contains("isolation: process"), "{err}");
    }

    #[test]
    fn no_match_lists_the_real_adapters() {
        let err = select_gpus(
            &host(),
            &spec(1, "nvidia", Some("H100"), GpuSharing::Exclusive),
            Isolation::Process,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, GpuError::NoMatch { .. }));
        assert!(message.contains("model containing \"H100\""), "{message}");
        assert!(message.contains("NVIDIA Tesla T4 (0x10de)"), "{message}");
        assert!(!message.contains("Basic Render"), "{message}");
    }

    #[test]
    fn only_basic_render_is_no_gpu_at_all() {
        let adapters = vec![adapter(
            "Microsoft Basic Render Driver",
            VENDOR_MICROSOFT_BASIC_RENDER,
            1,
        )];
        let err = select_gpus(
            &adapters,
            &spec(1, "all", None, GpuSharing::Exclusive),
            Isolation::Process,
        )
        .unwrap_err();
        assert!(err.to_string().ends_with("adapters here: none"), "{err}");
    }

    #[test]
    fn asking_for_more_than_match_is_an_error_not_a_silent_shortfall() {
        let err = select_gpus(
            &host(),
            &spec(4, "nvidia", None, GpuSharing::Exclusive),
            Isolation::Process,
        )
        .unwrap_err();
        assert_eq!(
            err,
            GpuError::TooFew {
                requested: 4,
                found: 3,
                wanted: "vendor nvidia (0x10de)".into()
            }
        );
    }
}
