//! `exec`: run another process in a running container, joining all its namespaces and
//! its cgroup, with the container's seccomp profile.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::state::{self, Status};
use super::{Container, ContainerError};
use crate::process::channel::Message;
use crate::process::{Launch, Mode, spawn};

#[derive(Debug, Default)]
pub struct ExecOpts {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub ignore_paused: bool,
}

/// The started process.
pub struct Execed {
    pub pid: Pid,
    /// Our end of the pty when the process has a terminal and the caller proxies it.
    pub tty: Option<OwnedFd>,
}

fn proc_ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Start `process` inside container `id`. With `tty_pair`, the pty master comes back to the
/// caller instead of going to a console socket.
pub fn exec(
    root: &Path,
    id: &str,
    process: &Process,
    opts: &ExecOpts,
    tty_pair: Option<(OwnedFd, OwnedFd)>,
) -> Result<Execed, ContainerError> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if !(status.can_exec() || (opts.ignore_paused && status == Status::Paused)) {
        return Err(ContainerError::WrongState {
            verb: "exec in",
            id: id.into(),
            status,
            hint: "",
        });
    }
    let spec = c.spec()?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile(s)?),
        None => None,
    };
    let mut joins = Vec::new();
    let mut kinds: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    kinds.sort_by_key(|t| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 9,
        _ => 5,
    });
    for t in kinds {
        let path = format!("/proc/{}/ns/{}", c.state.pid, proc_ns_name(t));
        // Joining our own namespace is pointless and, for the user namespace, refused.
        if std::fs::read_link(&path).ok()
            == std::fs::read_link(format!("/proc/self/ns/{}", proc_ns_name(t))).ok()
        {
            continue;
        }
        let fd = nix::fcntl::open(
            path.as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| ContainerError::io("open", Path::new(&path), e.into()))?;
        joins.push((CloneFlags::from_bits_retain(t as libc::c_int), fd));
    }
    let proxy_console = tty_pair.is_some();
    let (console, ours) = match tty_pair {
        Some((mine, theirs)) => (Some(theirs), Some(mine)),
        None => (
            super::create::connect_console(
                opts.console_socket.as_deref(),
                process.terminal().unwrap_or(false),
            )?,
            None,
        ),
    };
    let (listen, extra_env) = super::create::listen_fds();
    let launch = Launch {
        spec: &spec,
        process,
        mode: Mode::Exec,
        joins,
        unshare: CloneFlags::empty(),
        new_user: false,
        time_offsets: Vec::new(),
        seccomp,
        preserve_fds: opts.preserve_fds + listen,
        no_new_keyring: true,
        console,
        proxy_console,
        extra_env,
        stdio: None,
    };
    let spawned = spawn(launch)?;
    let fail = |e: ContainerError, pids: &[Pid]| {
        for p in pids {
            let _ = nix::sys::signal::kill(*p, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(*p, None);
        }
        e
    };
    if let Some(cg) = c.cgroup()?
        && let Err(e) = cg.add_task(spawned.stage1.as_raw())
    {
        return Err(fail(e.into(), &[spawned.stage1]));
    }
    if let Err(e) = spawned.channel.send(&Message::Go) {
        return Err(fail(e.into(), &[spawned.stage1]));
    }
    let pid = match spawned.channel.recv() {
        Ok(Message::Pid(p)) => Pid::from_raw(p),
        Ok(other) => {
            return Err(fail(
                ContainerError::Other(format!("unexpected message from exec: {other:?}")),
                &[spawned.stage1],
            ));
        }
        Err(e) => return Err(fail(e.into(), &[spawned.stage1])),
    };
    spawned.reap_stage1();
    if let Err(e) = spawned.channel.send(&Message::Go) {
        return Err(fail(e.into(), &[pid]));
    }
    // EOF means execve succeeded (the channel is close-on-exec); a message is an error.
    match spawned.channel.recv_opt() {
        Ok(None) => {}
        Ok(Some(Message::Error(e))) => return Err(fail(ContainerError::Other(e), &[pid])),
        Ok(Some(other)) => {
            return Err(fail(
                ContainerError::Other(format!("unexpected message from exec: {other:?}")),
                &[pid],
            ));
        }
        Err(e) => return Err(fail(e.into(), &[pid])),
    }
    let tty = match ours {
        Some(sock) => crate::process::channel::recv_fd(&sock)
            .map_err(|e| ContainerError::Other(format!("receive pty master: {e}")))?,
        None => None,
    };
    if let Some(pf) = &opts.pid_file {
        state::write_atomic(pf, pid.to_string().as_bytes())?;
    }
    Ok(Execed { pid, tty })
}
