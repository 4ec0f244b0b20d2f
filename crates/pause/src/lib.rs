//! The pod's pause process: it holds the pod's namespaces and does nothing else.
//!
//! Semantics of kubelet's `build/pause/linux/pause.c`: SIGINT and SIGTERM exit 0, SIGCHLD
//! reaps every exited child (it is PID 1 of a shared pid namespace), `-v` prints the version,
//! and it warns when it is not PID 1. A separate binary (`peapod-pause`, built by the `peapod`
//! package from [`main`]) with no dependency beyond peapod-sys keeps its memory footprint to a
//! few pages. Its one unsafe block installs the signal handlers (their contract, async-signal
//! safety, is this crate's to keep, so it stays here rather than in peapod-sys).

use std::io::Write;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

extern "C" fn shutdown(_: libc::c_int) {
    // _exit is async-signal-safe.
    peapod_sys::exit_now(0)
}

extern "C" fn reap(_: libc::c_int) {
    // waitpid is async-signal-safe (nix adds no allocation around it).
    while peapod_sys::wait_any_nohang().is_some() {}
}

#[allow(unsafe_code)]
fn install(sig: Signal, handler: extern "C" fn(libc::c_int), flags: SaFlags) -> bool {
    let action = SigAction::new(SigHandler::Handler(handler), flags, SigSet::empty());
    // SAFETY: both handlers above call only async-signal-safe functions (_exit, waitpid) and
    // touch no state shared with the interrupted code.
    unsafe { sigaction(sig, &action) }.is_ok()
}

/// The `peapod-pause` program.
pub fn main() {
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
    if !install(Signal::SIGINT, shutdown, SaFlags::empty())
        || !install(Signal::SIGTERM, shutdown, SaFlags::empty())
    {
        std::process::exit(1);
    }
    if !install(Signal::SIGCHLD, reap, SaFlags::SA_NOCLDSTOP) {
        std::process::exit(2);
    }
    // Start-up touched std's runtime; the loop below needs a page or two.
    let _ = peapod_sys::trim::release_idle_memory();
    loop {
        nix::unistd::pause();
    }
}
