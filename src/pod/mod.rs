//! Pods: a pause process holding the pod's namespaces, containers created with the OCI core
//! joining them, and a per-pod supervisor that restarts containers, keeps logs and status.
//!
//! On disk, `<root>/pods/<name>/`: `pod.json` (the manifest, with uid), `status.json` (the
//! supervisor's record, written atomically), `oci/` (the pod's OCI containers), `bundles/`,
//! `volumes/`, `etc/`, `shm/`, `logs/`.

pub mod handler;
pub mod logs;
pub mod manifest;
pub mod ops;
pub mod sandbox;
pub mod status;
pub mod supervise;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::container::state::{init_alive, proc_stat, write_atomic};
use crate::supervisor::{EventRecord, Millis, PodMachine};
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
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
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
        write_atomic(&paths.dir.join(STATUS_FILE), &data)?;
        Ok(())
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

/// Names of every pod under `root`.
pub fn list(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("pods"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Wall-clock milliseconds since the Unix epoch: the supervisor's clock.
pub fn now() -> Millis {
    Millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Start time of a live process, to recognise it later.
pub fn start_time(pid: i32) -> u64 {
    proc_stat(pid).map(|(_, t)| t).unwrap_or(0)
}
