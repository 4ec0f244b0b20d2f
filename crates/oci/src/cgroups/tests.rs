//! Unit tests against fake cgroupfs trees, then privileged tests against the real cgroupfs of
//! the host (v1 here, v2 in the test VM).

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use super::*;

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn put(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn get(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// Empty knob files, as the kernel would show them in a new cgroup.
fn knobs(dir: &Path, names: &[&str]) {
    for n in names {
        put(&dir.join(n), "");
    }
}

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn detect_hybrid_unified_and_legacy() {
    let Setup::Hybrid {
        controllers,
        unified,
    } = Setup::from_mountinfo(HYBRID).unwrap()
    else {
        panic!("not hybrid");
    };
    assert_eq!(unified, PathBuf::from("/sys/fs/cgroup/unified"));
    assert_eq!(
        controllers.keys().collect::<Vec<_>>(),
        ["cpu", "cpuacct", "memory", "name=systemd"]
    );
    assert_eq!(
        controllers["memory"],
        PathBuf::from("/sys/fs/cgroup/memory")
    );
    assert_eq!(
        controllers[NAME_SYSTEMD],
        PathBuf::from("/sys/fs/cgroup/systemd")
    );
    // A named systemd hierarchy beside a pure cgroup2 mount does not make a v1 host.
    let v2_with_named = "\
30 23 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
40 30 0:37 / /run/old-systemd rw,relatime - cgroup cgroup rw,name=systemd
";
    assert_eq!(
        Setup::from_mountinfo(v2_with_named).unwrap(),
        Setup::Unified {
            root: "/sys/fs/cgroup".into()
        }
    );

    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    assert_eq!(
        Setup::from_mountinfo(v2).unwrap(),
        Setup::Unified {
            root: "/sys/fs/cgroup".into()
        }
    );

    let legacy = "\
25 21 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
26 21 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:10 master:3 - cgroup cgroup rw,memory
27 21 0:24 / /mnt/my\\040cgroups rw - cgroup cgroup rw,xattr,pids
";
    let Setup::Legacy { controllers } = Setup::from_mountinfo(legacy).unwrap() else {
        panic!("not legacy");
    };
    assert_eq!(controllers["cpu"], controllers["cpuacct"]);
    assert_eq!(
        controllers["cpu"],
        PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
    );
    assert_eq!(controllers["pids"], PathBuf::from("/mnt/my cgroups"));

    let none = "22 27 0:21 / /proc rw,relatime - proc proc rw\n";
    assert_eq!(
        Setup::from_mountinfo(none).unwrap_err(),
        "no cgroup or cgroup2 filesystem is mounted"
    );
    let tmp = tempfile::tempdir().unwrap();
    put(&tmp.path().join("mountinfo"), none);
    let err = Setup::from_mountinfo_file(&tmp.path().join("mountinfo")).unwrap_err();
    assert!(
        err.to_string().starts_with("detect cgroup setup from `"),
        "{err}"
    );
}

#[test]
fn cgroups_path_resolution() {
    assert_eq!(resolve_path(None, "abc").unwrap(), "/peapod/abc");
    assert_eq!(resolve_path(Some(""), "abc").unwrap(), "/peapod/abc");
    assert_eq!(
        resolve_path(Some("/kubepods/pod1/c1"), "c1").unwrap(),
        "/kubepods/pod1/c1"
    );
    assert_eq!(resolve_path(Some("//a/./b/"), "x").unwrap(), "/a/b");
    assert_eq!(resolve_path(Some("rel/c1"), "x").unwrap(), "/rel/c1");
    // The systemd form without the systemd driver: one literal directory, as runc's cgroupfs
    // driver makes it (containerd 1.6 sends it for pods under a `.slice` parent).
    assert_eq!(
        resolve_path(Some("kubepods.slice:cri-containerd:abc"), "abc").unwrap(),
        "/kubepods.slice:cri-containerd:abc"
    );
    assert_eq!(
        resolve_path(Some("/a.slice:b:c/../x"), "x")
            .unwrap_err()
            .to_string(),
        "invalid cgroups path `/a.slice:b:c/../x`: `..` components are not allowed"
    );
    assert_eq!(
        resolve_path(Some("/a/../../etc"), "x")
            .unwrap_err()
            .to_string(),
        "invalid cgroups path `/a/../../etc`: `..` components are not allowed"
    );
    assert!(resolve_path(Some("/"), "x").is_err());
    assert!(resolve_path(None, "a/b").is_err());
}

#[test]
fn shares_to_weight_matches_runc_table() {
    // pod-semantics.md §5, "weight (new)" column, plus the end points.
    for (shares, weight) in [
        (0, 0),
        (1, 1),
        (2, 1),
        (10, 4),
        (102, 17),
        (256, 35),
        (512, 59),
        (1024, 100),
        (2048, 174),
        (4096, 303),
        (262_144, 10_000),
        (1 << 20, 10_000),
    ] {
        assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
    }
}

#[test]
fn swap_conversion() {
    assert_eq!(swap_to_v2(None, None).unwrap(), None);
    assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
    assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
    assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
    assert_eq!(swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
    assert_eq!(swap_to_v2(Some(300), Some(-1)).unwrap(), Some(300));
    assert!(swap_to_v2(Some(300), None).is_err());
    assert_eq!(
        swap_to_v2(Some(50), Some(100)).unwrap_err().to_string(),
        "invalid linux.resources.memory.swap: memory+swap (50) is lower than the memory limit (100)"
    );
}

#[test]
fn error_messages_name_op_path_and_hint() {
    let e = CgroupError::Write {
        path: "/sys/fs/cgroup/memory/peapod/c1/memory.limit_in_bytes".into(),
        value: "1048576".into(),
        err: io::Error::from_raw_os_error(libc::EBUSY),
    };
    assert_eq!(
        e.to_string(),
        "write \"1048576\" to `/sys/fs/cgroup/memory/peapod/c1/memory.limit_in_bytes`: Device or \
         resource busy (os error 16); hint: the cgroup already uses more memory than the new limit"
    );
    let e = CgroupError::Io {
        op: "rmdir",
        path: "/sys/fs/cgroup/pids/peapod/c1".into(),
        err: io::Error::from_raw_os_error(libc::EBUSY),
    };
    assert!(
        e.to_string()
            .ends_with("hint: the cgroup still has processes (kill them first) or child cgroups")
    );
}

// --- cgroup v1 against a fake tree ---

const V1_CTRLS: &[&str] = &[
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "net_cls",
    "net_prio", "pids", "rdma",
];

fn fake_v1(root: &Path, ctrls: &[&str]) -> BTreeMap<String, PathBuf> {
    let mut map = BTreeMap::new();
    for c in ctrls {
        let mount = root.join(c);
        fs::create_dir_all(&mount).unwrap();
        map.insert(c.to_string(), mount);
    }
    put(&root.join("cpuset/cpuset.cpus"), "0-1\n");
    put(&root.join("cpuset/cpuset.mems"), "0\n");
    map
}

const V1_KNOBS: &[(&str, &[&str])] = &[
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.kmem.tcp.limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
        ],
    ),
    (
        "cpu",
        &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.cfs_burst_us",
            "cpu.idle",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
        ],
    ),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
    ("pids", &["pids.max"]),
    (
        "blkio",
        &[
            "blkio.weight",
            "blkio.leaf_weight",
            "blkio.weight_device",
            "blkio.leaf_weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ],
    ),
    ("hugetlb", &["hugetlb.2MB.limit_in_bytes"]),
    ("devices", &["devices.allow", "devices.deny"]),
    ("net_cls", &["net_cls.classid"]),
    ("net_prio", &["net_prio.ifpriomap"]),
    ("rdma", &["rdma.max"]),
    ("freezer", &["freezer.state"]),
];

fn full_resources() -> serde_json::Value {
    json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ],
        "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "idle": 1, "cpus": "0", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx5_0": {"hcaHandles": 2, "hcaObjects": 2000}}
    })
}

#[test]
fn v1_create_add_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mounts = fake_v1(tmp.path(), &["cpu", "memory", "pids"]);
    mounts.insert("cpuacct".into(), tmp.path().join("cpu")); // co-mounted with cpu
    let m = manager_for(
        &Setup::Legacy {
            controllers: mounts,
        },
        Some("/peapod/c1"),
        "c1",
    )
    .unwrap();
    assert!(!m.exists() && !m.is_unified());
    m.create().unwrap();
    for c in ["cpu", "memory", "pids"] {
        assert!(tmp.path().join(c).join("peapod/c1").is_dir());
    }
    let sources = m.mount_sources();
    assert_eq!(
        sources.len(),
        3,
        "co-mounted hierarchies appear once: {sources:?}"
    );
    assert_eq!(
        sources[0],
        ("cpu".to_string(), tmp.path().join("cpu/peapod/c1"))
    );
    for c in ["cpu", "memory", "pids"] {
        put(&tmp.path().join(c).join("peapod/c1/cgroup.procs"), "");
    }
    m.add_task(4242).unwrap();
    for c in ["cpu", "memory", "pids"] {
        let procs = tmp.path().join(c).join("peapod/c1/cgroup.procs");
        assert_eq!(get(&procs), "4242");
        fs::remove_file(procs).unwrap();
    }
    assert!(m.cgroup_fd().unwrap().is_none());
    m.remove().unwrap();
    assert!(!m.exists());
    assert!(
        !tmp.path().join("memory/peapod").exists(),
        "the empty default parent goes too"
    );
    m.remove().unwrap(); // already gone is fine
}

/// Hybrid placement (runc's): the container's cgroup is made, joined and removed in every v1
/// hierarchy, the `name=systemd` one and the unified one; only the v1 ones are mounted into
/// the container; `pids` finds a process that is only in the unified or systemd directory.
#[test]
fn hybrid_places_the_cgroup_in_the_named_and_unified_hierarchies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut controllers = fake_v1(tmp.path(), &["memory", "pids"]);
    let systemd = tmp.path().join("systemd");
    fs::create_dir_all(&systemd).unwrap();
    controllers.insert(NAME_SYSTEMD.to_string(), systemd.clone());
    let unified = tmp.path().join("unified");
    fs::create_dir_all(&unified).unwrap();
    let setup = Setup::Hybrid {
        controllers,
        unified: unified.clone(),
    };
    let m = manager_for(&setup, Some("/k8s/c1"), "c1").unwrap();
    m.create().unwrap();
    let dirs = [
        tmp.path().join("memory/k8s/c1"),
        tmp.path().join("pids/k8s/c1"),
        systemd.join("k8s/c1"),
        unified.join("k8s/c1"),
    ];
    for d in &dirs {
        assert!(d.is_dir(), "{} was not created", d.display());
    }
    let mut leaves = m.leaf_dirs();
    leaves.sort();
    let mut want = dirs.to_vec();
    want.sort();
    assert_eq!(leaves, want);
    let mounted: Vec<String> = m.mount_sources().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        mounted,
        ["memory", "pids", "systemd"],
        "unified is not mounted"
    );

    for d in &dirs {
        put(&d.join("cgroup.procs"), "");
    }
    m.add_task(4242).unwrap();
    for d in &dirs {
        assert_eq!(get(&d.join("cgroup.procs")), "4242", "{}", d.display());
        put(&d.join("cgroup.procs"), "");
    }
    put(&unified.join("k8s/c1/cgroup.procs"), "77\n");
    put(&systemd.join("k8s/c1/sub/cgroup.procs"), "88\n");
    assert_eq!(m.pids().unwrap(), [77, 88]);
    for d in &dirs {
        fs::remove_file(d.join("cgroup.procs")).unwrap();
    }
    fs::remove_file(systemd.join("k8s/c1/sub/cgroup.procs")).unwrap();
    m.remove().unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{} was not removed", d.display());
    }
    assert!(unified.join("k8s").is_dir(), "parents stay, as with runc");

    // The unified directory alone makes the cgroup exist (a create there is not new).
    fs::create_dir_all(unified.join("k8s/c1")).unwrap();
    assert!(m.exists());
}

/// runc 1.5 writes `pids.limit: 0` as 1 (v1 and v2), a negative limit as `max`.
#[test]
fn pids_limit_zero_means_one() {
    let tmp = tempfile::tempdir().unwrap();
    let m = V1Manager::new(fake_v1(tmp.path(), &["pids"]), "/c1");
    knobs(&m.dir("pids").unwrap(), &["pids.max"]);
    m.create().unwrap();
    let max = m.dir("pids").unwrap().join("pids.max");
    for (limit, want) in [(0, "1"), (7, "7"), (-1, "max"), (-5, "max")] {
        m.apply(&res(json!({"pids": {"limit": limit}}))).unwrap();
        assert_eq!(get(&max), want, "limit {limit}");
    }
}

#[test]
fn v1_apply_writes_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mounts = fake_v1(tmp.path(), V1_CTRLS);
    let m = V1Manager::new(mounts, "/peapod/c1");
    for (ctrl, names) in V1_KNOBS {
        knobs(
            &tmp.path().join(ctrl).join("peapod"),
            &["cpuset.cpus", "cpuset.mems"][..usize::from(*ctrl == "cpuset") * 2],
        );
        knobs(&m.dir(ctrl).unwrap(), names);
    }
    m.create().unwrap();
    let dir = |c: &str| m.dir(c).unwrap();
    assert_eq!(
        get(&dir("cpuset").join("cpuset.cpus")),
        "0-1",
        "copied from the nearest parent"
    );

    let mut r = full_resources();
    r["memory"]["kernelTCP"] = json!(1048576);
    r["memory"]["swappiness"] = json!(10);
    r["memory"]["disableOOMKiller"] = json!(true);
    r["cpu"]["realtimeRuntime"] = json!(950000);
    r["cpu"]["realtimePeriod"] = json!(1000000);
    r["blockIO"]["leafWeight"] = json!(300);
    r["blockIO"]["weightDevice"] =
        json!([{"major": 8, "minor": 0, "weight": 200, "leafWeight": 100}]);
    r["network"] = json!({"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]});
    m.apply(&res(r)).unwrap();

    let expect = [
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "20000"),
        ("cpu", "cpu.cfs_burst_us", "1000"),
        ("cpu", "cpu.idle", "1"),
        ("cpu", "cpu.rt_period_us", "1000000"),
        ("cpu", "cpu.rt_runtime_us", "950000"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("memory", "memory.limit_in_bytes", "268435456"),
        ("memory", "memory.memsw.limit_in_bytes", "536870912"),
        ("memory", "memory.soft_limit_in_bytes", "134217728"),
        ("memory", "memory.kmem.tcp.limit_in_bytes", "1048576"),
        ("memory", "memory.swappiness", "10"),
        ("memory", "memory.oom_control", "1"),
        ("pids", "pids.max", "64"),
        ("blkio", "blkio.weight", "500"),
        ("blkio", "blkio.leaf_weight", "300"),
        ("blkio", "blkio.weight_device", "8:0 200"),
        ("blkio", "blkio.leaf_weight_device", "8:0 100"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
        ("devices", "devices.deny", "a *:* rwm"),
        ("devices", "devices.allow", "c 1:3 rwm"),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx5_0 hca_handle=2 hca_object=2000"),
    ];
    for (ctrl, knob, value) in expect {
        assert_eq!(get(&dir(ctrl).join(knob)), value, "{knob}");
    }

    // Nothing is written when one field cannot be honoured: the dry run fails first.
    fs::remove_file(dir("blkio").join("blkio.weight")).unwrap();
    let err = m
        .apply(&res(
            json!({"pids": {"limit": 10}, "blockIO": {"weight": 100}}),
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "linux.resources.blockIO.weight is not supported on this host: no blkio.weight in {}",
            dir("blkio").display()
        )
    );
    assert_eq!(get(&dir("pids").join("pids.max")), "64");
    let err = m
        .apply(&res(json!({"unified": {"memory.high": "1"}})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.resources.unified is not supported on this host: it needs cgroup v2, and this host \
         uses cgroup v1 controllers"
    );
    let err = m
        .apply(&res(
            json!({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]}),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("is not a page size"), "{err}");
}

#[test]
fn v1_missing_controller_and_memory_order() {
    let tmp = tempfile::tempdir().unwrap();
    let m = V1Manager::new(fake_v1(tmp.path(), &["memory", "cpuset"]), "/c1");
    knobs(&m.dir("memory").unwrap(), V1_KNOBS[0].1);
    knobs(&m.dir("cpuset").unwrap(), &["cpuset.cpus", "cpuset.mems"]);
    m.create().unwrap();
    let err = m
        .apply(&res(
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.resources.hugepageLimits[0] is not supported on this host: no hugetlb cgroup v1 \
         controller is mounted"
    );
    // Unlimited memory with swap unset makes memory+swap unlimited too.
    let dir = m.dir("memory").unwrap();
    m.apply(&res(json!({"memory": {"limit": -1}}))).unwrap();
    assert_eq!(get(&dir.join("memory.limit_in_bytes")), "-1");
    assert_eq!(get(&dir.join("memory.memsw.limit_in_bytes")), "-1");
    let err = m
        .apply(&res(json!({"memory": {"limit": 200, "swap": 100}})))
        .unwrap_err();
    assert!(
        err.to_string().contains("lower than the memory limit"),
        "{err}"
    );
    // cgroups-rs errors keep the errno and the path.
    fs::remove_file(dir.join("memory.swappiness")).unwrap();
    fs::create_dir(dir.join("memory.swappiness")).unwrap();
    let err = m
        .apply(&res(json!({"memory": {"swappiness": 5}})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "write \"5\" to `{}`: Is a directory (os error 21)",
            dir.join("memory.swappiness").display()
        )
    );
}

#[test]
fn v1_stats_oom_and_pids() {
    let tmp = tempfile::tempdir().unwrap();
    let m = V1Manager::new(
        fake_v1(tmp.path(), &["cpu", "cpuacct", "memory", "pids", "blkio"]),
        "/c1",
    );
    let d = |c: &str| m.dir(c).unwrap();
    put(&d("cpuacct").join("cpuacct.usage"), "5000\n");
    put(&d("cpuacct").join("cpuacct.usage_percpu"), "3000 2000 \n");
    put(&d("cpuacct").join("cpuacct.stat"), "user 3\nsystem 1\n");
    put(
        &d("cpu").join("cpu.stat"),
        "nr_periods 10\nnr_throttled 2\nthrottled_time 777\n",
    );
    put(&d("memory").join("memory.usage_in_bytes"), "4096\n");
    put(&d("memory").join("memory.max_usage_in_bytes"), "8192\n");
    put(
        &d("memory").join("memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    put(&d("memory").join("memory.failcnt"), "0\n");
    put(&d("memory").join("memory.stat"), "cache 100\nrss 200\n");
    put(
        &d("memory").join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    put(&d("pids").join("pids.current"), "3\n");
    put(&d("pids").join("pids.max"), "max\n");
    put(&d("pids").join("cgroup.procs"), "10\n12\n");
    put(&d("pids").join("sub/cgroup.procs"), "11\n");
    put(
        &d("blkio").join("blkio.throttle.io_service_bytes_recursive"),
        "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    );
    put(
        &d("blkio").join("blkio.throttle.io_serviced_recursive"),
        "8:0 Read 1\n",
    );
    let s = m.stats().unwrap();
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({
            "cpu": {
                "usage": {"total": 5000, "percpu": [3000, 2000], "kernel": 10000000, "user": 30000000},
                "throttling": {"periods": 10, "throttledPeriods": 2, "throttledTime": 777}
            },
            "cpuset": {
                "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
                "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                "sched_load_balance": 0, "sched_relax_domain_level": 0
            },
            // All-zero entries are omitted (runc's `omitzero`): no memsw/kmem files here.
            "memory": {
                "cache": 100,
                "usage": {"limit": 9223372036854771712u64, "usage": 4096, "max": 8192, "failcnt": 0},
                "raw": {"cache": 100, "rss": 200}
            },
            "pids": {"current": 3},
            "blkio": {
                "ioServiceBytesRecursive": [
                    {"major": 8, "op": "Read", "value": 4096},
                    {"major": 8, "op": "Write"}
                ],
                "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1}]
            },
            "hugetlb": {}
        })
    );
    assert_eq!(m.oom_kill_count().unwrap(), 2);
    assert_eq!(m.oom_watch_path(), None);
    assert_eq!(
        m.pids().unwrap(),
        vec![10, 11, 12],
        "from the pids hierarchy, recursively"
    );
}

// --- cgroup v2 against a fake tree ---

fn fake_v2(root: &Path) -> V2Manager {
    put(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma\n",
    );
    put(&root.join("cgroup.subtree_control"), "cpu\n");
    put(&root.join("cgroup.procs"), "1\n"); // the real root is exempt from the internal process rule
    knobs(
        &root.join("peapod"),
        &["cgroup.subtree_control", "cgroup.procs", "cgroup.type"],
    );
    V2Manager::new(root.to_path_buf(), "/peapod/c1")
}

const V2_KNOBS: &[&str] = &[
    "cpu.weight",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "memory.high",
    "memory.oom.group",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "hugetlb.2MB.rsvd.max",
    "rdma.max",
    "cgroup.freeze",
    "cgroup.kill",
    "cgroup.procs",
    "cgroup.type",
];

#[test]
fn v2_create_delegates_controllers() {
    let tmp = tempfile::tempdir().unwrap();
    let m = fake_v2(tmp.path());
    m.create().unwrap();
    assert!(m.dir().is_dir() && m.is_unified());
    assert_eq!(
        get(&tmp.path().join("cgroup.subtree_control")),
        "+cpuset +io +memory +hugetlb +pids +rdma"
    );
    assert_eq!(
        get(&tmp.path().join("peapod/cgroup.subtree_control")),
        "+cpuset +cpu +io +memory +hugetlb +pids +rdma"
    );
    assert!(
        !m.dir().join("cgroup.subtree_control").exists(),
        "the leaf keeps no controllers for children"
    );
    assert_eq!(
        m.mount_sources(),
        vec![(String::new(), m.dir().to_path_buf())]
    );
    assert!(m.cgroup_fd().unwrap().is_some());
    assert_eq!(m.oom_watch_path(), Some(m.dir().join("memory.events")));

    // An ancestor with processes cannot delegate; nothing is left behind.
    knobs(
        &tmp.path().join("busy"),
        &["cgroup.subtree_control", "cgroup.type"],
    );
    put(&tmp.path().join("busy/cgroup.procs"), "4242\n");
    let busy = V2Manager::new(tmp.path().to_path_buf(), "/busy/deeper/c2");
    let err = busy.create().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "create cgroup `{}`: it has processes of its own, so cgroup v2 cannot enable controllers \
             for its children (no internal process rule); hint: use a cgroupsPath whose ancestors \
             hold no processes",
            tmp.path().join("busy").display()
        )
    );
    assert!(!tmp.path().join("busy/deeper").exists());
}

#[test]
fn v2_apply_writes_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let m = fake_v2(tmp.path());
    m.create().unwrap();
    knobs(m.dir(), V2_KNOBS);
    put(&m.dir().join("cpu.max"), "max 100000\n");
    let mut r = full_resources();
    r.as_object_mut().unwrap().remove("devices"); // BPF needs a real cgroup: privileged tests
    r["blockIO"] =
        json!({"weight": 500, "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]});
    r["unified"] = json!({"memory.oom.group": "1", "memory.high": "200000000"});
    m.apply(&res(r)).unwrap();
    for (knob, value) in [
        ("cpu.weight", "59"),
        ("cpu.max", "20000 100000"),
        ("cpu.max.burst", "1000"),
        ("cpu.idle", "1"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("memory.max", "268435456"),
        ("memory.low", "134217728"),
        ("memory.swap.max", "268435456"),
        ("pids.max", "64"),
        ("io.weight", "4950"),
        ("io.max", "8:0 wiops=100"),
        ("hugetlb.2MB.max", "4194304"),
        ("hugetlb.2MB.rsvd.max", "4194304"),
        ("rdma.max", "mlx5_0 hca_handle=2 hca_object=2000"),
        ("memory.oom.group", "1"),
        ("memory.high", "200000000"),
    ] {
        assert_eq!(get(&m.dir().join(knob)), value, "{knob}");
    }
    // A period alone keeps the quota (cgroups-rs reads cpu.max back).
    m.apply(&res(
        json!({"cpu": {"period": 50000}, "memory": {"limit": -1}}),
    ))
    .unwrap();
    assert_eq!(get(&m.dir().join("cpu.max")), "20000 50000");
    assert_eq!(get(&m.dir().join("memory.max")), "max");
    assert_eq!(get(&m.dir().join("memory.swap.max")), "max");

    for (spec, message) in [
        (
            json!({"cpu": {"realtimeRuntime": 100}}),
            "linux.resources.cpu.realtimeRuntime is not supported on this host: realtime CPU limits exist only on cgroup v1",
        ),
        (
            json!({"network": {"classID": 1}}),
            "linux.resources.network is not supported on this host: cgroup v2 has no net_cls or net_prio controller",
        ),
        (
            json!({"blockIO": {"leafWeight": 10}}),
            "linux.resources.blockIO.leafWeight is not supported on this host: cgroup v2 has no leaf weights",
        ),
        (
            json!({"unified": {"../escape": "1"}}),
            "invalid linux.resources.unified[\"../escape\"]: keys are cgroup file names of the form controller.knob",
        ),
        (
            json!({"devices": [{"allow": true, "access": "rx"}]}),
            "invalid linux.resources.devices[0]: unknown access 'x' (want r, w, m)",
        ),
    ] {
        assert_eq!(m.apply(&res(spec)).unwrap_err().to_string(), message);
    }
    let err = m
        .apply(&res(json!({"unified": {"misc.max": "1"}})))
        .unwrap_err();
    assert!(err.to_string().starts_with(
        "linux.resources.unified[\"misc.max\"] is not supported on this host: no misc.max"
    ));
    assert_eq!(get(&m.dir().join("pids.max")), "64");
}

#[test]
fn v2_freeze_kill_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let m = fake_v2(tmp.path());
    m.create().unwrap();
    knobs(m.dir(), V2_KNOBS);
    put(&m.dir().join("cgroup.events"), "populated 1\nfrozen 1\n"); // what the kernel reports
    assert!(!m.is_frozen().unwrap());
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert_eq!(get(&m.dir().join("cgroup.freeze")), "0");
    m.kill_all(9).unwrap();
    assert_eq!(get(&m.dir().join("cgroup.kill")), "1");

    put(
        &m.dir().join("memory.events"),
        "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
    );
    assert_eq!(m.oom_kill_count().unwrap(), 1);
    put(
        &m.dir().join("cpu.stat"),
        "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 5\nnr_throttled 1\nthrottled_usec 9\n",
    );
    put(
        &m.dir().join("cpu.pressure"),
        "some avg10=1.50 avg60=0.25 avg300=0.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
    );
    put(&m.dir().join("memory.current"), "4096\n");
    put(&m.dir().join("memory.peak"), "8192\n");
    put(&m.dir().join("memory.max"), "max\n");
    put(&m.dir().join("memory.swap.current"), "0\n");
    put(&m.dir().join("memory.swap.max"), "max\n");
    put(&m.dir().join("memory.stat"), "anon 300\nfile 200\n");
    put(&m.dir().join("pids.current"), "2\n");
    put(&m.dir().join("pids.max"), "10\n");
    put(
        &m.dir().join("io.stat"),
        "8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    );
    put(&m.dir().join("hugetlb.2MB.current"), "2097152\n");
    put(&m.dir().join("hugetlb.2MB.events"), "max 3\n");
    put(&m.dir().join("cgroup.procs"), "7\n");
    put(&m.dir().join("child/cgroup.procs"), "8\n");
    assert_eq!(m.pids().unwrap(), vec![7, 8]);
    assert_eq!(
        serde_json::to_value(m.stats().unwrap()).unwrap(),
        json!({
            "cpu": {
                "usage": {"total": 100000, "kernel": 40000, "user": 60000},
                "throttling": {"periods": 5, "throttledPeriods": 1, "throttledTime": 9000},
                "psi": {
                    "some": {"avg10": 1.5, "avg60": 0.25, "avg300": 0.0, "total": 123},
                    "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 7}
                }
            },
            "cpuset": {
                "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
                "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                "sched_load_balance": 0, "sched_relax_domain_level": 0
            },
            "memory": {
                "cache": 200,
                "usage": {"limit": u64::MAX, "usage": 4096, "max": 8192, "failcnt": 7},
                "swap": {"limit": u64::MAX, "usage": 4096, "failcnt": 0},
                "raw": {"anon": 300, "file": 200}
            },
            "pids": {"current": 2, "limit": 10},
            "blkio": {
                "ioServiceBytesRecursive": [
                    {"major": 8, "op": "Read", "value": 512},
                    {"major": 8, "op": "Write"},
                    {"major": 8, "op": "Discard"}
                ],
                "ioServicedRecursive": [
                    {"major": 8, "op": "Read", "value": 1},
                    {"major": 8, "op": "Write"},
                    {"major": 8, "op": "Discard"}
                ]
            },
            "hugetlb": {"2MB": {"usage": 2097152, "failcnt": 3}}
        })
    );
}

#[test]
fn remove_is_leaf_first_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let m = V2Manager::new(tmp.path().to_path_buf(), "/peapod/c1");
    fs::create_dir_all(m.dir().join("a/b")).unwrap();
    fs::create_dir_all(m.dir().join("c")).unwrap();
    m.remove().unwrap();
    assert!(!m.exists());
    m.remove().unwrap();
    let err = m.apply(&res(json!({}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "apply resources to `{}`: the cgroup does not exist; hint: create it first",
            m.dir().display()
        )
    );
}

mod privileged;
