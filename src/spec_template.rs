//! The `config.json` that `peapod spec [--rootless]` writes: runc's `runc spec` template.
//!
//! Mirrors runc's `libcontainer/specconv/example.go` (`Example()` and `ToRootless()`) as of
//! runc 1.2+, with these choices:
//! - `ociVersion` is [`OCI_VERSION`] ("1.2.0", what runc 1.2.x writes; runc 1.1 wrote
//!   "1.0.2-dev", newer runc writes the runtime-spec version it vendors).
//! - Capabilities: bounding, effective and permitted only. runc 1.2 dropped `ambient` (and
//!   earlier `inheritable`) from the template: an ambient capability cannot be raised without
//!   the inheritable one (runc PR #4367).
//! - `hostname` is "peapod" instead of "runc".
//! - `maskedPaths` ends with `/sys/devices/virtual/tpm`, as in current upstream runc's
//!   `example.go` (runc 1.1.5, installed here, does not have it yet).
//! - A cgroup namespace is added when the host runs cgroup v2 (unified), as runc does.
//! - Rootless: no network namespace, a user namespace mapping container root to the calling
//!   user's euid/egid (size 1), `/sys` bind-mounted (`rbind`, read-only) since sysfs cannot be
//!   mounted without a network namespace owned by the user, no `uid=`/`gid=` mount options, and no
//!   `linux.resources` (an unprivileged user cannot set up the device cgroup).
//!
//! Serialisation caveat: oci-spec stores capability sets as `HashSet`, so their order in the JSON
//! is not fixed (runc's order is AUDIT_WRITE, KILL, NET_BIND_SERVICE).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxDeviceCgroup, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespace, LinuxNamespaceType, LinuxResources, Mount, PosixRlimitBuilder, PosixRlimitType,
    Process, Root, Spec, User,
};

/// The runtime-spec version written into the template.
pub const OCI_VERSION: &str = "1.2.0";

/// Written as `hostname` (runc writes "runc").
pub const HOSTNAME: &str = "peapod";

/// Where the root of a cgroup v2 hierarchy shows `cgroup.controllers`; on a v1 or hybrid host
/// `/sys/fs/cgroup` is a tmpfs without it.
const CGROUP2_CONTROLLERS: &str = "/sys/fs/cgroup/cgroup.controllers";

/// `runc spec` (`rootless == false`) or `runc spec --rootless` for the calling user, on this host.
pub fn default_spec(rootless: bool) -> Spec {
    let (uid, gid) = current_ids();
    default_spec_for(rootless, Path::new(CGROUP2_CONTROLLERS).exists(), uid, gid)
}

/// The template without looking at the host: `cgroup_ns` adds a cgroup namespace (runc does so on
/// cgroup v2 hosts); `uid`/`gid` are the host ids that container root maps to when `rootless`.
pub fn default_spec_for(rootless: bool, cgroup_ns: bool, uid: u32, gid: u32) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string())
        .set_root(Some(root()))
        .set_process(Some(process()))
        .set_hostname(Some(HOSTNAME.to_string()))
        .set_domainname(None)
        .set_mounts(Some(mounts(rootless)))
        .set_hooks(None)
        .set_annotations(None)
        .set_linux(Some(linux(rootless, cgroup_ns, uid, gid)))
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None);
    spec
}

fn root() -> Root {
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"))
        .set_readonly(Some(true));
    root
}

fn process() -> Process {
    let caps: HashSet<Capability> = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into_iter()
    .collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps))
        .set_inheritable(None)
        .set_ambient(None);

    // derive_builder only fails for a field that is unset and has no default; these builders
    // are `#[builder(default)]`, so build() cannot fail.
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(1024u64)
        .soft(1024u64)
        .build()
        .expect("PosixRlimitBuilder has a default for every field");

    let mut user = User::default();
    user.set_uid(0)
        .set_gid(0)
        .set_umask(None)
        .set_additional_gids(None)
        .set_username(None);

    let mut p = Process::default();
    p.set_terminal(Some(true))
        .set_console_size(None)
        .set_user(user)
        .set_args(Some(vec!["sh".to_string()]))
        .set_command_line(None)
        .set_env(Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "TERM=xterm".to_string(),
        ]))
        .set_cwd(PathBuf::from("/"))
        .set_capabilities(Some(capabilities))
        .set_rlimits(Some(vec![nofile]))
        .set_no_new_privileges(Some(true))
        .set_apparmor_profile(None)
        .set_oom_score_adj(None)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);
    p
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(PathBuf::from(source)))
        .set_options(if options.is_empty() {
            None
        } else {
            Some(options.iter().map(|o| o.to_string()).collect())
        })
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    m
}

fn mounts(rootless: bool) -> Vec<Mount> {
    // Rootless: an unprivileged user cannot ask devpts for gid=5 (tty) without such a group
    // mapping; runc strips every uid=/gid= option.
    let devpts: &[&str] = if rootless {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    // Rootless: sysfs can only be mounted by the owner of the network namespace, and rootless has
    // none of its own, so the host's /sys is bind-mounted read-only instead.
    let sys = if rootless {
        mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )
    } else {
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )
    };
    vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount("/dev/pts", "devpts", "devpts", devpts),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        sys,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ).set_path(None);
    ns
}

fn id_map(host_id: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(host_id)
        .size(1u32)
        .build()
        .expect("LinuxIdMappingBuilder has a default for every field")
}

fn linux(rootless: bool, cgroup_ns: bool, uid: u32, gid: u32) -> Linux {
    use LinuxNamespaceType as T;
    let mut types = vec![T::Pid, T::Network, T::Ipc, T::Uts, T::Mount];
    if cgroup_ns {
        types.push(T::Cgroup);
    }
    if rootless {
        // runc's ToRootless drops the network namespace and appends a user namespace last.
        types.retain(|t| *t != T::Network);
        types.push(T::User);
    }

    let mut l = Linux::default();
    l.set_net_devices(None)
        .set_uid_mappings(rootless.then(|| vec![id_map(uid)]))
        .set_gid_mappings(rootless.then(|| vec![id_map(gid)]))
        .set_sysctl(None)
        .set_resources((!rootless).then(deny_all_devices))
        .set_cgroups_path(None)
        .set_namespaces(Some(types.into_iter().map(namespace).collect()))
        .set_devices(None)
        .set_seccomp(None)
        .set_rootfs_propagation(None)
        .set_masked_paths(Some(strings(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
            "/sys/devices/virtual/tpm",
        ])))
        .set_readonly_paths(Some(strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ])))
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);
    l
}

/// runc's `resources.devices: [{allow: false, access: "rwm"}]`: deny every device by default.
fn deny_all_devices() -> LinuxResources {
    let mut deny = LinuxDeviceCgroup::default();
    deny.set_allow(false)
        .set_typ(None)
        .set_major(None)
        .set_minor(None)
        .set_access(Some("rwm".to_string()));
    let mut r = LinuxResources::default();
    r.set_devices(Some(vec![deny]))
        .set_memory(None)
        .set_cpu(None)
        .set_pids(None)
        .set_block_io(None)
        .set_hugepage_limits(None)
        .set_network(None)
        .set_rdma(None)
        .set_unified(None);
    r
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The caller's effective uid and gid, for the rootless id mappings (runc uses `os.Geteuid()` /
/// `os.Getegid()`).
fn current_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `runc spec` output of runc 1.1.5 (Debian 12), verbatim.
    const RUNC_1_1_SPEC: &str = r#"{
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    }"#;

    /// runc's template with the differences this module documents applied.
    fn expected(rootless: bool, cgroup_ns: bool, uid: u32, gid: u32) -> Value {
        let mut v: Value = serde_json::from_str(RUNC_1_1_SPEC).expect("embedded runc spec is JSON");
        v["ociVersion"] = json!(OCI_VERSION);
        v["hostname"] = json!(HOSTNAME);
        v["process"]["capabilities"]
            .as_object_mut()
            .expect("capabilities object")
            .remove("ambient");
        push(
            &mut v["linux"]["maskedPaths"],
            json!("/sys/devices/virtual/tpm"),
        );
        if cgroup_ns {
            push(&mut v["linux"]["namespaces"], json!({"type": "cgroup"}));
        }
        if rootless {
            // What `runc spec --rootless` changes (diffed against runc 1.1.5 here).
            let linux = v["linux"].as_object_mut().expect("linux object");
            linux.remove("resources");
            linux.insert(
                "uidMappings".into(),
                json!([{"containerID": 0, "hostID": uid, "size": 1}]),
            );
            linux.insert(
                "gidMappings".into(),
                json!([{"containerID": 0, "hostID": gid, "size": 1}]),
            );
            let ns = linux["namespaces"]
                .as_array_mut()
                .expect("namespaces array");
            ns.retain(|n| n["type"] != "network");
            ns.push(json!({"type": "user"}));
            let mounts = v["mounts"].as_array_mut().expect("mounts array");
            mounts[2]["options"] = json!([
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620"
            ]);
            mounts[5] = json!({"destination": "/sys", "type": "none", "source": "/sys",
                               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        v
    }

    fn push(array: &mut Value, item: Value) {
        array.as_array_mut().expect("json array").push(item);
    }

    /// Capability sets are `HashSet`s in oci-spec: compare them as sorted lists.
    fn normalised(spec: &Spec) -> Value {
        let mut v = serde_json::to_value(spec).expect("serialize spec");
        if let Some(caps) = v["process"]["capabilities"].as_object_mut() {
            for set in caps.values_mut() {
                if let Some(list) = set.as_array_mut() {
                    list.sort_by_key(|c| c.as_str().map(str::to_owned));
                }
            }
        }
        v
    }

    #[test]
    fn template_matches_runc_spec() {
        for cgroup_ns in [false, true] {
            assert_eq!(
                normalised(&default_spec_for(false, cgroup_ns, 1000, 1000)),
                expected(false, cgroup_ns, 1000, 1000),
                "cgroup_ns={cgroup_ns}"
            );
        }
    }

    #[test]
    fn rootless_template_matches_runc_spec_rootless() {
        for cgroup_ns in [false, true] {
            assert_eq!(
                normalised(&default_spec_for(true, cgroup_ns, 1234, 5678)),
                expected(true, cgroup_ns, 1234, 5678),
                "cgroup_ns={cgroup_ns}"
            );
        }
    }

    #[test]
    fn key_fields() {
        let spec = default_spec_for(false, true, 0, 0);
        assert_eq!(spec.version(), "1.2.0");
        assert_eq!(spec.hostname().as_deref(), Some("peapod"));
        let root = spec.root().as_ref().expect("root");
        assert_eq!(root.path(), Path::new("rootfs"));
        assert_eq!(root.readonly(), Some(true));
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(process.args().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(process.cwd(), Path::new("/"));
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().expect("capabilities");
        let want: HashSet<Capability> = [
            Capability::AuditWrite,
            Capability::Kill,
            Capability::NetBindService,
        ]
        .into();
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert!(caps.ambient().is_none() && caps.inheritable().is_none());
        let rlimit = &process.rlimits().as_ref().expect("rlimits")[0];
        assert_eq!(
            (rlimit.typ(), rlimit.soft(), rlimit.hard()),
            (PosixRlimitType::RlimitNofile, 1024, 1024)
        );
        let linux = spec.linux().as_ref().expect("linux");
        let ns: Vec<_> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|n| n.typ())
            .collect();
        use LinuxNamespaceType as T;
        assert_eq!(
            ns,
            [T::Pid, T::Network, T::Ipc, T::Uts, T::Mount, T::Cgroup]
        );
        let rootless = default_spec_for(true, false, 1000, 100);
        let linux = rootless.linux().as_ref().expect("linux");
        let ns: Vec<_> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|n| n.typ())
            .collect();
        assert_eq!(ns, [T::Pid, T::Ipc, T::Uts, T::Mount, T::User]);
        let uid_map = &linux.uid_mappings().as_ref().expect("uid map")[0];
        assert_eq!(
            (uid_map.container_id(), uid_map.host_id(), uid_map.size()),
            (0, 1000, 1)
        );
        let gid_map = &linux.gid_mappings().as_ref().expect("gid map")[0];
        assert_eq!(
            (gid_map.container_id(), gid_map.host_id(), gid_map.size()),
            (0, 100, 1)
        );
        assert!(linux.resources().is_none());
    }

    #[test]
    fn round_trips_through_serde() {
        for rootless in [false, true] {
            let spec = default_spec(rootless);
            let text = serde_json::to_string_pretty(&spec).expect("serialize");
            let back: Spec = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, spec, "rootless={rootless}");
        }
    }

    #[test]
    fn host_defaults_follow_the_caller_and_cgroup_mode() {
        let (uid, gid) = current_ids();
        let spec = default_spec(true);
        let linux = spec.linux().as_ref().expect("linux");
        assert_eq!(
            linux.uid_mappings().as_ref().expect("uid map")[0].host_id(),
            uid
        );
        assert_eq!(
            linux.gid_mappings().as_ref().expect("gid map")[0].host_id(),
            gid
        );
        let has_cgroup_ns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Cgroup);
        assert_eq!(has_cgroup_ns, Path::new(CGROUP2_CONTROLLERS).exists());
    }
}

/// Host directories a host-view root shows read-only (the `host` image of pods).
pub const HOST_VIEW_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Writable, private directories of a host-view root.
const HOST_VIEW_TMPFS: &[&str] = &["/tmp", "/run", "/var/tmp"];

/// How one host-view directory appears: a symlink as on the host (merged-/usr systems
/// have `/bin -> usr/bin`), or a read-only bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    Symlink { path: String, target: PathBuf },
    Bind { path: String },
}

/// Look at the host to decide each entry of the view; absent directories are left out.
pub fn host_entries() -> Vec<HostEntry> {
    HOST_VIEW_DIRS
        .iter()
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(p).ok()?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(p).ok()?;
                Some(HostEntry::Symlink {
                    path: p.to_string(),
                    target,
                })
            } else {
                meta.is_dir().then(|| HostEntry::Bind {
                    path: p.to_string(),
                })
            }
        })
        .collect()
}

/// A spec whose root is an empty directory with the host's system directories mounted
/// read-only and private tmpfs for `/tmp`, `/run`, `/var/tmp`: a container (or pod) that
/// needs no image download. The caller creates the root directory with
/// [`prepare_host_root`].
///
/// The binds are not recursive: `ro` on an `rbind` makes only its top mount read-only, so a
/// mount below a host directory (a bind-mounted `/etc/resolv.conf`, a tmpfs under `/etc`)
/// would be writable from the container, and writes would reach the host. Such mounts are not
/// part of the view (their mount point shows what lies below it).
pub fn host_view_spec(entries: &[HostEntry]) -> Spec {
    let mut spec = default_spec(false);
    let mut ms = spec.mounts().clone().unwrap_or_default();
    for e in entries {
        if let HostEntry::Bind { path } = e {
            ms.push(mount(
                path,
                "bind",
                path,
                &["bind", "ro", "nosuid", "nodev"],
            ));
        }
    }
    for t in HOST_VIEW_TMPFS {
        ms.push(mount(
            t,
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777"],
        ));
    }
    spec.set_mounts(Some(ms));
    spec
}

/// Create the root directory of a host view: symlinks as on the host; mount points are
/// made by the runtime.
pub fn prepare_host_root(root: &std::path::Path, entries: &[HostEntry]) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    for e in entries {
        if let HostEntry::Symlink { path, target } = e {
            let link = root.join(path.trim_start_matches('/'));
            match std::os::unix::fs::symlink(target, &link) {
                Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => return Err(err),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod host_view_tests {
    use super::*;

    #[test]
    fn host_view_mounts_binds_read_only_and_keeps_symlinks() {
        let entries = vec![
            HostEntry::Bind {
                path: "/usr".into(),
            },
            HostEntry::Symlink {
                path: "/bin".into(),
                target: "usr/bin".into(),
            },
        ];
        let spec = host_view_spec(&entries);
        let ms = spec.mounts().clone().unwrap();
        let usr = ms
            .iter()
            .find(|m| m.destination() == std::path::Path::new("/usr"))
            .unwrap();
        assert_eq!(usr.typ().as_deref(), Some("bind"));
        let opts = usr.options().clone().unwrap();
        assert!(opts.contains(&"ro".to_string()));
        // Not recursive: `ro` would not reach the mounts below.
        assert!(!opts.contains(&"rbind".to_string()), "{opts:?}");
        assert!(
            !ms.iter()
                .any(|m| m.destination() == std::path::Path::new("/bin"))
        );
        assert!(
            ms.iter()
                .any(|m| m.destination() == std::path::Path::new("/run")
                    && m.typ().as_deref() == Some("tmpfs"))
        );
        let dir = tempfile::tempdir().unwrap();
        prepare_host_root(&dir.path().join("rootfs"), &entries).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("rootfs/bin")).unwrap(),
            PathBuf::from("usr/bin")
        );
    }
}
