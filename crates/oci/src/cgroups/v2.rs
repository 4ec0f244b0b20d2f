//! cgroup v2 (unified hosts): one directory, controllers delegated through the ancestors'
//! `cgroup.subtree_control`, devices through an eBPF program.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::MaxValue;
use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::{MemController, SetMemory};
use cgroups_rs::fs::pid::PidController;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::{
    Applier, CGROUP_PROCS, CGROUP_SUBTREE_CONTROL, CgroupError, CgroupManager, FREEZE_TIMEOUT,
    Result, Stats, apply_hugetlb_checks, apply_pids, apply_rdma, bpf, check_unified_key,
    collect_pids, devices, flat_keyed_value, from_cg, prune_default_parent, read_opt, remove_tree,
    shares_to_weight, signal_each, stats, swap_to_v2, wait_until, write_knob, write_procs,
};

const CGROUP_FREEZE: &str = "cgroup.freeze";
const CGROUP_EVENTS: &str = "cgroup.events";
const CGROUP_KILL: &str = "cgroup.kill";
const MEMORY_EVENTS: &str = "memory.events";

/// A container cgroup on cgroup v2: `<root>/peapod/<id>`.
#[derive(Debug, Clone)]
pub struct V2Manager {
    path: String,
    root: PathBuf,
    dir: PathBuf,
}

impl V2Manager {
    /// `root` is the cgroup2 mount point; `cgroup_path` an already resolved absolute path.
    pub fn new(root: PathBuf, cgroup_path: &str) -> Self {
        let dir = root.join(cgroup_path.trim_start_matches('/'));
        V2Manager {
            path: cgroup_path.to_string(),
            root,
            dir,
        }
    }

    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn apply_with(&self, r: &LinuxResources, a: &Applier) -> Result<()> {
        let dir = &self.dir;
        if let Some(cpu) = r.cpu() {
            self.apply_cpu(cpu, a)?;
        }
        if let Some(memory) = r.memory() {
            self.apply_memory(memory, a)?;
        }
        if let Some(pids) = r.pids() {
            let ctl = PidController::new(dir.clone(), self.root.clone(), true);
            apply_pids(dir, ctl, pids.limit(), a)?;
        }
        if let Some(blkio) = r.block_io() {
            self.apply_io(blkio, a)?;
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let field = format!("linux.resources.hugepageLimits[{i}]");
            apply_hugetlb_checks(h, &field)?;
            let ctl = HugeTlbController::new(dir.clone(), self.root.clone(), true);
            let limit = h.limit().max(0) as u64;
            let knob = format!("hugetlb.{}.max", h.page_size());
            a.cg(dir, &knob, &field, limit, || {
                ctl.set_limit_in_bytes(h.page_size(), limit)
            })?;
            // Reservations count too since Linux 5.7; limit them alike where they exist.
            let rsvd = format!("hugetlb.{}.rsvd.max", h.page_size());
            if dir.join(&rsvd).exists() {
                a.raw(dir, &rsvd, &field, &limit.to_string())?;
            }
        }
        if let Some(net) = r.network()
            && (net.class_id().is_some()
                || net.priorities().as_ref().is_some_and(|p| !p.is_empty()))
        {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.network".to_string(),
                reason: "cgroup v2 has no net_cls or net_prio controller".to_string(),
            });
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            apply_rdma(dir, rdma, a)?;
        }
        if let Some(rules) = r.devices() {
            let program = devices::program(&devices::parse_rules(rules)?);
            if !a.dry_run {
                let prog = bpf::load(&program, dir)?;
                bpf::attach_replacing(dir, &prog)?;
            }
        }
        // Last, so that raw keys win over the translated OCI fields (as in runc).
        if let Some(unified) = r.unified() {
            let mut keys: Vec<_> = unified.iter().collect();
            keys.sort();
            for (key, value) in keys {
                check_unified_key(key)?;
                a.raw(
                    dir,
                    key,
                    &format!("linux.resources.unified[{key:?}]"),
                    value,
                )?;
            }
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu, a: &Applier) -> Result<()> {
        let dir = &self.dir;
        let ctl = CpuController::new(dir.clone(), self.root.clone(), true);
        if let Some(shares) = c.shares().filter(|s| *s > 0) {
            let weight = shares_to_weight(shares);
            // cgroups-rs's set_shares writes cpu.weight on v2; the conversion is ours.
            a.cg(
                dir,
                "cpu.weight",
                "linux.resources.cpu.shares",
                weight,
                || ctl.set_shares(weight),
            )?;
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p > 0);
        if quota.is_some() || period.is_some() {
            // cgroups-rs keeps the half of cpu.max that is not given; a negative quota is "max".
            let shown = format!(
                "{} {}",
                quota.map_or("(unchanged)".to_string(), |q| if q > 0 {
                    q.to_string()
                } else {
                    "max".into()
                }),
                period.map_or("(unchanged)".to_string(), |p| p.to_string())
            );
            a.cg(dir, "cpu.max", "linux.resources.cpu.quota", shown, || {
                ctl.set_cfs_quota_and_period(quota, period)
            })?;
        }
        if let Some(burst) = c.burst() {
            a.raw(
                dir,
                "cpu.max.burst",
                "linux.resources.cpu.burst",
                &burst.to_string(),
            )?;
        }
        if let Some(idle) = c.idle() {
            a.raw(
                dir,
                "cpu.idle",
                "linux.resources.cpu.idle",
                &idle.to_string(),
            )?;
        }
        if c.realtime_runtime().is_some_and(|r| r != 0)
            || c.realtime_period().is_some_and(|p| p != 0)
        {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.cpu.realtimeRuntime".to_string(),
                reason: "realtime CPU limits exist only on cgroup v1".to_string(),
            });
        }
        let cpuset = CpuSetController::new(dir.clone(), self.root.clone(), true);
        if let Some(cpus) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
            a.cg(dir, "cpuset.cpus", "linux.resources.cpu.cpus", cpus, || {
                cpuset.set_cpus(cpus)
            })?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|v| !v.is_empty()) {
            a.cg(dir, "cpuset.mems", "linux.resources.cpu.mems", mems, || {
                cpuset.set_mems(mems)
            })?;
        }
        Ok(())
    }

    #[allow(deprecated)] // LinuxMemory::kernel: still in the spec, ignored as by runc
    fn apply_memory(&self, m: &LinuxMemory, a: &Applier) -> Result<()> {
        let dir = &self.dir;
        let field = |k: &str| format!("linux.resources.memory.{k}");
        for (name, set) in [
            ("kernel", m.kernel().is_some_and(|k| k != 0)),
            ("kernelTCP", m.kernel_tcp().is_some_and(|k| k != 0)),
            ("swappiness", m.swappiness().is_some()),
            ("disableOOMKiller", m.disable_oom_killer() == Some(true)),
        ] {
            if set {
                log::warn!(
                    "cgroups: {} is ignored: cgroup v2 has no such limit",
                    field(name)
                );
            }
        }
        let mem = MemController::new(dir.clone(), self.root.clone(), true);
        let max_value = |v: i64, name: &str| match v {
            -1 => Ok(MaxValue::Max),
            v if v >= 0 => Ok(MaxValue::Value(v)),
            v => Err(CgroupError::InvalidValue {
                field: field(name),
                reason: format!("{v} is negative (use -1 for unlimited)"),
            }),
        };
        // memory.swap.max first, like runc: it is independent of memory.max on v2.
        if let Some(swap) = swap_to_v2(m.swap(), m.limit())? {
            // Without swap accounting there is nothing to limit; only a real limit is an error.
            if dir.join("memory.swap.max").exists() || !(swap == -1 || swap == 0) {
                let shown = max_value(swap, "swap")?;
                a.cg(dir, "memory.swap.max", &field("swap"), shown, || {
                    mem.set_memswap_limit(swap)
                })?;
            }
        }
        if let Some(limit) = m.limit().filter(|l| *l != 0) {
            let max = max_value(limit, "limit")?;
            a.cg(dir, "memory.max", &field("limit"), max, || {
                mem.set_mem(SetMemory {
                    max: Some(max),
                    ..Default::default()
                })
            })?;
        }
        if let Some(reservation) = m.reservation() {
            let low = max_value(reservation, "reservation")?;
            a.cg(dir, "memory.low", &field("reservation"), low, || {
                mem.set_mem(SetMemory {
                    low: Some(low),
                    ..Default::default()
                })
            })?;
        }
        Ok(())
    }

    fn apply_io(&self, b: &LinuxBlockIo, a: &Applier) -> Result<()> {
        let dir = &self.dir;
        let ctl = BlkIoController::new(dir.clone(), self.root.clone(), true);
        let bfq = dir.join("io.bfq.weight").exists();
        if let Some(w) = b.weight() {
            let field = "linux.resources.blockIO.weight";
            if bfq {
                // BFQ takes the v1 range (1..1000) as is.
                a.raw(dir, "io.bfq.weight", field, &w.to_string())?;
            } else {
                a.raw(
                    dir,
                    "io.weight",
                    field,
                    &blkio_weight_to_io_weight(w, field)?.to_string(),
                )?;
            }
        }
        if b.leaf_weight().is_some() {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.blockIO.leafWeight".to_string(),
                reason: "cgroup v2 has no leaf weights".to_string(),
            });
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let field = format!("linux.resources.blockIO.weightDevice[{i}]");
            if d.leaf_weight().is_some() {
                return Err(CgroupError::Unsupported {
                    field: format!("{field}.leafWeight"),
                    reason: "cgroup v2 has no leaf weights".to_string(),
                });
            }
            if let Some(w) = d.weight() {
                // Per-device weights exist only with the BFQ scheduler.
                a.raw(
                    dir,
                    "io.bfq.weight",
                    &field,
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            }
        }
        let lists = [
            (
                b.throttle_read_bps_device(),
                "throttleReadBpsDevice",
                "rbps",
            ),
            (
                b.throttle_write_bps_device(),
                "throttleWriteBpsDevice",
                "wbps",
            ),
            (
                b.throttle_read_iops_device(),
                "throttleReadIOPSDevice",
                "riops",
            ),
            (
                b.throttle_write_iops_device(),
                "throttleWriteIOPSDevice",
                "wiops",
            ),
        ];
        for (list, name, key) in lists {
            for (i, t) in list.iter().flatten().enumerate() {
                let field = format!("linux.resources.blockIO.{name}[{i}]");
                let (Ok(major), Ok(minor)) = (u64::try_from(t.major()), u64::try_from(t.minor()))
                else {
                    return Err(CgroupError::InvalidValue {
                        field,
                        reason: format!("bad device number {}:{}", t.major(), t.minor()),
                    });
                };
                let rate = t.rate();
                a.cg(
                    dir,
                    "io.max",
                    &field,
                    format!("{major}:{minor} {key}={rate}"),
                    || match key {
                        "rbps" => ctl.throttle_read_bps_for_device(major, minor, rate),
                        "wbps" => ctl.throttle_write_bps_for_device(major, minor, rate),
                        "riops" => ctl.throttle_read_iops_for_device(major, minor, rate),
                        _ => ctl.throttle_write_iops_for_device(major, minor, rate),
                    },
                )?;
            }
        }
        Ok(())
    }

    fn freezer(&self) -> Result<FreezerController> {
        Applier { dry_run: true }.require(
            &self.dir,
            CGROUP_FREEZE,
            "pause (cgroup v2 freezer, Linux ≥ 5.2)",
        )?;
        Ok(FreezerController::new(
            self.dir.clone(),
            self.root.clone(),
            true,
        ))
    }

    /// Makes every controller the root offers available to the children of `dir`. A cgroup with
    /// processes cannot do that (no internal process rule) unless it is the real root, which is
    /// recognisable by having no `cgroup.type`.
    fn enable_controllers(dir: &Path, available: &[String]) -> Result<()> {
        let enabled = read_opt(dir, CGROUP_SUBTREE_CONTROL)?.unwrap_or_default();
        let missing: Vec<&String> = available
            .iter()
            .filter(|c| {
                !enabled
                    .split_whitespace()
                    .any(|e| e.trim_start_matches('+') == c.as_str())
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let has_procs = read_opt(dir, CGROUP_PROCS)?.is_some_and(|p| !p.trim().is_empty());
        if has_procs && dir.join("cgroup.type").exists() {
            return Err(CgroupError::Create {
                path: dir.to_path_buf(),
                reason: "it has processes of its own, so cgroup v2 cannot enable controllers for \
                         its children (no internal process rule); hint: use a cgroupsPath whose \
                         ancestors hold no processes"
                    .to_string(),
            });
        }
        let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
        if write_knob(dir, CGROUP_SUBTREE_CONTROL, &all.join(" ")).is_err() {
            // One by one, so that a controller the kernel refuses here (say cpuset in a
            // partition) does not block the others; apply() names the fields that then fail.
            for c in all {
                if let Err(e) = write_knob(dir, CGROUP_SUBTREE_CONTROL, &c) {
                    log::warn!("cgroups: {e}");
                }
            }
        }
        Ok(())
    }
}

/// The runc conversion from a v1 blkio weight (10..1000) to `io.weight` (1..10000).
fn blkio_weight_to_io_weight(w: u16, field: &str) -> Result<u64> {
    if !(10..=1000).contains(&w) {
        return Err(CgroupError::InvalidValue {
            field: field.to_string(),
            reason: format!("{w} is not in 10..=1000"),
        });
    }
    Ok(1 + (u64::from(w) - 10) * 9999 / 990)
}

impl CgroupManager for V2Manager {
    fn path(&self) -> &str {
        &self.path
    }

    fn is_unified(&self) -> bool {
        true
    }

    fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn create(&self) -> Result<()> {
        let available: Vec<String> = read_opt(&self.root, "cgroup.controllers")?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut created = Vec::new();
        let mut result = Ok(());
        let mut current = self.root.clone();
        for part in self.path.trim_start_matches('/').split('/') {
            // Each ancestor, the root included, delegates the controllers to the next level.
            result = Self::enable_controllers(&current, &available);
            if result.is_err() {
                break;
            }
            current.push(part);
            match fs::create_dir(&current) {
                Ok(()) => created.push(current.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    result = Err(CgroupError::Io {
                        op: "mkdir",
                        path: current.clone(),
                        err: source,
                    });
                    break;
                }
            }
        }
        if result.is_ok()
            && read_opt(&self.dir, "cgroup.type")?.is_some_and(|t| t.trim() == "domain invalid")
        {
            result = Err(CgroupError::Create {
                path: self.dir.clone(),
                reason: "the cgroup is in the \"domain invalid\" state (a threaded subtree) and \
                         cannot take domain controllers"
                    .to_string(),
            });
        }
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
        result
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        write_procs(&self.dir, pid)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if !self.exists() {
            return Err(CgroupError::NotFound {
                op: "apply resources to",
                path: self.dir.clone(),
            });
        }
        self.apply_with(resources, &Applier { dry_run: true })?;
        self.apply_with(resources, &Applier { dry_run: false })
    }

    fn freeze(&self) -> Result<()> {
        let ctl = self.freezer()?;
        ctl.freeze()
            .map_err(|e| from_cg(self.dir.join(CGROUP_FREEZE), "1".to_string(), e))?;
        let waited = wait_until("freeze", &self.dir, FREEZE_TIMEOUT, || {
            let events = super::read_opt(&self.dir, CGROUP_EVENTS)?.unwrap_or_default();
            Ok(
                super::parse_flat_keyed(&self.dir.join(CGROUP_EVENTS), &events)?.get("frozen")
                    == Some(&1),
            )
        });
        if waited.is_err() {
            let _ = ctl.thaw();
        }
        waited
    }

    fn thaw(&self) -> Result<()> {
        self.freezer()?
            .thaw()
            .map_err(|e| from_cg(self.dir.join(CGROUP_FREEZE), "0".to_string(), e))
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(read_opt(&self.dir, CGROUP_FREEZE)?.is_some_and(|s| s.trim() == "1"))
    }

    fn pids(&self) -> Result<Vec<i32>> {
        collect_pids(&self.dir)
    }

    fn kill_all(&self, sig: i32) -> Result<()> {
        // cgroup.kill (Linux 5.14) kills the whole subtree atomically, racing with no fork.
        if sig == libc::SIGKILL && self.dir.join(CGROUP_KILL).exists() {
            return write_knob(&self.dir, CGROUP_KILL, "1");
        }
        signal_each(self, sig, self.dir.join(CGROUP_FREEZE).exists())
    }

    fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            cpu: stats::cpu_v2(&self.dir)?,
            cpuset: Default::default(),
            memory: stats::memory_v2(&self.dir)?,
            pids: stats::pids(&self.dir)?,
            blkio: stats::blkio_v2(&self.dir)?,
            hugetlb: stats::hugetlb(&self.dir, true)?,
        })
    }

    fn oom_kill_count(&self) -> Result<u64> {
        flat_keyed_value(&self.dir, MEMORY_EVENTS, "oom_kill")
    }

    fn oom_watch_path(&self) -> Option<PathBuf> {
        Some(self.dir.join(MEMORY_EVENTS))
    }

    fn mount_sources(&self) -> Vec<(String, PathBuf)> {
        vec![(String::new(), self.dir.clone())]
    }

    fn cgroup_fd(&self) -> Result<Option<OwnedFd>> {
        File::open(&self.dir)
            .map(|f| Some(OwnedFd::from(f)))
            .map_err(|source| CgroupError::Io {
                op: "open",
                path: self.dir.clone(),
                err: source,
            })
    }

    fn leaf_dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn marker_dir(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }

    fn remove(&self) -> Result<()> {
        remove_tree(&self.dir)?;
        prune_default_parent(&self.dir);
        Ok(())
    }
}
