//! The errors containerd's shim, podman and scripts parse, differentially against runc
//! 1.5.1: the same command on a container in the same state must give the same exit status,
//! and peapod's `--log` message must end with runc's (runc's own "exec failed: " and
//! "runc create failed: " prefixes aside; peapod's context names the verb and the id first).
//! Each message has its own test. Checked against a peapod with the old wording ("cannot kill
//! container `ID`: it is stopped"): the not-running and kill --all tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::*;

fn runc15() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        repo.join("../shared/tools/runc-1.5.1"),
        PathBuf::from("/work/shared/tools/runc-1.5.1"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// One runtime with its own state root and log file.
struct Rt {
    bin: PathBuf,
    root: tempfile::TempDir,
    log: PathBuf,
}

impl Rt {
    fn new(bin: PathBuf) -> Rt {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log.json");
        Rt { bin, root, log }
    }

    /// Exit status and the last `msg` of the JSON log (empty on success).
    fn call(&self, args: &[&str]) -> (i32, String) {
        let _ = std::fs::remove_file(&self.log);
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.root.path().join("s"))
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"])
            .args(args);
        let o = captured(c);
        let msg = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error")
            .filter_map(|v| v["msg"].as_str().map(str::to_string))
            .next_back()
            .unwrap_or_default();
        (o.status.code().unwrap_or(-1), msg)
    }
}

/// Both runtimes, one bundle, one container id each.
struct Pair {
    bundle: Bundle,
    rts: [(Rt, String); 2],
}

impl Pair {
    fn new(pid_ns: bool) -> Option<Pair> {
        if !root_ok() || !can_run("needs ../shared/tools/runc-1.5.1", runc15().is_some()) {
            return None;
        }
        let bundle = Bundle::new(&["sleep", "1000"], json!({}));
        if !pid_ns {
            let mut v = bundle.config();
            let ns: Vec<serde_json::Value> = v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["type"] != "pid")
                .cloned()
                .collect();
            v["linux"]["namespaces"] = ns.into();
            bundle.write_config(&v);
        }
        // One id per pair: tests run in parallel threads of one process, and a container's
        // default cgroup is `/ID`, so an id shared by two tests shares (and fills) one cgroup.
        static PAIRS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PAIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Pair {
            rts: [
                (Rt::new(runc15().unwrap()), unique(&format!("rerr-runc{n}"))),
                (Rt::new(bin()), unique(&format!("rerr-pp{n}"))),
            ],
            bundle,
        })
    }

    /// Run `args` (ID replaced by each runtime's id) on both, asserting success.
    fn both_ok(&self, args: &[&str]) {
        for (rt, id) in &self.rts {
            let a: Vec<&str> = args
                .iter()
                .map(|a| if *a == "ID" { id.as_str() } else { *a })
                .collect();
            let (code, msg) = rt.call(&a);
            assert_eq!(code, 0, "{} {a:?}: {msg}", rt.bin.display());
        }
    }

    fn create(&self) {
        let b = self.bundle.path().to_str().unwrap().to_string();
        self.both_ok(&["create", "--bundle", &b, "ID"]);
    }

    fn stopped(&self) {
        self.create();
        self.both_ok(&["start", "ID"]);
        self.both_ok(&["kill", "ID", "KILL"]);
        for (rt, id) in &self.rts {
            let d = std::time::Instant::now();
            loop {
                let mut c = Command::new(&rt.bin);
                c.arg("--root")
                    .arg(rt.root.path().join("s"))
                    .args(["state", id]);
                let out = String::from_utf8_lossy(&captured(c).stdout).into_owned();
                if out.contains("\"stopped\"") {
                    break;
                }
                assert!(d.elapsed().as_secs() < 10, "{id} did not stop: {out}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Same exit status; peapod's message ends with runc's (`want` checks runc's text, so a
    /// change in the reference shows up here too).
    fn same(&self, args: &[&str], want: &str) {
        let mut got = Vec::new();
        for (rt, id) in &self.rts {
            let a: Vec<&str> = args
                .iter()
                .map(|a| if *a == "ID" { id.as_str() } else { *a })
                .collect();
            got.push(rt.call(&a));
        }
        let (runc, ours) = (&got[0], &got[1]);
        assert_eq!(
            runc.0, ours.0,
            "{args:?}: exit status: runc {runc:?}, peapod {ours:?}"
        );
        let theirs = runc
            .1
            .trim_start_matches("exec failed: ")
            .trim_start_matches("runc create failed: ")
            .replace(&self.rts[0].1, &self.rts[1].1);
        assert_eq!(
            theirs,
            want.replace("{id}", &self.rts[1].1),
            "runc's message changed"
        );
        assert!(
            ours.1.ends_with(&theirs),
            "{args:?}: peapod said {:?}, runc {:?}",
            ours.1,
            runc.1
        );
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for (rt, id) in &self.rts {
            let _ = rt.call(&["resume", id]);
            let _ = rt.call(&["delete", "--force", id]);
        }
    }
}

#[test]
fn does_not_exist() {
    let Some(p) = Pair::new(true) else { return };
    for verb in ["kill", "delete", "start", "state", "pause", "resume", "ps"] {
        let mut args = vec![verb, "ID"];
        if verb == "kill" {
            args.push("9");
        }
        p.same(&args, "container does not exist");
    }
}

#[test]
fn exec_does_not_exist_exits_255() {
    let Some(p) = Pair::new(true) else { return };
    p.same(&["exec", "ID", "true"], "container does not exist");
}

#[test]
fn already_exists() {
    let Some(p) = Pair::new(true) else { return };
    p.create();
    let b = p.bundle.path().to_str().unwrap().to_string();
    p.same(
        &["create", "--bundle", &b, "ID"],
        "container with given ID already exists",
    );
}

#[test]
fn kill_of_a_stopped_container_is_not_running() {
    let Some(p) = Pair::new(true) else { return };
    p.stopped();
    p.same(&["kill", "ID", "9"], "container not running");
    p.same(&["kill", "ID", "TERM"], "container not running");
    p.same(&["pause", "ID"], "container not running");
    p.same(
        &["update", "--memory", "100000000", "ID"],
        "container not running",
    );
}

/// containerd deletes an exited task with `kill --all ID 9`: runc succeeds.
#[test]
fn kill_all_of_a_stopped_container_succeeds() {
    let Some(p) = Pair::new(true) else { return };
    p.stopped();
    p.same(&["kill", "--all", "ID", "9"], "");
    p.same(&["kill", "-a", "ID", "TERM"], "");
}

/// Without a pid namespace SIGKILL goes to the whole cgroup, stopped or not.
#[test]
fn sigkill_of_a_stopped_container_without_pid_ns_succeeds() {
    let Some(p) = Pair::new(false) else { return };
    p.stopped();
    p.same(&["kill", "ID", "KILL"], "");
    p.same(&["kill", "ID", "TERM"], "container not running");
}

#[test]
fn stopped_container_refusals() {
    let Some(p) = Pair::new(true) else { return };
    p.stopped();
    p.same(
        &["start", "ID"],
        "cannot start a container that has stopped",
    );
    p.same(
        &["exec", "ID", "true"],
        "cannot exec in a stopped container",
    );
    p.same(&["resume", "ID"], "container not paused");
    p.same(&["delete", "ID"], "");
}

#[test]
fn running_container_refusals() {
    let Some(p) = Pair::new(true) else { return };
    p.create();
    p.same(&["resume", "ID"], "container not paused");
    p.both_ok(&["start", "ID"]);
    p.same(
        &["start", "ID"],
        "cannot start an already running container",
    );
    p.same(
        &["delete", "ID"],
        "cannot delete container {id} that is not stopped: running",
    );
}

#[test]
fn paused_container_refusals() {
    let Some(p) = Pair::new(true) else { return };
    p.create();
    p.both_ok(&["start", "ID"]);
    p.both_ok(&["pause", "ID"]);
    p.same(&["pause", "ID"], "container not running");
    p.same(
        &["start", "ID"],
        "cannot start a container in the paused state",
    );
    p.same(
        &["exec", "ID", "true"],
        "cannot exec in a paused container (use --ignore-paused to override)",
    );
    p.same(
        &["delete", "ID"],
        "cannot delete container {id} that is not stopped: paused",
    );
    p.same(&["kill", "ID", "TERM"], "");
}

/// runc pauses and resumes a created container.
#[test]
fn pause_of_a_created_container() {
    let Some(p) = Pair::new(true) else { return };
    p.create();
    p.same(&["pause", "ID"], "");
    p.same(&["resume", "ID"], "");
}

/// A bundle's config.json refused before anything is made: a missing file, a truncated one,
/// and the process and root fields runc requires, each with runc's words and status. Before,
/// peapod said "No such file or directory", serde's "EOF while parsing", "process is
/// required", "root is required".
#[test]
fn config_json_refusals() {
    let Some(p) = Pair::new(true) else { return };
    let b = p.bundle.path().to_str().unwrap().to_string();
    let good = p.bundle.config();
    type Patch = dyn Fn(&mut serde_json::Value);
    let cases: [(&Patch, &str); 5] = [
        (
            &|v| drop(v.as_object_mut().unwrap().remove("process")),
            "process property must not be empty",
        ),
        (
            &|v| drop(v["process"].as_object_mut().unwrap().remove("cwd")),
            "Cwd property must not be empty",
        ),
        (
            &|v| v["process"]["cwd"] = "rel".into(),
            "Cwd must be an absolute path",
        ),
        (
            &|v| v["process"]["args"] = serde_json::json!([]),
            "args must not be empty",
        ),
        (
            &|v| drop(v.as_object_mut().unwrap().remove("root")),
            "root must be specified",
        ),
    ];
    for (patch, want) in cases {
        let mut v = good.clone();
        patch(&mut v);
        p.bundle.write_config(&v);
        p.same(&["create", "--bundle", &b, "ID"], want);
    }
    let cfg = p.bundle.path().join("config.json");
    std::fs::write(&cfg, "{\"ociVersion\":\n").unwrap();
    p.same(&["create", "--bundle", &b, "ID"], "unexpected EOF");
    std::fs::remove_file(&cfg).unwrap();
    p.same(
        &["create", "--bundle", &b, "ID"],
        "JSON specification file config.json not found",
    );
}

/// runc runs a config.json whose process has no `user` as uid 0; peapod refused it before
/// ("missing field `user`").
#[test]
fn a_config_without_user_is_created_as_by_runc() {
    let Some(p) = Pair::new(true) else { return };
    let mut v = p.bundle.config();
    v["process"].as_object_mut().unwrap().remove("user");
    p.bundle.write_config(&v);
    p.create();
    p.same(&["start", "ID"], "");
}
