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
use crate::{hooks, sys};

/// Release the init blocked on `exec.fifo`, then run poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<(), ContainerError> {
    let c = Container::load(root, id)?;
    let _lock = c.dir.lock()?;
    c.require(
        "start",
        Status::can_start,
        ": only a created container can be started",
    )?;
    let fifo_path = c.dir.file(EXEC_FIFO);
    // Non-blocking open never hangs; a dead init is noticed in the poll loop instead of
    // blocking forever in open(2).
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| ContainerError::io("open", &fifo_path, e.into()))?;
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
    }
    let _ = std::fs::remove_file(&fifo_path);
    let spec = c.spec()?;
    if let Err(e) = hooks::run(
        "poststart",
        spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()),
        &c.hook_state(Status::Running),
    ) {
        log::warn!("{e}");
    }
    Ok(())
}

/// Send `sig` to init, or to every process of the container with `all`.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
    let c = Container::load(root, id)?;
    c.require("kill", Status::can_kill, "")?;
    // Without a private pid namespace, killing init does not take the other processes
    // with it: SIGKILL goes to all of them (runc 1.2 does the same).
    if (all || (sig == libc::SIGKILL && !c.state.private_pid_ns))
        && let Some(cg) = c.cgroup()?
    {
        cg.kill_all(sig)?;
        return Ok(());
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
            hint: "",
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

/// Remove a container. Without `force` it must be stopped (or never started).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), ContainerError> {
    let dir = StateDir::new(root, id)?;
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(ContainerError::StillCreating(_)) | Err(ContainerError::CorruptState(..)) => {
            // An interrupted create leaves a directory without state: remove it.
            let _lock = dir.lock()?;
            return dir.remove();
        }
        Err(ContainerError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let _lock = c.dir.lock()?;
    let status = c.status();
    if !force && !status.can_delete() {
        return Err(ContainerError::WrongState {
            verb: "delete",
            id: id.to_string(),
            status,
            hint: ": stop it first or use --force",
        });
    }
    let cg = c.cgroup()?;
    if status != Status::Stopped {
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
    if let Some(cg) = &cg {
        // Processes that outlived init (shared pid namespace) go too.
        if !cg.pids()?.is_empty() {
            cg.kill_all(libc::SIGKILL)?;
        }
        cg.remove()?;
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

fn cgroup_of(
    c: &Container,
    verb: &str,
) -> Result<Box<dyn crate::cgroups::CgroupManager>, ContainerError> {
    c.cgroup()?.ok_or_else(|| {
        ContainerError::Other(format!(
            "cannot {verb} container `{}`: it has no cgroup",
            c.id()
        ))
    })
}

pub fn pause(root: &Path, id: &str) -> Result<(), ContainerError> {
    let c = Container::load(root, id)?;
    let _lock = c.dir.lock()?;
    c.require("pause", Status::can_pause, "")?;
    Ok(cgroup_of(&c, "pause")?.freeze()?)
}

pub fn resume(root: &Path, id: &str) -> Result<(), ContainerError> {
    let c = Container::load(root, id)?;
    let _lock = c.dir.lock()?;
    c.require("resume", Status::can_resume, "")?;
    Ok(cgroup_of(&c, "resume")?.thaw()?)
}

/// Apply new resources live and remember them in the saved spec.
pub fn update(root: &Path, id: &str, r: &LinuxResources) -> Result<(), ContainerError> {
    let c = Container::load(root, id)?;
    let _lock = c.dir.lock()?;
    c.require("update", Status::can_kill, "")?;
    let mut spec = c.spec()?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let merged = merge_resources(linux.resources().clone().unwrap_or_default(), r);
    linux.set_resources(Some(merged));
    spec.set_linux(Some(linux));
    cgroup_of(&c, "update")?.apply(&super::create::resources(&spec))?;
    let json = serde_json::to_vec(&spec).map_err(|e| ContainerError::Other(e.to_string()))?;
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
    match c.cgroup()? {
        Some(cg) => Ok(cg.pids()?),
        None => Ok(vec![c.state.pid]),
    }
}

/// `events --stats`: one JSON object as runc prints it.
pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value, ContainerError> {
    let c = Container::load(root, id)?;
    c.require("get stats of", |s| s != Status::Stopped, "")?;
    let stats = cgroup_of(&c, "get stats of")?.stats()?;
    Ok(serde_json::json!({"type": "stats", "id": id, "data": stats}))
}
