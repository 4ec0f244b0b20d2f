//! Device access rules: OCI `linux.resources.devices` parsed once, then rendered as v1
//! `devices.allow`/`devices.deny` writes or assembled into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program for v2 (pure functions; loading lives in `bpf.rs`).
//!
//! Semantics (same as runc and crun): access is denied by default, the rules are evaluated in
//! order and the last matching rule wins. An allow rule matches a request whose access bits are
//! all granted by the rule; a deny rule matches a request that asks for any bit it denies (a
//! stricter reading than runc's program, which lets `rw` through a `deny w` rule).

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{CgroupError, Result};

/// Access bits, equal to the kernel's `BPF_DEVCG_ACC_*` values.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device types, equal to the kernel's `BPF_DEVCG_DEV_*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKind {
    Block = 1,
    Char = 2,
}

/// One normalized rule; `None` means "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: Option<DevKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl DeviceRule {
    /// Matches every device and every access: everything before it is irrelevant.
    pub fn is_catch_all(&self) -> bool {
        self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }

    /// Whether this rule decides a request (reference semantics for the tests and for v1).
    #[cfg(test)]
    pub fn matches(&self, kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && if self.allow {
                access & self.access == access
            } else {
                access & self.access != 0
            }
    }
}

/// Validates and normalizes the OCI rules. A missing type is `a`, a missing or negative
/// major/minor is a wildcard, a missing access (or one of only `a`) is `rwm`; the letter `a`
/// adds nothing to others (`ra` is `r`, as with runc); `u` is a character device.
pub fn parse_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let invalid = |reason: String| CgroupError::InvalidValue {
                field: format!("linux.resources.devices[{i}]"),
                reason,
            };
            let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => None,
                LinuxDeviceType::C | LinuxDeviceType::U => Some(DevKind::Char),
                LinuxDeviceType::B => Some(DevKind::Block),
                LinuxDeviceType::P => {
                    return Err(invalid("type p (fifo) is not a device cgroup type".into()));
                }
            };
            let number = |n: Option<i64>, what: &str| match n {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| invalid(format!("{what} {n} is out of range"))),
            };
            let mut access = 0;
            for c in r.access().as_deref().unwrap_or("rwm").chars() {
                access |= match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    // runc keeps only r, w and m of the string (`ra` is `r`), and a wildcard
                    // rule written `a` is its whole access: `a` adds nothing here, and a rule
                    // left without letters gets every access below.
                    'a' => 0,
                    c => return Err(invalid(format!("unknown access {c:?} (want r, w, m)"))),
                };
            }
            Ok(DeviceRule {
                allow: r.allow(),
                kind,
                major: number(r.major(), "major")?,
                minor: number(r.minor(), "minor")?,
                access: if access == 0 { ACC_ALL } else { access },
            })
        })
        .collect()
}

/// The rules runc adds to every container (`AllowedDevices` in runc's specconv): mknod of any
/// device, the standard character devices, `/dev/pts/*`, `/dev/ptmx` and `/dev/net/tun`. The
/// core appends them (plus one rule per `linux.devices` entry) to the spec's own rules.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let c = LinuxDeviceType::C;
    let mut rules = vec![
        rule(c, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
    ];
    // null, random, full, tty, zero, urandom, pts, ptmx, net/tun
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(8)),
        (1, Some(7)),
        (5, Some(0)),
        (1, Some(5)),
        (1, Some(9)),
        (136, None),
        (5, Some(2)),
        (10, Some(200)),
    ] {
        rules.push(rule(c, Some(major), minor, "rwm"));
    }
    rules
}

/// One v1 `devices.allow`/`devices.deny` write. `kind: None` only for the full wildcard, which
/// the kernel reads as `a` (it ignores everything after an `a`, so `a 1:3 r` would allow all:
/// partial `a` rules are split into `c` and `b` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V1Line {
    pub allow: bool,
    pub kind: Option<DevKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl std::fmt::Display for V1Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            None => return write!(f, "a"),
            Some(DevKind::Char) => 'c',
            Some(DevKind::Block) => 'b',
        };
        write!(
            f,
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            access_str(self.access)
        )
    }
}

pub fn access_str(access: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| access & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The v1 writes: deny everything, then each rule in order (the kernel's exception list gives
/// the same last-match-wins result for these shapes).
pub fn v1_lines(rules: &[DeviceRule]) -> Vec<V1Line> {
    let mut lines = vec![V1Line {
        allow: false,
        kind: None,
        major: None,
        minor: None,
        access: ACC_ALL,
    }];
    for r in rules {
        let line = |kind| V1Line {
            allow: r.allow,
            kind,
            major: r.major,
            minor: r.minor,
            access: r.access,
        };
        match r.kind {
            _ if r.is_catch_all() => lines.push(line(None)),
            Some(k) => lines.push(line(Some(k))),
            None => {
                lines.push(line(Some(DevKind::Char)));
                lines.push(line(Some(DevKind::Block)));
            }
        }
    }
    lines
}

/// One eBPF instruction (`struct bpf_insn`, defined next to the bpf(2) call that loads it).
pub use peapod_sys::bpf::Insn;

// Opcodes: class | op | source.
pub const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
pub const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
pub const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
pub const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// Assembles the device filter. `struct bpf_cgroup_dev_ctx` (in r1) is
/// `{ u32 access_type /* type | access << 16 */; u32 major; u32 minor; }`; the program loads
/// r2 = type, r3 = access, r4 = major, r5 = minor, then has one block per rule, last rule first,
/// each ending in `r0 = verdict; exit` and jumping to the next block on a mismatch. Blocks after
/// a catch-all rule would be unreachable (which the verifier rejects), so generation stops there;
/// otherwise the program ends with the default verdict, deny.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Jumps are emitted with off = -1 and patched to the next block once its start is known.
        let start = p.len();
        if let Some(kind) = rule.kind {
            p.push(insn(JMP_JNE_K, 2, 0, -1, kind as i32));
        }
        if rule.access != ACC_ALL {
            p.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            p.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(rule.access)));
            p.push(if rule.allow {
                // requested access not a subset of the allowed bits: no match
                insn(JMP_JNE_X, 1, 3, -1, 0)
            } else {
                // no requested bit among the denied ones: no match
                insn(JMP_JEQ_K, 1, 0, -1, 0)
            });
        }
        if let Some(major) = rule.major {
            p.push(insn(JMP_JNE_K, 4, 0, -1, major as i32));
        }
        if let Some(minor) = rule.minor {
            p.push(insn(JMP_JNE_K, 5, 0, -1, minor as i32));
        }
        p.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(rule.allow)));
        p.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let end = p.len();
        for (i, ins) in p.iter_mut().enumerate().take(end).skip(start) {
            if ins.off == -1 {
                ins.off = (end - i - 1) as i16;
            }
        }
        if rule.is_catch_all() {
            return p;
        }
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(
        allow: bool,
        typ: &str,
        major: Option<i64>,
        minor: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        serde_json::from_value(serde_json::json!({
            "allow": allow, "type": typ, "major": major, "minor": minor, "access": acc
        }))
        .unwrap()
    }

    /// A tiny interpreter for the opcodes `program` emits.
    fn run(prog: &[Insn], kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
        let ctx = [(kind as u32) | (u32::from(access) << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i64::from(i.imm) as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                JMP_JEQ_K if r[dst] == imm => pc += i.off as usize,
                JMP_JNE_K if r[dst] != imm => pc += i.off as usize,
                JMP_JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JMP_JEQ_K | JMP_JNE_K | JMP_JNE_X => {}
                JMP_EXIT => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
        panic!("program did not terminate")
    }

    fn reference(rules: &[DeviceRule], kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
        rules
            .iter()
            .rev()
            .find(|r| r.matches(kind, major, minor, access))
            .is_some_and(|r| r.allow)
    }

    #[test]
    fn parse_defaults_and_errors() {
        let rules = parse_rules(&[
            oci(false, "a", None, None, "rwm"),
            oci(true, "u", Some(1), Some(-1), "rw"),
        ])
        .unwrap();
        assert!(rules[0].is_catch_all() && !rules[0].allow);
        assert_eq!(
            rules[1],
            DeviceRule {
                allow: true,
                kind: Some(DevKind::Char),
                major: Some(1),
                minor: None,
                access: ACC_READ | ACC_WRITE
            }
        );
        let err = parse_rules(&[oci(true, "c", Some(1), Some(3), "rx")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid linux.resources.devices[0]: unknown access 'x' (want r, w, m)"
        );
        assert!(parse_rules(&[oci(true, "p", None, None, "r")]).is_err());
        assert!(parse_rules(&[oci(true, "c", Some(1 << 40), None, "r")]).is_err());
        // `a` as runc reads it: nothing beside other letters, everything alone.
        let rules = parse_rules(&[
            oci(false, "a", None, None, "a"),
            oci(true, "b", Some(7), Some(1), "ra"),
        ])
        .unwrap();
        assert!(rules[0].is_catch_all() && !rules[0].allow);
        assert_eq!(rules[1].access, ACC_READ);
    }

    #[test]
    fn program_for_deny_all_plus_null() {
        let rules = parse_rules(&[
            oci(false, "a", None, None, "rwm"),
            oci(true, "c", Some(1), Some(3), "rwm"),
        ])
        .unwrap();
        let p = program(&rules);
        let expected = vec![
            insn(LDX_MEM_W, 2, 1, 0, 0),
            insn(ALU32_AND_K, 2, 0, 0, 0xffff),
            insn(LDX_MEM_W, 3, 1, 0, 0),
            insn(ALU32_RSH_K, 3, 0, 0, 16),
            insn(LDX_MEM_W, 4, 1, 4, 0),
            insn(LDX_MEM_W, 5, 1, 8, 0),
            // allow c 1:3 rwm
            insn(JMP_JNE_K, 2, 0, 4, 2),
            insn(JMP_JNE_K, 4, 0, 3, 1),
            insn(JMP_JNE_K, 5, 0, 2, 3),
            insn(ALU32_MOV_K, 0, 0, 0, 1),
            insn(JMP_EXIT, 0, 0, 0, 0),
            // deny a *:* rwm (catch-all ends the program)
            insn(ALU32_MOV_K, 0, 0, 0, 0),
            insn(JMP_EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(p, expected);
    }

    #[test]
    fn program_agrees_with_reference_semantics() {
        let mut spec = vec![oci(false, "a", None, None, "rwm")];
        spec.extend(default_device_rules());
        spec.extend([
            oci(false, "c", Some(1), Some(9), "w"),   // urandom read-only
            oci(true, "b", Some(8), None, "r"),       // sd* readable
            oci(true, "a", Some(7), Some(0), "rw"),   // loop0 either type
            oci(false, "c", Some(5), Some(2), "rwm"), // no ptmx after all
            oci(true, "c", None, None, "r"),          // partial wildcard, not a catch-all
        ]);
        let rules = parse_rules(&spec).unwrap();
        let p = program(&rules);
        for kind in [DevKind::Char, DevKind::Block] {
            for (major, minor) in [
                (1, 3),
                (1, 9),
                (1, 1),
                (5, 2),
                (8, 0),
                (8, 16),
                (7, 0),
                (136, 4),
                (10, 200),
                (250, 1),
            ] {
                for access in 1..=ACC_ALL {
                    assert_eq!(
                        run(&p, kind, major, minor, access),
                        reference(&rules, kind, major, minor, access),
                        "{kind:?} {major}:{minor} {}",
                        access_str(access)
                    );
                }
            }
        }
        assert!(run(&p, DevKind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(!run(&p, DevKind::Char, 1, 9, ACC_READ | ACC_WRITE));
        assert!(run(&p, DevKind::Char, 1, 9, ACC_READ));
        assert!(
            run(&p, DevKind::Char, 5, 2, ACC_READ),
            "the later `c *:* r` wins"
        );
        assert!(!run(&p, DevKind::Char, 5, 2, ACC_WRITE));
        assert!(run(&p, DevKind::Char, 250, 1, ACC_READ));
        assert!(!run(&p, DevKind::Block, 250, 1, ACC_READ));
    }

    #[test]
    fn allow_all_and_empty_rule_lists() {
        let allow_all = parse_rules(&[oci(true, "a", None, None, "rwm")]).unwrap();
        let p = program(&allow_all);
        assert_eq!(p.len(), 8);
        assert!(run(&p, DevKind::Block, 8, 0, ACC_WRITE));
        let p = program(&[]);
        assert!(!run(&p, DevKind::Char, 1, 3, ACC_READ));
    }

    #[test]
    fn v1_lines_split_partial_wildcards() {
        let rules = parse_rules(&[
            oci(false, "a", None, None, "rwm"),
            oci(true, "a", Some(7), None, "rw"),
            oci(true, "c", Some(136), None, "rwm"),
        ])
        .unwrap();
        let lines: Vec<String> = v1_lines(&rules)
            .iter()
            .map(|l| format!("{} {l}", if l.allow { "allow" } else { "deny" }))
            .collect();
        assert_eq!(
            lines,
            [
                "deny a",
                "deny a",
                "allow c 7:* rw",
                "allow b 7:* rw",
                "allow c 136:* rwm"
            ]
        );
    }
}
