//! The systemd cgroup driver (`--systemd-cgroup`) against a **real systemd** (Debian's systemd
//! 252 from the host's filesystem), peapod and runc 1.5.1 side by side.
//!
//! Neither the host nor the test VM boots systemd, so the test starts one as a container
//! would: `/lib/systemd/systemd --system` as PID 1 of a new PID + mount + cgroup namespace,
//! with `container=peapod-test`, a tmpfs on `/run`, and one unit to start:
//! `peapod-test.target`, which wants `dbus.socket` and `dbus.service` (Debian's, with drop-ins
//! in `/run/systemd/system` that turn off their default dependencies, so nothing of
//! `sysinit.target` starts). Its cgroups are a subtree `ppsdreal-<pid>` the test makes below its
//! own cgroup in every hierarchy, the roots of the cgroup namespace: on pure v2 (the VM)
//! `/sys/fs/cgroup` is a cgroup2 mount of it; on a hybrid host (this machine) a tmpfs with each
//! v1 hierarchy (`name=systemd` too) and the unified one mounted as on the host, so systemd runs
//! in hybrid mode. The runtimes run inside those namespaces (`nsenter -m -p -C`, from a leaf
//! cgroup of the subtree so that systemd may move their processes) and reach that systemd
//! through `/run/dbus/system_bus_socket` and the `/run/systemd/system` mark, as on a systemd
//! host. The test waits for the private socket, then for `systemctl is-system-running --wait`.
//!
//! Teardown (also on failure): SIGRTMIN+3 (systemd's halt; in a container it exits), SIGKILL of
//! the namespace's PID 1 if it does not within 20 s, whatever is left in the subtrees is
//! killed, then their directories are removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use peapod_oci::cgroups::systemd::expand_slice;
use serde_json::json;

use crate::common::*;

const SYSTEMD: &str = "/lib/systemd/systemd";
const SLICE: &str = "ppsd-real.slice";

/// One cgroup hierarchy: where the test's subtree is and how systemd's namespace mounts it.
struct Hierarchy {
    /// The mount point's name below `/sys/fs/cgroup` (empty: pure v2, the whole mount).
    name: String,
    /// `-t cgroup -o OPTS` (v1), none for cgroup2.
    opts: Option<String>,
    /// The subtree in the test's view: `<mount>/<test's cgroup>/ppsdreal-<pid>`.
    subtree: PathBuf,
}

fn hierarchies() -> Vec<Hierarchy> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let leaf = format!("ppsdreal-{}", std::process::id());
    own.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            let (name, opts) = match ctl {
                "" if cgroup_v2() => (String::new(), None),
                "" => ("unified".to_string(), None),
                c if c.starts_with("name=") => (c[5..].to_string(), Some(format!("none,{c}"))),
                c => (c.to_string(), Some(c.to_string())),
            };
            let mount = Path::new("/sys/fs/cgroup").join(&name);
            mount.is_dir().then(|| Hierarchy {
                subtree: mount.join(path.trim_start_matches('/')).join(&leaf),
                name,
                opts,
            })
        })
        .collect()
}

/// What PID 1 of the new PID namespace runs: join the subtrees (`$JOIN`), enter a cgroup
/// namespace rooted there, mount them (`$MOUNT`) and what else systemd needs, and exec it. `$0` is
/// the test's directory (units to install, console log).
const BOOT: &str = r#"$JOIN exec unshare --cgroup sh -c '
umount -l /sys/fs/cgroup && $MOUNT &&
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run && mkdir -p /run/systemd/system &&
cp -r "$0/units/." /run/systemd/system/ &&
mount --bind "$0/console.log" /dev/console &&
exec env -i container=peapod-test /lib/systemd/systemd --system --unit=peapod-test.target \
  --log-target=console --log-level=info --show-status=no' "$0""#;

/// A systemd instance in namespaces of its own; stopped and its cgroups removed when dropped.
struct RealSystemd {
    hierarchies: Vec<Hierarchy>,
    dir: tempfile::TempDir,
    /// `unshare --fork`, the parent of systemd.
    child: Child,
    /// systemd's PID (in the test's PID namespace).
    pid: i32,
}

/// Makes a cgroup directory; a v1 cpuset one gets its parent's CPUs and memory nodes.
fn make_cgroup(dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if let Ok(v) = std::fs::read_to_string(dir.parent().unwrap().join(f))
            && dir.join("cgroup.clone_children").exists()
        {
            std::fs::write(dir.join(f), v.trim()).unwrap();
        }
    }
}

impl RealSystemd {
    fn start() -> RealSystemd {
        let hierarchies = hierarchies();
        let mut join = String::new();
        let mut mount = if cgroup_v2() {
            "mount -t cgroup2 cgroup2 /sys/fs/cgroup".to_string()
        } else {
            "mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup".to_string()
        };
        for h in &hierarchies {
            make_cgroup(&h.subtree);
            // The runtimes' own processes: a leaf beside systemd's tree in the cgroup2
            // hierarchy (nsdelegate lets systemd move a process only between cgroups below its
            // namespace root; v1 has no such rule, and systemd trims empty v1 cgroups there).
            if h.opts.is_none() {
                make_cgroup(&h.subtree.join("ppsd-clients"));
            }
            join += &format!("echo $$ > {}/cgroup.procs && ", h.subtree.display());
            if !h.name.is_empty() {
                let at = format!("/sys/fs/cgroup/{}", h.name);
                mount += &match &h.opts {
                    Some(o) => format!(" && mkdir {at} && mount -t cgroup -o {o} cgroup {at}"),
                    None => format!(" && mkdir {at} && mount -t cgroup2 cgroup2 {at}"),
                };
            }
        }
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
            "[Unit]\nDescription=peapod test\nDefaultDependencies=no\nWants=dbus.socket dbus.service\n\
             After=dbus.socket dbus.service\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("console.log"), "").unwrap();
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "--mount-proc"])
            .args(["--propagation", "private", "sh", "-c"])
            .arg(BOOT.replace("$JOIN", &join).replace("$MOUNT", &mount))
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start unshare");
        let mut sd = RealSystemd {
            hierarchies,
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
                "systemd is {state:?} ({}): {}; console: {}",
                text(&o),
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

    /// `c` inside systemd's mount, PID and cgroup namespaces, from the clients' cgroup2 cgroup.
    fn enter(&self, c: &Command) -> Command {
        let join: String = self
            .hierarchies
            .iter()
            .filter(|h| h.opts.is_none())
            .map(|h| {
                format!(
                    "echo $$ > {}/ppsd-clients/cgroup.procs && ",
                    h.subtree.display()
                )
            })
            .collect();
        let mut w = Command::new("sh");
        w.arg("-c")
            .arg(format!(
                "{join}exec nsenter -t {} -m -p -C -- \"$@\"",
                self.pid
            ))
            .arg("sh")
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

    /// Where a cgroup path of systemd's (its namespace) is in the test's view, in the
    /// hierarchy mounted at `/sys/fs/cgroup/<name>`.
    fn host_path(&self, name: &str, path: &str) -> PathBuf {
        let h = self.hierarchies.iter().find(|h| h.name == name).unwrap();
        h.subtree.join(path.trim_start_matches('/'))
    }

    /// Every hierarchy's directory of a cgroup path of systemd's.
    fn host_paths(&self, path: &str) -> Vec<PathBuf> {
        let names = self.hierarchies.iter().map(|h| h.name.clone());
        names.map(|n| self.host_path(&n, path)).collect()
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
        // Whatever is left in the subtrees (nothing, normally), then the directories.
        let deadline = Instant::now() + Duration::from_secs(10);
        for h in &self.hierarchies {
            while kill_all(&h.subtree) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            remove_tree(&h.subtree);
            if h.subtree.exists() {
                eprintln!("{} is left", h.subtree.display());
            }
        }
    }
}

/// SIGKILLs every process in the cgroup tree at `dir`; whether there was one.
fn kill_all(dir: &Path) -> bool {
    let mut any = false;
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        any = true;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                any |= kill_all(&e.path());
            }
        }
    }
    any
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

/// The limit files of a unit's cgroup (systemd's path `path`): memory limit and reservation,
/// pids limit, CPU weight (shares) and quota.
fn read_files(sd: &RealSystemd, path: &str) -> Vec<(String, String)> {
    let files: [(&str, &str); 7] = if cgroup_v2() {
        [
            ("", "memory.max"),
            ("", "memory.low"),
            ("", "pids.max"),
            ("", "cpu.weight"),
            ("", "cpu.max"),
            ("", "cpuset.cpus"),
            ("", "cpuset.mems"),
        ]
    } else {
        [
            ("memory", "memory.limit_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"),
            ("pids", "pids.max"),
            ("cpu", "cpu.shares"),
            ("cpu", "cpu.cfs_quota_us"),
            ("cpuset", "cpuset.cpus"),
            ("devices", "devices.list"),
        ]
    };
    files
        .iter()
        .map(|(h, f)| {
            let p = sd.host_path(h, path).join(f);
            let v = std::fs::read_to_string(&p).unwrap_or_else(|e| format!("{}: {e}", p.display()));
            // systemd rewrites devices.list in an order of its own: compare the rules as a set.
            let mut lines: Vec<&str> = v.trim().lines().collect();
            lines.sort_unstable();
            (f.to_string(), lines.join("\n"))
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
    /// The limit files of the unit's cgroup ([`read_files`]).
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
    "AllowedCPUs",
    "AllowedMemoryNodes",
    "MemoryLow",
    "MemoryLimit",
    "CPUShares",
    "MemoryAccounting",
    "TasksAccounting",
    "CPUAccounting",
    "IOAccounting",
];

/// runc 1.5.1 and peapod each create, inspect, update and delete a container with
/// `--systemd-cgroup` in a real systemd; both make the same scope unit (name, slice, cgroup,
/// delegation, limit properties), get the same limits in its cgroup (kept across
/// `daemon-reload`, which rewrites them from the unit's properties), and leave neither unit nor
/// cgroup behind.
#[test]
fn real_systemd_runs_peapod_and_runc_scopes_alike() {
    if !root_ok() {
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
                    "cpu": {"shares": 2048, "quota": 25000, "period": 100000,
                            "cpus": "0", "mems": "0"},
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
        // The unit's cgroup in the hierarchy systemd keeps its units in.
        let dir = sd.host_path(if cgroup_v2() { "" } else { "systemd" }, &cg_path);
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
        // (On the hybrid host runc's `ps` lists nothing: its v1 manager reads the pids of the
        // devices hierarchy, where this systemd makes the unit's cgroup but moves nothing.)
        assert!(
            ps.contains("sleep") || (name == "runc" && !cgroup_v2()),
            "{name} ps: {ps}; cgroup.procs: {:?}",
            sd.host_paths(&cg_path)
                .iter()
                .map(|d| (d.clone(), std::fs::read_to_string(d.join("cgroup.procs"))))
                .collect::<Vec<_>>()
        );
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
        let files = read_files(&sd, &cg_path);
        eprintln!("{name}: {props:?} {files:?}");
        // update changes the unit's properties as well as the files. systemd rewrites the
        // unit's cgroup files from its properties (here on daemon-reload): the limits stay
        // only where they are unit properties too.
        eprintln!("{name}: checked after {:?}", started.elapsed());
        oci(&["update", "--memory", "134217728", "--pids-limit", "32", &id]);
        let o = sd.run(&["systemctl", "daemon-reload"]);
        assert!(o.status.success(), "{}", text(&o));
        let mem_prop = if cgroup_v2() {
            "MemoryMax"
        } else {
            "MemoryLimit"
        };
        let updated = sd.show(&unit, &[mem_prop, "TasksMax"]);
        let mut want = files.clone();
        want[0].1 = "134217728".into();
        want[2].1 = "32".into();
        assert_eq!(
            read_files(&sd, &cg_path),
            want,
            "{name}: after update and daemon-reload ({updated:?})"
        );
        eprintln!("{name}: updated after {:?}", started.elapsed());
        assert_eq!(updated[mem_prop], "134217728", "{name}");
        assert_eq!(updated["TasksMax"], "32", "{name}");
        // exec joins the unit's cgroup; pause and resume freeze and thaw it.
        oci(&["exec", "-d", &id, "sleep", "600"]);
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert_eq!(procs.lines().count(), 2, "{name}: after exec: {procs:?}");
        let (freezer, file) = if cgroup_v2() {
            ("", "cgroup.events")
        } else {
            ("freezer", "freezer.state")
        };
        let freezer = sd.host_path(freezer, &cg_path).join(file);
        for (verb, v2, v1) in [
            ("pause", "frozen 1", "FROZEN"),
            ("resume", "frozen 0", "THAWED"),
        ] {
            oci(&[verb, &id]);
            let state = std::fs::read_to_string(&freezer).unwrap();
            assert!(
                state.contains(v2) || state.trim() == v1,
                "{name} {verb}: {state}"
            );
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
        for dir in sd.host_paths(&cg_path) {
            assert!(!dir.exists(), "{name}: {} is left", dir.display());
        }
        assert!(!b.state_root.join(&id).exists() || name == "runc");
        eprintln!("{name}: gone after {:?}", started.elapsed());
    }
    let weight = peapod_oci::cgroups::shares_to_weight(2048).to_string();
    let want: [(&str, &str); 5] = if cgroup_v2() {
        [
            ("memory.max", "67108864"),
            ("memory.low", "33554432"),
            ("pids.max", "64"),
            ("cpu.weight", &weight),
            ("cpu.max", "25000 100000"),
        ]
    } else {
        [
            ("memory.limit_in_bytes", "67108864"),
            ("memory.soft_limit_in_bytes", "33554432"),
            ("pids.max", "64"),
            ("cpu.shares", "2048"),
            ("cpu.cfs_quota_us", "25000"),
        ]
    };
    let want: Vec<_> = want
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    // The limits as set; the cpuset and device files are compared with runc's just below.
    assert_eq!(seen[1].files[..want.len()], want);
    assert_eq!(seen[0], seen[1], "runc (left) and peapod (right) differ");
    // Halting systemd and removing its subtree leaves nothing.
    let subtrees: Vec<PathBuf> = sd.hierarchies.iter().map(|h| h.subtree.clone()).collect();
    drop(sd);
    for cg in subtrees {
        assert!(!cg.exists(), "{} is left", cg.display());
    }
    eprintln!("done after {:?}", started.elapsed());
}
