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
    pub preserve_fds: i32,
    /// A connected console socket made by the caller (foreground `run` with a terminal).
    pub console_fd: Option<OwnedFd>,
    /// stdin, stdout and stderr of the container process instead of the caller's own.
    pub stdio: Option<[OwnedFd; 3]>,
}

/// Everything made so far, undone in reverse on failure.
struct Undo<'a> {
    dir: Option<&'a StateDir>,
    cgroup: Option<Box<dyn CgroupManager>>,
    pids: Vec<Pid>,
}

impl Undo<'_> {
    fn run(mut self) {
        for p in self.pids.drain(..) {
            let _ = kill(p, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.kill_all(libc::SIGKILL);
            if let Err(e) = cg.remove() {
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

/// `LISTEN_FDS` socket activation passes through like `--preserve-fds` (runc does the same).
pub fn listen_fds() -> (i32, Vec<String>) {
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        Some(n) if n > 0 => (n, vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()]),
        _ => (0, Vec::new()),
    }
}

/// Create the container `id` from `opts.bundle`; on success init waits for `start`.
pub fn create(root: &Path, id: &str, mut opts: CreateOpts) -> Result<State, ContainerError> {
    let dir = StateDir::new(root, id)?;
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| ContainerError::io("open bundle", &opts.bundle, e))?;
    let spec = spec::load(&bundle)?;
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
    let process = spec.process().as_ref().expect("validated");
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile(s)?),
        None => None,
    };
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
    let (listen, extra_env) = listen_fds();
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup = cgroups::manager(cgroups_path.as_deref(), id)?;

    dir.create()?;
    let _lock = dir.lock()?;
    let mut undo = Undo {
        dir: Some(&dir),
        cgroup: None,
        pids: Vec::new(),
    };
    let result = (|| {
        cgroups::create_with_retry(|| cgroup.create())?;
        undo.cgroup = Some(cgroups::manager(Some(cgroup.path()), id)?);
        let spec_json =
            serde_json::to_vec(&spec).map_err(|e| ContainerError::Other(e.to_string()))?;
        dir.write_atomic(CONFIG_FILE, &spec_json)?;
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
        let mut st = State {
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            owner: "root".to_string(),
            annotations: spec
                .annotations()
                .clone()
                .map(|a| a.into_iter().collect::<BTreeMap<_, _>>())
                .unwrap_or_default(),
            cgroup_path: cgroup.path().to_string(),
            private_pid_ns: ns.private_pid,
        };
        let hooks = spec.hooks().as_ref();
        #[allow(deprecated)]
        let runtime_hooks = hooks.is_some_and(|h| {
            h.prestart().as_ref().is_some_and(|v| !v.is_empty())
                || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
        });
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
            },
            joins,
            unshare: ns.unshare,
            new_user: ns.new_user,
            time_offsets: spec::time_offsets(&spec),
            seccomp,
            preserve_fds: opts.preserve_fds + listen,
            no_new_keyring: opts.no_new_keyring,
            console,
            proxy_console,
            extra_env,
            stdio: opts.stdio.take(),
        };
        let spawned = spawn(launch)?;
        undo.pids.push(spawned.stage1);
        // Processes enter the cgroup before they can run anything of the container.
        cgroup.add_task(spawned.stage1.as_raw())?;
        cgroup.apply(&resources(&spec))?;
        spawned.channel.send(&Message::Go)?;
        loop {
            match spawned.channel.recv()? {
                Message::WriteIdMaps => {
                    spawned.write_id_maps(&spec).map_err(|e| {
                        ContainerError::io(
                            "write id maps of",
                            Path::new(&format!("/proc/{}", spawned.stage1)),
                            e,
                        )
                    })?;
                    spawned.channel.send(&Message::IdMapsWritten)?;
                }
                Message::Pid(p) => {
                    undo.pids.push(Pid::from_raw(p));
                    spawned.reap_stage1();
                    st.pid = p;
                    st.pid_start_time = state::proc_stat(p).map(|(_, t)| t).unwrap_or(0);
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
                Message::Ready => break,
                other => {
                    return Err(ContainerError::Other(format!(
                        "unexpected message from init: {other:?}"
                    )));
                }
            }
        }
        dir.save(&st)?;
        if let Some(pf) = &opts.pid_file {
            state::write_atomic(pf, st.pid.to_string().as_bytes())?;
        }
        Ok(st)
    })();
    match result {
        Ok(st) => Ok(st),
        Err(e) => {
            undo.run();
            Err(e)
        }
    }
}
