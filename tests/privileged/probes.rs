//! Probes, lifecycle hooks, OOM and CPU limits of pods (issue: probes and resources).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::pods::{Pods, nothing_left};

fn restarts(p: &Pods, pod: &str) -> u32 {
    p.ls(pod)
        .get(3)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn liveness_exec_probe_restarts_the_container() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: live
  annotations: {peapod.io/restart-backoff: "1s,2s"}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: c
      image: host
      command: ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 1000"]
      livenessProbe:
        exec: {command: ["cat", "/tmp/alive"]}
        periodSeconds: 1
        failureThreshold: 2
"#,
    );
    p.wait("two liveness restarts", 120, || restarts(&p, "live") >= 2);
    let ev = p.events("live");
    assert!(
        ev.iter().any(|(r, m)| r == "Unhealthy"
            && m.starts_with("Liveness probe failed: cat: ")
            && m.contains("/tmp/alive")),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|(r, m)| r == "Killing"
                && m == "Container c failed liveness probe, will be restarted"),
        "{ev:?}"
    );
    let v = p.inspect("live");
    let last = &v["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    let cg = p.cgroup("live");
    p.ok(&["pod", "rm", "-f", "live"]);
    nothing_left(p.root.path(), "live", &cg);
}

#[test]
fn readiness_http_probe_flips_ready_when_the_server_appears() {
    if !root_ok()
        || !can_run(
            "needs busybox-static (httpd) on the host",
            Path::new("/bin/busybox").exists(),
        )
    {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  containers:
    - name: web
      image: host
      command: ["sh", "-c", "sleep 3; mkdir -p /tmp/www; echo ok > /tmp/www/healthz; exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www"]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: 1
"#,
    );
    p.wait("Running", 60, || {
        p.ls("ready").get(2).is_some_and(|s| s == "Running")
    });
    assert_eq!(p.ls("ready")[1], "0/1", "not ready before the server is up");
    p.wait("1/1", 60, || p.ls("ready")[1] == "1/1");
    let v = p.inspect("ready");
    assert_eq!(v["status"]["containerStatuses"][0]["ready"], true);
    let ready = v["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "True", "{ready}");
    let ev = p.events("ready");
    assert!(
        ev.iter().any(|(r, m)| r == "Unhealthy"
            && m.starts_with(
                "Readiness probe failed: Get \"http://127.0.0.1:8080/healthz\": dial tcp"
            )),
        "{ev:?}"
    );
    // Readiness never restarts.
    assert_eq!(restarts(&p, "ready"), 0);
}

#[test]
fn startup_probe_gates_liveness() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  containers:
    - name: c
      image: host
      command: ["sh", "-c", "sleep 3; touch /tmp/up; exec sleep 1000"]
      startupProbe:
        exec: {command: ["test", "-e", "/tmp/up"]}
        periodSeconds: 1
        failureThreshold: 30
      livenessProbe:
        exec: {command: ["test", "-e", "/tmp/up"]}
        periodSeconds: 1
        failureThreshold: 1
"#,
    );
    p.wait("started", 60, || {
        p.inspect("slow")["status"]["containerStatuses"][0]["started"] == true
    });
    // The liveness probe (threshold 1) would have killed it in the first 3 s.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restarts(&p, "slow"), 0, "{:?}", p.events("slow"));
    assert_eq!(p.ls("slow")[1], "1/1");
}

#[test]
fn post_start_and_pre_stop_hooks_run() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    let marker = p.root.path().join("prestop-ran");
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{name: out, hostPath: {path: "MARKER_DIR"}}]
  containers:
    - name: c
      image: host
      command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
      volumeMounts: [{name: out, mountPath: /out}]
      lifecycle:
        postStart: {exec: {command: ["sh", "-c", "echo post > /tmp/post"]}}
        preStop: {exec: {command: ["sh", "-c", "sleep 1; echo pre > /out/prestop-ran"]}}
"#
    .replace("MARKER_DIR", p.root.path().to_str().unwrap());
    p.run(&yaml);
    p.wait("postStart output", 60, || {
        p.cmd(&["pod", "exec", "hooks", "--", "cat", "/tmp/post"])
            .stdout
            == b"post\n"
    });
    let t = Instant::now();
    p.ok(&["pod", "stop", "hooks"]);
    let took = t.elapsed();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "pre\n");
    // The hook ran first (1 s); the container then stopped on SIGTERM, well within grace.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let v = p.inspect("hooks");
    assert_eq!(
        v["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0,
        "{v}"
    );

    // A failing postStart kills the container: FailedPostStartHook.
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: c
      image: host
      command: ["sleep", "1000"]
      lifecycle:
        postStart: {exec: {command: ["sh", "-c", "echo nope; exit 3"]}}
"#,
    );
    p.wait("the container to be killed", 60, || {
        p.inspect("badhook")["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    let ev = p.events("badhook");
    assert!(
        ev.iter()
            .any(|(r, m)| r == "FailedPostStartHook" && m.contains("nope")),
        "{ev:?}"
    );
}

#[test]
fn memory_limit_oom_is_reported_as_oomkilled() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
    - name: eat
      image: host
      command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]
      resources: {limits: {memory: 32Mi}}
"#,
    );
    p.wait("OOMKilled", 60, || {
        p.ls("oom").get(2).is_some_and(|s| s == "OOMKilled")
    });
    let v = p.inspect("oom");
    let t = &v["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
    assert_eq!(v["status"]["qosClass"], "Burstable", "{}", v["status"]);
}

/// CPU time of a pod container's cgroup in seconds.
fn cpu_seconds(cg: &str, container: &str) -> f64 {
    if cgroup_v2() {
        let path = format!("/sys/fs/cgroup/peapod/{cg}/{container}/cpu.stat");
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let usec: f64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        usec / 1e6
    } else {
        let path = format!("/sys/fs/cgroup/cpuacct/peapod/{cg}/{container}/cpuacct.usage");
        let ns: f64 = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .parse()
            .unwrap();
        ns / 1e9
    }
}

#[test]
fn cpu_limit_holds_a_busy_container() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: spin}
spec:
  containers:
    - name: c
      image: host
      command: ["sh", "-c", "while :; do :; done"]
      resources: {limits: {cpu: 300m}}
"#,
    );
    p.wait("Running", 60, || {
        p.ls("spin").get(2).is_some_and(|s| s == "Running")
    });
    let cg = p.cgroup("spin");
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (cpu_seconds(&cg, "c"), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let used = (cpu_seconds(&cg, "c") - c0) / t0.elapsed().as_secs_f64();
    assert!(
        (0.27..=0.33).contains(&used),
        "a 300m limit gave {used:.3} CPUs"
    );
    p.ok(&["pod", "rm", "-f", "spin"]);
    nothing_left(p.root.path(), "spin", &cg);
}

#[test]
fn exec_probe_timeout_fails_and_kills_the_command() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    p.run(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: slowprobe}
spec:
  containers:
    - name: c
      image: host
      command: ["sleep", "1000"]
      readinessProbe:
        exec: {command: ["sleep", "7"]}
        timeoutSeconds: 1
        periodSeconds: 2
"#,
    );
    // Three timed-out runs (periods 2 s apart): without the kill, three `sleep 7` would live.
    p.wait("three timed-out probes", 60, || {
        p.events("slowprobe")
            .iter()
            .filter(|(r, m)| {
                r == "Unhealthy"
                    && m == "Readiness probe failed: command \"sleep 7\" timed out after 1s"
            })
            .count()
            >= 3
    });
    assert_eq!(p.ls("slowprobe")[1], "0/1");
    // The probe's command was killed at its timeout: no `sleep 7` lives on in the container
    // (a new probe may have started one since: allow at most that one).
    let ps = p.ok(&["pod", "exec", "slowprobe", "--", "ps", "-eo", "args"]);
    assert!(
        ps.lines().filter(|l| l.trim() == "sleep 7").count() <= 1,
        "{ps}"
    );
}
