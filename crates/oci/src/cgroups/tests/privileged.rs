//! Privileged tests against the real cgroupfs: cgroup v1 on the hybrid development hosts, v2 in
//! the VM of `rootfs-tools/vm-run`. Each test prints `SKIP: <reason>` and passes unless run as
//! root (with `MUST_WORK=1` a skip fails instead). They only touch the cgroups they create,
//! `/peapod-test-<pid>-<name>`, and remove them even when an assertion fails.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use super::*;

fn setup() -> Option<Setup> {
    let skip = |why: String| {
        assert!(
            std::env::var_os("MUST_WORK").is_none_or(|v| v != "1"),
            "MUST_WORK=1 but: {why}"
        );
        eprintln!("SKIP: {why}");
        None
    };
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root: creates real cgroups".to_string());
    }
    detect().map_or_else(|e| skip(e.to_string()), Some)
}

/// A real test cgroup; its processes are killed and it is removed on drop.
struct TestCgroup {
    m: Box<dyn CgroupManager>,
    children: Vec<Child>,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.m.thaw();
        let _ = self.m.kill_all(9);
        if let Err(e) = self.m.remove() {
            eprintln!("cleanup of {}: {e}", self.m.path());
        }
    }
}

fn test_cgroup(setup: &Setup, name: &str) -> TestCgroup {
    let path = format!("/peapod-test-{}-{name}", std::process::id());
    let m = manager_for(setup, Some(&path), name).unwrap();
    m.create().unwrap();
    TestCgroup {
        m,
        children: Vec::new(),
    }
}

/// A knob as the kernel shows it: `controller` picks the v1 hierarchy; ignored on v2.
fn knob(m: &dyn CgroupManager, controller: &str, file: &str) -> String {
    let sources = m.mount_sources();
    let dir = sources
        .iter()
        .find(|(name, _)| name.is_empty() || name.split(',').any(|n| n == controller))
        .map(|(_, d)| d.clone())
        .unwrap();
    fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `script` in a shell that first moves itself into every hierarchy of the cgroup.
fn run_in(m: &dyn CgroupManager, script: &str) -> (bool, String) {
    let procs: Vec<PathBuf> = m
        .mount_sources()
        .into_iter()
        .map(|(_, d)| d.join("cgroup.procs"))
        .collect();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for f; do echo $$ > \"$f\" || exit 99; done; {script}"
        ))
        .arg("sh")
        .args(&procs)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(99), "could not join the cgroup");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lifecycle_limits_freeze_update_kill_remove() {
    let Some(setup) = setup() else { return };
    let mut t = test_cgroup(&setup, "life");
    let v2 = t.m.is_unified();
    eprintln!("testing on cgroup {}", if v2 { "v2" } else { "v1" });
    t.m.apply(&res(json!({
        "memory": {"limit": 67108864},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 32}
    })))
    .unwrap();
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id() as i32;
    t.children.push(child);
    t.m.add_task(pid).unwrap();
    let m = &*t.m;
    assert_eq!(m.pids().unwrap(), vec![pid]);
    if v2 {
        assert_eq!(knob(m, "", "memory.max"), "67108864");
        assert_eq!(knob(m, "", "cpu.weight"), "59");
        assert_eq!(knob(m, "", "cpu.max"), "50000 100000");
        assert!(m.cgroup_fd().unwrap().is_some());
    } else {
        assert_eq!(knob(m, "memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(knob(m, "cpu", "cpu.shares"), "512");
        assert_eq!(knob(m, "cpu", "cpu.cfs_quota_us"), "50000");
    }
    assert_eq!(knob(m, "pids", "pids.max"), "32");

    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());

    m.apply(&res(json!({"pids": {"limit": 16}}))).unwrap(); // update
    assert_eq!(knob(m, "pids", "pids.max"), "16");

    let stats = serde_json::to_value(m.stats().unwrap()).unwrap();
    assert_eq!(stats["pids"]["current"], 1, "{stats}");
    assert_eq!(stats["memory"]["usage"]["limit"], 67108864, "{stats}");
    assert_eq!(m.oom_kill_count().unwrap(), 0);

    m.kill_all(15).unwrap(); // signal by signal, frozen around it
    let status = t.children.pop().unwrap().wait().unwrap();
    assert_eq!(status.signal(), Some(15));
    let dirs: Vec<PathBuf> = t.m.mount_sources().into_iter().map(|(_, d)| d).collect();
    t.m.remove().unwrap();
    assert!(!t.m.exists());
    assert!(dirs.iter().all(|d| !d.exists()), "left behind: {dirs:?}");
}

#[test]
fn sigkill_all_reaches_forked_children() {
    let Some(setup) = setup() else { return };
    let mut t = test_cgroup(&setup, "killall");
    let procs: Vec<PathBuf> =
        t.m.mount_sources()
            .into_iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect();
    let child = Command::new("sh")
        .arg("-c")
        .arg("for f; do echo $$ > \"$f\"; done; sleep 60 & sleep 60 & wait")
        .arg("sh")
        .args(&procs)
        .spawn()
        .unwrap();
    t.children.push(child);
    for _ in 0..200 {
        if t.m.pids().unwrap().len() >= 3 {
            break;
        }
        sleep(Duration::from_millis(10));
    }
    assert_eq!(t.m.pids().unwrap().len(), 3);
    t.m.kill_all(9).unwrap();
    assert_eq!(t.children.pop().unwrap().wait().unwrap().signal(), Some(9));
    t.m.remove().unwrap(); // retries while the sleeps are reaped
    assert!(!t.m.exists());
}

#[test]
fn memory_pids_and_cpu_limits_are_enforced() {
    let Some(setup) = setup() else { return };
    // 32 MiB without swap: a 100 MiB buffer gets the container OOM-killed, and counted.
    let t = test_cgroup(&setup, "oom");
    let limit = 32 << 20;
    t.m.apply(&res(json!({"memory": {"limit": limit, "swap": limit}})))
        .unwrap();
    let (ok, stderr) = run_in(
        &*t.m,
        "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; echo rc=$?",
    );
    assert!(ok, "{stderr}");
    assert!(t.m.oom_kill_count().unwrap() >= 1);
    let stats = t.m.stats().unwrap();
    assert!(
        stats.memory.usage.max <= limit as u64 && stats.memory.usage.max > 0,
        "{stats:?}"
    );

    // pids.max = 10: the shell and 9 sleeps fit, the 10th fork fails.
    let t = test_cgroup(&setup, "pids");
    t.m.apply(&res(json!({"pids": {"limit": 10}}))).unwrap();
    let (_, stderr) = run_in(
        &*t.m,
        "i=0; while [ $i -lt 12 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done",
    );
    assert!(stderr.to_lowercase().contains("fork"), "{stderr}");
    assert_eq!(t.m.stats().unwrap().pids.limit, 10);
    assert!(t.m.pids().unwrap().len() <= 10);
    t.m.kill_all(9).unwrap();

    // 20% of one CPU: a busy loop gets at most 0.25 CPU seconds per wall second (less when the
    // machine is busy, so only the ceiling and the throttling are checked).
    let t = test_cgroup(&setup, "cpu");
    t.m.apply(&res(json!({"cpu": {"quota": 20000, "period": 100000}})))
        .unwrap();
    let start = std::time::Instant::now();
    run_in(&*t.m, "timeout 2 sh -c 'while :; do :; done'");
    let wall = start.elapsed().as_secs_f64();
    let cpu = t.m.stats().unwrap().cpu.usage.total as f64 / 1e9;
    let ratio = cpu / wall;
    assert!(
        ratio > 0.0 && ratio <= 0.25,
        "cpu {cpu:.3} s in {wall:.3} s"
    );
    assert!(t.m.stats().unwrap().cpu.throttling.throttled_periods > 0);
}

fn device_rules(extra: serde_json::Value) -> LinuxResources {
    let mut rules = vec![
        json!({"allow": false, "access": "rwm"}),
        json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
    ];
    if !extra.is_null() {
        rules.push(extra);
    }
    res(json!({ "devices": rules }))
}

fn check_device_filter(m: &dyn CgroupManager) {
    m.apply(&device_rules(serde_json::Value::Null)).unwrap();
    assert_eq!(run_in(m, "exec cat /dev/null"), (true, String::new()));
    let (ok, stderr) = run_in(m, "exec head -c1 /dev/zero");
    assert!(
        !ok && stderr.contains("Operation not permitted"),
        "{stderr}"
    );
    // An update replaces the policy.
    m.apply(&device_rules(
        json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}),
    ))
    .unwrap();
    let (ok, stderr) = run_in(m, "head -c1 /dev/zero >/dev/null");
    assert!(ok, "{stderr}");
}

fn attached_programs(dir: &Path) -> usize {
    super::bpf::query(&fs::File::open(dir).unwrap())
        .unwrap()
        .len()
}

#[test]
fn device_rules_are_enforced() {
    let Some(setup) = setup() else { return };
    let t = test_cgroup(&setup, "devices");
    check_device_filter(&*t.m);
    if t.m.is_unified() {
        let dir = t.m.mount_sources()[0].1.clone();
        assert_eq!(attached_programs(&dir), 1, "the old program was detached");
    }
}

/// On a hybrid host the eBPF filter can still be checked: device programs attach to the
/// (otherwise unused) cgroup2 hierarchy and apply to its member processes.
#[test]
fn bpf_device_filter_on_hybrid_unified_hierarchy() {
    let Some(setup) = setup() else { return };
    let Setup::Hybrid { unified, .. } = setup else {
        eprintln!("SKIP: not a hybrid host (device_rules_are_enforced covers v2)");
        return;
    };
    let path = format!("/peapod-test-{}-bpf", std::process::id());
    let m = V2Manager::new(unified, &path);
    // Plain mkdir, not create(): no write to the cgroup.subtree_control of a root we do not own.
    fs::create_dir(m.dir()).unwrap();
    struct Rmdir(PathBuf);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = remove_tree(&self.0);
        }
    }
    let _guard = Rmdir(m.dir().to_path_buf());
    check_device_filter(&m);
    assert_eq!(
        attached_programs(m.dir()),
        1,
        "the old program was detached"
    );
    m.remove().unwrap();
}

#[test]
fn unsupported_fields_fail_before_any_write() {
    let Some(setup) = setup() else { return };
    let t = test_cgroup(&setup, "unsupported");
    let m = &*t.m;
    let before = knob(m, "pids", "pids.max");
    if let Setup::Hybrid { controllers, .. } | Setup::Legacy { controllers } = &setup {
        if !controllers.contains_key("hugetlb") {
            let err = m
                .apply(&res(json!({"pids": {"limit": 5}, "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "linux.resources.hugepageLimits[0] is not supported on this host: no hugetlb cgroup \
                 v1 controller is mounted"
            );
        }
        let blkio = m.mount_sources().into_iter().find(|(n, _)| n == "blkio");
        if let Some((_, dir)) = blkio.filter(|(_, d)| {
            !d.join("blkio.weight").exists() && !d.join("blkio.bfq.weight").exists()
        }) {
            let err = m
                .apply(&res(
                    json!({"pids": {"limit": 5}, "blockIO": {"weight": 100}}),
                ))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "linux.resources.blockIO.weight is not supported on this host: no blkio.weight in {}",
                    dir.display()
                )
            );
        }
        assert!(
            m.apply(&res(json!({"unified": {"memory.high": "max"}})))
                .is_err()
        );
    } else {
        let err = m
            .apply(&res(
                json!({"pids": {"limit": 5}, "cpu": {"realtimeRuntime": 1}}),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("realtime"), "{err}");
        m.apply(&res(json!({"unified": {"memory.oom.group": "1"}})))
            .unwrap();
        assert_eq!(knob(m, "", "memory.oom.group"), "1");
    }
    assert_eq!(knob(m, "pids", "pids.max"), before, "nothing was written");
}
