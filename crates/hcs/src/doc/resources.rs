//! CPU and memory from a spec, in the units each document takes.

use pane_spec::{CpuCount, MemorySize};

use crate::schema::{Memory, Processor};

/// hcsshim's utility VM defaults.
pub const UVM_DEFAULT_MEMORY_MB: u64 = 1024;
pub const UVM_DEFAULT_PROCESSORS: u32 = 2;

/// Whole cores become `Count`; a fraction becomes `Maximum`, the share of all host
/// processors in 1/10000 (1.5 cores of 4 is 3750), since Count cannot express it.
pub fn container_processor(cpu: Option<CpuCount>, host_processors: u32) -> Option<Processor> {
    let cpu = cpu?;
    if cpu.millicores().is_multiple_of(1000) {
        return Some(Processor {
            count: Some(cpu.whole_cores_ceil()),
            ..Processor::default()
        });
    }
    let host_millicores = u64::from(host_processors.max(1)) * 1000;
    let maximum = (u64::from(cpu.millicores()) * 10_000)
        .div_ceil(host_millicores)
        .clamp(1, 10_000);
    Some(Processor {
        maximum: u32::try_from(maximum).ok(),
        ..Processor::default()
    })
}

pub fn container_memory(memory: Option<MemorySize>) -> Option<Memory> {
    memory.map(|m| Memory {
        size_in_mb: Some(m.mebibytes_ceil()),
    })
}

/// The VM's processors: hcsshim's default, or the spec's cores rounded up.
pub fn uvm_processor_count(cpu: Option<CpuCount>) -> u32 {
    cpu.map_or(UVM_DEFAULT_PROCESSORS, CpuCount::whole_cores_ceil)
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

    #[test]
    fn whole_cores_are_a_count_fractions_a_maximum() {
        let p =
            |text: &str, host| container_processor(Some(parse_cpu(text).unwrap()), host).unwrap();
        assert_eq!(
            p("2", 8),
            Processor {
                count: Some(2),
                ..Processor::default()
            }
        );
        assert_eq!(
            p("1.5", 4),
            Processor {
                maximum: Some(3750),
                ..Processor::default()
            }
        );
        assert_eq!(
            p("250m", 8),
            Processor {
                maximum: Some(313),
                ..Processor::default()
            }
        );
        assert_eq!(
            p("1m", 1024),
            Processor {
                maximum: Some(1),
                ..Processor::default()
            }
        );
        assert_eq!(
            p("7.5", 4),
            Processor {
                maximum: Some(10_000),
                ..Processor::default()
            }
        );
        assert_eq!(container_processor(None, 4), None);
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
        assert_eq!(uvm_processor_count(None), 2);
        assert_eq!(uvm_processor_count(Some(parse_cpu("2.5").unwrap())), 3);
    }
}
