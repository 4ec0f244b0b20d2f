//! On-disk container state: `<root>/<id>/state.json`, written with tmp + rename under a
//! per-container `flock`, and the status derived from the live process, the freezer and
//! the start fifo.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ContainerError;

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";
pub const LOCK_FILE: &str = "lock";

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
    /// runc pauses a created container too (its init is frozen on the start fifo).
    pub fn can_pause(self) -> bool {
        matches!(self, Status::Running | Status::Created)
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
    /// The mark peapod wrote on the container's cgroup (`trusted.peapod.owner`): the cgroup's
    /// processes may be killed, and the cgroup frozen or removed, only while the cgroup still
    /// carries it. Empty in states written before marks existed (then the cgroup counts as
    /// the container's, as it did).
    #[serde(default)]
    pub cgroup_owner: String,
    /// Whether this container's create made the cgroup directory (only then does `delete`
    /// remove it); false for a cgroupsPath that existed already.
    #[serde(default = "default_true")]
    pub cgroup_created: bool,
    /// (device, inode) of the init's executable while it is still peapod's stage, recorded at
    /// create: once it differs, the init has passed `start` (even if the `start` that released
    /// it was killed before it removed `exec.fifo`).
    #[serde(default)]
    pub init_exe: Option<(u64, u64)>,
}

/// (device, inode) of `/proc/<pid>/exe`.
pub fn exe_id(pid: i32) -> Option<(u64, u64)> {
    let st = nix::sys::stat::stat(format!("/proc/{pid}/exe").as_str()).ok()?;
    Some((st.st_dev, st.st_ino))
}

fn default_true() -> bool {
    true
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

    /// Take the per-container lock, waiting at most [`LOCK_TIMEOUT`]. Different containers
    /// never contend.
    ///
    /// It is a POSIX record lock on `<dir>/lock` (`F_SETLK`), which belongs to the process that
    /// took it: the stages a `create` forks do not inherit it (a `flock` would pass to them and
    /// outlive a killed command in an orphaned init), and the kernel drops it when the command
    /// exits, however it dies. So no command ever waits on a lock held by a dead or orphaned
    /// process, and a live holder makes the wait end with an error naming it.
    pub fn lock(&self) -> Result<StateLock, ContainerError> {
        use std::os::unix::fs::OpenOptionsExt;
        if !self.path.is_dir() {
            return Err(ContainerError::NotFound(self.id().to_string()));
        }
        let path = self.file(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ContainerError::NotFound(self.id().to_string())
                } else {
                    ContainerError::io("open state lock", &path, e)
                }
            })?;
        let deadline = std::time::Instant::now() + LOCK_TIMEOUT;
        let whole = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        loop {
            match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLK(&whole)) {
                Ok(_) => return Ok(StateLock { _file: file }),
                Err(
                    nix::errno::Errno::EAGAIN
                    | nix::errno::Errno::EACCES
                    | nix::errno::Errno::EINTR,
                ) if std::time::Instant::now() < deadline => {
                    if let Some(sig) = peapod_sys::interrupted() {
                        return Err(ContainerError::Interrupted(sig));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                    let mut probe = whole;
                    let holder =
                        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETLK(&mut probe))
                            .ok()
                            .filter(|_| probe.l_type != libc::F_UNLCK as libc::c_short)
                            .map(|_| format!("pid {}", probe.l_pid))
                            .unwrap_or_else(|| "another process".into());
                    return Err(ContainerError::Locked {
                        id: self.id().to_string(),
                        holder,
                        secs: LOCK_TIMEOUT.as_secs(),
                    });
                }
                Err(e) => return Err(ContainerError::io("lock", &path, e.into())),
            }
        }
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
    /// The file is private (0600): a config holds the container's environment, which may hold
    /// secrets.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<(), ContainerError> {
        let path = self.file(name);
        peapod_sys::fs::write_atomic(&path, data).map_err(|e| ContainerError::io("write", &path, e))
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

/// How long a command waits for another one working on the same container.
pub const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The held per-container lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// `--pid-file`: the pid in decimal, written atomically; public (0644), as runc's.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), ContainerError> {
    peapod_sys::fs::write_atomic_mode(path, pid.to_string().as_bytes(), 0o644)
        .map_err(|e| ContainerError::io("write", path, e))
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
    fn atomic_write_replaces_and_stays_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "c1").unwrap();
        sd.create().unwrap();
        sd.write_atomic("f.json", b"one").unwrap();
        sd.write_atomic("f.json", b"two").unwrap();
        let p = sd.file("f.json");
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&sd.path).unwrap().count(), 1);
    }
}
