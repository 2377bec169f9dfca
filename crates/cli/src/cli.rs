//! The command line: every flag and subcommand, with the help text users learn from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pane",
    version,
    about = "Run Windows containers on the Host Compute Service",
    long_about = "Run Windows containers on the Host Compute Service (HCS).\n\n\
        pane pulls Windows images, runs them process-isolated or in Hyper-V utility VMs, \
        and manages their lifecycle. Service specs are YAML files; see examples/ in the \
        source tree.",
    after_help = "Examples:\n  \
        pane spec check app.yaml        Validate a spec and list every problem\n  \
        pane --json version             What this host supports, as JSON"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory that holds all of pane's state (images, layers, containers).
    ///
    /// Separate roots keep separate stores, e.g. for tests or a second daemon.
    #[arg(long, global = true, env = "PANE_ROOT", value_name = "DIR", default_value_os_t = default_root())]
    pub root: PathBuf,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log more: -v for debug, -vv for trace (to stderr).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Log less: -q for errors only, -qq for nothing.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// Owner tag put on every compute system (the daemon name). Instances with different
    /// owners (and roots) share a host without touching each other's containers.
    #[arg(
        long,
        global = true,
        env = "PANE_OWNER",
        value_name = "NAME",
        default_value = "pane"
    )]
    pub owner: String,

    /// Seconds to wait for a registry's next bytes (connect, headers, each read of a body)
    /// before the pull fails; a document must also arrive within 4 times this.
    #[arg(
        long,
        global = true,
        env = "PANE_REGISTRY_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub registry_timeout: u64,

    /// Directory of CNI network configurations (`*.conflist`, `*.conf`); a spec's
    /// `networks:` entry that names one joins it through its plugins. Default:
    /// `<root>/cni/conf`.
    #[arg(long, global = true, env = "PANE_CNI_CONF_DIR", value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,

    /// Directory of CNI plugin binaries (`CNI_PATH`); repeat for several. Default:
    /// `<root>/cni/bin`.
    #[arg(
        long,
        global = true,
        env = "PANE_CNI_BIN_DIR",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub cni_bin_dir: Vec<PathBuf>,

    /// Also use containerd's CNI directories (`C:\Program Files\containerd\cni\conf`
    /// and `\bin`), after pane's own: for a node whose network add-on (Flannel, Calico,
    /// Antrea) installed its configuration for containerd.
    #[arg(long, global = true, env = "PANE_CNI_CONTAINERD")]
    pub cni_containerd: bool,

    /// This node's slice of the cluster CIDR (`10.200.3.0/24`). The overlay network
    /// (`<owner>-overlay`) and CNI networks whose `host-local` IPAM says
    /// `"nodeSlice": true` give containers addresses from it.
    #[arg(long, global = true, env = "PANE_NODE_SLICE", value_name = "CIDR")]
    pub node_slice: Option<pane_net::NodeSlice>,
}

impl GlobalArgs {
    /// The flags a child `pane` (a detached container's supervisor) needs to see the
    /// same networks.
    pub fn network_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        if let Some(dir) = &self.cni_conf_dir {
            args.push("--cni-conf-dir".into());
            args.push(dir.clone().into_os_string());
        }
        for dir in &self.cni_bin_dir {
            args.push("--cni-bin-dir".into());
            args.push(dir.clone().into_os_string());
        }
        if self.cni_containerd {
            args.push("--cni-containerd".into());
        }
        if let Some(slice) = &self.node_slice {
            args.push("--node-slice".into());
            args.push(slice.to_string().into());
        }
        args
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with service spec files.
    Spec {
        #[command(subcommand)]
        command: SpecCommand,
    },
    /// Pull an image from a registry into the local store, choosing the build for this host.
    Pull(PullArgs),
    /// List the images in the local store.
    Images,
    /// Remove image references, and the data no other image uses.
    Rmi(RmiArgs),
    /// Give an image another reference.
    Tag(TagArgs),
    /// Manage images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Show every step pane would take to run a spec, with each HCS document and guest
    /// request in full. Needs no Windows host.
    Plan(PlanArgs),
    /// Create a container and run it: pull if needed, start, show its output until it
    /// ends (Ctrl-C stops it gracefully). The exit code is the workload's.
    Run(RunArgs),
    /// Create a container without starting it; prints its id.
    Create(CreateArgs),
    /// Start created containers in the background.
    Start(IdsArgs),
    /// Stop running containers: a graceful shutdown, then termination after the timeout.
    Stop(StopArgs),
    /// Send a signal to a container's workload.
    Kill(KillArgs),
    /// Remove containers and everything they hold on the host.
    Rm(RmArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show a container's output (and its execs').
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Connect the terminal to a detached container's workload: its output live, and
    /// its input when it was created with -i. The detach keys leave it running.
    Attach(AttachArgs),
    /// Show CPU and memory use of running containers.
    Stats(IdsArgs),
    /// Show everything pane knows about a container, including the HCS documents it sent.
    Inspect(IdsArgs),
    /// Wait for containers to end and print their exit codes.
    Wait(IdsArgs),
    /// List and inspect the networks containers can join (CNI and HCN).
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Clean up after a crash: watch running containers again, finish interrupted creates
    /// and removes, and terminate compute systems of this owner that no container record
    /// knows. Run it when no other pane command is creating or removing containers.
    Reconcile,
    /// Holds a detached container's workload and copies its output into the log (started
    /// by `pane start` and `pane run -d`; not for direct use).
    #[command(hide = true)]
    Supervise(SuperviseArgs),
    /// Show pane's version and what this host supports (Windows build, HCS).
    Version,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// The CNI networks in the configuration directories and this host's HCN networks,
    /// with their type and subnet.
    #[command(alias = "list")]
    Ls,
    /// One network in full: its configuration as the plugins get it, the addresses
    /// handed out and the containers attached.
    Inspect(NetworkInspectArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  pane network inspect pane-overlay")]
pub struct NetworkInspectArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// What to run: a spec file or an image, and how.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A service spec file (`.yaml`), or an image reference.
    #[arg(value_name = "SPEC|IMAGE")]
    pub source: String,

    /// The command and its arguments, replacing the spec's or image's.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    /// Container name (the service part of SERVICE-REPLICA); by default the spec file's
    /// stem or the image's last path segment.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The service to run from a deployment file with several.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Environment variables, added to (and overriding) the spec's.
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// Override the spec's isolation.
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,

    /// When to contact the registry: always, if-not-present, never.
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,

    /// The address to give the container on its first network (handed to the CNI
    /// plugins as the `ips` capability; must be free and inside the network's range).
    #[arg(long, value_name = "ADDRESS")]
    pub ip: Option<std::net::IpAddr>,

    /// Keep the workload's standard input open (the spec's `stdin_open: true`): `run -i`
    /// sends pane's input to it, and `pane attach` can later.
    #[arg(short, long)]
    pub interactive: bool,

    /// Give the workload a console (the spec's `tty: true`); with `run -it` the local
    /// terminal is in raw mode, so keys, Ctrl+C included, go to the container.
    #[arg(short, long)]
    pub tty: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    pane run mcr.microsoft.com/windows/nanoserver:ltsc2022 -- cmd /c echo hello\n  \
    pane run -d --name web app.yaml\n  \
    pane run --rm app.yaml")]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,

    /// Start it in the background and print its id.
    #[arg(short, long)]
    pub detach: bool,

    /// Remove the container when it ends.
    #[arg(long, conflicts_with = "detach")]
    pub rm: bool,

    /// The keys that leave a `run -it` container running and return to the shell:
    /// comma-separated, each a character or ctrl-<letter> (as docker takes them).
    #[arg(long, value_name = "KEYS", default_value = crate::terminal::DEFAULT_DETACH_KEYS)]
    pub detach_keys: crate::terminal::DetachKeys,

    /// Seconds Ctrl-C waits for a graceful stop before terminating.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub stop_timeout: u64,
}

#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Container ids (SERVICE-REPLICA, as `pane ps` shows them).
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,

    /// Seconds to wait for the graceful shutdown before terminating.
    #[arg(short, long, default_value_t = 10, value_name = "SECONDS")]
    pub time: u64,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,

    /// TERM (sent as `CtrlShutdown`), INT (`CtrlC`) or KILL (terminates it).
    #[arg(short, long, default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,

    /// Terminate running containers first.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every container, not only running ones.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// Keep printing new output until the container ends.
    #[arg(short, long)]
    pub follow: bool,

    /// Only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,

    /// Only lines since a time: RFC 3339 (`2026-11-29T10:00:00Z`) or an age (`90s`, `10m`, `2h`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Prefix each line with its timestamp.
    #[arg(short, long)]
    pub timestamps: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  pane exec web-1 -- cmd /c dir C:\\")]
pub struct ExecArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,

    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// User to run as (`ContainerUser`, `ContainerAdministrator`).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,

    /// Give the command a console of the terminal's size, following the window (its
    /// output then comes as one stream). With -i the terminal is in raw mode: keys, Ctrl+C
    /// included, go to the command; the detach keys leave it running.
    #[arg(short, long)]
    pub tty: bool,

    /// The keys that end pane's part of a -it session and leave the command running:
    /// comma-separated, each a character or ctrl-<letter> (as docker takes them).
    #[arg(long, value_name = "KEYS", default_value = crate::terminal::DEFAULT_DETACH_KEYS)]
    pub detach_keys: crate::terminal::DetachKeys,

    /// Feed pane's standard input to the command, then close it (`type data.csv | pane
    /// exec -i web-1 -- findstr error`). Streamed through the container's supervisor; read
    /// to the end first when pane reaches the container through HCS by name.
    #[arg(short, long)]
    pub interactive: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  pane run -d -it --name shell mcr.microsoft.com/windows/nanoserver:ltsc2022 -- cmd\n  \
    pane attach shell-1      (ctrl-p ctrl-q leaves it running)"
)]
pub struct AttachArgs {
    #[arg(value_name = "ID")]
    pub id: String,

    /// Only watch: pane's input does not go to the workload.
    #[arg(long)]
    pub no_stdin: bool,

    /// The keys that end the attachment and leave the container running.
    #[arg(long, value_name = "KEYS", default_value = crate::terminal::DEFAULT_DETACH_KEYS)]
    pub detach_keys: crate::terminal::DetachKeys,
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// Create the container first, from the request `pane run` writes to stdin.
    #[arg(long, hide = true)]
    pub create: bool,
    #[arg(value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    pane plan examples/nanoserver-batch.yaml --image-layout examples/images/nanoserver-demo \\\n      \
    --host-build 10.0.26100")]
pub struct PlanArgs {
    /// The spec: a deployment or a single service.
    #[arg(value_name = "SPEC")]
    pub file: PathBuf,

    /// Take the image from this OCI image layout instead of the local store.
    #[arg(long, value_name = "DIR")]
    pub image_layout: Option<PathBuf>,

    /// Plan for a host of this Windows build, e.g. 10.0.20348 (default: this host's).
    #[arg(long, env = "PANE_HOST_BUILD", value_name = "VERSION")]
    pub host_build: Option<String>,

    /// Override the spec's isolation.
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,

    /// Only this service of a deployment.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Replica number for the container id (SERVICE-REPLICA).
    #[arg(long, default_value_t = 1)]
    pub replica: u32,

    /// The host's display adapters as JSON (`[{description, vendor_id, device_id, luid}]`),
    /// to plan GPU selection off Windows.
    #[arg(long, value_name = "FILE")]
    pub gpu_adapters: Option<PathBuf>,

    /// Logical processors of the host in all processor groups, for CPU limits and clamping
    /// (default: this host's on Windows, else 4).
    #[arg(long, value_name = "N")]
    pub host_processors: Option<u32>,

    /// Leave the documents out of the text output.
    #[arg(long)]
    pub brief: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IsolationArg {
    Process,
    Hyperv,
}

impl From<IsolationArg> for pane_spec::IsolationMode {
    fn from(value: IsolationArg) -> Self {
        match value {
            IsolationArg::Process => pane_spec::IsolationMode::Process,
            IsolationArg::Hyperv => pane_spec::IsolationMode::Hyperv,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Delete stored data that no image reference uses.
    Prune,
    /// Import an image from an OCI image layout directory (no registry needed).
    Load(LoadArgs),
    /// Export an image to an OCI image layout directory.
    Save(SaveArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The image's tag in the layout (its `org.opencontainers.image.ref.name`); needed
    /// when the layout holds several images.
    #[arg(long)]
    pub tag: Option<String>,
    /// Store it under this reference (default: the layout's name for it).
    #[arg(long = "as", value_name = "REFERENCE")]
    pub reference: Option<String>,
    /// Choose the image build for a host of this Windows build (default: this host's).
    #[arg(long, env = "PANE_HOST_BUILD", value_name = "VERSION")]
    pub host_build: Option<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    pane pull mcr.microsoft.com/windows/nanoserver:ltsc2022\n  \
    pane pull --host-build 10.0.26100 registry.example.com:5000/team/app:1.4\n  \
    PANE_REGISTRY=registry.example.com:5000 PANE_REGISTRY_USERNAME=bot PANE_REGISTRY_PASSWORD=… \\\n    \
    pane pull registry.example.com:5000/team/app:1.4\n\n\
Credentials: the spec's image.auth, then PANE_REGISTRY_USERNAME/PANE_REGISTRY_PASSWORD for the \
one registry PANE_REGISTRY names, then the Docker config (credHelpers, credsStore, auths).")]
pub struct PullArgs {
    /// The image, e.g. mcr.microsoft.com/windows/servercore:ltsc2022.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,

    /// Choose the image build for a host of this Windows build (default: this host's).
    #[arg(long, env = "PANE_HOST_BUILD", value_name = "VERSION")]
    pub host_build: Option<String>,

    /// Reach this registry (host:port) over plain HTTP; loopback registries always are.
    #[arg(long, value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,

    /// Layers downloaded at once.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub concurrency: usize,

    /// Fetch non-distributable (foreign) layers from the URLs their manifest names.
    #[arg(long)]
    pub allow_nondistributable_artifacts: bool,

    /// Docker config with registry credentials (default: ~/.docker/config.json); its
    /// `credHelpers` and `credsStore` helpers are run as Docker runs them.
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true, value_name = "REFERENCE")]
    pub references: Vec<String>,
    /// Remove the references even when containers were made from their images; the blobs
    /// and layers those containers use stay until the containers are removed.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE")]
    pub source: String,
    #[arg(value_name = "TARGET")]
    pub target: String,
}

#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Validate spec files and print every problem with its location and fix.
    ///
    /// Exits 0 when every file is valid, 2 when any file has problems, and 1 when a file
    /// cannot be read.
    Check(SpecCheckArgs),
}

#[derive(Debug, Args)]
pub struct SpecCheckArgs {
    /// Spec files: a deployment (`version`, `deployment`, `services`) or a single service.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `%ProgramData%\pane` on Windows, `/var/lib/pane` elsewhere.
fn default_root() -> PathBuf {
    if cfg!(windows) {
        let program_data = std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
        program_data.join("pane")
    } else {
        PathBuf::from("/var/lib/pane")
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["pane", "version", "--json", "--root", "/tmp/x", "-vv"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.root, PathBuf::from("/tmp/x"));
        assert_eq!(cli.global.verbose, 2);
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        assert!(Cli::try_parse_from(["pane", "-v", "-q", "version"]).is_err());
    }

    #[test]
    fn spec_check_needs_a_file() {
        assert!(Cli::try_parse_from(["pane", "spec", "check"]).is_err());
    }
}
