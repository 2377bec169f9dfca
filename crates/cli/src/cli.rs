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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with service spec files.
    Spec {
        #[command(subcommand)]
        command: SpecCommand,
    },
    /// Show pane's version and what this host supports (Windows build, HCS).
    Version,
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
