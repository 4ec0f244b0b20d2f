//! Pod networking through CNI, as kubelet's runtimes do it with libcni: `pod run` picks the
//! network (the first config of the conf dir, or peapod's default one written there) and
//! stores what the pod needs in `<pod>/network.json`; the supervisor makes and pins the pod's
//! network namespace first, runs ADD in it while it creates the pause container (which joins
//! it) and the containers, starts none before ADD succeeded, and runs DEL when
//! the sandbox goes. `pod rm` runs DEL again when the supervisor could not (killed), so every
//! end of a pod releases its IP, veth and iptables rules. A marker file,
//! `<pod>/network.attached`, is written before ADD and removed once DEL succeeded: DEL is
//! idempotent, and a pod that never attached costs no plugin run on removal.
//!
//! The pod's network namespace is pinned, as containerd and CRI-O do: a child of the supervisor
//! unshares a new one and bind-mounts it onto `/run/peapod/netns/peapod-<key>` in the host's
//! mount namespace before ADD, and that file is `CNI_NETNS` for ADD and DEL. The namespace (with the
//! pod's `eth0` and its addresses) thus outlives the pause process and the supervisor, so a DEL
//! run by `pod rm -f` after both were killed still finds what the bridge plugin needs to remove
//! its masquerade rules; the pin goes once DEL succeeded. `/run/peapod/netns` is made a shared
//! mount (as `ip netns` and containerd do with theirs) before the supervisor takes its private
//! mount namespace, so the pins the supervisor makes in the host's namespace reach its own.
//!
//! Without any plugin binary of the network (no `containernetworking-plugins` installed),
//! pods keep the loopback-only network namespace the pause process sets up, and `pod run`
//! warns once.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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
/// Where pods' network namespaces are pinned (bind mounts of the pause process's
/// `/proc/<pid>/ns/net`), in the host's mount namespace.
pub const NETNS_DIR: &str = "/run/peapod/netns";
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
        let container_id = container_id(paths);
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
        // An empty file: no torn content possible, and not synced, as host-local's
        // allocations are not (a reboot loses both alike, or neither).
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&marker)
            .map_err(|e| format!("create `{}`: {e}", marker.display()))?;
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

/// An ADD running in a child of the supervisor ([`PodNetwork::attach_in_child`], forked by
/// `pod run` just before it becomes the supervisor): its outcome comes back through a pipe.
#[derive(Debug)]
pub struct PendingAttach {
    child: nix::unistd::Pid,
    out: std::os::fd::OwnedFd,
}

impl PodNetwork {
    /// [`PodNetwork::attach`] in a forked child, so that the supervisor prepares the pod's
    /// containers meanwhile (they only start once [`PendingAttach::wait`] returned success,
    /// as kubelet starts none before the sandbox's network is set up). A child rather than a
    /// thread: the supervisor forks container processes meanwhile, which is only safe while
    /// it is single-threaded. The caller must not reap children with `waitpid(-1)` before
    /// waiting.
    pub fn attach_in_child(&self, paths: &PodPaths, netns: &Path) -> Result<PendingAttach, String> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("pipe for the CNI ADD child: {e}"))?;
        let parent = std::process::id();
        match peapod_sys::fork().map_err(|e| format!("fork the CNI ADD child: {e}"))? {
            nix::unistd::ForkResult::Child => {
                drop(r);
                // The ADD ends with the process that started it (the supervisor, across its
                // `execve`): left alone (that process killed before it moved this one into the
                // pod cgroup, out of reach of `pod rm -f`'s kill), it would go on with the chain
                // after `pod rm -f`'s DEL. The plugin running then is an orphan DEL waits for.
                if !peapod_sys::die_with_parent(parent) {
                    peapod_sys::exit_now(1);
                }
                let res = self.attach(paths, netns);
                let ok = res.is_ok();
                let data = serde_json::to_vec(&res).unwrap_or_default();
                let mut w = std::fs::File::from(w);
                let written = std::io::Write::write_all(&mut w, &data).is_ok();
                peapod_sys::exit_now(if ok && written { 0 } else { 1 })
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                Ok(PendingAttach { child, out: r })
            }
        }
    }
}

impl PendingAttach {
    /// The child's pid and the pipe's read end, without close-on-exec, to hand over to the
    /// supervisor across its `execve` (the child stays the child of the process that execs).
    pub fn into_inherited(self) -> Result<(i32, std::os::fd::OwnedFd), String> {
        peapod_sys::clear_cloexec(std::os::fd::AsRawFd::as_raw_fd(&self.out))
            .map_err(|e| format!("pass the CNI ADD pipe to the supervisor: {e}"))?;
        Ok((self.child.as_raw(), self.out))
    }

    /// The ADD started before this process's `execve` ([`PendingAttach::into_inherited`]):
    /// `child` must be a child of this process, `fd` the inherited read end of its pipe.
    pub fn adopt(child: i32, fd: i32) -> Result<PendingAttach, String> {
        let out = peapod_sys::adopt_inherited_fd(fd)
            .map_err(|e| format!("the CNI ADD pipe (fd {fd}): {e}"))?;
        Ok(PendingAttach {
            child: nix::unistd::Pid::from_raw(child),
            out,
        })
    }

    /// The ADD's result, once the child is gone.
    pub fn wait(self) -> Result<CniResult, String> {
        use std::io::Read;
        let mut data = Vec::new();
        let read = std::fs::File::from(self.out).read_to_end(&mut data);
        let status = loop {
            match nix::sys::wait::waitpid(self.child, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        };
        let outcome = read
            .ok()
            .and_then(|_| serde_json::from_slice::<Result<CniResult, String>>(&data).ok());
        match (outcome, status) {
            (Some(res), _) => res,
            (None, st) => Err(format!("the CNI ADD child failed: {st:?}")),
        }
    }
}

/// DEL of the pod's network if it may be attached, then removal of the pin. `CNI_NETNS` is the
/// pin while it holds the namespace, else `fallback` (a namespace held some other way), else
/// empty (the namespace is gone: the plugins release the IP and rules they can by container
/// id). The pin is removed in the mount namespace `ns` once DEL succeeded, and also when ADD
/// never ran (a start cut short). Idempotent.
pub fn detach(paths: &PodPaths, fallback: Option<&Path>, ns: PinNs<'_>) -> Result<(), PodError> {
    let marker = paths.dir.join(ATTACHED_FILE);
    let pin = pin_path(paths)?;
    if std::fs::symlink_metadata(&marker).is_ok()
        && let Some(net) = PodNetwork::load(paths)?
    {
        let list = net.list()?;
        let netns = if is_pinned(&pin) {
            Some(pin.as_path())
        } else {
            fallback
        };
        let rt = net.runtime_conf(netns.unwrap_or(Path::new("")));
        net.cni()
            .del(&list, &rt)
            .map_err(|e| PodError::Invalid(format!("pod `{}`: {e}", paths.name)))?;
    }
    if std::fs::symlink_metadata(&pin).is_ok() {
        unpin(ns, &pin).map_err(|e| PodError::Invalid(format!("pod `{}`: {e}", paths.name)))?;
        in_mount_ns(ns, release_pin_dir)
            .map_err(|e| PodError::Invalid(format!("pod `{}`: {e}", paths.name)))?;
    }
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(PodError::io("remove", &marker, e))
        }
        _ => Ok(()),
    }
}

/// `CNI_CONTAINERID` of the pod: `peapod-<key>`, the key of its cgroup (32 hex digits, unique
/// per `--root` and pod name).
fn container_id(paths: &PodPaths) -> String {
    let key = paths.cgroup.rsplit("pod-").next().unwrap_or_default();
    format!("peapod-{key}")
}

/// The pin of the pod's network namespace: `NETNS_DIR/peapod-<key>`, built from the pod's
/// validated cgroup key only (no part of it comes from the manifest).
pub fn pin_path(paths: &PodPaths) -> Result<PathBuf, PodError> {
    pin_path_in(Path::new(NETNS_DIR), &container_id(paths))
}

fn pin_path_in(dir: &Path, id: &str) -> Result<PathBuf, PodError> {
    if !peapod_cni::config::valid_name(id) || id.contains('/') {
        return Err(PodError::Invalid(format!(
            "pod network namespace pin: `{id}` is not a valid file name"
        )));
    }
    Ok(dir.join(id))
}

/// Whether `pin` holds a namespace (a bind mount of an nsfs file), as seen from this process.
fn is_pinned(pin: &Path) -> bool {
    nix::sys::statfs::statfs(pin).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// The mount namespace pins are made and removed in.
#[derive(Debug, Clone, Copy)]
pub enum PinNs<'a> {
    /// The caller's own: the host's, for the CLI verbs.
    Own,
    /// The host's, held by the supervisor, whose own mount namespace is private (its mounts do
    /// not reach the host, where `pod rm` must find the pin).
    Host(BorrowedFd<'a>),
}

/// Run `f` in mount namespace `ns`: directly for [`PinNs::Own`], else in a forked child that
/// joins it first (a mount namespace can only be joined by a single-threaded process, and
/// the supervisor must stay in its own). The child's error comes back through a pipe.
fn in_mount_ns(ns: PinNs<'_>, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let PinNs::Host(fd) = ns else {
        return f();
    };
    in_child(Some(fd), f)
}

/// Run `f` in a forked child, after it joined mount namespace `join` if given; the child's
/// error comes back through a pipe.
fn in_child(
    join: Option<BorrowedFd<'_>>,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    use std::io::Read;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("pipe for the host mount namespace helper: {e}"))?;
    match peapod_sys::fork().map_err(|e| format!("fork the host mount namespace helper: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let res = match join {
                Some(fd) => nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNS)
                    .map_err(|e| format!("join the host's mount namespace: {e}")),
                None => Ok(()),
            }
            .and_then(|()| f());
            let code = match res {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = nix::unistd::write(&w, msg.as_bytes());
                    1
                }
            };
            peapod_sys::exit_now(code)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !msg.is_empty() => Err(msg),
                other => Err(format!("the host mount namespace helper failed: {other:?}")),
            }
        }
    }
}

/// The lock file of [`NETNS_DIR`]: `/run/peapod/netns.lock`.
fn pin_dir_lock_path() -> PathBuf {
    Path::new(NETNS_DIR).with_extension("lock")
}

/// The lock that serialises making and releasing [`NETNS_DIR`], held until dropped. The
/// last pod's teardown removes the lock file with the directory (under the lock), so a
/// lock taken on a file that was removed meanwhile is no lock: it is taken again on the
/// file now at the path (the usual protocol for removable lock files).
fn lock_pin_dir() -> Result<nix::fcntl::Flock<std::fs::File>, PodError> {
    let lock_path = pin_dir_lock_path();
    loop {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| PodError::io("open", &lock_path, e))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| PodError::io("lock", &lock_path, e.into()))?;
        let held = lock
            .metadata()
            .map_err(|e| PodError::io("stat", &lock_path, e))?;
        match std::fs::metadata(&lock_path) {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => return Ok(lock),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PodError::io("stat", &lock_path, e)),
        }
    }
}

/// Make [`NETNS_DIR`] a shared mount point (bind-mounted onto itself if it is none yet), as
/// `ip netns` and containerd do with theirs: the pins mounted below it then propagate into
/// the supervisors' mount namespaces, which are its slaves. Run in the host's mount namespace
/// before the supervisor is started; serialised by a lock so concurrent `pod run`s stack no
/// second bind mount. The pod's `pin` is created empty at once, so [`release_pin_dir`] keeps
/// the directory until the pod's teardown removes it.
pub fn prepare_pin_dir(pin: &Path) -> Result<(), PodError> {
    use nix::mount::{MsFlags, mount};
    let dir = Path::new(NETNS_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PodError::io("create", dir, e))?;
    let _lock = lock_pin_dir()?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(pin)
        .map_err(|e| PodError::io("create the netns pin", pin, e))?;
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet.
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| PodError::io("bind-mount onto itself", dir, e.into()))?;
            shared().map_err(|e| PodError::io("make a shared mount", dir, e.into()))
        }
        Err(e) => Err(PodError::io("make a shared mount", dir, e.into())),
    }
}

/// Make a new network namespace and pin it at `pin`, in mount namespace `ns`, before any
/// process of the pod runs in it (containerd's CRI order): the ADD may then start at once,
/// with `CNI_NETNS` = `pin`, while the pause container is created joining the namespace by
/// that path. The namespace is made by a forked child (`unshare`), which pins its own and
/// exits (after bringing `lo` up); only the pin holds it. A stale mount at `pin` (of an earlier pod of this name and
/// root whose removal was cut short) is replaced; on any failure nothing stays mounted; the
/// pin must be visible here (through the shared [`NETNS_DIR`]).
pub fn pin_new(ns: PinNs<'_>, pin: &Path) -> Result<(), String> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let join = match ns {
        PinNs::Own => None,
        PinNs::Host(fd) => Some(fd),
    };
    in_child(join, || {
        if let Some(dir) = pin.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("create `{}`: {e}", dir.display()))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(pin)
            .map_err(|e| format!("create the netns pin `{}`: {e}", pin.display()))?;
        match umount2(pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(format!("unmount the stale pin `{}`: {e}", pin.display())),
        }
        let fail = |what: &str, e: nix::errno::Errno| {
            let _ = std::fs::remove_file(pin);
            format!("{what} for the pin `{}`: {e}", pin.display())
        };
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| fail("make a network namespace", e))?;
        // What the runtime does for a new namespace (runc's rule), not for a joined one; the
        // chain has no `loopback` plugin (containerd adds it as a network of its own).
        peapod_sys::set_loopback_up().map_err(|e| {
            let _ = std::fs::remove_file(pin);
            format!("bring up lo in the pod's network namespace: {e}")
        })?;
        mount(
            Some("/proc/self/ns/net"),
            pin,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| fail("bind-mount /proc/self/ns/net", e))
    })?;
    if !is_pinned(pin) {
        let cleanup = unpin(ns, pin)
            .err()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "the network namespace pin `{}` is not visible here: is `{NETNS_DIR}` a shared \
             mount?{cleanup}",
            pin.display()
        ));
    }
    Ok(())
}

/// Unmount and remove [`NETNS_DIR`] and its lock file once no pin is left in it (the last
/// pod's teardown), so nothing of peapod stays mounted or behind; [`prepare_pin_dir`] makes it again. Run in the host's mount
/// namespace, under the lock that `prepare_pin_dir` takes.
fn release_pin_dir() -> Result<(), String> {
    use nix::mount::{MntFlags, umount2};
    let dir = Path::new(NETNS_DIR);
    let _lock = lock_pin_dir().map_err(|e| e.to_string())?;
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        // Released already; the lock file this call made goes below.
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    if !empty {
        return Ok(());
    }
    match umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(format!("unmount `{}`: {e}", dir.display())),
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("remove `{}`: {e}", dir.display()));
        }
        _ => {}
    }
    // Still under the lock: a waiter on this file takes the lock again on a new one.
    let lock_path = pin_dir_lock_path();
    match std::fs::remove_file(&lock_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove `{}`: {e}", lock_path.display()))
        }
        _ => Ok(()),
    }
}

/// Unmount and remove `pin` in mount namespace `ns`; nothing there is fine.
pub fn unpin(ns: PinNs<'_>, pin: &Path) -> Result<(), String> {
    use nix::mount::{MntFlags, umount2};
    in_mount_ns(ns, || {
        match umount2(pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(format!("unmount the netns pin `{}`: {e}", pin.display())),
        }
        match std::fs::remove_file(pin) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("remove the netns pin `{}`: {e}", pin.display()))
            }
            _ => Ok(()),
        }
    })
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
    fn the_pin_path_is_the_container_id_below_the_netns_dir() {
        let paths = PodPaths::new(Path::new("/var/lib/peapod"), "web").unwrap();
        let pin = pin_path(&paths).unwrap();
        let key = paths.cgroup.rsplit("pod-").next().unwrap();
        assert_eq!(pin, Path::new(NETNS_DIR).join(format!("peapod-{key}")));
        assert_eq!(key.len(), 32);
        // Another root, same name: another pin.
        let other = PodPaths::new(Path::new("/tmp/other-root"), "web").unwrap();
        assert_ne!(pin_path(&other).unwrap(), pin);
        for bad in ["", "..", "a/b", "../x", ".hidden", "a b"] {
            assert!(pin_path_in(Path::new(NETNS_DIR), bad).is_err(), "{bad:?}");
        }
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
