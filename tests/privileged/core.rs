//! The OCI core: lifecycle, what the container sees, exec, bad input leaving nothing behind.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

#[test]
fn run_propagates_exit_code_and_output() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &["sh", "-c", "echo hello; echo oops >&2; exit 42"],
        json!({}),
    );
    let (code, out, err) = b.run(&unique("exit"));
    assert_eq!(code, 42, "stderr: {err}");
    assert_eq!(out, "hello\n");
    assert_eq!(err, "oops\n");
    // run deletes the container afterwards.
    assert!(std::fs::read_dir(&b.state_root).unwrap().next().is_none());
}

/// The OCI tests run `peapod-runc`; `peapod` takes the same verbs (one clap definition), so
/// users' scripts and the README keep working: create, state, start, list and delete with it.
#[test]
fn the_full_binary_runs_the_oci_verbs_too() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "exit 7"], json!({}));
    let id = unique("full");
    let full = |args: &[&str]| {
        let mut c = std::process::Command::new(bin());
        c.arg("--root").arg(&b.state_root).args(args);
        captured(c)
    };
    let o = full(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let o = full(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(o.status.success(), "{o:?}");
    let o = full(&["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    // and the lean binary sees the same state
    let o = b.out(&["state", &id]);
    let state: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(state["status"], "created");
    let o = full(&["delete", "--force", &id]);
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::read_dir(&b.state_root).unwrap().next().is_none());
}

#[test]
fn lifecycle_create_start_kill_delete() {
    if !root_ok() {
        return;
    }
    let id = unique("life");
    let b = Bundle::new(&["sleep", "100"], json!({}));
    b.create(&id);
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.2.0");
    assert!(st["pid"].as_i64().unwrap() > 0);
    assert_eq!(st["bundle"], b.path().to_str().unwrap());
    assert_eq!(st["owner"], "root");
    for key in ["rootfs", "created"] {
        assert!(st[key].is_string(), "{key} in {st}");
    }
    // start twice: the second is a clear error.
    b.ok(&["start", &id]);
    assert_eq!(b.state(&id)["status"], "running");
    let again = b.out(&["start", &id]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("cannot start an already running container"),
        "{:?}",
        again
    );
    // delete of a running container needs --force.
    let d = b.out(&["delete", &id]);
    assert!(String::from_utf8_lossy(&d.stderr).contains(&format!(
        "cannot delete container {id} that is not stopped: running"
    )));
    let ps: Vec<i32> = serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, vec![st["pid"].as_i64().unwrap() as i32]);
    let list: serde_json::Value =
        serde_json::from_str(&b.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    b.ok(&["kill", &id, "KILL"]);
    b.wait_status(&id, "stopped");
    assert_eq!(b.state(&id)["pid"], 0);
    b.ok(&["delete", &id]);
    assert!(!b.state_root.join(&id).exists());
    assert!(
        leftover_cgroups(&id).is_empty(),
        "{:?}",
        leftover_cgroups(&id)
    );
    let gone = b.out(&["state", &id]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains(&format!(
        "state of container `{id}`: container does not exist"
    )));
}

#[test]
fn container_view_matches_the_spec() {
    if !root_ok() {
        return;
    }
    let script = "echo host=$(hostname); echo pid=$$; echo id=$(id -u):$(id -g); grep CapEff /proc/self/status; \
        cat /proc/kcore | wc -c; touch /x 2>/dev/null && echo rw || echo ro; grep -c ' /proc proc ' /proc/mounts; \
        ls -l /dev/null | cut -c1; ip link show lo 2>/dev/null | grep -c UP || cat /sys/class/net/lo/operstate; \
        ulimit -n; pwd; echo env=$FOO";
    let b = Bundle::new(
        &["sh", "-c", script],
        json!({"hostname": "podhost", "process": {"cwd": "/tmp", "env": ["PATH=/bin", "FOO=bar"]}}),
    );
    let (code, out, err) = b.run(&unique("view"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "host=podhost");
    assert_eq!(lines[1], "pid=1");
    assert_eq!(lines[2], "id=0:0");
    // runc's default set: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10).
    assert_eq!(
        lines[3].split_whitespace().nth(1),
        Some("0000000020000420"),
        "{out}"
    );
    assert_eq!(lines[4], "0", "masked /proc/kcore must read empty");
    assert_eq!(lines[5], "ro");
    assert_eq!(lines[6], "1");
    assert_eq!(lines[7], "c");
    assert_eq!(lines[8], "1", "lo must be up in a new network namespace");
    assert_eq!(lines[9], "1024");
    assert_eq!(lines[10], "/tmp");
    assert_eq!(lines[11], "env=bar");
}

/// The init is cloned straight into its namespaces (no stage 1) but makes its cgroup
/// namespace only once it is in the container's cgroup: the namespace is rooted there, so the
/// container sees `/` in every hierarchy, not the path of the runtime's cgroup.
#[test]
fn a_cgroup_namespace_is_rooted_at_the_container_cgroup() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["cat", "/proc/self/cgroup"], json!({}));
    let mut cfg = b.config();
    let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
    if !ns.iter().any(|n| n["type"] == "cgroup") {
        ns.push(json!({"type": "cgroup"}));
    }
    std::fs::write(
        b.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let (code, out, err) = b.run(&unique("cgns"));
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());
    for line in out.lines() {
        assert!(
            line.ends_with(":/"),
            "not rooted at the container's cgroup: {out}"
        );
    }
}

#[test]
fn exec_joins_the_container() {
    if !root_ok() {
        return;
    }
    let id = unique("exec");
    let b = Bundle::new(&["sleep", "100"], json!({"hostname": "inside"}));
    b.create(&id);
    b.ok(&["start", &id]);
    let out = b.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "inside");
    assert_ne!(lines[1], "1");
    assert_eq!(lines[2].trim(), "sleep 100");
    let o = b.out(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = b.out(&["exec", &id, "/nonexistent"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no such file or directory"),
        "{:?}",
        o
    );
    // --process with a detached process and a pid file, as containerd's shim does it.
    let proc_json = b.path().join("proc.json");
    let mut p = b.config()["process"].clone();
    p["args"] = json!(["sleep", "50"]);
    std::fs::write(&proc_json, p.to_string()).unwrap();
    let pidf = b.path().join("exec.pid");
    b.ok(&[
        "exec",
        "--process",
        proc_json.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pidf.to_str().unwrap(),
        &id,
    ]);
    let pid: i32 = std::fs::read_to_string(&pidf).unwrap().parse().unwrap();
    let ps: Vec<i32> = serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(ps.contains(&pid), "{ps:?} lacks {pid}");
    b.ok(&["delete", "--force", &id]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(" Z ")
    );
}

#[test]
fn foreground_run_forwards_signals() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ],
        json!({}),
    );
    let mut child = b
        .cmd(&[
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            &unique("sig"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(st.code(), Some(3));
}

#[test]
fn terminal_goes_to_the_console_socket() {
    if !root_ok() {
        return;
    }
    let id = unique("tty");
    let b = Bundle::new(
        &["sh", "-c", "tty; echo done"],
        json!({"process": {"terminal": true}}),
    );
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let recv = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        peapod_oci::process::channel::recv_fd(&conn)
            .unwrap()
            .expect("a pty master")
    });
    b.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = recv.join().unwrap();
    b.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    while !text.contains("done") && t.elapsed() < Duration::from_secs(20) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(
        text.contains("/dev/console") || text.contains("/dev/pts/"),
        "{text:?}"
    );
    assert!(text.contains("done"));
}

#[test]
fn hooks_run_with_state() {
    if !root_ok() {
        return;
    }
    let id = unique("hooks");
    let b = Bundle::new(&["true"], json!({}));
    let log = b.path().join("hooks.log");
    let hook = |name: &str| json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(cat | head -c 200 | grep -o '\"status\":\"[a-z]*\"') >> {}", log.display())]}]);
    let mut cfg = b.config();
    cfg["hooks"] = json!({"createRuntime": hook("createRuntime"), "poststart": hook("poststart"), "poststop": hook("poststop")});
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    let (code, _, err) = b.run(&id);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            "createRuntime \"status\":\"created\"",
            "poststart \"status\":\"running\"",
            "poststop \"status\":\"stopped\""
        ]
    );
}

#[test]
fn seccomp_errno_rule_applies() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?"],
        json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}}}),
    );
    crate::cgroup::with_mounts(
        &b,
        vec![
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
        ],
    );
    let (code, out, err) = b.run(&unique("seccomp"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Operation not permitted") && out.contains("rc=1"),
        "{out}"
    );
}

#[test]
fn user_namespace_maps_ids() {
    if !root_ok() {
        return;
    }
    let mut patch = json!({"linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}});
    let b0 = Bundle::new(&["true"], json!({}));
    let mut ns = b0.config()["linux"]["namespaces"].clone();
    ns.as_array_mut().unwrap().push(json!({"type": "user"}));
    patch["linux"]["namespaces"] = ns;
    let b = Bundle::new(&["sh", "-c", "id -u; cat /proc/self/uid_map"], patch);
    let (code, out, err) = b.run(&unique("userns"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
}

#[test]
fn preserve_fds_passes_exactly_those() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"],
        json!({}),
    );
    let f = std::fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // Make our fd number 3 in the child, as a caller of --preserve-fds 1 would.
    let mut cmd = b.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique("fds"),
    ]);
    unsafe_dup_to_3(&mut cmd, fd);
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 0 1 2, the preserved 3, and the fd ls itself opened for /proc/self/fd.
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0 1 2 3 4");
}

fn unsafe_dup_to_3(cmd: &mut std::process::Command, fd: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2 is async-signal-safe, as pre_exec requires.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: an fd that already is 3 only loses the flag.
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn bad_input_leaves_nothing_behind() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["true"], json!({}));
    let bundle = b.path().to_str().unwrap().to_string();
    let expect_err = |args: &[&str], needle: &str| {
        let o = b.out(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "peapod {args:?}: want `{needle}`, got {err:?}"
        );
        let left = std::fs::read_dir(&b.state_root)
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "state left behind after {args:?}");
    };
    expect_err(
        &["create", "--bundle", &bundle, "a/b"],
        "invalid container id `a/b`",
    );
    expect_err(
        &["create", "--bundle", &bundle, ".."],
        "invalid container id `..`",
    );
    expect_err(
        &["create", "--bundle", "/nonexistent-bundle", "x1"],
        "open bundle `/nonexistent-bundle`",
    );
    let mut cfg = b.config();
    cfg["root"]["path"] = "/nonexistent-rootfs".into();
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    expect_err(
        &["create", "--bundle", &bundle, "x2"],
        "open root.path `/nonexistent-rootfs`",
    );
    std::fs::write(b.path().join("config.json"), "{ not json").unwrap();
    expect_err(
        &["create", "--bundle", &bundle, "x3"],
        "invalid config.json: parse",
    );
    let mut cfg = Bundle::new(&["true"], json!({})).config();
    cfg["process"]["args"] = json!(["/no/such/binary"]);
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    expect_err(
        &["create", "--bundle", &bundle, "x4"],
        "stat /no/such/binary: no such file or directory",
    );
    assert!(leftover_cgroups("x4").is_empty());
    cfg["process"]["args"] = json!(["true"]);
    cfg["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "bind", "source": "/nonexistent-src", "options": ["rbind"]}));
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    expect_err(
        &["create", "--bundle", &bundle, "x5"],
        "bind source `/nonexistent-src`",
    );
    expect_err(
        &["kill", "nosuch", "KILL"],
        "kill container `nosuch`: container does not exist",
    );
    expect_err(&["kill", "nosuch", "BOGUS"], "unknown signal `BOGUS`");
    // A duplicate id is refused and the first container is untouched.
    let good = Bundle::new(&["sleep", "30"], json!({}));
    let id = unique("dup");
    good.create(&id);
    let o = good.out(&["create", "--bundle", good.path().to_str().unwrap(), &id]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(good.state(&id)["status"], "created");
}

#[test]
fn json_log_is_readable_by_containerd() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["true"], json!({}));
    let log = b.path().join("log.json");
    let o = b.out(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "missing",
    ]);
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"]
            .as_str()
            .unwrap()
            .ends_with("start container `missing`: container does not exist")
    );
    assert!(humantime::parse_rfc3339(last["time"].as_str().unwrap()).is_ok());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "errors also go to stderr"
    );
}
