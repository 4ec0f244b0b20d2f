//! Foreground waiting for `run` and `exec`: forward signals to the container process, proxy
//! its terminal, and turn its exit into a shell-style status (128+signal), as runc does.
//!
//! One poll loop watches the process's pidfd, a signalfd for the forwarded signals and
//! SIGCHLD, and with a terminal the pty master, the caller's stdin and stdout. The process's
//! exit ends the loop whatever stdin does: the pty output still queued is drained (without
//! blocking, for a bounded time), the process is reaped and its status returned.
//!
//! The caller's stdin is read by a relay thread that never blocks the loop: a `read(2)` on a
//! pipe or terminal that another process also reads can block even after poll said it was
//! readable, and the loop must never sit in a read when the process exits (runc copies stdin
//! in a goroutine for the same reason). Output to the caller's stdout is buffered, and while
//! it is not written nothing more is read from the pty, so a slow reader slows the process
//! down instead of growing a buffer; writes go out only when poll says stdout has room, in
//! chunks a pipe takes whole.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, OutputFlags, SetArg, Termios};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use thiserror::Error;

use crate::sys;

#[derive(Debug, Error)]
pub enum WaitError {
    #[error("wait for process {pid}: {op}: {source}")]
    Sys {
        pid: i32,
        op: &'static str,
        source: Errno,
    },
    #[error("terminal: {op}: {source}")]
    Terminal { op: &'static str, source: Errno },
}

/// How long the pty is drained after the process exited: only a process that left a child
/// writing to the terminal non-stop can make the drain last that long.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Largest chunk written to a caller's pipe after poll said it has room: a pipe with room
/// takes up to `PIPE_BUF` bytes without blocking.
const PIPE_CHUNK: usize = libc::PIPE_BUF;
const BUF: usize = 64 * 1024;

/// Signals that are not forwarded: SIGCHLD and SIGWINCH are handled here, SIGURG is not
/// forwarded by runc (its runtime uses it), SIGKILL and SIGSTOP cannot be caught, and the
/// fault signals must keep killing the runtime itself.
const NOT_FORWARDED: &[Signal] = &[
    Signal::SIGURG,
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Block every signal the foreground runtime forwards (all catchable ones, realtime included,
/// as runc's handler catches them all) and SIGCHLD now, before the container process
/// exists, so none is lost in between. The container process starts with an empty mask.
pub fn block_signals() -> nix::Result<SigSet> {
    let mask = forwarded();
    mask.thread_block()?;
    Ok(mask)
}

fn forwarded() -> SigSet {
    let mut mask = SigSet::all();
    for s in NOT_FORWARDED {
        mask.remove(*s);
    }
    mask
}

/// Shell-style exit status (runc's `utils.ExitStatus`).
pub fn exit_code(st: WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 255,
    }
}

/// The caller's window size, from the first of stderr, stdout, stdin that is a terminal, else
/// from the controlling terminal (runc's host console); None when there is none or its size
/// was never set.
pub fn caller_winsize() -> Option<(u16, u16)> {
    let ws = match [2, 1, 0].into_iter().find_map(sys::get_winsize) {
        Some(ws) => ws,
        None => {
            let tty = nix::fcntl::open(
                "/dev/tty",
                OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                nix::sys::stat::Mode::empty(),
            )
            .ok()?;
            sys::get_winsize(tty.as_raw_fd())?
        }
    };
    (ws != (0, 0)).then_some(ws)
}

/// The caller's terminal in raw mode while the process runs; the saved mode comes back on
/// drop, so every exit path restores it.
struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal, unless we are a background job of it (which
    /// must not change the terminal under the shell's feet). Output processing stays on
    /// (runc's console.SetRaw keeps OPOST), so the container's `\n` still reaches the screen
    /// as a new line.
    fn enter() -> Result<Option<RawMode>, WaitError> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let Ok(saved) = termios::tcgetattr(fd) else {
            return Ok(None);
        };
        // ENOTTY: not our controlling terminal, so no job control applies.
        if nix::unistd::tcgetpgrp(fd).is_ok_and(|fg| fg != nix::unistd::getpgrp()) {
            return Ok(None);
        }
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        raw.output_flags |= OutputFlags::OPOST;
        let fd = fd.try_clone_to_owned().map_err(|e| WaitError::Terminal {
            op: "dup stdin",
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        termios::tcsetattr(&fd, SetArg::TCSANOW, &raw).map_err(|source| WaitError::Terminal {
            op: "set raw mode on stdin",
            source,
        })?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// The runtime's end of a terminal process: the pty master and the caller's terminal.
pub struct Terminal {
    master: OwnedFd,
    _raw: Option<RawMode>,
}

impl Terminal {
    /// Take the pty master of a process whose terminal the caller proxies (its ONLCR was
    /// cleared in the container, `Launch::proxy_console`), give it the caller's window size,
    /// and put the caller's terminal into raw mode until drop.
    pub fn new(master: OwnedFd) -> Result<Terminal, WaitError> {
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|source| {
            WaitError::Terminal {
                op: "make the pty master non-blocking",
                source,
            }
        })?;
        resize(master.as_fd());
        Ok(Terminal {
            master,
            _raw: RawMode::enter()?,
        })
    }
}

/// Copy the caller's window size to the pty (the kernel signals SIGWINCH to the process).
fn resize(master: BorrowedFd<'_>) {
    if let Some((r, c)) = caller_winsize() {
        let _ = sys::set_winsize(master.as_raw_fd(), r, c);
    }
}

/// Read the caller's stdin in a thread that may block as long as it likes and pass the bytes
/// on through a pipe the loop polls. The thread ends at stdin's EOF or error, or when the
/// loop closed its end; if the process exits while the thread waits for input, it is left
/// behind and ends with the runtime.
fn stdin_relay() -> Result<OwnedFd, WaitError> {
    let err = |op| move |source| WaitError::Terminal { op, source };
    let (rx, tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(err("pipe for stdin"))?;
    fcntl(&rx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(err("make stdin pipe non-blocking"))?;
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut buf = vec![0u8; BUF];
            loop {
                match nix::unistd::read(stdin.as_fd(), &mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if write_fully(tx.as_fd(), &buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(Errno::EINTR) => {}
                    // Someone made the shared stdin non-blocking: wait for it here.
                    Err(Errno::EAGAIN) => {
                        let _ = wait_for(stdin.as_fd(), PollFlags::POLLIN);
                    }
                    // EIO: a background job reading its terminal; EBADF: no stdin at all.
                    Err(_) => return,
                }
            }
        })
        .map_err(|e| WaitError::Terminal {
            op: "start the stdin thread",
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
        })?;
    Ok(rx)
}

/// Poll one fd until it is ready for `events` (or has an error to report).
fn wait_for(fd: BorrowedFd<'_>, events: PollFlags) -> nix::Result<()> {
    loop {
        match poll(&mut [PollFd::new(fd, events)], PollTimeout::NONE) {
            Err(Errno::EINTR) => {}
            r => return r.map(drop),
        }
    }
}

/// Write all of `buf`, waiting with poll when the fd is non-blocking and full.
fn write_fully(fd: BorrowedFd<'_>, mut buf: &[u8]) -> nix::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_for(fd, PollFlags::POLLOUT)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn ready(r: PollFlags) -> bool {
    r.intersects(PollFlags::POLLIN | PollFlags::POLLOUT | PollFlags::POLLHUP | PollFlags::POLLERR)
}

/// Copies between the pty master and the caller's stdin/stdout.
struct Proxy {
    /// The pty master; None once hung up because stdout failed.
    master: Option<OwnedFd>,
    _raw: Option<RawMode>,
    /// The relay thread's pipe; None after stdin's EOF.
    stdin: Option<OwnedFd>,
    /// Bytes from stdin not yet taken by the pty.
    to_pty: Vec<u8>,
    /// Bytes from the pty not yet taken by stdout.
    to_out: Vec<u8>,
    /// False once the pty gave EOF/EIO (every holder of its slave closed it).
    pty_open: bool,
    /// Largest write to stdout: a whole buffer for a regular file, `PIPE_BUF` otherwise.
    out_chunk: usize,
}

/// Which poll slot belongs to which fd in one round.
#[derive(Default)]
struct Slots {
    pty: Option<usize>,
    stdin: Option<usize>,
    out: Option<usize>,
}

impl Proxy {
    fn new(term: Terminal) -> Result<Proxy, WaitError> {
        let regular = nix::sys::stat::fstat(std::io::stdout().as_fd())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
        Ok(Proxy {
            master: Some(term.master),
            _raw: term._raw,
            stdin: Some(stdin_relay()?),
            to_pty: Vec::new(),
            to_out: Vec::new(),
            pty_open: true,
            out_chunk: if regular { usize::MAX } else { PIPE_CHUNK },
        })
    }

    fn register<'a>(&'a self, out: BorrowedFd<'a>, fds: &mut Vec<PollFd<'a>>) -> Slots {
        let mut slots = Slots::default();
        if let Some(m) = self.master.as_ref().filter(|_| self.pty_open) {
            let mut pty = PollFlags::empty();
            if self.to_out.is_empty() {
                pty |= PollFlags::POLLIN;
            }
            if !self.to_pty.is_empty() {
                pty |= PollFlags::POLLOUT;
            }
            slots.pty = Some(fds.len());
            fds.push(PollFd::new(m.as_fd(), pty));
        }
        if let Some(s) = &self.stdin
            && self.to_pty.is_empty()
        {
            slots.stdin = Some(fds.len());
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        if !self.to_out.is_empty() {
            slots.out = Some(fds.len());
            fds.push(PollFd::new(out, PollFlags::POLLOUT));
        }
        slots
    }

    fn service(&mut self, slots: &Slots, revents: &[PollFlags]) {
        let got = |slot: Option<usize>| slot.map_or(PollFlags::empty(), |i| revents[i]);
        let pty = got(slots.pty);
        if ready(got(slots.out)) {
            self.write_out();
        }
        if pty.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            self.read_pty();
        }
        if ready(got(slots.stdin)) {
            self.read_stdin();
        }
        if pty.contains(PollFlags::POLLOUT) || !self.to_pty.is_empty() {
            self.write_pty();
        }
    }

    fn read_pty(&mut self) {
        let Some(m) = &self.master else { return };
        let mut buf = vec![0u8; BUF];
        match nix::unistd::read(m, &mut buf) {
            Ok(0) | Err(Errno::EIO) => self.pty_open = false,
            Ok(n) => self.to_out.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.pty_open = false,
        }
    }

    fn write_out(&mut self) {
        let out = std::io::stdout();
        let n = self.to_out.len().min(self.out_chunk);
        match nix::unistd::write(out.as_fd(), &self.to_out[..n]) {
            Ok(n) => {
                self.to_out.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.stdout_failed(),
        }
    }

    /// The caller's stdout is gone: stop copying and close the pty master, which hangs up
    /// the process's terminal, as runc's copy closes the console when stdout fails.
    fn stdout_failed(&mut self) {
        self.to_out.clear();
        self.to_pty.clear();
        self.master = None;
    }

    fn read_stdin(&mut self) {
        let Some(fd) = &self.stdin else { return };
        let mut buf = vec![0u8; BUF];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => self.stdin = None,
            Ok(n) => self.to_pty.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.stdin = None,
        }
    }

    fn write_pty(&mut self) {
        if self.to_pty.is_empty() {
            return;
        }
        let Some(m) = self.master.as_ref().filter(|_| self.pty_open) else {
            self.to_pty.clear();
            return;
        };
        match nix::unistd::write(m, &self.to_pty) {
            Ok(n) => {
                self.to_pty.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            // The process side is gone: what the caller typed has no reader any more.
            Err(_) => self.to_pty.clear(),
        }
    }

    /// The process exited: copy what it left on the pty. Reads stop at EOF/EIO (nobody holds
    /// the slave any more), at EAGAIN (nothing left now: the kernel flushes pending pty input
    /// before it answers EAGAIN) or after `DRAIN_LIMIT`; output is written out in full.
    fn finish(&mut self) {
        let out = std::io::stdout();
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut buf = vec![0u8; BUF];
        while let Some(m) = &self.master {
            if !self.to_out.is_empty() {
                let data = std::mem::take(&mut self.to_out);
                if write_fully(out.as_fd(), &data).is_err() {
                    break;
                }
            }
            if !self.pty_open || Instant::now() > deadline {
                break;
            }
            match nix::unistd::read(m, &mut buf) {
                Ok(0) => break,
                Ok(n) => self.to_out.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }
}

/// Reap every exited child (we may be a subreaper, as runc is); returns the status of `pid`
/// when it was among them.
fn reap(pid: Pid) -> Option<WaitStatus> {
    let mut found = None;
    while let Some((p, st)) = sys::wait_any_nohang() {
        if p == pid {
            found = Some(st);
        }
    }
    found
}

/// Wait for `pid` (our child, not yet reaped), forwarding signals to it; with `tty`, the pty
/// master of its terminal, proxy it (see `Terminal::new`). Returns the shell-style status.
pub fn wait_forwarding(pid: Pid, mask: &SigSet, tty: Option<OwnedFd>) -> Result<i32, WaitError> {
    let term = tty.map(Terminal::new).transpose()?;
    wait_terminal(pid, mask, term)
}

/// `wait_forwarding` with a terminal already set up (before the process started, so it sees
/// the caller's window size from its first instruction).
pub fn wait_terminal(pid: Pid, mask: &SigSet, tty: Option<Terminal>) -> Result<i32, WaitError> {
    let fail = |op| {
        move |source| WaitError::Sys {
            pid: pid.as_raw(),
            op,
            source,
        }
    };
    // Our unreaped child: its pid cannot be reused before we wait for it.
    let pidfd = sys::pidfd_open(pid.as_raw())
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        .map_err(fail("pidfd_open"))?;
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(fail("signalfd"))?;
    let mut proxy = tty.map(Proxy::new).transpose()?;
    let stdout = std::io::stdout();
    let status = loop {
        if let Some(st) = reap(pid) {
            break st;
        }
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        let slots = proxy
            .as_ref()
            .map(|p| p.register(stdout.as_fd(), &mut fds))
            .unwrap_or_default();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(fail("poll")(e)),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if ready(revents[0]) {
            while let Some(info) = sfd.read_signal().map_err(fail("read signalfd"))? {
                let signo = info.ssi_signo as i32;
                match signo {
                    libc::SIGCHLD => {}
                    libc::SIGWINCH => {
                        if let Some(m) = proxy.as_ref().and_then(|p| p.master.as_ref()) {
                            resize(m.as_fd());
                        }
                    }
                    // ESRCH: it exited meanwhile, and the loop sees that next.
                    _ => {
                        let _ = sys::pidfd_send_signal(&pidfd, signo);
                    }
                }
            }
        }
        if ready(revents[1]) {
            // Exited: reap it now (this cannot block), whatever else is pending.
            break loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => {}
                    r => break r.map_err(fail("waitpid"))?,
                }
            };
        }
        if let Some(p) = &mut proxy {
            p.service(&slots, &revents);
        }
    };
    // Reap whatever else exited meanwhile (orphans of a shared pid namespace).
    let _ = reap(pid);
    if let Some(p) = &mut proxy {
        p.finish();
    }
    Ok(exit_code(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catchable_signal_but_sigurg_and_faults_is_forwarded() {
        let m = forwarded();
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGTSTP,
        ] {
            assert!(m.contains(s), "{s}");
        }
        // Handled here rather than forwarded, but caught all the same.
        assert!(m.contains(Signal::SIGCHLD) && m.contains(Signal::SIGWINCH));
        for s in NOT_FORWARDED {
            assert!(!m.contains(*s), "{s}");
        }
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), 3);
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            137
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGTERM, true)),
            143
        );
    }
}
