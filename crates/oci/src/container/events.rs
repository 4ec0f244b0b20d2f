//! `events`: runc's event lines (`{"type":"stats","id":...,"data":{...}}`,
//! `{"type":"oom","id":...}`) and the OOM notification they come from: on cgroup v1 an eventfd
//! registered for `memory.oom_control` in `cgroup.event_control`, on v2 an inotify watch of
//! `memory.events` whose `oom_kill` count grew.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::Serialize;

use super::{Container, ContainerError, Status};
use crate::cgroups::{CgroupManager, stats::Stats};

/// One event line, fields in runc's order; `data` is omitted when there is none (`oom`).
#[derive(Debug, Serialize)]
pub struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

/// runc's Intel RDT statistics object: peapod has no Intel RDT (`linux.intelRdt` is refused at
/// create), so it is empty, as runc prints it for a container without RDT.
#[derive(Debug, Default, Serialize)]
pub struct IntelRdt {}

/// The `data` of a stats event: the cgroup statistics, then runc's two other members.
#[derive(Debug, Serialize)]
pub struct StatsData {
    #[serde(flatten)]
    pub cgroup: Stats,
    pub intel_rdt: IntelRdt,
    /// runc 1.x declares the field and never fills it: always `null`.
    pub network_interfaces: Option<Vec<()>>,
}

/// The stats event of container `id`.
pub fn stats_event(id: &str, cgroup: Stats) -> Event<'_, StatsData> {
    Event {
        kind: "stats",
        id,
        data: Some(StatsData {
            cgroup,
            intel_rdt: IntelRdt {},
            network_interfaces: None,
        }),
    }
}

/// The OOM event of container `id`.
pub fn oom_event(id: &str) -> Event<'_, ()> {
    Event {
        kind: "oom",
        id,
        data: None,
    }
}

/// Readiness of OOM notifications: poll [`OomNotifier::fd`], then call
/// [`OomNotifier::take`].
pub enum OomNotifier {
    /// v1: the eventfd the kernel signals on every OOM of the cgroup (the `memory.oom_control`
    /// file stays open: the registration lasts as long as both fds).
    V1 { efd: EventFd, _control: File },
    /// v2: inotify on `memory.events`, and the `oom_kill` count last seen.
    V2 {
        inotify: Inotify,
        events: PathBuf,
        seen: u64,
    },
}

fn io(op: &'static str, path: &Path, err: impl Into<std::io::Error>) -> ContainerError {
    ContainerError::io(op, path, err.into())
}

impl OomNotifier {
    /// Register for the OOM events of `cg`; `None` when it has no memory controller.
    pub fn new(cg: &dyn CgroupManager) -> Result<Option<OomNotifier>, ContainerError> {
        if let Some(events) = cg.oom_watch_path() {
            if !events.exists() {
                return Ok(None);
            }
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                .map_err(|e| io("inotify_init", &events, e))?;
            inotify
                .add_watch(&events, AddWatchFlags::IN_MODIFY)
                .map_err(|e| io("watch", &events, e))?;
            // Read after the watch exists: an OOM between the two is not lost.
            let seen = cg.oom_kill_count().unwrap_or(0);
            return Ok(Some(OomNotifier::V2 {
                inotify,
                events,
                seen,
            }));
        }
        let Some(dir) = cg
            .leaf_dirs()
            .into_iter()
            .find(|d| d.join("memory.oom_control").exists())
        else {
            return Ok(None);
        };
        let oom_control = dir.join("memory.oom_control");
        let control = File::open(&oom_control).map_err(|e| io("open", &oom_control, e))?;
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| io("eventfd for", &oom_control, e))?;
        let event_control = dir.join("cgroup.event_control");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&event_control)
            .and_then(|mut f| {
                f.write_all(format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()).as_bytes())
            })
            .map_err(|e| io("register the OOM eventfd in", &event_control, e))?;
        Ok(Some(OomNotifier::V1 {
            efd,
            _control: control,
        }))
    }

    /// The fd that becomes readable when an OOM may have happened.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            OomNotifier::V1 { efd, .. } => efd.as_fd(),
            OomNotifier::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// How many OOM events happened since the last call (0 when the wake-up was for
    /// something else, such as another counter of `memory.events`).
    pub fn take(&mut self, cg: &dyn CgroupManager) -> Result<u64, ContainerError> {
        match self {
            OomNotifier::V1 { efd, .. } => match efd.read() {
                Ok(n) => Ok(n),
                Err(nix::errno::Errno::EAGAIN) => Ok(0),
                Err(e) => Err(io("read the OOM eventfd", Path::new("eventfd"), e)),
            },
            OomNotifier::V2 {
                inotify,
                events,
                seen,
            } => {
                // Drain the queue; the count itself says whether an OOM kill happened.
                loop {
                    match inotify.read_events() {
                        Ok(ev) if !ev.is_empty() => continue,
                        Ok(_) | Err(nix::errno::Errno::EAGAIN) => break,
                        Err(e) => return Err(io("read inotify events of", events, e)),
                    }
                }
                let now = cg.oom_kill_count()?;
                let new = now.saturating_sub(*seen);
                *seen = now;
                Ok(new)
            }
        }
    }
}

/// Whether `events` should keep streaming for the container (runc streams until killed;
/// peapod stops when the container has stopped, see the README).
pub fn still_running(c: &Container) -> bool {
    c.status() != Status::Stopped
}
