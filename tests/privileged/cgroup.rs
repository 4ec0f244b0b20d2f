//! cgroup limits as a container user sees them, on v1 (host) and v2 (VM).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

fn tmpfs() -> serde_json::Value {
    json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777"]})
}

pub fn with_mounts(b: &Bundle, extra: Vec<serde_json::Value>) {
    let mut cfg = b.config();
    let mounts = cfg["mounts"].as_array_mut().unwrap();
    mounts.extend(extra);
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    if !root_ok() {
        return;
    }
    let id = unique("oom");
    let b = Bundle::new(
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
        json!({"linux": {"resources": {"memory": {"limit": 33554432}}}}),
    );
    b.create(&id);
    let cg = peapod_oci::cgroups::manager(Some(&b.cgroup_path(&id)), &id).unwrap();
    assert_eq!(cg.oom_kill_count().unwrap(), 0);
    b.ok(&["start", &id]);
    b.wait_status(&id, "stopped");
    assert!(cg.oom_kill_count().unwrap() >= 1, "no oom_kill recorded");
    b.ok(&["delete", &id]);
    // The same through `run`: exit status 137 (SIGKILL).
    let (code, _, err) = b.run(&unique("oom2"));
    assert_eq!(code, 137, "{err}");
    assert!(leftover_cgroups(&id).is_empty());
}

#[test]
fn cpu_quota_bounds_a_busy_loop() {
    if !root_ok() {
        return;
    }
    let id = unique("cpu");
    let b = Bundle::new(
        &["sh", "-c", "while :; do :; done"],
        json!({"linux": {"resources": {"cpu": {"quota": 20000, "period": 100000}}}}),
    );
    b.create(&id);
    b.ok(&["start", &id]);
    let usage = || -> f64 {
        let v: serde_json::Value =
            serde_json::from_str(&b.ok(&["events", "--stats", &id])).unwrap();
        v["data"]["cpu"]["usage"]["total"]
            .as_f64()
            .expect("cpu.usage.total in stats")
    };
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (c1, t1) = (usage(), Instant::now());
    let ratio = (c1 - c0) / 1e9 / (t1 - t0).as_secs_f64();
    b.ok(&["delete", "--force", &id]);
    assert!(
        (0.15..=0.25).contains(&ratio),
        "cpu/wall ratio {ratio:.3} outside 0.15..0.25"
    );
}

#[test]
fn pids_limit_stops_forks() {
    if !root_ok() {
        return;
    }
    let id = unique("pids");
    let b = Bundle::new(
        &["sleep", "1000"],
        json!({"linux": {"resources": {"pids": {"limit": 10}}}}),
    );
    b.create(&id);
    b.ok(&["start", &id]);
    // init (1) + this shell (1) + 8 sleeps = 10: the 9th sleep is the fork that fails.
    let o = b.out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "i=0; while [ $i -lt 20 ]; do sleep 1000 & i=$((i+1)); done",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("can't fork"),
        "{o:?}"
    );
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(10) {
        n = serde_json::from_str::<Vec<i32>>(&b.ok(&["ps", "--format", "json", &id]))
            .unwrap()
            .len();
        if n == 9 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        n, 9,
        "init + 8 sleeps should remain after the shell failed to fork"
    );
    assert_eq!(
        std::fs::read_to_string(b.knob(&id, "pids", "pids.max"))
            .unwrap()
            .trim(),
        "10"
    );
    b.ok(&["update", "--pids-limit", "42", &id]);
    assert_eq!(
        std::fs::read_to_string(b.knob(&id, "pids", "pids.max"))
            .unwrap()
            .trim(),
        "42",
        "update changes the limit live"
    );
    b.ok(&["delete", "--force", &id]);
    assert!(
        leftover_cgroups(&id).is_empty(),
        "{:?}",
        leftover_cgroups(&id)
    );
}

#[test]
fn device_rules_deny_mem_allow_null() {
    if !root_ok() {
        return;
    }
    let caps = json!([
        "CAP_MKNOD",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
        "CAP_NET_BIND_SERVICE"
    ]);
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem >/dev/null 2>/tmp/err; cat /tmp/err; head -c1 /dev/null && echo null-ok",
        ],
        json!({"process": {"capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}}),
    );
    with_mounts(&b, vec![tmpfs()]);
    let (code, out, err) = b.run(&unique("dev"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Operation not permitted"),
        "reading /dev/mem must be denied: {out:?}"
    );
    assert!(out.contains("null-ok"), "{out:?}");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !root_ok() {
        return;
    }
    let id = unique("pause");
    let out = tempfile::tempdir().unwrap();
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "while :; do echo x >> /out/ticks; sleep 0.02; done",
        ],
        json!({}),
    );
    with_mounts(
        &b,
        vec![
            json!({"destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind", "rw"]}),
        ],
    );
    b.create(&id);
    b.ok(&["start", &id]);
    let ticks = || {
        std::fs::read_to_string(out.path().join("ticks"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(300));
    b.ok(&["pause", &id]);
    assert_eq!(b.state(&id)["status"], "paused");
    let frozen = ticks();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ticks(), frozen, "a paused container must not run");
    let e = b.out(&["exec", &id, "true"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("cannot exec in a paused container"));
    b.ok(&["resume", &id]);
    assert_eq!(b.state(&id)["status"], "running");
    let t = Instant::now();
    while ticks() <= frozen {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no progress after resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.ok(&["delete", "--force", &id]);
    assert!(leftover_cgroups(&id).is_empty());
}
