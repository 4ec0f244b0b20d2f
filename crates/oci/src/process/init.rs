//! Code that runs in the forked stages. Errors are strings because they travel back to the
//! runtime over the channel; each names the operation and the path.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use caps::{CapSet, CapsHashSet};
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode as FileMode;
use nix::unistd::{ForkResult, Gid, Uid, setresgid, setresuid};
use oci_spec::runtime::{LinuxCapabilities, Process};

use super::channel::{Channel, Message, send_fd};
use super::features;
use super::spawn::{Launch, Mode};
use crate::{hooks, rootfs, seccomp};
use peapod_sys as sys;

type R<T> = Result<T, String>;

fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: impl FnOnce() -> String) -> R<T> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// Stage 1: join and create namespaces, then fork the init.
pub fn stage1(launch: Launch<'_>, ch: &Channel, runtime: u32) -> R<()> {
    let _ = nix::sys::prctl::set_name(c"peapod:[1:STAGE]");
    // Stage 1 dies with the runtime: a `create` or `exec` killed before stage 1 ran leaves no
    // process behind (the init notices through the channel, see `stage2`).
    sys::default_interrupts();
    if !sys::die_with_parent(runtime) {
        return Err("the runtime exited before stage 1 started".into());
    }
    ch.expect(Message::Go, "go").map_err(|e| e.to_string())?;
    write_oom_score_adj(launch.process)?;
    // Opened while stage 1 is still the runtime's root: the kernel checks CAP_SYS_TIME over
    // the time namespace's owner with the opener's credentials, and after the switch to root
    // of a new user namespace the file (owned by the host's root) is no longer writable
    // (EACCES). The offsets are written once the time namespace exists, before the fork
    // that enters it.
    let timens_offsets = if launch.time_offsets.is_empty() {
        None
    } else {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/timens_offsets");
        Some(ctx(f, || "open /proc/self/timens_offsets".into())?)
    };
    let kinds: Vec<CloneFlags> = launch.joins.iter().map(|(k, _)| *k).collect();
    for step in ns_steps(&kinds, launch.new_user, launch.unshare) {
        match step {
            NsStep::Join(i) => {
                let (kind, fd) = &launch.joins[i];
                ctx(setns(fd.as_fd(), *kind), || {
                    format!("setns {}", ns_name(*kind))
                })?;
            }
            NsStep::UnshareUser => {
                ctx(unshare(CloneFlags::CLONE_NEWUSER), || {
                    "unshare user namespace".into()
                })?;
                ch.send(&Message::WriteIdMaps).map_err(|e| e.to_string())?;
                ch.expect(Message::IdMapsWritten, "id maps written")
                    .map_err(|e| e.to_string())?;
            }
            NsStep::BecomeRoot => {
                ctx(
                    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)),
                    || "setgid 0 in user namespace".into(),
                )?;
                ctx(
                    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)),
                    || "setuid 0 in user namespace".into(),
                )?;
            }
            NsStep::Unshare(flags) => {
                ctx(unshare(flags), || "unshare namespaces".into())?;
            }
        }
    }
    if let Some(mut f) = timens_offsets {
        use std::io::Write;
        ctx(
            f.write_all(launch.time_offsets.join("\n").as_bytes()),
            || "write /proc/self/timens_offsets".into(),
        )?;
    }
    match ctx(sys::fork(), || "fork init".into())? {
        ForkResult::Parent { child } => {
            ch.send(&Message::Pid(child.as_raw()))
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        ForkResult::Child => run_init(launch, ch, Ok(())),
    }
}

/// The init cloned by the runtime straight into its new namespaces
/// ([`init_clone_flags`](super::spawn::init_clone_flags)): what stage 1 does before its fork
/// that still applies, then stage 2. It needs no death signal: until the runtime's last `Go`
/// it exits when the channel closes.
pub fn cloned_init(launch: Launch<'_>, ch: &Channel) -> ! {
    sys::default_interrupts();
    let before = (|| {
        ch.expect(Message::Go, "go").map_err(|e| e.to_string())?;
        write_oom_score_adj(launch.process)?;
        // The namespaces but PID (see `init_clone_flags`), made once the runtime has moved
        // this process into the container's cgroup.
        ctx(unshare(launch.unshare - CloneFlags::CLONE_NEWPID), || {
            "unshare namespaces".into()
        })
    })();
    run_init(launch, ch, before)
}

/// Run stage 2 unless `before` failed; report an error to the runtime and exit.
fn run_init(launch: Launch<'_>, ch: &Channel, before: R<()>) -> ! {
    let e = match before.and_then(|()| stage2(launch, ch)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if ch.send(&Message::Error(e.clone())).is_err() {
        // The runtime is gone (after `create` returned): say it where the container's output
        // goes.
        eprintln!("peapod init: {e}");
    }
    sys::exit_now(127)
}

fn write_oom_score_adj(process: &Process) -> R<()> {
    if let Some(adj) = process.oom_score_adj() {
        ctx(
            std::fs::write("/proc/self/oom_score_adj", adj.to_string()),
            || "write /proc/self/oom_score_adj".into(),
        )?;
    }
    Ok(())
}

/// One namespace step of stage 1, in [`ns_steps`]' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsStep {
    /// `setns` into `joins[i]`.
    Join(usize),
    /// `unshare(CLONE_NEWUSER)`, then the runtime writes the id maps.
    UnshareUser,
    /// `setresgid`/`setresuid` 0 in the container's user namespace.
    BecomeRoot,
    /// `unshare` of the other new namespaces (the empty set is a no-op).
    Unshare(CloneFlags),
}

/// What stage 1 does with namespaces, in order: join the given ones in the order given (the
/// plan puts user first, as the others are owned by it, and mount last); create the user
/// namespace, then become root in the container's user namespace, new or joined (as runc's
/// nsexec: the host ids this process still holds are unmapped there, and files it creates in
/// filesystems the namespace owns, the container's /dev tmpfs, would fail with EOVERFLOW);
/// then create the others, owned by that user namespace.
fn ns_steps(joins: &[CloneFlags], new_user: bool, unshare: CloneFlags) -> Vec<NsStep> {
    let mut steps: Vec<NsStep> = (0..joins.len()).map(NsStep::Join).collect();
    if new_user {
        steps.push(NsStep::UnshareUser);
    }
    if new_user || joins.contains(&CloneFlags::CLONE_NEWUSER) {
        steps.push(NsStep::BecomeRoot);
    }
    steps.push(NsStep::Unshare(unshare));
    steps
}

/// Whether the container has a mount namespace, new or joined: without one the init
/// mounts nothing and only `chroot`s into the rootfs.
fn has_mount_ns(unshare: CloneFlags, joins: &[CloneFlags]) -> bool {
    unshare.contains(CloneFlags::CLONE_NEWNS) || joins.contains(&CloneFlags::CLONE_NEWNS)
}

fn ns_name(k: CloneFlags) -> &'static str {
    match k {
        CloneFlags::CLONE_NEWUSER => "user",
        CloneFlags::CLONE_NEWNS => "mount",
        CloneFlags::CLONE_NEWPID => "pid",
        CloneFlags::CLONE_NEWNET => "network",
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWCGROUP => "cgroup",
        _ => "time",
    }
}

enum Never {}

/// Stage 2, the container init (or the exec'd process): filesystem, identity, exec.
fn stage2(mut launch: Launch<'_>, ch: &Channel) -> R<Never> {
    let _ = nix::sys::prctl::set_name(c"peapod:[2:INIT]");
    if let Some(stdio) = launch.stdio.take() {
        for (target, fd) in stdio.iter().enumerate() {
            ctx(sys::dup2(fd.as_raw_fd(), target as i32), || {
                "set up stdio".into()
            })?;
        }
        for fd in stdio {
            // An fd that already is stdio stays; the others were copied onto 0..2.
            if fd.as_raw_fd() <= 2 {
                let _ = fd.into_raw_fd();
            }
        }
    }
    // Read before the joins are closed: whether the container has a mount namespace (new or
    // joined); without one the init only chroots into the rootfs and mounts nothing.
    let joined: Vec<CloneFlags> = launch.joins.iter().map(|(k, _)| *k).collect();
    let mount_ns = has_mount_ns(launch.unshare, &joined);
    if let Some(root) = launch.enter_root.take() {
        ctx(nix::unistd::fchdir(&root), || {
            "enter the container's root (/proc/PID/root of its init)".into()
        })?;
        ctx(nix::unistd::chroot("."), || {
            "chroot to the container's root".into()
        })?;
    }
    close_runtime_fds(&mut launch, ch)?;
    if matches!(launch.mode, Mode::Exec) {
        // Until the runtime has reaped stage 1, its zombie still counts in the container's
        // pids.max: wait, so the process never runs with one task less than the limit.
        ch.expect(Message::Go, "go after stage 1")
            .map_err(|e| e.to_string())?;
    }
    ctx(nix::unistd::setsid(), || "setsid".into())?;
    let spec = launch.spec;
    let process = launch.process;
    let mut console_slave: Option<OwnedFd> = None;
    let idmap_trees = match &mut launch.mode {
        Mode::Create { idmap_trees, .. } => std::mem::take(idmap_trees),
        Mode::Exec => Vec::new(),
    };
    // Without a mount namespace the rootfs has no /proc of the container's: the start fifo is
    // reopened through the runtime's, held from before the chroot until `start`.
    let mut host_proc: Option<OwnedFd> = None;
    match &launch.mode {
        Mode::Create {
            rootfs: root,
            bundle,
            no_pivot,
            cgroup_sources,
            runtime_hooks,
            state_json,
            ..
        } => {
            ctx(std::env::set_current_dir(bundle), || {
                format!("chdir `{}`", bundle.display())
            })?;
            if launch.unshare.contains(CloneFlags::CLONE_NEWNET) {
                ctx(sys::set_loopback_up(), || {
                    "bring up lo in the new network namespace".into()
                })?;
            }
            if mount_ns {
                rootfs::prepare(spec, root, bundle, cgroup_sources, idmap_trees)
                    .map_err(|e| e.to_string())?;
            }
            if *runtime_hooks {
                ch.send(&Message::RunCreateRuntimeHooks)
                    .map_err(|e| e.to_string())?;
                ch.expect(Message::HooksDone, "hooks done")
                    .map_err(|e| e.to_string())?;
            }
            let h = spec.hooks().as_ref();
            hooks::run_at(
                "createContainer",
                h.and_then(|h| h.create_container().as_ref()),
                state_json,
                hooks::Site::Init {
                    env: &[],
                    cwd: Some(root.as_path()),
                },
            )
            .map_err(|e| e.to_string())?;
            if mount_ns {
                rootfs::pivot(spec, root, *no_pivot).map_err(|e| e.to_string())?;
            } else {
                host_proc = Some(open_proc()?);
                rootfs::chroot_only(root).map_err(|e| e.to_string())?;
            }
            if process.terminal().unwrap_or(false) {
                console_slave = Some(setup_console(&launch, true)?);
            }
            rootfs::set_names_and_sysctls(spec).map_err(|e| e.to_string())?;
            // Last: readonlyPaths make /proc/sys read-only, so sysctls go first (runc's order).
            // Without a mount namespace there is nothing to finish (validate refused it all).
            if mount_ns {
                rootfs::finish(spec).map_err(|e| e.to_string())?;
            }
        }
        Mode::Exec => {
            if process.terminal().unwrap_or(false) {
                console_slave = Some(setup_console(&launch, false)?);
            }
        }
    }
    if let Some(slave) = console_slave {
        for fd in 0..3 {
            ctx(sys::dup2(slave.as_raw_fd(), fd), || "dup2 console".into())?;
        }
        ctx(sys::set_controlling_tty(0), || {
            "set controlling terminal".into()
        })?;
    }
    if !launch.no_new_keyring && matches!(launch.mode, Mode::Create { .. }) {
        join_session_keyring();
    }
    // Scheduling, io priority, memory policy, affinity and personality: while still
    // privileged and before seccomp, for the init and an exec'd process alike.
    let features = features::plan(spec, process, matches!(launch.mode, Mode::Exec))
        .map_err(|e| e.to_string())?;
    features::apply(&features)?;
    set_rlimits(process)?;
    if process.no_new_privileges().unwrap_or(false) {
        ctx(nix::sys::prctl::set_no_new_privs(), || {
            "set no_new_privs".into()
        })?;
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before the
    // capabilities are dropped. With it, load as late as possible (runc's order), but a filter
    // with a notify listener before `Ready`, while the runtime still reads the channel.
    if !nnp {
        load_seccomp(&launch, ch)?;
    }
    let chdir_later = chdir_before_user(process.cwd())?;
    set_identity(process)?;
    if chdir_later {
        let cwd = process.cwd();
        ctx(nix::unistd::chdir(cwd), || {
            format!("chdir to cwd `{}` set in config.json", cwd.display())
        })?;
    }
    verify_cwd()?;
    if let Some(mask) = process.user().umask() {
        nix::sys::stat::umask(FileMode::from_bits_truncate(mask as libc::mode_t));
    }
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(launch.extra_env.iter().cloned());
    set_home(&mut env, process.user().uid());
    let args = process.args().clone().unwrap_or_default();
    let exe = resolve_exe(args.first().map(String::as_str).unwrap_or(""), &env)?;
    let notify = launch.seccomp.as_ref().is_some_and(|f| f.notify());
    if nnp && notify {
        load_seccomp(&launch, ch)?;
    }
    if let Mode::Create {
        fifo, state_json, ..
    } = &launch.mode
    {
        ch.send(&Message::Ready).map_err(|e| e.to_string())?;
        // Wait for the runtime to record the container: if it dies first (killed `create`),
        // the channel closes and this init exits instead of waiting for a `start` that no
        // state would ever lead to.
        ch.expect(Message::Go, "state saved")
            .map_err(|e| e.to_string())?;
        wait_for_start(fifo, host_proc.take())?;
        let h = spec.hooks().as_ref();
        hooks::run_at(
            "startContainer",
            h.and_then(|h| h.start_container().as_ref()),
            state_json,
            hooks::Site::Init {
                env: &env,
                cwd: None,
            },
        )
        .map_err(|e| e.to_string())?;
    }
    if nnp && !notify {
        load_seccomp(&launch, ch)?;
    }
    prepare_fds(launch.preserve_fds)?;
    reset_signals()?;
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let cenv: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let err = nix::unistd::execve(&exe, &cargs, &cenv).unwrap_err();
    Err(format!("exec `{}`: {err}", exe.to_string_lossy()))
}

/// Load the seccomp filter, if any. With `SCMP_ACT_NOTIFY` rules, send the listener fd to the
/// runtime and wait until it has given it to the agent, then close it (runc's
/// `syncParentSeccomp`).
fn load_seccomp(launch: &Launch<'_>, ch: &Channel) -> R<()> {
    let Some(f) = &launch.seccomp else {
        return Ok(());
    };
    let Some(fd) = seccomp::load(f).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    ch.send_with_fd(&Message::SeccompFd, fd.as_raw_fd())
        .map_err(|e| format!("send the seccomp notify fd: {e}"))?;
    ch.expect(Message::SeccompFdDone, "seccomp fd handed to the agent")
        .map_err(|e| e.to_string())?;
    drop(fd);
    Ok(())
}

/// Before anything else the init closes every fd it does not need: the runtime's (the state
/// directory's lock, the log file) and whatever the caller leaked to the runtime, which a
/// process of the container could otherwise reach through `/proc/INIT/fd` before `start`
/// (GHSA-xr7r-f8xq-vfvv). It keeps the channel, `exec.fifo` (an O_PATH fd), the idmapped
/// mount trees (closed once attached), the console socket and the `--preserve-fds` range,
/// which the runtime checked is the caller's.
fn close_runtime_fds(launch: &mut Launch<'_>, ch: &Channel) -> R<()> {
    // The namespaces were joined by stage 1.
    launch.joins.clear();
    crate::logger::detach();
    let mut keep = vec![ch.raw()];
    if let Mode::Create {
        fifo, idmap_trees, ..
    } = &launch.mode
    {
        keep.push(fifo.as_raw_fd());
        // Attached by rootfs::prepare, which then closes them.
        keep.extend(idmap_trees.iter().map(|(_, t)| t.as_raw_fd()));
    }
    if let Some(c) = &launch.console {
        keep.push(c.as_raw_fd());
    }
    let preserved = 3..3 + launch.preserve_fds.min(super::MAX_PRESERVE_FDS) as i32;
    keep.extend(preserved);
    ctx(sys::close_fds_in_child(&keep), || {
        "close the runtime's fds".into()
    })
}

/// Block until `start` opens the fifo for reading, then signal it with one byte. `proc`: the
/// runtime's procfs (a container without a mount namespace), closed once the fifo is open.
fn wait_for_start(fifo: &OwnedFd, proc: Option<OwnedFd>) -> R<()> {
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let fd = match proc {
        Some(proc) => ctx(
            nix::fcntl::openat(
                &proc,
                format!("self/fd/{}", fifo.as_raw_fd()).as_str(),
                flags,
                FileMode::empty(),
            ),
            || "reopen exec.fifo through the runtime's /proc/self/fd".into(),
        )?,
        None => ctx(
            nix::fcntl::open(
                format!("/proc/self/fd/{}", fifo.as_raw_fd()).as_str(),
                flags,
                FileMode::empty(),
            ),
            || "reopen exec.fifo through /proc/self/fd (does the container mount /proc?)".into(),
        )?,
    };
    ctx(nix::unistd::write(&fd, b"0"), || "write exec.fifo".into())?;
    Ok(())
}

/// The runtime's `/proc`, checked to be procfs, for a container without a mount namespace.
fn open_proc() -> R<OwnedFd> {
    let fd = ctx(
        nix::fcntl::open(
            "/proc",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            FileMode::empty(),
        ),
        || "open /proc".into(),
    )?;
    let st = ctx(nix::sys::statfs::fstatfs(&fd), || "statfs /proc".into())?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err("/proc is not procfs: the start fifo is reopened through /proc/self/fd".into());
    }
    Ok(fd)
}

/// Open the pty from the container's own devpts (CVE-2025-52565), check both ends are real
/// pty devices, bind the slave at /dev/console for an init, and send the master to the
/// console socket.
fn setup_console(launch: &Launch<'_>, is_init: bool) -> R<OwnedFd> {
    let sock = launch
        .console
        .as_ref()
        .ok_or("process.terminal is true but no --console-socket was given")?;
    let master = ctx(
        nix::fcntl::open(
            "/dev/pts/ptmx",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            FileMode::empty(),
        ),
        || "open /dev/pts/ptmx (process.terminal needs a devpts mount at /dev/pts)".into(),
    )?;
    let st = ctx(nix::sys::stat::fstat(&master), || {
        "stat /dev/pts/ptmx".into()
    })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || nix::sys::stat::major(st.st_rdev) != 5 {
        return Err("/dev/pts/ptmx is not a pty multiplexer".into());
    }
    let n = ctx(sys::unlock_pty(master.as_raw_fd()), || "unlock pty".into())?;
    let slave_path = format!("/dev/pts/{n}");
    let slave = ctx(
        nix::fcntl::open(
            slave_path.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            FileMode::empty(),
        ),
        || format!("open `{slave_path}`"),
    )?;
    let st = ctx(nix::sys::stat::fstat(&slave), || {
        format!("stat `{slave_path}`")
    })?;
    let major = nix::sys::stat::major(st.st_rdev);
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || !(136..=143).contains(&major) {
        return Err(format!("`{slave_path}` is not a pty"));
    }
    if launch.proxy_console {
        let mut t = ctx(nix::sys::termios::tcgetattr(&slave), || {
            format!("read the mode of `{slave_path}`")
        })?;
        t.output_flags.remove(nix::sys::termios::OutputFlags::ONLCR);
        ctx(
            nix::sys::termios::tcsetattr(&slave, nix::sys::termios::SetArg::TCSANOW, &t),
            || format!("clear onlcr on `{slave_path}`"),
        )?;
    }
    if let Some(size) = launch.process.console_size() {
        let _ = sys::set_winsize(slave.as_raw_fd(), size.height() as u16, size.width() as u16);
    }
    if is_init {
        rootfs::bind_console(slave.as_fd()).map_err(|e| e.to_string())?;
    }
    ctx(send_fd(sock, "/dev/ptmx", master.as_raw_fd()), || {
        "send pty master to --console-socket".into()
    })?;
    Ok(slave)
}

/// A fresh session keyring, so containers do not share the host's (runc `--no-new-keyring`
/// turns this off). Best effort: keyrings can be disabled.
fn join_session_keyring() {
    if let Err(e) = sys::join_session_keyring() {
        log::debug!("join session keyring: {e}");
    }
}

fn set_rlimits(process: &Process) -> R<()> {
    for rl in process.rlimits().iter().flatten() {
        let res = crate::linux::rlimit_resource(&rl.typ());
        ctx(
            nix::sys::resource::setrlimit(res, rl.soft(), rl.hard()),
            || {
                format!(
                    "setrlimit {:?} soft {} hard {}",
                    rl.typ(),
                    rl.soft(),
                    rl.hard()
                )
            },
        )?;
    }
    Ok(())
}

fn cap_set(caps: Option<&oci_spec::runtime::Capabilities>) -> CapsHashSet {
    caps.into_iter()
        .flatten()
        .filter_map(crate::linux::to_caps)
        .collect()
}

/// Drop the bounding set, switch user (keeping capabilities across setuid), then set the
/// other four sets (runc `finalizeNamespace`). `exec --cap` CVE-2022-29162: inheritable is
/// exactly what the spec says, never more.
fn set_identity(process: &Process) -> R<()> {
    let user = process.user();
    let c: Option<&LinuxCapabilities> = process.capabilities().as_ref();
    let bounding = cap_set(c.and_then(|c| c.bounding().as_ref()));
    if c.is_some() {
        let all = ctx(caps::read(None, CapSet::Bounding), || {
            "read bounding set".into()
        })?;
        for cap in all.difference(&bounding) {
            ctx(caps::drop(None, CapSet::Bounding, *cap), || {
                format!("drop {cap} from the bounding set")
            })?;
        }
    }
    ctx(nix::sys::prctl::set_keepcaps(true), || {
        "set keepcaps".into()
    })?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is denied in a user namespace with setgroups=deny; only call it when needed.
    if !gids.is_empty()
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() != "deny")
            .unwrap_or(true)
    {
        ctx(nix::unistd::setgroups(&gids), || "setgroups".into())?;
    }
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    ctx(setresgid(gid, gid, gid), || format!("setgid {gid}"))?;
    ctx(setresuid(uid, uid, uid), || format!("setuid {uid}"))?;
    ctx(nix::sys::prctl::set_keepcaps(false), || {
        "clear keepcaps".into()
    })?;
    if let Some(c) = c {
        let eff = cap_set(c.effective().as_ref());
        let perm = cap_set(c.permitted().as_ref());
        let inh = cap_set(c.inheritable().as_ref());
        let amb = cap_set(c.ambient().as_ref());
        // Order matters: inheritable while CAP_SETPCAP is still effective, then effective
        // (which must stay a subset of permitted), then permitted.
        ctx(caps::set(None, CapSet::Inheritable, &inh), || {
            "set inheritable capabilities".into()
        })?;
        ctx(caps::set(None, CapSet::Effective, &eff), || {
            "set effective capabilities (is one missing from the permitted set?)".into()
        })?;
        ctx(caps::set(None, CapSet::Permitted, &perm), || {
            "set permitted capabilities (is one missing from the host's bounding set?)".into()
        })?;
        ctx(caps::clear(None, CapSet::Ambient), || {
            "clear ambient capabilities".into()
        })?;
        // The kernel only holds an ambient capability that is both permitted and
        // inheritable; runc skips the others (`runc spec` of runc 1.1 lists ambient caps
        // with an empty inheritable set, and its containers run with CapAmb 0).
        for cap in amb.iter().filter(|c| perm.contains(c) && inh.contains(c)) {
            ctx(caps::raise(None, CapSet::Ambient, *cap), || {
                format!("raise ambient {cap}")
            })?;
        }
    }
    Ok(())
}

/// runc's order: chdir to `cwd` while still root, so a directory only root may enter (`/root`
/// for a non-root user with the right capabilities) works; on EACCES/EPERM retry as the user
/// (a volume chowned to the container user that root cannot enter). True: retry later.
fn chdir_before_user(cwd: &Path) -> R<bool> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => Ok(false),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => Ok(true),
        Err(e) => Err(format!(
            "chdir to cwd `{}` set in config.json: {e}",
            cwd.display()
        )),
    }
}

/// `HOME` unset or empty: the user's home from the container's `/etc/passwd`, else `/`
/// (runc). Read after pivot_root, so the file is the container's; a line too long or a file
/// too large is not looked at.
fn set_home(env: &mut Vec<String>, uid: u32) {
    let pos = env.iter().position(|e| e.starts_with("HOME="));
    if pos.is_some_and(|i| env[i].len() > "HOME=".len()) {
        return;
    }
    let home = passwd_home(uid).unwrap_or_else(|| "/".to_string());
    let kv = format!("HOME={home}");
    match pos {
        Some(i) => env[i] = kv,
        None => env.push(kv),
    }
}

fn passwd_home(uid: u32) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    // O_NONBLOCK: an image's /etc/passwd that is a fifo must not block the init.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/etc/passwd")
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    f.take(1 << 20).read_to_string(&mut text).ok()?;
    home_of(&text, uid)
}

/// The home directory of `uid` in passwd(5) text.
fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty())
            .then(|| f[5].to_string())
    })
}

/// `getcwd` reports "(unreachable)" when the cwd lies outside the root: a leaked host
/// directory (CVE-2024-21626). Refuse to run there.
fn verify_cwd() -> R<()> {
    let cwd = ctx(nix::unistd::getcwd(), || {
        "getcwd (cwd is outside the container root?)".into()
    })?;
    if !cwd.is_absolute() {
        return Err(format!(
            "current working directory `{}` is outside the container root",
            cwd.display()
        ));
    }
    Ok(())
}

/// Find `name` the way execvp would, with the container's PATH, before `start`, so a
/// missing binary is a create-time error (as runc does). The messages are runc's (Go's
/// `exec.LookPath`): callers map "no such file or directory" and "executable file not found"
/// to exit code 127, "permission denied" to 126.
fn resolve_exe(name: &str, env: &[String]) -> R<CString> {
    if name.is_empty() {
        return Err("process.args must not be empty".into());
    }
    let executable =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    let found = if name.contains('/') {
        let p = Path::new(name);
        match std::fs::metadata(p) {
            Err(e) => {
                let why = e
                    .raw_os_error()
                    .map(|n| go_strerror(nix::errno::Errno::from_raw(n)))
                    .unwrap_or_else(|| e.to_string());
                return Err(format!("exec: \"{name}\": stat {name}: {why}"));
            }
            Ok(m) if m.is_dir() => return Err(format!("exec: \"{name}\": is a directory")),
            Ok(_) if !executable(p) => return Err(format!("exec: \"{name}\": permission denied")),
            Ok(_) => PathBuf::from(name),
        }
    } else {
        let path = env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| executable(p))
            .ok_or_else(|| format!("exec: \"{name}\": executable file not found in $PATH"))?
    };
    CString::new(found.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())
}

/// An errno as Go spells it (lowercase first letter: "no such file or directory").
fn go_strerror(e: nix::errno::Errno) -> String {
    let d = e.desc();
    let mut c = d.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => d.to_string(),
    }
}

/// The process starts with no blocked signals and default dispositions: the runtime blocks
/// signals to forward them, and Rust's runtime ignores SIGPIPE, neither of which the
/// container should inherit.
fn reset_signals() -> R<()> {
    ctx(nix::sys::signal::SigSet::empty().thread_set_mask(), || {
        "reset the signal mask".into()
    })?;
    ctx(sys::reset_signal_dispositions(), || {
        "reset signal dispositions".into()
    })
}

/// Every fd the runtime holds is close-on-exec; the preserved ones (3..3+N) are not. `preserve`
/// is at most `MAX_PRESERVE_FDS` (checked by the runtime), so the range fits an fd number.
fn prepare_fds(preserve: u32) -> R<()> {
    let end = 3 + preserve.min(super::MAX_PRESERVE_FDS) as i32;
    ctx(sys::cloexec_from(end), || "mark fds close-on-exec".into())?;
    for fd in 3..end {
        ctx(sys::clear_cloexec(fd), || format!("preserve fd {fd}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{home_of, set_home};

    #[test]
    fn home_comes_from_passwd_when_unset_or_empty() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
        assert_eq!(home_of(pw, 65534).as_deref(), Some("/nonexistent"));
        assert_eq!(home_of(pw, 1000), None);
        let mut env = vec!["HOME=".to_string(), "A=1".to_string()];
        set_home(&mut env, 4242);
        assert_eq!(env, ["HOME=/", "A=1"]);
        let mut env = vec!["HOME=/x".to_string()];
        set_home(&mut env, 0);
        assert_eq!(env, ["HOME=/x"]);
    }
}

#[cfg(test)]
#[path = "init_ns_tests.rs"]
mod ns_tests;
