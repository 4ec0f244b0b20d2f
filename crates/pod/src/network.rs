//! Pod networking through CNI, as kubelet's runtimes do it with libcni: `pod run` picks the
//! network (the first config of the conf dir, or peapod's default one written there) and
//! stores what the pod needs in `<pod>/network.json`; the supervisor runs ADD once the pause
//! process holds the pod's network namespace and before any container starts, and DEL when
//! the sandbox goes. `pod rm` runs DEL again when the supervisor could not (killed), so every
//! end of a pod releases its IP, veth and iptables rules. A marker file,
//! `<pod>/network.attached`, is written before ADD and removed once DEL succeeded: DEL is
//! idempotent, and a pod that never attached costs no plugin run on removal.
//!
//! Without any plugin binary of the network (no `containernetworking-plugins` installed),
//! pods keep the loopback-only network namespace the pause process sets up, and `pod run`
//! warns once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::{PodError, PodPaths};
use peapod_cni::exec::{PLUGINS_PACKAGE, find_in_path};
use peapod_cni::{
    CapabilityArgs, Cni, CniResult, DefaultNetwork, NetworkConfigList, PortMapping, Protocol,
    RuntimeConf, bandwidth_from_annotations, ensure_default_network,
};

/// What the supervisor needs to attach the pod and anyone to detach it (0600 in the pod dir).
pub const NETWORK_FILE: &str = "network.json";
/// Present from before ADD until DEL succeeded.
pub const ATTACHED_FILE: &str = "network.attached";
/// The chain of peapod's default network, checked for binaries before it is written.
const DEFAULT_CHAIN: [&str; 4] = ["bridge", "host-local", "portmap", "firewall"];

/// Where the pod verbs find CNI: `--cni-conf-dir`, `--cni-bin-dir` (else `CNI_PATH`, else
/// `/opt/cni/bin:/usr/lib/cni`) and libcni's result cache.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub conf_dir: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

impl NetOptions {
    pub fn new(conf_dir: Option<&Path>, bin_dir: Option<&str>) -> NetOptions {
        let cni_path = bin_dir
            .map(str::to_string)
            .or_else(|| std::env::var("CNI_PATH").ok());
        NetOptions {
            conf_dir: conf_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(peapod_cni::config::DEFAULT_CONF_DIR)),
            plugin_dirs: peapod_cni::plugin_dirs(cni_path.as_deref()),
            cache_dir: PathBuf::from(peapod_cni::cache::DEFAULT_CACHE_DIR),
        }
    }

    fn dirs(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// The network the pods of one `pod run` join.
#[derive(Debug, Clone)]
pub enum Network {
    Cni(NetworkConfigList),
    /// No plugin binary found: loopback only, with the warning to print once.
    LoopbackOnly {
        warning: String,
    },
}

fn net_err(e: impl std::fmt::Display) -> PodError {
    PodError::Invalid(format!("pod network: {e}"))
}

/// The network of `opts`: the conf dir's first config, else peapod's default network, written
/// there. When none of the chain's plugin binaries exists, nothing is written and pods get
/// loopback only.
pub fn resolve(opts: &NetOptions) -> Result<Network, PodError> {
    let existing = peapod_cni::config::config_files(&opts.conf_dir).map_err(net_err)?;
    let (name, types): (String, Vec<String>) = if existing.is_empty() {
        (
            peapod_cni::default_net::DEFAULT_NETWORK_NAME.into(),
            DEFAULT_CHAIN.iter().map(|s| s.to_string()).collect(),
        )
    } else {
        let list = peapod_cni::load_default(&opts.conf_dir).map_err(net_err)?;
        let types = list.plugins.iter().map(|p| p.plugin_type.clone()).collect();
        (list.name, types)
    };
    if !types
        .iter()
        .any(|t| find_in_path(t, &opts.plugin_dirs).is_ok())
    {
        return Ok(Network::LoopbackOnly {
            warning: format!(
                "no CNI plugin of network `{name}` ({}) found in {}: pods get loopback only \
                 (hint: install Debian's `{PLUGINS_PACKAGE}` package, or set --cni-bin-dir / CNI_PATH)",
                types.join(", "),
                opts.dirs()
            ),
        });
    }
    let (list, _) = ensure_default_network(&opts.conf_dir, || {
        DefaultNetwork::for_host(Path::new("/proc/net"), &opts.conf_dir)
    })
    .map_err(net_err)?;
    Ok(Network::Cni(list))
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// The capability arguments of `pod`: its `hostPort`s as `portMappings` (kubelet's rule:
/// containers' and init containers' ports with a non-zero `hostPort`) and its bandwidth
/// annotations.
pub fn capability_args(pod: &Pod) -> Result<CapabilityArgs, PodError> {
    let mut args = CapabilityArgs::default();
    let spec = pod.spec.clone().unwrap_or_default();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for (i, p) in c.ports.iter().flatten().enumerate() {
            let hp = p.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let field = || format!("container `{}` ports[{i}]", c.name);
            let protocol = Protocol::from_kubernetes(p.protocol.as_deref().unwrap_or(""))
                .ok_or_else(|| {
                    PodError::Invalid(format!(
                        "{}.protocol: unsupported value {:?}",
                        field(),
                        p.protocol
                    ))
                })?;
            let port = |n: i32, what: &str| {
                u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| {
                    PodError::Invalid(format!("{}.{what}: {n} is not in 1-65535", field()))
                })
            };
            args.port_mappings.push(PortMapping {
                host_port: port(hp, "hostPort")?,
                container_port: port(p.container_port, "containerPort")?,
                protocol,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let annotations: BTreeMap<String, String> =
        pod.metadata.annotations.clone().unwrap_or_default();
    args.bandwidth = bandwidth_from_annotations(&annotations, |s| {
        s.parse::<peapod_kube::quantity::Quantity>()
            .map(|q| q.to_bytes())
            .map_err(|e| e.to_string())
    })
    .map_err(|e| PodError::Invalid(e.to_string()))?;
    Ok(args)
}

/// Whether `pod` can join `net`: what it asks of the network (host ports, bandwidth) needs a
/// plugin declaring that capability, else `pod run` refuses it instead of ignoring the field.
pub fn check(pod: &Pod, net: &Network) -> Result<(), PodError> {
    if host_network(pod) {
        return Ok(());
    }
    let args = capability_args(pod)?;
    let needs: Vec<(&str, &str)> = [
        (!args.port_mappings.is_empty()).then_some(("portMappings", "containerPort.hostPort")),
        args.bandwidth.is_some().then_some((
            "bandwidth",
            "annotations kubernetes.io/ingress-bandwidth, kubernetes.io/egress-bandwidth",
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (capability, field) in needs {
        match net {
            Network::LoopbackOnly { warning } => {
                return Err(PodError::Invalid(format!(
                    "{field}: needs a CNI network, and {warning}"
                )));
            }
            Network::Cni(list) => {
                if !list
                    .plugins
                    .iter()
                    .any(|p| p.enabled_capabilities().any(|c| c == capability))
                {
                    return Err(PodError::Invalid(format!(
                        "{field}: no plugin of CNI network `{}` (`{}`) has the `{capability}` \
                         capability (hint: add the {} plugin to the chain)",
                        list.name,
                        list.origin.display(),
                        if capability == "bandwidth" {
                            "bandwidth"
                        } else {
                            "portmap"
                        }
                    )));
                }
            }
        }
    }
    Ok(())
}

/// What the pod's sandbox needs from CNI, fixed at `pod run` (a later change of the conf dir
/// does not change how a running pod is detached).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodNetwork {
    pub network: String,
    pub origin: PathBuf,
    /// The network configuration list, as read.
    pub config: serde_json::Value,
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    /// `CNI_CONTAINERID`: `peapod-<key>`, the key of the pod's cgroup (unique per `--root` and
    /// pod name).
    pub container_id: String,
    /// kubelet's `CNI_ARGS`.
    pub args: Vec<(String, String)>,
    pub capability_args: CapabilityArgs,
}

impl PodNetwork {
    /// The network of `pod` (already given its uid), or `None` when it has none of its own
    /// (`hostNetwork`, or no plugins).
    pub fn plan(
        pod: &Pod,
        paths: &PodPaths,
        net: &Network,
        opts: &NetOptions,
    ) -> Result<Option<PodNetwork>, PodError> {
        let list = match net {
            Network::Cni(list) if !host_network(pod) => list,
            _ => return Ok(None),
        };
        let key = paths.cgroup.rsplit("pod-").next().unwrap_or_default();
        let container_id = format!("peapod-{key}");
        let rt = RuntimeConf::new(container_id.clone(), "").with_kubernetes_args(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
            &container_id,
            pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        Ok(Some(PodNetwork {
            network: list.name.clone(),
            origin: list.origin.clone(),
            config: serde_json::from_slice(&list.bytes).map_err(net_err)?,
            plugin_dirs: opts.plugin_dirs.clone(),
            cache_dir: opts.cache_dir.clone(),
            container_id,
            args: rt.args,
            capability_args: capability_args(pod)?,
        }))
    }

    pub fn save(&self, paths: &PodPaths) -> Result<(), PodError> {
        let data = serde_json::to_vec_pretty(self).map_err(net_err)?;
        crate::write_private(&paths.dir.join(NETWORK_FILE), &data)
    }

    /// The pod's network, if it has one.
    pub fn load(paths: &PodPaths) -> Result<Option<PodNetwork>, PodError> {
        let p = paths.dir.join(NETWORK_FILE);
        match std::fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| PodError::Invalid(format!("corrupt `{}`: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PodError::io("read", &p, e)),
        }
    }

    fn list(&self) -> Result<NetworkConfigList, PodError> {
        let bytes = serde_json::to_vec(&self.config).map_err(net_err)?;
        NetworkConfigList::from_list_bytes(&bytes, &self.origin).map_err(net_err)
    }

    fn cni(&self) -> Cni {
        Cni::new(self.plugin_dirs.clone(), &self.cache_dir)
    }

    fn runtime_conf(&self, netns: &Path) -> RuntimeConf {
        let mut rt = RuntimeConf::new(self.container_id.clone(), netns);
        rt.args = self.args.clone();
        rt.capability_args = self.capability_args.clone();
        rt
    }

    /// ADD of the pod's network in `netns`. A failed ADD has been undone by the DEL of the
    /// chain (libcni's rule); only if that failed too the marker stays for a later DEL.
    pub fn attach(&self, paths: &PodPaths, netns: &Path) -> Result<CniResult, String> {
        let marker = paths.dir.join(ATTACHED_FILE);
        crate::write_private(&marker, b"").map_err(|e| e.to_string())?;
        let list = self.list().map_err(|e| e.to_string())?;
        match self.cni().add(&list, &self.runtime_conf(netns)) {
            Ok(r) => Ok(r),
            Err(e) => {
                if !matches!(e, peapod_cni::CniError::RollbackFailed { .. }) {
                    let _ = std::fs::remove_file(&marker);
                }
                Err(e.to_string())
            }
        }
    }
}

/// DEL of the pod's network if it may be attached. `netns` is the pod's network namespace
/// while it exists; `None` once it is gone (the plugins then release the IP and rules by
/// container id, and the kernel removed the veth with the namespace). Idempotent.
pub fn detach(paths: &PodPaths, netns: Option<&Path>) -> Result<(), PodError> {
    let marker = paths.dir.join(ATTACHED_FILE);
    if std::fs::symlink_metadata(&marker).is_err() {
        return Ok(());
    }
    if let Some(net) = PodNetwork::load(paths)? {
        let list = net.list()?;
        let rt = net.runtime_conf(netns.unwrap_or(Path::new("")));
        net.cni()
            .del(&list, &rt)
            .map_err(|e| PodError::Invalid(format!("pod `{}`: {e}", paths.name)))?;
    }
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(PodError::io("remove", &marker, e))
        }
        _ => Ok(()),
    }
}

/// One line for `peapod node show`: the network pods join with `opts`, without writing
/// anything.
pub fn describe(opts: &NetOptions) -> String {
    let found: Vec<&str> = DEFAULT_CHAIN
        .iter()
        .copied()
        .filter(|t| find_in_path(t, &opts.plugin_dirs).is_ok())
        .collect();
    let plugins = if found.is_empty() {
        format!(
            "no plugins in {} (pods get loopback only; install {PLUGINS_PACKAGE})",
            opts.dirs()
        )
    } else {
        format!("plugins from {}", opts.dirs())
    };
    match peapod_cni::config::config_files(&opts.conf_dir) {
        Ok(files) if !files.is_empty() => match peapod_cni::load_default(&opts.conf_dir) {
            Ok(list) => format!(
                "{} ({}): {}; {plugins}",
                list.name,
                list.origin.display(),
                list.plugins
                    .iter()
                    .map(|p| p.plugin_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("unusable: {e}"),
        },
        Ok(_) => match DefaultNetwork::for_host(Path::new("/proc/net"), &opts.conf_dir) {
            Ok(d) => format!(
                "{} (default, written to `{}` by the first pod run): bridge {} on {}; {plugins}",
                peapod_cni::default_net::DEFAULT_NETWORK_NAME,
                opts.conf_dir
                    .join(peapod_cni::default_net::DEFAULT_CONF_FILE)
                    .display(),
                peapod_cni::default_net::DEFAULT_BRIDGE,
                d.subnet
            ),
            Err(e) => format!("none: {e}"),
        },
        Err(e) => format!("unusable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        peapod_kube::manifest::parse_manifests(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n{yaml}"
        ))
        .unwrap()
        .remove(0)
    }

    #[test]
    fn host_ports_and_bandwidth_become_capability_args() {
        let p = pod(
            "  annotations: {kubernetes.io/ingress-bandwidth: 1M}\nspec:\n  containers:\n  - name: c\n    image: host\n    ports:\n    - {containerPort: 8080, hostPort: 18080}\n    - {containerPort: 53, hostPort: 1053, protocol: UDP, hostIP: 127.0.0.1}\n    - {containerPort: 9090}\n",
        );
        let a = capability_args(&p).unwrap();
        assert_eq!(
            a.port_mappings,
            vec![
                PortMapping {
                    host_port: 18080,
                    container_port: 8080,
                    protocol: Protocol::Tcp,
                    host_ip: String::new()
                },
                PortMapping {
                    host_port: 1053,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: "127.0.0.1".into()
                },
            ]
        );
        let bw = a.bandwidth.unwrap();
        assert_eq!((bw.ingress_rate, bw.egress_rate), (1_000_000, 0));
    }

    #[test]
    fn a_host_port_without_portmap_is_refused_by_field() {
        let p = pod(
            "spec:\n  containers:\n  - {name: c, image: host, ports: [{containerPort: 80, hostPort: 8080}]}\n",
        );
        let bridge_only = NetworkConfigList::from_list_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
            Path::new("/x/n.conflist"),
        )
        .unwrap();
        let e = check(&p, &Network::Cni(bridge_only))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("containerPort.hostPort: no plugin of CNI network `n`"),
            "{e}"
        );
        let e = check(
            &p,
            &Network::LoopbackOnly {
                warning: "no plugins".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "containerPort.hostPort: needs a CNI network, and no plugins"
        );
        // hostNetwork: the host's ports, no CNI.
        let h = pod(
            "spec:\n  hostNetwork: true\n  containers:\n  - {name: c, image: host, ports: [{containerPort: 80, hostPort: 80}]}\n",
        );
        check(
            &h,
            &Network::LoopbackOnly {
                warning: String::new(),
            },
        )
        .unwrap();
    }

    #[test]
    fn no_plugin_binary_means_loopback_only_and_nothing_written() {
        let conf = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let opts = NetOptions {
            conf_dir: conf.path().join("net.d"),
            plugin_dirs: vec![bin.path().to_path_buf()],
            cache_dir: conf.path().join("cache"),
        };
        match resolve(&opts).unwrap() {
            Network::LoopbackOnly { warning } => {
                assert!(warning.contains("install Debian's `containernetworking-plugins`"));
                assert!(warning.contains(&bin.path().display().to_string()));
            }
            other => panic!("{other:?}"),
        }
        assert!(!opts.conf_dir.exists());
    }
}
