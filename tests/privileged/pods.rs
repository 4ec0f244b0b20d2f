//! Pods end to end: the real binary runs manifests with `image: host`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// Pod tests run the binary with their own root and storage.
pub(crate) type Pods = Peapod;

/// `cg`: the last component of the pod's cgroup path (`Peapod::cgroup`).
pub(crate) fn nothing_left(root: &Path, pod: &str, cg: &str) {
    assert!(!root.join("pods").join(pod).exists(), "pod directory left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootstr = root.to_str().unwrap();
    assert!(!mounts.contains(rootstr), "mounts left under {rootstr}");
    assert!(
        leftover_cgroups(cg).is_empty(),
        "cgroups left: {:?}",
        leftover_cgroups(cg)
    );
    let procs = Command::new("pgrep")
        .args(["-f", rootstr])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
}

#[test]
fn example_pod_shares_storage_and_completes() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-pod.yaml");
    p.ok(&["pod", "run", example.to_str().unwrap()]);
    p.wait("hello to complete", 60, || {
        p.ls("hello").get(2).is_some_and(|s| s == "Completed")
    });
    let out = p.logs("hello", "read");
    assert!(
        out.starts_with("hello from hello, written by an init container\n"),
        "{out:?}"
    );
    assert!(out.contains("PRETTY_NAME"), "{out:?}");
    // -f ends with the container, as kubectl's does.
    let followed = p.cmd(&["pod", "logs", "-f", "hello", "-c", "read"]);
    assert_eq!(String::from_utf8_lossy(&followed.stdout), out);
    let v = p.inspect("hello");
    assert_eq!(v["status"]["phase"], "Succeeded");
    let cg = p.cgroup("hello");
    p.ok(&["pod", "rm", "hello"]);
    nothing_left(p.root.path(), "hello", &cg);
}

#[test]
fn two_containers_share_the_network() {
    if !root_ok()
        || !can_run(
            "needs python3 on the host for an HTTP server",
            Path::new("/usr/bin/python3").exists(),
        )
    {
        return;
    }
    let p = Pods::new();
    p.run(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes: [{name: www, emptyDir: {}}]
  initContainers:
    - name: content
      image: host
      command: ["sh", "-c", "echo served-from-emptydir > /www/index.html"]
      volumeMounts: [{name: www, mountPath: /www}]
  containers:
    - name: server
      image: host
      command: ["python3", "-m", "http.server", "18080", "--bind", "127.0.0.1", "--directory", "/www"]
      volumeMounts: [{name: www, mountPath: /www, readOnly: true}]
    - name: client
      image: host
      command: ["python3", "-c", "import time,urllib.request\nfor i in range(600):\n  try:\n    print(urllib.request.urlopen('http://127.0.0.1:18080/index.html').read().decode(), flush=True); break\n  except Exception: time.sleep(0.1)\ntime.sleep(1000)"]
"#);
    p.wait("the client to fetch", 120, || {
        p.logs("web", "client").contains("served-from-emptydir")
    });
    // The pod's loopback is its own: the host cannot reach the server.
    assert!(std::net::TcpStream::connect("127.0.0.1:18080").is_err());
    assert_eq!(p.ls("web")[1], "2/2");
    let cg = p.cgroup("web");
    p.ok(&["pod", "rm", "-f", "web"]);
    nothing_left(p.root.path(), "web", &cg);
}

#[test]
fn restart_policy_backoff_and_crash_loop() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: crash
  annotations: {peapod.io/restart-backoff: "1s,2s"}
spec:
  restartPolicy: Always
  containers:
    - {name: c, image: host, command: ["sh", "-c", "echo run; exit 3"]}
"#,
    );
    p.wait("three restarts", 60, || {
        p.ls("crash")
            .get(3)
            .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
            .is_some_and(|n| n >= 3)
    });
    let row = p.ls("crash");
    assert!(
        row[2] == "CrashLoopBackOff" || row[2] == "Error" || row[2] == "Running",
        "{row:?}"
    );
    let v = p.inspect("crash");
    let cs = &v["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    assert!(
        p.cmd(&["pod", "logs", "crash", "-c", "c", "--previous"])
            .stdout
            .starts_with(b"run")
    );
    let cg = p.cgroup("crash");
    p.ok(&["pod", "rm", "-f", "crash"]);
    nothing_left(p.root.path(), "crash", &cg);

    // OnFailure with exit 0 ends Completed, no restart.
    p.run("apiVersion: v1\nkind: Pod\nmetadata: {name: once}\nspec:\n  restartPolicy: OnFailure\n  containers: [{name: c, image: host, command: [\"true\"]}]\n");
    p.wait("Completed", 60, || {
        p.ls("once").get(2).is_some_and(|s| s == "Completed")
    });
    assert_eq!(p.ls("once")[3], "0");
}

#[test]
fn stop_honours_the_grace_period() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - {name: c, image: host, command: ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"]}
"#);
    p.wait("running", 60, || p.logs("stubborn", "c").contains("up"));
    let t = Instant::now();
    p.ok(&["pod", "stop", "stubborn"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "stop took {took:?}"
    );
    let v = p.inspect("stubborn");
    assert_eq!(
        v["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    let cg = p.cgroup("stubborn");
    p.ok(&["pod", "rm", "stubborn"]);
    nothing_left(p.root.path(), "stubborn", &cg);
}

#[test]
fn bad_manifests_create_nothing() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    let bad = |yaml: &str, needle: &str| {
        let m = p.manifest("bad", yaml);
        let o = p.cmd(&["pod", "run", m.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "want `{needle}` in {err:?}"
        );
        assert!(
            pod_dirs(p.root.path()).is_empty(),
            "left a pod directory for {needle}"
        );
    };
    bad(
        "kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec: {containers: [{name: c, image: host, command: [\"true\"], bogus: 1}]}\n",
        "bogus",
    );
    bad("kind: Pod\napiVersion: v1\nmetadata: {name: x\n", "");
    bad(
        "kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec: {containers: [{name: c, image: busybox, imagePullPolicy: Sometimes}]}\n",
        "Sometimes",
    );
    bad(
        "kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec:\n  volumes: [{name: h, hostPath: {path: /nonexistent-peapod-dir, type: Directory}}]\n  containers: [{name: c, image: host, command: [\"true\"], volumeMounts: [{name: h, mountPath: /h}]}]\n",
        "/nonexistent-peapod-dir",
    );
    p.run("kind: Pod\napiVersion: v1\nmetadata: {name: dup}\nspec: {containers: [{name: c, image: host, command: [sleep, \"100\"]}]}\n");
    let m = p.manifest("dup2", "kind: Pod\napiVersion: v1\nmetadata: {name: dup}\nspec: {containers: [{name: c, image: host, command: [sleep, \"100\"]}]}\n");
    let o = p.cmd(&["pod", "run", m.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}

fn pod_dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn killed_supervisor_and_pause_are_handled() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run("kind: Pod\napiVersion: v1\nmetadata: {name: orphan}\nspec: {containers: [{name: c, image: host, command: [sleep, \"1000\"]}]}\n");
    let v = p.inspect("orphan");
    let sup = v["peapod"]["supervisorPid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    p.wait("supervisor gone", 10, || {
        p.ls("orphan")[2].contains("supervisor lost")
    });
    let cg = p.cgroup("orphan");
    p.ok(&["pod", "rm", "-f", "orphan"]);
    nothing_left(p.root.path(), "orphan", &cg);

    p.run("kind: Pod\napiVersion: v1\nmetadata: {name: nopause}\nspec: {containers: [{name: c, image: host, command: [sleep, \"1000\"]}]}\n");
    let pause = p.inspect("nopause")["peapod"]["pausePid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pause),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    p.wait("pod torn down", 30, || {
        p.inspect("nopause")["peapod"]["supervisorAlive"] == false
    });
    let v = p.inspect("nopause");
    assert_eq!(v["status"]["phase"], "Failed");
    assert!(
        v["peapod"]["message"]
            .as_str()
            .unwrap()
            .contains("pause process exited")
    );
    let cg = p.cgroup("nopause");
    p.ok(&["pod", "rm", "nopause"]);
    nothing_left(p.root.path(), "nopause", &cg);
}

#[test]
fn runtime_default_seccomp_blocks_namespace_creation() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sec}
spec:
  restartPolicy: Never
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: plain
      image: host
      command: ["sh", "-c", "grep Seccomp: /proc/self/status; unshare -n true 2>/dev/null && echo unshare-ok || echo unshare-refused"]
    - name: admin
      image: host
      securityContext: {capabilities: {add: [SYS_ADMIN]}}
      command: ["sh", "-c", "unshare -n true && echo unshare-ok || echo unshare-refused"]
    - name: unconfined
      image: host
      securityContext: {seccompProfile: {type: Unconfined}}
      command: ["grep", "Seccomp:", "/proc/self/status"]
"#,
    );
    p.wait("Completed", 60, || {
        p.ls("sec").get(2).is_some_and(|s| s == "Completed")
    });
    assert_eq!(p.logs("sec", "plain"), "Seccomp:\t2\nunshare-refused\n");
    assert_eq!(p.logs("sec", "admin"), "unshare-ok\n");
    assert_eq!(p.logs("sec", "unconfined"), "Seccomp:\t0\n");
}

#[test]
fn dns_config_shapes_resolv_conf() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: dns}
spec:
  restartPolicy: Never
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [ns1.svc.example]
    options: [{name: ndots, value: "5"}]
  containers:
    - {name: c, image: host, command: ["cat", "/etc/resolv.conf"]}
"#,
    );
    p.wait("Completed", 60, || {
        p.ls("dns").get(2).is_some_and(|s| s == "Completed")
    });
    assert_eq!(
        p.logs("dns", "c"),
        "nameserver 192.0.2.53\nsearch ns1.svc.example\noptions ndots:5\n"
    );
}
