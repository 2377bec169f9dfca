//! Network configuration lists (`*.conflist`), and single plugin configurations
//! (`*.conf`, `*.json`) read as a list of one, from a configuration directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::version::{Version, parse_version};

/// The most a configuration file may hold; a larger one is refused unread.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// A configuration that cannot be used, located by its file and the field at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {}{message}", file.display(), if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
pub struct ConfigError {
    pub file: PathBuf,
    /// A JSON path such as `plugins[1].type`; empty when the whole file is at fault.
    pub field: String,
    pub message: String,
}

/// One plugin of a list: its type (the binary), the capabilities it declares, and its
/// whole configuration object, unknown fields included, as the plugin expects it back.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub plugin_type: String,
    pub capabilities: BTreeMap<String, bool>,
    pub raw: Map<String, Value>,
}

impl PluginConfig {
    /// The capabilities this plugin asks for (declared `true`).
    pub fn wants(&self, capability: &str) -> bool {
        self.capabilities.get(capability).copied().unwrap_or(false)
    }
}

/// A network configuration list: a named network and its plugin chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub plugins: Vec<PluginConfig>,
    /// The file the list came from, for errors (empty for a list built in memory).
    pub source: PathBuf,
}

impl NetworkConfigList {
    pub(crate) fn version(&self) -> Version {
        // Validated when the list was parsed.
        parse_version(&self.cni_version).unwrap_or(Version(0, 0, 0))
    }

    /// The list as JSON, the form kept in the attachment cache.
    pub fn to_json(&self) -> Value {
        let mut list = Map::new();
        list.insert("cniVersion".into(), self.cni_version.clone().into());
        list.insert("name".into(), self.name.clone().into());
        if self.disable_check {
            list.insert("disableCheck".into(), true.into());
        }
        if self.disable_gc {
            list.insert("disableGC".into(), true.into());
        }
        let plugins = self
            .plugins
            .iter()
            .map(|p| Value::Object(p.raw.clone()))
            .collect();
        list.insert("plugins".into(), Value::Array(plugins));
        Value::Object(list)
    }

    /// Parses a configuration list (`.conflist` form).
    pub fn from_json(bytes: &[u8], source: &Path) -> Result<Self, ConfigError> {
        let value = parse_object(bytes, source)?;
        Self::from_value(&value, source)
    }

    /// Parses a single plugin configuration (`.conf` form) as a list of one plugin.
    pub fn from_single_plugin_json(bytes: &[u8], source: &Path) -> Result<Self, ConfigError> {
        let value = parse_object(bytes, source)?;
        let err = |field: &str, message: &str| error(source, field, message);
        if value.contains_key("plugins") {
            return Err(err(
                "plugins",
                "a single plugin configuration has no `plugins`; name the file `.conflist`",
            ));
        }
        let mut list = Map::new();
        for key in ["cniVersion", "name"] {
            if let Some(v) = value.get(key) {
                list.insert(key.into(), v.clone());
            }
        }
        list.insert("plugins".into(), Value::Array(vec![Value::Object(value)]));
        Self::from_value(&list, source)
    }

    fn from_value(value: &Map<String, Value>, source: &Path) -> Result<Self, ConfigError> {
        let err = |field: &str, message: String| error(source, field, &message);
        let name = required_string(value, "name", "", source)?;
        check_network_name(&name).map_err(|m| err("name", m))?;
        let cni_version = required_string(value, "cniVersion", "", source)?;
        let version = parse_version(&cni_version).map_err(|m| err("cniVersion", m))?;
        if !version.is_supported() {
            return Err(err(
                "cniVersion",
                format!(
                    "version {cni_version} is not supported (pane speaks {})",
                    Version::SUPPORTED_TEXT
                ),
            ));
        }
        let disable_check = optional_bool(value, "disableCheck", source)?;
        let disable_gc = optional_bool(value, "disableGC", source)?;
        let Some(Value::Array(plugins)) = value.get("plugins") else {
            return Err(err(
                "plugins",
                "missing, or not an array of plugin configurations".into(),
            ));
        };
        if plugins.is_empty() {
            return Err(err("plugins", "the list has no plugins".into()));
        }
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, plugin)| parse_plugin(plugin, &format!("plugins[{i}]"), source))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            cni_version,
            disable_check,
            disable_gc,
            plugins,
            source: source.to_path_buf(),
        })
    }
}

fn parse_plugin(value: &Value, at: &str, source: &Path) -> Result<PluginConfig, ConfigError> {
    let Value::Object(raw) = value else {
        return Err(error(source, at, "not a JSON object"));
    };
    let plugin_type = required_string(raw, "type", at, source)?;
    super::exec::check_plugin_name(&plugin_type)
        .map_err(|m| error(source, &format!("{at}.type"), &m))?;
    let mut capabilities = BTreeMap::new();
    match raw.get("capabilities") {
        None => {}
        Some(Value::Object(caps)) => {
            for (key, enabled) in caps {
                let Value::Bool(enabled) = enabled else {
                    return Err(error(
                        source,
                        &format!("{at}.capabilities.{key}"),
                        "must be true or false",
                    ));
                };
                capabilities.insert(key.clone(), *enabled);
            }
        }
        Some(_) => {
            return Err(error(
                source,
                &format!("{at}.capabilities"),
                "must be an object of booleans",
            ));
        }
    }
    Ok(PluginConfig {
        plugin_type,
        capabilities,
        raw: raw.clone(),
    })
}

/// Network names follow the container-ID rule of the specification: an alphanumeric
/// character, then alphanumerics, `_`, `.` or `-`. They also name cache files.
pub(crate) fn check_network_name(name: &str) -> Result<(), String> {
    check_identifier(name).map_err(|m| format!("network name {name:?} {m}"))
}

pub(crate) fn check_identifier(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    match chars.next() {
        None => return Err("must not be empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err("must start with a letter or digit".into());
        }
        Some(_) => {}
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err("may hold only letters, digits, `_`, `.` and `-`".into())
    }
}

fn parse_object(bytes: &[u8], source: &Path) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error(source, "", "not a JSON object")),
        Err(e) => Err(error(source, "", &format!("not valid JSON: {e}"))),
    }
}

fn required_string(
    map: &Map<String, Value>,
    key: &str,
    at: &str,
    source: &Path,
) -> Result<String, ConfigError> {
    let field = if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    };
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(error(source, &field, "must not be empty")),
        Some(_) => Err(error(source, &field, "must be a string")),
        None => Err(error(source, &field, "missing")),
    }
}

fn optional_bool(map: &Map<String, Value>, key: &str, source: &Path) -> Result<bool, ConfigError> {
    match map.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(error(source, key, "must be true or false")),
    }
}

fn error(source: &Path, field: &str, message: &str) -> ConfigError {
    ConfigError {
        file: source.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Reads a file of at most [`MAX_CONFIG_FILE_BYTES`].
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Every configuration in `dir`, in file name order (the order libcni uses, so the
/// first file naming a network wins). Files with other extensions are skipped; a
/// missing directory holds no configurations. The first unusable file fails the whole
/// load; [`scan_dir`] keeps going.
pub fn load_dir(dir: &Path) -> Result<Vec<NetworkConfigList>, ConfigError> {
    let scan = scan_dir(dir)?;
    match scan.broken.into_iter().next() {
        Some(broken) => Err(broken.error),
        None => Ok(scan.lists),
    }
}

/// A configuration file that could not be used.
#[derive(Debug)]
pub struct BrokenConfig {
    /// The `name` it gives, when it is at least a JSON object with one, so a lookup of
    /// that network can report this file rather than "no such network".
    pub name: Option<String>,
    pub error: ConfigError,
}

/// What a configuration directory holds: the usable lists in file name order, and
/// the files that are not usable.
#[derive(Debug, Default)]
pub struct DirScan {
    pub lists: Vec<NetworkConfigList>,
    pub broken: Vec<BrokenConfig>,
}

impl DirScan {
    /// The list named `name`: the first usable one in file name order. A broken file
    /// that claims the name comes first when it sorts first, as it would have won.
    pub fn find(&self, name: &str) -> Result<Option<&NetworkConfigList>, &ConfigError> {
        let usable = self.lists.iter().find(|list| list.name == name);
        let broken = self.broken.iter().find(|b| b.name.as_deref() == Some(name));
        match (usable, broken) {
            (Some(list), Some(broken)) if broken.error.file < list.source => Err(&broken.error),
            (Some(list), _) => Ok(Some(list)),
            (None, Some(broken)) => Err(&broken.error),
            (None, None) => Ok(None),
        }
    }
}

/// Every configuration in `dir`, as [`load_dir`], but an unusable file is set aside
/// with its error instead of hiding every other network.
pub fn scan_dir(dir: &Path) -> Result<DirScan, ConfigError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirScan::default()),
        Err(e) => return Err(error(dir, "", &format!("cannot list the directory: {e}"))),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| error(dir, "", &format!("cannot list the directory: {e}")))?;
        let path = entry.path();
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("conflist") => FileKind::List,
            Some("conf" | "json") => FileKind::Single,
            _ => continue,
        };
        if path.is_file() {
            files.push((path, kind));
        }
    }
    files.sort();
    let mut scan = DirScan::default();
    for (path, kind) in files {
        match load_file(&path, kind) {
            Ok(list) => scan.lists.push(list),
            Err(error) => scan.broken.push(BrokenConfig {
                name: claimed_name(&path),
                error,
            }),
        }
    }
    Ok(scan)
}

/// The `name` member of a file that is at least a JSON object.
fn claimed_name(path: &Path) -> Option<String> {
    let bytes = read_bounded(path, MAX_CONFIG_FILE_BYTES).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(map) => map.get("name")?.as_str().map(str::to_owned),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    List,
    Single,
}

fn load_file(path: &Path, kind: FileKind) -> Result<NetworkConfigList, ConfigError> {
    let bytes = read_bounded(path, MAX_CONFIG_FILE_BYTES).map_err(|m| error(path, "", &m))?;
    match kind {
        FileKind::List => NetworkConfigList::from_json(&bytes, path),
        FileKind::Single => NetworkConfigList::from_single_plugin_json(&bytes, path),
    }
}

/// The configuration list named `name` in `dir`: the first in file name order.
/// Other files, even unusable ones, do not hide it.
pub fn find_network(dir: &Path, name: &str) -> Result<Option<NetworkConfigList>, ConfigError> {
    let scan = scan_dir(dir)?;
    match scan.find(name) {
        Ok(found) => Ok(found.cloned()),
        Err(error) => Err(error.clone()),
    }
}
