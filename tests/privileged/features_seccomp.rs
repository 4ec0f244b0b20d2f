//! Seccomp user notification (`SCMP_ACT_NOTIFY`, `listenerPath`, `listenerMetadata`) compared
//! with runc 1.5.1: a seccomp agent in this test process receives the listener fd and runc's
//! `ContainerProcessState` JSON, and answers the container's `mkdir` itself.
//!
//! The agent can never hang the test: it polls its socket and the listener fds with a short
//! timeout, stops when every listener reports POLLHUP/POLLERR (the container's processes are
//! gone) or at a deadline, and dropping the listener fds unblocks any notified syscall (the
//! kernel then fails it with ENOSYS).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::json;

use crate::common::*;
use crate::features_process::Runc;

/// How the agent answers a notified syscall.
#[derive(Clone, Copy)]
enum Answer {
    /// Fail it with this errno.
    Errno(i32),
    /// Report success (0) without running it.
    Success,
}

/// What the agent saw.
#[derive(Debug, Default)]
struct AgentLog {
    /// The JSON of each connection, in order.
    states: Vec<serde_json::Value>,
    /// Per connection: the `pid` lives in another pid namespace than this test (a container's).
    foreign_pid: Vec<bool>,
    /// Notifications answered.
    answered: usize,
    /// What went wrong, if anything (deadline, bad message).
    error: Option<String>,
}

struct Agent {
    log: std::sync::mpsc::Receiver<AgentLog>,
}

const AGENT_DEADLINE: Duration = Duration::from_secs(40);

impl Agent {
    /// Listen at `path` for `conns` connections, each sending one listener fd.
    fn start(path: &Path, conns: usize, answer: Answer) -> Agent {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind the agent socket");
        listener.set_nonblocking(true).unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        // Never joined: the log comes through the channel with a timeout, so even an agent
        // stuck in the kernel cannot hang the test.
        std::thread::spawn(move || {
            let _ = tx.send(serve(listener, conns, answer));
        });
        Agent { log }
    }

    /// The log once every listener hung up (or the deadline passed).
    fn finish(self) -> AgentLog {
        self.log
            .recv_timeout(AGENT_DEADLINE + Duration::from_secs(20))
            .expect("the seccomp agent did not finish in time")
    }
}

fn pid_ns(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

fn serve(listener: UnixListener, conns: usize, answer: Answer) -> AgentLog {
    let mut log = AgentLog::default();
    let deadline = Instant::now() + AGENT_DEADLINE;
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut accepted = 0;
    while accepted < conns || !fds.is_empty() {
        if Instant::now() > deadline {
            log.error = Some(format!(
                "deadline: {accepted} of {conns} connections, {} listeners open",
                fds.len()
            ));
            break;
        }
        let mut set: Vec<PollFd> = fds
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        if accepted < conns {
            set.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut set, PollTimeout::from(200u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                log.error = Some(format!("poll: {e}"));
                break;
            }
        }
        let revents: Vec<PollFlags> = set
            .iter()
            .map(|p| p.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(set);
        // A new listener joins the set after this round: `revents` only covers the old ones.
        let mut new = None;
        if accepted < conns && !revents[fds.len()].is_empty() {
            match accept_one(&listener) {
                Ok((state, fd)) => {
                    let pid = state["pid"].to_string();
                    log.foreign_pid
                        .push(pid_ns(&pid).is_some_and(|ns| Some(ns) != pid_ns("self")));
                    log.states.push(state);
                    new = Some(fd);
                    accepted += 1;
                }
                Err(e) => {
                    log.error = Some(e);
                    break;
                }
            }
        }
        let mut keep = Vec::new();
        for (fd, ev) in fds.drain(..).zip(revents) {
            if ev.contains(PollFlags::POLLIN) {
                // The notified task may have died since: then there is nothing to answer.
                if let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) {
                    let resp = match answer {
                        Answer::Errno(e) => {
                            ScmpNotifResp::new_error(req.id, -e, ScmpNotifRespFlags::empty())
                        }
                        Answer::Success => {
                            ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty())
                        }
                    };
                    if resp.respond(fd.as_raw_fd()).is_ok() {
                        log.answered += 1;
                    }
                }
            }
            if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                continue; // every task of that filter is gone
            }
            keep.push(fd);
        }
        keep.extend(new);
        fds = keep;
    }
    log
}

/// One connection: runc's JSON with the listener fd attached.
fn accept_one(listener: &UnixListener) -> Result<(serde_json::Value, OwnedFd), String> {
    let (sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fd) = peapod_sys::recv_with_fd(&sock, &mut buf).map_err(|e| format!("recvmsg: {e}"))?;
    let fd = fd.ok_or("no fd came with the state")?;
    let state = serde_json::from_slice(&buf[..n])
        .map_err(|e| format!("bad JSON {:?}: {e}", String::from_utf8_lossy(&buf[..n])))?;
    Ok((state, fd))
}

fn profile(listener: &Path, nnp: bool) -> serde_json::Value {
    json!({
        "process": {"noNewPrivileges": nnp},
        "annotations": {"org.example.seccomp": "test"},
        "linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": listener,
            "listenerMetadata": "peapod-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        }},
    })
}

const MKDIR: &str = "mkdir /tmp/x 2>&1; echo rc=$?";

/// The fields runc sends, whoever sent them (peapod's `ociVersion` is its own).
fn check_state(state: &serde_json::Value, id: &str, status: &str, bundle: &Path) {
    let keys = |v: &serde_json::Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut top = keys(state);
    top.sort();
    assert_eq!(
        top,
        ["fds", "metadata", "ociVersion", "pid", "state"],
        "{state}"
    );
    let mut inner = keys(&state["state"]);
    inner.sort();
    assert_eq!(
        inner,
        ["annotations", "bundle", "id", "ociVersion", "pid", "status"],
        "{state}"
    );
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "peapod-test-metadata", "{state}");
    assert_eq!(state["state"]["id"], id, "{state}");
    assert_eq!(state["state"]["status"], status, "{state}");
    assert_eq!(
        state["state"]["bundle"],
        bundle.to_str().unwrap(),
        "{state}"
    );
    assert_eq!(
        state["state"]["annotations"],
        json!({"org.example.seccomp": "test"}),
        "{state}"
    );
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
}

#[test]
fn features_seccomp_notify_run_matches_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let dir = tempfile::Builder::new()
        .prefix("pp-scmp")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("agent.sock");
    for (nnp, answer, want) in [
        (true, Answer::Errno(libc::EACCES), "Permission denied\nrc=1"),
        (false, Answer::Success, "rc=0"),
    ] {
        let b = Bundle::new(&["sh", "-c", MKDIR], profile(&sock, nnp));
        let bundle = std::fs::canonicalize(b.path()).unwrap();
        let mut results = Vec::new();
        for (name, id) in [("peapod", unique("scmpn")), ("runc", unique("scmpnr"))] {
            let agent = Agent::start(&sock, 1, answer);
            let out = if name == "peapod" {
                b.out(&["run", "--bundle", bundle.to_str().unwrap(), &id])
            } else {
                runc.out(&["run", "--bundle", bundle.to_str().unwrap(), &id])
            };
            let log = agent.finish();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{name} nnp={nnp}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.trim_end().ends_with(want),
                "{name} nnp={nnp}: {stdout}"
            );
            assert_eq!(log.error, None, "{name} nnp={nnp}: {log:?}");
            assert_eq!(log.states.len(), 1, "{name}: {log:?}");
            assert!(log.answered >= 1, "{name} answered nothing: {log:?}");
            let state = &log.states[0];
            check_state(state, &id, "creating", &bundle);
            // The init: the container's pid 1, seen from here.
            assert_eq!(state["pid"], state["state"]["pid"], "{name}: {state}");
            assert_eq!(
                log.foreign_pid,
                [true],
                "{name}: the pid is not a container's"
            );
            results.push(stdout);
        }
        assert_eq!(results[0], results[1], "nnp={nnp}: peapod and runc differ");
    }
}

#[test]
fn features_seccomp_notify_exec_matches_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let dir = tempfile::Builder::new()
        .prefix("pp-scmpx")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("agent.sock");
    let b = Bundle::new(&["sleep", "60"], profile(&sock, true));
    let bundle = std::fs::canonicalize(b.path()).unwrap();
    let mut results = Vec::new();
    for (name, id) in [("peapod", unique("scmpx")), ("runc", unique("scmpxr"))] {
        let cmd = |args: &[&str]| {
            if name == "peapod" {
                b.out(args)
            } else {
                runc.out(args)
            }
        };
        // One connection for the init at create, one for the exec'd process.
        let agent = Agent::start(&sock, 2, Answer::Errno(libc::EROFS));
        let ok = |o: std::process::Output, what: &str| {
            assert!(
                o.status.success(),
                "{name} {what}: {:?} {}{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        ok(
            cmd(&["create", "--bundle", bundle.to_str().unwrap(), &id]),
            "create",
        );
        ok(cmd(&["start", &id]), "start");
        let out = ok(cmd(&["exec", &id, "sh", "-c", MKDIR]), "exec");
        let init_pid: serde_json::Value =
            serde_json::from_str(&ok(cmd(&["state", &id]), "state")).unwrap();
        ok(cmd(&["delete", "--force", &id]), "delete");
        let log = agent.finish();
        assert_eq!(log.error, None, "{name}: {log:?}");
        assert_eq!(log.states.len(), 2, "{name}: {log:?}");
        assert!(log.answered >= 1, "{name} answered nothing: {log:?}");
        check_state(&log.states[0], &id, "creating", &bundle);
        check_state(&log.states[1], &id, "running", &bundle);
        let exec = &log.states[1];
        // The exec'd process, in the state of the container whose init is recorded.
        assert_eq!(exec["state"]["pid"], init_pid["pid"], "{name}: {exec}");
        assert_ne!(exec["pid"], exec["state"]["pid"], "{name}: {exec}");
        assert_eq!(log.foreign_pid, [true, true], "{name}");
        assert!(out.contains("Read-only file system"), "{name}: {out}");
        results.push(out);
    }
    assert_eq!(results[0], results[1], "exec: peapod and runc differ");
}

/// runc's refusals, in runc's words; without a NOTIFY rule the listener fields are ignored.
#[test]
fn features_seccomp_notify_refusals_match_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let dir = tempfile::Builder::new()
        .prefix("pp-scmpe")
        .tempdir()
        .unwrap();
    let missing = dir.path().join("missing.sock");
    // A socket nobody listens on: bound, then the listener is closed.
    let dead = dir.path().join("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    let notify = |path: &Path, names: &[&str]| {
        json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}],
        })
    };
    let connect =
        "failed to connect with seccomp agent specified in the seccomp profile: dial unix";
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": missing}),
            "SCMP_ACT_NOTIFY cannot be used as default action".to_string(),
        ),
        (
            notify(&missing, &["mkdir", "write"]),
            "SCMP_ACT_NOTIFY cannot be used for the write syscall".to_string(),
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "seccomp listenerPath is not set".to_string(),
        ),
        (
            notify(&missing, &["mkdir"]),
            format!(
                "{connect} {}: connect: no such file or directory",
                missing.display()
            ),
        ),
        (
            notify(&dead, &["mkdir"]),
            format!("{connect} {}: connect: connection refused", dead.display()),
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": missing,
                   "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "error adding WaitKill flag to seccomp filter: SetWaitKill requires libseccomp >= 2.6.0"
                .to_string(),
        ),
    ];
    for (seccomp, msg) in cases {
        let b = Bundle::new(&["true"], json!({"linux": {"seccomp": seccomp.clone()}}));
        let bundle = b.path().to_str().unwrap();
        let id = unique("scmpe");
        let ours = b.out(&["run", "--bundle", bundle, &id]);
        let theirs = runc.out(&["run", "--bundle", bundle, &unique("scmper")]);
        let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!ours.status.success(), "peapod ran {seccomp}");
        assert!(!theirs.status.success(), "runc ran {seccomp}");
        assert!(
            err(&theirs).contains(&msg),
            "runc for {seccomp}: {}",
            err(&theirs)
        );
        assert!(
            err(&ours).contains(&msg),
            "peapod for {seccomp}: {}",
            err(&ours)
        );
        assert!(leftover_cgroups(&id).is_empty(), "{seccomp}");
        assert!(
            std::fs::read_dir(&b.state_root).map_or(true, |mut d| d.next().is_none()),
            "peapod left a state for {seccomp}"
        );
    }
    // No NOTIFY rule: listenerPath and listenerMetadata are ignored (nobody listens there).
    let b = Bundle::new(
        &["true"],
        json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": missing, "listenerMetadata": "x"}}}),
    );
    let (code, _, err) = b.run(&unique("scmpe"));
    assert_eq!(code, 0, "{err}");
    let theirs = runc.out(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique("scmper"),
    ]);
    assert!(theirs.status.success());
}

/// A static helper that makes each syscall number of its arguments (all arguments 0) and prints
/// `NR:ok|ENOSYS|EPERM|other`, compiled with gcc into `dir`.
fn syscall_helper(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("scall.c");
    std::fs::write(
        &src,
        r#"#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 0);
        errno = 0;
        long r = syscall(nr, 0, 0, 0, 0, 0, 0);
        printf("%ld:%s\n", nr, r >= 0 ? "ok" : errno == ENOSYS ? "ENOSYS"
               : errno == EPERM ? "EPERM" : "other");
    }
    return 0;
}
"#,
    )
    .unwrap();
    let bin = dir.join("scall");
    let out = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    let built = out.as_ref().is_ok_and(|o| o.status.success());
    can_run("needs gcc with static glibc (libc6-dev)", built).then_some(bin)
}

/// runc's `-ENOSYS` stub: with a non-permissive default action, a syscall numbered above the
/// largest one the profile names fails with ENOSYS (clone3, or a number no kernel has), one
/// below it gets the default action (EPERM), as under runc.
#[test]
fn features_seccomp_enosys_stub_matches_runc() {
    use libseccomp::{ScmpArch, ScmpSyscall};
    if !root_ok()
        || !can_run(
            "the profile lists x86_64 syscalls",
            cfg!(target_arch = "x86_64"),
        )
    {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let dir = tempfile::Builder::new()
        .prefix("pp-scmps")
        .tempdir()
        .unwrap();
    let Some(helper) = syscall_helper(dir.path()) else {
        return;
    };
    // Allowed: every x86_64 syscall up to rseq (334) but acct (163); clone3 is 435.
    let names: Vec<String> = (0..=334)
        .filter(|nr| *nr != 163)
        .filter_map(|nr| ScmpSyscall::from(nr).get_name_by_arch(ScmpArch::X8664).ok())
        .collect();
    let b = Bundle::new(
        &["/dev/scall", "163", "435", "1000"],
        json!({"process": {"noNewPrivileges": true}, "linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        }}}),
    );
    // The helper reaches the container as a bind mount on its /dev tmpfs.
    let mut cfg = b.config();
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev/scall", "type": "bind", "source": helper,
        "options": ["bind", "ro"],
    }));
    std::fs::write(
        b.path().join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let bundle = b.path().to_str().unwrap();
    let ours = b.out(&["run", "--bundle", bundle, &unique("scmps")]);
    let theirs = runc.out(&["run", "--bundle", bundle, &unique("scmpsr")]);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(ours.status.success(), "peapod: {}", text(&ours));
    assert!(theirs.status.success(), "runc: {}", text(&theirs));
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        "163:EPERM\n435:ENOSYS\n1000:ENOSYS\n",
        "peapod: {}",
        text(&ours)
    );
    assert_eq!(ours.stdout, theirs.stdout, "runc: {}", text(&theirs));
}
