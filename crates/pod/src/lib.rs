//! Pods: a pause process holding the pod's namespaces, containers created with the OCI core
//! joining them, and a per-pod supervisor that restarts containers, keeps logs and status.
//!
//! On disk, `<root>/pods/<name>/`: `pod.json` (the manifest, with uid), `status.json` (the
//! supervisor's record, a versioned document written atomically, 0600: see [`StatusDoc`] and
//! [`status`]), `oci/` (the pod's OCI containers), `bundles/`, `volumes/`, `etc/`, `shm/`,
//! `logs/`.
//!
//! Built on `peapod_oci` (the containers), `peapod_kube` (manifests, the supervisor state
//! machine, node decisions), `peapod_image` (the store) and `peapod_sys`. [`node`] is the node's
//! I/O (machine facts, `node.json`, the admitted pods handed to admission); [`fuzz`] holds the
//! fuzz targets of every crate's parsers, since this crate sees them all.
#![deny(unsafe_code)]

pub mod cgroup;
pub mod fuzz;
pub mod handler;
pub mod logs;
pub mod network;
pub mod node;
pub mod ops;
pub mod sandbox;
pub mod status;
pub mod subpath;
pub mod supervise;

#[cfg(test)]
mod record_tests;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use peapod_kube::supervisor::{EventRecord, Millis, PodMachine};
use peapod_oci::container::state::{init_alive, proc_stat};
pub use sandbox::PodPaths;

#[derive(Debug, Error)]
pub enum PodError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not supported by peapod")]
    Unsupported(String),
    #[error("pod `{0}` already exists: remove it with `peapod pod rm {0}`")]
    Exists(String),
    #[error("pod `{0}` not found")]
    NotFound(String),
    #[error("{op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] peapod_kube::manifest::ManifestError),
    #[error(transparent)]
    Container(#[from] peapod_oci::container::ContainerError),
    #[error(transparent)]
    Cgroup(#[from] peapod_oci::cgroups::CgroupError),
    #[error(transparent)]
    Logs(#[from] logs::LogError),
}

impl PodError {
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        PodError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The supervisor's record of a pod, rewritten atomically after every change. On disk it is
/// `status.json`, a versioned document (see [`StatusDoc`] and the module documentation of
/// [`status`]); this is its in-memory form, the same for every version read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub machine: PodMachine,
    pub events: Vec<EventRecord>,
    pub supervisor_pid: i32,
    pub supervisor_start_time: u64,
    pub pause_pid: i32,
    /// The supervisor finished its work and exited on purpose.
    pub supervisor_done: bool,
    /// Why the pod ended abnormally (pause died, sandbox failed...).
    pub message: Option<String>,
    /// Set when a NoExecute taint evicted the pod: the taint manager's message.
    pub evicted: Option<String>,
    /// `status.podIPs`: the CNI result's addresses on `eth0` once ADD succeeded, `127.0.0.1`
    /// for a pod without a network of its own (loopback only, or `hostNetwork`); empty while
    /// the network is not set up.
    pub pod_ips: Vec<String>,
}

pub const POD_FILE: &str = "pod.json";
pub const STATUS_FILE: &str = "status.json";
pub const STOP_FILE: &str = "stop.json";

/// The `schemaVersion` of the `status.json` this peapod writes. Version 1 is the unversioned
/// record of peapod before it (no `schemaVersion` field), still read; newer versions are
/// refused, naming the file and the version.
pub const SCHEMA_VERSION: u64 = 2;

/// `status.json`, version 2: what other tools may read (`status`, `events`, `supervisor`,
/// `podIPs`, `evicted`), and apart from it the supervisor's `machine` snapshot, peapod's own.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc {
    pub schema_version: u64,
    /// `v1.PodStatus` as `pod inspect` shows it when the record was written.
    pub status: serde_json::Value,
    /// The pod's events as `kubectl get events` shows them (`pod inspect`'s `events`).
    pub events: serde_json::Value,
    pub supervisor: SupervisorDoc,
    /// `status.podIPs` as plain addresses; empty while the network is not set up.
    #[serde(rename = "podIPs")]
    pub pod_ips: Vec<String>,
    /// The NoExecute taint manager's message when a taint evicted the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted: Option<String>,
    /// The supervisor state machine and its raw events: peapod's internal snapshot, which
    /// only peapod reads; its shape may change with `schemaVersion`.
    pub machine: MachineSnapshot,
}

/// The `supervisor` object of [`StatusDoc`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorDoc {
    pub pid: i32,
    /// Start time of `pid` (field 22 of `/proc/<pid>/stat`), to tell a recycled pid.
    pub start_time: u64,
    pub pause_pid: i32,
    /// The supervisor finished its work and exited on purpose.
    pub done: bool,
    /// Why the pod ended abnormally (pause died, sandbox failed...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The `machine` object of [`StatusDoc`].
#[derive(Debug, Serialize, Deserialize)]
pub struct MachineSnapshot {
    pub state: PodMachine,
    pub events: Vec<EventRecord>,
}

/// `status.json` version 1: the record as peapod wrote it before `schemaVersion` (read only).
#[derive(Deserialize)]
struct RecordV1 {
    machine: PodMachine,
    events: Vec<EventRecord>,
    supervisor_pid: i32,
    supervisor_start_time: u64,
    pause_pid: i32,
    supervisor_done: bool,
    message: Option<String>,
    #[serde(default)]
    evicted: Option<String>,
    #[serde(default)]
    pod_ips: Vec<String>,
}

impl Record {
    pub fn load(paths: &PodPaths) -> Result<Record, PodError> {
        let p = paths.dir.join(STATUS_FILE);
        let data = std::fs::read(&p).map_err(|e| PodError::io("read", &p, e))?;
        Record::parse(&data, &p)
    }

    /// `status.json` of any version this peapod reads; `path` names it in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<Record, PodError> {
        let corrupt = |e: &dyn std::fmt::Display| {
            PodError::Invalid(format!("corrupt `{}`: {e}", path.display()))
        };
        let v: serde_json::Value = serde_json::from_slice(data).map_err(|e| corrupt(&e))?;
        let version = match v.get("schemaVersion") {
            None => 1,
            Some(n) => n
                .as_u64()
                .ok_or_else(|| corrupt(&format!("schemaVersion {n} is not a version number")))?,
        };
        if version > SCHEMA_VERSION {
            return Err(PodError::Invalid(format!(
                "`{}` has schemaVersion {version}, newer than this peapod reads (up to \
                 {SCHEMA_VERSION}): it was written by a newer peapod; upgrade peapod",
                path.display()
            )));
        }
        if version <= 1 {
            let r: RecordV1 = serde_json::from_value(v).map_err(|e| corrupt(&e))?;
            return Ok(Record {
                machine: r.machine,
                events: r.events,
                supervisor_pid: r.supervisor_pid,
                supervisor_start_time: r.supervisor_start_time,
                pause_pid: r.pause_pid,
                supervisor_done: r.supervisor_done,
                message: r.message,
                evicted: r.evicted,
                pod_ips: r.pod_ips,
            });
        }
        let d: StatusDoc = serde_json::from_value(v).map_err(|e| corrupt(&e))?;
        Ok(Record {
            machine: d.machine.state,
            events: d.machine.events,
            supervisor_pid: d.supervisor.pid,
            supervisor_start_time: d.supervisor.start_time,
            pause_pid: d.supervisor.pause_pid,
            supervisor_done: d.supervisor.done,
            message: d.supervisor.message,
            evicted: d.evicted,
            pod_ips: d.pod_ips,
        })
    }

    /// The document written for this record of `pod` (of QoS class `qos`).
    pub fn document(&self, pod: &Pod, qos: &str) -> StatusDoc {
        StatusDoc {
            schema_version: SCHEMA_VERSION,
            status: status::api_status(self, pod, qos),
            events: status::events(&self.events),
            supervisor: SupervisorDoc {
                pid: self.supervisor_pid,
                start_time: self.supervisor_start_time,
                pause_pid: self.pause_pid,
                done: self.supervisor_done,
                message: self.message.clone(),
            },
            pod_ips: self.pod_ips.clone(),
            evicted: self.evicted.clone(),
            machine: MachineSnapshot {
                state: self.machine.clone(),
                events: self.events.clone(),
            },
        }
    }

    /// Write `status.json` (atomically, 0600) for `pod` of QoS class `qos`.
    pub fn save(&self, paths: &PodPaths, pod: &Pod, qos: &str) -> Result<(), PodError> {
        let p = paths.dir.join(STATUS_FILE);
        let data = serde_json::to_vec(&self.document(pod, qos))
            .map_err(|e| PodError::Invalid(format!("encode `{}`: {e}", p.display())))?;
        write_private(&p, &data)
    }

    /// Whether the supervisor process is still there.
    pub fn supervisor_alive(&self) -> bool {
        init_alive(self.supervisor_pid, self.supervisor_start_time)
    }
}

/// The manifest as stored at `pod run` time.
pub fn load_pod(paths: &PodPaths) -> Result<Pod, PodError> {
    let p = paths.dir.join(POD_FILE);
    let data = std::fs::read(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PodError::NotFound(paths.name.clone())
        } else {
            PodError::io("read", &p, e)
        }
    })?;
    serde_json::from_slice(&data)
        .map_err(|e| PodError::Invalid(format!("corrupt `{}`: {e}", p.display())))
}

/// Names of every pod under `root` (entries that are no valid pod name are not pods).
pub fn list(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("pods"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| sandbox::check_pod_name(n).is_ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The supervisor's clock: milliseconds since the Unix epoch as the wall clock read at this
/// process's first call, advanced by `CLOCK_BOOTTIME` since then. Deadlines and back-off timers
/// built on it neither fire early nor starve when the wall clock is stepped (NTP, `date -s`),
/// and keep counting across a suspend, as kubelet's; the timestamps shown in status and events
/// stay wall-clock times (those of the supervisor's start plus the elapsed time).
pub fn now() -> Millis {
    static ANCHOR: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let (wall0, boot0) = *ANCHOR.get_or_init(|| (wall_ms(), boot_ms()));
    Millis(wall0 + boot_ms().saturating_sub(boot0))
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn boot_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

/// Writes a pod state file atomically, private to root (0600): manifests and specs hold the
/// containers' environment, which may hold secrets.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), PodError> {
    peapod_sys::fs::write_atomic(path, data).map_err(|e| PodError::io("write", path, e))
}

/// Watch `dir` for files written there, as [`write_private`] writes them (by rename, so
/// `IN_MOVED_TO`; a plain write ends with `IN_CLOSE_WRITE`). Non-blocking, close-on-exec.
pub fn watch_writes(dir: &Path) -> nix::Result<nix::sys::inotify::Inotify> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let w = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    w.add_watch(
        dir,
        AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_CREATE,
    )?;
    Ok(w)
}

/// Whether our child `pid` has exited, left unreaped (`waitid` with `WNOWAIT`: the caller
/// reaps it); an error (not our child) is the caller's to judge.
pub(crate) fn child_exited(pid: i32) -> nix::Result<bool> {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    waitid(Id::Pid(nix::unistd::Pid::from_raw(pid)), flags).map(|st| st.pid().is_some())
}

/// Start time of a live process, to recognise it later.
pub fn start_time(pid: i32) -> u64 {
    proc_stat(pid).map(|(_, t)| t).unwrap_or(0)
}
