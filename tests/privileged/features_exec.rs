//! `--pidfd-socket` (create, run, exec; runc 1.2+) and `exec --cgroup` (runc 1.1+).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::features_process::Runc;
use crate::common::*;

/// Listen on a fresh socket; the thread returns the fd received on the first connection.
fn pidfd_listener(dir: &Path, name: &str) -> (PathBuf, std::thread::JoinHandle<OwnedFd>) {
    let path = dir.join(name);
    let l = UnixListener::bind(&path).unwrap();
    let name = name.to_string();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        // Poll with a deadline: a runtime that never connects fails the test, not hangs it.
        let t = std::time::Instant::now();
        let conn = loop {
            match l.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(t.elapsed().as_secs() < 60, "nothing connected to {name:?}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        peapod_oci::process::channel::recv_fd(&conn)
            .unwrap()
            .expect("no fd on the pidfd socket")
    });
    (path, h)
}

/// The pid a pidfd refers to, from its fdinfo.
fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .expect("not a pidfd")
        .trim()
        .parse()
        .unwrap()
}

/// Run `cmd` (create or exec with `--pidfd-socket`) and return the pid the socket received.
fn received_pid(cmd: impl FnOnce(&str) -> Command, dir: &Path, name: &str) -> i32 {
    let (path, h) = pidfd_listener(dir, name);
    let o = captured(cmd(path.to_str().unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    pidfd_pid(&h.join().unwrap())
}

#[test]
fn features_pidfd_socket_matches_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let b = Bundle::new(&["sleep", "1000"], json!({}));
    let bundle = b.path().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    for (name, id) in [("peapod", unique("pidfd")), ("runc", unique("pidfdr"))] {
        let cmd = |args: &[&str]| {
            if name == "runc" {
                runc.cmd(args)
            } else {
                b.cmd(args)
            }
        };
        let got = received_pid(
            |sock| cmd(&["create", "--pidfd-socket", sock, "--bundle", &bundle, &id]),
            tmp.path(),
            &format!("{name}-create"),
        );
        let st = captured(cmd(&["state", &id]));
        let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(Some(got as i64), st["pid"].as_i64(), "{name}: create");
        assert!(captured(cmd(&["start", &id])).status.success());
        let pid_file = tmp.path().join(format!("{name}-exec.pid"));
        let got = received_pid(
            |sock| {
                cmd(&[
                    "exec",
                    "--pidfd-socket",
                    sock,
                    "--detach",
                    "--pid-file",
                    pid_file.to_str().unwrap(),
                    &id,
                    "sleep",
                    "100",
                ])
            },
            tmp.path(),
            &format!("{name}-exec"),
        );
        let want: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(got, want, "{name}: exec");
    }
    // A socket nobody listens on fails the create and leaves nothing behind.
    let id = unique("pidfdx");
    let o = b.out(&[
        "create",
        "--bundle",
        &bundle,
        "--pidfd-socket",
        tmp.path().join("nobody").to_str().unwrap(),
        &id,
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("connect pidfd socket"));
    assert!(!b.state_root.join(&id).exists());
}

/// The container's cgroup directories on the host: (v1 controller or "", dir).
fn cgroup_dirs(b: &Bundle, id: &str) -> Vec<(String, PathBuf)> {
    let rel = b.cgroup_path(id);
    let rel = rel.trim_start_matches('/');
    if cgroup_v2() {
        return vec![(String::new(), Path::new("/sys/fs/cgroup").join(rel))];
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join(rel),
            )
        })
        .filter(|(_, d)| d.is_dir())
        .collect()
}

#[test]
fn features_exec_cgroup_joins_a_sub_cgroup() {
    if !root_ok() {
        return;
    }
    let id = unique("execcg");
    let b = Bundle::new(&["sleep", "1000"], json!({}));
    b.create(&id);
    b.ok(&["start", &id]);
    let dirs = cgroup_dirs(&b, &id);
    assert!(!dirs.is_empty());
    for (ctrl, d) in &dirs {
        std::fs::create_dir(d.join("sub")).unwrap();
        // A new v1 cpuset starts empty (no task may join it): copy the parent's.
        if ctrl.split(',').any(|c| c == "cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                std::fs::write(d.join("sub").join(f), std::fs::read(d.join(f)).unwrap()).unwrap();
            }
        }
    }
    let rel = b.cgroup_path(&id);
    // /proc/self/cgroup of the exec'd process, read through the host's view of its pid.
    let cgroups_of = |args: &[&str]| -> String {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[&id, "cat", "/proc/self/cgroup"]);
        b.ok(&a)
    };
    // The host's path, or with a cgroup namespace (the VM's default spec) the path below the
    // container's cgroup, which is the namespace's root.
    let plain = cgroups_of(&["--cgroup", "sub"]);
    let want = format!("{rel}/sub");
    for line in plain
        .lines()
        .filter(|l| !l.contains("name=") && !l.ends_with(":/"))
    {
        assert!(
            line.ends_with(&want) || line.ends_with(":/sub"),
            "{line} not in {want}: {plain}"
        );
    }
    if !cgroup_v2() {
        let one = cgroups_of(&["--cgroup", "memory:sub"]);
        let mem = one.lines().find(|l| l.contains(":memory:")).unwrap();
        assert!(mem.ends_with(&want), "{one}");
        let pids = one.lines().find(|l| l.contains(":pids:")).unwrap();
        assert!(pids.ends_with(&rel), "{one}");
    } else {
        let o = b.out(&["exec", "--cgroup", "memory:sub", &id, "true"]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("only apply to cgroup v1"));
    }
    // Escapes and missing sub-cgroups are refused before the process runs.
    for bad in ["../..", "/sys", "nosuch"] {
        let o = b.out(&["exec", "--cgroup", bad, &id, "true"]);
        assert!(!o.status.success(), "--cgroup {bad} was accepted");
    }
    b.ok(&["delete", "--force", &id]);
    for (_, d) in &dirs {
        let _ = std::fs::remove_dir(d.join("sub"));
        let _ = std::fs::remove_dir(d);
    }
}
