//! The workload's process: what runs, with which environment, where and as whom.

use pane_hcs::command_line;
use pane_hcs::schema::ProcessParameters;
use pane_oci::ImageFacts;
use pane_spec::ServiceSpec;

use crate::error::RuntimeError;

/// Where the workload starts when neither the spec nor the image says: the drive root, as
/// containerd and hcsshim default it.
pub const DEFAULT_WORKING_DIRECTORY: &str = r"C:\";

/// Builds the init process from the spec over the image config, as Docker does: a spec
/// entrypoint replaces the image's and drops its cmd; spec args replace the cmd; the spec's
/// env is laid over the image's (names compared without case, as Windows does).
pub fn init_process(
    spec: &ServiceSpec,
    image: &ImageFacts,
) -> Result<ProcessParameters, RuntimeError> {
    let argv: Vec<String> = match (&spec.command.entrypoint, &spec.command.args) {
        (Some(entrypoint), args) => entrypoint
            .iter()
            .chain(args.iter().flatten())
            .cloned()
            .collect(),
        (None, Some(args)) => image.entrypoint.iter().chain(args).cloned().collect(),
        (None, None) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(RuntimeError::invalid(
            "command",
            format!(
                "the image {} has no entrypoint or cmd and the spec gives no command",
                image.reference
            ),
            "set command.entrypoint in the spec",
        ));
    }
    let mut environment: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    for (name, value) in &spec.env {
        match environment
            .iter_mut()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
        {
            Some(entry) => *entry = (name.clone(), value.clone()),
            None => environment.push((name.clone(), value.clone())),
        }
    }
    Ok(ProcessParameters {
        command_line: command_line::join(&argv),
        user: spec.user.clone().or_else(|| image.user.clone()),
        working_directory: Some(
            spec.command
                .workdir
                .clone()
                .or_else(|| image.working_dir.clone())
                .unwrap_or_else(|| DEFAULT_WORKING_DIRECTORY.to_owned()),
        ),
        // hcsshim passes no variable whose value is empty: `NAME=` unsets it, as in cmd.
        environment: environment
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .collect(),
        // `tty: true`: HCS gives the process a console, and with `EmulateConsole` a
        // standard-error pipe is ignored (errors share the console's output).
        emulate_console: spec.tty,
        create_std_in_pipe: spec.stdin_open,
        create_std_out_pipe: true,
        create_std_err_pipe: !spec.tty,
        ..ProcessParameters::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interactive_spec_gets_a_console_and_an_open_input() {
        let img = image(&["cmd"], &[]);
        let plain = init_process(&spec("image: nginx\n"), &img).unwrap();
        assert!(!plain.emulate_console && !plain.create_std_in_pipe && plain.create_std_err_pipe);
        let console =
            init_process(&spec("image: nginx\ntty: true\nstdin_open: true\n"), &img).unwrap();
        assert!(console.emulate_console && console.create_std_in_pipe);
        assert!(
            !console.create_std_err_pipe,
            "a console has one output stream"
        );
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageFacts {
        ImageFacts {
            reference: "img".into(),
            manifest_digest: "sha256:0".into(),
            os: "windows".into(),
            architecture: "amd64".into(),
            os_version: None,
            entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            env: vec!["PATH=C:\\Windows".into(), "MODE=image".into()],
            working_dir: Some(r"C:\app".into()),
            user: Some("ContainerUser".into()),
            layers: vec![],
            platform_note: None,
        }
    }

    fn spec(yaml: &str) -> ServiceSpec {
        pane_spec::parse_service(yaml).unwrap()
    }

    #[test]
    fn command_follows_docker_rules() {
        let img = image(&["server.exe"], &["--port", "80"]);
        let base = "image: nginx\n";
        let line = |yaml: &str| init_process(&spec(yaml), &img).unwrap().command_line;
        assert_eq!(line(base), "server.exe --port 80");
        assert_eq!(
            line("image: nginx\ncommand: {args: [--port, '8080']}\n"),
            "server.exe --port 8080"
        );
        assert_eq!(
            line("image: nginx\ncommand: {entrypoint: [cmd, /c, echo hi]}\n"),
            r#"cmd /c "echo hi""#
        );
        assert_eq!(
            line("image: nginx\ncommand: {entrypoint: [cmd], args: [/c, ver]}\n"),
            "cmd /c ver"
        );
        let empty = init_process(&spec(base), &image(&[], &[])).unwrap_err();
        assert!(empty.to_string().contains("command.entrypoint"), "{empty}");
    }

    #[test]
    fn env_workdir_and_user_overlay_the_image() {
        let params = init_process(
            &spec("image: nginx\nenv: {mode: spec, EXTRA: '1'}\nuser: ContainerAdministrator\ncommand: {workdir: 'C:\\work'}\n"),
            &image(&["x"], &[]),
        )
        .unwrap();
        assert_eq!(
            params.environment.get("mode").map(String::as_str),
            Some("spec")
        );
        assert!(
            !params.environment.contains_key("MODE"),
            "case-insensitive replace"
        );
        assert_eq!(
            params.environment.get("PATH").map(String::as_str),
            Some(r"C:\Windows")
        );
        assert_eq!(
            params.environment.get("EXTRA").map(String::as_str),
            Some("1")
        );
        assert_eq!(params.user.as_deref(), Some("ContainerAdministrator"));
        assert_eq!(params.working_directory.as_deref(), Some(r"C:\work"));
        assert!(
            params.create_std_out_pipe && params.create_std_err_pipe && !params.create_std_in_pipe
        );
        let defaults = init_process(&spec("image: nginx\n"), &image(&["x"], &[])).unwrap();
        assert_eq!(defaults.user.as_deref(), Some("ContainerUser"));
        assert_eq!(defaults.working_directory.as_deref(), Some(r"C:\app"));
    }

    #[test]
    fn no_working_directory_anywhere_starts_in_the_drive_root() {
        let mut bare = image(&["x"], &[]);
        bare.working_dir = None;
        let params = init_process(&spec("image: nginx\n"), &bare).unwrap();
        assert_eq!(params.working_directory.as_deref(), Some(r"C:\"));
    }

    #[test]
    fn empty_values_are_not_passed_as_variables() {
        let mut with_empty = image(&["x"], &[]);
        with_empty.env.push("FROM_IMAGE=".into());
        let params = init_process(
            &spec("image: nginx\nenv: {EMPTY: '', KEPT: 'v', MODE: ''}\n"),
            &with_empty,
        )
        .unwrap();
        assert!(!params.environment.contains_key("EMPTY"));
        assert!(!params.environment.contains_key("FROM_IMAGE"));
        assert!(
            !params
                .environment
                .keys()
                .any(|k| k.eq_ignore_ascii_case("MODE")),
            "an empty spec value unsets the image's"
        );
        assert_eq!(
            params.environment.get("KEPT").map(String::as_str),
            Some("v")
        );
    }
}
