//! cgroup v1 (legacy and hybrid hosts): one directory per mounted controller hierarchy.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use cgroups_rs::FreezerState;
use cgroups_rs::fs::Controller;
use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::devices::{DevicePermissions, DeviceType, DevicesController};
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources};

use super::devices::{self, ACC_MKNOD, ACC_READ, ACC_WRITE, DevKind};
use super::{
    Applier, CgroupError, CgroupManager, FREEZE_TIMEOUT, Result, Stats, apply_hugetlb_checks,
    apply_pids, apply_rdma, cg_io_error, flat_keyed_value, from_cg, prune_default_parent, read_opt,
    remove_tree, signal_each, stats, wait_until, write_procs,
};

const MEMORY_LIMIT: &str = "memory.limit_in_bytes";
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
const FREEZER_STATE: &str = "freezer.state";

/// A container cgroup on cgroup v1: `/peapod/<id>` below the mount point of every controller
/// (and of the `name=systemd` hierarchy), and on hybrid hosts in the unified hierarchy too.
#[derive(Debug, Clone)]
pub struct V1Manager {
    path: String,
    /// controller name → mount point of its hierarchy
    mounts: BTreeMap<String, PathBuf>,
    /// The cgroup2 mount of a hybrid host: the container is created, joined and removed there
    /// too (runc's placement), but no limit is written there and it is not mounted into the
    /// container (runc mounts only the v1 hierarchies).
    unified: Option<PathBuf>,
}

impl V1Manager {
    /// `controllers` maps controller names to hierarchy mount points (see
    /// [`super::Setup::Legacy`]); `cgroup_path` is an already resolved absolute cgroup path.
    pub fn new(controllers: BTreeMap<String, PathBuf>, cgroup_path: &str) -> Self {
        V1Manager {
            path: cgroup_path.to_string(),
            mounts: controllers,
            unified: None,
        }
    }

    /// Also place the cgroup in the hybrid host's unified hierarchy mounted at `mount`.
    pub fn with_unified(mut self, mount: PathBuf) -> Self {
        self.unified = Some(mount);
        self
    }

    /// This cgroup's directory in the unified hierarchy of a hybrid host.
    pub fn unified_dir(&self) -> Option<PathBuf> {
        self.unified
            .as_ref()
            .map(|m| m.join(self.path.trim_start_matches('/')))
    }

    /// The cgroup's directory in every hierarchy it is placed in: one per v1 hierarchy, then
    /// the unified one.
    fn all_dirs(&self) -> Vec<PathBuf> {
        self.hierarchies()
            .into_iter()
            .map(|(_, d)| d)
            .chain(self.unified_dir())
            .collect()
    }

    /// This cgroup's directory in the hierarchy of `controller`, if that controller is mounted.
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.mounts
            .get(controller)
            .map(|m| m.join(self.path.trim_start_matches('/')))
    }

    /// (directory, mount point) of a controller the spec needs.
    fn need(&self, controller: &str, field: &str) -> Result<(PathBuf, PathBuf)> {
        match (self.dir(controller), self.mounts.get(controller)) {
            (Some(dir), Some(mount)) => Ok((dir, mount.clone())),
            _ => Err(CgroupError::Unsupported {
                field: field.to_string(),
                reason: format!("no {controller} cgroup v1 controller is mounted"),
            }),
        }
    }

    /// One (mount point, directory) per hierarchy; co-mounted controllers share one.
    fn hierarchies(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut mounts: Vec<&PathBuf> = self.mounts.values().collect();
        mounts.sort();
        mounts.dedup();
        mounts
            .into_iter()
            .map(|m| (m.clone(), m.join(self.path.trim_start_matches('/'))))
            .collect()
    }

    /// The hierarchy whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Option<PathBuf> {
        ["freezer", "pids", "memory", "cpu"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.hierarchies().into_iter().next().map(|(_, d)| d))
    }

    fn apply_with(&self, r: &LinuxResources, a: &Applier) -> Result<()> {
        if let Some(cpu) = r.cpu() {
            self.apply_cpu(cpu, a)?;
        }
        if let Some(rules) = r.devices() {
            self.apply_devices(rules, a)?;
        }
        if let Some(memory) = r.memory() {
            self.apply_memory(memory, a)?;
        }
        if let Some(pids) = r.pids() {
            let (dir, mount) = self.need("pids", "linux.resources.pids.limit")?;
            apply_pids(
                &dir,
                PidController::new(dir.clone(), mount, false),
                pids.limit(),
                a,
            )?;
        }
        if let Some(blkio) = r.block_io() {
            self.apply_blkio(blkio, a)?;
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let field = format!("linux.resources.hugepageLimits[{i}]");
            apply_hugetlb_checks(h, &field)?;
            let (dir, mount) = self.need("hugetlb", &field)?;
            let ctl = HugeTlbController::new(dir.clone(), mount, false);
            let knob = format!("hugetlb.{}.limit_in_bytes", h.page_size());
            let limit = h.limit().max(0) as u64;
            a.cg(&dir, &knob, &field, limit, || {
                ctl.set_limit_in_bytes(h.page_size(), limit)
            })?;
        }
        if let Some(net) = r.network() {
            if let Some(id) = net.class_id() {
                let field = "linux.resources.network.classID";
                let (dir, _) = self.need("net_cls", field)?;
                a.raw(&dir, "net_cls.classid", field, &id.to_string())?;
            }
            for p in net.priorities().iter().flatten() {
                let field = "linux.resources.network.priorities";
                let (dir, _) = self.need("net_prio", field)?;
                a.raw(
                    &dir,
                    "net_prio.ifpriomap",
                    field,
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            let (dir, _) = self.need("rdma", "linux.resources.rdma")?;
            apply_rdma(&dir, rdma, a)?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.unified".to_string(),
                reason: "it needs cgroup v2, and this host uses cgroup v1 controllers".to_string(),
            });
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu, a: &Applier) -> Result<()> {
        let cpu = |field: &str| -> Result<(PathBuf, CpuController)> {
            let (dir, mount) = self.need("cpu", field)?;
            Ok((dir.clone(), CpuController::new(dir, mount, false)))
        };
        if let Some(shares) = c.shares().filter(|s| *s > 0) {
            let (dir, ctl) = cpu("linux.resources.cpu.shares")?;
            a.cg(
                &dir,
                "cpu.shares",
                "linux.resources.cpu.shares",
                shares,
                || ctl.set_shares(shares),
            )?;
        }
        // The kernel checks quota/period against the parent's bandwidth at every write, so one
        // order fails when lowering and the other when raising: like runc, the period first,
        // and when the kernel refuses it (EINVAL) while a quota follows, again after the quota.
        let quota = c.quota().filter(|q| *q != 0).map(|q| q.max(-1)); // negative: unlimited
        let mut period_again = None;
        if let Some(period) = c.period().filter(|p| *p > 0) {
            let (dir, ctl) = cpu("linux.resources.cpu.period")?;
            let write = move || {
                a.cg(
                    &dir,
                    "cpu.cfs_period_us",
                    "linux.resources.cpu.period",
                    period,
                    || ctl.set_cfs_period(period),
                )
            };
            if defer_on_einval(write(), quota.is_some())? {
                period_again = Some(write);
            }
        }
        if let Some(quota) = quota {
            let (dir, ctl) = cpu("linux.resources.cpu.quota")?;
            a.cg(
                &dir,
                "cpu.cfs_quota_us",
                "linux.resources.cpu.quota",
                quota,
                || ctl.set_cfs_quota(quota),
            )?;
        }
        if let Some(write) = period_again {
            write()?;
        }
        // burst after quota: the kernel caps it by the quota
        if let Some(burst) = c.burst() {
            let (dir, _) = cpu("linux.resources.cpu.burst")?;
            a.raw(
                &dir,
                "cpu.cfs_burst_us",
                "linux.resources.cpu.burst",
                &burst.to_string(),
            )?;
        }
        if let Some(idle) = c.idle() {
            let (dir, _) = cpu("linux.resources.cpu.idle")?;
            a.raw(
                &dir,
                "cpu.idle",
                "linux.resources.cpu.idle",
                &idle.to_string(),
            )?;
        }
        // The same for the realtime pair: runtime ≤ period, and both against the parent's.
        let runtime = c.realtime_runtime().filter(|r| *r != 0);
        let mut rt_period_again = None;
        if let Some(period) = c.realtime_period().filter(|p| *p > 0) {
            let field = "linux.resources.cpu.realtimePeriod";
            let (dir, ctl) = cpu(field)?;
            let write = move || {
                a.cg(&dir, "cpu.rt_period_us", field, period, || {
                    ctl.set_rt_period_us(period)
                })
            };
            if defer_on_einval(write(), runtime.is_some())? {
                rt_period_again = Some(write);
            }
        }
        if let Some(runtime) = runtime {
            let field = "linux.resources.cpu.realtimeRuntime";
            let (dir, ctl) = cpu(field)?;
            a.cg(&dir, "cpu.rt_runtime_us", field, runtime, || {
                ctl.set_rt_runtime(runtime)
            })?;
        }
        if let Some(write) = rt_period_again {
            write()?;
        }
        for (field, knob, value) in [
            ("linux.resources.cpu.cpus", "cpuset.cpus", c.cpus()),
            ("linux.resources.cpu.mems", "cpuset.mems", c.mems()),
        ] {
            let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let (dir, mount) = self.need("cpuset", field)?;
            let ctl = CpuSetController::new(dir.clone(), mount, false);
            a.cg(&dir, knob, field, value, || match knob {
                "cpuset.cpus" => ctl.set_cpus(value),
                _ => ctl.set_mems(value),
            })?;
        }
        Ok(())
    }

    #[allow(deprecated)] // LinuxMemory::kernel: still in the spec, ignored as by runc ≥ 1.2
    fn apply_memory(&self, m: &LinuxMemory, a: &Applier) -> Result<()> {
        if m.kernel().is_some_and(|k| k != 0) {
            log::warn!(
                "cgroups: linux.resources.memory.kernel is ignored (obsolete since Linux 5.4)"
            );
        }
        let field = |k: &str| format!("linux.resources.memory.{k}");
        let limit = m.limit().filter(|l| *l != 0);
        let mut swap = m.swap().filter(|s| *s != 0);
        let wanted = limit.is_some()
            || swap.is_some()
            || m.reservation().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if !wanted {
            return Ok(());
        }
        let (dir, mount) = self.need("memory", "linux.resources.memory")?;
        let mem = MemController::new(dir.clone(), mount, false);
        // Unlimited memory with swap unset means unlimited memory+swap (runc), where the kernel
        // accounts swap at all.
        if limit == Some(-1) && swap.is_none() && dir.join(MEMSW_LIMIT).exists() {
            swap = Some(-1);
        }
        if let (Some(l), Some(s)) = (limit, swap)
            && l > 0
            && s > 0
            && s < l
        {
            return Err(CgroupError::InvalidValue {
                field: field("swap"),
                reason: format!("memory+swap ({s}) is lower than the memory limit ({l})"),
            });
        }
        // The kernel keeps memory ≤ memory+swap at every step, so when the new memory+swap is
        // above the current memory limit it must be written first (runc does the same).
        let swap_first = match (limit, swap) {
            (Some(_), Some(-1)) => true,
            (Some(_), Some(s)) if !a.dry_run => {
                let current: i64 = read_opt(&dir, MEMORY_LIMIT)?
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(i64::MAX);
                current < s
            }
            _ => false,
        };
        let write_limit =
            |l: i64| a.cg(&dir, MEMORY_LIMIT, &field("limit"), l, || mem.set_limit(l));
        let write_swap = |s: i64| {
            a.cg(&dir, MEMSW_LIMIT, &field("swap"), s, || {
                mem.set_memswap_limit(s)
            })
        };
        if swap_first {
            swap.map(write_swap).transpose()?;
            limit.map(write_limit).transpose()?;
        } else {
            limit.map(write_limit).transpose()?;
            swap.map(write_swap).transpose()?;
        }
        if let Some(r) = m.reservation() {
            a.cg(
                &dir,
                "memory.soft_limit_in_bytes",
                &field("reservation"),
                r,
                || mem.set_soft_limit(r),
            )?;
        }
        if let Some(tcp) = m.kernel_tcp() {
            a.cg(
                &dir,
                "memory.kmem.tcp.limit_in_bytes",
                &field("kernelTCP"),
                tcp,
                || mem.set_tcp_limit(tcp),
            )?;
        }
        if let Some(swappiness) = m.swappiness() {
            if swappiness > 100 {
                return Err(CgroupError::InvalidValue {
                    field: field("swappiness"),
                    reason: format!("{swappiness} is not in 0..=100"),
                });
            }
            a.cg(
                &dir,
                "memory.swappiness",
                &field("swappiness"),
                swappiness,
                || mem.set_swappiness(swappiness),
            )?;
        }
        if m.disable_oom_killer() == Some(true) {
            a.cg(
                &dir,
                "memory.oom_control",
                &field("disableOOMKiller"),
                1,
                || mem.disable_oom_killer(),
            )?;
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo, a: &Applier) -> Result<()> {
        let lists = [
            (
                b.throttle_read_bps_device(),
                "throttleReadBpsDevice",
                "read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "throttleWriteBpsDevice",
                "write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "throttleReadIOPSDevice",
                "read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "throttleWriteIOPSDevice",
                "write_iops_device",
            ),
        ];
        let wanted = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || lists
                .iter()
                .any(|(l, _, _)| l.as_ref().is_some_and(|v| !v.is_empty()));
        if !wanted {
            return Ok(());
        }
        let (dir, mount) = self.need("blkio", "linux.resources.blockIO")?;
        let ctl = BlkIoController::new(dir.clone(), mount, false);
        // Without CFQ the weights live in the BFQ files, if BFQ is there at all.
        let bfq = !dir.join("blkio.weight").exists() && dir.join("blkio.bfq.weight").exists();
        if let Some(w) = b.weight() {
            let field = "linux.resources.blockIO.weight";
            if bfq {
                a.raw(&dir, "blkio.bfq.weight", field, &w.to_string())?;
            } else {
                a.cg(&dir, "blkio.weight", field, w, || ctl.set_weight(w.into()))?;
            }
        }
        if let Some(w) = b.leaf_weight() {
            let field = "linux.resources.blockIO.leafWeight";
            a.cg(&dir, "blkio.leaf_weight", field, w, || {
                ctl.set_leaf_weight(w.into())
            })?;
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let (major, minor) = device_numbers(
                d.major(),
                d.minor(),
                &format!("linux.resources.blockIO.weightDevice[{i}]"),
            )?;
            if let Some(w) = d.weight() {
                let field = format!("linux.resources.blockIO.weightDevice[{i}].weight");
                let value = format!("{major}:{minor} {w}");
                if bfq {
                    a.raw(&dir, "blkio.bfq.weight_device", &field, &value)?;
                } else {
                    a.cg(&dir, "blkio.weight_device", &field, &value, || {
                        ctl.set_weight_for_device(major, minor, w.into())
                    })?;
                }
            }
            if let Some(w) = d.leaf_weight() {
                let field = format!("linux.resources.blockIO.weightDevice[{i}].leafWeight");
                a.cg(
                    &dir,
                    "blkio.leaf_weight_device",
                    &field,
                    format!("{major}:{minor} {w}"),
                    || ctl.set_leaf_weight_for_device(major, minor, w.into()),
                )?;
            }
        }
        for (list, name, file) in lists {
            for (i, t) in list.iter().flatten().enumerate() {
                let field = format!("linux.resources.blockIO.{name}[{i}]");
                let (major, minor) = device_numbers(t.major(), t.minor(), &field)?;
                let knob = format!("blkio.throttle.{file}");
                let rate = t.rate();
                a.cg(
                    &dir,
                    &knob,
                    &field,
                    format!("{major}:{minor} {rate}"),
                    || match file {
                        "read_bps_device" => ctl.throttle_read_bps_for_device(major, minor, rate),
                        "write_bps_device" => ctl.throttle_write_bps_for_device(major, minor, rate),
                        "read_iops_device" => ctl.throttle_read_iops_for_device(major, minor, rate),
                        _ => ctl.throttle_write_iops_for_device(major, minor, rate),
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Deny everything, then replay the rules in order. The cgroup is briefly deny-all while an
    /// update is written (runc avoids that with a rule-diff emulator; peapod does not yet).
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup], a: &Applier) -> Result<()> {
        let field = "linux.resources.devices";
        let parsed = devices::parse_rules(rules)?;
        let (dir, mount) = self.need("devices", field)?;
        let ctl = DevicesController::new(dir.clone(), mount);
        for line in devices::v1_lines(&parsed) {
            let kind = match line.kind {
                None => DeviceType::All,
                Some(DevKind::Char) => DeviceType::Char,
                Some(DevKind::Block) => DeviceType::Block,
            };
            let perms: Vec<DevicePermissions> = [
                (ACC_READ, DevicePermissions::Read),
                (ACC_WRITE, DevicePermissions::Write),
                (ACC_MKNOD, DevicePermissions::MkNod),
            ]
            .into_iter()
            .filter(|(bit, _)| line.access & bit != 0)
            .map(|(_, p)| p)
            .collect();
            let major = line.major.map_or(-1, i64::from);
            let minor = line.minor.map_or(-1, i64::from);
            let knob = if line.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            a.cg(&dir, knob, field, line, || {
                if line.allow {
                    ctl.allow_device(kind, major, minor, &perms)
                } else {
                    ctl.deny_device(kind, major, minor, &perms)
                }
            })?;
        }
        Ok(())
    }

    fn freezer(&self, op: &str) -> Result<(PathBuf, FreezerController)> {
        let (dir, mount) = self.need("freezer", op)?;
        Ok((dir.clone(), FreezerController::new(dir, mount, false)))
    }
}

/// Whether a period write the kernel refused with EINVAL is to be retried after its partner
/// (quota or realtime runtime) was written: only when a partner follows. Other errors fail.
fn defer_on_einval(written: Result<()>, partner_follows: bool) -> Result<bool> {
    match written {
        Ok(()) => Ok(false),
        Err(CgroupError::Write { ref err, .. })
            if partner_follows && err.raw_os_error() == Some(libc::EINVAL) =>
        {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

fn device_numbers(major: i64, minor: i64, field: &str) -> Result<(u64, u64)> {
    match (u64::try_from(major), u64::try_from(minor)) {
        (Ok(major), Ok(minor)) => Ok((major, minor)),
        _ => Err(CgroupError::InvalidValue {
            field: field.to_string(),
            reason: format!("bad device number {major}:{minor}"),
        }),
    }
}

impl CgroupManager for V1Manager {
    fn path(&self) -> &str {
        &self.path
    }

    fn is_unified(&self) -> bool {
        false
    }

    fn exists(&self) -> bool {
        self.all_dirs().iter().any(|dir| dir.is_dir())
    }

    fn create(&self) -> Result<()> {
        for (mount, dir) in self.hierarchies() {
            let result = if self.mounts.get("cpuset") == Some(&mount) {
                // cgroups-rs copies cpuset.cpus/mems down from the nearest non-empty ancestor:
                // a task cannot join a cpuset cgroup whose cpus or mems are empty.
                CpuSetController::new(dir.clone(), mount, false)
                    .create()
                    .map_err(|e| CgroupError::Io {
                        op: "mkdir",
                        path: dir.clone(),
                        err: cg_io_error(e),
                    })
            } else {
                fs::create_dir_all(&dir).map_err(|source| CgroupError::Io {
                    op: "mkdir",
                    path: dir.clone(),
                    err: source,
                })
            };
            result?;
        }
        if let Some(dir) = self.unified_dir() {
            // No controller is enabled there (they are bound to v1), so a plain directory.
            fs::create_dir_all(&dir).map_err(|source| CgroupError::Io {
                op: "mkdir",
                path: dir.clone(),
                err: source,
            })?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        // Like runc, join every hierarchy (named and unified ones included), not only those
        // with limits, so the process is accounted and frozen as a whole and tools reading
        // any hierarchy find it.
        self.all_dirs()
            .iter()
            .try_for_each(|dir| write_procs(dir, pid))
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if !self.exists() {
            return Err(CgroupError::NotFound {
                op: "apply resources to",
                path: PathBuf::from(&self.path),
            });
        }
        self.apply_with(resources, &Applier { dry_run: true })?;
        self.apply_with(resources, &Applier { dry_run: false })
    }

    fn freeze(&self) -> Result<()> {
        let (dir, ctl) = self.freezer("pause (freezer)")?;
        ctl.freeze()
            .map_err(|e| from_cg(dir.join(FREEZER_STATE), "FROZEN".to_string(), e))?;
        let waited = wait_until("freeze", &dir, FREEZE_TIMEOUT, || {
            Ok(matches!(ctl.state(), Ok(FreezerState::Frozen)))
        });
        if waited.is_err() {
            // Do not leave a half-frozen container behind.
            let _ = ctl.thaw();
        }
        waited
    }

    fn thaw(&self) -> Result<()> {
        let (dir, ctl) = self.freezer("resume (freezer)")?;
        ctl.thaw()
            .map_err(|e| from_cg(dir.join(FREEZER_STATE), "THAWED".to_string(), e))
    }

    fn is_frozen(&self) -> Result<bool> {
        let Some(dir) = self.dir("freezer") else {
            return Ok(false);
        };
        Ok(read_opt(&dir, FREEZER_STATE)?.is_some_and(|s| s.trim() == "FROZEN"))
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // Every hierarchy: a process may have been moved in only one of them (by `exec
        // --cgroup`, or by another tool), and `kill --all`/`delete -f` must reach it too.
        self.all_pids()
    }

    fn kill_all(&self, sig: i32) -> Result<()> {
        // v1 has no cgroup.kill: always signal pid by pid
        signal_each(self, sig, self.dir("freezer").is_some_and(|d| d.is_dir()))
    }

    fn stats(&self) -> Result<Stats> {
        let dir = |c: &str| self.dir(c).filter(|d| d.is_dir());
        let mut s = Stats {
            cpu: stats::cpu_v1(dir("cpu").as_deref(), dir("cpuacct").as_deref())?,
            ..Default::default()
        };
        if let Some(d) = dir("cpuset") {
            s.cpuset = stats::cpuset_v1(&d)?;
        }
        if let Some(d) = dir("memory") {
            s.memory = stats::memory_v1(&d)?;
        }
        if let Some(d) = dir("pids") {
            s.pids = stats::pids(&d)?;
        }
        if let Some(d) = dir("blkio") {
            s.blkio = stats::blkio_v1(&d)?;
        }
        if let Some(d) = dir("hugetlb") {
            s.hugetlb = stats::hugetlb(&d, false)?;
        }
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let (dir, _) = self.need("memory", "oom kill count")?;
        flat_keyed_value(&dir, "memory.oom_control", "oom_kill")
    }

    fn oom_watch_path(&self) -> Option<PathBuf> {
        None
    }

    fn mount_sources(&self) -> Vec<(String, PathBuf)> {
        self.hierarchies()
            .into_iter()
            .map(|(mount, dir)| {
                let name = mount.file_name().map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), dir)
            })
            .collect()
    }

    fn cgroup_fd(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }

    fn leaf_dirs(&self) -> Vec<PathBuf> {
        self.all_dirs()
    }

    fn marker_dir(&self) -> Option<PathBuf> {
        self.procs_dir()
    }

    fn remove(&self) -> Result<()> {
        // Try every hierarchy even after a failure; report the first error.
        let mut first = None;
        for dir in self.all_dirs() {
            match remove_tree(&dir) {
                Ok(()) => prune_default_parent(&dir),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}
