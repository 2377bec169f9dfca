use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// `HcsGetComputeSystemProperties`' query. An empty query returns the basic properties.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PropertyQuery {
    /// `Memory`, `Statistics`, `ProcessList`, `GuestConnection`, `SystemGUID`, …
    pub property_types: Option<Vec<String>>,
}

impl PropertyQuery {
    pub fn of(types: &[&str]) -> Self {
        Self {
            property_types: Some(types.iter().map(|t| (*t).to_owned()).collect()),
        }
    }
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Properties {
    pub id: Option<String>,
    pub system_type: Option<String>,
    pub runtime_os_type: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
    /// For a VM: the Hyper-V partition GUID, which is the hvsock VM id.
    pub runtime_id: Option<String>,
    #[serde(rename = "SystemGUID")]
    pub system_guid: Option<String>,
    pub state: Option<String>,
    pub stopped: Option<bool>,
    pub exit_type: Option<String>,
    pub statistics: Option<Statistics>,
    pub process_list: Option<Vec<ProcessDetails>>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statistics {
    pub timestamp: Option<String>,
    pub container_start_time: Option<String>,
    #[serde(rename = "Uptime100ns")]
    pub uptime_100ns: Option<u64>,
    pub processor: Option<ProcessorStats>,
    pub memory: Option<MemoryStats>,
    pub storage: Option<StorageStats>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessorStats {
    #[serde(rename = "TotalRuntime100ns")]
    pub total_runtime_100ns: Option<u64>,
    #[serde(rename = "RuntimeUser100ns")]
    pub runtime_user_100ns: Option<u64>,
    #[serde(rename = "RuntimeKernel100ns")]
    pub runtime_kernel_100ns: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemoryStats {
    pub memory_usage_commit_bytes: Option<u64>,
    pub memory_usage_commit_peak_bytes: Option<u64>,
    pub memory_usage_private_working_set_bytes: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageStats {
    pub read_count_normalized: Option<u64>,
    pub read_size_bytes: Option<u64>,
    pub write_count_normalized: Option<u64>,
    pub write_size_bytes: Option<u64>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessDetails {
    pub process_id: Option<u32>,
    pub image_name: Option<String>,
    pub create_timestamp: Option<String>,
    #[serde(rename = "UserTime100ns")]
    pub user_time_100ns: Option<u64>,
    #[serde(rename = "KernelTime100ns")]
    pub kernel_time_100ns: Option<u64>,
    pub memory_commit_bytes: Option<u64>,
    pub memory_working_set_private_bytes: Option<u64>,
    pub memory_working_set_shared_bytes: Option<u64>,
}

impl Statistics {
    /// CPU time in microseconds (HCS counts 100 ns units).
    pub fn cpu_usage_usec(&self) -> u64 {
        self.processor
            .and_then(|p| p.total_runtime_100ns)
            .unwrap_or(0)
            / 10
    }

    pub fn private_working_set_bytes(&self) -> u64 {
        self.memory
            .and_then(|m| m.memory_usage_private_working_set_bytes)
            .unwrap_or(0)
    }
}
