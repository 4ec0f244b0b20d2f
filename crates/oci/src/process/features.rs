//! Per-process settings of newer runtime-spec versions, as runc 1.5 applies them:
//! `linux.personality`, `linux.memoryPolicy`, `process.scheduler`, `process.ioPriority` and
//! `process.execCPUAffinity`.
//!
//! [`plan`] is pure: it checks the fields (with runc's messages where runc has one) and turns
//! them into kernel values, for `create`/`exec` to refuse bad input before anything exists.
//! [`apply`] runs in the init stage, before the capabilities are dropped and before the seccomp
//! filter is loaded (so neither can block the calls), for the container init and for every
//! exec'd process. [`set_initial_affinity`] runs in the runtime on stage 1 of an `exec`, before
//! it joins the container's cgroup.
//!
//! Differences from runc: runc warns about and ignores `linux.personality.flags`; peapod applies
//! the flags it knows (the `personality(2)` flag names) and refuses an unknown one. Like runc,
//! `execCPUAffinity` only applies to `exec`: the container's init keeps the affinity the kernel
//! gives it (the runtime-spec says the setting is not for the init).

use nix::sched::CpuSet;
use nix::unistd::Pid;
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process, Spec,
};
use peapod_sys::sched::SchedAttr;

use crate::linux::parse_list;

/// A field of the spec that peapod (or the kernel) cannot take.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> FeatureError {
    FeatureError::Invalid(msg.into())
}

/// The kernel values for one process.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub personality: Option<u32>,
    /// `set_mempolicy` mode with its flags, and the node mask.
    pub mempolicy: Option<(i32, Vec<u64>)>,
    pub scheduler: Option<SchedAttr>,
    /// `ioprio_set` value: class << 13 | priority.
    pub ioprio: Option<i32>,
    /// `execCPUAffinity.final` of an exec'd process.
    pub final_cpus: Option<Vec<usize>>,
}

/// The highest node number `linux.memoryPolicy.nodes` may name (runc's limit).
pub const MAX_NODE: usize = 1023;

/// Check the fields and compute what [`apply`] does. `exec` says whether `process` is an exec'd
/// process (which gets `execCPUAffinity.final`) rather than the container's init.
pub fn plan(spec: &Spec, process: &Process, exec: bool) -> Result<Plan, FeatureError> {
    let linux = spec.linux().as_ref();
    let mut plan = Plan::default();
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        let mut persona = match p.domain() {
            LinuxPersonalityDomain::PerLinux => 0,
            LinuxPersonalityDomain::PerLinux32 => 0x0008,
        };
        for f in p.flags().iter().flatten() {
            persona |= personality_flag(f).ok_or_else(|| {
                invalid(format!(
                    "linux.personality.flags: unknown personality flag {f:?}"
                ))
            })?;
        }
        plan.personality = Some(persona);
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        let mut mode = mempolicy_mode(m.mode());
        for f in m.flags().iter().flatten() {
            mode |= mempolicy_flag(*f);
        }
        let text = m.nodes().as_deref().unwrap_or("");
        let nodes = parse_list(text, MAX_NODE)
            .map_err(|e| invalid(format!("invalid memory policy nodes {text:?}: {e}")))?;
        match m.mode() {
            MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal
                if !nodes.is_empty() =>
            {
                return Err(invalid(format!(
                    "memory policy mode requires 0 nodes but got {}",
                    nodes.len()
                )));
            }
            MemoryPolicyModeType::MpolBind
            | MemoryPolicyModeType::MpolInterleave
            | MemoryPolicyModeType::MpolWeightedInterleave
            | MemoryPolicyModeType::MpolPreferredMany
                if nodes.is_empty() =>
            {
                return Err(invalid(
                    "memory policy mode requires at least one node but got 0",
                ));
            }
            _ => {}
        }
        let mut mask = Vec::new();
        if !nodes.is_empty() {
            mask = vec![0u64; nodes.iter().max().map_or(0, |m| m / 64 + 1)];
            for n in &nodes {
                mask[n / 64] |= 1 << (n % 64);
            }
        }
        plan.mempolicy = Some((mode, mask));
    }
    if let Some(s) = process.scheduler() {
        plan.scheduler = Some(scheduler(s)?);
    }
    if let Some(io) = process.io_priority() {
        let prio = io.priority();
        if !(0..=7).contains(&prio) {
            return Err(invalid(format!("invalid ioPriority.Priority: {prio}")));
        }
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        plan.ioprio = Some(class << 13 | prio as i32);
    }
    if let Some(a) = process.exec_cpu_affinity() {
        // Checked for the init too (as runc does), applied only to an exec'd process.
        let max = CpuSet::count() - 1;
        if let Some(i) = a.initial().as_deref() {
            parse_list(i, max).map_err(|e| invalid(format!("bad CPUAffinity.Initial: {e}")))?;
        }
        if let Some(f) = a.cpu_affinity_final().as_deref().filter(|f| !f.is_empty()) {
            let cpus =
                parse_list(f, max).map_err(|e| invalid(format!("bad CPUAffinity.Final: {e}")))?;
            if exec {
                plan.final_cpus = Some(cpus);
            }
        }
    }
    Ok(plan)
}

/// runc's checks (`libcontainer/configs/validate`), then the `sched_attr` values.
fn scheduler(s: &oci_spec::runtime::Scheduler) -> Result<SchedAttr, FeatureError> {
    use LinuxSchedulerPolicy as P;
    let policy = *s.policy();
    let nice = s.nice().unwrap_or(0);
    if matches!(policy, P::SchedOther | P::SchedBatch) && !(-20..=19).contains(&nice) {
        return Err(invalid(format!(
            "invalid scheduler.nice: {nice} when scheduler.policy is {policy}"
        )));
    }
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !matches!(policy, P::SchedFifo | P::SchedRr) {
        return Err(invalid(
            "scheduler.priority can only be specified for SchedFIFO or SchedRR policy",
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy != P::SchedDeadline && (runtime != 0 || deadline != 0 || period != 0) {
        return Err(invalid(
            "scheduler runtime/deadline/period can only be specified for SchedDeadline policy",
        ));
    }
    let policy_num = match policy {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s
        .flags()
        .iter()
        .flatten()
        .map(|f| match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        })
        .fold(0u64, |a, b| a | b);
    Ok(SchedAttr {
        size: 0,
        policy: policy_num,
        flags,
        nice,
        priority: priority.max(0) as u32,
        runtime,
        deadline,
        period,
    })
}

/// The `personality(2)` flag bits, by their kernel names.
fn personality_flag(name: &str) -> Option<u32> {
    Some(match name {
        "UNAME26" => 0x0020000,
        "ADDR_NO_RANDOMIZE" => 0x0040000,
        "FDPIC_FUNCPTRS" => 0x0080000,
        "MMAP_PAGE_ZERO" => 0x0100000,
        "ADDR_COMPAT_LAYOUT" => 0x0200000,
        "READ_IMPLIES_EXEC" => 0x0400000,
        "ADDR_LIMIT_32BIT" => 0x0800000,
        "SHORT_INODE" => 0x1000000,
        "WHOLE_SECONDS" => 0x2000000,
        "STICKY_TIMEOUTS" => 0x4000000,
        "ADDR_LIMIT_3GB" => 0x8000000,
        _ => return None,
    })
}

fn mempolicy_mode(m: MemoryPolicyModeType) -> i32 {
    match m {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    }
}

fn mempolicy_flag(f: MemoryPolicyFlagType) -> i32 {
    match f {
        MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
        MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
    }
}

/// Apply `plan` to the calling process (the init stage, still privileged, before seccomp).
pub fn apply(plan: &Plan) -> Result<(), String> {
    use peapod_sys::sched as s;
    if let Some((mode, mask)) = &plan.mempolicy {
        s::set_mempolicy(*mode, mask).map_err(|e| format!("set_mempolicy: {e}"))?;
    }
    if let Some(attr) = &plan.scheduler {
        s::sched_setattr_self(attr).map_err(|e| format!("error setting scheduler: {e}"))?;
    }
    if let Some(v) = plan.ioprio {
        s::ioprio_set_self(v).map_err(|e| format!("failed to set io priority: {e}"))?;
    }
    if let Some(cpus) = &plan.final_cpus {
        set_affinity(Pid::from_raw(0), cpus)
            .map_err(|e| format!("set execCPUAffinity.final: {e}"))?;
    }
    if let Some(p) = plan.personality {
        s::set_personality(p).map_err(|e| format!("set linux.personality: {e}"))?;
    }
    Ok(())
}

/// `execCPUAffinity.initial` of an exec'd process: set on its stage 1 (`pid`) by the runtime
/// before the stage joins the container's cgroup. The list was checked by [`plan`].
pub fn set_initial_affinity(pid: Pid, process: &Process) -> Result<(), FeatureError> {
    let Some(initial) = process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
        .filter(|i| !i.is_empty())
    else {
        return Ok(());
    };
    let cpus = parse_list(initial, CpuSet::count() - 1)
        .map_err(|e| invalid(format!("bad CPUAffinity.Initial: {e}")))?;
    set_affinity(pid, &cpus)
        .map_err(|e| invalid(format!("set execCPUAffinity.initial {initial:?}: {e}")))
}

/// Widen `pid`'s CPU affinity to every CPU its cgroup allows, as runc 1.2+ does for the init
/// (once it sits in its cgroup) and for an exec'd process without `execCPUAffinity.initial`:
/// the container does not inherit the affinity of whoever ran the runtime (`taskset`). The
/// kernel intersects the full mask with the cpuset; a failure is only logged, as in runc.
pub fn reset_affinity(pid: Pid) {
    let mut all = CpuSet::new();
    for c in 0..CpuSet::count() {
        // In range by construction.
        let _ = all.set(c);
    }
    if let Err(e) = nix::sched::sched_setaffinity(pid, &all) {
        log::debug!("reset CPU affinity of {pid}: {e}");
    }
}

/// Whether `process` names an `execCPUAffinity.initial` (then the runtime keeps it).
pub fn has_initial_affinity(process: &Process) -> bool {
    process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
        .is_some_and(|i| !i.is_empty())
}

fn set_affinity(pid: Pid, cpus: &[usize]) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for c in cpus {
        set.set(*c)?;
    }
    nix::sched::sched_setaffinity(pid, &set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_with(patch: serde_json::Value) -> Spec {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        for (k, val) in patch.as_object().unwrap() {
            if let (Some(dst), Some(src)) = (v[k].as_object_mut(), val.as_object()) {
                for (k2, v2) in src {
                    dst.insert(k2.clone(), v2.clone());
                }
            } else {
                v[k] = val.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn err(patch: serde_json::Value) -> String {
        let s = spec_with(patch);
        plan(&s, s.process().as_ref().unwrap(), false)
            .unwrap_err()
            .to_string()
    }

    fn ok(patch: serde_json::Value, exec: bool) -> Plan {
        let s = spec_with(patch);
        plan(&s, s.process().as_ref().unwrap(), exec).unwrap()
    }

    #[test]
    fn lists_parse_like_runc() {
        assert_eq!(parse_list("0-3,7", 1023).unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_list("0,,1", 1023).unwrap(), vec![0, 1]);
        assert_eq!(parse_list(" 1 , 0", 1023).unwrap(), vec![0, 1]);
        assert!(parse_list("", 1023).unwrap().is_empty());
        assert_eq!(parse_list("3-1", 1023).unwrap_err(), "invalid range: 3-1");
        assert_eq!(
            parse_list("0-5000", 1023).unwrap_err(),
            "values larger than 1023 are not supported"
        );
        assert_eq!(parse_list("x", 1023).unwrap_err(), "\"x\" is not a number");
        assert!(parse_list("0-9876543210", 1023).is_err());
    }

    #[test]
    fn personality_domain_and_flags() {
        let p = ok(
            json!({"linux": {"personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}}}),
            false,
        );
        assert_eq!(p.personality, Some(0x0008 | 0x0040000));
        assert_eq!(
            ok(
                json!({"linux": {"personality": {"domain": "LINUX"}}}),
                false
            )
            .personality,
            Some(0)
        );
        assert!(
            err(json!({"linux": {"personality": {"domain": "LINUX", "flags": ["NOPE"]}}}))
                .contains("unknown personality flag \"NOPE\"")
        );
    }

    #[test]
    fn memory_policy_node_counts_match_runc() {
        assert_eq!(
            err(json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": ""}}})),
            "memory policy mode requires at least one node but got 0"
        );
        assert_eq!(
            err(json!({"linux": {"memoryPolicy": {"mode": "MPOL_DEFAULT", "nodes": "0-7"}}})),
            "memory policy mode requires 0 nodes but got 8"
        );
        assert_eq!(
            err(json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "3-1"}}})),
            "invalid memory policy nodes \"3-1\": invalid range: 3-1"
        );
        let p = ok(
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0,65",
                "flags": ["MPOL_F_STATIC_NODES"]}}}),
            false,
        );
        assert_eq!(p.mempolicy, Some((2 | 1 << 15, vec![1, 2])));
        let p = ok(
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_PREFERRED"}}}),
            false,
        );
        assert_eq!(p.mempolicy, Some((1, vec![])));
    }

    #[test]
    fn scheduler_checks_match_runc() {
        assert_eq!(
            err(json!({"process": {"scheduler": {"policy": "SCHED_OTHER", "nice": 30}}})),
            "invalid scheduler.nice: 30 when scheduler.policy is SCHED_OTHER"
        );
        assert_eq!(
            err(json!({"process": {"scheduler": {"policy": "SCHED_BATCH", "priority": 3}}})),
            "scheduler.priority can only be specified for SchedFIFO or SchedRR policy"
        );
        assert_eq!(
            err(json!({"process": {"scheduler": {"policy": "SCHED_FIFO", "runtime": 3}}})),
            "scheduler runtime/deadline/period can only be specified for SchedDeadline policy"
        );
        let p = ok(
            json!({"process": {"scheduler": {"policy": "SCHED_BATCH", "nice": 5,
                "flags": ["SCHED_FLAG_RECLAIM"]}}}),
            false,
        );
        let s = p.scheduler.unwrap();
        assert_eq!((s.policy, s.nice, s.flags), (3, 5, 2));
    }

    #[test]
    fn runtime_spec_scheduler_flag_names_parse() {
        let cfg = json!({"ociVersion": "1.2.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_OTHER",
                "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]}}});
        let s = crate::container::spec::parse(cfg.to_string().as_bytes()).unwrap();
        let p = plan(&s, s.process().as_ref().unwrap(), false).unwrap();
        assert_eq!(p.scheduler.unwrap().flags, 0x01 | 0x04);
    }

    #[test]
    fn io_priority_checks_match_runc() {
        assert_eq!(
            err(json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}})),
            "invalid ioPriority.Priority: 9"
        );
        let p = ok(
            json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4}}}),
            false,
        );
        assert_eq!(p.ioprio, Some(3 << 13 | 4));
    }

    #[test]
    fn exec_cpu_affinity_is_checked_always_and_applied_to_exec_only() {
        let patch = json!({"process": {"execCPUAffinity": {"initial": "0", "final": "0-1"}}});
        assert_eq!(ok(patch.clone(), false).final_cpus, None);
        assert_eq!(ok(patch, true).final_cpus, Some(vec![0, 1]));
        assert_eq!(
            err(json!({"process": {"execCPUAffinity": {"initial": "3-1"}}})),
            "bad CPUAffinity.Initial: invalid range: 3-1"
        );
    }
}
