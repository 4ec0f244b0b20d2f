//! config.json: load it, refuse what peapod does not implement (naming the field), and
//! turn it into the plain values the stages need. Pure apart from `load`.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::ContainerError;
use crate::linux::sysctl_dotted;

/// The largest config.json (or `exec --process` file) read: [`limits::CONFIG_BYTES`], far past
/// any real config; nesting is limited by serde_json's recursion limit (128 levels).
pub const MAX_CONFIG_BYTES: usize = limits::CONFIG_BYTES as usize;

/// Read and parse `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, ContainerError> {
    Ok(load_config(bundle)?.spec)
}

/// config.json as read: the spec and the bytes it was parsed from, which create saves as the
/// container's copy (serializing the spec again would only cost time: the copy is read back
/// with the same [`parse`]).
#[derive(Debug)]
pub struct Config {
    pub spec: Spec,
    pub json: Vec<u8>,
}

/// Read and parse `<bundle>/config.json`, keeping its bytes.
pub fn load_config(bundle: &Path) -> Result<Config, ContainerError> {
    read_config(bundle, true)
}

/// Read the copy of config.json that create saved in the state directory `dir`: parsed as
/// the bundle's was, without repeating the warnings create printed.
pub fn load_saved(dir: &Path) -> Result<Spec, ContainerError> {
    Ok(read_config(dir, false)?.spec)
}

fn read_config(dir: &Path, warn: bool) -> Result<Config, ContainerError> {
    let path = dir.join("config.json");
    let json = match read_bounded(&path) {
        // runc's words (a bundle without config.json; not the state's copy, a corrupt state).
        Err(ContainerError::Io { err, .. })
            if warn && err.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(ContainerError::NoConfig(path));
        }
        other => other?,
    };
    let spec = parse_with(&json, warn).map_err(|e| {
        ContainerError::BadConfig(match e.classify() {
            // A truncated file: Go's decoder (runc) says "unexpected EOF".
            serde_json::error::Category::Eof => format!(
                "parse `{}` (line {}, column {}): unexpected EOF",
                path.display(),
                e.line(),
                e.column()
            ),
            _ => format!("parse `{}`: {e}", path.display()),
        })
    })?;
    Ok(Config { spec, json })
}

/// Parse a config.json text (what [`load`] does after reading it). A capability name the
/// runtime does not know is dropped with runc's warning, not an error.
pub fn parse(data: &[u8]) -> Result<Spec, serde_json::Error> {
    parse_with(data, true)
}

fn parse_with(data: &[u8], warn: bool) -> Result<Spec, serde_json::Error> {
    // Straight into the Spec, the common case: a document that parses as it is has nothing
    // for the patches below to change (each patches a value `Spec` refuses). The `Value` tree
    // is built only when that fails (a patched value, or a key given twice: the last wins, as
    // in runc), so `create` and `run` parse once at each start.
    let direct = if data.trim_ascii_start().starts_with(b"{") {
        match serde_json::from_slice::<Spec>(data) {
            Ok(spec) => return Ok(spec),
            Err(e) => Some(e),
        }
    } else {
        None
    };
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    // serde would take `[]` as a spec with every field defaulted; runc refuses it.
    if !v.is_object() {
        return Err(serde::de::Error::custom(
            "config.json must hold a JSON object",
        ));
    }
    // runc (Go) decodes a `null` ociVersion as the empty string and, as for any other
    // string, runs the container: its version is not validated.
    if let Some(version) = v.get_mut("ociVersion")
        && version.is_null()
    {
        *version = serde_json::Value::String(String::new());
    }
    // `get_mut`, not `v["process"]`: indexing a non-object JSON value mutably panics.
    if let Some(p) = v.get_mut("process") {
        if let Some(caps) = p.get_mut("capabilities") {
            let unknown = drop_unknown_capabilities(caps);
            if warn && !unknown.is_empty() {
                log::warn!(
                    "ignoring unknown or unavailable capabilities: [{}]",
                    unknown.join(" ")
                );
            }
        }
        default_user(p);
        // Missing, as empty: `validate` refuses it in runc's words, not serde's.
        if let Some(o) = p.as_object_mut() {
            o.entry("cwd").or_insert_with(|| "".into());
        }
        spec_scheduler_flags(p);
    }
    from_patched(&v).map_err(|e| match direct {
        // The same error as the direct parse's: that one has its line and column in the file.
        Some(d) if without_position(&d) == e.to_string() => d,
        _ => e,
    })
}

/// Deserialize a patched document. Through its text rather than `serde_json::from_value`, so
/// that each type has one deserializer in the binary (from bytes) instead of two; an error's
/// position would be in that text, not the file's, and is left out.
fn from_patched<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
) -> Result<T, serde_json::Error> {
    let text = serde_json::to_vec(v)?;
    serde_json::from_slice(&text).map_err(|e| serde::de::Error::custom(without_position(&e)))
}

/// An error's message without serde_json's ` at line L column C`.
fn without_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    msg.strip_suffix(&at).unwrap_or(&msg).to_string()
}

/// Remove the names no [`oci_spec::runtime::Capability`] parses from every set of `caps`
/// (a `process.capabilities` object) and return them, each once.
pub fn drop_unknown_capabilities(caps: &mut serde_json::Value) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    let Some(sets) = caps.as_object_mut() else {
        return unknown;
    };
    for set in sets.values_mut() {
        if let Some(list) = set.as_array_mut() {
            list.retain(|c| {
                let known =
                    serde_json::from_value::<oci_spec::runtime::Capability>(c.clone()).is_ok();
                if !known
                    && let Some(name) = c.as_str()
                    && !unknown.iter().any(|u| u == name)
                {
                    unknown.push(name.to_string());
                }
                known || !c.is_string()
            });
        }
    }
    unknown
}

/// Parse an `exec --process` file.
pub fn parse_process(data: &[u8]) -> Result<oci_spec::runtime::Process, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    default_user(&mut v);
    spec_scheduler_flags(&mut v);
    from_patched(&v)
}

/// runc runs a process (config.json's or a process.json) without `user` as uid 0, gid 0 (Go's
/// zero values); the oci-spec crate requires the field.
fn default_user(process: &mut serde_json::Value) {
    if let Some(o) = process.as_object_mut() {
        o.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
}

/// The oci-spec crate spells two `process.scheduler.flags` unlike the runtime-spec
/// (`SCHED_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN`): accept the runtime-spec's names.
fn spec_scheduler_flags(process: &mut serde_json::Value) {
    let flags = process
        .get_mut("scheduler")
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut());
    for f in flags.into_iter().flatten() {
        let renamed = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = renamed.into();
    }
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
            "`{}` is larger than {MAX_CONFIG_BYTES} bytes, peapod's limit",
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
        .ok_or_else(|| bad("process property must not be empty".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(bad("process.args must not be empty".into()));
    }
    // runc's words after the field's name.
    if process.cwd().as_os_str().is_empty() {
        return Err(bad("process.cwd: Cwd property must not be empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(bad(format!(
            "process.cwd `{}`: Cwd must be an absolute path",
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
    crate::process::features::plan(spec, process, false).map_err(|e| bad(e.to_string()))?;
    if process.user().username().is_some() {
        return Err(unsupported("process.user.username"));
    }
    if spec.root().is_none() {
        return Err(bad("root must be specified".into()));
    }
    if spec.solaris().is_some() || spec.windows().is_some() || spec.vm().is_some() {
        return Err(bad(
            "only linux containers are supported (solaris, windows or vm is set)".into(),
        ));
    }
    idmapped_mounts(spec)?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| bad(format!("mounts[{i}] `{}`: {e}", m.destination().display())))?;
        if !m.destination().is_absolute() {
            return Err(bad(format!(
                "mounts[{i}].destination `{}` must be absolute",
                m.destination().display()
            )));
        }
    }
    if namespaces(spec)?.has_mount() {
        let has_proc =
            spec.mounts().iter().flatten().any(|m| {
                m.destination() == Path::new("/proc") && m.typ().as_deref() == Some("proc")
            });
        if !has_proc {
            return Err(bad("mounts must include a proc mount at /proc: the init reopens its start fifo through /proc/self/fd (as runc does)".into()));
        }
    } else {
        without_mount_namespace(spec)?;
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| bad("linux is required".into()))?;
    // runc applies the label only where SELinux is enabled; peapod has no SELinux support, so
    // it refuses the label only there.
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && Path::new("/sys/fs/selinux/enforce").exists()
    {
        return Err(unsupported("linux.mountLabel"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported("linux.netDevices"));
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
    check_limits(spec)?;
    let ns = namespaces(spec)?;
    check_sysctls(spec, &ns, &joined_is_current)?;
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

/// A container without a mount namespace of its own runs in the runtime's: the init only
/// `chroot`s into the rootfs (no pivot_root, no `/dev` nodes, no mounts). What would need a
/// mount there is refused, naming the field: runc 1.5.1 refuses masked and read-only paths
/// (its words below) but makes `mounts`, the rootfs bind and a read-only root in the host's
/// mount namespace and leaves them there after the container is gone.
fn without_mount_namespace(spec: &Spec) -> Result<(), ContainerError> {
    let linux = spec.linux().as_ref();
    let listed = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    if listed(linux.and_then(|l| l.masked_paths().as_ref()))
        || listed(linux.and_then(|l| l.readonly_paths().as_ref()))
    {
        return Err(bad(
            "unable to restrict sys entries without a private MNT namespace".into(),
        ));
    }
    let needs = |field: &str| {
        bad(format!(
            "{field} needs a mount namespace in linux.namespaces (without one peapod makes \
             no mounts and no device nodes: it never changes the host's mounts)"
        ))
    };
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(needs("mounts"));
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return Err(needs("root.readonly"));
    }
    if linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .is_some_and(|p| !p.is_empty())
    {
        return Err(needs("linux.rootfsPropagation"));
    }
    if linux
        .and_then(|l| l.devices().as_ref())
        .is_some_and(|d| !d.is_empty())
    {
        return Err(needs("linux.devices"));
    }
    if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        return Err(needs("process.terminal (the /dev/console bind)"));
    }
    Ok(())
}

/// Upper bounds on the lists of config.json. Each is far above what runc users, containerd or
/// kubelet produce (kubelet sends about 15 masked paths, some dozens of mounts), and keeps the
/// work of a `create` small and linear: a list past its bound is refused before anything
/// exists, naming the field.
pub mod limits {
    /// `mounts`, `linux.maskedPaths`, `linux.readonlyPaths`, `linux.devices`,
    /// `linux.resources.devices`: each entry is at least one mount or one cgroup write.
    pub const PATHS: usize = 4096;
    /// `process.args` and `process.env`, `hooks.*[].args` and `.env` (execve's own limit on the
    /// total size, `ARG_MAX`, applies too).
    pub const STRINGS: usize = 65_536;
    /// Hooks of one kind: each is a process the runtime waits for.
    pub const HOOKS: usize = 256;
    /// `process.rlimits` (there are 16 resources).
    pub const RLIMITS: usize = 64;
    /// `linux.uidMappings` / `gidMappings`: the kernel takes at most 340 lines.
    pub const ID_MAPPINGS: usize = 340;
    /// `linux.seccomp.syscalls`, and the names in all of them together.
    pub const SECCOMP_RULES: usize = 4096;
    pub const SECCOMP_NAMES: usize = 16_384;
    /// `linux.sysctl`.
    pub const SYSCTLS: usize = 1024;
    /// `process.user.additionalGids` (the kernel's `NGROUPS_MAX`).
    pub const GIDS: usize = 65_536;
    /// The size of config.json itself.
    pub const CONFIG_BYTES: u64 = 64 << 20;
}

fn within(field: &str, n: usize, limit: usize) -> Result<(), ContainerError> {
    if n > limit {
        return Err(bad(format!(
            "{field} has {n} entries, more than peapod's limit of {limit}"
        )));
    }
    Ok(())
}

/// Refuse lists longer than [`limits`] allow.
pub fn check_limits(spec: &Spec) -> Result<(), ContainerError> {
    use limits::*;
    let len = |v: Option<&Vec<String>>| v.map_or(0, Vec::len);
    within("mounts", spec.mounts().as_ref().map_or(0, Vec::len), PATHS)?;
    if let Some(p) = spec.process() {
        check_process_limits(p)?;
    }
    if let Some(h) = spec.hooks() {
        #[allow(deprecated)]
        let kinds = [
            ("hooks.prestart", h.prestart()),
            ("hooks.createRuntime", h.create_runtime()),
            ("hooks.createContainer", h.create_container()),
            ("hooks.startContainer", h.start_container()),
            ("hooks.poststart", h.poststart()),
            ("hooks.poststop", h.poststop()),
        ];
        for (field, hooks) in kinds {
            let hooks = hooks.as_deref().unwrap_or_default();
            within(field, hooks.len(), HOOKS)?;
            for (i, hook) in hooks.iter().enumerate() {
                within(
                    &format!("{field}[{i}].args"),
                    len(hook.args().as_ref()),
                    STRINGS,
                )?;
                within(
                    &format!("{field}[{i}].env"),
                    len(hook.env().as_ref()),
                    STRINGS,
                )?;
            }
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    within(
        "linux.maskedPaths",
        len(linux.masked_paths().as_ref()),
        PATHS,
    )?;
    within(
        "linux.readonlyPaths",
        len(linux.readonly_paths().as_ref()),
        PATHS,
    )?;
    within(
        "linux.devices",
        linux.devices().as_ref().map_or(0, Vec::len),
        PATHS,
    )?;
    if let Some(r) = linux.resources() {
        check_resources_limits(r)?;
    }
    within(
        "linux.uidMappings",
        linux.uid_mappings().as_ref().map_or(0, Vec::len),
        ID_MAPPINGS,
    )?;
    within(
        "linux.gidMappings",
        linux.gid_mappings().as_ref().map_or(0, Vec::len),
        ID_MAPPINGS,
    )?;
    within(
        "linux.sysctl",
        linux.sysctl().as_ref().map_or(0, |m| m.len()),
        SYSCTLS,
    )?;
    if let Some(sc) = linux.seccomp() {
        let rules = sc.syscalls().as_deref().unwrap_or_default();
        within("linux.seccomp.syscalls", rules.len(), SECCOMP_RULES)?;
        within(
            "linux.seccomp.syscalls[].names",
            rules.iter().map(|r| r.names().len()).sum(),
            SECCOMP_NAMES,
        )?;
    }
    Ok(())
}

/// [`limits`] for a process: the container's, or one `exec` starts (`--process`).
pub fn check_process_limits(p: &oci_spec::runtime::Process) -> Result<(), ContainerError> {
    use limits::*;
    let len = |v: Option<&Vec<String>>| v.map_or(0, Vec::len);
    within("process.args", len(p.args().as_ref()), STRINGS)?;
    within("process.env", len(p.env().as_ref()), STRINGS)?;
    within(
        "process.rlimits",
        p.rlimits().as_ref().map_or(0, Vec::len),
        RLIMITS,
    )?;
    within(
        "process.user.additionalGids",
        p.user().additional_gids().as_ref().map_or(0, Vec::len),
        GIDS,
    )
}

/// [`limits`] for resources: the container's, or those `update` applies.
pub fn check_resources_limits(r: &oci_spec::runtime::LinuxResources) -> Result<(), ContainerError> {
    within(
        "linux.resources.devices",
        r.devices().as_ref().map_or(0, Vec::len),
        limits::PATHS,
    )
}

/// The namespace a sysctl lives in, by runc's table (`libcontainer/configs/validate`); `None`
/// for a sysctl that is global to the kernel.
pub fn sysctl_namespace(dotted: &str) -> Option<CloneFlags> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&dotted) || dotted.starts_with("fs.mqueue.") {
        Some(CloneFlags::CLONE_NEWIPC)
    } else if dotted.starts_with("net.") {
        Some(CloneFlags::CLONE_NEWNET)
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some(CloneFlags::CLONE_NEWUTS)
    } else {
        None
    }
}

/// Refuse every sysctl the container could only write to a namespace it does not own, with
/// runc's rule and words: a global sysctl (`kernel.core_pattern`, `vm.*`...) always; a
/// namespaced one unless the namespace is new or joined by a path that is not the runtime's
/// own (runc checks that only for the network namespace; peapod checks IPC and UTS the same
/// way, since joining `/proc/1/ns/ipc` would make `kernel.shmmax` the host's).
/// `kernel.hostname` conflicts with the OCI `hostname` field, as in runc.
pub fn check_sysctls(
    spec: &Spec,
    plan: &NamespacePlan,
    is_current: &dyn Fn(CloneFlags, &Path) -> Result<bool, String>,
) -> Result<(), ContainerError> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let owns = |kind: CloneFlags| -> Result<bool, ContainerError> {
        if plan.unshare.contains(kind) {
            return Ok(true);
        }
        match plan.joins.iter().find(|(k, _)| *k == kind) {
            Some((_, path)) => is_current(kind, path)
                .map(|host| !host)
                .map_err(|e| bad(format!("invalid {} namespace path: {e}", ns_label(kind)))),
            None => Ok(false),
        }
    };
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        let s = sysctl_dotted(key);
        let refusal = match sysctl_namespace(&s) {
            Some(CloneFlags::CLONE_NEWIPC) if !owns(CloneFlags::CLONE_NEWIPC)? => {
                format!("sysctl {s:?} is not allowed in the hosts ipc namespace")
            }
            Some(CloneFlags::CLONE_NEWNET) if !owns(CloneFlags::CLONE_NEWNET)? => {
                format!("sysctl {s:?} not allowed in host network namespace")
            }
            Some(CloneFlags::CLONE_NEWUTS) if owns(CloneFlags::CLONE_NEWUTS)? => {
                if s == "kernel.hostname" {
                    format!(
                        "sysctl {s:?} is not allowed as it conflicts with the OCI \"hostname\" field"
                    )
                } else {
                    continue;
                }
            }
            Some(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNET) => continue,
            _ => format!("sysctl {s:?} is not in a separate kernel namespace"),
        };
        return Err(bad(refusal));
    }
    Ok(())
}

fn ns_label(kind: CloneFlags) -> &'static str {
    match kind {
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWNET => "net",
        _ => "other",
    }
}

/// Whether the namespace file at `path` is the one this process is in (same inode as
/// `/proc/self/ns/<kind>`): joining it is no separation at all.
fn joined_is_current(kind: CloneFlags, path: &Path) -> Result<bool, String> {
    let own = format!("/proc/self/ns/{}", ns_label(kind));
    let a = nix::sys::stat::stat(own.as_str()).map_err(|e| format!("stat `{own}`: {e}"))?;
    let b = nix::sys::stat::stat(path).map_err(|e| format!("stat `{}`: {e}", path.display()))?;
    Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
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

impl NamespacePlan {
    /// The container has a mount namespace, new or joined; without one it runs in the
    /// runtime's and the init only `chroot`s into the rootfs.
    pub fn has_mount(&self) -> bool {
        self.unshare.contains(CloneFlags::CLONE_NEWNS)
            || self
                .joins
                .iter()
                .any(|(k, _)| *k == CloneFlags::CLONE_NEWNS)
    }
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
    plan.joins.sort_by_key(|(k, _)| join_rank(*k));
    Ok(plan)
}

/// The user namespace an idmapped mount takes its idmapping from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdmapUserns {
    /// A namespace made for the mount: `uid_map` and `gid_map` text (`ID HOSTID SIZE` lines).
    Maps { uid_map: String, gid_map: String },
    /// The user namespace the container joins (`linux.namespaces[].path`).
    Path(PathBuf),
}

/// One idmapped bind mount of `mounts[]`, built on the host before the container exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmapMount {
    /// Index in `mounts[]`.
    pub index: usize,
    /// `mounts[].source` as given (relative to the bundle when relative).
    pub source: PathBuf,
    pub userns: IdmapUserns,
    /// `rbind`: the tree is cloned with the mounts below the source.
    pub rbind: bool,
    /// `ridmap`: the idmapping is set on every mount of the tree, not only its top.
    pub recursive: bool,
}

fn id_map_text(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The idmapped mounts of `spec`, with runc 1.5.1's rules and words: a mount is idmapped when
/// it has `uidMappings`/`gidMappings` or the `idmap`/`ridmap` option; it must be a bind (the
/// `bind`/`rbind` option: runc does not count `type: bind` alone); without mappings of its own
/// it takes the container's user namespace (the joined one, or `linux.uidMappings` and
/// `gidMappings` of a new one); in the end it needs both uid and gid mappings.
pub fn idmapped_mounts(spec: &Spec) -> Result<Vec<IdmapMount>, ContainerError> {
    let linux = spec.linux().as_ref();
    let user_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    let joined = user_ns
        .and_then(|n| n.path().as_ref())
        .filter(|p| !p.as_os_str().is_empty());
    let mut plan = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let where_ = || format!("mounts[{i}] `{}`", m.destination().display());
        let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| bad(format!("{}: {e}", where_())))?;
        let own_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
        if opts.idmap.is_none() && !own_maps {
            continue;
        }
        if !opts.is_bind() {
            return Err(bad(format!(
                "{}: id-mapped mounts are only supported for bind-mounts",
                where_()
            )));
        }
        let userns = match (own_maps, joined) {
            (false, Some(path)) => IdmapUserns::Path(path.clone()),
            _ => {
                let (uid, gid) = if own_maps {
                    (m.uid_mappings().as_ref(), m.gid_mappings().as_ref())
                } else if user_ns.is_some() {
                    (
                        linux.and_then(|l| l.uid_mappings().as_ref()),
                        linux.and_then(|l| l.gid_mappings().as_ref()),
                    )
                } else {
                    (None, None)
                };
                match (uid.filter(|u| !u.is_empty()), gid.filter(|g| !g.is_empty())) {
                    (Some(u), Some(g)) => IdmapUserns::Maps {
                        uid_map: id_map_text(u),
                        gid_map: id_map_text(g),
                    },
                    _ => {
                        return Err(bad(format!(
                            "{}: id-mapped mounts must have both uid and gid mappings specified",
                            where_()
                        )));
                    }
                }
            }
        };
        plan.push(IdmapMount {
            index: i,
            source: m.source().clone().unwrap_or_default(),
            userns,
            rbind: opts.flags.contains(nix::mount::MsFlags::MS_REC),
            recursive: opts.idmap == Some(true),
        });
    }
    Ok(plan)
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

    #[test]
    fn parse_of_non_object_json_is_an_error_not_a_panic() {
        for text in [
            "[]",
            "5",
            r#"{"process":5}"#,
            r#"{"process":{"capabilities":5}}"#,
            r#"{"process":{"capabilities":{"bounding":5}}}"#,
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{text}");
        }
        for text in ["5", r#"{"scheduler":5}"#] {
            assert!(parse_process(text.as_bytes()).is_err(), "{text}");
        }
    }

    /// The direct parse is taken only where it gives what the patched one gives: each patched
    /// value is one `Spec` refuses, and a document `Spec` takes parses alike both ways.
    #[test]
    fn the_direct_parse_agrees_with_the_patched_one() {
        let patched = [
            r#"{"ociVersion":null}"#,
            r#"{"process":{"user":{"uid":0,"gid":0},"cwd":"/","capabilities":{"bounding":["CAP_KILL","CAP_BOGUS"]}}}"#,
            r#"{"process":{"user":{"uid":0,"gid":0},"cwd":"/","scheduler":{"policy":"SCHED_OTHER","flags":["SCHED_FLAG_RESET_ON_FORK"]}}}"#,
            r#"{"process":{"user":{"uid":0,"gid":0},"cwd":"/","scheduler":{"policy":"SCHED_OTHER","flags":["SCHED_FLAG_DL_OVERRUN"]}}}"#,
        ];
        for text in patched {
            assert!(
                serde_json::from_slice::<Spec>(text.as_bytes()).is_err(),
                "{text}"
            );
            parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let spec = parse(patched[2].as_bytes()).unwrap();
        let flags = spec
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .as_ref()
            .unwrap();
        assert_eq!(
            flags.flags().as_deref(),
            Some(&[oci_spec::runtime::LinuxSchedulerFlag::SchedResetOnFork][..])
        );
        let template = serde_json::to_vec(&crate::spec_template::default_spec(false)).unwrap();
        let direct = serde_json::from_slice::<Spec>(&template).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&template).unwrap();
        assert_eq!(direct, from_patched::<Spec>(&value).unwrap());
        assert_eq!(parse(&template).unwrap(), direct);
        // serde takes a struct from a JSON array too; runc does not: neither path does.
        assert!(serde_json::from_slice::<Spec>(b" []").is_ok());
        assert!(parse(b" []").is_err());
        // A key given twice: the last wins, as in runc (Go's decoder), not serde's refusal.
        let spec = parse(br#"{"hostname":"a","hostname":"b"}"#).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("b"));
        // An error the direct parse also meets keeps its place in the file; one met only in a
        // patched document has none (it would be in the re-serialized text).
        let e = parse(b"{\n\"process\": 5}").unwrap_err().to_string();
        assert!(e.ends_with("at line 2 column 12"), "{e}");
        let e = parse(br#"{"ociVersion":null,"process":5}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid type: integer `5`") && !e.contains(" at line "),
            "{e}"
        );
    }

    /// runc 1.5.1 runs any string (and `null`) as ociVersion, and refuses a number.
    #[test]
    fn oci_version_is_any_string_or_null_as_in_runc() {
        for v in [r#""banana""#, r#""""#, "null", r#""9.9.9""#] {
            let text = format!(r#"{{"ociVersion":{v}}}"#);
            assert!(parse(text.as_bytes()).is_ok(), "{text}");
        }
        assert!(parse(br#"{"ociVersion":5}"#).is_err());
    }

    /// runc runs a config.json whose process has no `user` as uid 0, gid 0 (oci-spec requires
    /// the field): so does peapod, as it already did for `exec --process`.
    #[test]
    fn a_process_without_user_runs_as_root_as_in_runc() {
        let spec = parse(br#"{"process":{"args":["id"],"cwd":"/"},"root":{"path":"r"}}"#).unwrap();
        let user = spec.process().as_ref().unwrap().user();
        assert_eq!((user.uid(), user.gid()), (0, 0));
        let p = parse_process(br#"{"args":["id"],"cwd":"/"}"#).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    }

    /// A bundle without config.json and a truncated one: runc's words end the message (they
    /// are Go's: "unexpected EOF"), after the path and position.
    #[test]
    fn a_missing_or_truncated_config_ends_with_runcs_words() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_config(dir.path()).err().unwrap().to_string();
        let path = dir.path().join("config.json");
        assert_eq!(
            e,
            format!(
                "read `{}`: JSON specification file config.json not found",
                path.display()
            )
        );
        std::fs::write(&path, "{\"ociVersion\":\n").unwrap();
        let e = load_config(dir.path()).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "invalid config.json: parse `{}` (line 2, column 0): unexpected EOF",
                path.display()
            )
        );
        // Not the state's copy: a missing one there is a corrupt state, told as such.
        std::fs::remove_file(&path).unwrap();
        let e = load_saved(dir.path()).err().unwrap().to_string();
        assert!(e.starts_with("read `") && e.contains("os error 2"), "{e}");
    }

    /// oci-spec checks execCPUAffinity with a regular expression while deserializing (the
    /// workspace gives it regex-lite, crates/regex-lite-shim): lists and ranges of ASCII
    /// digits pass, anything else is refused with oci-spec's message.
    #[test]
    fn exec_cpu_affinity_syntax_is_checked_while_parsing() {
        let text = |a: &str| {
            format!(
                r#"{{"process":{{"user":{{"uid":0,"gid":0}},"cwd":"/","execCPUAffinity":{{"initial":"{a}"}}}}}}"#
            )
        };
        for ok in ["0", "0-3", "0-3,7", "1,2,10-12"] {
            parse(text(ok).as_bytes()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "a", "0-", ",1", "1,,2", "0 ", "0-3,", "\u{663}"] {
            let e = parse(text(bad).as_bytes()).unwrap_err().to_string();
            assert!(
                e.starts_with("Invalid execCPUAffinity format: "),
                "{bad}: {e}"
            );
        }
    }

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
                "process.cwd `rel`: Cwd must be an absolute path",
            ),
            (
                serde_json::json!({"process": {"cwd": ""}}),
                "process.cwd: Cwd property must not be empty",
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
                serde_json::json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}]}),
                "mounts[0] `/x`: id-mapped mounts must have both uid and gid mappings specified",
            ),
            (
                serde_json::json!({"mounts": [{"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}]}),
                "mounts[0] `/x`: id-mapped mounts are only supported for bind-mounts",
            ),
        ];
        for (patch, want) in cases {
            let e = validate(&spec(patch.clone())).unwrap_err().to_string();
            assert_eq!(e, format!("invalid config.json: {want}"), "{patch}");
        }
    }

    /// Without a mount namespace: runc's refusal of masked/read-only paths, peapod's of
    /// anything that would mount in the host's namespace; a bare config is valid.
    #[test]
    fn no_mount_namespace_refuses_what_would_mount_on_the_host() {
        let base = || {
            let mut v = serde_json::to_value(spec(serde_json::json!({}))).unwrap();
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "mount");
            v["linux"]["maskedPaths"] = serde_json::json!([]);
            v["linux"]["readonlyPaths"] = serde_json::json!([]);
            v["mounts"] = serde_json::json!([]);
            v["root"]["readonly"] = false.into();
            v["process"]["terminal"] = false.into();
            v
        };
        let check = |patch: serde_json::Value| {
            let mut v = base();
            merge(&mut v, patch);
            let s: Spec = serde_json::from_value(v).unwrap();
            assert!(!namespaces(&s).unwrap().has_mount());
            validate(&s).map_err(|e| e.to_string())
        };
        check(serde_json::json!({})).unwrap();
        for (patch, want) in [
            (
                serde_json::json!({"linux": {"maskedPaths": ["/proc/kcore"]}}),
                "unable to restrict sys entries without a private MNT namespace",
            ),
            (
                serde_json::json!({"linux": {"readonlyPaths": ["/proc/sys"]}}),
                "unable to restrict sys entries without a private MNT namespace",
            ),
            (
                serde_json::json!({"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]}),
                "mounts needs a mount namespace",
            ),
            (
                serde_json::json!({"root": {"readonly": true}}),
                "root.readonly needs",
            ),
            (
                serde_json::json!({"linux": {"rootfsPropagation": "slave"}}),
                "linux.rootfsPropagation needs",
            ),
            (
                serde_json::json!({"process": {"terminal": true}}),
                "process.terminal",
            ),
        ] {
            let e = check(patch.clone()).unwrap_err();
            assert!(e.contains(want), "{patch}: {e}");
        }
    }

    #[test]
    fn sysctl_rule_is_runcs() {
        let ns_without = |ty: &str| {
            let s = serde_json::to_value(spec(serde_json::json!({}))).unwrap();
            let mut list = s["linux"]["namespaces"].as_array().unwrap().clone();
            list.retain(|n| n["type"] != ty);
            serde_json::Value::Array(list)
        };
        let host = |_: CloneFlags, p: &Path| Ok(p == Path::new("/proc/self/ns/x"));
        let check = |patch: serde_json::Value| {
            let s = spec(patch);
            let plan = namespaces(&s).unwrap();
            check_sysctls(&s, &plan, &host).map_err(|e| e.to_string())
        };
        let refused = |key: &str, ns: serde_json::Value| {
            check(serde_json::json!({"linux": {"sysctl": {key: "1"}, "namespaces": ns}}))
                .unwrap_err()
        };
        let all = ns_without("none");
        for key in [
            "kernel.core_pattern",
            "vm.swappiness",
            "kernel.panic",
            "fs.file-max",
        ] {
            assert_eq!(
                refused(key, all.clone()),
                format!(
                    "invalid config.json: sysctl \"{key}\" is not in a separate kernel namespace"
                )
            );
        }
        assert!(
            refused("net.ipv4.ip_forward", ns_without("network"))
                .ends_with("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace")
        );
        // The slash form is converted as runc does (a dot inside a component stays).
        assert!(
            refused("net/ipv4/conf/eno2.100/rp_filter", ns_without("network"))
                .contains("\"net.ipv4.conf.eno2/100.rp_filter\"")
        );
        for key in [
            "kernel.msgmax",
            "kernel.shm_rmid_forced",
            "fs.mqueue.msg_max",
        ] {
            assert!(refused(key, ns_without("ipc")).ends_with(&format!(
                "sysctl \"{key}\" is not allowed in the hosts ipc namespace"
            )));
        }
        assert!(refused("kernel.hostname", all.clone()).ends_with(
            "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
        ));
        assert!(
            refused("kernel.domainname", ns_without("uts"))
                .ends_with("sysctl \"kernel.domainname\" is not in a separate kernel namespace")
        );
        // Joined by path: owned unless it is the runtime's own namespace.
        let mut joined = all.clone();
        for n in joined.as_array_mut().unwrap() {
            if n["type"] == "ipc" {
                n["path"] = "/proc/self/ns/x".into();
            }
        }
        assert!(refused("kernel.sem", joined.clone()).contains("hosts ipc namespace"));
        for n in joined.as_array_mut().unwrap() {
            if n["type"] == "ipc" {
                n["path"] = "/proc/42/ns/ipc".into();
            }
        }
        for (key, ns) in [
            ("kernel.sem", joined),
            ("net.core.somaxconn", all.clone()),
            ("kernel.domainname", all.clone()),
            ("fs.mqueue.queues_max", all),
        ] {
            check(serde_json::json!({"linux": {"sysctl": {key: "1"}, "namespaces": ns}})).unwrap();
        }
    }

    #[test]
    fn list_limits_name_the_field() {
        let at = |field: &str, n: usize| {
            let v: Vec<String> = (0..n).map(|i| format!("/p{i}")).collect();
            let patch = match field {
                "maskedPaths" => serde_json::json!({"linux": {"maskedPaths": v}}),
                "readonlyPaths" => serde_json::json!({"linux": {"readonlyPaths": v}}),
                _ => serde_json::json!({"process": {"env": v}}),
            };
            check_limits(&spec(patch))
        };
        assert!(at("maskedPaths", limits::PATHS).is_ok());
        assert_eq!(
            at("maskedPaths", limits::PATHS + 1)
                .unwrap_err()
                .to_string(),
            "invalid config.json: linux.maskedPaths has 4097 entries, more than peapod's limit of 4096"
        );
        assert!(at("readonlyPaths", limits::PATHS + 1).is_err());
        assert!(at("env", limits::STRINGS).is_ok());
        assert!(
            at("env", limits::STRINGS + 1)
                .unwrap_err()
                .to_string()
                .contains("process.env has 65537 entries")
        );
        let maps: Vec<serde_json::Value> = (0..341)
            .map(|i| serde_json::json!({"containerID": i, "hostID": 100000 + i, "size": 1}))
            .collect();
        let e = check_limits(&spec(serde_json::json!({"linux": {"uidMappings": maps}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.uidMappings has 341 entries"), "{e}");
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

    fn idmap_plan(json: serde_json::Value) -> Result<Vec<IdmapMount>, String> {
        idmapped_mounts(&spec(json)).map_err(|e| e.to_string())
    }

    fn maps(c: u32, h: u32, n: u32) -> serde_json::Value {
        serde_json::json!([{"containerID": c, "hostID": h, "size": n}])
    }

    #[test]
    fn idmapped_mounts_follow_runc() {
        let m = |opts: &[&str], extra: serde_json::Value| {
            let mut v = serde_json::json!({"destination": "/v", "type": "bind", "source": "/s", "options": opts});
            merge(&mut v, extra);
            v
        };
        // Plain binds are not idmapped.
        assert_eq!(
            idmap_plan(serde_json::json!({"mounts": [m(&["bind"], serde_json::json!({}))]})),
            Ok(vec![])
        );
        // Mappings without the option: an idmapped bind, not recursive.
        let own =
            serde_json::json!({"uidMappings": maps(1000, 0, 1), "gidMappings": maps(1000, 0, 2)});
        let p = idmap_plan(serde_json::json!({"mounts": [m(&["rbind"], own.clone())]})).unwrap();
        assert_eq!(
            p,
            vec![IdmapMount {
                index: 0,
                source: "/s".into(),
                userns: IdmapUserns::Maps {
                    uid_map: "1000 0 1\n".into(),
                    gid_map: "1000 0 2\n".into()
                },
                rbind: true,
                recursive: false,
            }]
        );
        let p = idmap_plan(serde_json::json!({"mounts": [m(&["bind", "ridmap"], own.clone())]}))
            .unwrap();
        assert!(p[0].recursive && !p[0].rbind);
        // The option alone takes the container's new user namespace maps...
        let userns = serde_json::json!({
            "namespaces": [{"type": "mount"}, {"type": "user"}],
            "uidMappings": maps(0, 100000, 65536), "gidMappings": maps(0, 100000, 65536),
        });
        let p = idmap_plan(serde_json::json!({"linux": userns, "mounts": [m(&["bind", "idmap"], serde_json::json!({}))]})).unwrap();
        assert_eq!(
            p[0].userns,
            IdmapUserns::Maps {
                uid_map: "0 100000 65536\n".into(),
                gid_map: "0 100000 65536\n".into()
            }
        );
        // ... or the one it joins.
        let joined = serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "user", "path": "/proc/7/ns/user"}]});
        let p = idmap_plan(serde_json::json!({"linux": joined, "mounts": [m(&["bind", "idmap"], serde_json::json!({}))]})).unwrap();
        assert_eq!(p[0].userns, IdmapUserns::Path("/proc/7/ns/user".into()));
        // Refusals, in runc's words.
        let both = "mounts[0] `/v`: id-mapped mounts must have both uid and gid mappings specified";
        for bad in [
            m(&["bind", "idmap"], serde_json::json!({})),
            m(&["bind"], serde_json::json!({"uidMappings": maps(0, 1, 1)})),
            m(
                &["bind", "idmap"],
                serde_json::json!({"uidMappings": [], "gidMappings": []}),
            ),
        ] {
            let e = idmap_plan(serde_json::json!({"mounts": [bad]})).unwrap_err();
            assert_eq!(e, format!("invalid config.json: {both}"));
        }
        // `type: bind` without the bind option is no bind for runc.
        let e = idmap_plan(serde_json::json!({"mounts": [m(&["idmap"], own)]})).unwrap_err();
        assert!(
            e.ends_with("mounts[0] `/v`: id-mapped mounts are only supported for bind-mounts"),
            "{e}"
        );
    }
}
