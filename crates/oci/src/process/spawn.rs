//! Fork the stages and drive them from the runtime side.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{Process, Spec};

use super::channel::{Channel, ChannelError, Message};
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
    pub stage1: Pid,
}

/// Fork stage 1; it waits for [`Message::Go`] before doing anything.
pub fn spawn(launch: Launch<'_>) -> Result<Spawned, ChannelError> {
    let (parent, child) = Channel::pair()?;
    let runtime = std::process::id();
    match sys::fork().map_err(|errno| ChannelError::Sys { op: "fork", errno })? {
        ForkResult::Parent { child: pid } => {
            drop(child);
            Ok(Spawned {
                channel: parent,
                stage1: pid,
            })
        }
        ForkResult::Child => {
            drop(parent);
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
    /// Reap stage 1 after it reported the init's pid.
    pub fn reap_stage1(&self) {
        let _ = waitpid(self.stage1, None);
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
        let pid = self.stage1.as_raw();
        let uid = fmt(linux.and_then(|l| l.uid_mappings().as_ref()));
        let gid = fmt(linux.and_then(|l| l.gid_mappings().as_ref()));
        std::fs::write(format!("/proc/{pid}/uid_map"), uid)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid)
    }
}
