//! `create`: validate everything, then build the container; on any failure remove all that
//! was made (init process, cgroup, state directory) before returning the error.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode as FileMode;
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources, Spec,
};

use super::state::{self, CONFIG_FILE, EXEC_FIFO, State, StateDir, Status};
use super::{ContainerError, spec};
use crate::cgroups::{self, CgroupManager};
use crate::hooks;
use crate::process::channel::Message;
use crate::process::{Launch, Mode, spawn};

/// Options of `create` (and `run`).
#[derive(Debug, Default)]
pub struct CreateOpts {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// A connected console socket made by the caller (foreground `run` with a terminal).
    pub console_fd: Option<OwnedFd>,
    /// stdin, stdout and stderr of the container process instead of the caller's own.
    pub stdio: Option<[OwnedFd; 3]>,
    /// `--pidfd-socket`: a unix socket that receives a pidfd of the container process.
    pub pidfd_socket: Option<PathBuf>,
    /// `<bundle>/config.json`, already read and parsed by the caller (`run` looks at
    /// `process.terminal` before it creates): not read a second time.
    pub config: Option<spec::Config>,
}

/// Everything made so far, undone in reverse on failure.
struct Undo<'a> {
    dir: Option<&'a StateDir>,
    /// The cgroup, with whether this create made its directory (then it is removed too).
    cgroup: Option<(Box<dyn CgroupManager>, bool)>,
    /// The owner mark written on the cgroup: its processes are killed only while it is there.
    token: String,
    pids: Vec<Pid>,
}

impl Undo<'_> {
    fn run(mut self) {
        for p in self.pids.drain(..) {
            let _ = kill(p, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
        }
        if let Some((cg, created)) = self.cgroup.take()
            && cg.owner().as_deref() == Some(self.token.as_str())
        {
            let _ = cg.kill_all(libc::SIGKILL);
            if created && let Err(e) = cg.remove() {
                log::warn!("cleanup after failed create: {e}");
            }
        }
        if let Some(d) = self.dir
            && let Err(e) = d.remove()
        {
            log::warn!("cleanup after failed create: {e}");
        }
    }
}

/// The owner mark of a container's cgroup: `<absolute root>/<id>@<created>`. It names the
/// container (so `delete -f` finds its default cgroup again after `--root` was wiped) and the
/// creation (so a later container with the same id and cgroupsPath is told apart).
pub fn owner_token(root: &Path, id: &str, created: &str) -> String {
    format!("{}@{created}", owner_prefix(root, id))
}

/// The part of [`owner_token`] that depends only on the root and the id.
pub fn owner_prefix(root: &Path, id: &str) -> String {
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    format!("{}/{id}", abs.display())
}

/// The device rules to apply: the spec's, an allow rule for each `linux.devices` node, and
/// the defaults every container gets (runc `AllowedDevices`). Without spec rules the start
/// is deny-all.
pub fn device_rules(spec: &Spec) -> Vec<LinuxDeviceCgroup> {
    let linux = spec.linux().as_ref();
    let deny_all = || {
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm".to_string())
            .build()
            .expect("all fields set")
    };
    let mut rules: Vec<LinuxDeviceCgroup> = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_else(|| vec![deny_all()]);
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(if d.typ() == LinuxDeviceType::B {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        }));
        r.set_major(Some(d.major()));
        r.set_minor(Some(d.minor()));
        r.set_access(Some("rwm".to_string()));
        rules.push(r);
    }
    rules.extend(cgroups::default_device_rules());
    rules
}

/// The resources to apply, with the default device rules.
pub fn resources(spec: &Spec) -> LinuxResources {
    let mut r = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    r.set_devices(Some(device_rules(spec)));
    r
}

fn open_ns(
    kind: nix::sched::CloneFlags,
    path: &Path,
) -> Result<(nix::sched::CloneFlags, OwnedFd), ContainerError> {
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, FileMode::empty())
        .map_err(|e| {
            ContainerError::BadConfig(format!("open namespace path `{}`: {e}", path.display()))
        })?;
    Ok((kind, fd))
}

/// The detached idmapped trees of `spec`'s idmapped mounts, by index in `mounts[]`, made on
/// the host before the container exists (runc's parent does the same for its init): for each
/// a user namespace with the mount's maps (or the joined one), `open_tree(OPEN_TREE_CLONE)` of
/// the source and `mount_setattr(MOUNT_ATTR_IDMAP)`. Nothing is attached anywhere: a tree
/// and its namespace go away with their last fd, so a failed create leaves nothing behind.
pub fn idmap_trees(spec: &Spec, bundle: &Path) -> Result<Vec<(usize, OwnedFd)>, ContainerError> {
    let plan = spec::idmapped_mounts(spec)?;
    let mut namespaces: Vec<(spec::IdmapUserns, OwnedFd)> = Vec::new();
    let mut trees = Vec::new();
    for m in plan {
        let src = bundle.join(&m.source);
        let at = match namespaces.iter().position(|(u, _)| *u == m.userns) {
            Some(at) => at,
            None => {
                let fd = match &m.userns {
                    spec::IdmapUserns::Maps { uid_map, gid_map } => {
                        peapod_sys::userns_with_maps(uid_map, gid_map).map_err(|e| {
                            ContainerError::io(
                                "create the user namespace of idmapped mount",
                                &src,
                                e,
                            )
                        })?
                    }
                    spec::IdmapUserns::Path(p) => {
                        open_ns(nix::sched::CloneFlags::CLONE_NEWUSER, p)?.1
                    }
                };
                namespaces.push((m.userns.clone(), fd));
                namespaces.len() - 1
            }
        };
        let tree = peapod_sys::open_tree_clone(&src, m.rbind)
            .map_err(|e| ContainerError::io("open_tree idmapped mount source", &src, e))?;
        peapod_sys::mount_setattr(
            std::os::fd::AsFd::as_fd(&tree),
            m.recursive,
            peapod_sys::mount_attr::IDMAP,
            0,
            Some(std::os::fd::AsFd::as_fd(&namespaces[at].1)),
        )
        .map_err(|e| ContainerError::io("set MOUNT_ATTR_IDMAP on", &src, e))?;
        trees.push((m.index, tree));
    }
    Ok(trees)
}

/// Connect to `--console-socket` for a process with a terminal.
pub fn connect_console(
    path: Option<&Path>,
    terminal: bool,
) -> Result<Option<OwnedFd>, ContainerError> {
    match (path, terminal) {
        (Some(p), true) => {
            let s = UnixStream::connect(p)
                .map_err(|e| ContainerError::io("connect console socket", p, e))?;
            Ok(Some(OwnedFd::from(s)))
        }
        (None, true) => Err(ContainerError::BadConfig(
            "process.terminal is true: pass --console-socket (or set terminal to false)".into(),
        )),
        (Some(_), false) => Err(ContainerError::BadConfig(
            "--console-socket was given but process.terminal is false".into(),
        )),
        (None, false) => Ok(None),
    }
}

/// Connect `--pidfd-socket` (runc 1.2+).
pub fn connect_pidfd_socket(path: Option<&Path>) -> Result<Option<UnixStream>, ContainerError> {
    path.map(|p| {
        UnixStream::connect(p).map_err(|e| ContainerError::io("connect pidfd socket", p, e))
    })
    .transpose()
}

/// Send a pidfd of `pid` over the `--pidfd-socket` connection, as runc does (an `SCM_RIGHTS`
/// message whose data is the name `pidfd`). The pidfd is opened while the process is our
/// child (not yet reaped), so it cannot name a recycled pid.
pub fn send_pidfd(sock: Option<&UnixStream>, pid: i32) -> Result<(), ContainerError> {
    let Some(sock) = sock else { return Ok(()) };
    let fd = peapod_sys::pidfd_open(pid)
        .map_err(|e| ContainerError::io("pidfd_open", Path::new(&format!("/proc/{pid}")), e))?;
    crate::process::channel::send_fd(sock, "pidfd", std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| ContainerError::Other(format!("send pidfd to --pidfd-socket: {e}")))
}

/// `LISTEN_FDS` socket activation passes through like `--preserve-fds` (runc does the same).
pub fn listen_fds() -> (u32, Vec<String>) {
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) if n > 0 && n <= crate::process::MAX_PRESERVE_FDS => {
            (n, vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()])
        }
        _ => (0, Vec::new()),
    }
}

/// `--preserve-fds` plus `LISTEN_FDS`, refused past [`crate::process::MAX_PRESERVE_FDS`] or
/// when one of the fds 3.. is not one the caller passed: a closed number would otherwise be
/// filled by an fd of the runtime's, which the container would receive. Checked before
/// anything is created.
pub fn preserved_fds(preserve: u32, listen: u32) -> Result<u32, ContainerError> {
    let n = preserve
        .checked_add(listen)
        .filter(|n| *n <= crate::process::MAX_PRESERVE_FDS)
        .ok_or_else(|| {
            ContainerError::BadConfig(format!(
                "--preserve-fds {preserve} plus LISTEN_FDS {listen} is more than {} fds",
                crate::process::MAX_PRESERVE_FDS
            ))
        })?;
    let last = 2 + n as i32;
    if let Some(fd) = (3..=last).find(|fd| !peapod_sys::is_inherited_fd(*fd)) {
        return Err(ContainerError::Other(format!(
            "--preserve-fds {preserve} (LISTEN_FDS {listen}): fd {fd} is not open in the caller; \
             pass fds 3 to {last} open"
        )));
    }
    Ok(n)
}

/// Create the container `id` from `opts.bundle`; on success init waits for `start`.
pub fn create(root: &Path, id: &str, mut opts: CreateOpts) -> Result<State, ContainerError> {
    let (listen, extra_env) = listen_fds();
    let preserve_fds = preserved_fds(opts.preserve_fds, listen)?;
    let dir = StateDir::new(root, id)?;
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| ContainerError::io("open bundle", &opts.bundle, e))?;
    let spec::Config { spec, json } = match opts.config.take() {
        Some(config) => config,
        None => spec::load_config(&bundle)?,
    };
    spec::validate(&spec)?;
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let rootfs_rel = bundle.join(&root_path);
    let rootfs = std::fs::canonicalize(&rootfs_rel)
        .map_err(|e| ContainerError::io("open root.path", &rootfs_rel, e))?;
    if !rootfs.is_dir() {
        return Err(ContainerError::BadConfig(format!(
            "root.path `{}` is not a directory",
            rootfs.display()
        )));
    }
    log::debug!(
        "create container {id}: bundle {}, rootfs {}",
        bundle.display(),
        rootfs.display()
    );
    let process = spec.process().as_ref().expect("validated");
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::build(s)?),
        None => None,
    };
    let listener = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(crate::seccomp::listener);
    let ns = spec::namespaces(&spec)?;
    let joins = ns
        .joins
        .iter()
        .map(|(k, p)| open_ns(*k, p))
        .collect::<Result<Vec<_>, _>>()?;
    let proxy_console = opts.console_fd.is_some();
    let console = match opts.console_fd.take() {
        Some(fd) => Some(fd),
        None => connect_console(
            opts.console_socket.as_deref(),
            process.terminal().unwrap_or(false),
        )?,
    };
    // Connected before anything exists: a bad socket path fails the create cleanly.
    let pidfd_sock = connect_pidfd_socket(opts.pidfd_socket.as_deref())?;
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup = cgroups::manager(cgroups_path.as_deref(), id)?;
    // The directory reserves the id (a duplicate fails here, whatever else is wrong).
    dir.create()?;
    // Nobody else can know the directory yet; the lock makes later verbs wait for the end.
    let lock = match dir.lock() {
        Ok(l) => l,
        Err(e) => {
            let _ = dir.remove();
            return Err(e);
        }
    };
    // runc's rules: a cgroupsPath that exists must be empty (peapod checks every hierarchy,
    // runc only the devices one on v1) and not frozen (the init could never run: `run -d`
    // would wait forever). peapod then never removes it, and kills in it only what it marked
    // as this container's.
    let preexisting = cgroup.exists();
    // An empty cgroup that another peapod container made and marked: that container's
    // `delete` will see its mark replaced and leave the directory, so this one removes it.
    let takes_over = preexisting && cgroup.owner().is_some();
    let refusal = if preexisting {
        match (cgroup.all_pids(), cgroup.is_frozen()) {
            (Ok(p), _) if !p.is_empty() => Some(ContainerError::CgroupNotEmpty(p.len())),
            (Err(e), _) | (_, Err(e)) => Some(e.into()),
            (Ok(_), Ok(true)) => Some(ContainerError::CgroupFrozen),
            (Ok(_), Ok(false)) => None,
        }
    } else {
        None
    };
    if let Some(e) = refusal.or(peapod_sys::interrupted().map(ContainerError::Interrupted)) {
        let _ = dir.remove();
        return Err(e);
    }
    let created = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let token = owner_token(root, id, &created);
    let mut undo = Undo {
        dir: Some(&dir),
        cgroup: None,
        token: token.clone(),
        pids: Vec::new(),
    };
    let result = (|| {
        let mut st = State {
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created,
            owner: "root".to_string(),
            annotations: spec
                .annotations()
                .clone()
                .map(|a| a.into_iter().collect::<BTreeMap<_, _>>())
                .unwrap_or_default(),
            cgroup_path: cgroup.path().to_string(),
            private_pid_ns: ns.private_pid,
            cgroup_owner: token.clone(),
            cgroup_created: !preexisting || takes_over,
            init_exe: None,
        };
        // First of all: a create killed from here on leaves a state (`creating`, pid 0) that
        // `list` shows and `delete -f` removes, cgroup included.
        dir.save(&st)?;
        log::debug!("state saved in {}", dir.path.display());
        cgroups::create_with_retry(|| cgroup.create())?;
        log::debug!("cgroup {} created", cgroup.path());
        let cg = cgroups::manager(Some(cgroup.path()), id)?;
        cg.claim(&token)?;
        undo.cgroup = Some((cg, !preexisting || takes_over));
        dir.write_atomic(CONFIG_FILE, &json)?;
        let fifo_path = dir.file(EXEC_FIFO);
        nix::unistd::mkfifo(&fifo_path, FileMode::from_bits_truncate(0o622))
            .map_err(|e| ContainerError::io("mkfifo", &fifo_path, e.into()))?;
        // mkfifo honours the umask: make sure a non-root container user can write it.
        std::fs::set_permissions(
            &fifo_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .map_err(|e| ContainerError::io("chmod", &fifo_path, e))?;
        let fifo = nix::fcntl::open(
            &fifo_path,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            FileMode::empty(),
        )
        .map_err(|e| ContainerError::io("open", &fifo_path, e.into()))?;
        let hooks = spec.hooks().as_ref();
        #[allow(deprecated)]
        let runtime_hooks = hooks.is_some_and(|h| {
            h.prestart().as_ref().is_some_and(|v| !v.is_empty())
                || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
        });
        let idmap_trees = idmap_trees(&spec, &bundle)?;
        let launch = Launch {
            spec: &spec,
            process,
            mode: Mode::Create {
                rootfs: rootfs.clone(),
                bundle: bundle.clone(),
                no_pivot: opts.no_pivot,
                fifo,
                cgroup_sources: cgroup.mount_sources(),
                runtime_hooks,
                state_json: serde_json::to_vec(&st.to_oci(Status::Creating)).unwrap_or_default(),
                idmap_trees,
            },
            joins,
            unshare: ns.unshare,
            new_user: ns.new_user,
            time_offsets: spec::time_offsets(&spec),
            enter_root: None,
            seccomp,
            preserve_fds,
            no_new_keyring: opts.no_new_keyring,
            console,
            proxy_console,
            extra_env,
            stdio: opts.stdio.take(),
        };
        let spawned = spawn(launch)?;
        let what = if spawned.cloned_init {
            "init"
        } else {
            "stage-1"
        };
        log::debug!("spawned {what} ({})", spawned.first);
        undo.pids.push(spawned.first);
        // Limits go on while the cgroup is still empty: a limit too low for stage 1 then kills
        // it at its next allocation, never halfway through a limit write. The pids limit waits
        // until the init exists and stage 1 is reaped (runc sets its limits once its init is
        // forked too): `pids.limit` 1 (or 0, which means 1) leaves no room for stage 1 to fork
        // the init.
        let mut all = resources(&spec);
        let pids_limit = all.pids().map(|p| {
            let mut only = LinuxResources::default();
            only.set_pids(Some(p));
            only
        });
        all.set_pids(None);
        // The systemd driver's scope exists only once its unit holds the process: limits then
        // follow the join.
        let early = cgroup.exists();
        if early {
            cgroup.apply(&all)?;
        }
        // Processes enter the cgroup before they can run anything of the container.
        cgroup.add_task(spawned.first.as_raw())?;
        if !early {
            cgroup.apply(&all)?;
        }
        crate::process::features::reset_affinity(spawned.first);
        if let Err(e) = spawned.channel.send(&Message::Go) {
            return Err(init_failure(e, cgroup.as_ref()));
        }
        let mut msgs = spawned.create_messages();
        loop {
            let msg = match msgs.next(|| spawned.channel.recv()) {
                Ok(m) => m,
                Err(e) => return Err(init_failure(e, cgroup.as_ref())),
            };
            log::debug!("read sync from init: {msg:?}");
            match msg {
                Message::WriteIdMaps => {
                    spawned.write_id_maps(&spec).map_err(|e| {
                        ContainerError::io(
                            "write id maps of",
                            Path::new(&format!("/proc/{}", spawned.first)),
                            e,
                        )
                    })?;
                    spawned.channel.send(&Message::IdMapsWritten)?;
                }
                Message::Pid(p) => {
                    // A reaped pid may be reused: undo must not kill it.
                    if let Some(stage1) = spawned.reap_stage1() {
                        undo.pids.retain(|q| *q != stage1);
                    }
                    if !undo.pids.contains(&Pid::from_raw(p)) {
                        undo.pids.push(Pid::from_raw(p));
                    }
                    if let Some(r) = &pids_limit {
                        cgroup.apply(r)?;
                    }
                    st.pid = p;
                    st.pid_start_time = state::proc_stat(p).map(|(_, t)| t).unwrap_or(0);
                    st.init_exe = state::exe_id(p);
                    // A create killed from here on leaves an init that `delete -f` finds.
                    dir.save(&st)?;
                    send_pidfd(pidfd_sock.as_ref(), p)?;
                }
                Message::RunCreateRuntimeHooks => {
                    let json = serde_json::to_vec(&st.to_oci(Status::Created)).unwrap_or_default();
                    #[allow(deprecated)]
                    hooks::run("prestart", hooks.and_then(|h| h.prestart().as_ref()), &json)?;
                    hooks::run(
                        "createRuntime",
                        hooks.and_then(|h| h.create_runtime().as_ref()),
                        &json,
                    )?;
                    spawned.channel.send(&Message::HooksDone)?;
                }
                Message::SeccompFd => {
                    super::seccomp_agent::hand_over(
                        &spawned.channel,
                        listener.as_ref(),
                        &st,
                        Status::Creating,
                        st.pid,
                    )?;
                }
                Message::Ready => break,
                other => {
                    return Err(ContainerError::Other(format!(
                        "unexpected message from init: {other:?}"
                    )));
                }
            }
        }
        if let Some(pf) = &opts.pid_file {
            state::write_pid_file(pf, st.pid)?;
        }
        if let Some(sig) = peapod_sys::interrupted() {
            return Err(ContainerError::Interrupted(sig));
        }
        // Only now may the init wait for `start`: until this message it exits as soon as the
        // runtime is gone, so a create killed at any point leaves no init blocked forever.
        spawned.channel.send(&Message::Go)?;
        log::debug!(
            "init {} created: it waits for start on the exec fifo",
            st.pid
        );
        Ok(st)
    })();
    let result = result.map_err(|e| match (e, peapod_sys::interrupted()) {
        (ContainerError::Channel(_), Some(sig)) => ContainerError::Interrupted(sig),
        (e, _) => e,
    });
    match result {
        Ok(st) => {
            drop(lock);
            Ok(st)
        }
        Err(e) => {
            undo.run();
            drop(lock);
            Err(e)
        }
    }
}

/// The channel to the init broke before it was ready: say why when the cause is known. An
/// init killed by the OOM killer (a memory limit too low for even the runtime's stages) gets
/// runc's words instead of a bare "exited".
fn init_failure(
    e: crate::process::channel::ChannelError,
    cg: &dyn CgroupManager,
) -> ContainerError {
    use crate::process::channel::ChannelError as E;
    use nix::errno::Errno;
    // A killed peer shows up as EOF, or as EPIPE/ECONNRESET when a message was in flight.
    let gone = matches!(
        e,
        E::Closed
            | E::Sys {
                errno: Errno::EPIPE | Errno::ECONNRESET,
                ..
            }
    );
    if gone && cg.oom_kill_count().is_ok_and(|n| n > 0) {
        return ContainerError::InitOomKilled;
    }
    e.into()
}
