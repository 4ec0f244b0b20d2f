//! The pod's pause process: it holds the pod's namespaces and does nothing else.
//!
//! Semantics of kubelet's `build/pause/linux/pause.c`: SIGINT and SIGTERM exit 0, SIGCHLD
//! reaps every exited child (it is PID 1 of a shared pid namespace), `-v` prints the version,
//! and it warns when it is not PID 1. A separate, dependency-free binary keeps its memory
//! footprint to a few pages.

use std::io::Write;

#[path = "../sys/trim.rs"]
mod trim;

extern "C" fn shutdown(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn reap(_: libc::c_int) {
    // SAFETY: waitpid is async-signal-safe; a null status pointer is allowed.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int), flags: libc::c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we fill the
    // handler and flags before passing a pointer to it, which lives across the call.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("-v") {
        println!("peapod-pause {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if std::process::id() != 1 {
        let _ = writeln!(
            std::io::stderr(),
            "peapod-pause: warning: pause should be the first process"
        );
    }
    if !install(libc::SIGINT, shutdown, 0) || !install(libc::SIGTERM, shutdown, 0) {
        std::process::exit(1);
    }
    if !install(libc::SIGCHLD, reap, libc::SA_NOCLDSTOP) {
        std::process::exit(2);
    }
    // Start-up touched std's runtime; the loop below needs a page or two.
    let _ = trim::release_idle_memory();
    loop {
        // SAFETY: pause just waits for a signal.
        unsafe { libc::pause() };
    }
}
