//! The `RuntimeDefault` seccomp profile for pods.
//!
//! containerd and Docker ship an allowlist (every syscall a normal program needs, the rest
//! `EPERM`). peapod writes the same policy the other way round, from Docker's documented
//! table of "significant syscalls blocked by the default profile": everything is allowed
//! except those syscalls, each re-allowed by the capability that legitimately needs it, as
//! the upstream profile does. Deliberate differences, kept visible here and in the README:
//! a syscall newer than this list is allowed (the allowlist would refuse it), and
//! `personality` is not restricted to its harmless values.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Blocked syscalls and the capability that re-allows them (`None`: blocked for everyone).
const BLOCKED: &[(&[&str], Option<&str>)] = &[
    (&["acct"], Some("CAP_SYS_PACCT")),
    // The kernel keyring is not namespaced.
    (&["add_key", "keyctl", "request_key"], None),
    (&["bpf"], Some("CAP_SYS_ADMIN")),
    (&["perf_event_open"], Some("CAP_SYS_ADMIN")),
    (
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
        Some("CAP_SYS_TIME"),
    ),
    (
        &[
            "create_module",
            "delete_module",
            "finit_module",
            "init_module",
            "get_kernel_syms",
            "query_module",
        ],
        Some("CAP_SYS_MODULE"),
    ),
    (
        &["get_mempolicy", "mbind", "set_mempolicy", "move_pages"],
        Some("CAP_SYS_NICE"),
    ),
    (&["ioperm", "iopl"], Some("CAP_SYS_RAWIO")),
    (
        &[
            "kcmp",
            "process_vm_readv",
            "process_vm_writev",
            "userfaultfd",
        ],
        Some("CAP_SYS_PTRACE"),
    ),
    (
        &["kexec_file_load", "kexec_load", "reboot"],
        Some("CAP_SYS_BOOT"),
    ),
    (
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "setns",
            "unshare",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "lookup_dcookie",
            "quotactl",
            "quotactl_fd",
            "swapon",
            "swapoff",
            "name_to_handle_at",
        ],
        Some("CAP_SYS_ADMIN"),
    ),
    (&["open_by_handle_at"], Some("CAP_DAC_READ_SEARCH")),
    (&["syslog"], Some("CAP_SYSLOG")),
    // Obsolete or never namespaced.
    (
        &[
            "nfsservctl",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "vm86",
            "vm86old",
        ],
        None,
    ),
    // io_uring bypasses syscall filtering for the operations it performs.
    (
        &["io_uring_setup", "io_uring_enter", "io_uring_register"],
        None,
    ),
];

/// `clone` flags that create namespaces: refused without CAP_SYS_ADMIN (`unshare` and
/// `setns` are blocked outright above).
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn errno(names: Vec<String>, errno: u32) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno)
        .build()
        .expect("a syscall rule with names and an action is complete")
}

fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        Vec::new()
    }
}

/// The profile for a container whose effective capabilities are `caps` (`CAP_*` names).
pub fn runtime_default(caps: &[String]) -> LinuxSeccomp {
    let has = |c: &str| caps.iter().any(|n| n == c);
    let mut rules = Vec::new();
    let blocked: Vec<String> = BLOCKED
        .iter()
        .filter(|(_, cap)| cap.is_none_or(|c| !has(c)))
        .flat_map(|(names, _)| names.iter().map(|n| n.to_string()))
        .collect();
    rules.push(errno(blocked, libc::EPERM as u32));
    if !has("CAP_SYS_ADMIN") {
        // glibc falls back to clone(2) on ENOSYS, whose flags a filter can inspect.
        rules.push(errno(vec!["clone3".into()], libc::ENOSYS as u32));
        for flag in NAMESPACE_FLAGS {
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(*flag)
                .value_two(*flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .expect("a seccomp argument with index, values and op is complete");
            let mut rule = errno(vec!["clone".into()], libc::EPERM as u32);
            rule.set_args(Some(vec![arg]));
            rules.push(rule);
        }
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(rules)
        .build()
        .expect("a seccomp profile with a default action is complete")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls().as_ref().unwrap()[0].names().clone()
    }

    #[test]
    fn capabilities_reopen_what_they_govern() {
        let none = runtime_default(&[]);
        for s in [
            "mount",
            "keyctl",
            "ptrace_is_allowed_not_listed",
            "reboot",
            "bpf",
        ] {
            assert_eq!(
                blocked(&none).iter().any(|n| n == s),
                s != "ptrace_is_allowed_not_listed"
            );
        }
        let admin = runtime_default(&["CAP_SYS_ADMIN".into()]);
        assert!(!blocked(&admin).iter().any(|n| n == "mount"));
        assert!(
            blocked(&admin).iter().any(|n| n == "keyctl"),
            "never allowed"
        );
        assert_eq!(
            admin.syscalls().as_ref().unwrap().len(),
            1,
            "no clone rules"
        );
        let boot = runtime_default(&["CAP_SYS_BOOT".into()]);
        assert!(!blocked(&boot).iter().any(|n| n == "reboot"));
    }

    #[test]
    fn clone_with_namespace_flags_is_refused_and_clone3_falls_back() {
        let p = runtime_default(&[]);
        let rules = p.syscalls().as_ref().unwrap();
        let clone3 = rules.iter().find(|r| r.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        let clones: Vec<_> = rules.iter().filter(|r| r.names() == &["clone"]).collect();
        assert_eq!(clones.len(), NAMESPACE_FLAGS.len());
        // Every rule compiles with libseccomp.
        crate::seccomp::compile(&p).unwrap();
    }
}
