//! Newer runtime-spec process settings (issue 13, section 3): personality, memory policy,
//! scheduler, io priority and exec CPU affinity, each compared with runc 1.5.1 on the same
//! bundle (runc 1.1 knows none of them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use crate::common::*;

/// runc 1.5.1 from `shared/tools` beside the repository (any ancestor's).
pub fn runc_151() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/tools/runc-1.5.1"))
        .find(|p| p.exists())
}

/// runc with a state root of its own; containers left behind are deleted on drop.
pub struct Runc {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
}

impl Runc {
    pub fn new() -> Option<Runc> {
        let ok = can_run(
            "needs runc 1.5.1 in shared/tools beside the repository",
            runc_151().is_some(),
        );
        ok.then(|| Runc {
            bin: runc_151().unwrap(),
            root: tempfile::Builder::new()
                .prefix("pp-runc")
                .tempdir()
                .unwrap(),
        })
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        captured(self.cmd(args))
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.root.path()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.out(&["delete", "--force", &id]);
            }
        }
    }
}

fn text(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `run` the bundle in the foreground with peapod and with runc.
fn run_both(b: &Bundle, runc: &Runc) -> [(Option<i32>, String, String); 2] {
    let bundle = b.path().to_str().unwrap();
    let ours = b.out(&["run", "--bundle", bundle, &unique("feat")]);
    let theirs = runc.out(&["run", "--bundle", bundle, &unique("featr")]);
    [text(&ours), text(&theirs)]
}

const PROBE: &str = "cat /proc/self/personality; uname -m; \
    head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2; \
    cut -d ' ' -f 19,41 /proc/self/stat; ionice";

#[test]
fn features_process_settings_match_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let b = Bundle::new(
        &["sh", "-c", PROBE],
        json!({
            "process": {
                "scheduler": {"policy": "SCHED_BATCH", "nice": 7},
                "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 3},
            },
            "linux": {
                "personality": {"domain": "LINUX32"},
                "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "0"},
            },
        }),
    );
    let [ours, theirs] = run_both(&b, &runc);
    assert_eq!(ours.0, Some(0), "peapod: {}", ours.2);
    assert_eq!(theirs.0, Some(0), "runc: {}", theirs.2);
    let lines: Vec<&str> = ours.1.lines().collect();
    // PER_LINUX32; nice 7 and policy 3 (SCHED_BATCH) in /proc/self/stat; the idle io class.
    assert_eq!(lines[0], "00000008", "{}", ours.1);
    assert_eq!(lines[2], "interleave:0");
    assert_eq!(lines[3], "7 3");
    assert_eq!(lines[4], "idle");
    assert_eq!(ours.1, theirs.1, "the process differs from runc's");

    // Without the settings: the defaults, as runc.
    let b = Bundle::new(&["sh", "-c", PROBE], json!({}));
    let [ours, theirs] = run_both(&b, &runc);
    assert_eq!(ours.0, Some(0), "peapod: {}", ours.2);
    assert!(ours.1.starts_with("00000000\n"), "{}", ours.1);
    assert_eq!(ours.1, theirs.1, "the default process differs from runc's");
}

/// runc ignores `linux.personality.flags` (with a warning); peapod applies them.
#[test]
fn features_personality_flags_are_applied() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &["cat", "/proc/self/personality"],
        json!({"linux": {"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}}),
    );
    let (code, out, err) = b.run(&unique("pers"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "00040000");
    let b = Bundle::new(
        &["true"],
        json!({"linux": {"personality": {"domain": "LINUX", "flags": ["NO_SUCH_FLAG"]}}}),
    );
    let (code, _, err) = b.run(&unique("pers"));
    assert_ne!(code, 0);
    assert!(
        // stderr holds runc's logrus line, where the quotes are escaped.
        err.contains(r#"unknown personality flag \"NO_SUCH_FLAG\""#),
        "{err}"
    );
}

/// Invalid values fail before the container exists, with runc's message.
#[test]
fn features_invalid_values_are_refused_like_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let cases = [
        (
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "3-1"}}}),
            "invalid memory policy nodes \"3-1\": invalid range: 3-1",
        ),
        (
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-5000"}}}),
            "values larger than 1023 are not supported",
        ),
        (
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": ""}}}),
            "memory policy mode requires at least one node but got 0",
        ),
        (
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": "0-7"}}}),
            "memory policy mode requires 0 nodes but got 8",
        ),
        (
            json!({"process": {"scheduler": {"policy": "SCHED_OTHER", "nice": 30}}}),
            "invalid scheduler.nice: 30 when scheduler.policy is SCHED_OTHER",
        ),
        (
            json!({"process": {"scheduler": {"policy": "SCHED_BATCH", "priority": 3}}}),
            "scheduler.priority can only be specified for SchedFIFO or SchedRR policy",
        ),
        (
            json!({"process": {"scheduler": {"policy": "SCHED_FIFO", "runtime": 5}}}),
            "scheduler runtime/deadline/period can only be specified for SchedDeadline policy",
        ),
        (
            json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}}),
            "invalid ioPriority.Priority: 9",
        ),
        (
            json!({"process": {"execCPUAffinity": {"initial": "3-1"}}}),
            "bad CPUAffinity.Initial",
        ),
    ];
    for (patch, msg) in cases {
        let b = Bundle::new(&["true"], patch.clone());
        let [ours, theirs] = run_both(&b, &runc);
        assert_ne!(ours.0, Some(0), "{patch}");
        assert_ne!(theirs.0, Some(0), "{patch}");
        // Both logs quote the message as logrus does (`msg="... \"3-1\" ..."`).
        let runc_msg = theirs.2.replace("\\\"", "\"");
        assert!(runc_msg.contains(msg), "runc for {patch}: {}", theirs.2);
        let our_msg = ours.2.replace("\\\"", "\"");
        assert!(our_msg.contains(msg), "peapod for {patch}: {}", ours.2);
        assert!(
            std::fs::read_dir(&b.state_root).map_or(true, |mut d| d.next().is_none()),
            "a refused create left state behind"
        );
    }
}

/// `execCPUAffinity.final` applies to an exec'd process (and not to the init), as runc.
#[test]
fn features_exec_cpu_affinity_matches_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let last = online.trim().rsplit([',', '-']).next().unwrap().to_string();
    let probe = ["grep", "Cpus_allowed_list", "/proc/self/status"];
    let b = Bundle::new(
        &["sleep", "1000"],
        json!({"process": {"execCPUAffinity": {"initial": "0", "final": last}}}),
    );
    let bundle = b.path().to_str().unwrap();
    let (id, rid) = (unique("aff"), unique("affr"));
    b.ok(&["run", "--detach", "--bundle", bundle, &id]);
    let o = runc.out(&["run", "--detach", "--bundle", bundle, &rid]);
    assert!(o.status.success(), "runc: {}", text(&o).2);
    let mut p = b.config()["process"].clone();
    p["args"] = json!(probe);
    let proc_json = b.path().join("proc.json");
    std::fs::write(&proc_json, p.to_string()).unwrap();
    let pj = proc_json.to_str().unwrap();
    let ours = b.ok(&["exec", "--process", pj, &id]);
    let theirs = runc.out(&["exec", "--process", pj, &rid]);
    assert_eq!(ours.trim(), format!("Cpus_allowed_list:\t{last}"));
    assert_eq!(ours, text(&theirs).1, "exec affinity differs from runc's");
    // The init keeps the kernel's affinity (all online cpus here), in both.
    let init = b.ok(&["exec", &id, "grep", "Cpus_allowed_list", "/proc/1/status"]);
    let rinit = runc.out(&["exec", &rid, "grep", "Cpus_allowed_list", "/proc/1/status"]);
    assert_eq!(init, text(&rinit).1);
    assert_eq!(
        init.trim(),
        format!("Cpus_allowed_list:\t{}", online.trim())
    );
}

/// A container does not inherit the CPU affinity of whoever ran the runtime (`taskset`): runc
/// 1.2+ widens the init's to every CPU of its cgroup, and an exec'd process's too unless it names
/// `execCPUAffinity.initial`. Run both runtimes pinned to CPU 0 and compare.
#[test]
fn features_cpu_affinity_is_reset_like_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let b = Bundle::new(&["sleep", "1000"], json!({}));
    let bundle = b.path().to_str().unwrap();
    let pinned = |bin: &Path, root: &Path, args: &[&str]| {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"])
            .arg(bin)
            .arg("--root")
            .arg(root)
            .args(args);
        captured(c)
    };
    let ours = (oci_bin(), b.state_root.clone(), unique("cpuaff"));
    let theirs = (
        runc.bin.clone(),
        runc.root.path().to_path_buf(),
        unique("cpuaffr"),
    );
    let mut seen = Vec::new();
    for (bin, root, id) in [&ours, &theirs] {
        let o = pinned(bin, root, &["run", "--detach", "--bundle", bundle, id]);
        assert!(o.status.success(), "{bin:?} run: {}", text(&o).2);
        let init = pinned(
            bin,
            root,
            &["exec", id, "grep", "Cpus_allowed", "/proc/1/status"],
        );
        let exec = pinned(
            bin,
            root,
            &["exec", id, "grep", "Cpus_allowed", "/proc/self/status"],
        );
        let mut p = b.config()["process"].clone();
        p["args"] = json!(["grep", "Cpus_allowed_list", "/proc/self/status"]);
        p["execCPUAffinity"] = json!({"initial": "0"});
        let pj = b.path().join(format!("proc-{id}.json"));
        std::fs::write(&pj, p.to_string()).unwrap();
        let initial = pinned(bin, root, &["exec", "--process", pj.to_str().unwrap(), id]);
        for o in [&init, &exec, &initial] {
            assert!(o.status.success(), "{bin:?} exec: {}", text(o).2);
        }
        seen.push((text(&init).1, text(&exec).1, text(&initial).1));
    }
    assert_eq!(
        seen[0], seen[1],
        "peapod's affinities (left) differ from runc's"
    );
    let want = format!("Cpus_allowed_list:\t{}", online.trim());
    assert!(seen[0].0.contains(&want), "init: {:?}", seen[0].0);
    assert!(seen[0].1.contains(&want), "exec: {:?}", seen[0].1);
}
