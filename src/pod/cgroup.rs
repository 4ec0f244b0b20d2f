//! The pod cgroup, `/peapod/pod-<key>/`, as one unit: the supervisor's leaf
//! ([`SUPERVISOR_CGROUP`]), the sandbox's ([`super::sandbox::SANDBOX_ID`]) and one per
//! container. Everything a pod runs lives below it, so killing it ends the pod whatever its
//! state directory says (a killed `pod run`, a wiped `--root`), and nothing else is ever killed:
//! the key comes from the runtime root and the pod name (see [`PodPaths`]), and only peapod
//! creates cgroups below `/peapod`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::PodError;
use super::sandbox::{PodPaths, SUPERVISOR_CGROUP};
use crate::cgroups::{self, CgroupManager};

/// How long [`PodCgroup::destroy`] keeps trying while nothing changes (processes in
/// uninterruptible sleep); as long as processes keep leaving it goes on, whatever their number.
const STALL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PodCgroup {
    path: String,
    name: String,
}

impl PodCgroup {
    pub fn of(paths: &PodPaths) -> PodCgroup {
        PodCgroup {
            path: paths.cgroup.clone(),
            name: paths.name.clone(),
        }
    }

    /// `/peapod/pod-<key>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn manager(&self, child: Option<&str>) -> Result<Box<dyn CgroupManager>, PodError> {
        let path = match child {
            Some(c) => format!("{}/{c}", self.path),
            None => self.path.clone(),
        };
        Ok(cgroups::manager(Some(&path), &self.name)?)
    }

    /// The supervisor's leaf, created (with the pod cgroup) for the supervisor to join
    /// before it does anything.
    pub fn create_supervisor_leaf(&self) -> Result<Box<dyn CgroupManager>, PodError> {
        let m = self.manager(Some(SUPERVISOR_CGROUP))?;
        cgroups::create_with_retry(|| m.create())?;
        Ok(m)
    }

    pub fn exists(&self) -> bool {
        self.manager(None).is_ok_and(|m| m.exists())
    }

    /// Every process of the pod (supervisor, sandbox, containers, probes).
    pub fn pids(&self) -> Vec<i32> {
        self.manager(None)
            .and_then(|m| Ok(m.pids()?))
            .unwrap_or_default()
    }

    /// Names of the child cgroups, in any hierarchy.
    fn children(&self) -> BTreeSet<String> {
        let Ok(m) = self.manager(None) else {
            return BTreeSet::new();
        };
        m.mount_sources()
            .iter()
            .filter_map(|(_, dir)| std::fs::read_dir(dir).ok())
            .flat_map(|rd| rd.flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    }

    /// SIGKILL every process below the pod cgroup and remove the whole tree. Keeps killing and
    /// removing while processes leave (a pod of any size finishes); fails naming what is left
    /// only when nothing changed for [`STALL`].
    pub fn destroy(&self) -> Result<(), PodError> {
        let m = self.manager(None)?;
        let mut left = usize::MAX;
        let mut progress = Instant::now();
        loop {
            if !m.exists() {
                return Ok(());
            }
            let pids = m.pids().unwrap_or_default();
            if !pids.is_empty() {
                if let Err(e) = m.kill_all(libc::SIGKILL) {
                    log::warn!("kill the processes of pod cgroup `{}`: {e}", self.path);
                }
                // A v1 freezer left frozen (a `pod rm` or `delete` killed between freeze and
                // thaw) holds SIGKILL back: thaw the pod and every container.
                self.thaw_all(m.as_ref());
            }
            let err = match m.remove() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let now_left = m.pids().map(|p| p.len()).unwrap_or(0);
            if now_left < left {
                left = now_left;
                progress = Instant::now();
            }
            if progress.elapsed() > STALL {
                let pids = m.pids().unwrap_or_default();
                return Err(PodError::Invalid(format!(
                    "pod `{}`: cgroup `{}` is still there with {} process(es) {:?} after SIGKILL: {err}",
                    self.name,
                    self.path,
                    pids.len(),
                    pids
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn thaw_all(&self, m: &dyn CgroupManager) {
        if m.is_frozen().unwrap_or(false) {
            let _ = m.thaw();
        }
        for child in self.children() {
            if let Ok(c) = self.manager(Some(&child))
                && c.is_frozen().unwrap_or(false)
            {
                let _ = c.thaw();
            }
        }
    }

    /// The supervisor's teardown: kill and remove every child cgroup but its own leaf (it
    /// cannot remove the cgroup it runs in; `pod rm` removes the rest).
    pub fn destroy_children_but_supervisor(&self) {
        for child in self.children() {
            if child == SUPERVISOR_CGROUP {
                continue;
            }
            let done = self.manager(Some(&child)).and_then(|m| {
                m.kill_all(libc::SIGKILL)?;
                Ok(m.remove()?)
            });
            if let Err(e) = done {
                log::warn!("teardown: cgroup `{}/{child}`: {e}", self.path);
            }
        }
    }
}
