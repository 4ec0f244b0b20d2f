//! Foreground waiting for `run` and `exec`: forward signals to the container process, proxy
//! a terminal, and turn the exit into a shell-style status (128+signal).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::sys;

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// Block the forwarded signals and SIGCHLD now, before the container process exists, so
/// none is lost in between.
pub fn block_signals() -> nix::Result<SigSet> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    Ok(mask)
}

/// Shell-style exit status.
pub fn exit_code(st: WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 255,
    }
}

/// Wait for `pid` (we are its reaper), forwarding signals; with `tty` copy stdin to the
/// pty master and the master to stdout.
pub fn wait_forwarding(pid: Pid, mask: &SigSet, tty: Option<OwnedFd>) -> nix::Result<i32> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC)?;
    let mut stdin_open = tty.is_some();
    if let Some(m) = &tty
        && let Some((r, c)) = sys::get_winsize(0)
    {
        let _ = sys::set_winsize(m.as_raw_fd(), r, c);
    }
    let mut master_open = tty.is_some();
    loop {
        while let Some((p, st)) = sys::wait_any_nohang() {
            if p == pid {
                if let Some(m) = &tty {
                    drain(m);
                }
                return Ok(exit_code(st));
            }
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = tty.as_ref().filter(|_| master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0]
            && let Some(info) = sfd.read_signal()?
        {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGWINCH
                && let (Some(m), Some((r, c))) = (&tty, sys::get_winsize(0))
            {
                let _ = sys::set_winsize(m.as_raw_fd(), r, c);
            }
            if signo != libc::SIGCHLD {
                let _ = nix::sys::signal::kill(pid, Signal::try_from(signo).ok());
            }
        }
        if let Some(m) = &tty {
            let mut buf = [0u8; 8192];
            if master_open && ready.get(1).copied().unwrap_or(false) {
                match nix::unistd::read(m, &mut buf) {
                    Ok(0) | Err(_) => master_open = false,
                    Ok(n) => {
                        let _ = std::io::stdout().write_all(&buf[..n]);
                        let _ = std::io::stdout().flush();
                    }
                }
            }
            let stdin_idx = if master_open { 2 } else { 1 };
            if stdin_open && ready.get(stdin_idx).copied().unwrap_or(false) {
                match std::io::stdin().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                }
            }
        }
    }
}

/// Copy what is left on the pty after the process exited.
fn drain(m: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        m,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut buf = [0u8; 8192];
    while let Ok(n) = nix::unistd::read(m, &mut buf) {
        if n == 0 {
            break;
        }
        let _ = std::io::stdout().write_all(&buf[..n]);
    }
    let _ = std::io::stdout().flush();
}
