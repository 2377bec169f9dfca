//! Turns a located YAML tree into checked spec types, collecting every problem on the way.
//!
//! Each `decode_*` function reads one spec type. Fields are taken from a [`Fields`] reader,
//! which remembers which names the type knows, so whatever is left over is reported as an
//! unknown field with a suggestion, from the same list the decoder reads.

use std::collections::{BTreeMap, HashSet};

use crate::diag::{Diagnostic, Diagnostics, FieldPath};
use crate::model::{
    CommandSpec, DeploymentSpec, GpuSharing, GpuSpec, GpuVendor, ImageSpec, IsolationMode, Mount,
    PortMapping, Protocol, PullPolicy, RegistryAuthRef, Resources, ServiceSpec, TimeZoneMode,
};
use crate::quantity::{self, CpuCount, MemorySize, QuantityError};
use crate::reference::ImageReference;
use crate::suggest;
use crate::yaml::{Node, Value};

pub const SPEC_VERSION: &str = "v1";
const MAX_GPU_COUNT: i128 = 64;
const MAX_NAME_LENGTH: usize = 63;

/// The decoding pass: reads values and records what is wrong with them.
#[derive(Debug, Default)]
pub struct Decoder {
    diagnostics: Diagnostics,
}

impl Decoder {
    pub fn into_diagnostics(self) -> Diagnostics {
        self.diagnostics
    }

    fn report(&mut self, path: &FieldPath, node: Option<&Node>, problem: &str, fix: &str) {
        self.diagnostics.push(Diagnostic {
            path: path.clone(),
            position: node.map(|n| n.position),
            value: node.map(|n| n.value.describe()),
            problem: problem.to_owned(),
            fix: fix.to_owned(),
        });
    }

    fn wrong_kind(&mut self, path: &FieldPath, node: &Node, expected: &str, example: &str) {
        let problem = format!("expected {expected}, found {}", node.value.kind());
        self.report(
            path,
            Some(node),
            &problem,
            &format!("write it like {example}"),
        );
    }

    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        example: &str,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_kind(path, node, "a mapping", example);
            return None;
        };
        let mut fields = Fields {
            path: path.clone(),
            node,
            entries: Vec::new(),
            known: Vec::new(),
        };
        for (key, value) in entries {
            match &key.value {
                Value::Str(name) => fields.entries.push(Entry {
                    name: name.clone(),
                    key,
                    value,
                    taken: false,
                }),
                _ => self.report(
                    path,
                    Some(key),
                    "field names must be strings",
                    "quote the key or remove it",
                ),
            }
        }
        Some(fields)
    }

    fn string(&mut self, node: &Node, path: &FieldPath, example: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if s.is_empty() => {
                self.report(
                    path,
                    Some(node),
                    "is empty",
                    &format!("write a value like {example} or remove the field"),
                );
                None
            }
            Value::Str(s) if s.contains('\0') => {
                self.report(path, Some(node), "contains a NUL character", "remove it");
                None
            }
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_kind(path, node, "a string", example);
                None
            }
        }
    }

    /// A list of command-line words; numbers and booleans are taken as written.
    fn words(&mut self, node: &Node, path: &FieldPath, example: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_kind(path, node, "a list of strings", example);
            return None;
        };
        let mut words = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.scalar_text() {
                Some(word) if word.contains('\0') => {
                    self.report(
                        &path.index(i),
                        Some(item),
                        "contains a NUL character",
                        "remove it",
                    );
                }
                Some(word) => words.push(word),
                None => self.wrong_kind(&path.index(i), item, "a string", example),
            }
        }
        (words.len() == items.len()).then_some(words)
    }

    fn bool(&mut self, node: &Node, path: &FieldPath) -> Option<bool> {
        if let Value::Bool(b) = node.value {
            Some(b)
        } else {
            self.wrong_kind(path, node, "true or false", "true");
            None
        }
    }

    fn integer(
        &mut self,
        node: &Node,
        path: &FieldPath,
        range: (i128, i128),
        what: &str,
    ) -> Option<i128> {
        let (low, high) = range;
        match node.value {
            Value::Int(i) if (low..=high).contains(&i) => Some(i),
            Value::Int(_) => {
                self.report(
                    path,
                    Some(node),
                    &format!("is out of range for {what}"),
                    &format!("expected {low} to {high}"),
                );
                None
            }
            _ => {
                self.wrong_kind(
                    path,
                    node,
                    &format!("a whole number from {low} to {high}"),
                    &high.min(8).max(low).to_string(),
                );
                None
            }
        }
    }

    fn port(&mut self, node: &Node, path: &FieldPath) -> Option<u16> {
        self.integer(node, path, (1, 65535), "a port")
            .and_then(|p| u16::try_from(p).ok())
    }

    fn choice<T>(
        &mut self,
        node: &Node,
        path: &FieldPath,
        names: &[&str],
        from_name: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let Value::Str(name) = &node.value else {
            self.wrong_kind(
                path,
                node,
                &format!("one of {}", names.join(", ")),
                names[0],
            );
            return None;
        };
        if let Some(value) = from_name(name) {
            return Some(value);
        }
        let fix = match suggest::closest(name, names) {
            Some(near) => format!(
                "did you mean {near:?}? expected one of {}",
                names.join(", ")
            ),
            None => format!("expected one of {}", names.join(", ")),
        };
        self.report(path, Some(node), "is not a valid choice", &fix);
        None
    }

    fn name_label(&mut self, node: &Node, path: &FieldPath, what: &str) -> Option<String> {
        let name = self.string(node, path, "web")?;
        if is_dns_label(&name) {
            Some(name)
        } else {
            let fix = format!(
                "a {what} is 1 to {MAX_NAME_LENGTH} lowercase letters, digits or '-', starting with a letter and not ending with '-'"
            );
            self.report(path, Some(node), &format!("is not a valid {what}"), &fix);
            None
        }
    }
}

struct Entry<'n> {
    name: String,
    key: &'n Node,
    value: &'n Node,
    taken: bool,
}

/// The fields of one mapping, taken one by one by name.
struct Fields<'n> {
    path: FieldPath,
    node: &'n Node,
    entries: Vec<Entry<'n>>,
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// The value of `name` and its path; an explicit `null` counts as absent.
    fn take(&mut self, name: &'static str) -> Option<(&'n Node, FieldPath)> {
        self.known.push(name);
        let entry = self.entries.iter_mut().find(|entry| entry.name == name)?;
        entry.taken = true;
        let value = entry.value;
        (value.value != Value::Null).then(|| (value, self.path.field(name)))
    }

    fn require(
        &mut self,
        decoder: &mut Decoder,
        name: &'static str,
        fix: &str,
    ) -> Option<(&'n Node, FieldPath)> {
        let found = self.take(name);
        if found.is_none() {
            let path = self.path.field(name);
            decoder.report(&path, Some(self.node), "is required", fix);
        }
        found
    }

    /// Reports every field no `take` asked for.
    fn finish(self, decoder: &mut Decoder) {
        for entry in self.entries.iter().filter(|entry| !entry.taken) {
            let fix = match suggest::closest(&entry.name, &self.known) {
                Some(near) => format!("did you mean {near:?}?"),
                None => format!("known fields here: {}", self.known.join(", ")),
            };
            decoder.diagnostics.push(Diagnostic {
                path: self.path.field(&entry.name),
                position: Some(entry.key.position),
                value: None,
                problem: "unknown field".to_owned(),
                fix,
            });
        }
    }
}

/// A deployment file, or a file that is one service's spec.
// Parsed once per file and moved, never stored in bulk: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SpecFile {
    Deployment(DeploymentSpec),
    Service(ServiceSpec),
}

/// A file with `services`, `version` or `deployment` at the top is a deployment; anything
/// else is read as a single service.
pub fn decode_file(decoder: &mut Decoder, root: &Node) -> Option<SpecFile> {
    let is_deployment = matches!(&root.value, Value::Map(entries)
        if entries.iter().any(|(k, _)| matches!(&k.value, Value::Str(s) if ["services", "version", "deployment"].contains(&s.as_str()))));
    if is_deployment {
        decode_deployment(decoder, root).map(SpecFile::Deployment)
    } else {
        decode_service(decoder, root, &FieldPath::root()).map(SpecFile::Service)
    }
}

pub fn decode_deployment(decoder: &mut Decoder, root: &Node) -> Option<DeploymentSpec> {
    let path = FieldPath::root();
    let mut fields = decoder.mapping(
        root,
        &path,
        "`version: v1` with `deployment` and `services`",
    )?;
    let version = fields
        .require(decoder, "version", "add `version: v1`")
        .and_then(|(node, path)| match &node.value {
            Value::Str(v) if v == SPEC_VERSION => Some(v.clone()),
            _ => {
                decoder.report(
                    &path,
                    Some(node),
                    "is not a supported spec version",
                    "write `version: v1`",
                );
                None
            }
        });
    let deployment = fields
        .require(
            decoder,
            "deployment",
            "name the deployment, e.g. `deployment: shop`",
        )
        .and_then(|(node, path)| decoder.name_label(node, &path, "deployment name"));
    let services = fields
        .require(
            decoder,
            "services",
            "list at least one service under `services:`",
        )
        .and_then(|(node, path)| decode_services(decoder, node, &path));
    fields.finish(decoder);
    Some(DeploymentSpec {
        version: version?,
        deployment: deployment?,
        services: services?,
    })
}

fn decode_services(
    decoder: &mut Decoder,
    node: &Node,
    path: &FieldPath,
) -> Option<BTreeMap<String, ServiceSpec>> {
    let Value::Map(entries) = &node.value else {
        decoder.wrong_kind(
            path,
            node,
            "a mapping of service names to services",
            "`services: {web: {image: nginx}}`",
        );
        return None;
    };
    if entries.is_empty() {
        decoder.report(
            path,
            Some(node),
            "has no services",
            "add at least one service",
        );
        return None;
    }
    let mut services = BTreeMap::new();
    let mut complete = true;
    for (key, value) in entries {
        let service_path = path.field(key.scalar_text().as_deref().unwrap_or("?"));
        let name = if let Value::Str(_) = key.value {
            decoder.name_label(key, &service_path, "service name")
        } else {
            decoder.wrong_kind(path, key, "a service name", "web");
            None
        };
        let spec = decode_service(decoder, value, &service_path);
        match (name, spec) {
            (Some(name), Some(spec)) => {
                services.insert(name, spec);
            }
            _ => complete = false,
        }
    }
    complete.then_some(services)
}

pub fn decode_service(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<ServiceSpec> {
    let mut fields = decoder.mapping(
        node,
        path,
        "`image: mcr.microsoft.com/windows/nanoserver:ltsc2022`",
    )?;
    let image = fields
        .require(
            decoder,
            "image",
            "add `image: <reference>`, e.g. mcr.microsoft.com/windows/nanoserver:ltsc2022",
        )
        .and_then(|(node, path)| decode_image(decoder, node, &path));
    let command = optional(&mut fields, "command", |(n, p)| {
        decode_command(decoder, n, &p)
    });
    let env = optional(&mut fields, "env", |(n, p)| decode_env(decoder, n, &p));
    let user = optional(&mut fields, "user", |(n, p)| {
        decoder.string(n, &p, "ContainerUser")
    });
    let hostname = optional(&mut fields, "hostname", |(n, p)| {
        decode_hostname(decoder, n, &p)
    });
    let isolation = optional(&mut fields, "isolation", |(n, p)| {
        decoder.choice(n, &p, &IsolationMode::NAMES, IsolationMode::from_name)
    });
    let time_zone = optional(&mut fields, "time_zone", |(n, p)| {
        decoder.choice(n, &p, &TimeZoneMode::NAMES, TimeZoneMode::from_name)
    });
    let resources = optional(&mut fields, "resources", |(n, p)| {
        decode_resources(decoder, n, &p)
    });
    let mounts = optional(&mut fields, "mounts", |(n, p)| {
        decode_mounts(decoder, n, &p)
    });
    let ports = optional(&mut fields, "ports", |(n, p)| decode_ports(decoder, n, &p));
    let networks = optional(&mut fields, "networks", |(n, p)| {
        decode_networks(decoder, n, &p)
    });
    let tty = optional(&mut fields, "tty", |(n, p)| decoder.bool(n, &p));
    let stdin_open = optional(&mut fields, "stdin_open", |(n, p)| decoder.bool(n, &p));
    fields.finish(decoder);
    Some(ServiceSpec {
        image: image?,
        command: command?.unwrap_or_default(),
        env: env?.unwrap_or_default(),
        user: user?,
        hostname: hostname?,
        isolation: isolation?.unwrap_or_default(),
        time_zone: time_zone?.unwrap_or_default(),
        resources: resources?.unwrap_or_default(),
        mounts: mounts?.unwrap_or_default(),
        ports: ports?.unwrap_or_default(),
        networks: networks?.unwrap_or_default(),
        tty: tty?.unwrap_or(false),
        stdin_open: stdin_open?.unwrap_or(false),
    })
}

/// Reads an optional field: `Some(None)` when absent, `Some(Some(v))` when valid, `None`
/// when present but wrong (already reported).
// Three states are the point: absent, valid, and invalid-and-already-reported.
#[allow(clippy::option_option)]
fn optional<'n, T>(
    fields: &mut Fields<'n>,
    name: &'static str,
    decode: impl FnOnce((&'n Node, FieldPath)) -> Option<T>,
) -> Option<Option<T>> {
    match fields.take(name) {
        None => Some(None),
        Some(found) => decode(found).map(Some),
    }
}

fn decode_image(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<ImageSpec> {
    // `image: nanoserver:ltsc2022` is shorthand for `image: {name: nanoserver:ltsc2022}`.
    if let Value::Str(_) = node.value {
        let name = decode_reference(decoder, node, path)?;
        return Some(ImageSpec {
            name,
            pull_policy: PullPolicy::default(),
            auth: None,
        });
    }
    let mut fields = decoder.mapping(node, path, "`image: {name: nginx, pull_policy: always}`")?;
    let name = fields
        .require(decoder, "name", "add `name: <reference>`")
        .and_then(|(n, p)| decode_reference(decoder, n, &p));
    let pull_policy = optional(&mut fields, "pull_policy", |(n, p)| {
        decoder.choice(n, &p, &PullPolicy::NAMES, PullPolicy::from_name)
    });
    let auth = optional(&mut fields, "auth", |(n, p)| decode_auth(decoder, n, &p));
    fields.finish(decoder);
    Some(ImageSpec {
        name: name?,
        pull_policy: pull_policy?.unwrap_or_default(),
        auth: auth?,
    })
}

fn decode_reference(
    decoder: &mut Decoder,
    node: &Node,
    path: &FieldPath,
) -> Option<ImageReference> {
    let text = decoder.string(node, path, "mcr.microsoft.com/windows/nanoserver:ltsc2022")?;
    match text.parse::<ImageReference>() {
        Ok(reference) => Some(reference),
        Err(e) => {
            let problem = format!("is not a valid image reference: {e}");
            decoder.report(path, Some(node), &problem, e.fix());
            None
        }
    }
}

fn decode_auth(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<RegistryAuthRef> {
    if let Value::Str(s) = &node.value {
        if s == "docker_config" {
            return Some(RegistryAuthRef::DockerConfig { path: None });
        }
        decoder.report(
            path,
            Some(node),
            "is not a credential source",
            "write `auth: docker_config`, `auth: {docker_config: PATH}` or `auth: {username_env: VAR, password_env: VAR}`",
        );
        return None;
    }
    let mut fields = decoder.mapping(
        node,
        path,
        "`auth: {username_env: REG_USER, password_env: REG_TOKEN}`",
    )?;
    let username = optional(&mut fields, "username_env", |(n, p)| {
        decode_env_var_name(decoder, n, &p)
    });
    let password = optional(&mut fields, "password_env", |(n, p)| {
        decode_env_var_name(decoder, n, &p)
    });
    let docker_config = optional(&mut fields, "docker_config", |(n, p)| {
        decoder.string(n, &p, "C:\\Users\\me\\.docker\\config.json")
    });
    fields.finish(decoder);
    match (username?, password?, docker_config?) {
        (Some(username_env), Some(password_env), None) => Some(RegistryAuthRef::Env {
            username_env,
            password_env,
        }),
        (None, None, Some(config)) => Some(RegistryAuthRef::DockerConfig {
            path: Some(config.into()),
        }),
        (None, None, None) => {
            decoder.report(
                path,
                Some(node),
                "names no credential source",
                "set username_env and password_env, or docker_config",
            );
            None
        }
        (_, _, Some(_)) => {
            decoder.report(
                path,
                Some(node),
                "names two credential sources",
                "use either docker_config or username_env/password_env",
            );
            None
        }
        (Some(_), None, None) | (None, Some(_), None) => {
            decoder.report(
                path,
                Some(node),
                "needs both username_env and password_env",
                "add the missing one",
            );
            None
        }
    }
}

fn decode_env_var_name(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<String> {
    let name = decoder.string(node, path, "REGISTRY_TOKEN")?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Some(name)
    } else {
        decoder.report(
            path,
            Some(node),
            "is not an environment variable name",
            "use letters, digits and '_', not starting with a digit",
        );
        None
    }
}

fn decode_command(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<CommandSpec> {
    let mut fields = decoder.mapping(
        node,
        path,
        "`command: {entrypoint: [cmd, /c], args: [echo, hi]}`",
    )?;
    let entrypoint = optional(&mut fields, "entrypoint", |(n, p)| {
        let words = decoder.words(n, &p, r#"["C:\\app\\server.exe", "--port", "80"]"#)?;
        if words.is_empty() {
            decoder.report(
                &p,
                Some(n),
                "is an empty list",
                "remove the field to use the image's entrypoint",
            );
            return None;
        }
        Some(words)
    });
    let args = optional(&mut fields, "args", |(n, p)| {
        decoder.words(n, &p, r#"["--port", "80"]"#)
    });
    let workdir = optional(&mut fields, "workdir", |(n, p)| {
        let dir = decoder.string(n, &p, r"C:\app")?;
        if is_drive_absolute(&dir) {
            Some(dir)
        } else {
            decoder.report(
                &p,
                Some(n),
                "is not an absolute path in the container",
                r"expected a path like C:\app",
            );
            None
        }
    });
    fields.finish(decoder);
    Some(CommandSpec {
        entrypoint: entrypoint?,
        args: args?,
        workdir: workdir?,
    })
}

fn decode_env(
    decoder: &mut Decoder,
    node: &Node,
    path: &FieldPath,
) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &node.value else {
        decoder.wrong_kind(
            path,
            node,
            "a mapping of names to values",
            "`env: {APP_MODE: production}`",
        );
        return None;
    };
    let mut env = BTreeMap::new();
    // Windows environment names are case-insensitive: `Path` and `PATH` are one variable.
    let mut seen = HashSet::new();
    let mut complete = true;
    for (key, value) in entries {
        let Some(name) = key.scalar_text() else {
            decoder.wrong_kind(path, key, "a variable name", "APP_MODE");
            complete = false;
            continue;
        };
        let entry_path = path.field(&name);
        if name.is_empty() || name.contains(['=', '\0']) {
            decoder.report(
                &entry_path,
                Some(key),
                "is not a valid variable name",
                "names are non-empty and hold no '=' or NUL",
            );
            complete = false;
            continue;
        }
        if !seen.insert(name.to_uppercase()) {
            decoder.report(
                &entry_path,
                Some(key),
                "repeats a variable (Windows ignores case in names)",
                "keep one spelling",
            );
            complete = false;
            continue;
        }
        match value.scalar_text() {
            Some(text) if text.contains('\0') => {
                decoder.report(
                    &entry_path,
                    Some(value),
                    "contains a NUL character",
                    "remove it",
                );
                complete = false;
            }
            Some(text) => {
                env.insert(name, text);
            }
            None if value.value == Value::Null => {
                decoder.report(
                    &entry_path,
                    Some(value),
                    "has no value",
                    r#"write `NAME: ""` for an empty value"#,
                );
                complete = false;
            }
            None => {
                decoder.wrong_kind(&entry_path, value, "a string", "production");
                complete = false;
            }
        }
    }
    complete.then_some(env)
}

fn decode_hostname(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<String> {
    let name = decoder.string(node, path, "web-frontend")?;
    let valid = name.len() <= MAX_NAME_LENGTH
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Some(name)
    } else {
        decoder.report(
            path,
            Some(node),
            "is not a valid host name",
            "use up to 63 letters, digits or '-', not starting or ending with '-'",
        );
        None
    }
}

fn decode_resources(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<Resources> {
    let mut fields = decoder.mapping(
        node,
        path,
        "`resources: {cpu: 2, memory: 2Gi, storage: 40Gi}`",
    )?;
    let cpu = optional(&mut fields, "cpu", |(n, p)| decode_cpu(decoder, n, &p));
    let memory = optional(&mut fields, "memory", |(n, p)| {
        decode_memory(decoder, n, &p)
    });
    let gpu = optional(&mut fields, "gpu", |(n, p)| decode_gpu(decoder, n, &p));
    let storage = optional(&mut fields, "storage", |(n, p)| {
        decode_storage(decoder, n, &p)
    });
    fields.finish(decoder);
    Some(Resources {
        cpu: cpu?,
        memory: memory?,
        gpu: gpu?,
        storage: storage?,
    })
}

/// The scratch disk size: a size as for memory, no smaller than the disk starts out.
fn decode_storage(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<MemorySize> {
    let size = decode_memory(decoder, node, path)?;
    if size.bytes() < Resources::MIN_STORAGE_BYTES {
        decoder.report(
            path,
            Some(node),
            "is smaller than the 20Gi scratch disk every Windows container starts with",
            "use 20Gi or more (the disk can only grow), or leave storage out for 20Gi",
        );
        return None;
    }
    Some(size)
}

fn decode_cpu(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<CpuCount> {
    let parsed = match &node.value {
        Value::Int(cores) if *cores < 0 => Err(QuantityError::Negative),
        Value::Int(cores) => cores
            .checked_mul(1000)
            .and_then(|m| u32::try_from(m).ok())
            .map_or(Err(QuantityError::TooManyCores(CpuCount::MAX_CORES)), |m| {
                if m == 0 {
                    Err(QuantityError::Zero)
                } else {
                    CpuCount::from_millicores(m)
                        .ok_or(QuantityError::TooManyCores(CpuCount::MAX_CORES))
                }
            }),
        Value::Float(cores) => quantity::cpu_from_f64(*cores),
        Value::Str(text) => quantity::parse_cpu(text),
        _ => {
            decoder.wrong_kind(path, node, "a number of cores", "1.5");
            return None;
        }
    };
    parsed
        .map_err(|e| decoder.report(path, Some(node), &e.to_string(), &e.cpu_fix()))
        .ok()
}

fn decode_memory(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<MemorySize> {
    let parsed = match &node.value {
        Value::Str(text) => quantity::parse_memory(text),
        // A bare integer is a byte count, as in Docker.
        Value::Int(bytes) if *bytes < 0 => Err(QuantityError::Negative),
        Value::Int(bytes) => u64::try_from(*bytes)
            .map_err(|_| QuantityError::Overflow)
            .and_then(|b| MemorySize::from_bytes(b).ok_or(QuantityError::Zero)),
        Value::Float(_) => Err(QuantityError::NotANumber),
        _ => {
            decoder.wrong_kind(path, node, "a size", "512Mi");
            return None;
        }
    };
    parsed
        .map_err(|e| {
            let problem = match &e {
                QuantityError::NotANumber => "is not a size".to_owned(),
                other => other.to_string(),
            };
            decoder.report(path, Some(node), &problem, &e.memory_fix());
        })
        .ok()
}

fn decode_gpu(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<GpuSpec> {
    let mut fields = decoder.mapping(node, path, "`gpu: {count: 1, vendor: nvidia}`")?;
    let count = optional(&mut fields, "count", |(n, p)| {
        decoder
            .integer(n, &p, (0, MAX_GPU_COUNT), "a GPU count")
            .and_then(|c| u32::try_from(c).ok())
    });
    let vendor = optional(&mut fields, "vendor", |(n, p)| {
        decoder.choice(n, &p, &GpuVendor::NAMES, GpuVendor::from_name)
    });
    let model = optional(&mut fields, "model", |(n, p)| {
        decoder.string(n, &p, "A6000")
    });
    let sharing = optional(&mut fields, "sharing", |(n, p)| {
        decoder.choice(n, &p, &GpuSharing::NAMES, GpuSharing::from_name)
    });
    fields.finish(decoder);
    Some(GpuSpec {
        count: count?.unwrap_or(1),
        vendor: vendor?.unwrap_or_default(),
        model: model?,
        sharing: sharing?.unwrap_or_default(),
    })
}

fn decode_mounts(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<Vec<Mount>> {
    let Value::Seq(items) = &node.value else {
        decoder.wrong_kind(
            path,
            node,
            "a list of mounts",
            r"`mounts: [{source: 'C:\data', target: 'C:\data'}]`",
        );
        return None;
    };
    let mut mounts = Vec::with_capacity(items.len());
    let mut targets = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        let Some(mount) = decode_mount(decoder, item, &item_path) else {
            continue;
        };
        // Windows paths are case-insensitive, so `C:\Data` and `c:\data` collide.
        if targets.insert(mount.target.to_lowercase()) {
            mounts.push(mount);
        } else {
            decoder.report(
                &item_path.field("target"),
                Some(item),
                "is mounted twice",
                "give each mount its own target",
            );
        }
    }
    (mounts.len() == items.len()).then_some(mounts)
}

fn decode_mount(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<Mount> {
    let mut fields = decoder.mapping(
        node,
        path,
        r"`{source: 'C:\data', target: 'C:\data', read_only: true}`",
    )?;
    let source = fields
        .require(
            decoder,
            "source",
            r"add the host path, e.g. `source: 'C:\data'`",
        )
        .and_then(|(n, p)| {
            let source = decoder.string(n, &p, r"C:\data")?;
            if is_pipe(&source) || is_drive_absolute(&source) || is_unc(&source) {
                Some(source)
            } else {
                decoder.report(
                    &p,
                    Some(n),
                    "is not an absolute host path",
                    r"expected C:\path, \\server\share or \\.\pipe\name",
                );
                None
            }
        });
    let target = fields
        .require(
            decoder,
            "target",
            r"add the container path, e.g. `target: 'C:\data'`",
        )
        .and_then(|(n, p)| {
            let target = decoder.string(n, &p, r"C:\data")?;
            if is_pipe(&target) || (is_drive_absolute(&target) && !is_drive_root(&target)) {
                Some((target, n, p))
            } else {
                decoder.report(
                    &p,
                    Some(n),
                    "is not a directory path in the container",
                    r"expected a path like C:\data (not a drive root) or \\.\pipe\name",
                );
                None
            }
        });
    let read_only = optional(&mut fields, "read_only", |(n, p)| decoder.bool(n, &p));
    fields.finish(decoder);
    let (source, (target, target_node, target_path), read_only) = (source?, target?, read_only?);
    if is_pipe(&source) != is_pipe(&target) {
        decoder.report(
            &target_path,
            Some(target_node),
            "mixes a named pipe with a directory",
            r"map a pipe to \\.\pipe\name and a directory to a directory",
        );
        return None;
    }
    Some(Mount {
        source,
        target,
        read_only: read_only.unwrap_or(false),
    })
}

fn decode_ports(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<Vec<PortMapping>> {
    let Value::Seq(items) = &node.value else {
        decoder.wrong_kind(path, node, "a list of ports", "`ports: [\"8080:80\"]`");
        return None;
    };
    let mut ports = Vec::with_capacity(items.len());
    let mut host_ports = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        let Some(port) = decode_port(decoder, item, &item_path) else {
            continue;
        };
        if let Some(host_port) = port.host_port
            && !host_ports.insert((host_port, port.protocol))
        {
            decoder.report(
                &item_path,
                Some(item),
                "publishes a host port that is already taken",
                "give each mapping its own host port",
            );
            continue;
        }
        ports.push(port);
    }
    (ports.len() == items.len()).then_some(ports)
}

fn decode_port(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<PortMapping> {
    match &node.value {
        Value::Int(_) => {
            let container_port = decoder.port(node, path)?;
            Some(PortMapping {
                container_port,
                host_port: None,
                protocol: Protocol::Tcp,
            })
        }
        Value::Str(text) => {
            let parsed = parse_port_text(text);
            if parsed.is_none() {
                decoder.report(
                    path,
                    Some(node),
                    "is not a port mapping",
                    r#"expected "80", "8080:80" or "8080:80/udp" with ports from 1 to 65535"#,
                );
            }
            parsed
        }
        _ => {
            let mut fields = decoder.mapping(
                node,
                path,
                "`{container_port: 80, host_port: 8080, protocol: tcp}`",
            )?;
            let container_port = fields
                .require(
                    decoder,
                    "container_port",
                    "add the port the container listens on",
                )
                .and_then(|(n, p)| decoder.port(n, &p));
            let host_port = optional(&mut fields, "host_port", |(n, p)| decoder.port(n, &p));
            let protocol = optional(&mut fields, "protocol", |(n, p)| {
                decoder.choice(n, &p, &Protocol::NAMES, Protocol::from_name)
            });
            fields.finish(decoder);
            Some(PortMapping {
                container_port: container_port?,
                host_port: host_port?,
                protocol: protocol?.unwrap_or_default(),
            })
        }
    }
}

/// The Compose short form: `80`, `8080:80`, `8080:80/udp`.
fn parse_port_text(text: &str) -> Option<PortMapping> {
    let (ports, protocol) = match text.split_once('/') {
        Some((ports, protocol)) => (ports, Protocol::from_name(protocol)?),
        None => (text, Protocol::Tcp),
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    let digits_only = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let (host_port, container_port) = match ports.split_once(':') {
        Some((host, container)) if digits_only(host) && digits_only(container) => {
            (Some(port(host)?), port(container)?)
        }
        None if digits_only(ports) => (None, port(ports)?),
        _ => return None,
    };
    Some(PortMapping {
        container_port,
        host_port,
        protocol,
    })
}

fn decode_networks(decoder: &mut Decoder, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
    let Value::Seq(items) = &node.value else {
        decoder.wrong_kind(
            path,
            node,
            "a list of network names",
            "`networks: [backend]`",
        );
        return None;
    };
    let mut networks: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        let Some(name) = decoder.name_label(item, &item_path, "network name") else {
            continue;
        };
        if networks.contains(&name) {
            decoder.report(
                &item_path,
                Some(item),
                "is listed twice",
                "list each network once",
            );
            continue;
        }
        networks.push(name);
    }
    (networks.len() == items.len()).then_some(networks)
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= MAX_NAME_LENGTH
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-')
}

/// `C:\x` or `C:/x`: a path with a drive letter, which is all a container path can be.
fn is_drive_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes[2], b'\\' | b'/')
}

fn is_drive_root(path: &str) -> bool {
    path.len() == 3 && is_drive_absolute(path)
}

fn is_unc(path: &str) -> bool {
    path.strip_prefix(r"\\").is_some_and(|rest| {
        let mut parts = rest.split('\\');
        matches!((parts.next(), parts.next()), (Some(server), Some(share)) if !server.is_empty() && server != "." && server != "?" && !share.is_empty())
    })
}

fn is_pipe(path: &str) -> bool {
    const PREFIX: &str = r"\\.\pipe\";
    path.len() > PREFIX.len()
        && path
            .get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}
