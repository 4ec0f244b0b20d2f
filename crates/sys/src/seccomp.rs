//! seccomp(2) `SECCOMP_SET_MODE_FILTER` with a classic BPF program built by the caller (runc
//! loads its libseccomp filter the same way once it has prepended its `-ENOSYS` stub).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// One classic BPF instruction (`struct sock_filter`).
pub type SockFilter = libc::sock_filter;

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: the call returns a user-notification listener fd.
pub const FLAG_NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FLAG_LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FLAG_SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;

/// Install `program` as a seccomp filter on the calling thread with `flags`. Returns the
/// listener fd when `flags` has [`FLAG_NEW_LISTENER`] (close-on-exec, as the kernel makes it).
pub fn set_mode_filter(flags: u32, program: &[SockFilter]) -> io::Result<Option<OwnedFd>> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` valid instructions that outlive the call; the kernel only
    // reads (and copies) them. The flags are plain bits the kernel validates.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: with NEW_LISTENER the kernel returned a fresh fd of ours that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}
