//! On-disk container state: `<root>/<id>/state.json`, written with tmp + rename under a
//! per-container `flock`, and the status derived from the live process, the freezer and
//! the start fifo.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::ContainerError;

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// OCI status values (runtime-spec `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
    /// `delete` without `--force` works on stopped containers, and on created ones (runc
    /// kills a never-started init, since nothing user-visible ran yet).
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What peapod remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container init; 0 until it exists.
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), which
    /// guards against a recycled pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The resolved cgroups path, empty when the container has no cgroup of its own.
    pub cgroup_path: String,
    /// Whether the container has a private pid namespace (then killing init kills all).
    pub private_pid_ns: bool,
}

/// The JSON `state` prints: runc's `containerState` fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: &'a str,
}

pub const OCI_VERSION: &str = "1.2.0";

impl State {
    pub fn to_oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: &self.owner,
        }
    }
}

/// Check a container id as runc does (`^[\w+\-\.]+$`, not `.` or `..`), bounded by the
/// length of a file name.
pub fn validate_id(id: &str) -> Result<(), ContainerError> {
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if id.is_empty() || id == "." || id == ".." || !ok_chars || id.len() > 255 {
        return Err(ContainerError::InvalidId(id.to_string()));
    }
    Ok(())
}

/// The state directory of one container.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> Result<Self, ContainerError> {
        validate_id(id)?;
        Ok(StateDir {
            path: root.join(id),
        })
    }

    /// Create the directory; fails if the id is taken. The runtime root is created 0700.
    pub fn create(&self) -> Result<(), ContainerError> {
        if let Some(root) = self.path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| ContainerError::io("create runtime root", root, e))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(ContainerError::Exists(self.id().to_string()))
            }
            Err(e) => Err(ContainerError::io("create state directory", &self.path, e)),
        }
    }

    pub fn id(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Take the per-container lock (blocking). Different containers never contend.
    pub fn lock(&self) -> Result<Flock<File>, ContainerError> {
        let dir = File::open(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContainerError::NotFound(self.id().to_string())
            } else {
                ContainerError::io("open state directory", &self.path, e)
            }
        })?;
        Flock::lock(dir, FlockArg::LockExclusive)
            .map_err(|(_, e)| ContainerError::io("lock state directory", &self.path, e.into()))
    }

    pub fn load(&self) -> Result<State, ContainerError> {
        let path = self.file(STATE_FILE);
        let data = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                if self.path.exists() {
                    ContainerError::StillCreating(self.id().to_string())
                } else {
                    ContainerError::NotFound(self.id().to_string())
                }
            } else {
                ContainerError::io("read state", &path, e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| ContainerError::CorruptState(path, e.to_string()))
    }

    /// Write `name` atomically: a reader sees the old or the new file, never a torn one.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<(), ContainerError> {
        write_atomic(&self.file(name), data)
    }

    pub fn save(&self, state: &State) -> Result<(), ContainerError> {
        let data = serde_json::to_vec(state)
            .map_err(|e| ContainerError::CorruptState(self.file(STATE_FILE), e.to_string()))?;
        self.write_atomic(STATE_FILE, &data)
    }

    pub fn remove(&self) -> Result<(), ContainerError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ContainerError::io("remove state directory", &self.path, e)),
        }
    }
}

/// tmp + fsync + rename in the same directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ContainerError> {
    write_atomic_mode(path, data, 0o666)
}

/// [`write_atomic`] creating the file with `mode` (less the umask) from the start, e.g. 0600
/// for private state: no moment where another user could open it.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), ContainerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        // A leftover of a killed writer with the same pid keeps its old mode: start afresh.
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ContainerError::io("write", path, e)
    })
}

/// Process facts from `/proc/<pid>/stat`: the state letter and the start time.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Parse `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so split
/// after the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); starttime is field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether the recorded init process still exists (a zombie counts as gone).
pub fn init_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(proc_stat(pid), Some((st, t)) if t == start_time && st != 'Z' && st != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1_2.3+x", &"x".repeat(255)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "/", "a b", "ü", &"x".repeat(256)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stat_parsing_survives_odd_names() {
        let s = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat(s), Some(('S', 12345)));
    }

    #[test]
    fn status_predicates() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(Status::Paused.can_kill());
        assert!(!Status::Stopped.can_kill());
        assert!(Status::Stopped.can_delete());
        assert!(!Status::Running.can_delete());
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
