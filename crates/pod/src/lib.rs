//! Pods: a pause process holding the pod's namespaces, containers created with the OCI core
//! joining them, and a per-pod supervisor that restarts containers, keeps logs and status.
//!
//! On disk, `<root>/pods/<name>/`: `pod.json` (the manifest, with uid), `status.json` (the
//! supervisor's record, written atomically), `oci/` (the pod's OCI containers), `bundles/`,
//! `volumes/`, `etc/`, `shm/`, `logs/`.
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

/// The supervisor's record of a pod, rewritten atomically after every change.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(default)]
    pub evicted: Option<String>,
    /// `status.podIPs`: the CNI result's addresses on `eth0` once ADD succeeded, `127.0.0.1`
    /// for a pod without a network of its own (loopback only, or `hostNetwork`); empty while
    /// the network is not set up.
    #[serde(default)]
    pub pod_ips: Vec<String>,
}

pub const POD_FILE: &str = "pod.json";
pub const STATUS_FILE: &str = "status.json";
pub const STOP_FILE: &str = "stop.json";

impl Record {
    pub fn load(paths: &PodPaths) -> Result<Record, PodError> {
        let p = paths.dir.join(STATUS_FILE);
        let data = std::fs::read(&p).map_err(|e| PodError::io("read", &p, e))?;
        serde_json::from_slice(&data)
            .map_err(|e| PodError::Invalid(format!("corrupt `{}`: {e}", p.display())))
    }

    pub fn save(&self, paths: &PodPaths) -> Result<(), PodError> {
        let data = serde_json::to_vec(self).map_err(|e| PodError::Invalid(e.to_string()))?;
        write_private(&paths.dir.join(STATUS_FILE), &data)
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

/// Start time of a live process, to recognise it later.
pub fn start_time(pid: i32) -> u64 {
    proc_stat(pid).map(|(_, t)| t).unwrap_or(0)
}
