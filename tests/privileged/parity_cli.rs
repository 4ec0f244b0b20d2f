//! The command line as scripts and tools parse it, differentially against runc 1.5.1: `events`
//! (`--stats` shape, OOM events, `--interval`), `--debug` and `--log-format` lines,
//! `--version` lines, `list` with a missing or empty `--root`, `update` flag parsing and
//! `ociVersion` values. The OCI verbs run through `oci_bin()` (`peapod-runc`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

fn need_runc() -> Option<PathBuf> {
    if !root_ok() || !can_run("needs ../shared/tools/runc-1.5.1", runc15().is_some()) {
        return None;
    }
    runc15()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `time="..."` (text) and `"time":"..."` (JSON) replaced by a constant.
fn untimed(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let mut l = line.to_string();
        for (start, end) in [("time=\"", "\""), ("\"time\":\"", "\"")] {
            if let Some(i) = l.find(start) {
                let from = i + start.len();
                if let Some(j) = l[from..].find(end) {
                    l.replace_range(from..from + j, "T");
                }
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// A logrus text line: `time="RFC3339" level=LEVEL msg=VALUE` (VALUE quoted unless it is
/// made of logrus' bare characters), optionally followed by more `key=value` fields.
fn is_logrus_line(l: &str) -> bool {
    let Some(rest) = l.strip_prefix("time=\"") else {
        return false;
    };
    let Some((time, rest)) = rest.split_once("\" level=") else {
        return false;
    };
    if humantime::parse_rfc3339(time).is_err() {
        return false;
    }
    let Some((level, msg)) = rest.split_once(" msg=") else {
        return false;
    };
    ["debug", "info", "warning", "error", "fatal"].contains(&level) && !msg.is_empty()
}

/// One runtime with its own state root.
struct Rt {
    name: &'static str,
    bin: PathBuf,
    root: tempfile::TempDir,
}

impl Rt {
    fn pair(runc: PathBuf) -> [Rt; 2] {
        let mk = |name, bin| Rt {
            name,
            bin,
            root: tempfile::Builder::new().prefix("pp-cli").tempdir().unwrap(),
        };
        [mk("runc", runc), mk("peapod", oci_bin())]
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        captured(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "{} {args:?}: {}{}",
            self.name,
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    fn stats(&self, id: &str) -> Value {
        let out = self.ok(&["events", "--stats", id]);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{}: {e}: {out}", self.name))
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.root.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().is_dir() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.out(&["delete", "--force", &id]);
            }
        }
    }
}

/// A bundle running `sleep 1000` with memory and pids limits, created and started on both.
fn running_pair(tag: &str, patch: Value) -> Option<(Bundle, [Rt; 2], String)> {
    let runc = need_runc()?;
    let mut p = json!({"linux": {"resources": {
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 100}
    }}});
    merge(&mut p, patch);
    let b = Bundle::new(&["sleep", "1000"], p);
    let rts = Rt::pair(runc);
    let id = unique(tag);
    for rt in &rts {
        rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    }
    Some((b, rts, id))
}

#[test]
fn version_lines_have_runcs_shape() {
    let Some(runc) = need_runc() else { return };
    let lines = |bin: &Path| -> Vec<String> {
        let o = captured({
            let mut c = Command::new(bin);
            c.arg("--version");
            c
        });
        assert!(o.status.success(), "{}: {}", bin.display(), text(&o.stderr));
        text(&o.stdout).lines().map(str::to_string).collect()
    };
    let want = lines(&runc);
    let keys = |l: &[String]| -> Vec<String> {
        l[1..]
            .iter()
            .map(|l| {
                l.split_once(": ")
                    .map(|(k, _)| k.to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(
        keys(&want),
        ["commit", "spec", "go", "libseccomp"],
        "{want:?}"
    );
    for bin in [oci_bin(), bin()] {
        let got = lines(&bin);
        assert_eq!(got.len(), want.len(), "{got:?} vs runc {want:?}");
        // go-runc (containerd) reads the version only after "runc version ".
        let v = got[0].strip_prefix("runc version ").unwrap_or_default();
        assert!(
            !v.is_empty() && !v.contains(' ') && v.contains("peapod"),
            "{got:?}"
        );
        assert_eq!(
            keys(&got),
            ["commit", "spec", "rust", "libseccomp"],
            "{got:?}"
        );
        let value = |i: usize| got[i].split_once(": ").unwrap().1.to_string();
        let commit = value(1);
        assert!(
            commit == "unknown"
                || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{commit}"
        );
        let dotted =
            |s: &str| s.split('.').count() == 3 && s.split('.').all(|n| n.parse::<u32>().is_ok());
        assert!(dotted(&value(2)), "spec: {got:?}");
        assert!(value(3).starts_with("rustc 1."), "rust: {got:?}");
        assert!(dotted(&value(4)), "libseccomp: {got:?}");
    }
}

#[test]
fn list_with_a_missing_root_is_runcs() {
    let Some(runc) = need_runc() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    for args in [
        &["list"][..],
        &["list", "--format", "json"],
        &["list", "-q"],
    ] {
        let mut got = Vec::new();
        for bin in [&runc, &oci_bin()] {
            let mut c = Command::new(bin);
            c.arg("--root").arg(&missing).args(args);
            let o = captured(c);
            got.push((o.status.code(), text(&o.stdout), untimed(&text(&o.stderr))));
        }
        assert_eq!(got[0].0, Some(1), "{args:?}: {got:?}");
        assert_eq!(got[1], got[0], "{args:?}: peapod vs runc");
        assert!(!missing.exists(), "{args:?} created the root");
    }
}

#[test]
fn list_of_no_containers_is_runcs() {
    let Some(runc) = need_runc() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["list"][..],
        &["list", "--format", "json"],
        &["list", "-q"],
    ] {
        let got: Vec<_> = [&runc, &oci_bin()]
            .into_iter()
            .map(|bin| {
                let mut c = Command::new(bin);
                c.arg("--root").arg(tmp.path()).args(args);
                let o = captured(c);
                (o.status.code(), text(&o.stdout), text(&o.stderr))
            })
            .collect();
        assert_eq!(got[0].0, Some(0), "{args:?}: {got:?}");
        assert_eq!(got[1], got[0], "{args:?}: peapod vs runc");
    }
}

#[test]
fn debug_and_log_format_lines_are_runcs() {
    let Some(runc) = need_runc() else { return };
    let b = Bundle::new(&["sleep", "1000"], json!({}));
    let rts = Rt::pair(runc);
    let bundle = b.path().to_str().unwrap();
    for rt in &rts {
        let log = rt.root.path().join("debug.log");
        // --log FILE, text: every line a logrus line, some of them debug.
        let id = unique("dbg-text");
        let l = log.to_str().unwrap();
        rt.ok(&["--debug", "--log", l, "create", "--bundle", bundle, &id]);
        let t = std::fs::read_to_string(&log).unwrap();
        assert!(t.lines().all(is_logrus_line), "{}: {t}", rt.name);
        assert!(
            t.lines().any(|l| l.contains(" level=debug ")),
            "{}: {t}",
            rt.name
        );
        rt.ok(&["delete", "--force", &id]);
        // --log-format json: JSON objects with string level, msg and time.
        std::fs::remove_file(&log).unwrap();
        let id = unique("dbg-json");
        rt.ok(&[
            "--debug",
            "--log",
            l,
            "--log-format",
            "json",
            "create",
            "--bundle",
            bundle,
            &id,
        ]);
        let t = std::fs::read_to_string(&log).unwrap();
        for line in t.lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", rt.name));
            for k in ["level", "msg", "time"] {
                assert!(v[k].is_string(), "{}: {line}", rt.name);
            }
            assert!(
                humantime::parse_rfc3339(v["time"].as_str().unwrap()).is_ok(),
                "{line}"
            );
        }
        assert!(t.contains(r#""level":"debug""#), "{}: {t}", rt.name);
        rt.ok(&["delete", "--force", &id]);
        // No --log: the same lines on stderr.
        let id = unique("dbg-stderr");
        let o = rt.out(&["--debug", "create", "--bundle", bundle, &id]);
        assert!(o.status.success(), "{}", rt.name);
        let e = text(&o.stderr);
        assert!(e.lines().all(is_logrus_line), "{}: {e}", rt.name);
        assert!(e.contains(" level=debug "), "{}: {e}", rt.name);
        rt.ok(&["delete", "--force", &id]);
        // An error without --debug: one logrus error line on stderr, or JSON with
        // --log-format json.
        let o = rt.out(&["state", "no-such-container"]);
        assert_eq!(o.status.code(), Some(1));
        let e = text(&o.stderr);
        assert!(
            e.lines().count() == 1 && is_logrus_line(e.trim_end()),
            "{}: {e}",
            rt.name
        );
        assert!(e.contains(" level=error msg="), "{}: {e}", rt.name);
        let o = rt.out(&["--log-format", "json", "state", "no-such-container"]);
        let v: Value = serde_json::from_str(text(&o.stderr).trim()).unwrap();
        assert_eq!(v["level"], "error", "{}", rt.name);
    }
}

#[test]
fn update_flags_parse_as_runc() {
    let Some((_b, rts, id)) = running_pair("upd", json!({})) else {
        return;
    };
    let pids_limit = |rt: &Rt| rt.stats(&id)["data"]["pids"]["limit"].as_u64().unwrap_or(0);
    let mem_limit = |rt: &Rt| rt.stats(&id)["data"]["memory"]["usage"]["limit"].clone();
    for rt in &rts {
        assert_eq!(pids_limit(rt), 100, "{}", rt.name);
        // -1 means unlimited (runc's `pids.max` "max"; the stats omit the limit).
        for args in [&["--pids-limit", "-1"][..], &["--pids-limit=-1"]] {
            rt.ok(&["update", "--pids-limit", "100", &id]);
            let mut a = vec!["update"];
            a.extend_from_slice(args);
            a.push(&id);
            rt.ok(&a);
            assert_eq!(pids_limit(rt), 0, "{} {args:?}", rt.name);
        }
        // go-units sizes: binary multipliers, fractions, optional "b"/"ib".
        for (size, bytes) in [
            ("1.5g", 1536u64 << 20),
            ("100M", 100 << 20),
            ("64mb", 64 << 20),
            ("48MiB", 48 << 20),
            ("33554432", 32 << 20),
        ] {
            rt.ok(&["update", "--memory", size, &id]);
            assert_eq!(mem_limit(rt), bytes, "{} --memory {size}", rt.name);
        }
        rt.ok(&["update", "--memory", "-1", &id]);
        assert!(
            mem_limit(rt).as_u64().unwrap() > 1 << 62,
            "{}: --memory -1",
            rt.name
        );
    }
    // Refusals: same status; peapod's message ends with runc's where it has one.
    for (args, msg) in [
        (&["--pids-limit", "abc"][..], None),
        (
            &["--memory", "abc"],
            Some("invalid value for memory: invalid size: 'abc'"),
        ),
        (
            &["--memory-swap", "1x"],
            Some("invalid value for memory-swap: invalid suffix: 'x'"),
        ),
        (&["--l3-cache-schema", "L3:0=f"], None),
        (&["--mem-bw-schema", "MB:0=50"], None),
        (&["--cpu-quota", "x"], None),
        (&[][..], None),
    ] {
        let mut got = Vec::new();
        for rt in &rts {
            let mut a = vec!["--log-format", "json", "update"];
            a.extend_from_slice(args);
            a.push(&id);
            let o = rt.out(&a);
            got.push((o.status.code(), text(&o.stderr)));
        }
        assert_eq!(
            got[0].0, got[1].0,
            "update {args:?}: runc vs peapod {got:?}"
        );
        if let Some(msg) = msg {
            for (_, e) in &got {
                let last: Value = serde_json::from_str(e.lines().last().unwrap_or("{}")).unwrap();
                assert!(
                    last["msg"].as_str().unwrap_or("").ends_with(msg),
                    "{args:?}: {e}"
                );
            }
        }
    }
}

#[test]
fn oci_version_values_are_taken_as_runc_takes_them() {
    let Some(runc) = need_runc() else { return };
    let rts = Rt::pair(runc);
    for (n, value) in [
        json!("banana"),
        json!(""),
        json!(null),
        json!("0.9.0"),
        json!("9.9.9"),
        json!(5),
        json!("DELETE"),
    ]
    .into_iter()
    .enumerate()
    {
        let b = Bundle::new(&["true"], json!({}));
        let mut cfg = b.config();
        if value == "DELETE" {
            cfg.as_object_mut().unwrap().remove("ociVersion");
        } else {
            cfg["ociVersion"] = value.clone();
        }
        std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
        let codes: Vec<_> = rts
            .iter()
            .map(|rt| {
                let id = format!("{}-{n}", unique("ociv"));
                let o = rt.out(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
                let _ = rt.out(&["delete", "--force", &id]);
                (o.status.code(), text(&o.stderr))
            })
            .collect();
        assert_eq!(
            codes[0].0, codes[1].0,
            "ociVersion {value}: runc vs peapod {codes:?}"
        );
    }
}

/// Every path of an object key (arrays are leaves). `raw` (memory.stat verbatim) included.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, v) in m {
            let p = format!("{prefix}.{k}");
            out.insert(p.clone());
            key_paths(v, &p, out);
        }
    }
}

/// Fields runc omits when zero (`omitempty` numbers and lists): present in one runtime's
/// output and not the other's only because one process did some work the other did not.
fn omitted_when_zero(path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap();
    path.contains(".blkio.")
        || [
            "total",
            "percpu",
            "percpu_kernel",
            "percpu_user",
            "cache",
            "usage",
            "max",
            "current",
            "periods",
            "throttledPeriods",
            "throttledTime",
        ]
        .contains(&leaf)
            && !path.ends_with("cpu.usage")
            && !path.ends_with("memory.usage")
}

#[test]
fn events_stats_is_runcs_line() {
    let Some((_b, rts, id)) = running_pair("stats", json!({})) else {
        return;
    };
    let mut paths = Vec::new();
    for rt in &rts {
        let out = rt.ok(&["events", "--stats", &id]);
        assert_eq!(out.lines().count(), 1, "{}: one line: {out}", rt.name);
        let head = format!(r#"{{"type":"stats","id":"{id}","data":{{"cpu":"#);
        assert!(out.starts_with(&head), "{}: {out}", rt.name);
        let v: Value = serde_json::from_str(&out).unwrap();
        let data = v["data"].as_object().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        let mut want = vec![
            "blkio",
            "cpu",
            "cpuset",
            "hugetlb",
            "intel_rdt",
            "memory",
            "network_interfaces",
            "pids",
        ];
        want.sort();
        assert_eq!(keys, want, "{}", rt.name);
        assert_eq!(v["data"]["pids"]["limit"], 100, "{}", rt.name);
        assert_eq!(
            v["data"]["memory"]["usage"]["limit"],
            64 << 20,
            "{}",
            rt.name
        );
        let mut p = BTreeSet::new();
        key_paths(&v, "", &mut p);
        paths.push(p);
    }
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b)
            .filter(|p| !omitted_when_zero(p))
            .cloned()
            .collect()
    };
    assert_eq!(
        only(&paths[0], &paths[1]),
        Vec::<String>::new(),
        "in runc's stats only"
    );
    assert_eq!(
        only(&paths[1], &paths[0]),
        Vec::<String>::new(),
        "in peapod's stats only"
    );
}

/// Exit status of `cmd`, or `None` when it still runs after `secs` (then killed).
fn status_within(mut cmd: Command, secs: u64) -> Option<i32> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn events_interval_is_a_go_duration() {
    let Some((_b, rts, id)) = running_pair("intv", json!({})) else {
        return;
    };
    for args in [
        &["--interval", "5"][..],
        &["--interval", "1x"],
        &["--stats", "--interval", "1s"],
    ] {
        let codes: Vec<_> = rts
            .iter()
            .map(|rt| {
                let mut a = vec!["events"];
                a.extend_from_slice(args);
                a.push(&id);
                status_within(rt.cmd(&a), 10)
            })
            .collect();
        assert_eq!(codes[0], codes[1], "events {args:?}: runc vs peapod");
    }
    for rt in &rts {
        assert_eq!(
            rt.out(&["events", "--stats", "no-such-container"])
                .status
                .code(),
            Some(1)
        );
    }
}

/// Whether process `pid` holds an fd of one of `kinds` (`[eventfd]`, `inotify`): how `events`
/// waits for OOM notifications on cgroup v1 and v2.
fn holds_anon_fd(pid: u32, kinds: &[&str]) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|l| {
            kinds
                .iter()
                .any(|k| l.to_string_lossy() == format!("anon_inode:{k}"))
        })
}

#[test]
fn events_reports_an_oom_kill() {
    // Memory and memory+swap both 16 MiB: `tail /dev/zero` (which buffers forever, looking for
    // a newline) is OOM-killed; init (`sleep`) survives, so the container keeps running.
    let Some((_b, rts, id)) = running_pair(
        "oom",
        json!({"linux": {"resources": {"memory": {"limit": 16 << 20, "swap": 16 << 20}}}}),
    ) else {
        return;
    };
    for rt in &rts {
        // No stats during the test: the OOM event must come when it happens, not at a tick.
        let mut ev = rt.cmd(&["events", "--interval", "1h", &id]);
        let mut child = ev
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until `events` has set up its OOM watch (an eventfd on v1, inotify on v2).
        let t = Instant::now();
        while !holds_anon_fd(child.id(), &["[eventfd]", "inotify"]) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{}: no OOM watch",
                rt.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = rt.out(&["exec", &id, "tail", "/dev/zero"]);
        assert_eq!(
            o.status.code(),
            Some(137),
            "{}: {}",
            rt.name,
            text(&o.stderr)
        );
        let want = format!(r#"{{"type":"oom","id":"{id}"}}"#);
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => assert_eq!(l, want, "{}", rt.name),
            Err(_) => panic!("{}: no {want} within 20 s of the OOM kill", rt.name),
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
