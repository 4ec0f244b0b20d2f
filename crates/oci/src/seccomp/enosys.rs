//! runc's `-ENOSYS` stub (`libcontainer/seccomp/patchbpf`): a few BPF instructions put before
//! the libseccomp program so that a syscall whose number is above the largest one the profile
//! names (per architecture listed in `linux.seccomp.architectures`) fails with ENOSYS instead of
//! getting the default action. A program that tries a new syscall (clone3, openat2, ...) then
//! falls back to the old one, as it would on an older kernel, instead of failing with EPERM.
//!
//! runc's conditions, reproduced: no stub when the default action is permissive (ALLOW, LOG or
//! TRACE) or is ERRNO(ENOSYS) already; only the listed architectures get a section (without
//! `architectures` there is none); a rule's names count whatever its action, names libseccomp
//! cannot resolve for that architecture do not; x86_64 and x32 share an audit arch and are told
//! apart by bit 30 of the syscall number; on s390/s390x syscall 0 (the multiplexer that unknown
//! syscalls end up as) gets ENOSYS too. Architectures runc cannot map (PA-RISC, LoongArch, M68K,
//! SuperH) get no section here.

use std::collections::BTreeMap;

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use peapod_sys::seccomp::SockFilter;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// `SECCOMP_RET_ERRNO | ENOSYS`.
pub const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// x32 syscalls are x86_64's audit arch with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_*` of a libseccomp architecture, for the ones runc maps.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const B64: u32 = 0x8000_0000;
    const LE: u32 = 0x4000_0000;
    const N32: u32 = 0x2000_0000;
    Some(match arch {
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Mips => 8,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mips64N32 => 8 | B64 | N32,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | N32,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        _ => return None,
    })
}

/// Where a jump of the stub goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// The stub's `ret ERRNO(ENOSYS)`.
    Enosys,
    /// The first instruction of the libseccomp program.
    Filter,
    /// The section of the n-th architecture.
    Section(usize),
    /// Skip this many instructions.
    Skip(u8),
}

struct Insn {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn ld(off: u32) -> Insn {
    Insn {
        code: BPF_LD_W_ABS,
        k: off,
        jt: To::Next,
        jf: To::Next,
    }
}

fn jmp(code: u16, k: u32, jt: To, jf: To) -> Insn {
    Insn { code, k, jt, jf }
}

/// The largest syscall number of `arch` that `s` names (0: none).
fn largest_syscall(s: &LinuxSeccomp, arch: ScmpArch) -> u32 {
    s.syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names().iter())
        .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
        .map(i32::from)
        .filter(|n| *n > 0)
        .max()
        .unwrap_or(0) as u32
}

/// The stub for `s`, empty when runc would add none.
pub fn stub(s: &LinuxSeccomp) -> Vec<SockFilter> {
    use LinuxSeccompAction as A;
    let default = s.default_action();
    if matches!(default, A::ScmpActAllow | A::ScmpActLog | A::ScmpActTrace) {
        return Vec::new();
    }
    if default == A::ScmpActErrno && s.default_errno_ret() == Some(libc::ENOSYS as u32) {
        return Vec::new();
    }
    // audit arch → (libseccomp arch → largest syscall), in a stable order.
    let mut arches: BTreeMap<u32, BTreeMap<u32, (ScmpArch, u32)>> = BTreeMap::new();
    for arch in s.architectures().iter().flatten() {
        let arch = match super::map_arch(*arch) {
            ScmpArch::Native => ScmpArch::native(),
            a => a,
        };
        let Some(audit) = audit_arch(arch) else {
            continue;
        };
        let max = largest_syscall(s, arch);
        if max == 0 {
            continue;
        }
        let x32 = u32::from(arch == ScmpArch::X32);
        arches.entry(audit).or_default().insert(x32, (arch, max));
    }
    if arches.is_empty() {
        return Vec::new();
    }
    let mut sections: Vec<Vec<Insn>> = Vec::new();
    for modes in arches.values() {
        let mut sec = vec![ld(OFF_NR)];
        let (x86_64, x32) = (modes.get(&0), modes.get(&1));
        match (x86_64, x32) {
            (Some((ScmpArch::X8664, max)), None) => {
                sec.push(jmp(BPF_JSET_K, X32_SYSCALL_BIT, To::Filter, To::Next));
                sec.push(jmp(BPF_JGT_K, *max, To::Enosys, To::Filter));
            }
            (None, Some((_, max))) => {
                sec.push(jmp(BPF_JSET_K, X32_SYSCALL_BIT, To::Next, To::Filter));
                sec.push(jmp(BPF_JGT_K, *max, To::Enosys, To::Filter));
            }
            (Some((_, max64)), Some((_, max32))) => {
                sec.push(jmp(BPF_JSET_K, X32_SYSCALL_BIT, To::Skip(1), To::Next));
                sec.push(jmp(BPF_JGT_K, *max64, To::Enosys, To::Filter));
                sec.push(jmp(BPF_JGT_K, *max32, To::Enosys, To::Filter));
            }
            (Some((arch, max)), None) => {
                if matches!(arch, ScmpArch::S390 | ScmpArch::S390X) {
                    sec.push(jmp(BPF_JEQ_K, 0, To::Enosys, To::Next));
                }
                sec.push(jmp(BPF_JGT_K, *max, To::Enosys, To::Filter));
            }
            (None, None) => continue,
        }
        sections.push(sec);
    }
    let mut prog: Vec<Insn> = vec![ld(OFF_ARCH)];
    for (i, audit) in arches.keys().enumerate() {
        prog.push(jmp(BPF_JEQ_K, *audit, To::Section(i), To::Next));
    }
    // Any other architecture: straight to libseccomp's program (its bad-arch action).
    prog.push(jmp(BPF_JMP_JA, 0, To::Filter, To::Filter));
    let mut starts = Vec::new();
    for sec in sections {
        starts.push(prog.len());
        prog.extend(sec);
    }
    let enosys = prog.len();
    prog.push(Insn {
        code: BPF_RET_K,
        k: RET_ENOSYS,
        jt: To::Next,
        jf: To::Next,
    });
    let filter = prog.len();
    let target = |pc: usize, to: To| -> usize {
        match to {
            To::Next => pc + 1,
            To::Enosys => enosys,
            To::Filter => filter,
            To::Section(i) => starts[i],
            To::Skip(n) => pc + 1 + usize::from(n),
        }
    };
    let mut out = Vec::with_capacity(prog.len());
    for (pc, insn) in prog.iter().enumerate() {
        let (jt, jf, k) = if insn.code == BPF_JMP_JA {
            (0, 0, (target(pc, insn.jt) - pc - 1) as u32)
        } else if insn.code & 0x07 == 0x05 {
            let rel = |to| target(pc, to) - pc - 1;
            let (jt, jf) = (rel(insn.jt), rel(insn.jf));
            // A few instructions per architecture: never near the 255 limit of a conditional
            // jump, but a stub that cannot be encoded is left out rather than mis-encoded.
            let (Ok(jt), Ok(jf)) = (u8::try_from(jt), u8::try_from(jf)) else {
                log::warn!("seccomp: -ENOSYS stub too long, left out");
                return Vec::new();
            };
            (jt, jf, insn.k)
        } else {
            (0, 0, insn.k)
        };
        out.push(SockFilter {
            code: insn.code,
            jt,
            jf,
            k,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs a classic BPF seccomp program on (arch, nr): the subset libseccomp and the stub use.
    pub fn run(prog: &[SockFilter], arch: u32, nr: u32) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    a = match i.k {
                        0 => nr,
                        4 => arch,
                        _ => 0, // arguments and ip: 0 in these tests
                    }
                }
                0x05 => pc += i.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match i.code {
                        0x15 => a == i.k,
                        0x25 => a > i.k,
                        0x35 => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                0x06 => return i.k,
                0x16 => return a,
                0x54 => a &= i.k,
                other => panic!("BPF op {other:#x} not in the test interpreter"),
            }
        }
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("profile")
    }

    const X86_64: u32 = 0xC000_003E;
    const I386: u32 = 0x4000_0003;
    const AARCH64: u32 = 0xC000_00B7;
    const FILTER: u32 = 0x7fff_0000; // stands for libseccomp's program: RET_ALLOW

    fn with_filter(stub: Vec<SockFilter>) -> Vec<SockFilter> {
        let mut p = stub;
        p.push(SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: FILTER,
        });
        p
    }

    #[test]
    fn syscalls_above_the_largest_named_get_enosys() {
        // mkdir 83, getpid 39, openat 257 on x86_64; on i386 openat is 295.
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["getpid", "openat"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]}"#,
        );
        let p = with_filter(stub(&s));
        assert_eq!(run(&p, X86_64, 39), FILTER);
        assert_eq!(run(&p, X86_64, 257), FILTER);
        assert_eq!(run(&p, X86_64, 258), RET_ENOSYS);
        assert_eq!(run(&p, X86_64, 435), RET_ENOSYS); // clone3
        assert_eq!(run(&p, I386, 295), FILTER);
        assert_eq!(run(&p, I386, 296), RET_ENOSYS);
        // x32: openat is 0x40000101, the stub compares with the bit set.
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 257), FILTER);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 600), RET_ENOSYS);
        // An architecture not listed goes to the filter (its bad-arch action).
        assert_eq!(run(&p, AARCH64, 1000), FILTER);
    }

    #[test]
    fn x86_64_alone_leaves_x32_numbers_to_the_filter() {
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let p = with_filter(stub(&s));
        assert_eq!(run(&p, X86_64, 40), RET_ENOSYS);
        assert_eq!(run(&p, X86_64, 39), FILTER);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 600), FILTER);
    }

    #[test]
    fn no_stub_where_runc_adds_none() {
        for json in [
            // Permissive default actions.
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
            r#"{"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
            r#"{"defaultAction": "SCMP_ACT_TRACE", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
            // Already ENOSYS.
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
            // No architectures listed.
            r#"{"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
            // No syscall named for the architecture.
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_ALLOW"}]}"#,
        ] {
            assert!(stub(&profile(json)).is_empty(), "{json}");
        }
    }

    #[test]
    fn native_counts_as_the_machines_architecture() {
        let s = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_NATIVE"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let native = audit_arch(ScmpArch::native()).expect("mapped native arch");
        let getpid = i32::from(ScmpSyscall::from_name("getpid").unwrap()) as u32;
        let p = with_filter(stub(&s));
        assert_eq!(run(&p, native, getpid), FILTER);
        assert_eq!(run(&p, native, getpid + 1), RET_ENOSYS);
    }
}
