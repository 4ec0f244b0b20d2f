//! OCI `linux.seccomp` → libseccomp filter.
//!
//! Two phases, so that a bad profile is reported before anything exists:
//!
//! 1. [`build`] runs in the runtime **before the container process is forked**. It validates every
//!    field and builds the whole libseccomp filter in memory ([`compile`]), exports its BPF
//!    program and puts runc's `-ENOSYS` stub in front of it (module `enosys`). Nothing touches
//!    the kernel, so an error leaves nothing behind and the caller can report it as a config error.
//! 2. [`load`] runs in the container's init process and only installs that program with
//!    seccomp(2) (the forked child inherits a copy).
//!
//! Semantics follow runc (`libcontainer/specconv/spec_linux.go` `SetupSeccomp`,
//! `libcontainer/seccomp/seccomp_linux.go`) where runc and the runtime-spec agree, and the spec
//! where runc is laxer:
//!
//! - Syscall names that libseccomp cannot resolve are **skipped**, as runc does ("unknown seccomp
//!   syscall ignored", logged at debug level): profiles list syscalls that only newer kernels or
//!   other architectures have. [`unresolved_syscalls`] returns them so the caller can log them.
//! - A rule whose action equals the default action is skipped (runc does the same; libseccomp
//!   refuses such a rule with EACCES).
//! - `errnoRet`/`defaultErrnoRet` default to `EPERM` for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`.
//!   On any other action they are refused: the spec says the runtime MUST fail (runc ignores them).
//! - `args`: conditions of one rule are ANDed. If two conditions name the same argument index,
//!   libseccomp cannot AND them, and runc falls back to adding **every** condition of that rule as
//!   its own rule (OR). We do exactly the same so profiles behave identically.
//! - `SCMP_CMP_MASKED_EQ`: `value` is the mask and `valueTwo` the expected result,
//!   `(arg & value) == valueTwo`, `valueTwo` defaulting to 0 (libseccomp's datum_a/datum_b order).
//!   `valueTwo` on any other operator is ignored by libseccomp, so a non-zero one is refused
//!   (Docker's profile writes `"valueTwo": 0` everywhere, which is accepted).
//! - Rules for the same syscall combine as libseccomp decides, as in runc: of two unconditional
//!   rules the first one wins, an unconditional rule overrides conditional ones, and two rules with
//!   the same conditions but different actions are refused.
//! - `flags` absent (not just empty) → `SECCOMP_FILTER_FLAG_SPEC_ALLOW` when the kernel and
//!   libseccomp support it, as runc (PR #3588) and crun do; an explicit `[]` sets no flag.
//!
//! - `SCMP_ACT_NOTIFY` (user notification) on rules, as runc: the filter is loaded with
//!   `SECCOMP_FILTER_FLAG_NEW_LISTENER`, the init passes the listener fd to the runtime over its
//!   channel, and the runtime hands it to the agent at `listenerPath` with runc's
//!   `ContainerProcessState` JSON (`container::seccomp_agent`). Refused as runc refuses it: as
//!   the default action, on `write`, or without `listenerPath`. Without a NOTIFY rule,
//!   `listenerPath` and `listenerMetadata` are ignored.
//! - runc's `-ENOSYS` stub (`patchbpf`): syscalls above the largest one the profile names, per
//!   listed architecture, fail with ENOSYS instead of a non-permissive default action.
//!
//! Refused: `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`, in runc 1.5.1's words (it needs libseccomp
//! >= 2.6; Debian 12 ships 2.5.4).

mod enosys;
mod profile;
pub use profile::runtime_default;

use libseccomp::error::SeccompError as ScmpError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Linux system calls take at most six arguments (indices 0-5).
const SYSCALL_MAX_ARGS: usize = 6;

/// Above this many syscall names, ask libseccomp for a binary-tree filter instead of a linear
/// one. Same threshold as runc: libseccomp <= 2.5.4 misbehaves with the tree and no rules.
const BINARY_TREE_THRESHOLD: usize = 32;

/// The kernel returns `SECCOMP_RET_DATA` (the low 16 bits) as the errno or the trace message;
/// libseccomp would silently truncate anything larger.
const MAX_RET_DATA: u32 = 0xffff;

const DEFAULT_ERRNO: i32 = libc::EPERM;

/// Errors from turning `linux.seccomp` into a filter or loading it.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A field that peapod does not implement was set.
    #[error("{field} is not supported: {reason}")]
    Unsupported { field: String, reason: String },
    /// A profile runc refuses, in runc's words.
    #[error("{message} ({field})")]
    Refused { field: String, message: String },
    /// A field has a value that cannot be turned into a filter.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// libseccomp refused an operation while building the filter.
    #[error("{op} for {field}: {err}")]
    Build {
        op: &'static str,
        field: String,
        err: ScmpError,
    },
    /// Installing the filter in the kernel failed.
    #[error("load seccomp filter: {reason}{hint}")]
    Load { reason: String, hint: &'static str },
}

fn build_err(op: &'static str, field: impl Into<String>) -> impl FnOnce(ScmpError) -> SeccompError {
    let field = field.into();
    move |err| SeccompError::Build { op, field, err }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A refusal in runc's words, with the field named after them.
fn runc(field: impl Into<String>, message: impl Into<String>) -> SeccompError {
    SeccompError::Refused {
        field: field.into(),
        message: message.into(),
    }
}

fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> SeccompError {
    SeccompError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Builds the filter for `s` without touching the kernel. Call it before forking the container
/// process; pass the result to [`load`] in the child.
pub fn compile(s: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    check_notify(s)?;

    let default_action = map_action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(build_err(
        "create seccomp filter",
        "linux.seccomp.defaultAction",
    ))?;

    // libseccomp's CtlNnp attribute defaults to on: seccomp_load() would then call
    // prctl(PR_SET_NO_NEW_PRIVS, 1) itself, i.e. force no_new_privs on every container even when
    // process.noNewPrivileges is false (setuid binaries would stop working). The runtime sets NNP
    // itself from process.noNewPrivileges, exactly like runc (`SetNoNewPrivsBit(false)`), so the
    // attribute is off. Consequence for the caller: with NNP off, loading needs CAP_SYS_ADMIN,
    // see `load`.
    ctx.set_ctl_nnp(false)
        .map_err(build_err("disable no_new_privs attribute", "linux.seccomp"))?;
    // Report the kernel's errno from seccomp(2) instead of libseccomp's generic ECANCELED, so
    // a load failure says why (EACCES: no CAP_SYS_ADMIN and no NNP; EINVAL: unsupported flag).
    ctx.set_api_sysrawrc(true)
        .map_err(build_err("enable raw kernel error codes", "linux.seccomp"))?;

    for (i, arch) in s.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        ctx.add_arch(map_arch(*arch)).map_err(|source| {
            if kernel_errno(&source) == Some(libc::EDOM) {
                // libseccomp keeps one filter per endianness: a big-endian ABI (MIPS, PPC, s390,
                // PA-RISC, ...) cannot join a little-endian native one, or vice versa.
                invalid(
                    field.clone(),
                    format!("{arch} cannot be combined with the native architecture in one filter (different byte order)"),
                )
            } else {
                build_err("add seccomp architecture", format!("{field} ({arch})"))(source)
            }
        })?;
    }

    apply_flags(&mut ctx, s.flags().as_deref())?;

    let rules = s.syscalls().as_deref().unwrap_or_default();
    let names: usize = rules.iter().map(|r| r.names().len()).sum();
    if names > BINARY_TREE_THRESHOLD {
        // Only a code-generation hint (no effect on what the filter decides), so an old
        // libseccomp that lacks it is not an error, as in runc.
        let _ = ctx.set_ctl_optimize(2);
    }

    for (i, rule) in rules.iter().enumerate() {
        add_syscall_rule(&mut ctx, i, rule, default_action)?;
    }
    Ok(ctx)
}

/// A filter ready for the kernel: libseccomp's BPF program with runc's `-ENOSYS` stub in front
/// (see `enosys`), and the seccomp(2) flags libseccomp would have used.
#[derive(Debug)]
pub struct Filter {
    program: Vec<peapod_sys::seccomp::SockFilter>,
    flags: u32,
    notify: bool,
}

impl Filter {
    /// The filter has `SCMP_ACT_NOTIFY` rules: loading it returns a listener fd.
    pub fn notify(&self) -> bool {
        self.notify
    }

    /// The instructions the kernel gets.
    pub fn program(&self) -> &[peapod_sys::seccomp::SockFilter] {
        &self.program
    }
}

/// [`compile`], then export the program and prepend runc's `-ENOSYS` stub. Runs in the runtime
/// before the fork, like [`compile`]; the init only calls [`load`].
pub fn build(s: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    use peapod_sys::seccomp::{FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW};
    let ctx = compile(s)?;
    let mut program = enosys::stub(s);
    program.extend(export_bpf(&ctx)?);
    // The flags libseccomp's own load would pass (runc's `filterFlags`): TSYNC is not one of
    // them, the init being single-threaded when it loads.
    let api = libseccomp::get_api();
    let mut flags = 0;
    if api >= 3 && ctx.get_ctl_log().unwrap_or(false) {
        flags |= FLAG_LOG;
    }
    if api >= 4 && ctx.get_ctl_ssb().unwrap_or(false) {
        flags |= FLAG_SPEC_ALLOW;
    }
    let notify = listener_wanted(s);
    if notify {
        flags |= FLAG_NEW_LISTENER;
    }
    Ok(Filter {
        program,
        flags,
        notify,
    })
}

/// libseccomp's BPF program for `ctx`, read back through a memfd.
fn export_bpf(
    ctx: &ScmpFilterContext,
) -> Result<Vec<peapod_sys::seccomp::SockFilter>, SeccompError> {
    use std::io::{Read, Seek};
    let fd = nix::sys::memfd::memfd_create(
        c"peapod-seccomp-bpf",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )
    .map_err(|e| {
        invalid(
            "linux.seccomp",
            format!("memfd_create for the BPF export: {e}"),
        )
    })?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)
        .map_err(build_err("export the seccomp BPF program", "linux.seccomp"))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| {
            invalid(
                "linux.seccomp",
                format!("read the exported BPF program: {e}"),
            )
        })?;
    // libseccomp writes `struct sock_filter` in host byte order.
    Ok(bytes
        .chunks_exact(8)
        .map(|c| peapod_sys::seccomp::SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Installs a filter made by [`build`] in the calling process with seccomp(2). Returns the
/// user-notification listener when the filter has `SCMP_ACT_NOTIFY` rules. Call it in the
/// container's init right before `execve`; every later syscall, including `execve`, is filtered.
///
/// The kernel only accepts the filter if the process already has no_new_privs set **or** has
/// CAP_SYS_ADMIN in its user namespace (the runtime never sets NNP for the filter). Order it as
/// runc does: with `process.noNewPrivileges: true`, set NNP first and load as late as possible;
/// with `false`, load before capabilities are dropped (and before the uid switch), which means the
/// profile must allow the syscalls that run between here and `execve`.
pub fn load(f: &Filter) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
    peapod_sys::seccomp::set_mode_filter(f.flags, &f.program).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EACCES) {
            " (hint: loading a filter needs no_new_privs or CAP_SYS_ADMIN; load it before dropping capabilities when process.noNewPrivileges is false)"
        } else {
            ""
        };
        SeccompError::Load {
            reason: e.to_string(),
            hint,
        }
    })
}

fn listener_wanted(s: &LinuxSeccomp) -> bool {
    s.syscalls()
        .iter()
        .flatten()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Syscall names in `s` that libseccomp cannot resolve on this machine. [`compile`] skips them
/// (as runc does); the caller may log them at debug level.
pub fn unresolved_syscalls(s: &LinuxSeccomp) -> Vec<&str> {
    s.syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names().iter())
        .map(String::as_str)
        .filter(|n| !n.is_empty() && ScmpSyscall::from_name(n).is_err())
        .collect()
}

/// Actions [`compile`] accepts, for `features` (`linux.seccomp.actions`). Sorted, like runc's.
/// `SCMP_ACT_NOTIFY` is accepted on rules only, not as the default action (as in runc).
pub fn known_actions() -> &'static [&'static str] {
    &[
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ]
}

/// Argument operators [`compile`] accepts, for `features` (`linux.seccomp.operators`).
pub fn known_operators() -> &'static [&'static str] {
    &[
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ]
}

/// Architectures the linked libseccomp can add, for `features` (`linux.seccomp.archs`).
/// LoongArch, M68K and SuperH need libseccomp >= 2.6 (Debian 12 ships 2.5.4).
pub fn known_archs() -> &'static [&'static str] {
    const V2_5: &[&str] = &[
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ];
    const V2_6: &[&str] = &[
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ];
    match ScmpVersion::current() {
        Ok(v) if (v.major, v.minor) >= (2, 6) => V2_6,
        _ => V2_5,
    }
}

/// Filter flags [`compile`] knows, for `features` (`linux.seccomp.knownFlags`), as runc lists
/// them: `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` is known but refused (never supported).
pub fn known_flags() -> &'static [&'static str] {
    &[
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ]
}

/// The subset of [`known_flags`] that this kernel and libseccomp support, for `features`
/// (`linux.seccomp.supportedFlags`). libseccomp's API level encodes the kernel's support:
/// 2 = TSYNC, 3 = FLAG_LOG, 4 = SPEC_ALLOW.
pub fn supported_flags() -> Vec<&'static str> {
    let level = libseccomp::get_api();
    [
        ("SECCOMP_FILTER_FLAG_LOG", 3),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
        ("SECCOMP_FILTER_FLAG_TSYNC", 2),
    ]
    .into_iter()
    .filter(|(_, min)| level >= *min)
    .map(|(name, _)| name)
    .collect()
}

/// runc's refusals for `SCMP_ACT_NOTIFY` (`libcontainer/seccomp/seccomp_linux.go` and the
/// parent's `listenerPath` check), made before anything exists. Without a NOTIFY rule,
/// `listenerPath` and `listenerMetadata` are ignored, as runc does.
fn check_notify(s: &LinuxSeccomp) -> Result<(), SeccompError> {
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(runc(
            "linux.seccomp.defaultAction",
            "unable to init seccomp: SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        if rule.action() != LinuxSeccompAction::ScmpActNotify {
            continue;
        }
        let level = libseccomp::get_api();
        if level < 6 {
            return Err(runc(
                format!("linux.seccomp.syscalls[{i}].action"),
                format!(
                    "unable to init seccomp: seccomp notify unsupported: API level: got {level}, \
                     want at least 6. Please try with libseccomp >= 2.5.0 and Linux >= 5.7"
                ),
            ));
        }
        // The init passes the listener fd to the runtime with a write on its channel after
        // loading the filter: a NOTIFY `write` would block that forever.
        if let Some(j) = rule.names().iter().position(|n| n == "write") {
            return Err(runc(
                format!("linux.seccomp.syscalls[{i}].names[{j}]"),
                "unable to init seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall",
            ));
        }
        if s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(runc(
                format!("linux.seccomp.syscalls[{i}].action SCMP_ACT_NOTIFY"),
                "seccomp listenerPath is not set",
            ));
        }
    }
    Ok(())
}

/// Where a filter with `SCMP_ACT_NOTIFY` rules sends its listener: `linux.seccomp.listenerPath`
/// and `listenerMetadata`. `None` when no rule uses NOTIFY (the fields are then ignored, as in
/// runc). Call it on a profile [`compile`] accepted.
pub fn listener(s: &LinuxSeccomp) -> Option<Listener> {
    if !listener_wanted(s) {
        return None;
    }
    Some(Listener {
        path: s.listener_path().clone()?,
        metadata: s.listener_metadata().clone().unwrap_or_default(),
    })
}

/// The seccomp agent of a profile with `SCMP_ACT_NOTIFY` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `linux.seccomp.listenerPath`: the agent's unix socket.
    pub path: std::path::PathBuf,
    /// `linux.seccomp.listenerMetadata`, passed to the agent as is.
    pub metadata: String,
}

/// Maps an OCI action plus its optional errno/trace value to a libseccomp action.
fn map_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<ScmpAction, SeccompError> {
    use LinuxSeccompAction as A;
    let ret_data = |errno_ret: Option<u32>| -> Result<u16, SeccompError> {
        match errno_ret {
            None => Ok(DEFAULT_ERRNO as u16),
            Some(v) => u16::try_from(v).map_err(|_| {
                invalid(
                    errno_field,
                    format!(
                        "{v} does not fit in the 16-bit seccomp return data (max {MAX_RET_DATA})"
                    ),
                )
            }),
        }
    };
    let mapped = match action {
        // SCMP_ACT_KILL is the old name of SCMP_ACT_KILL_THREAD (runc maps it the same way).
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActErrno => return Ok(ScmpAction::Errno(i32::from(ret_data(errno_ret)?))),
        // For TRACE the value is the message the tracer reads with PTRACE_GETEVENTMSG.
        A::ScmpActTrace => return Ok(ScmpAction::Trace(ret_data(errno_ret)?)),
        // `check_notify` refused it as the default action.
        A::ScmpActNotify => ScmpAction::Notify,
    };
    if let Some(v) = errno_ret {
        return Err(invalid(
            errno_field,
            format!(
                "{action} does not take an errno (got {v}); only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do"
            ),
        ));
    }
    Ok(mapped)
}

fn map_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn apply_flags(
    ctx: &mut ScmpFilterContext,
    flags: Option<&[LinuxSeccompFilterFlag]>,
) -> Result<(), SeccompError> {
    use LinuxSeccompFilterFlag as F;
    let Some(flags) = flags else {
        // No `flags` key at all: runc and crun disable the Speculative Store Bypass mitigation
        // that the kernel otherwise forces on seccomp-filtered tasks (a large slowdown for
        // interpreters), when the kernel and libseccomp can (API level >= 4).
        if libseccomp::get_api() >= 4 {
            ctx.set_ctl_ssb(true).map_err(build_err(
                "set default SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "linux.seccomp.flags",
            ))?;
        }
        return Ok(());
    };
    for (i, flag) in flags.iter().enumerate() {
        let field = format!("linux.seccomp.flags[{i}] ({flag})");
        match flag {
            F::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true)
                    .map_err(build_err("set seccomp flag", field))?;
            }
            F::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true)
                    .map_err(build_err("set seccomp flag", field))?;
            }
            // The init process is single-threaded when it loads the filter, so this changes
            // nothing, but it is what the profile asked for and is harmless.
            F::SeccompFilterFlagTsync => {
                ctx.set_ctl_tsync(true)
                    .map_err(build_err("set seccomp flag", field))?;
            }
            // runc 1.5.1 refuses it with libseccomp < 2.6 (Debian 12 ships 2.5.4), in these
            // words; the libseccomp crate peapod links has no setter for it either.
            F::SeccompFilterFlagWaitKillableRecv => {
                let version = ScmpVersion::current()
                    .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
                    .unwrap_or_else(|_| "unknown".into());
                return Err(unsupported(
                    field,
                    format!(
                        "error adding WaitKill flag to seccomp filter: SetWaitKill requires \
                         libseccomp >= 2.6.0 and API level >= 7 (current version: {version}, \
                         API level: {})",
                        libseccomp::get_api()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn add_syscall_rule(
    ctx: &mut ScmpFilterContext,
    i: usize,
    rule: &LinuxSyscall,
    default_action: ScmpAction,
) -> Result<(), SeccompError> {
    let field = format!("linux.seccomp.syscalls[{i}]");
    if rule.names().is_empty() {
        return Err(invalid(
            format!("{field}.names"),
            "must name at least one syscall",
        ));
    }
    let action = map_action(
        rule.action(),
        rule.errno_ret(),
        &format!("{field}.errnoRet"),
    )?;
    let args = rule.args().as_deref().unwrap_or_default();
    let conditions = map_conditions(&field, args)?;
    // runc: if any argument index appears more than once, the conditions cannot be ANDed in one
    // libseccomp rule, so each condition becomes a rule of its own (OR).
    let mut seen = [false; SYSCALL_MAX_ARGS];
    let repeated_index = args
        .iter()
        .any(|a| std::mem::replace(&mut seen[a.index()], true));

    for (j, name) in rule.names().iter().enumerate() {
        if name.is_empty() {
            return Err(invalid(format!("{field}.names[{j}]"), "empty syscall name"));
        }
        if action == default_action {
            // Redundant, and libseccomp refuses it (EACCES); runc skips it too.
            continue;
        }
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            // Unknown to libseccomp on this machine: skipped, as runc does.
            continue;
        };
        let added = if conditions.is_empty() {
            ctx.add_rule(action, syscall).map(drop)
        } else if repeated_index {
            conditions.iter().try_for_each(|c| {
                ctx.add_rule_conditional(action, syscall, std::slice::from_ref(c))
                    .map(drop)
            })
        } else {
            ctx.add_rule_conditional(action, syscall, &conditions)
                .map(drop)
        };
        added.map_err(|source| {
            if kernel_errno(&source) == Some(libc::EEXIST) {
                invalid(
                    format!("{field} ({name})"),
                    "conflicts with an earlier rule for the same syscall and arguments that has a different action",
                )
            } else {
                build_err("add seccomp rule", format!("{field} ({name})"))(source)
            }
        })?;
    }
    Ok(())
}

fn map_conditions(
    field: &str,
    args: &[LinuxSeccompArg],
) -> Result<Vec<ScmpArgCompare>, SeccompError> {
    use LinuxSeccompOperator as Op;
    args.iter()
        .enumerate()
        .map(|(k, a)| {
            let arg_field = format!("{field}.args[{k}]");
            if a.index() >= SYSCALL_MAX_ARGS {
                return Err(invalid(
                    format!("{arg_field}.index"),
                    format!("{} is out of range (syscall arguments are 0-5)", a.index()),
                ));
            }
            let op = match a.op() {
                Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
                Op::ScmpCmpLt => ScmpCompareOp::Less,
                Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                Op::ScmpCmpEq => ScmpCompareOp::Equal,
                Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                Op::ScmpCmpGt => ScmpCompareOp::Greater,
                Op::ScmpCmpMaskedEq => {
                    return Ok(ScmpArgCompare::new(
                        arg_index(a),
                        ScmpCompareOp::MaskedEqual(a.value()),
                        a.value_two().unwrap_or(0),
                    ));
                }
            };
            if let Some(v) = a.value_two().filter(|v| *v != 0) {
                return Err(invalid(
                    format!("{arg_field}.valueTwo"),
                    format!("{v} is only used by SCMP_CMP_MASKED_EQ, not {}", a.op()),
                ));
            }
            Ok(ScmpArgCompare::new(arg_index(a), op, a.value()))
        })
        .collect()
}

/// The index was checked against `SYSCALL_MAX_ARGS` (6), so it always fits.
fn arg_index(a: &LinuxSeccompArg) -> u32 {
    u32::try_from(a.index()).unwrap_or(u32::MAX)
}

/// The errno behind a libseccomp error, if it carries one.
fn kernel_errno(e: &ScmpError) -> Option<i32> {
    use libseccomp::error::SeccompErrno as E;
    if let Some(rc) = e.sysrawrc() {
        return Some(rc.abs());
    }
    Some(match e.errno()? {
        E::EACCES => libc::EACCES,
        E::ECANCELED => libc::ECANCELED,
        E::EDOM => libc::EDOM,
        E::EEXIST => libc::EEXIST,
        E::EFAULT => libc::EFAULT,
        E::EINVAL => libc::EINVAL,
        E::ENOENT => libc::ENOENT,
        E::ENOMEM => libc::ENOMEM,
        E::EOPNOTSUPP => libc::EOPNOTSUPP,
        E::ERANGE => libc::ERANGE,
        E::ESRCH => libc::ESRCH,
        _ => return None,
    })
}

/// The C libseccomp version in use, for `--version` and `features`.
pub fn library_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("test profile is valid JSON for LinuxSeccomp")
    }

    /// Runs an export through a scratch file (`export_bpf_mem` needs libseccomp 2.6).
    fn export(
        ctx: &ScmpFilterContext,
        what: &str,
        f: fn(&ScmpFilterContext, &std::fs::File) -> Result<(), ScmpError>,
    ) -> Vec<u8> {
        let path = std::env::temp_dir().join(format!(
            "peapod-seccomp-{what}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::File::create(&path).expect("create export scratch file");
        f(ctx, &file).unwrap_or_else(|e| panic!("export {what}: {e}"));
        let bytes = std::fs::read(&path).expect("read export scratch file");
        let _ = std::fs::remove_file(&path);
        bytes
    }

    /// libseccomp's human-readable dump of the filter ("pseudo filter code").
    fn pfc(ctx: &ScmpFilterContext) -> String {
        let bytes = export(ctx, "pfc", |c, f| c.export_pfc(f));
        String::from_utf8(bytes).expect("pfc is text")
    }

    /// The BPF program the kernel would get.
    fn bpf(ctx: &ScmpFilterContext) -> Vec<u8> {
        export(ctx, "bpf", |c, f| c.export_bpf(f))
    }

    fn err(json: &str) -> String {
        match compile(&profile(json)) {
            Ok(_) => panic!("profile compiled but should not: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn compile_maps_actions_errno_and_args() {
        let s = profile(
            r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
                          {"index": 2, "value": 5, "op": "SCMP_CMP_GT"}]},
                {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["kexec_load"], "action": "SCMP_ACT_KILL"},
                {"names": ["reboot"], "action": "SCMP_ACT_KILL_THREAD"},
                {"names": ["acct"], "action": "SCMP_ACT_TRAP"},
                {"names": ["swapon"], "action": "SCMP_ACT_LOG"}
            ]}"#,
        );
        let ctx = compile(&s).expect("compile");
        let text = pfc(&ctx);
        let block = |name: &str| -> String {
            let start = text
                .find(&format!("filter for syscall \"{name}\""))
                .unwrap_or_else(|| panic!("no rule for {name} in:\n{text}"));
            let rest = &text[start..];
            let end = rest[1..].find("# filter for").map_or(rest.len(), |e| e + 1);
            rest[..end].to_string()
        };
        // errnoRet absent → EPERM (1), as runc.
        assert!(block("mkdir").contains("action ERRNO(1);"), "{text}");
        assert!(block("mkdirat").contains("action ERRNO(1);"), "{text}");
        assert!(block("rmdir").contains("action ERRNO(38);"), "{text}");
        // Same index twice → one rule per condition (OR), as runc.
        let fchmod = block("fchmod");
        assert!(
            fchmod.contains("== 511") && fchmod.contains("== 448"),
            "{fchmod}"
        );
        assert_eq!(fchmod.matches("action ERRNO(13);").count(), 2, "{fchmod}");
        // MASKED_EQ: value is the mask, valueTwo the result; ANDed with the other index.
        let clone = block("clone");
        assert!(clone.contains("& 0x7e020000 == 0"), "{clone}");
        assert!(clone.contains("> 5"), "{clone}");
        assert!(clone.contains("action KILL_PROCESS;"), "{clone}");
        assert!(block("ptrace").contains("action TRACE(7);"), "{text}");
        assert!(block("kexec_load").contains("action KILL;"), "{text}");
        assert!(block("reboot").contains("action KILL;"), "{text}");
        assert!(block("acct").contains("action TRAP;"), "{text}");
        assert!(block("swapon").contains("action LOG;"), "{text}");
        assert!(text.contains("# default action\n  action ALLOW;"), "{text}");

        let bpf = bpf(&ctx);
        assert!(
            !bpf.is_empty() && bpf.len().is_multiple_of(8),
            "bpf is whole sock_filter insns"
        );
    }

    #[test]
    fn every_operator_compiles() {
        for op in known_operators() {
            let json = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["personality"],
                   "action": "SCMP_ACT_ERRNO", "args": [{{"index": 0, "value": 8, "op": "{op}"}}]}}]}}"#
            );
            let ctx = compile(&profile(&json)).unwrap_or_else(|e| panic!("{op}: {e}"));
            assert!(!bpf(&ctx).is_empty(), "{op}");
        }
    }

    #[test]
    fn every_known_action_and_arch_compiles() {
        for action in known_actions() {
            let json = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                    "syscalls": [{{"names": ["mkdir"], "action": "{action}"}}]}}"#
            );
            compile(&profile(&json)).unwrap_or_else(|e| panic!("{action}: {e}"));
            if *action == "SCMP_ACT_NOTIFY" {
                continue;
            }
            let json = format!(r#"{{"defaultAction": "{action}"}}"#);
            compile(&profile(&json)).unwrap_or_else(|e| panic!("{action}: {e}"));
        }
        for arch in known_archs() {
            let json =
                format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["{arch}"]}}"#);
            match compile(&profile(&json)) {
                Ok(ctx) => assert!(!bpf(&ctx).is_empty(), "{arch}"),
                // Known, but of the other byte order than this machine.
                Err(SeccompError::Invalid { reason, .. }) if reason.contains("byte order") => {}
                Err(e) => panic!("{arch}: {e}"),
            }
        }
        if cfg!(target_arch = "x86_64") {
            let docker = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures":
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#;
            compile(&profile(docker)).expect("x86 family compiles on x86_64");
        }
    }

    #[test]
    fn architectures_are_added_to_the_filter() {
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let ctx = compile(&s).expect("compile");
        for arch in [ScmpArch::X8664, ScmpArch::X86, ScmpArch::Aarch64] {
            assert!(ctx.is_arch_present(arch).expect("query arch"), "{arch:?}");
        }
        assert_eq!(
            ctx.get_act_default().expect("default"),
            ScmpAction::Errno(38)
        );
    }

    #[test]
    fn filter_leaves_no_new_privs_to_the_caller() {
        let ctx = compile(&profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).expect("compile");
        assert!(!ctx.get_ctl_nnp().expect("nnp attr"));
    }

    #[test]
    fn flags_absent_means_spec_allow_and_empty_means_none() {
        let absent = compile(&profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).expect("compile");
        assert_eq!(
            absent.get_ctl_ssb().expect("ssb"),
            libseccomp::get_api() >= 4
        );
        let empty = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": []}"#,
        ))
        .expect("compile");
        assert!(!empty.get_ctl_ssb().expect("ssb"));
        let set = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]}"#,
        ))
        .expect("compile");
        assert!(set.get_ctl_log().expect("log"));
        assert!(set.get_ctl_tsync().expect("tsync"));
        assert!(!set.get_ctl_ssb().expect("ssb"));
    }

    #[test]
    fn unknown_syscalls_are_skipped_and_reported() {
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["no_such_syscall_xyz", "mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        let text = pfc(&compile(&s).expect("compile"));
        assert!(text.contains("\"mkdir\""), "{text}");
        assert_eq!(unresolved_syscalls(&s), vec!["no_such_syscall_xyz"]);
    }

    #[test]
    fn rule_with_the_default_action_is_skipped() {
        // libseccomp refuses such a rule (EACCES); runc skips it, so do we.
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let text = pfc(&compile(&s).expect("compile"));
        assert!(
            !text.contains("\"mkdir\"") && !text.contains("\"rmdir\""),
            "{text}"
        );
        assert!(text.contains("\"read\""), "{text}");
    }

    #[test]
    fn notify_is_refused_where_runc_refuses_it() {
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock"}"#),
            "unable to init seccomp: SCMP_ACT_NOTIFY cannot be used as default action \
             (linux.seccomp.defaultAction)"
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}"#
            ),
            "unable to init seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall \
             (linux.seccomp.syscalls[1].names[1])"
        );
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#),
            "seccomp listenerPath is not set (linux.seccomp.syscalls[0].action SCMP_ACT_NOTIFY)"
        );
        let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW",
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#);
        assert!(
            e.starts_with(
                "linux.seccomp.flags[1] (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) is not supported: \
                 error adding WaitKill flag to seccomp filter: SetWaitKill requires libseccomp >= 2.6.0"
            ),
            "{e}"
        );
    }

    #[test]
    fn build_puts_the_stub_first_and_asks_for_a_listener_with_notify() {
        use peapod_sys::seccomp::{FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW};
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                "listenerPath": "/run/a.sock", "flags": [],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        let f = build(&s).expect("build");
        assert!(f.notify());
        assert_eq!(f.flags, FLAG_NEW_LISTENER);
        let plain = bpf(&compile(&s).expect("compile")).len() / 8;
        let stub = enosys::stub(&s).len();
        assert!(stub > 0);
        assert_eq!(f.program().len(), stub + plain);
        // Permissive default: no stub, and SPEC_ALLOW when `flags` is absent (if supported).
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        let f = build(&s).expect("build");
        assert!(!f.notify());
        assert_eq!(
            f.program().len(),
            bpf(&compile(&s).expect("compile")).len() / 8
        );
        assert_eq!(f.flags & FLAG_SPEC_ALLOW != 0, libseccomp::get_api() >= 4);
    }

    #[test]
    fn listener_is_only_used_with_a_notify_rule() {
        // Without a NOTIFY rule the listener fields are ignored, as runc does.
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
                "listenerMetadata": "m"}"#,
        );
        compile(&s).expect("compile");
        assert_eq!(listener(&s), None);
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
                "listenerMetadata": "m", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        let text = pfc(&compile(&s).expect("compile"));
        assert!(text.contains("action 0x7fc00000;"), "{text}"); // SECCOMP_RET_USER_NOTIF
        assert_eq!(
            listener(&s),
            Some(Listener {
                path: "/run/a.sock".into(),
                metadata: "m".into()
            })
        );
    }

    #[test]
    fn invalid_values_are_refused_by_field() {
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_LOG", "errnoRet": 1}]}"#),
            "invalid linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_LOG does not take an errno \
             (got 1); only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do"
        );
        assert!(
            err(r#"{"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}"#)
                .starts_with("invalid linux.seccomp.defaultErrnoRet: SCMP_ACT_KILL does not take")
        );
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}"#),
            "invalid linux.seccomp.syscalls[0].errnoRet: 70000 does not fit in the 16-bit \
             seccomp return data (max 65535)"
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                    "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#
            ),
            "invalid linux.seccomp.syscalls[0].args[0].index: 6 is out of range \
             (syscall arguments are 0-5)"
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "valueTwo": 3, "op": "SCMP_CMP_EQ"}]}]}"#
            ),
            "invalid linux.seccomp.syscalls[0].args[0].valueTwo: 3 is only used by \
             SCMP_CMP_MASKED_EQ, not SCMP_CMP_EQ"
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}"#
            ),
            "invalid linux.seccomp.syscalls[0].names: must name at least one syscall"
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]}"#
            ),
            "invalid linux.seccomp.syscalls[0].names[1]: empty syscall name"
        );
    }

    #[test]
    fn conflicting_rules_are_refused_by_name() {
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]},
                {"names": ["rmdir", "mkdir"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]}]}"#),
            "invalid linux.seccomp.syscalls[1] (mkdir): conflicts with an earlier rule for the \
             same syscall and arguments that has a different action"
        );
        // Unconditional duplicates: libseccomp keeps the first, like runc.
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
        );
        let text = pfc(&compile(&s).expect("compile"));
        assert!(
            text.contains("action ERRNO(1);") && !text.contains("KILL_PROCESS"),
            "{text}"
        );
    }

    #[test]
    fn foreign_byte_order_arch_is_explained() {
        // libseccomp keeps one byte order per filter: pick an arch of the other order.
        let foreign = if cfg!(target_endian = "little") {
            "SCMP_ARCH_S390X"
        } else {
            "SCMP_ARCH_X86_64"
        };
        let json =
            format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["{foreign}"]}}"#);
        assert_eq!(
            err(&json),
            format!(
                "invalid linux.seccomp.architectures[0]: {foreign} cannot be combined with the \
                 native architecture in one filter (different byte order)"
            )
        );
    }

    #[test]
    fn unknown_action_is_rejected_when_the_config_is_parsed() {
        // The typed oci-spec enums cannot hold an unknown action, operator, arch or flag, so the
        // error comes from deserialising config.json; it names the value and the position.
        let e = serde_json::from_str::<LinuxSeccomp>(r#"{"defaultAction": "SCMP_ACT_FOO"}"#)
            .expect_err("unknown action must not parse");
        assert!(
            e.to_string().starts_with("unknown variant `SCMP_ACT_FOO`"),
            "{e}"
        );
    }

    #[test]
    fn feature_lists_parse_as_oci_values() {
        for a in known_actions() {
            assert!(a.parse::<LinuxSeccompAction>().is_ok(), "{a}");
        }
        for o in known_operators() {
            assert!(o.parse::<LinuxSeccompOperator>().is_ok(), "{o}");
        }
        for a in known_archs() {
            assert!(a.parse::<Arch>().is_ok(), "{a}");
        }
        for f in known_flags() {
            assert!(f.parse::<LinuxSeccompFilterFlag>().is_ok(), "{f}");
        }
        assert!(supported_flags().iter().all(|f| known_flags().contains(f)));
    }

    /// CapEff of this process has CAP_SYS_ADMIN (bit 21).
    fn has_cap_sys_admin() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << 21) != 0)
    }

    /// Runs `body` in a child process and returns its exit code (128 + signal if killed).
    ///
    /// The child is this test binary run again for the one test `name` (with
    /// `PEAPOD_SECCOMP_CHILD=name`), so a filter it loads or an identity it drops never reaches
    /// the harness, and no `fork` of the multi-threaded harness is needed. In that child the
    /// call runs `body` and exits with its code (0 sent as 77, so that a child which ran no
    /// test, exiting 0, cannot pass for a successful body).
    fn run_in_child(
        name: &str,
        env: &[(&str, &std::path::Path)],
        body: impl FnOnce() -> i32,
    ) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        if std::env::var("PEAPOD_SECCOMP_CHILD").as_deref() == Ok(name) {
            std::process::exit(match body() {
                0 => 77,
                code => code,
            });
        }
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            &format!("seccomp::tests::{name}"),
            "--exact",
            "--test-threads=1",
        ])
        .env("PEAPOD_SECCOMP_CHILD", name)
        .stdout(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let status = cmd.status().expect("run the test binary again");
        match status.code().or(status.signal().map(|s| 128 + s)) {
            Some(77) => 0,
            Some(0) => panic!("the child ran no test named seccomp::tests::{name}"),
            Some(code) => code,
            None => panic!("child status {status:?}"),
        }
    }

    fn no_new_privs() -> bool {
        nix::sys::prctl::get_no_new_privs().expect("PR_GET_NO_NEW_PRIVS")
    }

    #[test]
    fn loaded_filter_applies_errno_ret_in_the_child_only() {
        use std::os::unix::fs::PermissionsExt;

        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let ctx = build(&s).expect("build");
        // The child (see run_in_child) gets the parent's scratch directory.
        let base = match std::env::var_os("PEAPOD_SECCOMP_DIR") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => {
                let base = std::env::temp_dir()
                    .join(format!("peapod-seccomp-live-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&base);
                std::fs::create_dir(&base).expect("create scratch dir");
                std::fs::File::create(base.join("f")).expect("create scratch file");
                base
            }
        };
        let sys_admin = has_cap_sys_admin();

        let name = "loaded_filter_applies_errno_ret_in_the_child_only";
        let code = run_in_child(name, &[("PEAPOD_SECCOMP_DIR", &base)], || {
            let Ok(file) = std::fs::File::options().write(true).open(base.join("f")) else {
                return 8;
            };
            // The filter does not set NNP itself: without CAP_SYS_ADMIN the kernel wants it set.
            if !sys_admin && nix::sys::prctl::set_no_new_privs().is_err() {
                return 9;
            }
            if load(&ctx).is_err() {
                return 10;
            }
            if sys_admin && no_new_privs() {
                return 11; // libseccomp set NNP although the attribute is off
            }
            match std::fs::create_dir(base.join("d")) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                _ => return 12,
            }
            match file.set_permissions(std::fs::Permissions::from_mode(0o777)) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
                _ => return 13,
            }
            if file
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .is_err()
            {
                return 14;
            }
            0
        });
        let parent_mkdir = std::fs::create_dir(base.join("parent"));
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(
            code, 0,
            "child failed at step {code} (8 open, 9 nnp, 10 load, 11 nnp forced, 12 mkdir, 13 fchmod 777, 14 fchmod 644)"
        );
        assert!(parent_mkdir.is_ok(), "the filter leaked into the parent");
    }

    #[test]
    fn load_without_nnp_or_cap_sys_admin_explains_why() {
        let ctx = build(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": []}"#,
        ))
        .expect("build");
        let name = "load_without_nnp_or_cap_sys_admin_explains_why";
        let code = run_in_child(name, &[], || {
            // Drop every capability by becoming nobody (root only), and leave NNP unset.
            let nobody = nix::unistd::Uid::from_raw(65534);
            if has_cap_sys_admin() && nix::unistd::setresuid(nobody, nobody, nobody).is_err() {
                return 9;
            }
            if has_cap_sys_admin() || no_new_privs() {
                return 10; // cannot build the situation under test here
            }
            match load(&ctx) {
                Err(e) => {
                    let text = e.to_string();
                    if text.starts_with("load seccomp filter: Permission denied (os error 13)")
                        && text
                            .contains("hint: loading a filter needs no_new_privs or CAP_SYS_ADMIN")
                    {
                        0
                    } else {
                        11
                    }
                }
                Ok(_) => 12,
            }
        });
        assert_eq!(
            code, 0,
            "child failed at step {code} (9 setresuid, 10 setup, 11 message, 12 loaded)"
        );
    }
}
