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
    pub preserve_fds: u32,
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
    super::spec::check_process_limits(process)?;
    let c = Container::load(root, id)?;
    let spec = c.spec()?;
    crate::process::features::plan(&spec, process, true)
        .map_err(|e| ContainerError::BadConfig(e.to_string()))?;
    let status = c.status();
    if !(status.can_exec() || (opts.ignore_paused && status == Status::Paused)) {
        return Err(ContainerError::WrongState {
            verb: "exec in",
            id: id.into(),
            status,
            hint: "",
        });
    }
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
    // The namespaces are opened through a directory fd of /proc/<init>, checked to be the
    // recorded init (start time read through that same fd): if the init died and its pid was
    // reused between the status check and here, the fd refers to the dead process (ESRCH) or
    // the check fails, and exec never joins another process's namespaces.
    let proc_path = format!("/proc/{}", c.state.pid);
    let gone = || ContainerError::WrongState {
        verb: "exec in",
        id: id.into(),
        status: Status::Stopped,
        hint: "",
    };
    let proc_dir = nix::fcntl::open(
        proc_path.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|_| gone())?;
    let stat = nix::fcntl::openat(
        &proc_dir,
        "stat",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
    .and_then(|fd| std::io::read_to_string(std::fs::File::from(fd)).ok())
    .and_then(|text| state::parse_stat(&text));
    if !matches!(stat, Some((st, t)) if t == c.state.pid_start_time && st != 'Z') {
        return Err(gone());
    }
    for t in kinds {
        let name = format!("ns/{}", proc_ns_name(t));
        let path = format!("{proc_path}/{name}");
        // Joining our own namespace is pointless and, for the user namespace, refused.
        if nix::fcntl::readlinkat(&proc_dir, name.as_str()).ok()
            == std::fs::read_link(format!("/proc/self/ns/{}", proc_ns_name(t)))
                .ok()
                .map(|p| p.into_os_string())
        {
            continue;
        }
        let fd = nix::fcntl::openat(
            &proc_dir,
            name.as_str(),
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
        preserve_fds: super::create::preserved_fds(opts.preserve_fds, listen)?,
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
    // Before the stage joins the cgroup (runc's order).
    if let Err(e) = crate::process::features::set_initial_affinity(spawned.stage1, process) {
        return Err(fail(
            ContainerError::BadConfig(e.to_string()),
            &[spawned.stage1],
        ));
    }
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
        state::write_pid_file(pf, pid.as_raw())?;
    }
    Ok(Execed { pid, tty })
}
