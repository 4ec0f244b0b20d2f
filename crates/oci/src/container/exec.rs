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
    /// `--pidfd-socket`: a unix socket that receives a pidfd of the process.
    pub pidfd_socket: Option<PathBuf>,
    /// `--cgroup`: sub-cgroups of the container's to run in (`path` or `controllers:path`).
    pub cgroup: Vec<String>,
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
    let (listen, extra_env) = super::create::listen_fds();
    let preserve_fds = super::create::preserved_fds(opts.preserve_fds, listen)?;
    let c = Container::load(root, id)?;
    let spec = c.spec()?;
    crate::process::features::plan(&spec, process, true)
        .map_err(|e| ContainerError::BadConfig(e.to_string()))?;
    let status = c.status();
    // runc runs a process in a created container too: its namespaces exist while the init
    // waits for `start`; a paused one only with --ignore-paused.
    let paused_ok = status == Status::Paused && opts.ignore_paused;
    if !(status.can_exec() || status == Status::Created || paused_ok) {
        return Err(ContainerError::WrongState {
            verb: "exec in",
            id: id.into(),
            status,
        });
    }
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::build(s)?),
        None => None,
    };
    let listener = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(crate::seccomp::listener);
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
    // A container without a mount namespace of its own shares ours: the process enters the
    // init's root instead (runc 1.5.1 runs it in the host's root filesystem).
    let own_mnt = std::fs::read_link("/proc/self/ns/mnt").ok();
    let enter_root = if nix::fcntl::readlinkat(&proc_dir, "ns/mnt").ok() == own_mnt.map(Into::into)
    {
        let fd = nix::fcntl::openat(
            &proc_dir,
            "root",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| {
            ContainerError::io("open", Path::new(&format!("{proc_path}/root")), e.into())
        })?;
        Some(fd)
    } else {
        None
    };
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
    let subs = parse_sub_cgroups(&opts.cgroup).map_err(ContainerError::BadConfig)?;
    let pidfd_sock = super::create::connect_pidfd_socket(opts.pidfd_socket.as_deref())?;
    let launch = Launch {
        spec: &spec,
        process,
        mode: Mode::Exec,
        joins,
        unshare: CloneFlags::empty(),
        new_user: false,
        time_offsets: Vec::new(),
        enter_root,
        seccomp,
        preserve_fds,
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
    if let Err(e) = crate::process::features::set_initial_affinity(spawned.first, process) {
        return Err(fail(
            ContainerError::BadConfig(e.to_string()),
            &[spawned.first],
        ));
    }
    if let Some(cg) = c.cgroup()? {
        let joined = if subs.is_empty() {
            cg.add_task(spawned.first.as_raw()).map_err(Into::into)
        } else {
            join_sub_cgroups(cg.as_ref(), &subs, spawned.first.as_raw())
        };
        if let Err(e) = joined {
            return Err(fail(e, &[spawned.first]));
        }
    } else if !subs.is_empty() {
        return Err(ContainerError::BadConfig(
            "--cgroup: the container has no cgroup".into(),
        ));
    }
    if !crate::process::features::has_initial_affinity(process) {
        crate::process::features::reset_affinity(spawned.first);
    }
    if let Err(e) = spawned.channel.send(&Message::Go) {
        return Err(fail(e.into(), &[spawned.first]));
    }
    let pid = match spawned.channel.recv() {
        Ok(Message::Pid(p)) => Pid::from_raw(p),
        Ok(other) => {
            return Err(fail(
                ContainerError::Other(format!("unexpected message from exec: {other:?}")),
                &[spawned.first],
            ));
        }
        Err(e) => return Err(fail(e.into(), &[spawned.first])),
    };
    spawned.reap_stage1();
    if let Err(e) = super::create::send_pidfd(pidfd_sock.as_ref(), pid.as_raw()) {
        return Err(fail(e, &[pid]));
    }
    if let Err(e) = spawned.channel.send(&Message::Go) {
        return Err(fail(e.into(), &[pid]));
    }
    // EOF means execve succeeded (the channel is close-on-exec); a message is an error, but
    // for the listener fd of a seccomp filter with notify rules, which goes to the agent.
    let mut msg = spawned.channel.recv_opt();
    if let Ok(Some(Message::SeccompFd)) = msg {
        if let Err(e) = super::seccomp_agent::hand_over(
            &spawned.channel,
            listener.as_ref(),
            &c.state,
            status,
            pid.as_raw(),
        ) {
            return Err(fail(e, &[pid]));
        }
        msg = spawned.channel.recv_opt();
    }
    match msg {
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

/// `exec --cgroup` values (runc 1.1+): `path` for every controller, or `ctrl[,ctrl]:path` for
/// the named v1 controllers. `path` names an existing sub-cgroup of the container's, relative
/// to it; absolute paths and `..` are refused. Returns (controllers, path), an empty
/// controller list meaning all.
pub fn parse_sub_cgroups(args: &[String]) -> Result<Vec<(Vec<String>, PathBuf)>, String> {
    let mut out = Vec::new();
    for a in args {
        let (ctrls, path) = match a.split_once(':') {
            Some((c, p)) => {
                let c: Vec<String> = c.split(',').map(str::to_string).collect();
                if c.iter().any(|c| c.is_empty()) {
                    return Err(format!("--cgroup `{a}`: empty controller name"));
                }
                (c, p)
            }
            None => (Vec::new(), a.as_str()),
        };
        let p = Path::new(path);
        if path.is_empty()
            || p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "--cgroup `{a}`: the path must be relative to the container's cgroup, without `..`"
            ));
        }
        if ctrls.is_empty() && out.iter().any(|(c, _): &(Vec<String>, _)| c.is_empty()) {
            return Err(format!(
                "--cgroup `{a}`: a path for all controllers was already given"
            ));
        }
        out.push((ctrls, p.to_path_buf()));
    }
    Ok(out)
}

/// Put `pid` in the sub-cgroups `subs` of the container's cgroup `cg`: on v2 the one path; on
/// v1, in each hierarchy, the path given for one of its controllers, else the path for all,
/// else the container's own directory.
fn join_sub_cgroups(
    cg: &dyn crate::cgroups::CgroupManager,
    subs: &[(Vec<String>, PathBuf)],
    pid: i32,
) -> Result<(), ContainerError> {
    let all = subs.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p);
    let mut used = vec![false; subs.len()];
    for dir in cg.leaf_dirs() {
        let sub = if cg.is_unified() {
            if let Some((c, _)) = subs.iter().find(|(c, _)| !c.is_empty()) {
                return Err(ContainerError::BadConfig(format!(
                    "--cgroup: controller names ({}) only apply to cgroup v1",
                    c.join(",")
                )));
            }
            all
        } else {
            // The hierarchy's mount point: the leaf minus the container's cgroup path.
            let mount = dir
                .to_str()
                .and_then(|d| d.strip_suffix(cg.path()))
                .map(Path::new)
                .and_then(|m| m.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let names: Vec<&str> = mount.split(',').collect();
            subs.iter()
                .position(|(c, _)| c.iter().any(|c| names.contains(&c.as_str())))
                .map(|i| {
                    used[i] = true;
                    &subs[i].1
                })
                .or(all)
        };
        let target = match sub {
            Some(s) => dir.join(s),
            None => dir.clone(),
        };
        // The sub-cgroup must exist (runc does not create it); cgroupfs has no symlinks, so
        // a symlink here is not a cgroup.
        let meta = std::fs::symlink_metadata(&target)
            .map_err(|e| ContainerError::io("join sub-cgroup", &target, e))?;
        if !meta.is_dir() {
            return Err(ContainerError::BadConfig(format!(
                "--cgroup: `{}` is not a cgroup directory",
                target.display()
            )));
        }
        crate::cgroups::write_procs(&target, pid)?;
    }
    if let Some(i) = (0..subs.len()).find(|i| !subs[*i].0.is_empty() && !used[*i]) {
        return Err(ContainerError::BadConfig(format!(
            "--cgroup: no cgroup v1 hierarchy for controllers {}",
            subs[i].0.join(",")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_cgroup_args_parse_and_refuse_escapes() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_sub_cgroups(&args(&["sub", "memory,pids:m/n"])).unwrap(),
            vec![
                (vec![], PathBuf::from("sub")),
                (vec!["memory".into(), "pids".into()], PathBuf::from("m/n"))
            ]
        );
        for bad in ["../x", "/abs", "a/../../b", "", "memory:", ":x"] {
            assert!(parse_sub_cgroups(&args(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_sub_cgroups(&args(&["a", "b"])).is_err());
    }
}
