//! runc parity of the container process (issue 13 §2, `proc`): fd hygiene, error wording,
//! environment and user, hooks, the host PID namespace. Where runc 1.5.1 can run the same
//! scenario, its behaviour is the reference.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::*;
use crate::terminal::runtimes;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The fds of `pid` (>= 3) and where each points.
fn fds_of(pid: i64) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let t = std::fs::read_link(e.path()).ok()?;
            Some((n, t.to_string_lossy().into_owned()))
        })
        .filter(|(n, _)| *n >= 3)
        .collect();
    v.sort();
    v
}

/// `sh -c 'exec 9<FILE; exec "$@"'`: the runtime inherits fd 9, not close-on-exec, as from a
/// careless caller.
fn with_leaked_fd(leak: &Path, cmd: Command) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(format!("exec 9<'{}'; exec \"$@\"", leak.display()))
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    c
}

/// fd hygiene: between `create` and `start` the init holds only the channel to the runtime
/// and the O_PATH fd of `exec.fifo` (runc holds its own set, none of them the caller's); not
/// the state directory's lock, nor the `--log` file, nor an fd the caller leaked to the
/// runtime, which a process of the container could reach through `/proc/1/fd`. Before the
/// fix the init held fd 3 -> `<state>/<id>/lock`, the log file and the caller's fd 9 (checked
/// by removing the `close_runtime_fds` call: the test fails listing them).
#[test]
fn created_init_holds_no_runtime_or_caller_fd() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let leak = b.path().join("leaked-secret");
    std::fs::write(&leak, "secret").unwrap();
    let log = b.path().join("runtime.log");
    for rt in runtimes(&b) {
        let id = unique("fds");
        let mut cmd = rt.cmd(&["--log", log.to_str().unwrap(), "create", "--bundle"]);
        cmd.arg(b.path()).arg(&id);
        let o = captured(with_leaked_fd(&leak, cmd));
        assert!(o.status.success(), "{} create: {}", rt.name, stderr(&o));
        let st: serde_json::Value =
            serde_json::from_slice(&captured(rt.cmd(&["state", &id])).stdout).unwrap();
        let fds = fds_of(st["pid"].as_i64().unwrap());
        for (n, target) in &fds {
            assert!(
                !target.contains("leaked-secret") && !target.contains("runtime.log"),
                "{}: the init holds fd {n} -> {target}: {fds:?}",
                rt.name
            );
        }
        if rt.name == "peapod" {
            let state_dir = b.state_root.join(&id);
            for (n, target) in &fds {
                let fifo = state_dir.join("exec.fifo");
                assert!(
                    target == fifo.to_str().unwrap() || target.starts_with("socket:["),
                    "the init holds fd {n} -> {target} (only the channel and exec.fifo may stay): {fds:?}"
                );
            }
            assert!(fds.len() <= 2, "{fds:?}");
        }
        let o = captured(rt.cmd(&["delete", "--force", &id]));
        assert!(o.status.success(), "{} delete: {}", rt.name, stderr(&o));
    }
}
