//! Crash tests: `kill -9` of peapod verbs at random points leaves nothing that blocks the next command.
//!
//! OCI half (issue 12): `create`, `start`, `exec` and `delete` are each killed with SIGKILL at a
//! random moment within their usual duration, 50 times (20 under `PEAPOD_IN_VM`, where one
//! command takes about ten times longer), then `list` and `delete -f` must finish within a
//! deadline and leave no process, mount, cgroup or state directory of those ids. Every process
//! is recognised by a marker in its environment (the runtime's and the container's), so a
//! leftover forked stage is found as well as a container process. The random seed is printed.
//! Against main at 95bec7e the create test never finished: killed creates left orphaned inits
//! holding the state lock (an inherited flock), and `delete -f` of those ids blocked.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::oci::{cgroup_dirs, peapod_within, wait_until};
use crate::common::{Bundle, root_ok, unique};

fn iterations() -> usize {
    if std::env::var_os("PEAPOD_IN_VM").is_some() {
        20
    } else {
        50
    }
}

/// xorshift64*, seeded from the clock: enough to spread the kill points.
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("crash test {what}: seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// A bundle whose container runs `sleep 300` and carries `mark` in its environment; every
/// peapod command of the test carries it too.
struct Crash {
    b: Bundle,
    mark: String,
}

impl Crash {
    fn new(what: &str) -> Crash {
        let mark = format!("PEAPOD_CRASH_MARK={}", unique(what));
        let b = Bundle::new(
            &["sleep", "300"],
            json!({"process": {"env": ["PATH=/bin:/usr/bin", mark]}}),
        );
        Crash { b, mark }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.b.cmd(args);
        let (k, v) = self.mark.split_once('=').unwrap();
        c.env(k, v)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn create_args<'a>(&'a self, id: &'a str) -> Vec<&'a str> {
        vec!["create", "--bundle", self.b.path().to_str().unwrap(), id]
    }

    /// Run to completion within 30 s; true on success (the error is printed otherwise).
    fn run(&self, args: &[&str]) -> bool {
        let mut c = self.b.cmd(args);
        let (k, v) = self.mark.split_once('=').unwrap();
        c.env(k, v);
        let o = super::oci::output_within(c, 30)
            .unwrap_or_else(|| panic!("peapod {args:?} blocked for 30 s"));
        if !o.status.success() {
            eprintln!("peapod {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        o.status.success()
    }

    /// How long `args` usually takes (the slowest of three runs, after `prepare`).
    fn duration(&self, args: &dyn Fn(&str) -> Vec<String>, prepare: &dyn Fn(&str)) -> u64 {
        let mut worst = Duration::ZERO;
        // Named after the test's mark: tests running at once in one process (two threads on
        // the host) made the same `probe-0-PID`, whose default cgroup path the other's
        // `delete -f` then found owned by another root.
        let (_, test) = self.mark.split_once('=').unwrap();
        for i in 0..3 {
            let id = format!("{test}-probe{i}");
            prepare(&id);
            let a = args(&id);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let t = Instant::now();
            assert!(self.run(&a), "peapod {a:?} failed");
            worst = worst.max(t.elapsed());
            self.delete_force(&id);
        }
        worst.as_micros() as u64
    }

    /// Spawn `args`, SIGKILL it after `delay_us` (if it still runs).
    fn kill_after(&self, args: &[&str], delay_us: u64) {
        let mut child = self.cmd(args).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = child.kill();
        let _ = child.wait();
    }

    fn delete_force(&self, id: &str) {
        let o = peapod_within(&self.b.state_root, &["delete", "-f", id], 30);
        assert!(
            o.status.success(),
            "delete -f {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Processes whose environment carries the mark.
    fn marked(&self) -> Vec<i32> {
        let mark = self.mark.as_bytes();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark))
            })
            .filter(|pid| super::oci::alive(*pid))
            .collect()
    }

    /// `list` and `delete -f` of every id finish, then nothing of them is left.
    fn assert_clean(&self, ids: &[String]) {
        let o = peapod_within(&self.b.state_root, &["list", "-q"], 30);
        assert!(o.status.success());
        for id in ids {
            self.delete_force(id);
        }
        let o = peapod_within(&self.b.state_root, &["list", "-q"], 30);
        let listed = String::from_utf8_lossy(&o.stdout).into_owned();
        for id in ids {
            assert!(!listed.lines().any(|l| l == id), "{id} still listed");
            assert!(
                !self.b.state_root.join(id).exists(),
                "state directory of {id} left"
            );
        }
        wait_until("the killed commands' processes to be gone", 10, || {
            self.marked().is_empty()
        });
        for id in ids {
            assert!(
                cgroup_dirs(&format!("/peapod/{id}")).is_empty(),
                "cgroup of {id} left: {:?}",
                cgroup_dirs(&format!("/peapod/{id}"))
            );
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let bundle = self.b.path().to_str().unwrap();
        assert!(!mounts.contains(bundle), "a mount of {bundle} is left");
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| unique(&format!("{prefix}{i}"))).collect()
}

/// `kill -9` of `create` at random points.
#[test]
fn killed_create_at_random_points() {
    if !root_ok() {
        return;
    }
    let c = Crash::new("crash-create");
    let dur = c.duration(
        &|id| c.create_args(id).iter().map(|s| s.to_string()).collect(),
        &|_| {},
    );
    let mut rng = Rng::new("create");
    let ids = ids("cc", iterations());
    for id in &ids {
        c.kill_after(&c.create_args(id), rng.below(dur));
    }
    c.assert_clean(&ids);
}

/// `kill -9` of `start` at random points.
#[test]
fn killed_start_at_random_points() {
    if !root_ok() {
        return;
    }
    let c = Crash::new("crash-start");
    let dur = c.duration(&|id| vec!["start".into(), id.into()], &|id| {
        assert!(c.run(&c.create_args(id)));
    });
    let mut rng = Rng::new("start");
    let ids = ids("cs", iterations());
    for id in &ids {
        assert!(c.run(&c.create_args(id)), "create {id}");
        c.kill_after(&["start", id], rng.below(dur));
        // A start killed after it released the init must not make the next one wait: the
        // container counts as running then, and a second start is refused at once.
        let t = Instant::now();
        let _ = peapod_within(&c.b.state_root, &["start", id], 20);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "start waited {:?}",
            t.elapsed()
        );
    }
    c.assert_clean(&ids);
}

/// `kill -9` of `exec` at random points, all in one running container.
#[test]
fn killed_exec_at_random_points() {
    if !root_ok() {
        return;
    }
    let c = Crash::new("crash-exec");
    let id = unique("ce");
    assert!(c.run(&c.create_args(&id)));
    assert!(c.run(&["start", &id]));
    let exec = ["exec", id.as_str(), "sleep", "300"];
    let exec_d = ["exec", "-d", id.as_str(), "sleep", "300"];
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let t = Instant::now();
        assert!(c.run(&exec_d));
        worst = worst.max(t.elapsed());
    }
    let mut rng = Rng::new("exec");
    for _ in 0..iterations() {
        c.kill_after(&exec, rng.below(worst.as_micros() as u64));
        let o = peapod_within(&c.b.state_root, &["state", &id], 30);
        assert!(o.status.success(), "state after a killed exec");
    }
    c.assert_clean(&[id]);
}

/// `kill -9` of `delete -f` at random points.
#[test]
fn killed_delete_at_random_points() {
    if !root_ok() {
        return;
    }
    let c = Crash::new("crash-delete");
    let dur = c.duration(&|id| vec!["delete".into(), "-f".into(), id.into()], &|id| {
        assert!(c.run(&c.create_args(id)));
        assert!(c.run(&["start", id]));
    });
    let mut rng = Rng::new("delete");
    let ids = ids("cd", iterations());
    for id in &ids {
        assert!(c.run(&c.create_args(id)), "create {id}");
        assert!(c.run(&["start", id]), "start {id}");
        c.kill_after(&["delete", "-f", id], rng.below(dur));
    }
    c.assert_clean(&ids);
}

// =====================================================================================
// Pods (sec-pod): `pod run` and `pod rm -f` killed at random points.
// =====================================================================================

mod pods {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use crate::common::*;
    use crate::pods::nothing_left;

    /// A small xorshift generator: random kill points without a dependency.
    struct Rng(u64);

    impl Rng {
        fn new() -> Rng {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1;
            eprintln!("kill points seeded with {seed}");
            Rng(seed)
        }
        fn below(&mut self, max: Duration) -> Duration {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            Duration::from_micros(self.0 % (max.as_micros() as u64).max(1))
        }
    }

    /// Start `args`, SIGKILL it after `after` (if it is still running), reap it.
    fn kill_after(p: &Peapod, args: &[&str], after: Duration) {
        let mut child = p
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// After a kill: `pod ls` answers, `pod rm -f` succeeds (or finds nothing), and nothing
    /// of the pod is left.
    fn clean_up_and_check(p: &Peapod, cg: &str, what: &str) {
        // Shown only when the test fails.
        eprintln!("after {what}");
        let ls = p.cmd(&["pod", "ls"]);
        assert!(ls.status.success(), "{what}: pod ls failed: {ls:?}");
        let rm = p.cmd(&["pod", "rm", "-f", "crash"]);
        let err = String::from_utf8_lossy(&rm.stderr);
        assert!(
            rm.status.success() || err.contains("not found"),
            "{what}: pod rm -f failed: {err}"
        );
        nothing_left(p.root.path(), "crash", cg);
    }

    /// kill -9 of `pod run` and of `pod rm -f` at random moments, 50 times each (15 in the VM,
    /// where a pod start takes about ten times longer and a test has 300 s; 35 s on the host,
    /// about 100 s in the VM): afterwards
    /// `pod ls` works and `pod rm -f` leaves nothing of the pod, neither process, mount,
    /// cgroup nor state directory.
    /// Checked against main: within the first kills, a `pod run` killed after its fork left a
    /// supervisor that went on starting the pod after `pod rm -f` had removed the directory
    /// (it had no record yet to be found by), so processes were left.
    #[test]
    fn pod_run_and_rm_killed_at_random_points_leave_nothing() {
        if !root_ok() {
            return;
        }
        let p = Peapod::new();
        let yaml = "kind: Pod\napiVersion: v1\nmetadata: {name: crash}\nspec:\n  volumes: [{name: m, emptyDir: {medium: Memory}}]\n  containers: [{name: c, image: host, command: [sleep, \"1000\"], volumeMounts: [{name: m, mountPath: /m}]}]\n";
        let m = p.manifest("crash", yaml);
        let run = ["pod", "run", m.to_str().unwrap()];
        // The pod cgroup depends on the root and the name only: learn it from one clean run,
        // and how long a run and a removal take, to spread the kill points over them.
        let t = Instant::now();
        p.ok(&run);
        let t_run = t.elapsed();
        let cg = p.cgroup("crash");
        let t = Instant::now();
        p.ok(&["pod", "rm", "-f", "crash"]);
        let t_rm = t.elapsed();
        nothing_left(p.root.path(), "crash", &cg);
        let n = if std::env::var_os("PEAPOD_IN_VM").is_some() {
            15
        } else {
            50
        };
        let mut rng = Rng::new();
        let started = Instant::now();
        for i in 0..n {
            let at = rng.below(t_run * 5 / 4);
            kill_after(&p, &run, at);
            clean_up_and_check(&p, &cg, &format!("pod run killed after {at:?} (#{i})"));
        }
        for i in 0..n {
            p.ok(&run);
            let at = rng.below(t_rm * 5 / 4);
            kill_after(&p, &["pod", "rm", "-f", "crash"], at);
            clean_up_and_check(&p, &cg, &format!("pod rm -f killed after {at:?} (#{i})"));
        }
        eprintln!(
            "{n} + {n} kills in {:?} (run {t_run:?}, rm {t_rm:?})",
            started.elapsed()
        );
    }
}
