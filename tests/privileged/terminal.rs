//! Foreground `run` and `exec` with `terminal: true` (issue 13 §1): they return when the
//! process exits, whatever the caller's stdin does, with the process's status and all of its
//! output; the caller's terminal is put in raw mode and restored, its window size reaches
//! the process; detached runs with a console socket return at once. Where runc 1.5.1 can run
//! the same invocation (it needs a terminal among the caller's stdio), the exit code and the
//! bytes the caller sees must be runc's.
//!
//! Before the fix, peapod stayed blocked reading its stdin after the process had exited
//! (about half of the runs of `run_returns_with_a_silent_stdin` hung on the development host):
//! every test below that runs peapod in the foreground with a terminal failed on that binary
//! (checked with `PEAPOD_BIN=<main's peapod>`).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{LocalFlags, tcgetattr};
use nix::unistd::Pid;
use serde_json::json;

use crate::common::*;

/// How long one command may take. A debug build in the emulated VM needs about a second for
/// a `run`; a hang is forever.
const DEADLINE: Duration = Duration::from_secs(90);

/// runc 1.5.1 from `shared/tools` beside the repository (any ancestor's), else `runc` on PATH.
pub(crate) fn runc_bin() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/tools/runc-1.5.1"))
        .chain(["/usr/sbin/runc", "/usr/bin/runc"].map(PathBuf::from))
        .find(|p| p.exists())
}

/// A runtime with a state root of its own: peapod (the bundle's) or runc.
pub(crate) struct Runtime {
    pub(crate) name: &'static str,
    pub(crate) bin: PathBuf,
    pub(crate) root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Runtime {
    pub(crate) fn peapod(b: &Bundle) -> Runtime {
        Runtime {
            name: "peapod",
            bin: oci_bin(),
            root: b.state_root.clone(),
            _tmp: None,
        }
    }

    pub(crate) fn runc() -> Option<Runtime> {
        let tmp = tempfile::Builder::new()
            .prefix("pp-runc")
            .tempdir()
            .unwrap();
        Some(Runtime {
            name: "runc",
            bin: runc_bin()?,
            root: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        })
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    pub(crate) fn ok(&self, args: &[&str]) {
        let o = captured(self.cmd(args));
        assert!(
            o.status.success(),
            "{} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // runc's containers (peapod's are the bundle's to remove).
        if self._tmp.is_some() {
            for e in std::fs::read_dir(&self.root)
                .into_iter()
                .flatten()
                .flatten()
            {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = captured(self.cmd(&["delete", "--force", &id]));
            }
        }
    }
}

/// peapod, and runc when it is there (a missing runc fails under PEAPOD_MUST_WORK).
pub(crate) fn runtimes(b: &Bundle) -> Vec<Runtime> {
    let mut v = vec![Runtime::peapod(b)];
    match Runtime::runc() {
        Some(r) => v.push(r),
        None => {
            can_run("needs runc 1.5.1 (shared/tools) or runc on PATH", false);
        }
    }
    v
}

/// What the caller gives the runtime as stdio.
#[derive(Clone, Copy)]
enum Caller {
    /// stdin a pipe that never sends and never closes, stdout and stderr pipes.
    Pipes,
    /// The same, but stderr is a terminal (runc needs one somewhere; stdout stays a pipe).
    StderrTty,
    /// stdin, stdout and stderr one terminal of this size, the runtime's controlling
    /// terminal (`setsid -c`), so resizing it signals SIGWINCH to the runtime.
    Tty(u16, u16),
}

/// A pty pair made close-on-exec from the start (other tests fork concurrently).
fn pty() -> (OwnedFd, OwnedFd) {
    let master =
        nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    nix::pty::grantpt(&master).unwrap();
    nix::pty::unlockpt(&master).unwrap();
    let name = nix::pty::ptsname_r(&master).unwrap();
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    (master.as_fd().try_clone_to_owned().unwrap(), slave)
}

/// Collects what a reader thread reads until EOF/EIO.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    /// Read `r` to its end in a thread (after `delay`, to let a pipe fill up); the sender
    /// tells when it is done.
    fn fill(&self, mut r: impl Read + Send + 'static, delay: Duration, done: mpsc::Sender<()>) {
        let sink = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut buf = [0u8; 16384];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = done.send(());
        });
    }
}

/// A runtime command running with the caller's stdio of `Caller`.
struct Session {
    child: Child,
    name: &'static str,
    /// The never-written end of the silent stdin pipe, kept open until the end.
    _stdin: Option<OwnedFd>,
    /// The terminal's master for `Caller::Tty` (and `StderrTty`).
    master: Option<OwnedFd>,
    out: Sink,
    err: Sink,
    readers: mpsc::Receiver<()>,
    nreaders: usize,
    started: Instant,
}

struct Finished {
    /// None: still running at the deadline (then killed).
    code: Option<i32>,
    /// stdout (Pipes, StderrTty) or the terminal's output (Tty).
    out: Vec<u8>,
    /// stderr (Pipes) or the terminal's output (StderrTty).
    err: String,
    took: Duration,
    /// Whether the runtime's stdio reached its end once it exited.
    ended: bool,
}

impl Finished {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

impl Session {
    fn start(rt: &Runtime, args: &[&str], caller: Caller) -> Session {
        Session::start_slow(rt, args, caller, Duration::ZERO)
    }

    /// With `out_delay`, stdout is read only after that long (a caller slow to read).
    fn start_slow(rt: &Runtime, args: &[&str], caller: Caller, out_delay: Duration) -> Session {
        let (tx, readers) = mpsc::channel();
        let (out, err) = (Sink::default(), Sink::default());
        let mut cmd = rt.cmd(args);
        let (mut stdin_keep, mut master, mut pipes) = (None, None, false);
        match caller {
            Caller::Pipes | Caller::StderrTty => {
                let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
                cmd.stdin(Stdio::from(r)).stdout(Stdio::piped());
                stdin_keep = Some(w);
                pipes = true;
                if let Caller::StderrTty = caller {
                    let (m, s) = pty();
                    cmd.stderr(Stdio::from(s));
                    master = Some(m);
                } else {
                    cmd.stderr(Stdio::piped());
                }
            }
            Caller::Tty(rows, cols) => {
                let (m, s) = pty();
                peapod_sys::set_winsize(m.as_raw_fd(), rows, cols).unwrap();
                let mut c = Command::new("setsid");
                c.args(["-w", "-c"])
                    .arg(cmd.get_program())
                    .args(cmd.get_args());
                c.stdin(Stdio::from(s.try_clone().unwrap()))
                    .stdout(Stdio::from(s.try_clone().unwrap()))
                    .stderr(Stdio::from(s));
                cmd = c;
                master = Some(m);
            }
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        drop(cmd); // our copies of the child's ends
        let mut nreaders = 0;
        if pipes {
            out.fill(child.stdout.take().unwrap(), out_delay, tx.clone());
            nreaders += 1;
            if let Some(e) = child.stderr.take() {
                err.fill(e, Duration::ZERO, tx.clone());
                nreaders += 1;
            }
        }
        if let Some(m) = &master {
            let f = std::fs::File::from(m.try_clone().unwrap());
            let sink = if pipes { &err } else { &out };
            sink.fill(f, Duration::ZERO, tx.clone());
            nreaders += 1;
        }
        Session {
            child,
            name: rt.name,
            _stdin: stdin_keep,
            master,
            out,
            err,
            readers,
            nreaders,
            started,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Wait until the output so far contains `s`.
    fn wait_for(&self, s: &str) {
        while !self.out.text().contains(s) {
            assert!(
                self.started.elapsed() < DEADLINE,
                "{}: no `{s}` in the output: {:?} {:?}",
                self.name,
                self.out.text(),
                self.err.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the runtime to exit (killing it at the deadline) and for its output to end.
    fn finish(mut self) -> Finished {
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st.code().unwrap_or(-1));
            }
            if self.started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = self.started.elapsed();
        // The runtime is gone; its stdio ends as soon as nothing else holds it.
        let ended =
            (0..self.nreaders).all(|_| self.readers.recv_timeout(Duration::from_secs(20)).is_ok());
        Finished {
            code,
            out: self.out.bytes(),
            err: self.err.text(),
            took,
            ended,
        }
    }
}

fn terminal_bundle(args: &[&str]) -> Bundle {
    Bundle::new(args, json!({"process": {"terminal": true}}))
}

/// A running container (init `sleep`, no terminal) to exec into.
fn running(b: &Bundle, rt: &Runtime, id: &str) {
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        id,
    ]);
}

fn assert_returned(f: &Finished, who: &str) {
    assert!(
        f.code.is_some(),
        "{who} still running after {DEADLINE:?} (its process had exited): output {:?}, stderr {:?}",
        f.out(),
        f.err
    );
    assert!(f.ended, "{who} returned but its stdio is still held open");
}

#[test]
fn run_returns_with_a_silent_stdin() {
    if !root_ok() {
        return;
    }
    let b = terminal_bundle(&["sh", "-c", "echo out-1; echo err-1 >&2; exit 3"]);
    let bundle = b.path().to_str().unwrap();
    let pp = Runtime::peapod(&b);
    // stdin a pipe that never sends nor closes, no terminal anywhere (runc refuses this
    // one: it needs a terminal to make raw). Several times: the old hang was a race.
    for i in 0..4 {
        let f = Session::start(
            &pp,
            &["run", "--bundle", bundle, &unique(&format!("sil{i}"))],
            Caller::Pipes,
        )
        .finish();
        assert_returned(&f, "peapod run");
        assert_eq!(f.code, Some(3), "{}", f.err);
        // The pty's ONLCR is cleared, as runc does: lines end in `\n` on a pipe.
        assert_eq!(f.out(), "out-1\nerr-1\n");
        assert_eq!(f.err, "");
    }
    // With a terminal on stderr, runc runs it too: same code, same bytes on stdout.
    let mut seen = Vec::new();
    for rt in runtimes(&b) {
        let f = Session::start(
            &rt,
            &["run", "--bundle", bundle, &unique("silr")],
            Caller::StderrTty,
        )
        .finish();
        assert_returned(&f, rt.name);
        seen.push((rt.name, f.code, f.out()));
    }
    assert_eq!(seen[0].1, Some(3));
    assert_eq!(seen[0].2, "out-1\nerr-1\n");
    for s in &seen[1..] {
        assert_eq!(
            (s.1, &s.2),
            (seen[0].1, &seen[0].2),
            "{} differs from peapod",
            s.0
        );
    }
}

#[test]
fn exec_returns_with_a_silent_stdin() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"], json!({}));
    let pp = Runtime::peapod(&b);
    let id = unique("exsil");
    running(&b, &pp, &id);
    let script = "echo out-2; echo err-2 >&2; exit 4";
    for _ in 0..4 {
        let f =
            Session::start(&pp, &["exec", "-t", &id, "sh", "-c", script], Caller::Pipes).finish();
        assert_returned(&f, "peapod exec");
        assert_eq!(f.code, Some(4), "{}", f.err);
        assert_eq!(f.out(), "out-2\nerr-2\n");
    }
    let mut seen = Vec::new();
    for rt in runtimes(&b) {
        let id = unique(&format!("exsil-{}", rt.name));
        running(&b, &rt, &id);
        let f = Session::start(
            &rt,
            &["exec", "-t", &id, "sh", "-c", script],
            Caller::StderrTty,
        )
        .finish();
        assert_returned(&f, rt.name);
        seen.push((rt.name, f.code, f.out()));
    }
    assert_eq!((seen[0].1, seen[0].2.as_str()), (Some(4), "out-2\nerr-2\n"));
    for s in &seen[1..] {
        assert_eq!(
            (s.1, &s.2),
            (seen[0].1, &seen[0].2),
            "{} differs from peapod",
            s.0
        );
    }
}

#[test]
fn concurrent_terminal_runs_and_execs_all_return() {
    if !root_ok() {
        return;
    }
    // 12 runs and 8 execs at once, each with a silent stdin: every one returns with its own
    // status and output.
    let host = Bundle::new(&["sleep", "1000"], json!({}));
    let host_rt = Runtime::peapod(&host);
    let host_id = unique("conc-host");
    running(&host, &host_rt, &host_id);
    let mut sessions = Vec::new();
    for i in 0..20u32 {
        let code = (i % 7 + 1).to_string();
        let s = if i < 12 {
            let bb = Bundle::new(
                &["sh", "-c", &format!("echo run-{i}; exit {code}")],
                json!({"process": {"terminal": true}}),
            );
            let rt = Runtime::peapod(&bb);
            let id = unique(&format!("conc{i}"));
            let s = Session::start(
                &rt,
                &["run", "--bundle", bb.path().to_str().unwrap(), &id],
                Caller::Pipes,
            );
            (s, format!("run-{i}\n"), code, Some(bb))
        } else {
            let s = Session::start(
                &host_rt,
                &[
                    "exec",
                    "-t",
                    &host_id,
                    "sh",
                    "-c",
                    &format!("echo exec-{i}; exit {code}"),
                ],
                Caller::Pipes,
            );
            (s, format!("exec-{i}\n"), code, None)
        };
        sessions.push(s);
    }
    let mut failures = Vec::new();
    for (s, want_out, code, _bundle) in sessions {
        let f = s.finish();
        let got = (f.code, f.out(), f.ended);
        let want = (Some(code.parse::<i32>().unwrap()), want_out.clone(), true);
        if got != want {
            failures.push(format!(
                "{want_out:?}: got {got:?} after {:?} ({})",
                f.took,
                f.err.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 20 did not return right: {failures:#?}",
        failures.len()
    );
}

#[test]
fn all_output_arrives_through_a_slow_reader() {
    if !root_ok() {
        return;
    }
    // About 1 MB, far more than a pipe holds, read by a caller that starts reading late: the
    // runtime must neither lose any of it nor stay blocked when the process is done.
    let b = terminal_bundle(&["sh", "-c", "seq 1 150000; exit 7"]);
    let want: String = (1..=150000).map(|i| format!("{i}\n")).collect();
    let mut seen = Vec::new();
    for rt in runtimes(&b) {
        let f = Session::start_slow(
            &rt,
            &[
                "run",
                "--bundle",
                b.path().to_str().unwrap(),
                &unique(&format!("big-{}", rt.name)),
            ],
            Caller::StderrTty,
            // Not a synchronisation: a late reader, so the pipe is full for a while.
            Duration::from_millis(500),
        )
        .finish();
        assert_returned(&f, rt.name);
        assert_eq!(f.code, Some(7), "{}: {}", rt.name, f.err);
        assert!(
            f.out() == want,
            "{}: {} bytes of {} arrived",
            rt.name,
            f.out.len(),
            want.len()
        );
        seen.push(f.out.len());
    }
    assert!(seen.iter().all(|&n| n == want.len()));
}

/// A terminal-to-terminal session: the process prints its size and says `ready`; the caller's
/// terminal must then be raw. It is resized (the kernel signals SIGWINCH to the runtime,
/// whose pty must follow: the process waits for its new size and says `resized`), then a
/// line is typed, which the process reads and prints with its size. Returns the terminal's
/// bytes, whether it was raw, whether its mode came back.
fn interactive(rt: &Runtime, args: &[&str]) -> (Finished, bool, bool) {
    let s = Session::start(rt, args, Caller::Tty(37, 101));
    let master = s.master.as_ref().unwrap().try_clone().unwrap();
    let before = tcgetattr(&master).unwrap();
    s.wait_for("ready");
    let during = tcgetattr(&master).unwrap();
    let raw = !during
        .local_flags
        .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
    peapod_sys::set_winsize(master.as_raw_fd(), 50, 132).unwrap();
    // Typed only once the resize arrived: runc handles both in separate goroutines.
    s.wait_for("resized");
    nix::unistd::write(&master, b"hello\r").unwrap();
    let f = s.finish();
    let after = tcgetattr(&master).unwrap();
    let restored = after.local_flags == before.local_flags
        && after.input_flags == before.input_flags
        && after.output_flags == before.output_flags;
    (f, raw, restored)
}

#[test]
fn a_terminal_caller_gets_raw_mode_its_size_and_its_input_through() {
    if !root_ok() {
        return;
    }
    let script = "stty size; echo ready; while [ \"$(stty size 2>/dev/null)\" != '50 132' ]; do :; done; \
        echo resized; read x; echo got-$x; stty size; exit 6";
    let b = terminal_bundle(&["sh", "-c", script]);
    // runc sizes the pty only once the process runs (for run and exec alike), so its first
    // `stty size` may see no size yet; peapod sizes it before (run) or passes consoleSize
    // (exec), so the process sees the caller's size from the start.
    let (first_want, rest_want) = (
        "37 101",
        "ready\r\nresized\r\nhello\r\ngot-hello\r\n50 132\r\n",
    );
    for rt in runtimes(&b) {
        // exec goes into a running container of the same runtime.
        let host = unique(&format!("ttyx-{}", rt.name));
        let hb = Bundle::new(&["sleep", "1000"], json!({}));
        let hrt = if rt.name == "peapod" {
            Runtime::peapod(&hb)
        } else {
            Runtime::runc().unwrap()
        };
        running(&hb, &hrt, &host);
        let id = unique(&format!("tty-{}", rt.name));
        let bundle = b.path().to_str().unwrap();
        for (verb, rt, args) in [
            ("run", &rt, vec!["run", "--bundle", bundle, &id]),
            ("exec", &hrt, vec!["exec", "-t", &host, "sh", "-c", script]),
        ] {
            let (f, raw, restored) = interactive(rt, &args);
            assert_returned(&f, rt.name);
            let out = f.out();
            let (first, rest) = out.split_once("\r\n").unwrap_or_default();
            assert_eq!((f.code, rest), (Some(6), rest_want), "{} {verb}", rt.name);
            if rt.name == "peapod" {
                assert_eq!(
                    first, first_want,
                    "peapod {verb}: the process missed the size"
                );
            }
            assert!(
                raw,
                "{} {verb}: the caller's terminal is not raw while the process runs",
                rt.name
            );
            assert!(
                restored,
                "{} {verb}: the caller's terminal mode was not restored",
                rt.name
            );
        }
    }
}

#[test]
fn a_signal_killed_terminal_process_exits_128_plus_n() {
    if !root_ok() {
        return;
    }
    let b = terminal_bundle(&["sh", "-c", "echo ready; exec sleep 1000"]);
    let host = Bundle::new(&["sleep", "1000"], json!({}));
    let mut seen = Vec::new();
    for rt in runtimes(&b) {
        // Killed by itself.
        let hrt = if rt.name == "peapod" {
            Runtime::peapod(&host)
        } else {
            Runtime::runc().unwrap()
        };
        let hid = unique(&format!("sigh-{}", rt.name));
        running(&host, &hrt, &hid);
        let own = Session::start(
            &hrt,
            &["exec", "-t", &hid, "sh", "-c", "kill -TERM $$"],
            Caller::StderrTty,
        )
        .finish();
        assert_returned(&own, rt.name);
        // Killed by a signal the runtime forwards (sent to the runtime, as a shell's kill).
        let s = Session::start(
            &hrt,
            &[
                "exec",
                "-t",
                &hid,
                "sh",
                "-c",
                "echo ready; exec sleep 1000",
            ],
            Caller::StderrTty,
        );
        s.wait_for_err("ready");
        kill(s.pid(), Signal::SIGUSR1).unwrap();
        let fwd = s.finish();
        assert_returned(&fwd, rt.name);
        // The container's init killed with `kill ID KILL` while `run` waits for it.
        let id = unique(&format!("sigr-{}", rt.name));
        let s = Session::start(
            &rt,
            &["run", "--bundle", b.path().to_str().unwrap(), &id],
            Caller::StderrTty,
        );
        s.wait_for_err("ready");
        rt.ok(&["kill", &id, "KILL"]);
        let init = s.finish();
        assert_returned(&init, rt.name);
        seen.push((rt.name, own.code, fwd.code, init.code));
    }
    assert_eq!(
        (seen[0].1, seen[0].2, seen[0].3),
        (Some(128 + 15), Some(128 + 10), Some(128 + 9))
    );
    for s in &seen[1..] {
        assert_eq!(
            (s.1, s.2, s.3),
            (seen[0].1, seen[0].2, seen[0].3),
            "{} differs",
            s.0
        );
    }
}

impl Session {
    /// `wait_for` on the terminal of `Caller::StderrTty`, where a terminal process writes.
    fn wait_for_err(&self, s: &str) {
        while !self.err.text().contains(s) && !self.out.text().contains(s) {
            assert!(
                self.started.elapsed() < DEADLINE,
                "{}: no `{s}` yet: {:?} {:?}",
                self.name,
                self.out.text(),
                self.err.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Accept one connection on `sock` and receive the pty master sent over it.
fn console_socket(sock: &Path) -> std::thread::JoinHandle<OwnedFd> {
    let listener = UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        peapod_oci::process::channel::recv_fd(&conn)
            .unwrap()
            .expect("a pty master")
    })
}

/// Read the pty master until `want` shows up (or the deadline).
fn read_master(m: OwnedFd, want: &str) -> String {
    let (tx, rx) = mpsc::channel();
    let sink = Sink::default();
    sink.fill(std::fs::File::from(m), Duration::ZERO, tx);
    let t = Instant::now();
    while !sink.text().contains(want) && t.elapsed() < DEADLINE {
        if rx.try_recv().is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sink.text()
}

#[test]
fn detached_run_and_exec_with_a_console_socket_return() {
    if !root_ok() {
        return;
    }
    let b = terminal_bundle(&["sh", "-c", "echo hello-init; exec sleep 1000"]);
    let mut seen = Vec::new();
    for rt in runtimes(&b) {
        let id = unique(&format!("det-{}", rt.name));
        let sock = b.path().join(format!("{}-run.sock", rt.name));
        let master = console_socket(&sock);
        let f = Session::start(
            &rt,
            &[
                "run",
                "-d",
                "--console-socket",
                sock.to_str().unwrap(),
                "--bundle",
                b.path().to_str().unwrap(),
                &id,
            ],
            Caller::Pipes,
        )
        .finish();
        // Returned, and its stdout pipe ended: nothing of the runtime's stays with the container.
        assert_returned(&f, rt.name);
        assert!(f.took < DEADLINE, "{}", rt.name);
        let text = read_master(master.join().unwrap(), "hello-init");
        assert!(text.contains("hello-init"), "{}: {text:?}", rt.name);
        let sock = b.path().join(format!("{}-exec.sock", rt.name));
        let master = console_socket(&sock);
        let e = Session::start(
            &rt,
            &[
                "exec",
                "-d",
                "-t",
                "--console-socket",
                sock.to_str().unwrap(),
                &id,
                "sh",
                "-c",
                "echo hello-exec; exec sleep 1000",
            ],
            Caller::Pipes,
        )
        .finish();
        assert_returned(&e, rt.name);
        let text = read_master(master.join().unwrap(), "hello-exec");
        assert!(text.contains("hello-exec"), "{}: {text:?}", rt.name);
        seen.push((rt.name, f.code, f.out(), e.code, e.out()));
    }
    assert_eq!(
        (seen[0].1, seen[0].2.as_str(), seen[0].3, seen[0].4.as_str()),
        (Some(0), "", Some(0), ""),
        "{}",
        seen[0].0
    );
    for s in &seen[1..] {
        assert_eq!(
            (s.1, &s.2, s.3, &s.4),
            (seen[0].1, &seen[0].2, seen[0].3, &seen[0].4),
            "{} differs",
            s.0
        );
    }
}

#[test]
fn foreground_run_with_a_console_socket_returns() {
    if !root_ok() {
        return;
    }
    // runc refuses a console socket without --detach; peapod hands the pty to the socket and
    // waits for the process, which must not hang either.
    let b = terminal_bundle(&["sh", "-c", "echo via-socket; exit 2"]);
    let sock = b.path().join("fg.sock");
    let master = console_socket(&sock);
    let pp = Runtime::peapod(&b);
    let s = Session::start(
        &pp,
        &[
            "run",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.path().to_str().unwrap(),
            &unique("fgsock"),
        ],
        Caller::Pipes,
    );
    let text = read_master(master.join().unwrap(), "via-socket");
    let f = s.finish();
    assert_returned(&f, "peapod run --console-socket");
    assert_eq!(f.code, Some(2), "{}", f.err);
    assert!(text.contains("via-socket"), "{text:?}");
}

/// A process of ours, if `pid` is still the `comm` we started.
fn kill_if(pid: i32, comm: &str) {
    if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[test]
fn foreground_run_without_terminal_adopts_orphans_unless_no_subreaper() {
    if !root_ok() {
        return;
    }
    // The host's pid namespace: a process the container orphans is adopted by the nearest
    // subreaper, which is the runtime itself (runc's run is one, unless --no-subreaper); and
    // `run` returns when the init exits although the orphan still runs.
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "p=$(sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $!'); \
             echo $p $(awk '/^PPid/ {print $2}' /proc/$p/status); exit 5",
        ],
        json!({}),
    );
    let mut cfg = b.config();
    let ns: Vec<serde_json::Value> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "pid")
        .cloned()
        .collect();
    cfg["linux"]["namespaces"] = ns.into();
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    let mut seen = Vec::new();
    for rt in runtimes(&b) {
        for flag in [None, Some("--no-subreaper")] {
            let id = unique(&format!("orph-{}", rt.name));
            let mut args = vec!["run"];
            args.extend(flag);
            args.extend(["--bundle", b.path().to_str().unwrap(), &id]);
            let s = Session::start(&rt, &args, Caller::Pipes);
            let runtime_pid = s.pid().as_raw();
            let f = s.finish();
            let out = f.out();
            let fields: Vec<i32> = out
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            if let Some(&orphan) = fields.first() {
                kill_if(orphan, "sleep");
            }
            assert_returned(&f, rt.name);
            assert_eq!(f.code, Some(5), "{} {flag:?}: {}", rt.name, f.err);
            assert_eq!(fields.len(), 2, "{} {flag:?}: {out:?}", rt.name);
            let adopted = fields[1] == runtime_pid;
            seen.push((rt.name, flag, adopted));
        }
    }
    assert!(seen[0].2, "peapod run is not the orphan's subreaper");
    assert!(!seen[1].2, "peapod run --no-subreaper adopted the orphan");
    for s in &seen[2..] {
        let ours = seen.iter().find(|o| o.0 == "peapod" && o.1 == s.1).unwrap();
        assert_eq!(s.2, ours.2, "{} {:?} differs from peapod", s.0, s.1);
    }
}
