//! start, kill, delete, pause, resume, update, list and ps.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode as FileMode;
use oci_spec::runtime::LinuxResources;

use super::state::{self, EXEC_FIFO, Status};
use super::{Container, ContainerError, StateDir};
use crate::cgroups::CgroupManager;
use crate::hooks;
use peapod_sys as sys;

/// Release the init blocked on `exec.fifo`, then run poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<(), ContainerError> {
    start_with(root, id, Poststart::FromConfig)
}

/// Where `start` finds the poststart hooks it runs.
pub enum Poststart {
    /// In the copy of config.json that create saved.
    FromConfig,
    /// Given by a caller that holds the spec already (`run`, which created the container).
    Known(Option<Vec<oci_spec::runtime::Hook>>),
}

impl Poststart {
    /// The hooks of `spec`.
    pub fn of(spec: &oci_spec::runtime::Spec) -> Poststart {
        Poststart::Known(poststart_hooks(spec))
    }
}

fn poststart_hooks(spec: &oci_spec::runtime::Spec) -> Option<Vec<oci_spec::runtime::Hook>> {
    spec.hooks().as_ref().and_then(|h| h.poststart().clone())
}

/// [`start`], with the poststart hooks taken from `poststart`.
pub fn start_with(root: &Path, id: &str, poststart: Poststart) -> Result<(), ContainerError> {
    let (c, _lock) = load_locked(root, id)?;
    c.require("start", Status::can_start)?;
    let fifo_path = c.dir.file(EXEC_FIFO);
    // Non-blocking open never hangs; a dead init is noticed in the poll loop instead of
    // blocking forever in open(2).
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| ContainerError::io("open", &fifo_path, e.into()))?;
    log::debug!("start container {id}: open {}", fifo_path.display());
    let waited = Instant::now();
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 1];
                match nix::unistd::read(&fifo, &mut b) {
                    Ok(1) => break,
                    Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(ContainerError::io("read", &fifo_path, e.into())),
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(ContainerError::io("poll", &fifo_path, e.into())),
        }
        if !state::init_alive(c.state.pid, c.state.pid_start_time) {
            return Err(ContainerError::Other(format!(
                "container `{id}` init exited before it was started"
            )));
        }
        // An init that was released by a `start` killed half-way no longer writes the fifo:
        // do not wait for it forever.
        if waited.elapsed() > START_TIMEOUT {
            return Err(ContainerError::Other(format!(
                "container `{id}` init did not answer on `{}` within {} s; hint: a `start` that \
                 was killed may have started it already (`peapod delete -f {id}` removes it)",
                fifo_path.display(),
                START_TIMEOUT.as_secs()
            )));
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    let hooks = match poststart {
        Poststart::Known(hooks) => hooks,
        Poststart::FromConfig => poststart_hooks(&c.spec()?),
    };
    // runc: a failing poststart hook fails the command and terminates the container (it is
    // left stopped for `delete`).
    if let Err(e) = hooks::run("poststart", hooks.as_ref(), &c.hook_state(Status::Running)) {
        let killed = match c.owned_cgroup() {
            Ok(Some(cg)) if !c.state.private_pid_ns => {
                cg.kill_all(libc::SIGKILL).map_err(Into::into)
            }
            _ => signal_init(&c, libc::SIGKILL),
        };
        if let Err(k) = killed {
            log::warn!("kill container `{id}` after its poststart hook failed: {k}");
        }
        return Err(e.into());
    }
    Ok(())
}

/// How long `start` waits for the init to answer on the fifo.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Load a container with its lock held: the state read is the one no other command changes
/// until the lock is dropped.
fn load_locked(
    root: &Path,
    id: &str,
) -> Result<(Container, super::state::StateLock), ContainerError> {
    let dir = StateDir::new(root, id)?;
    let lock = dir.lock()?;
    Ok((Container::load(root, id)?, lock))
}

/// Send `sig` to init, or to every process of the container with `all`.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
    let c = Container::load(root, id)?;
    let status = c.status();
    // Without a private pid namespace, killing init does not take the other processes
    // with it: SIGKILL goes to all of them (runc 1.2 does the same). Only in a cgroup that is
    // provably this container's: in one whose mark changed, init alone gets the signal.
    // As runc 1.5.1, this also succeeds on a stopped container (whatever is left in its
    // cgroup gets the signal): containerd deletes an exited task with `kill --all ID 9`
    // and retries its exit handling forever when that fails.
    let to_all = all || (sig == libc::SIGKILL && !c.state.private_pid_ns);
    if !to_all && !status.can_kill() {
        return Err(ContainerError::WrongState {
            verb: "kill",
            id: id.into(),
            status,
        });
    }
    if to_all {
        match c.owned_cgroup()? {
            Some(cg) => {
                if cg.exists() {
                    cg.kill_all(sig)?;
                }
                return Ok(());
            }
            None if c.state.cgroup_path.is_empty() => {}
            None => log::warn!(
                "cgroup `{}` no longer carries container `{id}`'s mark: signalling its init only",
                c.state.cgroup_path
            ),
        }
        if !status.can_kill() {
            return Ok(());
        }
    }
    signal_init(&c, sig)
}

fn signal_init(c: &Container, sig: i32) -> Result<(), ContainerError> {
    let proc_path = format!("/proc/{}", c.state.pid);
    let pidfd = sys::pidfd_open(c.state.pid)
        .map_err(|e| ContainerError::io("pidfd_open", Path::new(&proc_path), e))?;
    // The pidfd pins the process; checking the start time after opening it proves the pid
    // was not recycled.
    if !state::init_alive(c.state.pid, c.state.pid_start_time) {
        return Err(ContainerError::WrongState {
            verb: "kill",
            id: c.state.id.clone(),
            status: Status::Stopped,
        });
    }
    sys::pidfd_send_signal(&pidfd, sig)
        .map_err(|e| ContainerError::io("signal", Path::new(&proc_path), e))
}

/// Wait until init is gone (reaped or zombie), up to `limit`.
fn wait_gone(c: &Container, limit: Duration) -> bool {
    let t = Instant::now();
    while state::init_alive(c.state.pid, c.state.pid_start_time) {
        // If we are init's (sub)reaper, reap it.
        while sys::wait_any_nohang().is_some() {}
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Remove a container. Without `force` it must be stopped (or never started, or left by a
/// `create` that died).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), ContainerError> {
    let dir = StateDir::new(root, id)?;
    let _lock = match dir.lock() {
        Ok(l) => l,
        Err(ContainerError::NotFound(_)) if force => return delete_without_state(root, id),
        Err(e) => return Err(e),
    };
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(ContainerError::StillCreating(_)) | Err(ContainerError::CorruptState(..)) => {
            // A create killed before it wrote any state made nothing else yet.
            return dir.remove();
        }
        Err(e) => return Err(e),
    };
    // With the lock held, `creating` means the create that wrote it is dead.
    let status = c.status();
    if !(force || status.can_delete() || status == Status::Creating) {
        return Err(ContainerError::WrongState {
            verb: "delete",
            id: id.to_string(),
            status,
        });
    }
    let cg = c.owned_cgroup()?;
    if !matches!(status, Status::Stopped | Status::Creating) {
        match &cg {
            Some(cg) => {
                cg.kill_all(libc::SIGKILL)?;
                // Frozen tasks die only once thawed on cgroup v1.
                if status == Status::Paused {
                    cg.thaw()?;
                }
            }
            None => signal_init(&c, libc::SIGKILL)?,
        }
        if !wait_gone(&c, Duration::from_secs(10)) {
            return Err(ContainerError::Other(format!(
                "container `{id}` init did not exit after SIGKILL"
            )));
        }
    }
    match &cg {
        Some(cg) => {
            // Processes that outlived init (shared pid namespace), or stages of a create that
            // died, go too.
            if !cg.pids()?.is_empty() {
                cg.kill_all(libc::SIGKILL)?;
                if cg.is_frozen().unwrap_or(false) {
                    cg.thaw()?;
                }
            }
            if c.state.cgroup_created {
                cg.remove()?;
            }
        }
        None => {
            if let Some(unmarked) = c.cgroup()?.filter(|cg| cg.exists()) {
                // A create killed between making the directories and marking them: they
                // are ours, and empty (no process joins before the mark); rmdir only.
                if c.state.cgroup_created
                    && unmarked.owner().is_none()
                    && unmarked.pids()?.is_empty()
                {
                    unmarked.remove()?;
                } else {
                    log::warn!(
                        "cgroup `{}` is left in place: it no longer carries container `{id}`'s mark",
                        c.state.cgroup_path
                    );
                }
            }
        }
    }
    if let Ok(spec) = c.spec()
        && let Err(e) = hooks::run(
            "poststop",
            spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()),
            &c.hook_state(Status::Stopped),
        )
    {
        log::warn!("{e}");
    }
    c.dir.remove()
}

/// `delete -f` of an id with no state directory (`--root` wiped while it ran): the default
/// cgroup `/peapod/<id>` is found again and removed, with everything in it, only if its mark
/// says peapod made it for this root and id. Anything else is left alone, and said.
fn delete_without_state(root: &Path, id: &str) -> Result<(), ContainerError> {
    let cg = crate::cgroups::manager(None, id)?;
    if !cg.exists() {
        return Ok(());
    }
    let prefix = format!("{}@", super::create::owner_prefix(root, id));
    match cg.owner() {
        Some(owner) if owner.starts_with(&prefix) => {
            log::warn!(
                "container `{id}` has no state under `{}`: removing its cgroup `{}` and its \
                 processes",
                root.display(),
                cg.path()
            );
            if cg.is_frozen().unwrap_or(false) {
                cg.thaw()?;
            }
            cg.kill_all(libc::SIGKILL)?;
            cg.remove()?;
            Ok(())
        }
        other => Err(ContainerError::Other(format!(
            "container `{id}` does not exist under `{}`, but cgroup `{}` does and is not its \
             ({}): left alone",
            root.display(),
            cg.path(),
            match other {
                Some(o) => format!("it belongs to `{o}`"),
                None => "it has no peapod owner mark".to_string(),
            }
        ))),
    }
}

fn cgroup_of(
    c: &Container,
    verb: &str,
) -> Result<Box<dyn crate::cgroups::CgroupManager>, ContainerError> {
    c.owned_cgroup()?.ok_or_else(|| {
        ContainerError::Other(format!(
            "cannot {verb} container `{}`: it has no cgroup of its own",
            c.id()
        ))
    })
}

pub fn pause(root: &Path, id: &str) -> Result<(), ContainerError> {
    let (c, _lock) = load_locked(root, id)?;
    c.require("pause", Status::can_pause)?;
    Ok(cgroup_of(&c, "pause")?.freeze()?)
}

pub fn resume(root: &Path, id: &str) -> Result<(), ContainerError> {
    let (c, _lock) = load_locked(root, id)?;
    c.require("resume", Status::can_resume)?;
    Ok(cgroup_of(&c, "resume")?.thaw()?)
}

/// Apply new resources live and remember them in the saved spec.
pub fn update(root: &Path, id: &str, r: &LinuxResources) -> Result<(), ContainerError> {
    super::spec::check_resources_limits(r)?;
    let (c, _lock) = load_locked(root, id)?;
    c.require("update", Status::can_kill)?;
    let mut spec = c.spec()?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let merged = merge_resources(linux.resources().clone().unwrap_or_default(), r);
    linux.set_resources(Some(merged));
    spec.set_linux(Some(linux));
    cgroup_of(&c, "update")?.apply(&super::create::resources(&spec))?;
    let json =
        crate::json::to_vec(&spec, false).map_err(|e| ContainerError::Other(e.to_string()))?;
    c.dir.write_atomic(state::CONFIG_FILE, &json)
}

/// Fields set in `new` replace those of `old` (runc update semantics).
pub fn merge_resources(mut old: LinuxResources, new: &LinuxResources) -> LinuxResources {
    if new.memory().is_some() {
        old.set_memory(*new.memory());
    }
    if new.cpu().is_some() {
        old.set_cpu(new.cpu().clone());
    }
    if new.pids().is_some() {
        old.set_pids(*new.pids());
    }
    if new.block_io().is_some() {
        old.set_block_io(new.block_io().clone());
    }
    if new.hugepage_limits().is_some() {
        old.set_hugepage_limits(new.hugepage_limits().clone());
    }
    if new.unified().is_some() {
        old.set_unified(new.unified().clone());
    }
    if new.devices().is_some() {
        old.set_devices(new.devices().clone());
    }
    old
}

/// All containers under `root`, with their live status.
pub fn list(root: &Path) -> Result<Vec<(super::State, Status)>, ContainerError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ContainerError::io("read runtime root", root, e)),
    };
    for e in entries.flatten() {
        let Some(id) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Pods keep their state beside the containers (`pods/`).
        if id == "pods" || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match Container::load(root, &id) {
            Ok(c) => {
                let s = c.status();
                out.push((c.state, s));
            }
            Err(ContainerError::InvalidId(_)) => {}
            Err(e) => log::warn!("{e}"),
        }
    }
    out.sort_by(|a, b| a.0.created.cmp(&b.0.created));
    Ok(out)
}

/// Pids of every process in the container's cgroup (init alone when it has none).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, ContainerError> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        return Ok(Vec::new());
    }
    match c.owned_cgroup()? {
        Some(cg) => Ok(cg.pids()?),
        None => Ok(vec![c.state.pid]),
    }
}

/// `events --stats`: the stats event as runc prints it, one line of JSON.
pub fn stats(root: &Path, id: &str) -> Result<String, ContainerError> {
    let (c, cg) = events_source(root, id)?;
    stats_line(c.id(), cg.as_ref())
}

/// The stats event line of container `id` whose cgroup is `cg`.
pub fn stats_line(id: &str, cg: &dyn CgroupManager) -> Result<String, ContainerError> {
    let event = super::events::stats_event(id, cg.stats()?);
    serde_json::to_string(&event).map_err(|e| ContainerError::Other(e.to_string()))
}

/// A container `events` can report on (not stopped) and its cgroup.
pub fn events_source(
    root: &Path,
    id: &str,
) -> Result<(Container, Box<dyn CgroupManager>), ContainerError> {
    let c = Container::load(root, id)?;
    c.require("get stats of", |s| s != Status::Stopped)?;
    let cg = cgroup_of(&c, "get stats of")?;
    Ok((c, cg))
}
