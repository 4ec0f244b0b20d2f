//! `status.json` across an upgrade: a pod whose record is in the unversioned format of the
//! previous release (version 1) stays manageable by this binary (`pod ls`, `inspect`, `stop`,
//! `rm`), and the supervisor writes the versioned document (schemaVersion 2), private to root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;
use crate::pods::{Pods, nothing_left};

const SLEEPER: &str = "kind: Pod\napiVersion: v1\nmetadata: {name: NAME}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers: [{name: c, image: host, command: [sleep, \"1000\"]}]\n";

fn status_file(p: &Pods, name: &str) -> PathBuf {
    p.root.path().join("pods").join(name).join("status.json")
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The version 1 record (the previous release's `status.json`) of a version 2 document.
fn to_v1(doc: &Value) -> Value {
    let s = &doc["supervisor"];
    json!({
        "machine": doc["machine"]["state"],
        "events": doc["machine"]["events"],
        "supervisor_pid": s["pid"],
        "supervisor_start_time": s["startTime"],
        "pause_pid": s["pausePid"],
        "supervisor_done": s["done"],
        "message": s["message"],
        "evicted": doc["evicted"],
        "pod_ips": doc["podIPs"],
    })
}

/// Stop and remove `name` with this binary, and check nothing is left.
fn stop_and_remove(p: &Pods, name: &str) {
    let cg = p.cgroup(name);
    p.ok(&["pod", "stop", name]);
    let doc = read(&status_file(p, name));
    assert_eq!(doc["schemaVersion"], 2, "{doc}");
    assert_eq!(doc["supervisor"]["done"], true, "{doc}");
    p.ok(&["pod", "rm", name]);
    nothing_left(p.root.path(), name, &cg);
}

#[test]
fn pods_status_v1_record_of_live_pod_stays_manageable() {
    if !root_ok() {
        return;
    }
    let p = Pods::new();
    let name = "stv1";
    p.run(&SLEEPER.replace("NAME", name));
    p.wait("the pod to run", 60, || {
        p.ls(name).get(2).is_some_and(|s| s == "Running")
    });
    let file = status_file(&p, name);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let doc = read(&file);
    assert_eq!(doc["schemaVersion"], 2, "{doc}");
    let before = p.inspect(name);
    assert_eq!(doc["status"], before["status"]);
    assert_eq!(doc["events"], before["events"]);
    assert_eq!(doc["supervisor"]["pid"], before["peapod"]["supervisorPid"]);
    // The record as the previous release wrote it, put in place as the supervisor writes.
    let tmp = file.with_extension("v1-tmp");
    std::fs::write(&tmp, to_v1(&doc).to_string()).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert!(read(&file).get("schemaVersion").is_none());
    assert_eq!(p.inspect(name), before);
    assert_eq!(p.ls(name)[1..3], ["1/1", "Running"]);
    stop_and_remove(&p, name);
}

/// With `PEAPOD_OLD_BIN` (a peapod of the previous release, e.g. built from a checkout of
/// main; its `peapod-pause` next to it), a pod run by that binary is listed, inspected,
/// stopped and removed by this one.
#[test]
fn pods_status_previous_binary_pod_upgrades() {
    if !root_ok() {
        return;
    }
    let Some(old) = std::env::var_os("PEAPOD_OLD_BIN") else {
        eprintln!("pods_status_previous_binary_pod_upgrades: PEAPOD_OLD_BIN not set, skipped");
        return;
    };
    let p = Pods::new();
    let name = "stold";
    let m = p.manifest(name, &SLEEPER.replace("NAME", name));
    let o = Command::new(&old)
        .env("CNI_PATH", p.dir.path().join("no-cni-plugins"))
        .arg("--root")
        .arg(p.root.path())
        .arg("--storage")
        .arg(p.storage.path())
        .args(["pod", "run", m.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p.wait("the old binary's pod to run", 60, || {
        p.ls(name).get(2).is_some_and(|s| s == "Running")
    });
    let file = status_file(&p, name);
    assert!(
        read(&file).get("schemaVersion").is_none(),
        "not a previous release"
    );
    let v = p.inspect(name);
    assert_eq!(v["status"]["phase"], "Running");
    assert_eq!(v["peapod"]["supervisorAlive"], true);
    // The old supervisor writes its own format to the end; this binary still stops it.
    let cg = p.cgroup(name);
    p.ok(&["pod", "stop", name]);
    assert_eq!(p.ls(name)[1], "0/1");
    p.ok(&["pod", "rm", name]);
    nothing_left(p.root.path(), name, &cg);
}
