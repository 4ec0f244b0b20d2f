//! Control groups for containers and pods: one [`CgroupManager`] trait over cgroup v1 (legacy and
//! hybrid hosts, [`V1Manager`]) and cgroup v2 (unified hosts, [`V2Manager`]), driven by the OCI
//! `linux.resources` object.
//!
//! The kata-containers `cgroups-rs` crate writes the knobs it covers (memory, cpu, cpuset, pids,
//! blkio/io throttles, hugetlb, freezer, v1 devices) through its per-controller types, pointed at
//! the exact cgroup directory. This module fills its gaps: directory creation and `subtree_control`
//! delegation on v2, the OCI `unified` map, `cpu.idle`, `cpu.max.burst`, `io.weight`, the runc/crun
//! shares→weight formula, the v2 eBPF device filter, freezer waits, `cgroup.kill`, runc-shaped
//! stats and removal with retries.
//!
//! Everything takes the cgroupfs mount points as plain paths, so the tests run against fake trees
//! in temporary directories. Call order for a new container:
//! [`CgroupManager::create`] → [`CgroupManager::apply`] → [`CgroupManager::add_task`] (or
//! `clone3(CLONE_INTO_CGROUP)` with [`CgroupManager::cgroup_fd`]); `apply` again for `update`.
//! Unlike `cgroups-rs`'s `FsManager`, `apply` works before any task was added, because `create`
//! makes the directories itself.

mod bpf;
pub mod dbus;
pub mod devices;
pub mod stats;
pub mod systemd;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

pub use devices::default_device_rules;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats,
    Stats, Throttling,
};
pub use systemd::SystemdManager;
pub use v1::V1Manager;
pub use v2::V2Manager;

/// Where the kernel lists this process's mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Parent of every container cgroup when the spec has no `cgroupsPath`.
pub const DEFAULT_PARENT: &str = "/peapod";
/// How long [`CgroupManager::freeze`] waits for the kernel to report the cgroup frozen.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// The named cgroup v1 hierarchy systemd keeps on legacy and hybrid hosts. Like runc, peapod
/// creates, joins and removes the container's cgroup there too (it has no controller, so no
/// limit), and lists it under this key in [`Setup::Hybrid`]/[`Setup::Legacy`] `controllers`.
pub const NAME_SYSTEMD: &str = "name=systemd";

/// cgroup v1 controllers this module manages (plus the [`NAME_SYSTEMD`] hierarchy; other named
/// hierarchies are left alone).
pub const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

const CGROUP_PROCS: &str = "cgroup.procs";

/// Errors of the cgroups module. Messages are lowercase, name the operation and the path, and
/// carry a hint when the usual cause is known.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("detect cgroup setup from `{}`: {reason}", .path.display())]
    Detect { path: PathBuf, reason: String },
    #[error("invalid cgroups path `{path}`: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("{field} is not supported on this host: {reason}")]
    Unsupported { field: String, reason: String },
    #[error("invalid {field}: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("{op} `{}`: {err}{}", .path.display(), hint(.op, .path, .err))]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    #[error("write {value:?} to `{}`: {err}{}", .path.display(), hint("write", .path, .err))]
    Write {
        path: PathBuf,
        value: String,
        err: io::Error,
    },
    #[error("parse `{}`: {reason}", .path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("create cgroup `{}`: {reason}", .path.display())]
    Create { path: PathBuf, reason: String },
    #[error("{op} `{}`: the cgroup does not exist; hint: create it first", .path.display())]
    NotFound { op: &'static str, path: PathBuf },
    #[error(
        "{op} `{}`: not done after {} ms; hint: a process may be stuck in uninterruptible \
         sleep (D state)", .path.display(), .timeout.as_millis()
    )]
    Timeout {
        op: &'static str,
        path: PathBuf,
        timeout: Duration,
    },
    /// The systemd driver: D-Bus, unit and cgroupsPath errors (runc's wording where it has one).
    #[error("{0}")]
    Systemd(String),
    #[error("bpf {op} for `{}`: {err}{}", .path.display(), verifier_log(.log))]
    Bpf {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
        log: String,
    },
}

type Result<T> = std::result::Result<T, CgroupError>;

/// A remediation hint for the errno/file combinations whose cause is well known.
fn hint(op: &str, path: &Path, err: &io::Error) -> &'static str {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    match (err.raw_os_error(), op, file) {
        (Some(libc::EBUSY), "rmdir", _) => {
            "; hint: the cgroup still has processes (kill them first) or child cgroups"
        }
        (Some(libc::EBUSY), _, CGROUP_SUBTREE_CONTROL) => {
            "; hint: the cgroup has processes of its own, and cgroup v2 forbids enabling \
             controllers for children of such a cgroup (no internal process rule)"
        }
        (Some(libc::EBUSY), _, CGROUP_PROCS) => {
            "; hint: cgroup v2 only accepts processes in cgroups without enabled children \
             (no internal process rule)"
        }
        (Some(libc::EBUSY), _, f) if f.starts_with("memory.") => {
            "; hint: the cgroup already uses more memory than the new limit"
        }
        (Some(libc::ENOSPC), _, CGROUP_PROCS) => {
            "; hint: cpuset.cpus or cpuset.mems of the cgroup is empty"
        }
        (Some(libc::EINVAL), _, f) if f.starts_with("cpuset.") => {
            "; hint: cpus and mems must be a subset of the parent cgroup's"
        }
        (Some(libc::EACCES | libc::EPERM | libc::EROFS), _, _) => {
            "; hint: cgroups need root and a read-write cgroup filesystem"
        }
        (Some(libc::ENOENT), _, _) => "; hint: the cgroup does not exist (was it created?)",
        _ => "",
    }
}

fn verifier_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; verifier log: {}", log.trim())
    }
}

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// Pure cgroup v2: one hierarchy mounted at `root` (normally `/sys/fs/cgroup`).
    Unified { root: PathBuf },
    /// v1 controllers plus a (mostly empty) cgroup2 mount at `unified`, as on systemd hosts in
    /// hybrid mode and on these development machines. The v1 controllers carry the limits; the
    /// container is also placed at the same path in the unified hierarchy (as runc does), so
    /// tools reading it (cAdvisor, systemd) see the container.
    Hybrid {
        controllers: BTreeMap<String, PathBuf>,
        unified: PathBuf,
    },
    /// Only v1 controllers. `controllers` maps a controller name to its hierarchy's mount point
    /// (co-mounted controllers such as `cpu,cpuacct` share one).
    Legacy {
        controllers: BTreeMap<String, PathBuf>,
    },
}

impl Setup {
    /// Classifies the cgroup mounts listed in mountinfo text (see proc(5)).
    pub fn from_mountinfo(text: &str) -> std::result::Result<Setup, String> {
        let mut controllers = BTreeMap::new();
        let mut unified: Option<PathBuf> = None;
        let mut systemd: Option<PathBuf> = None;
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            if sep < 5 || fields.len() < sep + 4 {
                return Err(format!("malformed mountinfo line {line:?}"));
            }
            let mount_point = PathBuf::from(unescape_mountinfo(fields[4]));
            match fields[sep + 1] {
                // Prefer the conventional mount point when cgroup2 is mounted more than once.
                "cgroup2" if unified.is_none() || mount_point == Path::new("/sys/fs/cgroup") => {
                    unified = Some(mount_point);
                }
                "cgroup" => {
                    for opt in fields[sep + 3].split(',') {
                        if V1_CONTROLLERS.contains(&opt) && !controllers.contains_key(opt) {
                            controllers.insert(opt.to_string(), mount_point.clone());
                        } else if opt == NAME_SYSTEMD && systemd.is_none() {
                            systemd = Some(mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        // The named hierarchy alone does not make a v1 host (a v2 host may keep one for old
        // containers): it joins the controllers only where v1 controllers are in use.
        if let Some(mount) = systemd.filter(|_| !controllers.is_empty()) {
            controllers.insert(NAME_SYSTEMD.to_string(), mount);
        }
        match (controllers.is_empty(), unified) {
            (false, Some(unified)) => Ok(Setup::Hybrid {
                controllers,
                unified,
            }),
            (false, None) => Ok(Setup::Legacy { controllers }),
            (true, Some(root)) => Ok(Setup::Unified { root }),
            (true, None) => Err("no cgroup or cgroup2 filesystem is mounted".to_string()),
        }
    }

    /// Reads and classifies a mountinfo file (normally [`MOUNTINFO`]).
    pub fn from_mountinfo_file(path: &Path) -> Result<Setup> {
        let text = fs::read_to_string(path).map_err(|source| CgroupError::Io {
            op: "read",
            path: path.to_path_buf(),
            err: source,
        })?;
        Setup::from_mountinfo(&text).map_err(|reason| CgroupError::Detect {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// Detects the cgroup setup of this host from [`MOUNTINFO`], read once per process (a `run`
/// asks at create, start and delete; how cgroups are mounted does not change under a command).
pub fn detect() -> Result<Setup> {
    static SETUP: std::sync::OnceLock<Setup> = std::sync::OnceLock::new();
    if let Some(setup) = SETUP.get() {
        return Ok(setup.clone());
    }
    let setup = Setup::from_mountinfo_file(Path::new(MOUNTINFO))?;
    Ok(SETUP.get_or_init(|| setup).clone())
}

/// Undoes the octal escapes (`\040` for a space, ...) the kernel uses in mountinfo paths.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // `\ooo` is one byte; `\4xx`-`\7xx` would not fit (the kernel never writes them), so
        // they stay as written (found by the mountinfo fuzz target: the sum overflowed u8).
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                u8::try_from(d.iter().fold(0u16, |n, c| n * 8 + u16::from(c - b'0'))).ok()
            });
        match (b[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves the OCI `linux.cgroupsPath` into the absolute cgroup path this module manages.
///
/// * `None` or empty: `/peapod/<container_id>`.
/// * Absolute (`/a/b`): used as is, relative to the root of every hierarchy (inside a cgroup
///   namespace that root is the namespace's root, as for runc).
/// * Relative (`a/b`): **resolved against the hierarchy root, like `/a/b`.** runc resolves it
///   against the runtime's own cgroup instead; peapod does not, because the resolved path is
///   stored in the container state and reopened by later invocations (`delete`, `kill`) that run
///   in other cgroups, because on v1 each hierarchy may place the runtime elsewhere, and because
///   nesting below the caller's cgroup breaks v2's no-internal-process rule. Callers wanting
///   runc's docker-in-docker behaviour pass the absolute path themselves.
/// * `slice:prefix:name` (the systemd driver's form, which containerd 1.6 sends whenever the
///   pod's parent ends in `.slice`, even with the cgroupfs driver): taken literally, as runc's
///   cgroupfs driver does, as the one directory `/slice:prefix:name`. With `--systemd-cgroup`
///   ([`set_systemd_driver`]) [`manager`] parses it as a systemd unit instead (see [`systemd`]).
///
/// `.` components are dropped; `..` components are refused rather than resolved, so a spec can
/// never point outside the hierarchy or at a sibling by accident.
pub fn resolve_path(cgroups_path: Option<&str>, container_id: &str) -> Result<String> {
    let raw = match cgroups_path {
        Some(p) if !p.is_empty() => p,
        _ => {
            if container_id.is_empty() || container_id.contains('/') || container_id == ".." {
                return Err(CgroupError::InvalidPath {
                    path: format!("{DEFAULT_PARENT}/{container_id}"),
                    reason: "the container id cannot be used as a cgroup name",
                });
            }
            return Ok(format!("{DEFAULT_PARENT}/{container_id}"));
        }
    };
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(CgroupError::InvalidPath {
                    path: raw.to_string(),
                    reason: "`..` components are not allowed",
                });
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(CgroupError::InvalidPath {
            path: raw.to_string(),
            reason: "a container cannot use the root cgroup",
        });
    }
    Ok(format!("/{}", parts.join("/")))
}

/// What the container core needs from a cgroup, whatever the cgroup version.
pub trait CgroupManager: fmt::Debug + Send + Sync {
    /// The resolved cgroup path (`/peapod/<id>`); store it in the container state and reopen
    /// the cgroup later with `manager(Some(path), id)`.
    fn path(&self) -> &str;
    /// True on cgroup v2 (a cgroup2 mount belongs in the container), false on v1.
    fn is_unified(&self) -> bool;
    /// Whether the cgroup directory exists.
    fn exists(&self) -> bool;
    /// Creates the cgroup (and missing parents) in every hierarchy. On v2 the controllers are
    /// enabled in the ancestors' `cgroup.subtree_control`, refusing ancestors that hold
    /// processes (no internal process rule). On v1 the new cpuset gets its parent's cpus/mems.
    fn create(&self) -> Result<()>;
    /// Moves a process (and its threads) into the cgroup in every hierarchy.
    fn add_task(&self, pid: i32) -> Result<()>;
    /// Applies `linux.resources`, including devices (v2: an eBPF program replacing the previous
    /// one; v1: devices.deny/allow). Everything is validated before the first write, and a field
    /// the host cannot enforce is an error naming it, never silently skipped. `devices: None`
    /// leaves device access as it is; `Some(rules)` replaces it with default-deny + `rules`
    /// (last match wins); see [`default_device_rules`]. Callable again for `update`.
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Freezes every process and waits (at most [`FREEZE_TIMEOUT`]) until the kernel reports
    /// the cgroup frozen.
    fn freeze(&self) -> Result<()>;
    /// Thaws the cgroup.
    fn thaw(&self) -> Result<()>;
    /// Whether the cgroup is frozen (false when it does not exist).
    fn is_frozen(&self) -> Result<bool>;
    /// Every process in the cgroup and its descendants.
    fn pids(&self) -> Result<Vec<i32>>;
    /// Sends `sig` to every process: `cgroup.kill` for SIGKILL where the kernel has it,
    /// otherwise each pid in turn with the cgroup frozen around it (so nothing forks away).
    fn kill_all(&self, sig: i32) -> Result<()>;
    /// Resource usage, serialized like the `data` object of runc's `events --stats`.
    fn stats(&self) -> Result<Stats>;
    /// How many processes the OOM killer killed in this cgroup (v2 `memory.events` `oom_kill`,
    /// v1 `memory.oom_control` `oom_kill`). The pod supervisor marks a container OOMKilled when
    /// it increases.
    fn oom_kill_count(&self) -> Result<u64>;
    /// A file to watch with inotify for OOM events (v2 `memory.events`); `None` on v1, where
    /// [`CgroupManager::oom_kill_count`] must be polled.
    fn oom_watch_path(&self) -> Option<PathBuf>;
    /// (subsystem, host directory) pairs to bind-mount at `/sys/fs/cgroup/<subsystem>` in the
    /// container; the subsystem is `""` on v2 and the hierarchy's mount point name on v1 (e.g.
    /// `cpu,cpuacct` when co-mounted).
    fn mount_sources(&self) -> Vec<(String, PathBuf)>;
    /// An open directory fd of the cgroup for `clone3(CLONE_INTO_CGROUP)`; `None` on v1.
    fn cgroup_fd(&self) -> Result<Option<OwnedFd>>;
    /// Removes the cgroup in every hierarchy, children first, retrying while processes exit;
    /// succeeds when it is already gone. Parents such as `/peapod` are left in place.
    fn remove(&self) -> Result<()>;
    /// The cgroup's directory in every hierarchy (one on v2).
    fn leaf_dirs(&self) -> Vec<PathBuf>;
    /// The directory whose `cgroup.procs` lists the processes (and which carries the owner
    /// mark that counts, see [`CgroupManager::owner`]).
    fn marker_dir(&self) -> Option<PathBuf>;

    /// Every process in the cgroup's directory of any hierarchy (v1 hierarchies may differ).
    fn all_pids(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for d in self.leaf_dirs() {
            all.extend(collect_pids(&d)?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Mark the cgroup as belonging to `token` (`trusted.peapod.owner` on its directory in
    /// every hierarchy; cgroupfs keeps trusted xattrs in memory for root).
    fn claim(&self, token: &str) -> Result<()> {
        for d in self.leaf_dirs().into_iter().filter(|d| d.is_dir()) {
            xattr::set(&d, OWNER_XATTR, token.as_bytes()).map_err(|source| CgroupError::Io {
                op: "mark owner of",
                path: d.clone(),
                err: source,
            })?;
        }
        Ok(())
    }

    /// The owner mark of the cgroup, `None` when it has none (or does not exist).
    fn owner(&self) -> Option<String> {
        let d = self.marker_dir()?;
        xattr::get(&d, OWNER_XATTR)
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
    }
}

/// The extended attribute naming the container a cgroup was made for.
pub const OWNER_XATTR: &str = "trusted.peapod.owner";

static SYSTEMD_DRIVER: AtomicBool = AtomicBool::new(false);

/// Selects the systemd cgroup driver for new containers of this process (`--systemd-cgroup`).
pub fn set_systemd_driver(on: bool) {
    SYSTEMD_DRIVER.store(on, Ordering::Relaxed);
}

/// Whether `--systemd-cgroup` was given (see [`set_systemd_driver`]).
pub fn systemd_driver() -> bool {
    SYSTEMD_DRIVER.load(Ordering::Relaxed)
}

/// Opens the cgroup `cgroups_path` (see [`resolve_path`]) of a container on this host.
///
/// With the systemd driver ([`set_systemd_driver`]), a `slice:prefix:name` path (or none) names
/// a new scope unit, and an already resolved `/<slices>/<unit>.scope` path (from a container's
/// state) reopens it; other absolute paths stay cgroupfs paths (containers made without the
/// flag). Without the flag a resolved `.scope` path reopens the unit only when its directory
/// carries the driver's mark ([`systemd::UNIT_XATTR`]), so `delete` still stops the unit.
pub fn manager(cgroups_path: Option<&str>, container_id: &str) -> Result<Box<dyn CgroupManager>> {
    manager_for(&detect()?, cgroups_path, container_id)
}

/// Like [`manager`] for an already detected (or, in tests, made-up) setup.
pub fn manager_for(
    setup: &Setup,
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<Box<dyn CgroupManager>> {
    // runc checks that systemd runs whenever it makes a systemd manager (after parsing the
    // cgroupsPath, which its spec conversion does first).
    if systemd_driver() && !cgroups_path.is_some_and(|p| p.starts_with('/')) {
        let unit = systemd::parse(cgroups_path, container_id)?;
        systemd::require_running()?;
        return Ok(Box::new(SystemdManager::new(setup, unit)));
    }
    if let Some(unit) = cgroups_path.and_then(systemd::unit_of_path) {
        let m = SystemdManager::new(setup, unit);
        if systemd_driver() {
            systemd::require_running()?;
        }
        if systemd_driver() || m.marked_dir() {
            return Ok(Box::new(m));
        }
    }
    let path = resolve_path(cgroups_path, container_id)?;
    Ok(match setup {
        Setup::Unified { root } => Box::new(V2Manager::new(root.clone(), &path)),
        Setup::Hybrid {
            controllers,
            unified,
        } => Box::new(V1Manager::new(controllers.clone(), &path).with_unified(unified.clone())),
        Setup::Legacy { controllers } => Box::new(V1Manager::new(controllers.clone(), &path)),
    })
}

/// runc ≥ 1.3.2 / crun ≥ 1.23 conversion of cgroup v1 `cpu.shares` (2..262144) to v2
/// `cpu.weight` (1..10000): quadratic in log2(shares) so that 2→1, 1024→100 (the default) and
/// 262144→10000. 0 means unset. Kubelet still uses the old linear formula for its own pod and QoS
/// cgroups, so those values differ from container ones.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// OCI memory+swap (`linux.resources.memory.swap`) to the v2 swap-only `memory.swap.max`
/// (-1 = max), following runc's rules. `None` means "leave it alone".
pub(crate) fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    let invalid = |reason: &str| CgroupError::InvalidValue {
        field: "linux.resources.memory.swap".to_string(),
        reason: reason.to_string(),
    };
    Ok(match (swap.unwrap_or(0), limit.unwrap_or(0)) {
        // Unlimited memory with swap unset means unlimited swap too (cgroup v1 behaviour).
        (0, -1) => Some(-1),
        (0, _) => None,
        (-1, _) => Some(-1),
        (s, -1) => Some(s),
        (_, 0) => return Err(invalid("a swap limit needs a memory limit")),
        (s, l) if s < l => {
            return Err(invalid(&format!(
                "memory+swap ({s}) is lower than the memory limit ({l})"
            )));
        }
        (s, l) => Some(s - l),
    })
}

// --- filesystem helpers shared by v1 and v2 ---

const CGROUP_SUBTREE_CONTROL: &str = "cgroup.subtree_control";

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        err: source,
    }
}

/// Reads a knob; `None` when the file does not exist, or no longer: a cgroup removed between
/// the open and the read (by systemd, which removes a scope's cgroup once its last process is
/// gone, while `delete --force` still lists them) answers ENODEV.
pub(crate) fn read_opt(dir: &Path, knob: &str) -> Result<Option<String>> {
    let path = dir.join(knob);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV) => {
            Ok(None)
        }
        Err(source) => Err(CgroupError::Io {
            op: "read",
            path,
            err: source,
        }),
    }
}

/// Writes a knob that must already exist (cgroupfs files are never created by writing).
pub(crate) fn write_knob(dir: &Path, knob: &str, value: &str) -> Result<()> {
    let path = dir.join(knob);
    let result = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::Write {
        path,
        value: value.to_string(),
        err: source,
    })
}

/// The errno inside a `cgroups-rs` error (its own messages name neither the path nor the op).
pub(crate) fn cg_io_error(err: cgroups_rs::fs::error::Error) -> io::Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(c) = cause {
        if let Some(code) = c
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return io::Error::from_raw_os_error(code);
        }
        cause = c.source();
    }
    io::Error::other(err.to_string())
}

/// Converts a failed `cgroups-rs` write into [`CgroupError::Write`], keeping the errno.
pub(crate) fn from_cg(
    path: PathBuf,
    value: String,
    err: cgroups_rs::fs::error::Error,
) -> CgroupError {
    CgroupError::Write {
        path,
        value,
        err: cg_io_error(err),
    }
}

/// Applies resources in two passes over the same code: a dry run that checks every knob exists
/// and every value is valid, then the real writes. A spec the host cannot fully enforce thus
/// fails before anything changed.
pub(crate) struct Applier {
    pub(crate) dry_run: bool,
}

impl Applier {
    /// Fails with [`CgroupError::Unsupported`] naming `field` when `knob` is missing in `dir`.
    pub(crate) fn require(&self, dir: &Path, knob: &str, field: &str) -> Result<()> {
        if dir.join(knob).exists() {
            Ok(())
        } else {
            Err(CgroupError::Unsupported {
                field: field.to_string(),
                reason: format!("no {knob} in {}", dir.display()),
            })
        }
    }

    /// Writes `value` to `knob` with this module's own writer.
    pub(crate) fn raw(&self, dir: &Path, knob: &str, field: &str, value: &str) -> Result<()> {
        self.require(dir, knob, field)?;
        if self.dry_run {
            return Ok(());
        }
        log::debug!("cgroups: {}/{knob} = {value}", dir.display());
        write_knob(dir, knob, value)
    }

    /// Writes `knob` through a `cgroups-rs` setter.
    pub(crate) fn cg(
        &self,
        dir: &Path,
        knob: &str,
        field: &str,
        value: impl fmt::Display,
        set: impl FnOnce() -> cgroups_rs::fs::error::Result<()>,
    ) -> Result<()> {
        self.require(dir, knob, field)?;
        if self.dry_run {
            return Ok(());
        }
        log::debug!("cgroups: {}/{knob} = {value}", dir.display());
        set().map_err(|e| from_cg(dir.join(knob), value.to_string(), e))
    }
}

/// The `unified` map on v2; an error on v1 (a non-empty map cannot be honoured there).
pub(crate) fn check_unified_key(key: &str) -> Result<()> {
    if key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return Err(CgroupError::InvalidValue {
            field: format!("linux.resources.unified[{key:?}]"),
            reason: "keys are cgroup file names of the form controller.knob".to_string(),
        });
    }
    Ok(())
}

/// The `pids.max` value for `linux.resources.pids.limit` (runc 1.5's rule, v1 and v2 alike): a
/// positive limit as is, `0` as `1` (systemd cannot set 0, and runc maps it the same way on
/// cgroupfs), a negative one as `max`.
pub(crate) fn pids_max(limit: i64) -> cgroups_rs::fs::MaxValue {
    match limit {
        0 => cgroups_rs::fs::MaxValue::Value(1),
        l if l > 0 => cgroups_rs::fs::MaxValue::Value(l),
        _ => cgroups_rs::fs::MaxValue::Max,
    }
}

/// `pids.max` (same file on v1 and v2), see [`pids_max`].
pub(crate) fn apply_pids(
    dir: &Path,
    ctl: cgroups_rs::fs::pid::PidController,
    limit: i64,
    a: &Applier,
) -> Result<()> {
    let value = pids_max(limit);
    a.cg(dir, "pids.max", "linux.resources.pids.limit", value, || {
        ctl.set_pid_max(value)
    })
}

/// `rdma.max` (same format on v1 and v2): `<device> hca_handle=N hca_object=M`.
pub(crate) fn apply_rdma(
    dir: &Path,
    rdma: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
    a: &Applier,
) -> Result<()> {
    let mut devices: Vec<_> = rdma.iter().collect();
    devices.sort_by_key(|(name, _)| name.as_str());
    for (name, limit) in devices {
        let mut line = name.clone();
        if let Some(h) = limit.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limit.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        a.raw(
            dir,
            "rdma.max",
            &format!("linux.resources.rdma[{name:?}]"),
            &line,
        )?;
    }
    Ok(())
}

/// Page sizes become file names (`hugetlb.<size>.max`): only plain names like `2MB` pass.
pub(crate) fn apply_hugetlb_checks(
    h: &oci_spec::runtime::LinuxHugepageLimit,
    field: &str,
) -> Result<()> {
    let size = h.page_size();
    if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CgroupError::InvalidValue {
            field: format!("{field}.pageSize"),
            reason: format!("{size:?} is not a page size such as 2MB"),
        });
    }
    Ok(())
}

/// Moves `pid` into the cgroup at `dir`, retrying EINVAL which the kernel returns while a fresh
/// task is still in TASK_NEW (runc does the same).
pub(crate) fn write_procs(dir: &Path, pid: i32) -> Result<()> {
    let mut tries = 0;
    loop {
        match write_knob(dir, CGROUP_PROCS, &pid.to_string()) {
            Err(CgroupError::Write {
                err: ref source, ..
            }) if source.raw_os_error() == Some(libc::EINVAL) && tries < 5 => {
                tries += 1;
                sleep(Duration::from_millis(30));
            }
            other => return other,
        }
    }
}

/// Every pid in `dir` and its descendant cgroups, sorted and without duplicates.
pub(crate) fn collect_pids(dir: &Path) -> Result<Vec<i32>> {
    fn walk(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
        if let Some(text) = read_opt(dir, CGROUP_PROCS)? {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                out.push(line.parse().map_err(|_| CgroupError::Parse {
                    path: dir.join(CGROUP_PROCS),
                    reason: format!("bad pid {line:?}"),
                })?);
            }
        }
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_err("read directory", dir)(source)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", dir))?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&entry.path(), out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// rmdir of a cgroup: children first, EBUSY retried with backoff (processes that were just
/// killed leave the cgroup asynchronously), ENOENT is success. Bounded to about 2 s.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_err("read directory", dir)(source)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", dir))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = Duration::from_millis(1);
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 11 => {
                tries += 1;
                sleep(delay);
                delay *= 2;
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "rmdir",
                    path: dir.to_path_buf(),
                    err: source,
                });
            }
        }
    }
}

/// After a container's cgroup is gone, remove the default `/peapod` parent when it is
/// empty, so peapod leaves no trace in the hierarchy. A concurrent create that loses this
/// race retries (see `create_with_retry`); a non-empty parent simply stays.
pub(crate) fn prune_default_parent(dir: &Path) {
    if let Some(parent) = dir.parent()
        && parent
            .file_name()
            .is_some_and(|n| Some(n.to_string_lossy().as_ref()) == DEFAULT_PARENT.strip_prefix('/'))
    {
        let _ = fs::remove_dir(parent);
    }
}

/// Run `create`, once more if a concurrent removal of the empty default parent raced it.
pub fn create_with_retry(mut create: impl FnMut() -> Result<()>) -> Result<()> {
    match create() {
        Err(CgroupError::Io { err: source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            create()
        }
        r => r,
    }
}

/// Polls `done` until it returns true or [`FREEZE_TIMEOUT`]-like `timeout` passes.
pub(crate) fn wait_until(
    op: &'static str,
    path: &Path,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(100);
    loop {
        if done()? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(CgroupError::Timeout {
                op,
                path: path.to_path_buf(),
                timeout,
            });
        }
        sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

/// Signals every process of the cgroup one by one, frozen around it when a freezer exists so
/// that no process forks away meanwhile; an already paused cgroup stays paused.
pub(crate) fn signal_each(m: &dyn CgroupManager, sig: i32, can_freeze: bool) -> Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let signal = Signal::try_from(sig).map_err(|_| CgroupError::InvalidValue {
        field: "signal".to_string(),
        reason: format!("{sig} is not a signal number"),
    })?;
    let thaw_after = can_freeze && !m.is_frozen()?;
    if thaw_after {
        m.freeze()?;
    }
    let result = m.pids().map(|pids| {
        for pid in pids {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => log::warn!("cgroups: kill {pid} with {signal}: {e}"),
            }
        }
    });
    if thaw_after {
        m.thaw()?;
    }
    result
}

/// Parses a flat-keyed cgroup file (`key value` per line, e.g. `memory.events`, `cpu.stat`).
pub fn parse_flat_keyed(path: &Path, text: &str) -> Result<BTreeMap<String, u64>> {
    let mut map = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(key), Some(value), None) = (it.next(), it.next(), it.next()) else {
            return Err(CgroupError::Parse {
                path: path.to_path_buf(),
                reason: format!("expected `key value`, got {line:?}"),
            });
        };
        let value = value.parse().map_err(|_| CgroupError::Parse {
            path: path.to_path_buf(),
            reason: format!("bad number in {line:?}"),
        })?;
        map.insert(key.to_string(), value);
    }
    Ok(map)
}

/// One key of a flat-keyed file; an error when the file or the key is missing.
pub(crate) fn flat_keyed_value(dir: &Path, file: &str, key: &str) -> Result<u64> {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).map_err(io_err("read", &path))?;
    parse_flat_keyed(&path, &text)?
        .get(key)
        .copied()
        .ok_or_else(|| CgroupError::Parse {
            path,
            reason: format!("no {key:?} key"),
        })
}

#[cfg(test)]
mod tests;
