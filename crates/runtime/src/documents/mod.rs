//! The documents pane sends the host, built here and only here, for both a create and
//! `pane plan` (so a plan is byte for byte what a create sends, given the same host facts):
//!
//! - [`workload`]: the workload's process (command line, environment, directory, user);
//! - [`process`]: the process-isolated container's compute-system document;
//! - [`hyperv`]: the utility VM, its shares, scratch and network adapters, and the container
//!   hosted in it;
//! - [`host_files`]: what only the host's file system can answer (mount source kinds, which
//!   layer carries a utility VM), asked behind a trait so a plan off the host asks the same.
//!
//! Nothing here touches the host: the builders are pure over their inputs.

use crate::error::RuntimeError;

pub mod host_files;
pub mod hyperv;
pub mod process;
pub mod workload;

/// `base` joined with `parts` in the host's own spelling: a Windows path (a plan made off
/// Windows describes a Windows host) joins with `\`, any other with this system's separator.
pub fn host_path(base: &str, parts: &[&str]) -> String {
    let windows = cfg!(windows) || base.contains('\\') || base.as_bytes().get(1) == Some(&b':');
    let separator = if windows { '\\' } else { '/' };
    let mut path = base.trim_end_matches(separator).to_owned();
    for part in parts {
        path.push(separator);
        path.push_str(part);
    }
    path
}

/// A mount whose source the host cannot use, named by its place in the spec.
pub(crate) fn mount_error(index: usize, reason: String) -> RuntimeError {
    RuntimeError::invalid(
        format!("mounts[{index}].source"),
        reason,
        "mount a file or folder that exists on the host",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_keep_the_hosts_spelling() {
        assert_eq!(
            host_path(
                r"C:\ProgramData\pane\containers\web-1",
                &["vm", "sandbox.vhdx"]
            ),
            r"C:\ProgramData\pane\containers\web-1\vm\sandbox.vhdx"
        );
        assert_eq!(
            host_path(r"C:\layers\a\", &["UtilityVM"]),
            r"C:\layers\a\UtilityVM"
        );
        if cfg!(not(windows)) {
            assert_eq!(host_path("/tmp/c", &["scratch"]), "/tmp/c/scratch");
        }
    }
}
