//! Turns `pane create|run SPEC|IMAGE [flags] [-- CMD…]` into a container id and the spec it
//! runs: a spec file or a bare image, with the command-line overrides laid over it.

use std::path::Path;

use pane_runtime::ContainerId;
use pane_spec::{ImageReference, PullPolicy, ServiceSpec, SpecFile};

use crate::cli::CreateArgs;

/// Bad input, said with the flag or file at fault and the fix.
#[derive(Debug)]
pub struct SourceError {
    pub message: String,
    /// Spec problems, one per line, when the spec file did not validate.
    pub diagnostics: Vec<String>,
}

impl SourceError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }
}

/// A file stem or image name as a service name: lowercase letters, digits and '-'.
pub fn sanitize(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = name.trim_matches('-');
    if trimmed.is_empty() {
        "service".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn looks_like_a_file(source: &str) -> bool {
    Path::new(source).is_file()
        || Path::new(source)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The spec and the service name it suggests.
fn load(args: &CreateArgs) -> Result<(String, ServiceSpec), SourceError> {
    if !looks_like_a_file(&args.source) {
        let image: ImageReference =
            args.source
                .parse()
                .map_err(|e: pane_spec::reference::ReferenceError| {
                    SourceError::new(format!(
                        "{:?} is neither a spec file nor an image reference: {e}; {}",
                        args.source,
                        e.fix()
                    ))
                })?;
        let name = image
            .repository()
            .rsplit('/')
            .next()
            .map_or_else(|| "container".to_owned(), sanitize);
        return Ok((name, ServiceSpec::for_image(image)));
    }
    let path = Path::new(&args.source);
    let file = pane_spec::load(path).map_err(|e| SourceError {
        message: e.to_string(),
        diagnostics: match &e {
            pane_spec::LoadError::Spec { source, .. } => source
                .diagnostics()
                .iter()
                .map(ToString::to_string)
                .collect(),
            pane_spec::LoadError::Read { .. } => Vec::new(),
        },
    })?;
    match file {
        SpecFile::Service(spec) => {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("service");
            Ok((sanitize(stem), spec))
        }
        SpecFile::Deployment(deployment) => {
            let names: Vec<String> = deployment.services.keys().cloned().collect();
            let wanted = match (&args.service, names.as_slice()) {
                (Some(wanted), _) => wanted.clone(),
                (None, [only]) => only.clone(),
                (None, _) => {
                    return Err(SourceError::new(format!(
                        "{} has several services ({}); pick one with --service NAME",
                        path.display(),
                        names.join(", ")
                    )));
                }
            };
            deployment
                .services
                .into_iter()
                .find(|(name, _)| *name == wanted)
                .ok_or_else(|| {
                    SourceError::new(format!(
                        "--service: no service {wanted:?} in {}; it has: {}",
                        path.display(),
                        names.join(", ")
                    ))
                })
        }
    }
}

fn parse_pull_policy(text: &str) -> Result<PullPolicy, SourceError> {
    match text.to_ascii_lowercase().replace('-', "_").as_str() {
        "always" => Ok(PullPolicy::Always),
        "if_not_present" | "missing" => Ok(PullPolicy::IfNotPresent),
        "never" => Ok(PullPolicy::Never),
        _ => Err(SourceError::new(format!(
            "--pull {text:?} is not a pull policy; use always, if-not-present or never"
        ))),
    }
}

/// `NAME=VALUE` pairs of `-e`; `flag` names the option in errors.
pub fn parse_env(flag: &str, entries: &[String]) -> Result<Vec<(String, String)>, String> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => Err(format!(
                "{flag} {entry:?} is not NAME=VALUE; write it as {flag} NAME=VALUE"
            )),
        })
        .collect()
}

/// The container's id and spec. Without `--name`, the id takes the next free replica
/// number of its service name, so `pane run IMAGE` twice gives `name-1` and `name-2`.
pub fn resolve(
    args: &CreateArgs,
    existing: &[ContainerId],
) -> Result<(ContainerId, ServiceSpec), SourceError> {
    let (suggested, mut spec) = load(args)?;
    if !args.command.is_empty() {
        // As `docker run IMAGE CMD`: the arguments replace the command, the entrypoint
        // stays.
        spec.command.args = Some(args.command.clone());
    }
    for (name, value) in parse_env("--env", &args.env).map_err(SourceError::new)? {
        spec.env.insert(name, value);
    }
    spec.tty |= args.tty;
    spec.stdin_open |= args.interactive;
    if let Some(isolation) = args.isolation {
        spec.isolation = isolation.into();
    }
    if let Some(policy) = &args.pull {
        spec.image.pull_policy = parse_pull_policy(policy)?;
    }
    let id = if let Some(name) = &args.name {
        if sanitize(name) != *name {
            return Err(SourceError::new(format!(
                "--name {name:?} may hold only lowercase letters, digits and '-'; try --name {}",
                sanitize(name)
            )));
        }
        ContainerId::new(name.clone(), 1)
    } else {
        let next = existing
            .iter()
            .filter(|id| id.service == suggested)
            .map(|id| id.replica)
            .max()
            .map_or(1, |r| r + 1);
        ContainerId::new(suggested, next)
    };
    Ok((id, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(source: &str) -> CreateArgs {
        CreateArgs {
            source: source.to_owned(),
            command: Vec::new(),
            name: None,
            service: None,
            env: Vec::new(),
            isolation: None,
            pull: None,
            ip: None,
            interactive: false,
            tty: false,
        }
    }

    #[test]
    fn an_image_gets_its_last_path_segment_and_the_next_free_replica() {
        let existing = [
            ContainerId::new("nanoserver", 1),
            ContainerId::new("nanoserver", 4),
        ];
        let (id, spec) = resolve(
            &args("mcr.microsoft.com/windows/nanoserver:ltsc2022"),
            &existing,
        )
        .unwrap();
        assert_eq!(id.to_string(), "nanoserver-5");
        assert_eq!(spec.image.name.tag(), Some("ltsc2022"));
    }

    #[test]
    fn overrides_replace_the_command_and_add_env() {
        let mut a = args("mcr.microsoft.com/windows/nanoserver:ltsc2022");
        a.command = vec!["cmd".into(), "/c".into(), "echo hi".into()];
        a.env = vec!["MODE=test".into()];
        a.pull = Some("never".into());
        a.name = Some("job".into());
        let (id, spec) = resolve(&a, &[]).unwrap();
        assert_eq!(id.to_string(), "job-1");
        assert_eq!(spec.command.args.as_deref(), Some(&a.command[..]));
        assert_eq!(spec.env.get("MODE").map(String::as_str), Some("test"));
        assert_eq!(spec.image.pull_policy, PullPolicy::Never);
    }

    #[test]
    fn bad_flags_name_themselves_and_the_fix() {
        let mut a = args("mcr.microsoft.com/windows/nanoserver:ltsc2022");
        a.env = vec!["=oops".into()];
        assert!(
            resolve(&a, &[])
                .unwrap_err()
                .message
                .contains("--env \"=oops\" is not NAME=VALUE")
        );
        let mut a = args("mcr.microsoft.com/windows/nanoserver:ltsc2022");
        a.pull = Some("sometimes".into());
        assert!(
            resolve(&a, &[])
                .unwrap_err()
                .message
                .contains("always, if-not-present or never")
        );
        let mut a = args("mcr.microsoft.com/windows/nanoserver:ltsc2022");
        a.name = Some("Web App".into());
        assert!(
            resolve(&a, &[])
                .unwrap_err()
                .message
                .contains("try --name web-app")
        );
        let err = resolve(&args("UPPER CASE"), &[]).unwrap_err();
        assert!(
            err.message
                .contains("neither a spec file nor an image reference"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_deployment_with_several_services_needs_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        std::fs::write(
            &path,
            "version: v1\ndeployment: shop\nservices:\n  web: {image: mcr.microsoft.com/windows/nanoserver:ltsc2022}\n  \
             worker: {image: mcr.microsoft.com/windows/nanoserver:ltsc2022}\n",
        )
        .unwrap();
        let mut a = args(path.to_str().unwrap());
        let err = resolve(&a, &[]).unwrap_err();
        assert!(err.message.contains("--service NAME"), "{}", err.message);
        a.service = Some("worker".into());
        assert_eq!(resolve(&a, &[]).unwrap().0.to_string(), "worker-1");
    }

    #[test]
    fn an_invalid_spec_file_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "image: mcr.microsoft.com/windows/nanoserver:ltsc2022\nresources: {memory: 2g}\nisolaton: process\n").unwrap();
        let err = resolve(&args(path.to_str().unwrap()), &[]).unwrap_err();
        assert!(err.diagnostics.len() >= 2, "{:?}", err.diagnostics);
    }
}
