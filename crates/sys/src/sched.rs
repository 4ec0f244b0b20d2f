//! Per-process scheduling and memory placement calls that libc or nix do not wrap safely:
//! `personality(2)`, `sched_setattr(2)`, `ioprio_set(2)`, `set_mempolicy(2)`. Each acts on the
//! calling thread (the forked container stage, which has one).

use std::io;

/// `personality(2)`: set the execution domain and flags of the calling process.
pub fn set_personality(persona: u32) -> io::Result<()> {
    // SAFETY: plain syscall with an integer argument; no memory is passed.
    let rc = unsafe { libc::personality(persona as libc::c_ulong) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The first version of `struct sched_attr` (`SCHED_ATTR_SIZE_VER0`, 48 bytes), which every
/// kernel since 3.14 accepts.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `sched_setattr(2)` on the calling thread.
pub fn sched_setattr_self(attr: &SchedAttr) -> io::Result<()> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a live, properly laid out `struct sched_attr` whose `size` field says how
    // many bytes the kernel may read; the kernel does not keep the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &a as *const SchedAttr,
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, value)` on the calling process.
pub fn ioprio_set_self(value: i32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: plain syscall with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `set_mempolicy(2)`: `mode` includes the `MPOL_F_*` flags; `nodes` is the node mask as
/// 64-bit words (bit n of word n/64 is node n), empty for no mask.
pub fn set_mempolicy(mode: i32, nodes: &[u64]) -> io::Result<()> {
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads `maxnode - 1` bits.
        (nodes.as_ptr(), nodes.len() as libc::c_ulong * 64 + 1)
    };
    // SAFETY: `ptr` is null with `maxnode` 0, or points to `nodes`, which holds the
    // `maxnode - 1` bits the kernel reads and outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_attr_is_the_kernel_ver0_size() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 48);
    }
}
