//! The systemd cgroup driver (`--systemd-cgroup`) against a **real systemd** (Debian's systemd
//! 252 from the host's filesystem), peapod and runc 1.5.1 side by side.
//!
//! Neither the host nor the test VM boots systemd, so the test starts one as a container
//! would: `/lib/systemd/systemd --system` as PID 1 of a new PID + mount + cgroup namespace,
//! with `container=peapod-test`, a tmpfs on `/run`, `/sys/fs/cgroup` a cgroup2 mount of a
//! subtree the test made (`/sys/fs/cgroup/ppsdreal-<pid>`, the root of the cgroup namespace),
//! and one unit to start: `peapod-test.target`, which wants `dbus.socket` and `dbus.service`
//! (Debian's, with drop-ins in `/run/systemd/system` that turn off their default dependencies,
//! so nothing of `sysinit.target` starts). The runtimes run inside those namespaces
//! (`nsenter -m -p -C`, from a cgroup of the subtree so that systemd may move their processes)
//! and reach that systemd through `/run/dbus/system_bus_socket` and the `/run/systemd/system`
//! mark, as on a systemd host. The test waits for the private socket, then for
//! `systemctl is-system-running --wait`.
//!
//! Pure cgroup v2 only (the VM): on the hybrid host every controller is bound to a v1
//! hierarchy, where systemd in a container needs v1 hierarchies of its own (`name=systemd` and
//! one per controller) delegated to it, which this test does not set up; there it says so and
//! does nothing (the mock tests in `cgroup_systemd` cover the host).
//!
//! Teardown (also on failure): SIGRTMIN+3 (systemd's halt; in a container it exits), SIGKILL of
//! the namespace's PID 1 if it does not within 20 s, `cgroup.kill` on the subtree, then its
//! directories are removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use peapod_oci::cgroups::systemd::expand_slice;
use serde_json::json;

use crate::common::*;

const SYSTEMD: &str = "/lib/systemd/systemd";
const SLICE: &str = "ppsd-real.slice";

/// What PID 1 of the new PID namespace runs: join the subtree, enter a cgroup namespace rooted
/// there, mount what systemd needs and exec it. `$0` is the subtree, `$1` the test's directory
/// (units to install, console log).
const BOOT: &str = r#"echo $$ > "$0/cgroup.procs" && exec unshare --cgroup sh -c '
umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run && mkdir -p /run/systemd/system &&
cp -r "$0/units/." /run/systemd/system/ &&
mount --bind "$0/console.log" /dev/console &&
exec env -i container=peapod-test /lib/systemd/systemd --system --unit=peapod-test.target \
  --log-target=console --log-level=info --show-status=no' "$1""#;

/// A systemd instance in namespaces of its own; stopped and its cgroups removed when dropped.
struct RealSystemd {
    /// `/sys/fs/cgroup/ppsdreal-<pid>`: the root of its cgroup namespace.
    cg: PathBuf,
    dir: tempfile::TempDir,
    /// `unshare --fork`, the parent of systemd.
    child: Child,
    /// systemd's PID (in the test's PID namespace).
    pid: i32,
}

impl RealSystemd {
    fn start() -> RealSystemd {
        let cg = PathBuf::from(format!("/sys/fs/cgroup/ppsdreal-{}", std::process::id()));
        std::fs::create_dir(&cg).unwrap();
        // The runtimes' own processes: a leaf beside systemd's tree (nsdelegate lets systemd
        // move a process only between cgroups below its namespace root).
        std::fs::create_dir(cg.join("ppsd-clients")).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("pp-systemd")
            .tempdir()
            .unwrap();
        let units = dir.path().join("units");
        for d in ["dbus.socket.d", "dbus.service.d"] {
            std::fs::create_dir_all(units.join(d)).unwrap();
            std::fs::write(
                units.join(d).join("peapod-test.conf"),
                "[Unit]\nDefaultDependencies=no\n",
            )
            .unwrap();
        }
        std::fs::write(
            units.join("peapod-test.target"),
            "[Unit]\nDescription=peapod test\nWants=dbus.socket dbus.service\n\
             After=dbus.socket dbus.service\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("console.log"), "").unwrap();
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "--mount-proc"])
            .args(["--propagation", "private", "sh", "-c", BOOT])
            .arg(&cg)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start unshare");
        let mut sd = RealSystemd {
            cg,
            dir,
            pid: 0,
            child,
        };
        // systemd is the only child of `unshare --fork` (same PID through its execs).
        let children = format!("/proc/{0}/task/{0}/children", sd.child.id());
        sd.pid = sd.wait("systemd's PID", || {
            std::fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
        });
        let private = PathBuf::from(format!("/proc/{}/root/run/systemd/private", sd.pid));
        sd.wait("systemd's private socket", || {
            private.exists().then_some(())
        });
        let o = sd.run(&["systemctl", "is-system-running", "--wait"]);
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state != "running" {
            let failed = sd.run(&["systemctl", "--failed", "--no-pager"]);
            panic!(
                "systemd is {state:?}: {}; console: {}",
                String::from_utf8_lossy(&failed.stdout),
                sd.console()
            );
        }
        sd
    }

    /// Polls `f` (systemd gives no event to wait on from outside its namespaces) for 60 s.
    fn wait<T>(&mut self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "systemd exited ({st}) before {what}; console: {}",
                    self.console()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} after 60 s; console: {}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    /// `c` inside systemd's mount, PID and cgroup namespaces, from the clients' cgroup.
    fn enter(&self, c: &Command) -> Command {
        let mut w = Command::new("sh");
        w.arg("-c")
            .arg(format!(
                "echo $$ > \"$0/cgroup.procs\" && exec nsenter -t {} -m -p -C -- \"$@\"",
                self.pid
            ))
            .arg(self.cg.join("ppsd-clients"))
            .arg(c.get_program())
            .args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => w.env(k, v),
                None => w.env_remove(k),
            };
        }
        w
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        captured(self.enter(&c))
    }

    /// `systemctl show UNIT -p P...` as a map.
    fn show(&self, unit: &str, props: &[&str]) -> std::collections::BTreeMap<String, String> {
        let mut args = vec!["systemctl", "show", unit];
        for p in props {
            args.extend(["-p", p]);
        }
        let o = self.run(&args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Where a cgroup path of systemd's (its namespace) is in the test's view.
    fn host_path(&self, path: &str) -> PathBuf {
        self.cg.join(path.trim_start_matches('/'))
    }
}

impl Drop for RealSystemd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        if self.pid > 0 {
            let _ = Command::new("kill")
                .args(["-s", "RTMIN+3", &self.pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!("systemd did not halt within 20 s: killing its PID namespace");
            if self.pid > 0 {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Whatever is left in the subtree (nothing, normally), then the directories.
        let _ = std::fs::write(self.cg.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(self.cg.join("cgroup.events"))
            .is_ok_and(|e| e.contains("populated 1"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        remove_tree(&self.cg);
        if self.cg.exists() {
            eprintln!("{} is left", self.cg.display());
        }
    }
}

/// Runs its closure when dropped (also while a failed assertion unwinds).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The limit files of a unit's cgroup.
fn read_files(dir: &Path) -> Vec<(String, String)> {
    [
        "memory.max",
        "memory.low",
        "pids.max",
        "cpu.weight",
        "cpu.max",
    ]
    .iter()
    .map(|f| {
        let v = std::fs::read_to_string(dir.join(f)).unwrap();
        (f.to_string(), v.trim().to_string())
    })
    .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What one runtime's container looked like under systemd.
#[derive(Debug, PartialEq)]
struct Seen {
    /// `systemctl show` properties, the unit's prefix replaced by `<prefix>`.
    props: std::collections::BTreeMap<String, String>,
    /// memory.max, pids.max, cpu.weight of the unit's cgroup.
    files: Vec<(String, String)>,
}

const PROPS: &[&str] = &[
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Transient",
    "Slice",
    "ControlGroup",
    "Delegate",
    "DelegateControllers",
    "DefaultDependencies",
    "CollectMode",
    "MemoryMax",
    "TasksMax",
    "CPUWeight",
    "CPUQuotaPerSecUSec",
    "CPUQuotaPeriodUSec",
    "MemoryLow",
    "MemoryAccounting",
    "TasksAccounting",
    "CPUAccounting",
    "IOAccounting",
];

/// runc 1.5.1 and peapod each create, inspect and delete a container with `--systemd-cgroup`
/// in a real systemd; both make the same scope unit (name, slice, cgroup, delegation), get the
/// same limits in its cgroup, and leave neither unit nor cgroup behind.
#[test]
fn real_systemd_runs_peapod_and_runc_scopes_alike() {
    if !root_ok() {
        return;
    }
    if !cgroup_v2() {
        // Not a skip that PEAPOD_MUST_WORK=1 fails: the test is for the pure v2 VM only.
        eprintln!(
            "not run here: needs a pure cgroup v2 host (the VM); on hybrid cgroups systemd in \
             a container needs v1 hierarchies of its own (see the module doc)"
        );
        return;
    }
    if !can_run("needs /lib/systemd/systemd", Path::new(SYSTEMD).exists())
        || !can_run(
            "needs /usr/bin/dbus-daemon",
            Path::new("/usr/bin/dbus-daemon").exists(),
        )
    {
        return;
    }
    let Some(runc) = crate::features_process::Runc::new() else {
        return;
    };
    let started = Instant::now();
    let sd = RealSystemd::start();
    eprintln!("systemd running after {:?}", started.elapsed());
    let slice_path = expand_slice(SLICE).unwrap();
    let mut seen = Vec::new();
    for (name, prefix) in [("runc", "ppsdrunc"), ("peapod", "ppsdpp")] {
        let id = unique(&format!("sdreal-{name}"));
        let b = Bundle::new(
            &["sleep", "600"],
            json!({"linux": {
                "cgroupsPath": format!("{SLICE}:{prefix}:{id}"),
                "resources": {
                    "memory": {"limit": 67108864, "reservation": 33554432},
                    "pids": {"limit": 64},
                    "cpu": {"shares": 2048, "quota": 25000, "period": 100000},
                },
            }}),
        );
        let bundle = b.path().to_str().unwrap();
        let oci = |args: &[&str]| {
            let mut c = match name {
                "runc" => runc.cmd(&["--systemd-cgroup"]),
                _ => b.cmd(&["--systemd-cgroup"]),
            };
            c.args(args);
            let o = captured(sd.enter(&c));
            assert!(o.status.success(), "{name} {args:?}: {}", text(&o));
            o
        };
        // On failure, delete the container inside the namespaces and drop its state, before
        // `Bundle` and `Runc` would try `delete --force` from outside (where its PIDs mean
        // other processes).
        let _cleanup = OnDrop(|| {
            let (mut c, state) = match name {
                "runc" => (runc.cmd(&[]), runc.root.path().join(&id)),
                _ => (b.cmd(&[]), b.state_root.join(&id)),
            };
            c.args(["--systemd-cgroup", "delete", "--force", &id]);
            if state.exists() {
                let _ = captured(sd.enter(&c));
                let _ = std::fs::remove_dir_all(&state);
            }
        });
        let unit = format!("{prefix}-{id}.scope");
        let cg_path = format!("{slice_path}/{unit}");
        oci(&["run", "-d", "--bundle", bundle, &id]);
        eprintln!("{name}: running after {:?}", started.elapsed());
        let dir = sd.host_path(&cg_path);
        // The container's init is in the unit's cgroup.
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert_eq!(
            procs.lines().count(),
            1,
            "{name}: {}: {procs:?}",
            dir.display()
        );
        if name == "peapod" {
            assert_eq!(b.cgroup_path(&id), cg_path);
        }
        // state, ps and events --stats work on it.
        let state: serde_json::Value =
            serde_json::from_slice(&oci(&["state", &id]).stdout).unwrap();
        assert_eq!(state["status"], "running", "{name}: {state}");
        let ps = String::from_utf8_lossy(&oci(&["ps", &id]).stdout).into_owned();
        assert!(ps.contains("sleep"), "{name} ps: {ps}");
        let stats = oci(&["events", "--stats", &id]);
        let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
        assert_eq!(
            stats["data"]["memory"]["usage"]["limit"], 67108864,
            "{name}: {stats}"
        );
        assert_eq!(stats["data"]["pids"]["limit"], 64, "{name}: {stats}");
        // The unit as systemd sees it.
        let mut props = sd.show(&unit, PROPS);
        assert_eq!(props["ActiveState"], "active", "{name}: {props:?}");
        assert_eq!(props["ControlGroup"], cg_path, "{name}: {props:?}");
        for v in props.values_mut() {
            *v = v.replace(prefix, "<prefix>").replace(&id, "<id>");
        }
        let files = read_files(&dir);
        eprintln!("{name}: {props:?} {files:?}");
        // update changes the unit's properties as well as the files. systemd rewrites the
        // unit's cgroup files from its properties (here on daemon-reload): the limits stay
        // only where they are unit properties too.
        eprintln!("{name}: checked after {:?}", started.elapsed());
        oci(&["update", "--memory", "134217728", "--pids-limit", "32", &id]);
        let o = sd.run(&["systemctl", "daemon-reload"]);
        assert!(o.status.success(), "{}", text(&o));
        let updated = sd.show(&unit, &["MemoryMax", "TasksMax"]);
        let mut want = files.clone();
        want[0].1 = "134217728".into();
        want[2].1 = "32".into();
        assert_eq!(
            read_files(&dir),
            want,
            "{name}: after update and daemon-reload ({updated:?})"
        );
        eprintln!("{name}: updated after {:?}", started.elapsed());
        assert_eq!(updated["MemoryMax"], "134217728", "{name}");
        assert_eq!(updated["TasksMax"], "32", "{name}");
        // exec joins the unit's cgroup; pause and resume freeze and thaw it.
        oci(&["exec", "-d", &id, "sleep", "600"]);
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert_eq!(procs.lines().count(), 2, "{name}: after exec: {procs:?}");
        for (verb, frozen) in [("pause", "frozen 1"), ("resume", "frozen 0")] {
            oci(&[verb, &id]);
            let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
            assert!(events.contains(frozen), "{name} {verb}: {events}");
        }
        seen.push(Seen { props, files });
        // delete stops the unit: systemd forgets it and its cgroup goes.
        eprintln!("{name}: exec/pause/resume after {:?}", started.elapsed());
        oci(&["delete", "--force", &id]);
        let gone = || {
            let o = sd.run(&[
                "busctl",
                "call",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "GetUnit",
                "s",
                &unit,
            ]);
            !o.status.success() && text(&o).contains("not loaded")
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone() {
            assert!(
                Instant::now() < deadline,
                "{name}: {unit} still loaded after delete: {:?}",
                sd.show(&unit, &["LoadState", "ActiveState"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = sd.run(&["systemctl", "status", "--no-pager", &unit]);
        assert_eq!(status.status.code(), Some(4), "{name}: {}", text(&status));
        assert!(!dir.exists(), "{name}: {} is left", dir.display());
        assert!(!b.state_root.join(&id).exists() || name == "runc");
        eprintln!("{name}: gone after {:?}", started.elapsed());
    }
    assert_eq!(
        seen[1].files,
        vec![
            ("memory.max".to_string(), "67108864".to_string()),
            ("memory.low".to_string(), "33554432".to_string()),
            ("pids.max".to_string(), "64".to_string()),
            (
                "cpu.weight".to_string(),
                peapod_oci::cgroups::shares_to_weight(2048).to_string()
            ),
            ("cpu.max".to_string(), "25000 100000".to_string()),
        ]
    );
    assert_eq!(seen[0], seen[1], "runc (left) and peapod (right) differ");
    // Halting systemd and removing its subtree leaves nothing.
    let cg = sd.cg.clone();
    drop(sd);
    assert!(!cg.exists(), "{} is left", cg.display());
    eprintln!("done after {:?}", started.elapsed());
}
