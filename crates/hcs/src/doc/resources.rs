//! CPU and memory from a spec, in the units each document takes, fitted to the processors
//! that will run them.

use std::fmt;

use pane_spec::{CpuCount, MemorySize};

use crate::schema::{Memory, Processor, VirtualMachineProcessor};

/// hcsshim's utility VM defaults.
pub const UVM_DEFAULT_MEMORY_MB: u64 = 1024;
pub const UVM_DEFAULT_PROCESSORS: u32 = 2;

/// A container's `Processor.Maximum` is in 1/10000 of the processors it can see.
const CONTAINER_MAXIMUM_SCALE: u64 = 10_000;
/// A VM's `Processor.Limit` is in 1/100000 of each of its virtual processors (Hyper-V's
/// "percent / 1000": 100000, the default, is all of every vCPU).
const VM_LIMIT_SCALE: u64 = 100_000;

/// The spec asked for more processors than there are; the count given was lowered, as
/// hcsshim does (`NormalizeProcessorCount`) to stay compatible with Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuClamp {
    pub requested: CpuCount,
    /// What the container or VM gets instead: every processor there is.
    pub granted: u32,
    /// Whose processors: `host` or `utility VM`.
    pub of: &'static str,
}

impl fmt::Display for CpuClamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resources.cpu {} is more than the {} {} processor(s); using {}",
            self.requested, self.granted, self.of, self.granted
        )
    }
}

/// A document part and, when the spec's CPU did not fit, how it was lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted<T> {
    pub value: T,
    pub clamped: Option<CpuClamp>,
}

/// Whole cores on `processors` processors (at least one).
fn fit_count(cpu: CpuCount, processors: u32, of: &'static str) -> Fitted<u32> {
    let processors = processors.max(1);
    let wanted = cpu.whole_cores_ceil();
    Fitted {
        value: wanted.min(processors),
        clamped: (wanted > processors).then_some(CpuClamp {
            requested: cpu,
            granted: processors,
            of,
        }),
    }
}

/// `cpu` as a share of `processors`, in `scale` units, when it is less than all of them.
fn share_of(cpu: CpuCount, processors: u32, scale: u64) -> Option<u64> {
    let available = u64::from(processors.max(1)) * 1000;
    let wanted = u64::from(cpu.millicores());
    (wanted < available).then(|| (wanted * scale).div_ceil(available).max(1))
}

/// A container on `processors` processors (the host's, or its utility VM's). Whole cores
/// become `Count`, at most `processors`; a fraction becomes `Maximum`, the share of all
/// `processors` in 1/10000 (1.5 cores of 4 is 3750), since `Count` cannot express it.
fn container_processor_on(
    cpu: Option<CpuCount>,
    processors: u32,
    of: &'static str,
) -> Fitted<Option<Processor>> {
    let Some(cpu) = cpu else {
        return Fitted {
            value: None,
            clamped: None,
        };
    };
    if cpu.millicores().is_multiple_of(1000) {
        let count = fit_count(cpu, processors, of);
        return Fitted {
            value: Some(Processor {
                count: Some(count.value),
                ..Processor::default()
            }),
            clamped: count.clamped,
        };
    }
    match share_of(cpu, processors, CONTAINER_MAXIMUM_SCALE) {
        Some(maximum) => Fitted {
            value: Some(Processor {
                maximum: u32::try_from(maximum).ok(),
                ..Processor::default()
            }),
            clamped: None,
        },
        // More than there is: every processor, as a count.
        None => Fitted {
            value: Some(Processor {
                count: Some(processors.max(1)),
                ..Processor::default()
            }),
            clamped: Some(CpuClamp {
                requested: cpu,
                granted: processors.max(1),
                of,
            }),
        },
    }
}

/// A process-isolated container's processors, against all of the host's.
pub fn container_processor(
    cpu: Option<CpuCount>,
    host_processors: u32,
) -> Fitted<Option<Processor>> {
    container_processor_on(cpu, host_processors, "host")
}

/// A hosted container's processors, against its utility VM's (which already fit the
/// host), as hcsshim measures a hosted container's limits.
pub fn hosted_processor(cpu: Option<CpuCount>, vm_processors: u32) -> Option<Processor> {
    container_processor_on(cpu, vm_processors, "utility VM").value
}

/// The utility VM's processors: the spec's cores rounded up (hcsshim's default of 2, or 1
/// on a one-processor host, when it gives none), at most the host's. A fraction also caps
/// every vCPU with `Limit`, so `500m` is half of one vCPU and not a whole one.
pub fn uvm_processor(
    cpu: Option<CpuCount>,
    host_processors: u32,
) -> Fitted<VirtualMachineProcessor> {
    let Some(cpu) = cpu else {
        return Fitted {
            value: VirtualMachineProcessor {
                count: Some(UVM_DEFAULT_PROCESSORS.min(host_processors.max(1))),
                ..VirtualMachineProcessor::default()
            },
            clamped: None,
        };
    };
    let count = fit_count(cpu, host_processors, "host");
    Fitted {
        value: VirtualMachineProcessor {
            count: Some(count.value),
            limit: share_of(cpu, count.value, VM_LIMIT_SCALE),
            ..VirtualMachineProcessor::default()
        },
        clamped: count.clamped,
    }
}

pub fn container_memory(memory: Option<MemorySize>) -> Option<Memory> {
    memory.map(|m| Memory {
        size_in_mb: Some(m.mebibytes_ceil()),
    })
}

/// VM memory in MB, rounded up to an even number as hcsshim does.
pub fn uvm_memory_mb(memory: Option<MemorySize>) -> u64 {
    let mb = memory.map_or(UVM_DEFAULT_MEMORY_MB, MemorySize::mebibytes_ceil);
    mb + mb % 2
}

#[cfg(test)]
mod tests {
    use pane_spec::quantity::{parse_cpu, parse_memory};

    use super::*;

    fn cpu(text: &str) -> Option<CpuCount> {
        parse_cpu(text).ok()
    }

    fn count(n: u32) -> Processor {
        Processor {
            count: Some(n),
            ..Processor::default()
        }
    }

    fn maximum(n: u32) -> Processor {
        Processor {
            maximum: Some(n),
            ..Processor::default()
        }
    }

    #[test]
    fn whole_cores_are_a_count_fractions_a_maximum() {
        let p = |text: &str, host| container_processor(cpu(text), host).value;
        assert_eq!(p("2", 8), Some(count(2)));
        assert_eq!(p("1.5", 4), Some(maximum(3750)));
        assert_eq!(p("250m", 8), Some(maximum(313)));
        assert_eq!(p("1m", 1024), Some(maximum(1)));
        assert_eq!(container_processor(None, 4).value, None);
    }

    #[test]
    fn more_cores_than_the_host_has_are_clamped_and_said() {
        let eight = container_processor(cpu("8"), 4);
        assert_eq!(eight.value, Some(count(4)));
        let clamp = eight.clamped.unwrap();
        assert_eq!((clamp.granted, clamp.of), (4, "host"));
        assert!(clamp.to_string().contains("using 4"), "{clamp}");
        // A fraction above the host is every processor too, not a Maximum past 10000.
        let many = container_processor(cpu("7.5"), 4);
        assert_eq!(many.value, Some(count(4)));
        assert!(many.clamped.is_some());
        assert_eq!(container_processor(cpu("4"), 4).clamped, None);
    }

    #[test]
    fn the_utility_vm_fits_the_host_and_caps_fractions() {
        let vm = |text: Option<&str>, host| uvm_processor(text.and_then(cpu), host);
        assert_eq!(vm(None, 8).value.count, Some(2));
        assert_eq!(
            vm(None, 1).value.count,
            Some(1),
            "hcsshim: 1 on a 1-CPU host"
        );
        let eight = vm(Some("8"), 4);
        assert_eq!((eight.value.count, eight.value.limit), (Some(4), None));
        assert!(eight.clamped.is_some());
        // 500m: one vCPU at half; 1.5: two vCPUs at three quarters each.
        let half = vm(Some("500m"), 4).value;
        assert_eq!((half.count, half.limit), (Some(1), Some(50_000)));
        let one_and_a_half = vm(Some("1.5"), 4).value;
        assert_eq!(
            (one_and_a_half.count, one_and_a_half.limit),
            (Some(2), Some(75_000))
        );
        assert_eq!(vm(Some("2"), 4).value.limit, None);
    }

    #[test]
    fn a_hosted_container_is_measured_against_its_vm() {
        assert_eq!(hosted_processor(cpu("500m"), 1), Some(maximum(5000)));
        assert_eq!(hosted_processor(cpu("1.5"), 2), Some(maximum(7500)));
        assert_eq!(hosted_processor(cpu("4"), 4), Some(count(4)));
        assert_eq!(hosted_processor(None, 2), None);
    }

    #[test]
    fn memory_in_whole_mib_and_even_for_vms() {
        assert_eq!(
            container_memory(Some(parse_memory("1.5Gi").unwrap())),
            Some(Memory {
                size_in_mb: Some(1536)
            })
        );
        assert_eq!(
            container_memory(Some(parse_memory("1G").unwrap())),
            Some(Memory {
                size_in_mb: Some(954)
            })
        );
        assert_eq!(uvm_memory_mb(None), 1024);
        assert_eq!(uvm_memory_mb(Some(parse_memory("1025Mi").unwrap())), 1026);
    }
}
