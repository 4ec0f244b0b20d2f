//! config.json: load it, refuse what peapod does not implement (naming the field), and
//! turn it into the plain values the stages need. Pure apart from `load`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};

use super::ContainerError;

/// The largest config.json (or `exec --process` file) read: 16 MiB, 8 times a config with
/// 55,000 `maskedPaths`; nesting is limited by serde_json's recursion limit (128 levels).
pub const MAX_CONFIG_BYTES: usize = 16 << 20;

/// Read and parse `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, ContainerError> {
    let path = bundle.join("config.json");
    let data = read_bounded(&path)?;
    parse(&data).map_err(|e| ContainerError::BadConfig(format!("parse `{}`: {e}", path.display())))
}

/// Parse a config.json text (what [`load`] does after reading it).
pub fn parse(data: &[u8]) -> Result<Spec, serde_json::Error> {
    serde_json::from_slice(data)
}

/// Read a JSON file of the bundle or the command line, refusing one over
/// [`MAX_CONFIG_BYTES`] without reading past the limit (`/dev/zero` ends there too).
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, ContainerError> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut data))
        .map_err(|e| ContainerError::io("read", path, e))?;
    if data.len() > MAX_CONFIG_BYTES {
        return Err(ContainerError::BadConfig(format!(
            "`{}` is larger than {MAX_CONFIG_BYTES} bytes, the limit",
            path.display()
        )));
    }
    Ok(data)
}

/// nix has no constant for the time namespace.
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

fn unsupported(field: &str) -> ContainerError {
    ContainerError::BadConfig(format!("{field} is not supported by peapod"))
}

fn bad(msg: String) -> ContainerError {
    ContainerError::BadConfig(msg)
}

/// Check everything that can be checked before any side effect.
pub fn validate(spec: &Spec) -> Result<(), ContainerError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad("process is required".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(bad("process.args must not be empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(bad(format!(
            "process.cwd `{}` must be an absolute path",
            process.cwd().display()
        )));
    }
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("process.apparmorProfile"));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("process.selinuxLabel"));
    }
    if process.scheduler().is_some() {
        return Err(unsupported("process.scheduler"));
    }
    if process.io_priority().is_some() {
        return Err(unsupported("process.ioPriority"));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(unsupported("process.execCPUAffinity"));
    }
    if process.user().username().is_some() {
        return Err(unsupported("process.user.username"));
    }
    if spec.root().is_none() {
        return Err(bad("root is required".into()));
    }
    if spec.solaris().is_some() || spec.windows().is_some() || spec.vm().is_some() {
        return Err(bad(
            "only linux containers are supported (solaris, windows or vm is set)".into(),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(unsupported(&format!(
                "mounts[{i}].uidMappings (idmapped mounts)"
            )));
        }
        crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| bad(format!("mounts[{i}] `{}`: {e}", m.destination().display())))?;
        if !m.destination().is_absolute() {
            return Err(bad(format!(
                "mounts[{i}].destination `{}` must be absolute",
                m.destination().display()
            )));
        }
    }
    let has_proc = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/proc") && m.typ().as_deref() == Some("proc"));
    if !has_proc {
        return Err(bad("mounts must include a proc mount at /proc: the init reopens its start fifo through /proc/self/fd (as runc does)".into()));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| bad("linux is required".into()))?;
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("linux.mountLabel"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    if linux.memory_policy().is_some() {
        return Err(unsupported("linux.memoryPolicy"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported("linux.netDevices"));
    }
    if let Some(p) = linux.personality() {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(unsupported("linux.personality.flags"));
        }
        return Err(unsupported("linux.personality"));
    }
    if let Some(p) = linux.rootfs_propagation().as_deref()
        && crate::rootfs::options::propagation_flags(p).is_none()
    {
        return Err(bad(format!(
            "linux.rootfsPropagation `{p}` is not a propagation type"
        )));
    }
    for k in linux.sysctl().iter().flat_map(|s| s.keys()) {
        if k.is_empty() || k.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
            return Err(bad(format!(
                "linux.sysctl key `{k}` is not a valid sysctl name"
            )));
        }
    }
    let ns = namespaces(spec)?;
    if ns.new_user && linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
        return Err(bad(
            "linux.uidMappings are required with a new user namespace".into(),
        ));
    }
    if !ns.new_user
        && (linux.uid_mappings().is_some() || linux.gid_mappings().is_some())
        && !ns.joins_user
    {
        return Err(bad(
            "linux.uidMappings need a user namespace in linux.namespaces".into(),
        ));
    }
    if linux.time_offsets().is_some() && !ns.unshare.contains(CLONE_NEWTIME) {
        return Err(bad(
            "linux.timeOffsets need a new time namespace in linux.namespaces".into(),
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !ns.unshare.contains(CloneFlags::CLONE_NEWUTS)
        && !ns.joins_uts
    {
        return Err(bad("hostname needs a uts namespace in linux.namespaces (setting it would change the host's)".into()));
    }
    Ok(())
}

/// Which namespaces to create and which to join.
#[derive(Debug, PartialEq, Eq)]
pub struct NamespacePlan {
    /// (kind, path) in join order: user first, mount last.
    pub joins: Vec<(CloneFlags, PathBuf)>,
    /// New namespaces other than user.
    pub unshare: CloneFlags,
    pub new_user: bool,
    pub joins_user: bool,
    pub joins_uts: bool,
    /// The container has a pid namespace of its own (new, not joined).
    pub private_pid: bool,
}

fn join_rank(k: CloneFlags) -> u8 {
    match k {
        CloneFlags::CLONE_NEWUSER => 0,
        CloneFlags::CLONE_NEWNS => 9,
        _ => 5,
    }
}

/// Namespaces from `linux.namespaces`; a duplicate type is an error.
pub fn namespaces(spec: &Spec) -> Result<NamespacePlan, ContainerError> {
    let mut plan = NamespacePlan {
        joins: Vec::new(),
        unshare: CloneFlags::empty(),
        new_user: false,
        joins_user: false,
        joins_uts: false,
        private_pid: false,
    };
    let mut seen = CloneFlags::empty();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in &list {
        let flag = CloneFlags::from_bits_retain(ns.typ() as libc::c_int);
        if seen.contains(flag) {
            return Err(bad(format!("linux.namespaces lists `{}` twice", ns.typ())));
        }
        seen |= flag;
        match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if ns.typ() == LinuxNamespaceType::User {
                    plan.joins_user = true;
                }
                if ns.typ() == LinuxNamespaceType::Uts {
                    plan.joins_uts = true;
                }
                plan.joins.push((flag, p.clone()));
            }
            _ => {
                if ns.typ() == LinuxNamespaceType::User {
                    plan.new_user = true;
                } else {
                    plan.unshare |= flag;
                }
                if ns.typ() == LinuxNamespaceType::Pid {
                    plan.private_pid = true;
                }
            }
        }
    }
    if !seen.contains(CloneFlags::CLONE_NEWNS) {
        return Err(bad("linux.namespaces must include a mount namespace".into()));
    }
    plan.joins.sort_by_key(|(k, _)| join_rank(*k));
    Ok(plan)
}

/// `RLIMIT_*` from the spec to the kernel's resource.
pub fn rlimit_resource(t: &PosixRlimitType) -> Resource {
    use PosixRlimitType as P;
    match t {
        P::RlimitCpu => Resource::RLIMIT_CPU,
        P::RlimitFsize => Resource::RLIMIT_FSIZE,
        P::RlimitData => Resource::RLIMIT_DATA,
        P::RlimitStack => Resource::RLIMIT_STACK,
        P::RlimitCore => Resource::RLIMIT_CORE,
        P::RlimitRss => Resource::RLIMIT_RSS,
        P::RlimitNproc => Resource::RLIMIT_NPROC,
        P::RlimitNofile => Resource::RLIMIT_NOFILE,
        P::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        P::RlimitAs => Resource::RLIMIT_AS,
        P::RlimitLocks => Resource::RLIMIT_LOCKS,
        P::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        P::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        P::RlimitNice => Resource::RLIMIT_NICE,
        P::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        P::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// An OCI capability as the `caps` crate knows it; `None` for one this kernel does not have
/// (runc ignores those too).
pub fn to_caps(c: &oci_spec::runtime::Capability) -> Option<caps::Capability> {
    let cap = caps::Capability::from_str(&format!("CAP_{c}")).ok()?;
    (cap.index() <= last_cap()).then_some(cap)
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`, read
/// once; probing each capability with prctl would cost 41 syscalls per lookup).
fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                caps::runtime::thread_all_supported()
                    .iter()
                    .map(|c| c.index())
                    .max()
                    .unwrap_or(40)
            })
    })
}

/// `linux.timeOffsets` as lines for `/proc/self/timens_offsets`.
pub fn time_offsets(spec: &Spec) -> Vec<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .map(|m| {
            m.iter()
                .map(|(clock, off)| {
                    format!(
                        "{clock} {} {}",
                        off.secs().unwrap_or(0),
                        off.nanosecs().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(crate::spec_template::default_spec(false)).unwrap();
        merge(&mut base, json);
        serde_json::from_value(base).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn default_spec_is_valid() {
        validate(&spec(serde_json::json!({}))).unwrap();
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                serde_json::json!({"process": {"apparmorProfile": "x"}}),
                "process.apparmorProfile is not supported by peapod",
            ),
            (
                serde_json::json!({"mounts": []}),
                "mounts must include a proc mount at /proc: the init reopens its start fifo through /proc/self/fd (as runc does)",
            ),
            (
                serde_json::json!({"process": {"args": []}}),
                "process.args must not be empty",
            ),
            (
                serde_json::json!({"process": {"cwd": "rel"}}),
                "process.cwd `rel` must be an absolute path",
            ),
            (
                serde_json::json!({"linux": {"intelRdt": {}}}),
                "linux.intelRdt is not supported by peapod",
            ),
            (
                serde_json::json!({"linux": {"rootfsPropagation": "sideways"}}),
                "linux.rootfsPropagation `sideways` is not a propagation type",
            ),
            (
                serde_json::json!({"linux": {"sysctl": {"net..x": "1"}}}),
                "linux.sysctl key `net..x` is not a valid sysctl name",
            ),
            (
                serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}, {"type": "mount"}]}}),
                "linux.namespaces lists `pid` twice",
            ),
            (
                serde_json::json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "user"}]}}),
                "linux.uidMappings are required with a new user namespace",
            ),
            (
                serde_json::json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["idmap"]}]}),
                "mounts[0] `/x`: mount option `idmap` is not supported by peapod",
            ),
        ];
        for (patch, want) in cases {
            let e = validate(&spec(patch.clone())).unwrap_err().to_string();
            assert_eq!(e, format!("invalid config.json: {want}"), "{patch}");
        }
    }

    #[test]
    fn namespace_plan_orders_joins() {
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "mount", "path": "/proc/1/ns/mnt"},
            {"type": "network", "path": "/proc/1/ns/net"},
            {"type": "pid"},
            {"type": "user", "path": "/proc/1/ns/user"},
        ]}}));
        let p = namespaces(&s).unwrap();
        let kinds: Vec<_> = p.joins.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            vec![
                CloneFlags::CLONE_NEWUSER,
                CloneFlags::CLONE_NEWNET,
                CloneFlags::CLONE_NEWNS
            ]
        );
        assert_eq!(p.unshare, CloneFlags::CLONE_NEWPID);
        assert!(p.private_pid && p.joins_user && !p.new_user);
    }
}
