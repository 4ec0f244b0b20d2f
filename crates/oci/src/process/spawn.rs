//! Fork the stages and drive them from the runtime side.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{Process, Spec};

use super::channel::{Channel, ChannelError, CreateMessages, Message};
use super::init;
use peapod_sys as sys;

/// What the init does besides exec: a new container (create) or a process joining one.
pub enum Mode {
    Create {
        rootfs: PathBuf,
        bundle: PathBuf,
        no_pivot: bool,
        /// O_PATH fd of `exec.fifo`, reopened for writing to wait for `start`.
        fifo: OwnedFd,
        /// Host directories for the container's cgroup mount.
        cgroup_sources: Vec<(String, PathBuf)>,
        /// Whether prestart/createRuntime hooks need a round trip before pivot_root.
        runtime_hooks: bool,
        /// State JSON for createContainer/startContainer hooks.
        state_json: Vec<u8>,
        /// Detached idmapped trees made on the host, by index in `mounts[]`: the init attaches
        /// them, then closes them.
        idmap_trees: Vec<(usize, OwnedFd)>,
    },
    Exec,
}

/// Everything the stages need, prepared and validated before the fork.
pub struct Launch<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub mode: Mode,
    /// Namespaces to join, opened before the fork, in join order.
    pub joins: Vec<(CloneFlags, OwnedFd)>,
    /// Namespaces to create (without CLONE_NEWUSER, which `new_user` covers).
    pub unshare: CloneFlags,
    pub new_user: bool,
    pub time_offsets: Vec<String>,
    /// With `SCMP_ACT_NOTIFY` rules, the init sends the listener fd to the runtime after
    /// loading it ([`Message::SeccompFd`]), which hands it to the seccomp agent.
    pub seccomp: Option<crate::seccomp::Filter>,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// Connected `--console-socket` when the process has a terminal.
    pub console: Option<OwnedFd>,
    /// The runtime itself proxies the terminal (foreground `run`/`exec`): the pty's ONLCR is
    /// cleared before the process runs, as runc clears it on the master it receives, so `\n`
    /// is not turned into `\r\n` by both the pty and the caller's terminal.
    pub proxy_console: bool,
    /// `exec` into a container without a mount namespace of its own: an `O_PATH` fd of the
    /// init's root (`/proc/PID/root`), entered with `chroot` before anything else.
    pub enter_root: Option<OwnedFd>,
    /// Extra environment (LISTEN_FDS).
    pub extra_env: Vec<String>,
    /// stdio for the process instead of the runtime's own (the pod supervisor's log pipes).
    pub stdio: Option<[OwnedFd; 3]>,
}

/// The runtime's handle on the forked stages.
pub struct Spawned {
    pub channel: Channel,
    /// The process forked: stage 1, or the init itself when [`init_clone_flags`] let it be
    /// cloned straight into its namespaces.
    pub first: Pid,
    /// `first` is the init (no stage 1).
    pub cloned_init: bool,
}

/// The namespaces to clone the init straight into, when stage 1 has nothing else to do: a
/// new container that joins no namespace and makes neither a user namespace (its id maps are
/// written between the unshare and the other namespaces) nor a time namespace (its offsets are
/// written before any process enters it). Only the PID namespace, which a process cannot enter
/// by `unshare`: the init makes the others itself after the runtime's `Go`, as stage 1 would,
/// so their creation (a network namespace takes milliseconds) overlaps the runtime's cgroup
/// set-up instead of holding up its clone, is charged to the container's cgroup, and a cgroup
/// namespace is rooted at the container's cgroup (where its maker is when it is made).
pub fn init_clone_flags(launch: &Launch<'_>) -> Option<CloneFlags> {
    let clonable = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    let direct = matches!(launch.mode, Mode::Create { .. })
        && launch.joins.is_empty()
        && !launch.new_user
        && launch.time_offsets.is_empty()
        && clonable.contains(launch.unshare);
    direct.then(|| launch.unshare & CloneFlags::CLONE_NEWPID)
}

/// Fork stage 1, or clone the init ([`init_clone_flags`]); it waits for [`Message::Go`] before
/// doing anything.
pub fn spawn(launch: Launch<'_>) -> Result<Spawned, ChannelError> {
    let (parent, child) = Channel::pair()?;
    let runtime = std::process::id();
    let clone_flags = init_clone_flags(&launch);
    let forked = match clone_flags {
        Some(flags) => {
            sys::fork_into(flags).map_err(|errno| ChannelError::Sys { op: "clone", errno })
        }
        None => sys::fork().map_err(|errno| ChannelError::Sys { op: "fork", errno }),
    };
    match forked? {
        ForkResult::Parent { child: pid } => {
            drop(child);
            Ok(Spawned {
                channel: parent,
                first: pid,
                cloned_init: clone_flags.is_some(),
            })
        }
        ForkResult::Child => {
            drop(parent);
            if clone_flags.is_some() {
                init::cloned_init(launch, &child)
            }
            let code = match init::stage1(launch, &child, runtime) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = child.send(&Message::Error(e));
                    1
                }
            };
            sys::exit_now(code)
        }
    }
}

impl Spawned {
    /// The messages of a create, in order; a cloned init is its own first `Pid`.
    pub fn create_messages(&self) -> CreateMessages {
        if self.cloned_init {
            CreateMessages::with_pid(self.first.as_raw())
        } else {
            CreateMessages::default()
        }
    }

    /// Reap stage 1 after it reported the init's pid; its pid, or `None` when there was no
    /// stage 1.
    pub fn reap_stage1(&self) -> Option<Pid> {
        if self.cloned_init {
            return None;
        }
        let _ = waitpid(self.first, None);
        Some(self.first)
    }

    /// Write the id maps of stage 1's new user namespace.
    pub fn write_id_maps(&self, spec: &Spec) -> std::io::Result<()> {
        let linux = spec.linux().as_ref();
        let fmt = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
            maps.into_iter()
                .flatten()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect()
        };
        let pid = self.first.as_raw();
        let uid = fmt(linux.and_then(|l| l.uid_mappings().as_ref()));
        let gid = fmt(linux.and_then(|l| l.gid_mappings().as_ref()));
        std::fs::write(format!("/proc/{pid}/uid_map"), uid)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(spec: &'a Spec, process: &'a Process, mode: Mode) -> Launch<'a> {
        Launch {
            spec,
            process,
            mode,
            joins: Vec::new(),
            unshare: CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWCGROUP,
            new_user: false,
            time_offsets: Vec::new(),
            seccomp: None,
            preserve_fds: 0,
            no_new_keyring: false,
            console: None,
            proxy_console: false,
            enter_root: None,
            extra_env: Vec::new(),
            stdio: None,
        }
    }

    fn create() -> Mode {
        Mode::Create {
            rootfs: PathBuf::from("/r"),
            bundle: PathBuf::from("/b"),
            no_pivot: false,
            fifo: std::fs::File::open("/dev/null").unwrap().into(),
            cgroup_sources: Vec::new(),
            runtime_hooks: false,
            state_json: Vec::new(),
            idmap_trees: Vec::new(),
        }
    }

    /// Stage 1 is skipped only where it would do nothing but unshare; the init is cloned into
    /// its PID namespace only and makes the others itself.
    #[test]
    fn the_init_is_cloned_straight_into_its_namespaces_only_when_nothing_else_is_needed() {
        let spec = Spec::default();
        let process = Process::default();
        let plain = launch(&spec, &process, create());
        assert_eq!(init_clone_flags(&plain), Some(CloneFlags::CLONE_NEWPID));
        let mut no_pid = launch(&spec, &process, create());
        no_pid.unshare = CloneFlags::CLONE_NEWNS;
        assert_eq!(init_clone_flags(&no_pid), Some(CloneFlags::empty()));
        let exec = launch(&spec, &process, Mode::Exec);
        assert_eq!(init_clone_flags(&exec), None);
        let mut joins = launch(&spec, &process, create());
        let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        joins.joins.push((CloneFlags::CLONE_NEWNET, fd));
        assert_eq!(init_clone_flags(&joins), None);
        let mut user = launch(&spec, &process, create());
        user.new_user = true;
        assert_eq!(init_clone_flags(&user), None);
        let mut time = launch(&spec, &process, create());
        time.time_offsets.push("monotonic 1 0".into());
        assert_eq!(init_clone_flags(&time), None);
        let mut time_ns = launch(&spec, &process, create());
        time_ns.unshare |= CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
        assert_eq!(init_clone_flags(&time_ns), None);
    }
}
