//! The cgroup v2 device filter in the kernel: load the program built by [`super::devices`]
//! (explaining a refusal with the verifier's log), attach it to a cgroup directory with
//! `BPF_F_ALLOW_MULTI`, and detach the programs it replaces. The bpf(2) calls themselves are in
//! `peapod_sys::bpf`.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use peapod_sys::bpf::{self as sys_bpf, BPF_F_ALLOW_MULTI, Insn};

use super::{CgroupError, Result};

/// Loads the device program; on failure, loads it again with the verifier log enabled so the
/// error says why.
pub(crate) fn load(insns: &[Insn], cgroup_dir: &Path) -> Result<OwnedFd> {
    sys_bpf::load_device_program(insns, &mut []).map_err(|source| {
        let mut log = vec![0u8; 64 * 1024];
        let _ = sys_bpf::load_device_program(insns, &mut log);
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
#[cfg(test)]
pub(crate) fn query(cgroup: &File) -> io::Result<Vec<u32>> {
    sys_bpf::query_device_programs(cgroup)
}

/// Attaches `prog` to the cgroup, then detaches the device programs that were attached before,
/// so the cgroup is never without a filter during an update (with `BPF_F_ALLOW_MULTI` every
/// attached program must allow an access, so the old and new filters overlap safely).
pub(crate) fn attach_replacing(cgroup_dir: &Path, prog: &OwnedFd) -> Result<()> {
    let err = |op, source: io::Error| CgroupError::Bpf {
        op,
        path: cgroup_dir.to_path_buf(),
        err: source,
        log: String::new(),
    };
    let cgroup = File::open(cgroup_dir).map_err(|e| err("open cgroup", e))?;
    let old =
        sys_bpf::query_device_programs(&cgroup).map_err(|e| err("query device programs", e))?;
    sys_bpf::attach_device_program(&cgroup, prog, BPF_F_ALLOW_MULTI)
        .map_err(|e| err("attach device program", e))?;
    for id in old {
        let old_prog = match sys_bpf::program_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // already gone
            Err(e) => return Err(err("open old device program", e)),
        };
        match sys_bpf::detach_device_program(&cgroup, &old_prog) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err("detach old device program", e)),
        }
    }
    Ok(())
}
