//! The OCI container lifecycle: create, start, kill, delete, exec, pause/resume, update.
//! Every verb takes the per-container lock and checks a pure status predicate first.

pub mod create;
pub mod events;
pub mod exec;
pub mod lifecycle;
pub mod seccomp_agent;
pub mod spec;
pub mod state;
pub mod update;
pub mod wait;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use state::{State, StateDir, Status};

use crate::cgroups::{self, CgroupError, CgroupManager};

#[derive(Debug, Error)]
pub enum ContainerError {
    #[error("invalid container id `{0}`: use letters, digits, `_`, `+`, `-` and `.` (at most 255)")]
    InvalidId(String),
    /// runc's words (`ErrExist`): containerd and podman match on them; the command's
    /// context names the id.
    #[error("container with given ID already exists")]
    Exists(String),
    /// runc's `ErrNotExist`: the shim treats "does not exist" on delete and kill as gone.
    #[error("container does not exist")]
    NotFound(String),
    #[error(
        "container `{0}` is still being created (or its create was interrupted: `peapod delete {0}` removes it)"
    )]
    StillCreating(String),
    #[error(
        "container `{id}` is locked by {holder} for more than {secs} s; hint: another peapod \
         command is working on it, try again"
    )]
    Locked {
        id: String,
        holder: String,
        secs: u64,
    },
    #[error("container's cgroup is not empty: {0} process(es) found")]
    CgroupNotEmpty(usize),
    /// runc's words for a cgroupsPath whose freezer is already frozen: the init could never
    /// run, so the create would wait forever.
    #[error("container's cgroup unexpectedly frozen")]
    CgroupFrozen,
    #[error("interrupted by signal {0}; everything made so far was removed")]
    Interrupted(i32),
    #[error("container init was OOM-killed (memory limit too low?)")]
    InitOomKilled,
    #[error("corrupt state `{0}`: {1}")]
    CorruptState(PathBuf, String),
    /// The io error is part of the message, not a `source()`: printed as a chain it would
    /// appear twice ("... (os error 2): No such file or directory (os error 2)").
    #[error("{op} `{path}`: {err}", path = .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("invalid config.json: {0}")]
    BadConfig(String),
    /// A bundle without config.json, in runc's words (callers match them).
    #[error("read `{}`: JSON specification file config.json not found", .0.display())]
    NoConfig(PathBuf),
    /// A verb refused in this state, in runc 1.5's words (see [`wrong_state`]).
    #[error("{}", wrong_state(verb, id, *status))]
    WrongState {
        verb: &'static str,
        id: String,
        status: Status,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Channel(#[from] crate::process::channel::ChannelError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Signal(#[from] crate::signal::UnknownSignal),
    #[error("{0}")]
    Other(String),
}

/// runc 1.5.1's message for `verb` refused on a container in `status`. The shim
/// (containerd's `checkKillError`) reads "container not running" as "already gone", and
/// podman and scripts match these texts, so they are runc's to the letter (checked against
/// runc 1.5.1 by tests/privileged/runc_errors.rs).
pub fn wrong_state(verb: &str, id: &str, status: Status) -> String {
    match (verb, status) {
        ("start", Status::Running) => "cannot start an already running container".into(),
        ("start", Status::Stopped) => "cannot start a container that has stopped".into(),
        ("start", s) => format!("cannot start a container in the {s} state"),
        ("delete", s) => format!("cannot delete container {id} that is not stopped: {s}"),
        ("resume", _) => "container not paused".into(),
        ("exec in", Status::Paused) => {
            "cannot exec in a paused container (use --ignore-paused to override)".into()
        }
        ("exec in", s) => format!("cannot exec in a {s} container"),
        // kill, pause, update
        _ => "container not running".into(),
    }
}

impl ContainerError {
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        ContainerError::Io {
            op,
            path: path.to_path_buf(),
            err: source,
        }
    }
}

/// A container loaded from its state directory.
pub struct Container {
    pub dir: StateDir,
    pub state: State,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Self, ContainerError> {
        let dir = StateDir::new(root, id)?;
        let state = dir.load()?;
        Ok(Container { dir, state })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Result<Option<Box<dyn CgroupManager>>, ContainerError> {
        if self.state.cgroup_path.is_empty() {
            return Ok(None);
        }
        Ok(Some(cgroups::manager(
            Some(&self.state.cgroup_path),
            &self.state.id,
        )?))
    }

    /// The container's cgroup if it is provably this container's: it still carries the mark
    /// written at create ([`cgroups::CgroupManager::owner`]). Killing every process of a
    /// cgroup, freezing it or removing it is allowed only then, so a container can never kill
    /// processes that another container (or anything else) put in a cgroupsPath they share.
    pub fn owned_cgroup(&self) -> Result<Option<Box<dyn CgroupManager>>, ContainerError> {
        let Some(cg) = self.cgroup()? else {
            return Ok(None);
        };
        if self.state.cgroup_owner.is_empty()
            || cg.owner().as_deref() == Some(self.state.cgroup_owner.as_str())
        {
            Ok(Some(cg))
        } else {
            Ok(None)
        }
    }

    /// The live status: stopped when init is gone, paused when frozen, created while init
    /// still waits on the start fifo.
    pub fn status(&self) -> Status {
        if self.state.pid == 0 {
            // The create never got as far as the init (or is still on its way): `delete -f`
            // removes what it left.
            return Status::Creating;
        }
        if !state::init_alive(self.state.pid, self.state.pid_start_time) {
            return Status::Stopped;
        }
        if let Ok(Some(cg)) = self.owned_cgroup()
            && cg.is_frozen().unwrap_or(false)
        {
            return Status::Paused;
        }
        let released = self
            .state
            .init_exe
            .is_some_and(|rec| state::exe_id(self.state.pid).is_some_and(|now| now != rec));
        if self.dir.file(state::EXEC_FIFO).exists() && !released {
            Status::Created
        } else {
            Status::Running
        }
    }

    pub fn require(
        &self,
        verb: &'static str,
        ok: fn(Status) -> bool,
    ) -> Result<Status, ContainerError> {
        let status = self.status();
        if ok(status) {
            Ok(status)
        } else {
            Err(ContainerError::WrongState {
                verb,
                id: self.state.id.clone(),
                status,
            })
        }
    }

    /// The spec saved at create time (the bundle may be gone by now).
    pub fn spec(&self) -> Result<oci_spec::runtime::Spec, ContainerError> {
        spec::load_saved(&self.dir.path)
    }

    /// The state JSON hooks get on stdin.
    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        serde_json::to_vec(&self.state.to_oci(status)).unwrap_or_default()
    }
}
