//! The systemd cgroup driver (`--systemd-cgroup`) against a **mock systemd**: neither this
//! machine nor the test VM runs systemd, so the test starts a private `dbus-daemon` (own config,
//! socket in a temp dir, killed at the end) and a thread that owns `org.freedesktop.systemd1` on
//! it. On `StartTransientUnit` the mock records the properties, creates the scope's cgroup in the
//! cgroup2 hierarchy (`/sys/fs/cgroup` in the VM, `/sys/fs/cgroup/unified` on the hybrid host) at
//! `<expanded slice>/<unit>`, moves the `PIDs` into it, replies with a job path and emits
//! `JobRemoved(.., "done")`; on `StopUnit` it kills what is left in the directory and removes it.
//! peapod is pointed at the bus with `DBUS_SYSTEM_BUS_ADDRESS`; runc 1.5.1 is run against the same
//! mock for comparison. What real systemd adds (its own controller setup, applying properties,
//! unit garbage collection) is covered by `cgroup_systemd_real`. The
//! runtimes get `/run/systemd/system` (which they check for systemd) in a mount namespace of
//! their own (`with_run`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peapod_oci::cgroups::dbus::{Connection, METHOD_CALL, Message, SIGNAL, Value};
use peapod_oci::cgroups::systemd::expand_slice;
use serde_json::json;

use crate::common::*;

const DBUS_DAEMON: &str = "/usr/bin/dbus-daemon";

/// The method calls the mock got: (member, body).
type Calls = Mutex<Vec<(String, Vec<Value>)>>;

/// The cgroup2 mount: the whole tree in the VM, the (nearly empty) unified one on the host.
fn v2_root() -> PathBuf {
    if cgroup_v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    }
}

/// Every hierarchy root where the container's cgroup may have a directory.
fn hierarchy_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if !cgroup_v2()
        && let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup")
    {
        roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    roots
}

/// A private bus and the mock systemd serving on it; both end when this is dropped.
struct MockSystemd {
    dir: tempfile::TempDir,
    daemon: Child,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Every method call the mock got: (member, body).
    calls: Arc<Calls>,
}

impl MockSystemd {
    fn start() -> MockSystemd {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@DIR@/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="org.freedesktop.systemd1"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#
            .replace("@DIR@", &dir.path().display().to_string()),
        )
        .unwrap();
        let mut daemon = Command::new(DBUS_DAEMON)
            .arg(format!("--config-file={}", config.display()))
            .arg(format!("--address=unix:path={}/bus", dir.path().display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dbus-daemon");
        // The address is printed once the daemon listens.
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        let mut conn = Connection::open(&dir.path().join("bus")).expect("connect the mock");
        let owned = conn
            .bus_call(
                "RequestName",
                vec![Value::Str("org.freedesktop.systemd1".into()), Value::U32(4)],
            )
            .unwrap();
        assert_eq!(owned.body, vec![Value::U32(1)], "mock owns the name");
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, calls) = (stop.clone(), calls.clone());
            std::thread::spawn(move || serve(conn, &stop, &calls))
        };
        MockSystemd {
            dir,
            daemon,
            stop,
            thread: Some(thread),
            calls,
        }
    }

    fn address(&self) -> String {
        format!("unix:path={}/bus", self.dir.path().display())
    }

    fn calls(&self, member: &str) -> Vec<Vec<Value>> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(m, _)| m == member)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Drop for MockSystemd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn scope_dir(slice: &str, unit: &str) -> PathBuf {
    let slice = expand_slice(slice).unwrap();
    v2_root().join(slice.trim_start_matches('/')).join(unit)
}

/// The mock's loop: answers StartTransientUnit, StopUnit (and runc's version query) until told
/// to stop; anything else gets an error reply.
fn serve(mut conn: Connection, stop: &AtomicBool, calls: &Calls) {
    let mut jobs = 0u32;
    let mut units: Vec<(String, PathBuf)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let m = match conn.recv(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                eprintln!("mock systemd: receive: {e}");
                return;
            }
        };
        if m.kind != METHOD_CALL {
            continue;
        }
        let member = m.member.clone().unwrap_or_default();
        calls.lock().unwrap().push((member.clone(), m.body.clone()));
        let unit = m
            .body
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let reply = match member.as_str() {
            // runc also sets device and resource properties on the running unit.
            "Subscribe" | "SetUnitProperties" | "ResetFailedUnit" => Message::reply(&m, vec![]),
            // runc asks for systemd's version (org.freedesktop.DBus.Properties.Get).
            "Get" => Message::reply(&m, vec![Value::Variant(Box::new(Value::Str("252".into())))]),
            "StartTransientUnit" => {
                let props = property_map(&m.body[2]);
                let slice = props
                    .get("Slice")
                    .and_then(Value::as_str)
                    .unwrap_or("system.slice");
                let dir = scope_dir(slice, &unit);
                std::fs::create_dir_all(&dir).unwrap();
                if let Some(Value::Array(_, pids)) = props.get("PIDs") {
                    for pid in pids.iter().filter_map(Value::as_u32) {
                        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
                    }
                }
                units.push((unit.clone(), dir));
                jobs += 1;
                Message::reply(
                    &m,
                    vec![Value::Path(format!("/org/freedesktop/systemd1/job/{jobs}"))],
                )
            }
            "StopUnit" => match units.iter().position(|(u, _)| *u == unit) {
                Some(i) => {
                    let (_, dir) = units.remove(i);
                    kill_and_remove(&dir);
                    jobs += 1;
                    Message::reply(
                        &m,
                        vec![Value::Path(format!("/org/freedesktop/systemd1/job/{jobs}"))],
                    )
                }
                None => Message::error(
                    &m,
                    "org.freedesktop.systemd1.NoSuchUnit",
                    &format!("Unit {unit} not loaded."),
                ),
            },
            _ => Message::error(&m, "org.freedesktop.DBus.Error.UnknownMethod", "mock"),
        };
        let job = match reply.body.first() {
            Some(Value::Path(job)) => Some(job.clone()),
            _ => None,
        };
        conn.send(reply).unwrap();
        if let Some(job) = job {
            let mut signal = Message::signal(
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "JobRemoved",
                vec![
                    Value::U32(jobs),
                    Value::Path(job),
                    Value::Str(unit),
                    Value::Str("done".into()),
                ],
            );
            signal.kind = SIGNAL;
            conn.send(signal).unwrap();
        }
    }
}

fn property_map(v: &Value) -> std::collections::BTreeMap<String, Value> {
    let mut map = std::collections::BTreeMap::new();
    if let Value::Array(_, items) = v {
        for item in items {
            if let Value::Struct(f) = item
                && let (Some(Value::Str(k)), Some(Value::Variant(v))) = (f.first(), f.get(1))
            {
                map.insert(k.clone(), (**v).clone());
            }
        }
    }
    map
}

/// What systemd does when a scope stops: kill its processes, then remove its cgroup.
fn kill_and_remove(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        for &p in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            // Killed processes leave the cgroup asynchronously.
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("mock StopUnit: rmdir {}: {e}", dir.display()),
        }
    }
}

/// Removes the test's slice directories (`ppsdX.slice/ppsdX-<pid>.slice`) in every hierarchy
/// where they are empty, as systemd would when the slices go. Each test has a top-level slice of
/// its own, so no other test still holds a scope below it.
fn remove_slices(slice_path: &str) {
    for root in hierarchy_roots() {
        let leaf = root.join(slice_path.trim_start_matches('/'));
        for dir in leaf.ancestors().take_while(|d| *d != root.as_path()) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `c` in a mount namespace of its own whose `/run` is a tmpfs, with `/run/systemd/system` (the
/// mark runtimes take for "systemd is the init system") when `mark`, without it otherwise. The
/// host's /run is not touched.
pub fn with_run(c: &Command, mark: bool) -> Command {
    let mut w = Command::new("unshare");
    let mkdir = if mark {
        " && mkdir -p /run/systemd/system"
    } else {
        ""
    };
    w.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs tmpfs /run{mkdir} && exec \"$0\" \"$@\""
        ))
        .arg(c.get_program())
        .args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    if let Some(d) = c.get_current_dir() {
        w.current_dir(d);
    }
    w
}

fn ready() -> bool {
    root_ok()
        && can_run(
            "needs /usr/bin/dbus-daemon (package dbus)",
            Path::new(DBUS_DAEMON).exists(),
        )
}

#[test]
fn systemd_driver_makes_a_scope_applies_limits_and_stops_it() {
    if !ready() {
        return;
    }
    let mock = MockSystemd::start();
    let id = unique("sdcg");
    let slice = format!("ppsda-{}.slice", std::process::id());
    let slice_path = expand_slice(&slice).unwrap();
    let unit = format!("pp-{id}.scope");
    let cg_path = format!("{slice_path}/{unit}");
    let b = Bundle::new(
        &["sleep", "60"],
        json!({"linux": {
            "cgroupsPath": format!("{slice}:pp:{id}"),
            "resources": {"memory": {"limit": 67108864}},
        }}),
    );
    let oci = |args: &[&str]| {
        let mut c = b.cmd(&["--systemd-cgroup"]);
        c.args(args).env("DBUS_SYSTEM_BUS_ADDRESS", mock.address());
        captured(with_run(&c, true))
    };
    let o = oci(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        o.status.success(),
        "run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(b.cgroup_path(&id), cg_path);
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    // The container's init is in the scope, in the cgroup2 hierarchy and (hybrid host) in
    // every v1 hierarchy peapod joined itself.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert_eq!(path, cg_path, "/proc/{pid}/cgroup: {cgroup}");
    }
    // The unit the mock got.
    let starts = mock.calls("StartTransientUnit");
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(starts[0][0], Value::Str(unit.clone()));
    assert_eq!(starts[0][1], Value::Str("replace".into()));
    let props = property_map(&starts[0][2]);
    assert_eq!(props.get("Slice"), Some(&Value::Str(slice.clone())));
    assert_eq!(props.get("Delegate"), Some(&Value::Bool(true)));
    assert_eq!(props.get("DefaultDependencies"), Some(&Value::Bool(false)));
    assert_eq!(props.get("MemoryAccounting"), Some(&Value::Bool(true)));
    assert!(props.contains_key("Description"), "{props:?}");
    match props.get("PIDs") {
        Some(Value::Array(e, pids)) if e == "u" && pids.len() == 1 => {}
        other => panic!("PIDs: {other:?}"),
    }
    // The memory limit, written to the unit's cgroup.
    let limit = if cgroup_v2() {
        std::fs::read_to_string(b.knob(&id, "memory", "memory.max")).unwrap()
    } else {
        std::fs::read_to_string(b.knob(&id, "memory", "memory.limit_in_bytes")).unwrap()
    };
    assert_eq!(limit.trim(), "67108864");
    // stats work on it like on cgroupfs.
    let o = oci(&["events", "--stats", &id]);
    assert!(
        o.status.success(),
        "events: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // exec joins the scope; pause and resume freeze it.
    let o = oci(&["exec", "-d", &id, "sleep", "60"]);
    assert!(
        o.status.success(),
        "exec: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let procs = v2_root()
        .join(cg_path.trim_start_matches('/'))
        .join("cgroup.procs");
    let procs = std::fs::read_to_string(procs).unwrap();
    assert_eq!(procs.lines().count(), 2, "cgroup.procs: {procs}");
    for verb in ["pause", "resume"] {
        let o = oci(&[verb, &id]);
        assert!(
            o.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // delete stops the unit and nothing is left.
    let o = oci(&["delete", "--force", &id]);
    assert!(
        o.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stops = mock.calls("StopUnit");
    assert_eq!(
        stops,
        vec![vec![Value::Str(unit.clone()), Value::Str("replace".into())]]
    );
    for root in hierarchy_roots() {
        let dir = root.join(cg_path.trim_start_matches('/'));
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    assert!(
        !Path::new(&format!("/proc/{pid}/cgroup")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "init {pid} still runs"
    );
    remove_slices(&slice_path);
}

#[test]
fn systemd_driver_without_a_bus_fails_clearly_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let id = unique("sdnobus");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobus");
    let slice = format!("ppsdn-{}.slice", std::process::id());
    let b = Bundle::new(
        &["true"],
        json!({"linux": {"cgroupsPath": format!("{slice}:pp:{id}")}}),
    );
    let mut c = b.cmd(&[
        "--systemd-cgroup",
        "run",
        "-d",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    c.env(
        "DBUS_SYSTEM_BUS_ADDRESS",
        format!("unix:path={}", sock.display()),
    );
    let o = captured(with_run(&c, true));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "connect to the D-Bus system bus at `{}`",
            sock.display()
        )) && err.contains("--systemd-cgroup needs systemd"),
        "{err}"
    );
    assert!(!b.state_root.join(&id).exists(), "state left behind");
    let cg = format!("{}/pp-{id}.scope", expand_slice(&slice).unwrap());
    for root in hierarchy_roots() {
        assert!(!root.join(cg.trim_start_matches('/')).exists());
    }
    // A cgroupsPath that is not slice:prefix:name is refused in runc's words.
    let b2 = Bundle::new(&["true"], json!({"linux": {"cgroupsPath": "a:b"}}));
    let o = captured(b2.cmd(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        b2.path().to_str().unwrap(),
        &id,
    ]));
    // (stderr is a logrus-style line: the quotes come escaped.)
    let err = String::from_utf8_lossy(&o.stderr).replace("\\\"", "\"");
    assert!(
        err.contains(
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, \
             got \"a:b\" instead"
        ),
        "{err}"
    );
}

/// runc 1.5.1's systemd driver against the same mock: the same unit name, slice and cgroup
/// path, and the properties peapod sends are among runc's with the same values.
#[test]
fn systemd_driver_names_the_unit_and_path_like_runc() {
    if !ready() {
        return;
    }
    let Some(runc) = crate::features_process::Runc::new() else {
        return;
    };
    let mock = MockSystemd::start();
    let id = unique("sdrunc");
    let slice = format!("ppsdr-{}.slice", std::process::id());
    let slice_path = expand_slice(&slice).unwrap();
    let b = Bundle::new(
        &["sleep", "60"],
        json!({"linux": {
            "cgroupsPath": format!("{slice}:ppr:{id}"),
            "resources": {
                "memory": {"limit": 67108864, "reservation": 33554432},
                "pids": {"limit": 64},
                "cpu": {"shares": 2048, "quota": 25000, "period": 100000, "cpus": "0", "mems": "0"},
            },
        }}),
    );
    let bundle = b.path().to_str().unwrap();
    // Both only use systemd where /run/systemd/system exists: they run in a mount namespace
    // of their own with a tmpfs on /run that has it (the host's /run is not touched).
    let with_bus = |mut c: Command| {
        c.env("DBUS_SYSTEM_BUS_ADDRESS", mock.address());
        captured(with_run(&c, true))
    };
    let runc_cmd = |args: &[&str]| {
        let mut c = Command::new(&runc.bin);
        c.arg("--root").arg(runc.root.path()).args(args);
        c
    };
    let o = with_bus(runc_cmd(&[
        "--systemd-cgroup",
        "run",
        "-d",
        "--bundle",
        bundle,
        &id,
    ]));
    let runc_calls = mock.calls.lock().unwrap().clone();
    assert!(
        o.status.success(),
        "runc run: {}; calls: {runc_calls:?}",
        String::from_utf8_lossy(&o.stderr)
    );
    let state: serde_json::Value =
        serde_json::from_slice(&with_bus(runc_cmd(&["state", &id])).stdout).unwrap();
    let runc_pid = state["pid"].as_i64().unwrap();
    let runc_cgroup = std::fs::read_to_string(format!("/proc/{runc_pid}/cgroup")).unwrap();
    let o = with_bus(runc_cmd(&["--systemd-cgroup", "delete", "--force", &id]));
    assert!(
        o.status.success(),
        "runc delete: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let runc_start = mock.calls("StartTransientUnit");
    assert_eq!(runc_start.len(), 1, "{runc_calls:?}");
    let runc_set = mock.calls("SetUnitProperties");

    let o = with_bus(b.cmd(&["--systemd-cgroup", "run", "-d", "--bundle", bundle, &id]));
    assert!(
        o.status.success(),
        "run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let our_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let o = with_bus(b.cmd(&["--systemd-cgroup", "delete", "--force", &id]));
    assert!(
        o.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let starts = mock.calls("StartTransientUnit");
    assert_eq!(starts.len(), 2);
    // Unit name and mode as runc's.
    assert_eq!(starts[1][..2], runc_start[0][..2]);
    assert_eq!(starts[1][0], Value::Str(format!("ppr-{id}.scope")));
    // Every property peapod sends, runc sends too, with the same value (Description and PIDs
    // name different things).
    let runc_props = property_map(&runc_start[0][2]);
    for (k, v) in property_map(&starts[1][2]) {
        if k == "Description" || k == "PIDs" {
            assert!(
                runc_props.contains_key(&k),
                "runc has no {k}: {runc_props:?}"
            );
            continue;
        }
        assert_eq!(
            runc_props.get(&k),
            Some(&v),
            "{k}: runc sent {runc_props:?}"
        );
    }
    // The limits peapod sets as unit properties (so that systemd keeps them), runc sets too,
    // with the same values (runc sends them at the start and again in SetUnitProperties).
    let ours: Vec<_> = mock.calls("SetUnitProperties")[runc_set.len()..].to_vec();
    assert!(!ours.is_empty(), "peapod sets no unit properties");
    let mut runc_all = runc_props.clone();
    for call in &runc_set {
        runc_all.extend(property_map(&call[2]));
    }
    let mut set_names = Vec::new();
    for call in &ours {
        assert_eq!(call[0], Value::Str(format!("ppr-{id}.scope")));
        assert_eq!(call[1], Value::Bool(true), "runtime properties");
        for (k, v) in property_map(&call[2]) {
            assert_eq!(runc_all.get(&k), Some(&v), "{k}: runc set {runc_all:?}");
            set_names.push(k);
        }
    }
    let want: &[&str] = if cgroup_v2() {
        &[
            "AllowedCPUs",
            "AllowedMemoryNodes",
            "CPUQuotaPerSecUSec",
            "CPUWeight",
            "MemoryLow",
            "MemoryMax",
            "TasksMax",
        ]
    } else {
        &[
            "AllowedCPUs",
            "AllowedMemoryNodes",
            "CPUQuotaPerSecUSec",
            "CPUShares",
            "MemoryLimit",
            "TasksMax",
        ]
    };
    for k in want {
        assert!(
            set_names.iter().any(|n| n == k),
            "{k} not set: {set_names:?}"
        );
    }
    // The init's cgroup in the cgroup2 hierarchy is the same path.
    let v2_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("0::"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_eq!(v2_line(&our_cgroup), v2_line(&runc_cgroup));
    assert_eq!(
        v2_line(&our_cgroup),
        format!("0::{slice_path}/ppr-{id}.scope")
    );
    assert_eq!(mock.calls("StopUnit").len(), 2);
    remove_slices(&slice_path);
}

/// Where systemd is not the init system (no `/run/systemd/system`, which the command gets by
/// running with a fresh tmpfs on `/run` in a mount namespace of its own), runc 1.5.1 refuses
/// `--systemd-cgroup` before anything else: peapod does the same, with the same exit status and
/// its `--log` message ending with runc's, and leaves no state or cgroup.
#[test]
fn systemd_driver_without_systemd_is_refused_like_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = crate::features_process::Runc::new() else {
        return;
    };
    let id = unique("sdnone");
    let slice = format!("ppsdx-{}.slice", std::process::id());
    let b = Bundle::new(
        &["true"],
        json!({"linux": {"cgroupsPath": format!("{slice}:pp:{id}")}}),
    );
    let bundle = b.path().to_str().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut got = Vec::new();
    for (name, bin, root) in [
        ("runc", runc.bin.clone(), runc.root.path().to_path_buf()),
        ("peapod", oci_bin(), b.state_root.clone()),
    ] {
        for verb in ["create", "run"] {
            let log = logs.path().join(format!("{name}-{verb}.json"));
            let mut c = Command::new(&bin);
            c.arg("--root")
                .arg(&root)
                .arg("--log")
                .arg(&log)
                .args(["--log-format", "json", "--systemd-cgroup", verb])
                .args(["-d"].iter().filter(|_| verb == "run"))
                .args(["--bundle", bundle, &id]);
            let o = captured(with_run(&c, false));
            let msg = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["level"] == "error")
                .filter_map(|v| v["msg"].as_str().map(str::to_string))
                .next_back()
                .unwrap_or_default();
            got.push((name, verb, o.status.code(), msg));
        }
    }
    let want = "systemd not running on this host, cannot use systemd cgroups manager";
    for (name, verb, code, msg) in &got {
        assert_eq!(*code, Some(1), "{name} {verb}: {got:?}");
        assert!(msg.ends_with(want), "{name} {verb}: {msg:?}");
    }
    assert_eq!(got[0].3, format!("runc create failed: {want}"));
    assert_eq!(got[1].3, format!("runc run failed: {want}"));
    assert!(!b.state_root.join(&id).exists(), "state left behind");
    let cg = format!("{}/pp-{id}.scope", expand_slice(&slice).unwrap());
    for root in hierarchy_roots() {
        assert!(!root.join(cg.trim_start_matches('/')).exists());
    }
}
