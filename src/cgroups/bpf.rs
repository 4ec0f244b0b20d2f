//! The bpf(2) calls behind the cgroup v2 device filter: load a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program, attach it to a cgroup directory with `BPF_F_ALLOW_MULTI`, and detach the programs it
//! replaces. The only module of `cgroups` with unsafe code.
//!
//! Licence: the kernel only requires a GPL-compatible licence string from programs that call
//! GPL-only helpers; the device filter calls no helper at all, so "Apache-2.0" is accepted (runc
//! loads its filter as "Apache" too).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::devices::Insn;
use super::{CgroupError, Result};

// enum bpf_cmd
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6; // enum bpf_attach_type
const BPF_F_ALLOW_MULTI: u32 = 2;

const LICENSE: &[u8] = b"Apache-2.0\0";
const PROG_NAME: &[u8] = b"peapod_devices";

// The `union bpf_attr` members below spell out every byte they cover: the kernel rejects
// non-zero bytes after a command's last field, so no struct may contain (uninitialised) padding.

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH`/`BPF_PROG_DETACH` member.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    relative_fd: u32,
}

/// The `BPF_PROG_QUERY` member.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    reserved: u32,
}

/// The `BPF_PROG_GET_FD_BY_ID` member.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
    reserved: u32,
}

/// bpf(cmd, attr, sizeof attr). Returns the syscall's non-negative result.
///
/// # Safety
/// `attr` must be the `union bpf_attr` member that `cmd` reads, and every pointer stored in it
/// must be valid for the access the kernel makes during the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller guarantees that `attr` matches `cmd` and that its pointers are valid;
    // the size passed is exactly that of `*attr`, which the kernel copies (and zero-extends).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wraps a new fd returned by the kernel.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful bpf(2) call that creates a file descriptor,
    // so it is open and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Loads the device program; on failure, loads it again with the verifier log enabled so the
/// error says why.
pub(crate) fn load(insns: &[Insn], cgroup_dir: &Path) -> Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let attempt = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            prog_name: name,
            ..Default::default()
        };
        // SAFETY: `attr` is the PROG_LOAD member; `insns` (insn_cnt elements of the kernel's
        // 8-byte `struct bpf_insn` layout), the NUL-terminated licence and the log buffer
        // (log_size bytes, or none) all outlive the call.
        unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)
    };
    attempt(&mut []).map_err(|source| {
        let mut log = vec![0u8; 64 * 1024];
        let _ = attempt(&mut log);
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        CgroupError::Bpf {
            op: "load device program",
            path: cgroup_dir.to_path_buf(),
            err: source,
            log: String::from_utf8_lossy(&log[..end]).into_owned(),
        }
    })
}

/// IDs of the device programs attached directly to the cgroup.
pub(crate) fn query(cgroup: &File) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        // SAFETY: `attr` is the PROG_QUERY member; `prog_ids` points to `prog_cnt` writable u32s
        // that outlive the call.
        match unsafe { bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // More programs than room: the kernel set prog_cnt to the real count.
            Err(e)
                if e.raw_os_error() == Some(libc::ENOSPC) && attr.prog_cnt as usize > ids.len() =>
            {
                ids = vec![0; attr.prog_cnt as usize];
            }
            Err(e) => return Err(e),
        }
    }
}

fn attach_cmd(cmd: libc::c_long, cgroup: &File, prog: &OwnedFd, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    // SAFETY: `attr` is the PROG_ATTACH/PROG_DETACH member and holds only fds, no pointers.
    unsafe { bpf(cmd, &mut attr) }.map(drop)
}

/// Attaches `prog` to the cgroup, then detaches the device programs that were attached before,
/// so the cgroup is never without a filter during an update (with `BPF_F_ALLOW_MULTI` every
/// attached program must allow an access, so the old and new filters overlap safely).
pub(crate) fn attach_replacing(cgroup_dir: &Path, prog: &OwnedFd) -> Result<()> {
    let err = |op, source| CgroupError::Bpf {
        op,
        path: cgroup_dir.to_path_buf(),
        err: source,
        log: String::new(),
    };
    let cgroup = File::open(cgroup_dir).map_err(|e| err("open cgroup", e))?;
    let old = query(&cgroup).map_err(|e| err("query device programs", e))?;
    attach_cmd(BPF_PROG_ATTACH, &cgroup, prog, BPF_F_ALLOW_MULTI)
        .map_err(|e| err("attach device program", e))?;
    for id in old {
        let mut attr = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        // SAFETY: `attr` is the PROG_GET_FD_BY_ID member and holds no pointers.
        let old_prog = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) } {
            Ok(fd) => owned(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // already gone
            Err(e) => return Err(err("open old device program", e)),
        };
        match attach_cmd(BPF_PROG_DETACH, &cgroup, &old_prog, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err("detach old device program", e)),
        }
    }
    Ok(())
}
