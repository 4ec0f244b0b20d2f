//! The runtime side of CNI: ADD, DEL and CHECK of a plugin chain with the result cache, as
//! kubelet's runtimes drive libcni.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cache::{self, CACHE_KIND, CacheError, CachedAttachment};
use crate::capability::CapabilityArgs;
use crate::config::{ConfigError, NetworkConfigList, PluginConf, valid_name};
use crate::exec::{
    CniCommand, DEFAULT_PLUGIN_DIRS, PluginError, PluginExec, ProcessExec, join_dirs,
};
use crate::result::{CniResult, RawResult, parse_result};
use crate::version::{CURRENT_VERSION, PluginInfo, SUPPORTED_VERSIONS, SpecVersion, negotiate};

/// The interface name kubelet's runtimes give the pod's network (`CNI_IFNAME`).
pub const DEFAULT_IFNAME: &str = "eth0";

/// How long one plugin call may take before it is killed: kubelet's default
/// `--runtime-request-timeout`, the context containerd runs a pod's CNI calls under (libcni
/// itself has none). Not shorter: a plugin killed half-way can leave what a retry cannot undo
/// (the bridge plugin's DEL deletes the veth, then its masquerade rules, which a second DEL,
/// finding no veth and so no address, skips). With 30 s, 50 pods stopped at once in the
/// emulated VM had their bridge DELs killed and left their masquerade chains behind.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Linux's interface name limit (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// The per-container arguments of a call (libcni's `RuntimeConf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`: the sandbox's id.
    pub container_id: String,
    /// `CNI_NETNS`: the pod's netns path (`/proc/<pause>/ns/net` or a bind-mounted file).
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface to create in the pod (`eth0`).
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments, filtered per plugin into `runtimeConfig`.
    pub capability_args: CapabilityArgs,
}

impl RuntimeConf {
    /// A call for `container_id` in `netns`, on `eth0`, without arguments.
    pub fn new(container_id: impl Into<String>, netns: impl Into<PathBuf>) -> RuntimeConf {
        RuntimeConf {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: DEFAULT_IFNAME.into(),
            args: Vec::new(),
            capability_args: CapabilityArgs::default(),
        }
    }

    /// kubelet's `CNI_ARGS`: `IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;
    /// K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`.
    pub fn with_kubernetes_args(
        mut self,
        namespace: &str,
        name: &str,
        infra_container_id: &str,
        uid: &str,
    ) -> RuntimeConf {
        self.args = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", namespace),
            ("K8S_POD_NAME", name),
            ("K8S_POD_INFRA_CONTAINER_ID", infra_container_id),
            ("K8S_POD_UID", uid),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self
    }

    /// The `CNI_ARGS` value.
    pub fn cni_args(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// libcni's rules for the id and interface name (they become the cache file name), plus
    /// what `CNI_ARGS` cannot carry.
    fn validate(&self, op: CniCommand) -> Result<(), CniError> {
        let invalid = |field: &str, value: &str, reason: &str| CniError::InvalidRuntimeConf {
            op,
            field: field.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if !valid_name(&self.container_id) {
            return Err(invalid(
                "container id",
                &self.container_id,
                "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            ));
        }
        let ifname = &self.ifname;
        if ifname.is_empty()
            || ifname.len() > MAX_IFNAME
            || ifname == "."
            || ifname == ".."
            || ifname
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(invalid(
                "interface name",
                ifname,
                "1-15 characters, not `.` or `..`, without `/`, `:` or spaces",
            ));
        }
        for (k, v) in &self.args {
            if k.is_empty() || k.contains(['=', ';']) || v.contains(';') {
                return Err(invalid(
                    "CNI_ARGS pair",
                    &format!("{k}={v}"),
                    "keys must be non-empty without `=` or `;`, values without `;`",
                ));
            }
        }
        if let Err((field, reason)) = self.capability_args.validate() {
            return Err(invalid(&field, "", &reason));
        }
        Ok(())
    }
}

/// A CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The network config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A runtime argument is invalid; nothing ran.
    #[error("cni {op}: invalid {field}{}: {reason}", quoted(value))]
    InvalidRuntimeConf {
        /// The operation.
        op: CniCommand,
        /// What is invalid.
        field: String,
        /// Its value.
        value: String,
        /// The rule.
        reason: String,
    },
    /// A plugin could not be found or run, or failed.
    #[error("cni {op} network `{network}` container `{container_id}`: {source}")]
    Plugin {
        /// The operation.
        op: CniCommand,
        /// The network.
        network: String,
        /// The container.
        container_id: String,
        /// What the plugin did.
        source: Box<PluginError>,
    },
    /// The result cache could not be used.
    #[error("cni {op} network `{network}` container `{container_id}`: {source}")]
    Cache {
        /// The operation.
        op: CniCommand,
        /// The network.
        network: String,
        /// The container.
        container_id: String,
        /// Why.
        source: CacheError,
    },
    /// ADD failed, and so did the DEL that undoes it.
    #[error("{error}; undoing the partial ADD (DEL of the chain) also failed: {cleanup}")]
    RollbackFailed {
        /// The ADD failure.
        error: Box<CniError>,
        /// The DEL failure.
        cleanup: Box<CniError>,
    },
    /// CHECK needs spec 0.4.0 or newer.
    #[error(
        "cni CHECK network `{network}`: configuration version {version} does not support the \
         CHECK command"
    )]
    CheckUnsupported {
        /// The network.
        network: String,
        /// Its version.
        version: String,
    },
    /// CHECK without a cached ADD result.
    #[error(
        "cni CHECK network `{network}` container `{container_id}`: no cached ADD result in \
         `{path}` (was the container added?)"
    )]
    NoCachedResult {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
        /// The cache file.
        path: PathBuf,
    },
    /// A plugin does not accept the network's spec version.
    #[error(
        "cni plugin `{path}` of network `{network}` does not support cniVersion {version} (it \
         supports {supported})"
    )]
    VersionUnsupported {
        /// The network.
        network: String,
        /// The binary.
        path: PathBuf,
        /// The network's version.
        version: String,
        /// What the plugin supports.
        supported: String,
    },
    /// The plugins share no version this runtime speaks.
    #[error("cni plugins {plugins} share no spec version peapod speaks ({supported})")]
    NoCommonVersion {
        /// The plugin types.
        plugins: String,
        /// What peapod speaks.
        supported: String,
    },
}

fn quoted(v: &str) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!(" `{v}`")
    }
}

impl CniError {
    /// The plugin error inside, following a rollback failure to the original error.
    pub fn plugin_error(&self) -> Option<&PluginError> {
        match self {
            CniError::Plugin { source, .. } => Some(source.as_ref()),
            CniError::RollbackFailed { error, .. } => error.plugin_error(),
            _ => None,
        }
    }
}

/// Wait until no process runs an ADD of `container_id` on `ifname` any more: a plugin orphaned
/// by a killed runtime finishes its one step (a plugin killed half-way could leave a state its
/// own DEL refuses, as the bridge plugin's masquerade rule without its chain). One that is still
/// running after 20 s gets SIGKILL (with its process group: its iptables children).
fn stop_adding(container_id: &str, ifname: &str, plugins: &[PathBuf]) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    // As `/proc/<pid>/exe` names them: symlinks resolved.
    let plugins: Vec<PathBuf> = plugins
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let started = std::time::Instant::now();
    loop {
        let pids = cache::adding_processes(container_id, ifname, &plugins);
        if pids.is_empty() || started.elapsed() > Duration::from_secs(25) {
            return;
        }
        if started.elapsed() > Duration::from_secs(20) {
            for pid in pids {
                let pid = Pid::from_raw(pid);
                if nix::unistd::getpgid(Some(pid)) == Ok(pid) {
                    let _ = killpg(pid, Signal::SIGKILL);
                }
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The CNI runtime: where plugins live, where results are cached, how plugins are run.
#[derive(Clone)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
    timeout: Duration,
    exec: Arc<dyn PluginExec>,
}

impl std::fmt::Debug for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cni")
            .field("plugin_dirs", &self.plugin_dirs)
            .field("cache_dir", &self.cache_dir)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The plugin dirs from a `CNI_PATH`-style value (`:`-separated); the defaults
/// (`/opt/cni/bin:/usr/lib/cni`) when it is unset or empty.
pub fn plugin_dirs(cni_path: Option<&str>) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = cni_path
        .unwrap_or("")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect()
    } else {
        dirs
    }
}

impl Cni {
    /// A runtime running real plugin binaries from `plugin_dirs`, caching results under
    /// `cache_dir` (libcni's is `/var/lib/cni`).
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Cni {
        Cni {
            plugin_dirs,
            cache_dir: cache_dir.into(),
            timeout: DEFAULT_TIMEOUT,
            exec: Arc::new(ProcessExec),
        }
    }

    /// Run plugins through `exec` instead (tests).
    pub fn with_exec(mut self, exec: Arc<dyn PluginExec>) -> Cni {
        self.exec = exec;
        self
    }

    /// Kill a plugin call after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Cni {
        self.timeout = timeout;
        self
    }

    /// The plugin dirs.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The cache file of an attachment.
    pub fn cache_path(&self, network: &str, rt: &RuntimeConf) -> PathBuf {
        cache::cache_path(&self.cache_dir, network, &rt.container_id, &rt.ifname)
    }

    /// The cached attachment of `rt` on `network`, if any.
    pub fn cached(
        &self,
        network: &str,
        rt: &RuntimeConf,
    ) -> Result<Option<CachedAttachment>, CniError> {
        rt.validate(CniCommand::Check)?;
        cache::read(&self.cache_path(network, rt)).map_err(|source| CniError::Cache {
            op: CniCommand::Check,
            network: network.to_string(),
            container_id: rt.container_id.clone(),
            source,
        })
    }

    /// Attach: ADD each plugin in order, each given the previous one's result; cache the final
    /// result. Nothing runs unless every binary is found. When a plugin fails (or the cache
    /// cannot be written), the whole chain is DELeted in reverse order with the partial result,
    /// so nothing is left behind.
    pub fn add(&self, net: &NetworkConfigList, rt: &RuntimeConf) -> Result<CniResult, CniError> {
        let op = CniCommand::Add;
        rt.validate(op)?;
        let paths = self.find_all(op, net, rt)?;
        let mut entry = CachedAttachment {
            kind: CACHE_KIND.into(),
            container_id: rt.container_id.clone(),
            config: net.bytes.clone(),
            if_name: rt.ifname.clone(),
            network_name: net.name.clone(),
            netns: rt.netns.to_string_lossy().into_owned(),
            cni_args: rt
                .args
                .iter()
                .map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
            capability_args: rt.capability_args.clone(),
            result: None,
        };
        // Before the first plugin and after each one, what DEL needs to undo this ADD if the
        // runtime is killed half-way (see `del`).
        let partial = cache::partial_path(&self.cache_path(&net.name, rt));
        let cache_err = |source| CniError::Cache {
            op,
            network: net.name.clone(),
            container_id: rt.container_id.clone(),
            source,
        };
        cache::write(&partial, &entry).map_err(cache_err)?;
        let mut prev: Option<RawResult> = None;
        for (plugin, path) in net.plugins.iter().zip(&paths) {
            let prev_value = prev.as_ref().map(|p| p.as_version(&net.cni_version));
            let stdin = plugin_stdin(net, plugin, prev_value.as_ref(), rt);
            let step = self
                .invoke(op, path, &stdin, rt)
                .and_then(|out| {
                    parse_result(&out, &net.cni_version).map_err(|reason| PluginError::BadOutput {
                        path: path.clone(),
                        command: op,
                        reason,
                    })
                })
                .map_err(|source| self.plugin_err(op, net, rt, source));
            match step {
                Ok(r) => {
                    entry.result = Some(r.raw.clone());
                    let saved = cache::write(&partial, &entry).map_err(cache_err);
                    prev = Some(r);
                    if let Err(e) = saved {
                        return Err(self.roll_back(net, rt, &paths, prev.as_ref(), e));
                    }
                }
                Err(e) => return Err(self.roll_back(net, rt, &paths, prev.as_ref(), e)),
            }
        }
        // A list has at least one plugin, so there is a result.
        let Some(result) = prev else {
            return Err(self.plugin_err(
                op,
                net,
                rt,
                PluginError::BadOutput {
                    path: net.origin.clone(),
                    command: op,
                    reason: "the network has no plugins".into(),
                },
            ));
        };
        if let Err(source) = cache::write(&self.cache_path(&net.name, rt), &entry) {
            let e = cache_err(source);
            return Err(self.roll_back(net, rt, &paths, Some(&result), e));
        }
        // The complete entry is in place: a leftover partial one would only be ignored.
        let _ = cache::remove(&partial);
        Ok(result.typed)
    }

    /// Undo a failed ADD: DEL of the whole chain with the partial result, then drop any cache
    /// entry (an earlier ADD's is stale now).
    fn roll_back(
        &self,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
        paths: &[PathBuf],
        partial: Option<&RawResult>,
        error: CniError,
    ) -> CniError {
        let prev = partial.map(|p| p.as_version(&net.cni_version));
        let cleanup = self
            .del_chain(net, rt, paths, prev.as_ref())
            .and_then(|()| self.remove_cache(CniCommand::Del, net, rt));
        match cleanup {
            Ok(()) => error,
            Err(cleanup) => CniError::RollbackFailed {
                error: Box::new(error),
                cleanup: Box::new(cleanup),
            },
        }
    }

    /// Detach: DEL each plugin in reverse order, each given the cached ADD result as
    /// `prevResult`, then drop the cache entry. When a cache entry exists, its config and
    /// arguments are used (what ADD ran with, even if the file changed since); without one
    /// (never added, already deleted, or a corrupt entry), DEL runs with `net` alone.
    /// Idempotent: the reference plugins treat a missing netns or allocation as done. On a
    /// plugin failure the cache entry stays, for the retry.
    pub fn del(&self, net: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        let op = CniCommand::Del;
        rt.validate(op)?;
        let path = self.cache_path(&net.name, rt);
        // A corrupt entry must not block teardown: run with the config alone (as libcni).
        // Without a complete entry, an ADD that was interrupted left a partial one: the plugin
        // it was running, orphaned if the runtime was killed, is waited for first (finishing
        // after DEL, it would leave its veth, address or rules), and the result so far is
        // DEL's prevResult (the firewall and portmap plugins find the pod's rules by its
        // addresses).
        let mut interrupted = false;
        let cached = match cache::read(&path).ok().flatten() {
            Some(c) => Some(c),
            None => {
                let partial = cache::read(&cache::partial_path(&path)).ok().flatten();
                interrupted = partial.is_some();
                partial
            }
        };
        let mut use_net = net.clone();
        let mut use_rt = rt.clone();
        let mut prev = None;
        if let Some(c) = &cached {
            if let Ok(list) = NetworkConfigList::from_list_bytes(&c.config, &path)
                && list.name == net.name
            {
                use_net = list;
            }
            // As libcni: the cached CNI_ARGS when there are any, the cached capabilities.
            if !c.cni_args.is_empty() {
                use_rt.args = c
                    .cni_args
                    .iter()
                    .map(|[k, v]| (k.clone(), v.clone()))
                    .collect();
            }
            use_rt.capability_args = c.capability_args.clone();
            // The cached result is DEL's prevResult from 0.4.0 on.
            let has_prev = SpecVersion::parse(&use_net.cni_version).is_some_and(|v| v.has_check());
            if has_prev && let Some(raw) = &c.result {
                prev = parse_result(raw.to_string().as_bytes(), &use_net.cni_version)
                    .ok()
                    .map(|r| r.as_version(&use_net.cni_version));
            }
        }
        let paths = self.find_all(op, &use_net, &use_rt)?;
        if interrupted {
            stop_adding(&rt.container_id, &rt.ifname, &paths);
        }
        let mut done = self.del_chain(&use_net, &use_rt, &paths, prev.as_ref());
        if interrupted && done.is_err() {
            // A plugin cut off half-way (the killed runtime's pipes gone, its iptables child
            // died of SIGPIPE) can leave a state its own DEL trips over after undoing the rest:
            // the bridge plugin's address without its masquerade chain. A second DEL finds
            // nothing of it left and succeeds.
            done = self.del_chain(&use_net, &use_rt, &paths, prev.as_ref());
        }
        done?;
        self.remove_cache(op, net, rt)
    }

    fn del_chain(
        &self,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
        paths: &[PathBuf],
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let op = CniCommand::Del;
        for (plugin, path) in net.plugins.iter().zip(paths).rev() {
            let stdin = plugin_stdin(net, plugin, prev, rt);
            self.invoke(op, path, &stdin, rt)
                .map_err(|source| self.plugin_err(op, net, rt, source))?;
        }
        Ok(())
    }

    fn remove_cache(
        &self,
        op: CniCommand,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<(), CniError> {
        let path = self.cache_path(&net.name, rt);
        cache::remove(&cache::partial_path(&path))
            .and_then(|()| cache::remove(&path))
            .map_err(|source| CniError::Cache {
                op,
                network: net.name.clone(),
                container_id: rt.container_id.clone(),
                source,
            })
    }

    /// Verify the attachment: CHECK each plugin in order with the cached ADD result. Does
    /// nothing with `disableCheck`; refused before spec 0.4.0 and without a cached result.
    pub fn check(&self, net: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        let op = CniCommand::Check;
        rt.validate(op)?;
        if !SpecVersion::parse(&net.cni_version).is_some_and(|v| v.has_check()) {
            return Err(CniError::CheckUnsupported {
                network: net.name.clone(),
                version: net.cni_version.clone(),
            });
        }
        if net.disable_check {
            return Ok(());
        }
        let path = self.cache_path(&net.name, rt);
        let cache_err = |source| CniError::Cache {
            op,
            network: net.name.clone(),
            container_id: rt.container_id.clone(),
            source,
        };
        let cached = cache::read(&path).map_err(cache_err)?;
        let Some(raw) = cached.and_then(|c| c.result) else {
            return Err(CniError::NoCachedResult {
                network: net.name.clone(),
                container_id: rt.container_id.clone(),
                path,
            });
        };
        let prev = parse_result(raw.to_string().as_bytes(), &net.cni_version)
            .map_err(|reason| {
                cache_err(CacheError::Corrupt {
                    path: path.clone(),
                    reason,
                })
            })?
            .as_version(&net.cni_version);
        let paths = self.find_all(op, net, rt)?;
        for (plugin, path) in net.plugins.iter().zip(&paths) {
            let stdin = plugin_stdin(net, plugin, Some(&prev), rt);
            self.invoke(op, path, &stdin, rt)
                .map_err(|source| self.plugin_err(op, net, rt, source))?;
        }
        Ok(())
    }

    /// A plugin's VERSION answer. A plugin too old for the command (it answers
    /// `unknown CNI_COMMAND: VERSION`) supports 0.1.0 only, as libcni assumes.
    pub fn version(&self, plugin_type: &str) -> Result<PluginInfo, PluginError> {
        let op = CniCommand::Version;
        let path = self.exec.find(plugin_type, &self.plugin_dirs)?;
        let stdin = format!(r#"{{"cniVersion":"{CURRENT_VERSION}"}}"#);
        // libcni's dummy values for plugins built against an old skel that insists on them.
        let env = self.env(op, "", Path::new("dummy"), "dummy", "");
        match self.exec.exec(&path, &env, stdin.as_bytes(), self.timeout) {
            Ok(out) => serde_json::from_slice(&out).map_err(|e| PluginError::BadOutput {
                path,
                command: op,
                reason: format!("version answer is not valid: {e}"),
            }),
            Err(failure) => {
                let err = PluginError::from_failure(&path, op, failure, self.timeout);
                match err.error_object() {
                    Some(o) if o.msg == "unknown CNI_COMMAND: VERSION" => Ok(PluginInfo::legacy()),
                    _ => Err(err),
                }
            }
        }
    }

    /// Check that every plugin of `net` is installed and accepts its `cniVersion`.
    pub fn validate(&self, net: &NetworkConfigList) -> Result<(), CniError> {
        let mut seen = HashMap::new();
        for plugin in &net.plugins {
            if seen.contains_key(&plugin.plugin_type) {
                continue;
            }
            let info = self
                .version(&plugin.plugin_type)
                .map_err(|source| CniError::Plugin {
                    op: CniCommand::Version,
                    network: net.name.clone(),
                    container_id: String::new(),
                    source: Box::new(source),
                })?;
            if !info.supports(&net.cni_version) {
                return Err(CniError::VersionUnsupported {
                    network: net.name.clone(),
                    path: self
                        .exec
                        .find(&plugin.plugin_type, &self.plugin_dirs)
                        .unwrap_or_else(|_| PathBuf::from(&plugin.plugin_type)),
                    version: net.cni_version.clone(),
                    supported: info.supported_versions.join(", "),
                });
            }
            seen.insert(plugin.plugin_type.clone(), info);
        }
        Ok(())
    }

    /// The newest spec version peapod speaks that all `plugin_types` accept (for writing a
    /// generated network).
    pub fn negotiate_version(&self, plugin_types: &[&str]) -> Result<&'static str, CniError> {
        let infos = plugin_types
            .iter()
            .map(|t| {
                self.version(t).map_err(|source| CniError::Plugin {
                    op: CniCommand::Version,
                    network: String::new(),
                    container_id: String::new(),
                    source: Box::new(source),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        negotiate(infos.iter()).ok_or_else(|| CniError::NoCommonVersion {
            plugins: plugin_types.join(", "),
            supported: SUPPORTED_VERSIONS.join(", "),
        })
    }

    /// Every plugin's binary, before anything runs.
    fn find_all(
        &self,
        op: CniCommand,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Vec<PathBuf>, CniError> {
        net.plugins
            .iter()
            .map(|p| {
                self.exec
                    .find(&p.plugin_type, &self.plugin_dirs)
                    .map_err(|source| self.plugin_err(op, net, rt, source))
            })
            .collect()
    }

    fn plugin_err(
        &self,
        op: CniCommand,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
        source: PluginError,
    ) -> CniError {
        CniError::Plugin {
            op,
            network: net.name.clone(),
            container_id: rt.container_id.clone(),
            source: Box::new(source),
        }
    }

    fn env(
        &self,
        op: CniCommand,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        args: &str,
    ) -> Vec<(String, String)> {
        [
            ("CNI_COMMAND", op.as_str().to_string()),
            ("CNI_CONTAINERID", container_id.to_string()),
            ("CNI_NETNS", netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME", ifname.to_string()),
            ("CNI_ARGS", args.to_string()),
            ("CNI_PATH", join_dirs(&self.plugin_dirs)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn invoke(
        &self,
        op: CniCommand,
        path: &Path,
        stdin: &[u8],
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, PluginError> {
        let env = self.env(op, &rt.container_id, &rt.netns, &rt.ifname, &rt.cni_args());
        self.exec
            .exec(path, &env, stdin, self.timeout)
            .map_err(|f| PluginError::from_failure(path, op, f, self.timeout))
    }
}

/// A plugin's stdin: its own config with the list's `name` and `cniVersion`, `prevResult` when
/// given, and `runtimeConfig` holding the capability arguments it declares (and only those).
fn plugin_stdin(
    net: &NetworkConfigList,
    plugin: &PluginConf,
    prev: Option<&Value>,
    rt: &RuntimeConf,
) -> Vec<u8> {
    let mut obj: Map<String, Value> = plugin.raw.clone();
    obj.insert("name".into(), Value::String(net.name.clone()));
    obj.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(p) = prev {
        obj.insert("prevResult".into(), p.clone());
    }
    let runtime_config = rt.capability_args.filtered(plugin.enabled_capabilities());
    if !runtime_config.is_empty() {
        obj.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    // A map of JSON values always serializes.
    serde_json::to_vec(&obj).unwrap_or_default()
}
