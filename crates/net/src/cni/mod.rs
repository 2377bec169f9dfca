//! A CNI client (the Container Network Interface specification, 1.0 and 1.1; results of
//! 0.3.x and 0.4.0 plugins are read too).
//!
//! [`CniClient`] runs a configuration list's plugin chain for one attachment: ADD in
//! order with each result handed on as `prevResult`, CHECK in order, DEL in reverse,
//! STATUS and GC where the list's version has them. ADD's configuration and result are
//! cached per attachment so DEL gets exactly what ADD used.

pub mod cache;
pub mod config;
pub mod exec;
pub mod result;
pub mod version;

use serde_json::{Map, Value};

pub use cache::{AttachmentCache, CacheError, CachedAttachment};
pub use config::{
    BrokenConfig, ConfigError, DirScan, NetworkConfigList, PluginConfig, find_network, load_dir,
    scan_dir,
};
pub use exec::{ExecError, Invocation, PluginExec};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::Version;

/// One attachment of a container to a network, as the runtime describes it.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    pub container_id: String,
    /// `CNI_NETNS`: a namespace path on Linux, the HCN namespace GUID on Windows.
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS`, as `KEY=VALUE` pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `dns`, `ips`, ...), each handed in
    /// `runtimeConfig` only to the plugins that declare the capability.
    pub capability_args: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("network {network:?}: {source}")]
    Exec {
        network: String,
        source: Box<ExecError>,
    },
    /// A plugin run outside any network (VERSION) failed.
    #[error(transparent)]
    Plugin(Box<ExecError>),
    #[error("plugin {plugin:?}: its VERSION answer is malformed: {message}")]
    BadVersionAnswer { plugin: String, message: String },
    #[error("network {network:?}: plugin {plugin:?}: {message}")]
    BadResult {
        network: String,
        plugin: String,
        message: String,
    },
    #[error("network {network:?}: {message}")]
    Invalid { network: String, message: String },
    #[error("network {network:?}: {command} is not in CNI {version} (it needs {needs} or later)")]
    Unsupported {
        network: String,
        command: &'static str,
        version: String,
        needs: &'static str,
    },
    #[error(
        "network {network:?}: container {container_id:?} interface {ifname:?} is already attached; DEL it first"
    )]
    AlreadyAttached {
        network: String,
        container_id: String,
        ifname: String,
    },
    /// ADD failed and the plugins that had run were undone with DEL; `cleanup` says
    /// what that DEL could not undo.
    #[error("{add}{}", cleanup.as_ref().map(|c| format!(" (and DEL to undo it failed: {c})")).unwrap_or_default())]
    AddFailed {
        add: Box<CniError>,
        cleanup: Option<Box<CniError>>,
    },
}

impl CniError {
    /// The plugin's error object, when a plugin reported one.
    pub fn plugin_error(&self) -> Option<(&str, u32, &str, &str)> {
        match self {
            Self::Exec { source, .. } | Self::Plugin(source) => match source.as_ref() {
                ExecError::Plugin {
                    plugin,
                    code,
                    msg,
                    details,
                    ..
                } => Some((plugin, *code, msg, details)),
                _ => None,
            },
            Self::AddFailed { add, .. } => add.plugin_error(),
            _ => None,
        }
    }
}

/// Runs plugin chains and keeps the attachment cache.
#[derive(Debug, Clone)]
pub struct CniClient {
    exec: PluginExec,
    cache: AttachmentCache,
}

impl CniClient {
    pub fn new(exec: PluginExec, cache: AttachmentCache) -> Self {
        Self { exec, cache }
    }

    pub fn cache(&self) -> &AttachmentCache {
        &self.cache
    }

    /// ADD: every plugin in order, each given the previous one's result. The attachment
    /// is cached before the first plugin runs (so a crash leaves a record of what to
    /// DEL) and with its result after the last. If a plugin fails, the whole chain is
    /// run with DEL in reverse order, so the plugins that had succeeded leave nothing.
    pub fn add(
        &self,
        list: &NetworkConfigList,
        attachment: &Attachment,
    ) -> Result<CniResult, CniError> {
        check_attachment(list, attachment)?;
        // A second ADD would overwrite what the first must DEL (and leak its address).
        if self
            .cache
            .load(&list.name, &attachment.container_id, &attachment.ifname)?
            .is_some()
        {
            return Err(CniError::AlreadyAttached {
                network: list.name.clone(),
                container_id: attachment.container_id.clone(),
                ifname: attachment.ifname.clone(),
            });
        }
        let mut entry = CachedAttachment {
            network_name: list.name.clone(),
            container_id: attachment.container_id.clone(),
            if_name: attachment.ifname.clone(),
            netns: attachment.netns.clone(),
            config: list.to_json(),
            cni_args: attachment.args.clone(),
            capability_args: attachment.capability_args.clone(),
            result: None,
        };
        self.cache.store(&entry)?;
        let args = cni_args_text(&attachment.args);
        let mut previous: Option<Value> = None;
        for plugin in &list.plugins {
            let outcome = self
                .invoke(list, plugin, "ADD", attachment, &args, previous.as_ref())
                .and_then(|output| {
                    result::convert_result(&output, &list.cni_version).map_err(|message| {
                        CniError::BadResult {
                            network: list.name.clone(),
                            plugin: plugin.plugin_type.clone(),
                            message,
                        }
                    })
                });
            match outcome {
                Ok(result) => previous = Some(result),
                Err(add) => {
                    let cleanup = self
                        .del_chain(list, attachment, &args, previous.as_ref())
                        .err();
                    if cleanup.is_none() {
                        self.cache.remove(
                            &list.name,
                            &attachment.container_id,
                            &attachment.ifname,
                        )?;
                    }
                    return Err(CniError::AddFailed {
                        add: Box::new(add),
                        cleanup: cleanup.map(Box::new),
                    });
                }
            }
        }
        let Some(result) = previous else {
            return Err(CniError::Invalid {
                network: list.name.clone(),
                message: "the list has no plugins".into(),
            });
        };
        let typed = result::typed(&result).map_err(|message| CniError::Invalid {
            network: list.name.clone(),
            message,
        })?;
        entry.result = Some(result);
        self.cache.store(&entry)?;
        Ok(typed)
    }

    /// DEL: every plugin in reverse order. With a cache entry, the cached configuration,
    /// arguments and result are used (`list` may then have changed or be gone: pass the
    /// current one, or `None` to rely on the cache); without one, `list` and
    /// `attachment` are used with no `prevResult`. The entry is removed once all
    /// plugins succeeded.
    pub fn del(
        &self,
        list: Option<&NetworkConfigList>,
        network: &str,
        attachment: &Attachment,
    ) -> Result<(), CniError> {
        config::check_network_name(network).map_err(|message| CniError::Invalid {
            network: network.into(),
            message,
        })?;
        check_ids(network, attachment)?;
        let cached = self
            .cache
            .load(network, &attachment.container_id, &attachment.ifname)?;
        if let Some(cached) = cached {
            let (list, attachment) = cached_attachment(&cached)?;
            let previous = cached
                .result
                .as_ref()
                .map(|r| result::convert_value(r.clone(), &list.cni_version))
                .transpose()
                .map_err(|message| CniError::Invalid {
                    network: network.into(),
                    message,
                })?;
            self.del_chain(
                &list,
                &attachment,
                &cni_args_text(&attachment.args),
                previous.as_ref(),
            )?;
        } else {
            let Some(list) = list else {
                // Nothing was cached and nothing is configured: nothing to undo.
                return Ok(());
            };
            check_attachment(list, attachment)?;
            self.del_chain(list, attachment, &cni_args_text(&attachment.args), None)?;
        }
        self.cache
            .remove(network, &attachment.container_id, &attachment.ifname)?;
        Ok(())
    }

    fn del_chain(
        &self,
        list: &NetworkConfigList,
        attachment: &Attachment,
        args: &str,
        previous: Option<&Value>,
    ) -> Result<(), CniError> {
        for plugin in list.plugins.iter().rev() {
            self.invoke(list, plugin, "DEL", attachment, args, previous)?;
        }
        Ok(())
    }

    /// CHECK (0.4.0 and later): every plugin in order, each given the cached result of
    /// ADD. A list with `disableCheck` passes unchecked.
    pub fn check(&self, network: &str, attachment: &Attachment) -> Result<(), CniError> {
        check_ids(network, attachment)?;
        let Some(cached) =
            self.cache
                .load(network, &attachment.container_id, &attachment.ifname)?
        else {
            return Err(CniError::Invalid {
                network: network.into(),
                message: format!(
                    "no cached ADD for container {:?} interface {:?} to check",
                    attachment.container_id, attachment.ifname
                ),
            });
        };
        let (list, attachment) = cached_attachment(&cached)?;
        if !list.version().has_check() {
            return Err(unsupported(&list, "CHECK", "0.4.0"));
        }
        if list.disable_check {
            return Ok(());
        }
        let Some(result) = &cached.result else {
            return Err(CniError::Invalid {
                network: network.into(),
                message: "the cached ADD has no result (it did not finish)".into(),
            });
        };
        let previous =
            result::convert_value(result.clone(), &list.cni_version).map_err(|message| {
                CniError::Invalid {
                    network: network.into(),
                    message,
                }
            })?;
        let args = cni_args_text(&attachment.args);
        for plugin in &list.plugins {
            self.invoke(&list, plugin, "CHECK", &attachment, &args, Some(&previous))?;
        }
        Ok(())
    }

    /// VERSION: the specification versions a plugin says it supports, for refusing a
    /// list whose `cniVersion` one of its plugins cannot speak before anything runs.
    pub fn plugin_versions(&self, plugin_type: &str) -> Result<Vec<String>, CniError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct VersionInfo {
            supported_versions: Vec<String>,
        }
        let invocation = Invocation {
            command: "VERSION",
            ..Invocation::default()
        };
        let output = self
            .exec
            .run(plugin_type, &invocation, br#"{"cniVersion":"1.1.0"}"#)
            .map_err(|source| CniError::Plugin(Box::new(source)))?;
        let info: VersionInfo =
            serde_json::from_slice(&output).map_err(|e| CniError::BadVersionAnswer {
                plugin: plugin_type.into(),
                message: e.to_string(),
            })?;
        Ok(info.supported_versions)
    }

    /// STATUS (1.1.0 and later): whether every plugin of the list is ready for ADD.
    pub fn status(&self, list: &NetworkConfigList) -> Result<(), CniError> {
        if !list.version().has_status_and_gc() {
            return Err(unsupported(list, "STATUS", "1.1.0"));
        }
        for plugin in &list.plugins {
            let stdin = plugin_stdin(list, plugin, &Map::new(), None, None)?;
            let status = Invocation {
                command: "STATUS",
                ..Invocation::default()
            };
            self.run(list, plugin, &status, &stdin)?;
        }
        Ok(())
    }

    /// GC (1.1.0 and later): tells every plugin of the list which attachments are
    /// still valid, so it frees what any other held, and drops the cache entries of the
    /// others. Before 1.1.0 (or with `disableGC`) this does nothing: DEL the stale
    /// attachments from [`AttachmentCache::list`] instead. `valid` holds
    /// (container ID, interface name) pairs.
    pub fn gc(&self, list: &NetworkConfigList, valid: &[(String, String)]) -> Result<(), CniError> {
        if !list.version().has_status_and_gc() {
            return Err(unsupported(list, "GC", "1.1.0"));
        }
        if list.disable_gc {
            return Ok(());
        }
        let attachments: Vec<Value> = valid
            .iter()
            .map(|(container_id, ifname)| serde_json::json!({ "containerID": container_id, "ifname": ifname }))
            .collect();
        for plugin in &list.plugins {
            let mut extra = Map::new();
            extra.insert(
                "cni.dev/valid-attachments".into(),
                Value::Array(attachments.clone()),
            );
            let stdin = plugin_stdin(list, plugin, &Map::new(), None, Some(extra))?;
            let gc = Invocation {
                command: "GC",
                ..Invocation::default()
            };
            self.run(list, plugin, &gc, &stdin)?;
        }
        for stale in self.cache.list(&list.name)? {
            if !valid
                .iter()
                .any(|(c, i)| *c == stale.container_id && *i == stale.if_name)
            {
                self.cache
                    .remove(&list.name, &stale.container_id, &stale.if_name)?;
            }
        }
        Ok(())
    }

    fn invoke(
        &self,
        list: &NetworkConfigList,
        plugin: &PluginConfig,
        command: &str,
        attachment: &Attachment,
        args: &str,
        previous: Option<&Value>,
    ) -> Result<Vec<u8>, CniError> {
        let stdin = plugin_stdin(list, plugin, &attachment.capability_args, previous, None)?;
        let invocation = Invocation {
            command,
            container_id: Some(&attachment.container_id),
            netns: Some(&attachment.netns),
            ifname: Some(&attachment.ifname),
            args: Some(args),
        };
        self.run(list, plugin, &invocation, &stdin)
    }

    /// Runs one plugin of `list`; a failure names the network.
    fn run(
        &self,
        list: &NetworkConfigList,
        plugin: &PluginConfig,
        invocation: &Invocation<'_>,
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        self.exec
            .run(&plugin.plugin_type, invocation, stdin)
            .map_err(|source| CniError::Exec {
                network: list.name.clone(),
                source: Box::new(source),
            })
    }
}

/// The configuration one plugin reads: its own object with the list's `name` and
/// `cniVersion`, `prevResult` when there is one, and in `runtimeConfig` the
/// capability arguments it declared.
fn plugin_stdin(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    capability_args: &Map<String, Value>,
    previous: Option<&Value>,
    extra: Option<Map<String, Value>>,
) -> Result<Vec<u8>, CniError> {
    let mut config = plugin.raw.clone();
    config.insert("name".into(), list.name.clone().into());
    config.insert("cniVersion".into(), list.cni_version.clone().into());
    // A `capabilities` map is for the runtime; `runtimeConfig` replaces it.
    config.remove("capabilities");
    let runtime_config: Map<String, Value> = capability_args
        .iter()
        .filter(|(key, _)| plugin.wants(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if runtime_config.is_empty() {
        config.remove("runtimeConfig");
    } else {
        config.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    match previous {
        Some(previous) => {
            config.insert("prevResult".into(), previous.clone());
        }
        None => {
            config.remove("prevResult");
        }
    }
    config.extend(extra.unwrap_or_default());
    serde_json::to_vec(&Value::Object(config)).map_err(|e| CniError::Invalid {
        network: list.name.clone(),
        message: e.to_string(),
    })
}

fn unsupported(list: &NetworkConfigList, command: &'static str, needs: &'static str) -> CniError {
    CniError::Unsupported {
        network: list.name.clone(),
        command,
        version: list.cni_version.clone(),
        needs,
    }
}

/// The list and attachment a cache entry recorded.
fn cached_attachment(
    cached: &CachedAttachment,
) -> Result<(NetworkConfigList, Attachment), CniError> {
    let bytes = serde_json::to_vec(&cached.config).map_err(|e| CniError::Invalid {
        network: cached.network_name.clone(),
        message: e.to_string(),
    })?;
    let list = NetworkConfigList::from_json(&bytes, std::path::Path::new("(attachment cache)"))?;
    let attachment = Attachment {
        container_id: cached.container_id.clone(),
        netns: cached.netns.clone(),
        ifname: cached.if_name.clone(),
        args: cached.cni_args.clone(),
        capability_args: cached.capability_args.clone(),
    };
    Ok((list, attachment))
}

fn check_attachment(list: &NetworkConfigList, attachment: &Attachment) -> Result<(), CniError> {
    check_ids(&list.name, attachment)?;
    let invalid = |message: String| CniError::Invalid {
        network: list.name.clone(),
        message,
    };
    for (key, value) in &attachment.args {
        if key.is_empty() || key.contains(['=', ';']) || value.contains(';') {
            return Err(invalid(format!(
                "CNI_ARGS entry {key:?}={value:?}: keys may not be empty or hold `=` or `;`, values may not hold `;`"
            )));
        }
    }
    Ok(())
}

/// The container ID and interface name become environment values and a cache file
/// name, so they follow the specification's rules and are safe in a path.
fn check_ids(network: &str, attachment: &Attachment) -> Result<(), CniError> {
    let invalid = |message: String| CniError::Invalid {
        network: network.into(),
        message,
    };
    config::check_identifier(&attachment.container_id)
        .map_err(|m| invalid(format!("container ID {:?} {m}", attachment.container_id)))?;
    let ifname = &attachment.ifname;
    let bad_char = ifname.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '/' | '\\' | ':' | '<' | '>' | '|' | '?' | '*' | '"')
    });
    if ifname.is_empty() || ifname.len() > 15 || ifname == "." || ifname == ".." || bad_char {
        return Err(invalid(format!(
            "interface name {ifname:?}: 1 to 15 characters, not `.` or `..`, without whitespace or `/\\:<>|?*\"`"
        )));
    }
    Ok(())
}

fn cni_args_text(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}
