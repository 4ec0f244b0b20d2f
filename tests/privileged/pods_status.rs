//! `status.json` across an upgrade: a pod whose record is in the unversioned format of the
//! previous release (version 1) stays manageable by this binary (`pod ls`, `inspect`, `stop`,
//! `rm`), and the supervisor writes the versioned document (schemaVersion 2), private to root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
