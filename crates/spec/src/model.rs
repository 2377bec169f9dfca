//! The service spec as pane uses it after validation: every value here is already checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::quantity::{CpuCount, MemorySize};
use crate::reference::ImageReference;

/// A deployment file: `version`, `deployment` and named services.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentSpec {
    pub version: String,
    pub deployment: String,
    pub services: BTreeMap<String, ServiceSpec>,
}

/// One service: what to run, how, with which resources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub image: ImageSpec,
    #[serde(skip_serializing_if = "CommandSpec::is_empty")]
    pub command: CommandSpec,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub isolation: IsolationMode,
    /// The zone a Hyper-V container's utility VM keeps its clock in.
    #[serde(skip_serializing_if = "TimeZoneMode::is_host")]
    pub time_zone: TimeZoneMode,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// The workload gets a console (HCS `EmulateConsole`), as compose's `tty: true`;
    /// its output is then one stream.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// The workload's standard input stays open for `pane attach`, as compose's
    /// `stdin_open: true`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
}

impl ServiceSpec {
    /// A spec that runs `image` with every other field at its default.
    pub fn for_image(image: ImageReference) -> Self {
        Self {
            image: ImageSpec {
                name: image,
                pull_policy: PullPolicy::default(),
                auth: None,
            },
            command: CommandSpec::default(),
            env: BTreeMap::new(),
            user: None,
            hostname: None,
            isolation: IsolationMode::default(),
            time_zone: TimeZoneMode::default(),
            resources: Resources::default(),
            mounts: Vec::new(),
            ports: Vec::new(),
            networks: Vec::new(),
            tty: false,
            stdin_open: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSpec {
    #[serde(serialize_with = "as_display")]
    pub name: ImageReference,
    pub pull_policy: PullPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuthRef>,
}

/// When to contact the registry for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Always resolve the reference again, so a moved tag is picked up.
    Always,
    /// Use the local image when there is one (a cached `:latest` is not refreshed).
    #[default]
    IfNotPresent,
    /// Never contact a registry; the image must already be local.
    Never,
}

impl PullPolicy {
    pub const NAMES: [&'static str; 3] = ["always", "if_not_present", "never"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "always" => Some(Self::Always),
            "if_not_present" => Some(Self::IfNotPresent),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

/// Where registry credentials come from. Specs name a source, never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuthRef {
    /// Username and password read from these host environment variables at pull time.
    Env {
        username_env: String,
        password_env: String,
    },
    /// A Docker `config.json` (`auths`); `None` is the user's own `~/.docker/config.json`.
    DockerConfig { path: Option<PathBuf> },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CommandSpec {
    /// Replaces the image's entrypoint when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command (arguments) when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
}

impl CommandSpec {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// How a container is isolated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationMode {
    /// Process isolation when the image build matches the host, Hyper-V otherwise.
    #[default]
    Auto,
    /// Shares the host kernel; the image must be built for the host's Windows build.
    Process,
    /// Runs in its own utility VM; works across Windows builds.
    Hyperv,
}

impl IsolationMode {
    pub const NAMES: [&'static str; 3] = ["auto", "process", "hyperv"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "process" => Some(Self::Process),
            "hyperv" => Some(Self::Hyperv),
            _ => None,
        }
    }
}

/// The time zone of a Hyper-V container's utility VM. A process-isolated container shares
/// the host's kernel and so its clock and zone whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeZoneMode {
    /// The host's zone, as docker and containerd give their utility VMs.
    #[default]
    Host,
    /// Coordinated Universal Time, whatever the host's zone.
    Utc,
}

impl TimeZoneMode {
    pub const NAMES: [&'static str; 2] = ["host", "utc"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "host" => Some(Self::Host),
            "utc" => Some(Self::Utc),
            _ => None,
        }
    }

    pub fn is_host(&self) -> bool {
        *self == Self::Host
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Resources {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_as_display"
    )]
    pub cpu: Option<CpuCount>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_as_display"
    )]
    pub memory: Option<MemorySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
    /// The size of the container's writable (scratch) disk; at least
    /// [`Resources::MIN_STORAGE_BYTES`], since the disk is created at that size and can
    /// only grow.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_as_display"
    )]
    pub storage: Option<MemorySize>,
}

impl Resources {
    /// The size a Windows scratch disk is created at (20 GiB).
    pub const MIN_STORAGE_BYTES: u64 = 20 << 30;

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuSpec {
    /// Adapters wanted; 0 is read as 1 by GPU selection.
    pub count: u32,
    pub vendor: GpuVendor,
    /// Case-insensitive substring of the adapter description, e.g. `A6000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub sharing: GpuSharing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuVendor {
    /// Any vendor (`all`, or left out).
    #[default]
    All,
    Nvidia,
    Amd,
    Intel,
}

impl GpuVendor {
    pub const NAMES: [&'static str; 5] = ["all", "nvidia", "amd", "ati", "intel"];

    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Nvidia => "nvidia",
            Self::Amd => "amd",
            Self::Intel => "intel",
        }
    }

    /// Vendor names as users write them; `ati` is AMD's old brand and the same PCI vendor.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "" | "all" => Some(Self::All),
            "nvidia" => Some(Self::Nvidia),
            "amd" | "ati" => Some(Self::Amd),
            "intel" => Some(Self::Intel),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSharing {
    #[default]
    Exclusive,
    /// NVIDIA Multi-Process Service; needs the host's driver, so never under Hyper-V.
    Mps,
    TimeSlice,
}

impl GpuSharing {
    pub const NAMES: [&'static str; 3] = ["exclusive", "mps", "time_slice"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "exclusive" => Some(Self::Exclusive),
            "mps" => Some(Self::Mps),
            "time_slice" => Some(Self::TimeSlice),
            _ => None,
        }
    }
}

/// A host directory (or named pipe) made visible inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PortMapping {
    pub container_port: u16,
    /// `None` lets the host pick a free port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub const NAMES: [&'static str; 2] = ["tcp", "udp"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            _ => None,
        }
    }
}

/// Written back in the shape the spec accepts, so serialised specs parse again.
impl Serialize for RegistryAuthRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            RegistryAuthRef::DockerConfig { path: None } => s.serialize_str("docker_config"),
            RegistryAuthRef::DockerConfig { path: Some(path) } => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("docker_config", path)?;
                map.end()
            }
            RegistryAuthRef::Env {
                username_env,
                password_env,
            } => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("username_env", username_env)?;
                map.serialize_entry("password_env", password_env)?;
                map.end()
            }
        }
    }
}

fn as_display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

// serde's `serialize_with` hands the field by reference, so the signature is fixed.
#[allow(clippy::ref_option)]
fn opt_as_display<T: std::fmt::Display, S: Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
