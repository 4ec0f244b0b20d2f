//! From a Pod to OCI specs: the pause container that holds the pod's namespaces and one
//! spec per app or init container. Pure: paths and the pause pid come in, specs go out; the
//! supervisor performs the side effects.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, Mount, Spec,
};
use serde_json::json;

use super::PodError;
use peapod_kube::manifest;
use peapod_oci::spec_template::{HostEntry, host_view_spec};

/// The reserved image name for a read-only view of the host (no download).
pub use peapod_kube::manifest::HOST_IMAGE;

/// The capabilities containerd gives a container by default (`oci.WithDefaultSpec`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `/dev/shm` of a pod: kubelet/containerd's `defaultShmSize`.
pub const SHM_SIZE: u64 = 64 * 1024 * 1024;

/// kubelet's `oom_score_adj` where the kernel lets us set it: lowering the score needs
/// CAP_SYS_RESOURCE (missing on some hosts, e.g. nested sandboxes); without it, the value is
/// raised to our own, which needs no privilege.
pub fn oom_score_adj(wanted: i32) -> i32 {
    let can_lower = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    if can_lower {
        return wanted;
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    wanted.max(own)
}

/// The sandbox's OCI container id, bundle and cgroup name. Container names are DNS-1123
/// labels, which cannot contain `_`, so no container of the pod can take this name.
pub const SANDBOX_ID: &str = "_pause";

/// The leaf of the pod cgroup that holds the supervisor and the probe and hook children it
/// forks: everything of a pod, its supervisor included, lives below the pod cgroup, so one
/// kill of that cgroup ends the pod even when its state directory is gone. Not a DNS label
/// either.
pub const SUPERVISOR_CGROUP: &str = "_supervisor";

/// Why a name given to a pod verb cannot be a pod's name (`metadata.name` must be a DNS-1123
/// subdomain): checked before any path is built from it, so `../x` never leaves `pods/`.
pub fn check_pod_name(name: &str) -> Result<(), PodError> {
    let errors = manifest::pod_name_errors(name);
    if errors.is_empty() {
        return Ok(());
    }
    Err(PodError::Invalid(format!(
        "invalid pod name {name:?}: {}",
        errors.join("; ")
    )))
}

/// Where a pod keeps its files, and its cgroup.
#[derive(Debug, Clone)]
pub struct PodPaths {
    pub dir: PathBuf,
    pub name: String,
    /// `/peapod/pod-<key>`: the key is derived from the runtime root and the pod name, so a pod
    /// is found again by its name after its state is gone (`pod rm -f` after `--root` was
    /// wiped), and pods of one name under different `--root`s never share a cgroup.
    pub cgroup: String,
}

impl PodPaths {
    /// The paths of pod `name` under `root`; refuses a name that is not a valid pod name.
    pub fn new(root: &Path, name: &str) -> Result<PodPaths, PodError> {
        check_pod_name(name)?;
        Ok(PodPaths {
            dir: root.join("pods").join(name),
            name: name.to_string(),
            cgroup: format!(
                "{}/pod-{}",
                peapod_oci::cgroups::DEFAULT_PARENT,
                cgroup_key(&canonical_root(root), name)
            ),
        })
    }
    /// Runtime root of the pod's OCI containers (pause included).
    pub fn oci_root(&self) -> PathBuf {
        self.dir.join("oci")
    }
    pub fn bundle(&self, container: &str) -> PathBuf {
        self.dir.join("bundles").join(container)
    }
    pub fn volume(&self, name: &str) -> PathBuf {
        self.dir.join("volumes").join(name)
    }
    pub fn etc(&self, file: &str) -> PathBuf {
        self.dir.join("etc").join(file)
    }
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
    /// Where the `index`th volume mount of `container` with a `subPath` is bound once resolved
    /// inside its volume (kubelet's `volume-subpaths/<volume>/<container>/<index>`): below the
    /// pod directory, which only root can reach, so no container can swap what gets mounted.
    pub fn sub_path(&self, container: &str, index: usize) -> PathBuf {
        self.dir
            .join("subpaths")
            .join(container)
            .join(index.to_string())
    }
    /// The cgroup of one container (or of the sandbox, [`SANDBOX_ID`]).
    pub fn container_cgroup(&self, container: &str) -> String {
        format!("{}/{container}", self.cgroup)
    }
}

/// `root` made absolute, `.` and `..` applied, and the symlinks of its longest existing
/// prefix resolved: the same directory gives the same key whether it exists or was wiped,
/// and whichever spelling of it (`/var/run/peapod`, `/run/peapod`) the caller used.
pub fn canonical_root(root: &Path) -> PathBuf {
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                norm.pop();
            }
            Component::CurDir => {}
            other => norm.push(other),
        }
    }
    let mut head = norm.clone();
    let mut tail = Vec::new();
    loop {
        if let Ok(real) = head.canonicalize() {
            return tail.iter().rev().fold(real, |p, t| p.join(t));
        }
        match head.file_name() {
            Some(n) => {
                tail.push(n.to_os_string());
                head.pop();
            }
            None => return norm,
        }
    }
}

/// 32 hex digits of sha256(root, NUL, name).
fn cgroup_key(root: &Path, name: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(root.as_os_str().as_encoded_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

fn ns(typ: LinuxNamespaceType, path: Option<String>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ);
    n.set_path(path.map(PathBuf::from));
    n
}

fn caps(names: &[String]) -> Result<LinuxCapabilities, PodError> {
    let set = names
        .iter()
        .map(|n| {
            let full = if n.starts_with("CAP_") {
                n.clone()
            } else {
                format!("CAP_{n}")
            };
            serde_json::from_value::<Capability>(json!(full))
                .map_err(|_| PodError::Invalid(format!("unknown capability `{n}`")))
        })
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    Ok(c)
}

/// The pause container: the read-only host view (for the C library) with `/pause` bound on
/// top, new net, ipc and uts namespaces (unless the pod uses the host's), a pid namespace
/// when the pod shares one. `netns`: the pinned network namespace the pause joins (made
/// before it for the pod's CNI network) in place of a new one.
pub fn pause_spec(
    pod: &Pod,
    paths: &PodPaths,
    pause_binary: &Path,
    host: &[HostEntry],
    netns: Option<&Path>,
) -> Spec {
    let spec_ = pod.spec.as_ref();
    let host_net = spec_.and_then(|s| s.host_network).unwrap_or(false);
    let host_ipc = spec_.and_then(|s| s.host_ipc).unwrap_or(false);
    let share_pid = spec_
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false);
    let host_pid = spec_.and_then(|s| s.host_pid).unwrap_or(false);
    let mut s = host_view_spec(host);
    let mut process = s.process().clone().unwrap_or_default();
    process.set_args(Some(vec!["/pause".into()]));
    process.set_terminal(Some(false));
    process.set_env(Some(vec!["PATH=/".into()]));
    process.set_rlimits(None);
    process.set_oom_score_adj(Some(oom_score_adj(-998))); // containerd's defaultSandboxOOMAdj
    s.set_process(Some(process));
    let mut ms: Vec<Mount> = s.mounts().clone().unwrap_or_default();
    ms.push(mount(
        "/pause",
        "bind",
        pause_binary,
        &["bind", "ro", "nosuid", "nodev"],
    ));
    s.set_mounts(Some(ms));
    s.set_hostname(
        manifest::pod_hostname(pod)
            .ok()
            .and_then(|h| h.uts_hostname)
            .filter(|_| !host_net),
    );
    let mut linux = s.linux().clone().unwrap_or_default();
    let mut nss = vec![ns(LinuxNamespaceType::Mount, None)];
    if !host_net {
        nss.push(ns(
            LinuxNamespaceType::Network,
            netns.map(|p| p.display().to_string()),
        ));
        nss.push(ns(LinuxNamespaceType::Uts, None));
    }
    if !host_ipc {
        nss.push(ns(LinuxNamespaceType::Ipc, None));
    }
    if share_pid && !host_pid {
        nss.push(ns(LinuxNamespaceType::Pid, None));
    }
    linux.set_namespaces(Some(nss));
    linux.set_cgroups_path(Some(PathBuf::from(paths.container_cgroup(SANDBOX_ID))));
    linux.set_masked_paths(None);
    linux.set_readonly_paths(None);
    s.set_linux(Some(linux));
    let mut root = s.root().clone().unwrap_or_default();
    root.set_path(paths.bundle(SANDBOX_ID).join("rootfs"));
    root.set_readonly(Some(true));
    s.set_root(Some(root));
    s
}

/// The pod's hostname as kubelet chooses it (`hostnameOverride`, `hostname`, the pod name;
/// cut to 63 characters).
pub fn hostname(pod: &Pod) -> String {
    manifest::pod_hostname(pod)
        .map(|h| h.hostname)
        .unwrap_or_default()
}

/// `/etc/hosts` in kubelet's format: the pod's hostname maps to its IP (`pod_ip`, the CNI
/// result's first address; 127.0.0.1 for a pod with loopback only).
pub fn etc_hosts(pod: &Pod, pod_ip: Option<&str>) -> String {
    let h = manifest::pod_hostname(pod).ok();
    let host = match &h {
        Some(h) => match h.fqdn() {
            Some(fqdn) => format!("{fqdn}\t{}", h.hostname),
            None => h.hostname.clone(),
        },
        None => String::new(),
    };
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    s.push_str(&format!("{}\t{host}\n", pod_ip.unwrap_or(LOOPBACK_IP)));
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

/// The pod IP of a pod without a network of its own.
pub const LOOPBACK_IP: &str = "127.0.0.1";

/// What a container's spec needs from outside: the pause process and the node.
pub struct ContainerContext<'a> {
    pub paths: &'a PodPaths,
    /// `status.podIPs` (the downward API's `status.podIP` is the first).
    pub pod_ips: &'a [String],
    pub pause_pid: i32,
    pub host_entries: &'a [HostEntry],
    pub node_memory: i64,
    pub resources: &'a peapod_kube::resources::PodResources,
    pub which: peapod_kube::resources::ContainerRef,
    /// The container's image from the store (`None` for `image: host`); its rootfs is
    /// already mounted at the bundle's `rootfs`.
    pub image: Option<&'a peapod_image::ImageInfo>,
}

/// The container's environment (kubelet's: fieldRef, resourceFieldRef, `$(VAR)`), after a
/// default PATH and HOSTNAME as containerd sets them; and its expanded command line.
fn env_and_args(
    pod: &Pod,
    c: &Container,
    node_memory: i64,
    image: Option<&peapod_image::ImageInfo>,
    pod_ips: &[String],
) -> Result<(Vec<String>, Vec<String>), PodError> {
    let node = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let host_ips = vec![LOOPBACK_IP.to_string()];
    let ips = if pod_ips.is_empty() {
        host_ips.clone()
    } else {
        pod_ips.to_vec()
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut alloc = peapod_kube::resources::ResourceList::new();
    if let (Ok(cpu), Ok(mem)) = (cpus.to_string().parse(), node_memory.to_string().parse()) {
        alloc.insert("cpu".into(), cpu);
        alloc.insert("memory".into(), mem);
    }
    let cx = manifest::EnvContext {
        node_name: &node,
        host_ips: &host_ips,
        pod_ips: &ips,
        node_allocatable: &alloc,
    };
    let vars = manifest::container_env(pod, c, &cx)?;
    let (cmd, args) = manifest::expand_command(c, &vars);
    if let Some(info) = image {
        // containerd: the image's Env, then the container's; Kubernetes' command/args rule.
        let mut env = peapod_image::merge_env(&info.config, &vars);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            );
        }
        env.retain(|e| !e.starts_with("HOSTNAME="));
        env.push(format!("HOSTNAME={}", hostname(pod)));
        let argv = peapod_image::merge_process(
            &info.config,
            c.command.is_some().then_some(cmd.as_slice()),
            c.args.is_some().then_some(args.as_slice()),
        );
        if argv.is_empty() {
            return Err(PodError::Invalid(format!(
                "container `{}`: {} (the image has no Entrypoint or Cmd; set command)",
                c.name,
                peapod_image::NO_COMMAND
            )));
        }
        return Ok((env, argv));
    }
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={}", hostname(pod)),
    ];
    for (k, v) in vars {
        env.retain(|kv| kv.split_once('=').map(|(name, _)| name) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    Ok((env, cmd.into_iter().chain(args).collect()))
}

/// The image's `User` as numeric ids, looked up in the image's own `/etc/passwd` and
/// `/etc/group` (read from the layers, top first, never following a symlink out of them).
/// kubelet's rules with runAsNonRoot: a name it cannot verify is refused.
fn image_user(
    c: &Container,
    info: &peapod_image::ImageInfo,
    non_root: bool,
) -> Result<(u32, u32), PodError> {
    let Some(spec) = peapod_image::user(&info.config) else {
        return Ok((0, 0));
    };
    let numeric = spec
        .split(':')
        .next()
        .is_some_and(|u| u.parse::<u32>().is_ok());
    if non_root && !numeric {
        return Err(PodError::Invalid(format!(
            "container `{}`: image has non-numeric user ({spec}), cannot verify user is non-root",
            c.name
        )));
    }
    let read = |file: &str| -> String {
        for dir in info.layer_dirs.iter().rev() {
            let p = dir.join("etc").join(file);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_file() => return std::fs::read_to_string(&p).unwrap_or_default(),
                // A whiteout or anything else hides the lower layers' file.
                Ok(_) => return String::new(),
                Err(_) => continue,
            }
        }
        String::new()
    };
    peapod_image::lookup_user(&spec, &read("passwd"), &read("group"))
        .map_err(|e| PodError::Invalid(format!("container `{}`: image user `{spec}`: {e}", c.name)))
}

/// A `subPath` as a relative path of normal components (`.` and empty ones dropped), refused
/// when absolute or with `..` (API validation refuses both already; this keeps the planner safe
/// on its own). Where it leads is decided inside the volume at mount time: see
/// [`super::subpath`].
pub fn sub_path_components(sub: &str, field: &str) -> Result<PathBuf, PodError> {
    let p = Path::new(sub);
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(PodError::Invalid(format!(
            "{field} `{sub}` must be a relative path without `..`"
        )));
    }
    Ok(p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect())
}

/// The volume mounts of `c` that have a `subPath`: (index in `volumeMounts`, volume source on
/// the host, the subPath). The supervisor resolves each inside its volume and binds the result
/// at [`PodPaths::sub_path`] before [`container_spec`] is built.
pub fn sub_path_mounts(
    pod: &Pod,
    c: &Container,
    paths: &PodPaths,
) -> Result<Vec<(usize, PathBuf, PathBuf)>, PodError> {
    let volumes: BTreeMap<&str, &Volume> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut out = Vec::new();
    for (i, vm) in c.volume_mounts.iter().flatten().enumerate() {
        let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let field = format!("spec.containers[{}].volumeMounts[{i}]", c.name);
        let v = volumes.get(vm.name.as_str()).ok_or_else(|| {
            PodError::Invalid(format!("{field}.name: volume `{}` not found", vm.name))
        })?;
        let rel = sub_path_components(sub, &format!("{field}.subPath"))?;
        out.push((i, volume_source(paths, v)?, rel));
    }
    Ok(out)
}

/// The host directory behind a volume.
pub fn volume_source(paths: &PodPaths, v: &Volume) -> Result<PathBuf, PodError> {
    if let Some(hp) = &v.host_path {
        return Ok(PathBuf::from(&hp.path));
    }
    if v.empty_dir.is_some() {
        return Ok(paths.volume(&v.name));
    }
    Err(PodError::Unsupported(format!(
        "volume `{}`: only emptyDir and hostPath volumes are supported",
        v.name
    )))
}

/// What can be checked of a container's image before anything runs: `host` has no
/// entrypoint, so `command` is required; another name must parse as an image reference and
/// the pull policy must be one of kubelet's. Whether the image is in the store is the
/// container start's business (`ErrImageNeverPull`, `ErrImagePull`), as with kubelet.
pub fn check_image(c: &Container) -> Result<(), PodError> {
    let image = c.image.as_deref().unwrap_or_default();
    if image.is_empty() {
        return Err(PodError::Invalid(format!(
            "container `{}`: image is required (hint: `image: host` runs a read-only view of this machine)",
            c.name
        )));
    }
    if image != HOST_IMAGE {
        peapod_image::pull_policy(image, c.image_pull_policy.as_deref()).map_err(|e| {
            PodError::Invalid(format!("container `{}` image `{image}`: {e}", c.name))
        })?;
        return Ok(());
    }
    if c.command.as_ref().is_none_or(|v| v.is_empty()) {
        return Err(PodError::Invalid(format!(
            "container `{}`: command is required with `image: host` (it has no entrypoint)",
            c.name
        )));
    }
    Ok(())
}

/// The OCI spec of one app or init container.
pub fn container_spec(
    pod: &Pod,
    c: &Container,
    cx: &ContainerContext<'_>,
) -> Result<Spec, PodError> {
    let pspec = pod
        .spec
        .as_ref()
        .ok_or_else(|| PodError::Invalid("spec is required".into()))?;
    check_image(c)?;
    let mut s = match cx.image {
        None => host_view_spec(cx.host_entries),
        Some(_) => peapod_oci::spec_template::default_spec(false),
    };
    let (env, args) = env_and_args(pod, c, cx.node_memory, cx.image, cx.pod_ips)?;
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pspec.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let non_root = sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false);
    let (uid, gid) = match (sc.run_as_user.or(psc.run_as_user), cx.image) {
        (Some(u), _) => (u, sc.run_as_group.or(psc.run_as_group).unwrap_or(0)),
        (None, Some(info)) => {
            let (u, g) = image_user(c, info, non_root)?;
            (
                i64::from(u),
                sc.run_as_group.or(psc.run_as_group).unwrap_or(i64::from(g)),
            )
        }
        (None, None) => (0, sc.run_as_group.or(psc.run_as_group).unwrap_or(0)),
    };
    if non_root && uid == 0 {
        return Err(PodError::Invalid(format!(
            "container `{}` has runAsNonRoot and would run as root (set securityContext.runAsUser)",
            c.name
        )));
    }
    let mut process = s.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_terminal(Some(false));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(match cx.image {
        Some(info) => peapod_image::working_dir(&info.config, c.working_dir.as_deref()),
        None => c.working_dir.clone().unwrap_or_else(|| "/".into()),
    }));
    let mut user = process.user().clone();
    user.set_uid(uid as u32);
    user.set_gid(gid as u32);
    let groups: Vec<u32> = psc
        .supplemental_groups
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    user.set_additional_gids(if groups.is_empty() {
        None
    } else {
        Some(groups)
    });
    process.set_user(user);
    process.set_rlimits(None);
    let mut cap_names: Vec<String> = if privileged {
        caps::all().iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if let Some(cs) = &sc.capabilities {
        for a in cs.add.iter().flatten() {
            let full = if a == "ALL" {
                continue;
            } else if a.starts_with("CAP_") {
                a.clone()
            } else {
                format!("CAP_{a}")
            };
            if !cap_names.contains(&full) {
                cap_names.push(full);
            }
        }
        if cs.add.iter().flatten().any(|a| a == "ALL") {
            cap_names = caps::all().iter().map(|c| c.to_string()).collect();
        }
        for d in cs.drop.iter().flatten() {
            if d == "ALL" {
                cap_names.clear();
            } else {
                let full = if d.starts_with("CAP_") {
                    d.clone()
                } else {
                    format!("CAP_{d}")
                };
                cap_names.retain(|n| *n != full);
            }
        }
    }
    // Only what this host can grant (this machine has no CAP_SYS_RESOURCE, for example).
    let bounding: Vec<String> = caps::read(None, caps::CapSet::Bounding)
        .map(|b| b.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    cap_names.retain(|n| bounding.is_empty() || bounding.contains(n));
    process.set_capabilities(Some(caps(&cap_names)?));
    process.set_no_new_privileges(Some(sc.allow_privilege_escalation == Some(false)));
    let cg = cx
        .resources
        .container_cgroup(cx.which, cx.node_memory)
        .map_err(|e| PodError::Invalid(format!("container `{}` resources: {e}", c.name)))?;
    process.set_oom_score_adj(Some(oom_score_adj(cg.oom_score_adj)));
    s.set_process(Some(process));
    s.set_hostname(None);

    let mut ms = s.mounts().clone().unwrap_or_default();
    for f in ["hostname", "hosts", "resolv.conf"] {
        let dest = format!("/etc/{f}");
        if !c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == dest)
        {
            let ro = if sc.read_only_root_filesystem.unwrap_or(false) {
                "ro"
            } else {
                "rw"
            };
            ms.push(mount(&dest, "bind", &cx.paths.etc(f), &["bind", ro]));
        }
    }
    if !pspec.host_ipc.unwrap_or(false) {
        ms.retain(|m| m.destination() != Path::new("/dev/shm"));
        ms.push(mount(
            "/dev/shm",
            "bind",
            &cx.paths.shm(),
            &["bind", "rw", "nosuid", "nodev", "noexec"],
        ));
    }
    let volumes: BTreeMap<&str, &Volume> = pspec
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    for (i, vm) in c.volume_mounts.iter().flatten().enumerate() {
        let field = format!("spec.containers[{}].volumeMounts[{i}]", c.name);
        let v = volumes.get(vm.name.as_str()).ok_or_else(|| {
            PodError::Invalid(format!("{field}.name: volume `{}` not found", vm.name))
        })?;
        let src = if vm.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
            // Never the volume path joined with the subPath: a symlink planted in the volume
            // would lead the bind anywhere on the host (CVE-2017-1002101).
            cx.paths.sub_path(&c.name, i)
        } else {
            volume_source(cx.paths, v)?
        };
        let mut opts = vec![
            "rbind",
            if vm.read_only.unwrap_or(false) {
                "ro"
            } else {
                "rw"
            },
        ];
        opts.push(match vm.mount_propagation.as_deref() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") if privileged => "rshared",
            Some("Bidirectional") => {
                return Err(PodError::Invalid(format!(
                    "{field}.mountPropagation: Bidirectional needs a privileged container"
                )));
            }
            Some(other) => {
                return Err(PodError::Invalid(format!(
                    "{field}.mountPropagation: unknown value `{other}`"
                )));
            }
        });
        ms.push(mount(&vm.mount_path, "bind", &src, &opts));
    }
    if privileged {
        for m in ms.iter_mut() {
            if m.destination() == Path::new("/sys") {
                m.set_options(Some(vec![
                    "nosuid".into(),
                    "noexec".into(),
                    "nodev".into(),
                    "rw".into(),
                ]));
            }
        }
    }
    s.set_mounts(Some(ms));

    let mut linux = s.linux().clone().unwrap_or_default();
    let pause_ns = |t: &str| Some(format!("/proc/{}/ns/{t}", cx.pause_pid));
    let mut nss = vec![
        ns(LinuxNamespaceType::Mount, None),
        ns(LinuxNamespaceType::Cgroup, None),
    ];
    if !pspec.host_network.unwrap_or(false) {
        nss.push(ns(LinuxNamespaceType::Network, pause_ns("net")));
        nss.push(ns(LinuxNamespaceType::Uts, pause_ns("uts")));
    }
    if !pspec.host_ipc.unwrap_or(false) {
        nss.push(ns(LinuxNamespaceType::Ipc, pause_ns("ipc")));
    }
    if !pspec.host_pid.unwrap_or(false) {
        if pspec.share_process_namespace.unwrap_or(false) {
            nss.push(ns(LinuxNamespaceType::Pid, pause_ns("pid")));
        } else {
            nss.push(ns(LinuxNamespaceType::Pid, None));
        }
    }
    linux.set_namespaces(Some(nss));
    linux.set_cgroups_path(Some(PathBuf::from(cx.paths.container_cgroup(&c.name))));
    // The container's seccompProfile overrides the pod's; privileged containers are
    // unconfined, as containerd runs them.
    let profile = sc
        .seccomp_profile
        .as_ref()
        .or(psc.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    if profile == Some("RuntimeDefault") && !privileged {
        linux.set_seccomp(Some(peapod_oci::seccomp::runtime_default(&cap_names)));
    }
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut cpu = oci_spec::runtime::LinuxCpu::default();
    cpu.set_shares(Some(cg.cpu_shares));
    if cg.cpu_quota > 0 {
        cpu.set_quota(Some(cg.cpu_quota));
        cpu.set_period(Some(cg.cpu_period));
    }
    res.set_cpu(Some(cpu));
    if let Some(limit) = cg.memory_limit {
        let mut mem = oci_spec::runtime::LinuxMemory::default();
        mem.set_limit(Some(limit));
        res.set_memory(Some(mem));
        if peapod_oci::cgroups::detect()
            .is_ok_and(|s| matches!(s, peapod_oci::cgroups::Setup::Unified { .. }))
        {
            // kubelet sets memory.oom.group so an OOM kills the whole container.
            res.set_unified(Some(
                [("memory.oom.group".to_string(), "1".to_string())]
                    .into_iter()
                    .collect(),
            ));
        }
    }
    linux.set_resources(Some(res));
    if privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    s.set_linux(Some(linux));
    let mut root = s.root().clone().unwrap_or_default();
    root.set_path(cx.paths.bundle(&c.name).join("rootfs"));
    root.set_readonly(Some(sc.read_only_root_filesystem.unwrap_or(false)));
    s.set_root(Some(root));
    Ok(s)
}

/// The pod's `/etc/resolv.conf` (kubelet `dns.go` `GetPodDNS`): the host's file for
/// `Default` and for `ClusterFirst*` (this node has no cluster DNS, so kubelet falls back to
/// the host's), nothing but `dnsConfig` for `None`; then `dnsConfig` is merged in:
/// nameservers and searches appended without duplicates, options replaced by name.
pub fn resolv_conf(host: &str, pod: &Pod) -> Result<String, PodError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    match policy {
        "None" => {
            if spec.dns_config.is_none() {
                return Err(PodError::Invalid(
                    "spec.dnsConfig: required when dnsPolicy is None".into(),
                ));
            }
        }
        "Default" | "ClusterFirst" | "ClusterFirstWithHostNet" => {
            for line in host.lines() {
                let mut f = line.split_whitespace();
                match f.next() {
                    Some("nameserver") => servers.extend(f.next().map(str::to_string)),
                    Some("search") | Some("domain") => {
                        searches = f.map(str::to_string).collect();
                    }
                    Some("options") => options.extend(f.map(str::to_string)),
                    _ => {}
                }
            }
        }
        other => {
            return Err(PodError::Invalid(format!(
                "spec.dnsPolicy: unsupported value {other:?} (supported: ClusterFirst, ClusterFirstWithHostNet, Default, None)"
            )));
        }
    }
    let push_unique = |list: &mut Vec<String>, v: &str| {
        if !list.iter().any(|x| x == v) {
            list.push(v.to_string());
        }
    };
    if let Some(c) = &spec.dns_config {
        for s in c.nameservers.iter().flatten() {
            push_unique(&mut servers, s);
        }
        for s in c.searches.iter().flatten() {
            push_unique(&mut searches, s);
        }
        for o in c.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            let entry = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(entry);
        }
    }
    let mut out = String::new();
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    Ok(out)
}

#[cfg(test)]
mod dns_tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        peapod_kube::manifest::parse_manifests(yaml)
            .unwrap()
            .remove(0)
    }

    const HOST: &str =
        "# comment\nnameserver 10.0.0.2\nsearch corp.example\noptions ndots:2 edns0\n";

    #[test]
    fn default_policies_use_the_host_file() {
        let p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: host, command: [x]}]\n",
        );
        assert_eq!(
            resolv_conf(HOST, &p).unwrap(),
            "nameserver 10.0.0.2\nsearch corp.example\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_merges_and_none_replaces() {
        let p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: Default\n  dnsConfig:\n    nameservers: [10.0.0.2, 1.1.1.1]\n    searches: [svc.local]\n    options: [{name: ndots, value: '5'}, {name: single-request}]\n  containers: [{name: c, image: host, command: [x]}]\n",
        );
        assert_eq!(
            resolv_conf(HOST, &p).unwrap(),
            "nameserver 10.0.0.2\nnameserver 1.1.1.1\nsearch corp.example svc.local\noptions edns0 ndots:5 single-request\n"
        );
        let p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: None\n  dnsConfig: {nameservers: [1.1.1.1]}\n  containers: [{name: c, image: host, command: [x]}]\n",
        );
        assert_eq!(resolv_conf(HOST, &p).unwrap(), "nameserver 1.1.1.1\n");
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn pod_names_are_dns_subdomains_before_any_path() {
        for bad in ["../x", "..", ".", "a/b", "", "A", "_pause", "x\0y", "-a"] {
            let e = PodPaths::new(Path::new("/run/peapod"), bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid pod name"),
                "{bad:?}: {e}"
            );
        }
        let p = PodPaths::new(Path::new("/run/peapod"), "web.example-1").unwrap();
        assert_eq!(p.dir, Path::new("/run/peapod/pods/web.example-1"));
        assert!(p.cgroup.starts_with("/peapod/pod-"));
        assert_eq!(p.cgroup.len(), "/peapod/pod-".len() + 32);
    }

    #[test]
    fn sandbox_and_supervisor_names_are_no_container_names() {
        assert!(!manifest::container_name_errors(SANDBOX_ID).is_empty());
        assert!(!manifest::container_name_errors(SUPERVISOR_CGROUP).is_empty());
        assert!(manifest::container_name_errors("pause").is_empty());
    }

    #[test]
    fn the_cgroup_key_depends_on_the_root_and_the_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let key = |root: PathBuf, name: &str| PodPaths::new(&root, name).unwrap().cgroup;
        let a = key(real.join("root"), "p");
        // Another spelling of the same directory, existing or not (a wiped root).
        assert_eq!(a, key(dir.path().join("link/root"), "p"));
        assert_eq!(a, key(real.join("x/../root"), "p"));
        assert_eq!(a, key(real.join("./root/."), "p"));
        std::fs::create_dir(real.join("root")).unwrap();
        assert_eq!(a, key(dir.path().join("link/root"), "p"));
        assert_ne!(a, key(real.join("root"), "q"));
        assert_ne!(a, key(real.join("other"), "p"));
        assert_eq!(canonical_root(&dir.path().join("link/root/sub")), {
            real.canonicalize().unwrap().join("root/sub")
        });
    }

    #[test]
    fn sub_paths_are_plain_relative_paths() {
        let f = "spec.containers[c].volumeMounts[0].subPath";
        assert_eq!(
            sub_path_components("a/./b//c/", f).unwrap(),
            Path::new("a/b/c")
        );
        for bad in ["/etc", "../x", "a/../../b"] {
            let e = sub_path_components(bad, f).unwrap_err().to_string();
            assert!(e.contains("must be a relative path without `..`"), "{e}");
        }
    }

    #[test]
    fn sub_path_mounts_name_the_volume_and_never_join_a_path() {
        let pod: Pod = peapod_kube::manifest::parse_manifests(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: v, emptyDir: {}}, {name: h, hostPath: {path: /srv/data}}]\n  containers:\n  - name: c\n    image: host\n    command: [x]\n    volumeMounts: [{name: v, mountPath: /a}, {name: v, mountPath: /b, subPath: x/y}, {name: h, mountPath: /c, subPath: z}]\n",
        )
        .unwrap()
        .remove(0);
        let paths = PodPaths::new(Path::new("/r"), "p").unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let got = sub_path_mounts(&pod, c, &paths).unwrap();
        assert_eq!(
            got,
            vec![
                (1, paths.volume("v"), PathBuf::from("x/y")),
                (2, PathBuf::from("/srv/data"), PathBuf::from("z")),
            ]
        );
        assert_eq!(paths.sub_path("c", 1), Path::new("/r/pods/p/subpaths/c/1"));
    }
}

#[cfg(test)]
mod host_image_tests {
    /// The store refuses to hold an image under the name pods use for the host view: kube (the
    /// manifest) and image (the store) each spell it, as neither depends on the other.
    #[test]
    fn kube_and_image_agree_on_the_host_image_name() {
        assert_eq!(super::HOST_IMAGE, peapod_image::HOST_IMAGE);
    }
}
