//! The few kernel calls that need `unsafe`, for the whole project (only the pause binary keeps
//! its own signal handlers): fork, fd plumbing, pidfd, pty ioctls, the mount API, execveat and
//! sealed self-copies, scheduling and memory policy ([`sched`]), memory trimming ([`trim`]), bpf(2) for the cgroup device filter
//! ([`bpf`]); seccomp(2) for a prepared filter ([`seccomp`]); and the project's one atomic file writer ([`fs`]). Every block states why it is
//! sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::{ForkResult, Pid};

pub mod bpf;
pub mod fs;
pub mod sched;
pub mod seccomp;
pub mod trim;
pub use trim::release_idle_memory;

/// Fork the calling process, refusing (`EDEADLK`) when it has more than one thread.
///
/// After `fork` the child may keep running ordinary Rust code (allocations, locks) only if no
/// other thread existed that could have held a lock or been half-way through the allocator.
/// peapod forks only from single-threaded code paths; this checks that instead of trusting it
/// (the kernel's `Threads:` count in `/proc/self/status`), so a future caller that starts a
/// thread gets an error, not a child deadlocked in `malloc`.
///
/// In a forked stage that joined a container's mount namespace, `/proc/self` may not name us
/// (the container's procfs belongs to another pid namespace): there a fork counts as safe if
/// this process is itself the child of [`fork`], which starts with one thread, and no thread
/// was started since (peapod's stages start none; `std::process::Command` starts none).
pub fn fork() -> nix::Result<ForkResult> {
    if !single_threaded() {
        return Err(nix::errno::Errno::EDEADLK);
    }
    // SAFETY: the process has exactly one thread (checked just above; only this thread could
    // start another, and it is here), so the child's copy of the heap and of every lock is
    // consistent and it may run any code.
    let r = unsafe { nix::unistd::fork() };
    if let Ok(ForkResult::Child) = r {
        FORKED_CHILD.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    r
}

/// [`fork`] into new namespaces: `clone(2)` with the namespace `flags` and no new stack, so the
/// child continues from here on its copy of this stack, as after fork, already inside the new
/// namespaces (pid 1 of a new PID namespace). One process where fork, `unshare` and a second
/// fork take two. Refused with `EINVAL` for flags other than `CLONE_NEWNS`, `NEWPID`, `NEWNET`,
/// `NEWIPC`, `NEWUTS`, `NEWCGROUP` and `NEWUSER`, and with `EDEADLK` as [`fork`] is.
pub fn fork_into(flags: nix::sched::CloneFlags) -> nix::Result<ForkResult> {
    use nix::sched::CloneFlags as F;
    let namespaces = F::CLONE_NEWNS
        | F::CLONE_NEWPID
        | F::CLONE_NEWNET
        | F::CLONE_NEWIPC
        | F::CLONE_NEWUTS
        | F::CLONE_NEWCGROUP
        | F::CLONE_NEWUSER;
    if !namespaces.contains(flags) {
        return Err(nix::errno::Errno::EINVAL);
    }
    if !single_threaded() {
        return Err(nix::errno::Errno::EDEADLK);
    }
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: without CLONE_VM (refused above) clone makes a copy of the address space, as fork
    // does; a null stack makes the child return here on its copy of this stack. The process has
    // one thread (checked above), so every lock and the allocator are consistent in the copy.
    // What glibc's fork does besides: atfork handlers (peapod registers none, nor do its crates)
    // and the child's tid cached in its thread descriptor, which stays the parent's; the child
    // starts no thread, and glibc (2.34 and later) asks the kernel for the tid where it signals
    // itself (raise, abort). crun makes its container processes the same way.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match r {
        -1 => Err(nix::errno::Errno::last()),
        0 => {
            FORKED_CHILD.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(ForkResult::Child)
        }
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as libc::pid_t),
        }),
    }
}

/// Whether this process has one thread, as [`fork`] documents. A thread just joined may still
/// be counted for a moment: `pthread_join` returns when the kernel clears the thread's tid (in
/// `mm_release`, early in its exit), before the thread leaves the group. Such a thread runs no
/// more user code, so it is given up to [`EXITING_THREAD_GRACE`] to go; a live one is refused.
fn single_threaded() -> bool {
    let deadline = std::time::Instant::now() + EXITING_THREAD_GRACE;
    loop {
        match thread_count() {
            Some(1) => return true,
            Some(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_micros(200))
            }
            Some(_) => return false,
            None => return FORKED_CHILD.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// How long [`fork`] waits for threads that are exiting (see [`single_threaded`]).
const EXITING_THREAD_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Set in the child of [`fork`]: it was born with a single thread.
static FORKED_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Threads of this process: `num_threads`, the 20th field of `/proc/self/stat` (one line,
/// cheaper for the kernel to write than `status`), counted after the `)` that ends the command
/// name, which may itself hold spaces and parentheses.
pub fn thread_count() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat_threads(&stat)
}

fn stat_threads(stat: &str) -> Option<usize> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (state): num_threads is 17 fields further.
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// Ask the kernel to SIGKILL this process when its parent exits, and return false when that
/// could not be asked or the parent `expected_parent` is already gone (the signal would never
/// come).
pub fn die_with_parent(expected_parent: u32) -> bool {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_ok()
        && nix::unistd::getppid().as_raw() as u32 == expected_parent
}

/// Set by [`interrupt_handler`] to the signal that asked a slow command to stop.
static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn interrupt_handler(sig: libc::c_int) {
    INTERRUPTED.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// Catch SIGINT, SIGTERM and SIGHUP without `SA_RESTART`: a blocking call of the command
/// returns `EINTR` and [`interrupted`] says which signal came, so the command can undo what it
/// made before exiting instead of dying half-way.
pub fn catch_interrupts() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction is plain data; all-zero is a valid value to fill in.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = interrupt_handler as *const () as libc::sighandler_t;
        sa.sa_flags = 0;
        // SAFETY: `sa` is initialized; the handler only stores to an atomic, which is
        // async-signal-safe.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Undo [`catch_interrupts`] (in a forked stage: the container's processes get the default
/// actions, so `kill ID TERM` of a created container still terminates its init).
pub fn default_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// The signal caught by [`catch_interrupts`], if one came.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Mark every fd >= `from` close-on-exec (runc `CloseExecFrom`; GHSA-xr7r-f8xq-vfvv showed what a
/// leaked host fd gives a container).
pub fn cloexec_from(from: RawFd) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags in our own table; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            from as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Fallback for kernels before 5.11: walk /proc/self/fd.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= from)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on an fd number is harmless even if it was closed meanwhile (EBADF).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Close every fd >= 3 except those in `keep`, in a forked stage (runc closes what the init
/// need not hold before it waits for `start`): until its `execve` the container init is
/// visible in `/proc/PID/fd` to whatever can reach it, and must hold no runtime fd (the state
/// directory's lock, the log file) nor one the caller leaked to the runtime.
///
/// Refused (`EPERM`) outside a child of [`fork`]. There, every `OwnedFd` that owns a closed
/// number is a copy of the parent's, held by a frame the child never returns to (it leaves
/// through `execve` or [`exit_now`]); the caller keeps in `keep` (or drops before) every fd
/// it still owns.
pub fn close_fds_in_child(keep: &[RawFd]) -> io::Result<()> {
    if !FORKED_CHILD.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: RawFd = 3;
    let mut ranges: Vec<(libc::c_uint, libc::c_uint)> = Vec::new();
    for k in keep {
        if k > from {
            ranges.push((from as libc::c_uint, (k - 1) as libc::c_uint));
        }
        from = k + 1;
    }
    ranges.push((from as libc::c_uint, libc::c_uint::MAX));
    for (lo, hi) in ranges {
        // SAFETY: close_range only closes fds of our own table; the doc comment says why no
        // live owner of a closed number is used afterwards. No memory is passed.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0 as libc::c_uint) };
        if rc == 0 {
            continue;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        // Kernels before 5.9: walk /proc/self/fd.
        let open: Vec<libc::c_uint> = std::fs::read_dir("/proc/self/fd")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| (lo..=hi).contains(fd))
            .collect();
        for fd in open {
            // SAFETY: as above, for one number (the directory's own fd is gone by now or
            // is closed here, which only ends the iteration we no longer use).
            unsafe { libc::close(fd as RawFd) };
        }
    }
    Ok(())
}

/// Whether `fd` is open and not close-on-exec: an fd the caller passed across `execve` (every
/// fd peapod opens itself is close-on-exec, see [`adopt_inherited_fd`]).
pub fn is_inherited_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on a number only reads its flags; EBADF when it is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0 && flags & libc::FD_CLOEXEC == 0
}

/// Clear close-on-exec on one fd so it survives `execve` (for `--preserve-fds`).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD on an fd number we were told to preserve; no memory is passed.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pidfd_open(2)`: a handle that cannot be confused with a recycled pid.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2) would".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setdomainname(2)`, which nix does not wrap.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make the tty on `fd` our controlling terminal (`TIOCSCTTY`).
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, no memory.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set a terminal's window size (`TIOCSWINSZ`).
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid winsize that lives across the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read a terminal's window size (`TIOCGWINSZ`), if `fd` is a terminal.
pub fn get_winsize(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is writable for the size the ioctl fills in.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Unlock a pty master and return the path of its peer (`TIOCSPTLCK`, `TIOCGPTN`).
pub fn unlock_pty(master: RawFd) -> io::Result<u32> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which is valid.
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the pointer, which is valid.
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n)
}

/// What a binary without Rust's runtime start-up (`#![no_main]`, `peapod-runc`) needs of it:
/// fds 0, 1 and 2 open (on `/dev/null` when the caller closed one, so that no file opened
/// later lands there and is written to as stdout), and SIGPIPE ignored, so that a write to a
/// closed pipe is an `EPIPE` error (`peapod list | head -1`), as in every Rust program.
pub fn bare_start() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD takes no argument and only reads the fd table.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            // open(2) takes the lowest free number: this one. Nothing can be done without it.
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                Ok(f) => std::mem::forget(f),
                Err(_) => std::process::abort(),
            }
        }
    }
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Where the on-disk peapod binary is, once running from the sealed copy.
pub const ORIGINAL_EXE_ENV: &str = "PEAPOD_EXE";

fn set_env(key: &str, value: &std::path::Path) {
    // SAFETY: called only from `ensure_sealed_self`, before any thread exists.
    unsafe { std::env::set_var(key, value) };
}

/// Make sure peapod runs from a binary no container process can overwrite through
/// `/proc/<pid>/exe` (CVE-2019-5736), then return; otherwise re-execute and not return.
///
/// - Already safe: a sealed memfd, or a binary on a read-only mount (a write open through
///   `/proc/<pid>/exe` fails with EROFS, whichever namespace asks). Installing peapod on a
///   read-only mount therefore saves the re-execution on every run.
/// - First choice otherwise, as runc 1.2 prefers a read-only view to a copy: a *detached*
///   read-only bind mount of the binary's directory (`open_tree(OPEN_TREE_CLONE)` +
///   `mount_setattr(MOUNT_ATTR_RDONLY)`, attached nowhere, so no mount namespace is created or
///   torn down) and `execveat` of the binary inside it. No copy; the text stays shared in the
///   page cache.
/// - Kernels without the new mount API: a private mount namespace in which the binary is
///   bind-mounted read-only onto itself; and when mounting is not allowed, a sealed memfd copy.
pub fn ensure_sealed_self() -> io::Result<()> {
    let exe = File::open("/proc/self/exe")?;
    let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_GET_SEALS takes no argument; on a non-memfd it fails with EINVAL.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & want == want {
        return Ok(());
    }
    if on_read_only_mount(&exe) {
        return Ok(());
    }
    if std::env::var_os(PROTECTED_ENV).is_some() {
        // We re-executed from a view that turned out writable: do not loop.
        return sealed_copy(exe, want);
    }
    // The pod layer finds peapod-pause next to the on-disk binary.
    if std::env::var_os(ORIGINAL_EXE_ENV).is_none()
        && let Ok(p) = std::fs::read_link("/proc/self/exe")
    {
        set_env(ORIGINAL_EXE_ENV, &p);
    }
    let Some(path) = std::env::var_os(ORIGINAL_EXE_ENV).map(std::path::PathBuf::from) else {
        return sealed_copy(exe, want);
    };
    set_env(PROTECTED_ENV, std::path::Path::new("1"));
    if let Ok(fd) = detached_read_only(&path) {
        let err = nix::unistd::fexecve(&fd, &c_args()?, &c_env()?).unwrap_err();
        return Err(io::Error::from(err));
    }
    if read_only_view(&path).is_ok() {
        let err = nix::unistd::execve(&c_path(&path)?, &c_args()?, &c_env()?).unwrap_err();
        return Err(io::Error::from(err));
    }
    sealed_copy(exe, want)
}

/// Whether writes to the open file fail with EROFS, whoever asks (mount or superblock).
fn on_read_only_mount(f: &impl std::os::fd::AsFd) -> bool {
    nix::sys::statvfs::fstatvfs(f)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// `path` opened through a read-only bind mount of its directory that is attached nowhere.
pub fn detached_read_only(path: &std::path::Path) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dir_c = c_path(dir)?;
    // SAFETY: open_tree reads the NUL-terminated path, which outlives the call.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            dir_c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (valid, of the size passed) and the empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = nix::fcntl::openat(
        &tree,
        name,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if !on_read_only_mount(&fd) {
        return Err(io::Error::other("the detached mount is not read-only"));
    }
    Ok(fd)
}

/// Set in the environment once peapod re-executed itself from a read-only view.
const PROTECTED_ENV: &str = "PEAPOD_RO_EXE";

/// The variables peapod sets in its own environment for itself: not passed on to what it runs
/// with the caller's environment (OCI hooks).
pub const INTERNAL_ENV: &[&str] = &[ORIGINAL_EXE_ENV, PROTECTED_ENV];

/// A private mount namespace where `path` is bind-mounted read-only onto itself.
pub fn read_only_view(path: &std::path::Path) -> nix::Result<()> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )?;
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
}

pub fn c_path(p: &std::path::Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn c_args() -> io::Result<Vec<CString>> {
    std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

pub fn c_env() -> io::Result<Vec<CString>> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The fallback: a sealed memfd copy of the binary, executed.
fn sealed_copy(exe: File, want: libc::c_int) -> io::Result<()> {
    let name = c"peapod:sealed";
    // SAFETY: `name` is a valid C string; the flags are constants.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = exe.metadata()?.len();
    let mut copied = 0u64;
    while copied < len {
        let n = nix::sys::sendfile::sendfile(&memfd, &exe, None, (len - copied) as usize)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short copy of /proc/self/exe",
            ));
        }
        copied += n as u64;
    }
    // F_SEAL_WRITE fails with EBUSY while some page of the memfd still has an extra
    // reference (the kernel waits ~150 ms for them first); seen rarely on a busy machine.
    let mut tries = 0;
    loop {
        // SAFETY: F_ADD_SEALS takes an int argument.
        if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, want) } == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        tries += 1;
        if err.raw_os_error() != Some(libc::EBUSY) || tries >= 5 {
            return Err(err);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (args, env) = (c_args()?, c_env()?);
    // fexecve of a CLOEXEC memfd works through execveat(AT_EMPTY_PATH) for ELF binaries.
    let err = nix::unistd::fexecve(&memfd, &args, &env).unwrap_err();
    Err(io::Error::from(err))
}

/// Wait for any child with `WNOHANG`-style polling helpers; returns `None` on ECHILD.
pub fn wait_any_nohang() -> Option<(Pid, nix::sys::wait::WaitStatus)> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) | Err(_) => None,
        Ok(st) => st.pid().map(|p| (p, st)),
    }
}

/// Receive one fd passed with SCM_RIGHTS on `sock` (received close-on-exec); extra fds in the
/// same message are closed.
pub fn recv_fd(sock: &impl std::os::fd::AsFd) -> nix::Result<Option<OwnedFd>> {
    let mut buf = [0u8; 4096];
    recv_with_fd(sock, &mut buf).map(|(_, fd)| fd)
}

/// Receive one packet into `buf` with at most one fd passed with SCM_RIGHTS (received
/// close-on-exec; extra fds are closed): (bytes, fd). `Ok((0, None))` at EOF.
pub fn recv_with_fd(
    sock: &impl std::os::fd::AsFd,
    buf: &mut [u8],
) -> nix::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    let mut first = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed these fds in our table during this recvmsg;
                // nothing else knows their numbers, so each gets exactly one owner here.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    Ok((n, first))
}

/// Take ownership of an fd inherited across `execve` whose number came from the command line
/// (the pod supervisor's readiness pipe).
///
/// Sound without trusting the caller: it accepts only fds >= 3 that are open and *not*
/// close-on-exec, and sets close-on-exec before returning. Every fd peapod opens itself is
/// close-on-exec (std and every `open` in the crate use `O_CLOEXEC`), so an fd without the flag
/// can only be one the previous program left us, which no Rust object owns; and once adopted,
/// the same number can never be adopted a second time.
pub fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is stdio, not an inherited fd"),
        ));
    }
    // SAFETY: F_GETFD on a number only reads its flags; EBADF when it is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is close-on-exec: it was not inherited (or is already owned)"),
        ));
    }
    // SAFETY: F_SETFD changes only the flags of this fd.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the checks above prove no Rust object owns this fd (see the doc comment), and
    // setting close-on-exec makes this the only adoption of it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Leave the process now, without running destructors or atexit handlers of the parent's
/// copy of the state (for forked stages).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// End the process as a write to a closed pipe ends a Go program such as runc: killed by
/// SIGPIPE (the caller, e.g. `peapod --version | head -1`, sees the usual status), never a
/// panic. Rust's runtime ignores SIGPIPE, so a closed stdout shows up as an `EPIPE` error first.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: raise only sends a signal to this thread; the default action ends the process.
    unsafe { libc::raise(libc::SIGPIPE) };
    exit_now(128 + libc::SIGPIPE)
}

/// Join a new anonymous session keyring (`keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`).
pub fn join_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks for an anonymous keyring; no memory is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `dup2(2)` onto one of the stdio numbers 0, 1 or 2; any other target is refused (`EBADF`),
/// since replacing it could close an fd that an `OwnedFd` owns.
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    if !(0..=2).contains(&to) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: dup2 replaces fd `to` in our own table; `to` is a stdio number (checked above),
    // which Rust's std treats as the process's stdio and no `OwnedFd` owns.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set every catchable signal back to `SIG_DFL` (ignored signals survive `execve`).
pub fn reset_signal_dispositions() -> io::Result<()> {
    // The standard signals; glibc reserves 32 and 33 and refuses them.
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bring the loopback interface up in the current network namespace (runc does this for
/// every new network namespace: a container expects `lo` to work).
pub fn set_loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket(2) call; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags field of `req`, which is valid for writes.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading and writing the flags member of the union that SIOCGIFFLAGS set.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`, which is valid.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsopen(2)`: a filesystem context for `fs_name` (the new mount API, Linux 5.2).
pub fn fsopen(fs_name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(fs_name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the returned fd
    // is new and owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsopen returned a fresh fd (checked non-negative above) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fsconfig(FSCONFIG_SET_STRING, key, value)`, or `FSCONFIG_SET_FLAG` when `value` is None.
pub fn fsconfig_set(fs: &OwnedFd, key: &str, value: Option<&str>) -> io::Result<()> {
    let key = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let value = value
        .map(CString::new)
        .transpose()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let (cmd, vptr) = match &value {
        Some(v) => (libc::FSCONFIG_SET_STRING, v.as_ptr()),
        None => (libc::FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: `key` and `value` are NUL-terminated strings alive across the call; a flag takes a
    // NULL value and aux 0, as fsconfig(2) requires.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ptr(),
            vptr,
            0 as libc::c_int,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsconfig(FSCONFIG_CMD_CREATE)` then `fsmount(2)` with `attrs` (`MOUNT_ATTR_*`): a detached
/// mount.
pub fn fsmount(fs: &OwnedFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: no pointers are passed; the fd is ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_int,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: no pointers are passed; a non-negative result is a new fd we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount returned a fresh fd (checked above) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `move_mount(2)` of a detached mount onto `target`.
pub fn move_mount_to(mnt: &OwnedFd, target: &std::path::Path) -> io::Result<()> {
    let t = c_path(target)?;
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and alive across the call; `mnt` is an fd we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `MOUNT_ATTR_*` of `mount_setattr(2)` (linux/mount.h; not in the libc crate).
pub mod mount_attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The mask of the access-time setting: set one of them, clear the whole mask.
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const IDMAP: u64 = 0x0010_0000;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// `struct mount_attr` (linux/mount.h, MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct RawMountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], ...)` on the mount `fd` refers to:
/// set the `set` attributes and clear the `clear` ones (`mount_attr::*`), with the user
/// namespace `userns` for `MOUNT_ATTR_IDMAP` (Linux 5.12).
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = RawMountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map(|f| f.as_raw_fd() as u64).unwrap_or(0),
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = c"";
    // SAFETY: `empty` is a NUL-terminated string and `attr` a properly laid out struct
    // mount_attr, both alive across the call, whose size is passed; the fds are borrowed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const RawMountAttr,
            std::mem::size_of::<RawMountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC [| AT_RECURSIVE])`: a
/// detached copy of the mount at `path` (with the mounts below it when `recursive`), attached
/// nowhere until [`move_mount_onto`]; it is freed when the last fd on it closes.
pub fn open_tree_clone(path: &std::path::Path, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let p = c_path(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads the NUL-terminated path, which outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a fresh fd (checked non-negative above) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// attach the detached mount `mnt` on the file or directory `target` (an `O_PATH` fd, so the
/// target is the one resolved, never a path walked again).
pub fn move_mount_onto(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    let empty = c"";
    // SAFETY: the empty strings are NUL-terminated and static; both fds are borrowed and
    // stay open across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A user namespace with the id maps `uid_map` and `gid_map` (the text of
/// `/proc/PID/uid_map`), as an fd for `MOUNT_ATTR_IDMAP`: a child unshares `CLONE_NEWUSER`,
/// this process writes its maps and opens `/proc/CHILD/ns/user`, then kills and reaps it. The
/// namespace lives as long as the fd.
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    use nix::sys::signal::{Signal, kill};
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let parent = std::process::id();
    match fork()? {
        ForkResult::Child => {
            drop(ready_r);
            let ok = die_with_parent(parent)
                && nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&ready_w, &[ok as u8]);
            // Wait to be killed (the parent does as soon as it holds the namespace).
            loop {
                nix::unistd::pause();
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut b = [0u8; 1];
            let got = nix::unistd::read(&ready_r, &mut b);
            let result = match got {
                Ok(1) if b[0] == 1 => (|| {
                    std::fs::write(format!("/proc/{child}/uid_map"), uid_map).map_err(|e| {
                        io::Error::new(e.kind(), format!("write uid_map `{}`: {e}", uid_map.trim()))
                    })?;
                    std::fs::write(format!("/proc/{child}/gid_map"), gid_map).map_err(|e| {
                        io::Error::new(e.kind(), format!("write gid_map `{}`: {e}", gid_map.trim()))
                    })?;
                    nix::fcntl::open(
                        format!("/proc/{child}/ns/user").as_str(),
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(io::Error::from)
                })(),
                Ok(_) => Err(io::Error::other(
                    "unshare(CLONE_NEWUSER) failed in the helper process",
                )),
                Err(e) => Err(e.into()),
            };
            let _ = kill(child, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stat_threads;

    #[test]
    fn num_threads_is_read_after_the_command_name() {
        let line =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 123 4096 100";
        assert_eq!(stat_threads(line), Some(7));
        assert_eq!(stat_threads("1 (x) S 0"), None);
        assert_eq!(stat_threads("garbage"), None);
        // This process: the test harness runs tests on threads, so at least one.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(stat_threads(&own).is_some_and(|n| n >= 1));
    }
}
