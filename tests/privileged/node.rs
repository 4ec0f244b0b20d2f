//! The node object through the real binary: `node label`/`node taint` syntax and errors
//! (no root needed: the node lives in a temporary `--storage`), and `pod run` admission
//! (root: a refused pod must leave nothing under `--root`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

type Node = Peapod;

/// The node's name, as `node show` reports it.
fn node_name(n: &Node) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&n.ok(&["node", "show", "-o", "json"])).unwrap();
    v["metadata"]["name"].as_str().unwrap().to_string()
}

/// Everything under `dir`, recursively.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.path().is_dir() {
            out.extend(entries(&e.path()));
        }
    }
    out
}

#[test]
fn label_syntax_and_errors() {
    let n = Node::new();
    let name = node_name(&n);
    assert_eq!(
        n.ok(&["node", "label", "disk=ssd", "env_role=yes"]),
        format!("node/{name} labeled\n")
    );
    let e = n.fails(&["node", "label", "disk=hdd"]);
    assert!(
        e.contains("'disk' already has a value (ssd), and --overwrite is false"),
        "{e}"
    );
    assert_eq!(
        n.ok(&["node", "label", "disk=hdd", "--overwrite"]),
        format!("node/{name} labeled\n")
    );
    assert_eq!(
        n.ok(&["node", "label", "disk-"]),
        format!("node/{name} unlabeled\n")
    );
    assert_eq!(
        n.ok(&["node", "label", "disk-"]),
        format!("label \"disk\" not found.\nnode/{name} not labeled\n")
    );
    let e = n.fails(&["node", "label", "bad key=1"]);
    assert!(e.contains("invalid label spec: bad key=1"), "{e}");
    let e = n.fails(&["node", "label", &format!("k={}", "v".repeat(64))]);
    assert!(e.contains("must be no more than 63 characters"), "{e}");
    let e = n.fails(&["node", "label", "novalue"]);
    assert!(e.contains("invalid label spec: novalue"), "{e}");
    let shown = n.ok(&["node", "show"]);
    assert!(shown.contains("env_role=yes"), "{shown}");
    assert!(shown.contains("kubernetes.io/os=linux"), "{shown}");
}

#[test]
fn taint_syntax_and_errors() {
    let n = Node::new();
    let name = node_name(&n);
    assert_eq!(
        n.ok(&["node", "taint", "env_role=yes:NoSchedule"]),
        format!("node/{name} tainted\n")
    );
    let e = n.fails(&["node", "taint", "env_role=no:NoSchedule"]);
    assert!(
        e.contains(&format!(
            "node {name} already has env_role taint(s) with same effect(s) and --overwrite is false"
        )),
        "{e}"
    );
    n.ok(&["node", "taint", "env_role=no:NoSchedule", "--overwrite"]);
    let e = n.fails(&["node", "taint", "k=v:Sometimes"]);
    assert!(
        e.contains("invalid taint effect: Sometimes, unsupported taint effect"),
        "{e}"
    );
    let e = n.fails(&["node", "taint", "k=v"]);
    assert!(e.contains("unknown taint spec: k=v"), "{e}");
    n.ok(&["node", "taint", "maint:NoExecute"]);
    let v: serde_json::Value =
        serde_json::from_str(&n.ok(&["node", "show", "-o", "json"])).unwrap();
    let taints = v["spec"]["taints"].as_array().unwrap();
    assert_eq!(taints.len(), 2);
    assert!(taints[1]["timeAdded"].is_string(), "{v}");
    assert_eq!(
        n.ok(&["node", "taint", "env_role-", "maint:NoExecute-"]),
        format!("node/{name} untainted\n")
    );
    let e = n.fails(&["node", "taint", "env_role-"]);
    assert!(e.contains("taint \"env_role\" not found"), "{e}");
}

#[test]
fn schedule_demo() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/schedule");
    let n = Node::new();
    let out = n.ok(&[
        "schedule",
        "--nodes",
        dir.join("nodes.yaml").to_str().unwrap(),
        dir.join("deployment.yaml").to_str().unwrap(),
    ]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{out}");
    for r in rows {
        assert_eq!(r.split_whitespace().nth(1), Some("node2"), "{out}");
    }
}

const SLEEP: &str = "  containers: [{name: c, image: host, command: [sleep, '30']";

#[test]
fn pod_run_refused_by_selector_taint_and_cpu() {
    if !root_ok() {
        return;
    }
    let n = Node::new();
    let sel = n.manifest(
        "sel",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: sel}}\nspec:\n  nodeSelector: {{disk: nvme}}\n{SLEEP}}}]\n"),
    );
    let e = n.fails(&["pod", "run", sel.to_str().unwrap()]);
    assert!(
        e.contains("pod `sel`: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
        "{e}"
    );
    assert!(
        entries(n.root.path()).is_empty(),
        "{:?}",
        entries(n.root.path())
    );

    let cpu = n.manifest(
        "cpu",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: cpu}}\nspec:\n{SLEEP}, resources: {{requests: {{cpu: '100000'}}}}}}]\n"),
    );
    let e = n.fails(&["pod", "run", cpu.to_str().unwrap()]);
    assert!(
        e.contains("pod `cpu`: OutOfcpu: Node didn't have enough resource: cpu, requested: 100000000, used: 0, capacity: "),
        "{e}"
    );
    assert!(entries(n.root.path()).is_empty());

    n.ok(&["node", "taint", "env_role=yes:NoSchedule"]);
    let plain = n.manifest(
        "plain",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: plain}}\nspec:\n{SLEEP}}}]\n"),
    );
    let e = n.fails(&["pod", "run", plain.to_str().unwrap()]);
    assert!(
        e.contains("0/1 nodes are available: 1 node(s) had untolerated taint {env_role: yes}."),
        "{e}"
    );
    assert!(entries(n.root.path()).is_empty());

    // A cordoned node refuses pods that do not tolerate node.kubernetes.io/unschedulable.
    n.ok(&["node", "cordon"]);
    let e = n.fails(&["pod", "run", plain.to_str().unwrap()]);
    assert!(
        e.contains("0/1 nodes are available: 1 node(s) were unschedulable."),
        "{e}"
    );
    assert!(n.ok(&["node", "uncordon"]).ends_with(" uncordoned\n"));

    // A matching label and toleration admit the pod.
    n.ok(&["node", "label", "disk=nvme"]);
    let tol = n.manifest(
        "tol",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: tol}}\nspec:\n  nodeSelector: {{disk: nvme}}\n  \
             tolerations: [{{key: env_role, operator: Equal, value: 'yes', effect: NoSchedule}}]\n{SLEEP}}}]\n"
        ),
    );
    n.ok(&["pod", "run", tol.to_str().unwrap()]);
    n.ok(&["pod", "rm", "-f", "tol"]);
}

#[test]
fn no_execute_taints_evict_running_pods() {
    if !root_ok() {
        return;
    }
    let n = Node::new();
    let pod = |name: &str, tolerations: &str| {
        let m = n.manifest(
            name,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
                 tolerations: [{tolerations}]\n  containers: [{{name: c, image: host, command: [sleep, '1000']}}]\n"
            ),
        );
        n.ok(&["pod", "run", m.to_str().unwrap()]);
    };
    pod("plain", "");
    pod(
        "patient",
        "{key: maint, operator: Exists, effect: NoExecute, tolerationSeconds: 4}",
    );
    pod(
        "forever",
        "{key: maint, operator: Exists, effect: NoExecute}",
    );
    // The eviction clock starts at the taint's timeAdded, stored with a second's precision
    // (metav1.Time): `patient` goes between 3 and 4 s after the taint command started, however
    // long `plain`'s eviction took to show (a `pod ls` costs ~0.3 s in the VM).
    let tainted = std::time::Instant::now();
    n.ok(&["node", "taint", "maint=now:NoExecute"]);
    n.wait("plain to be evicted", 30, || n.ls("plain")[2] == "Evicted");
    assert_eq!(n.ls("patient")[2], "Running");
    n.wait("patient to be evicted", 30, || {
        n.ls("patient")[2] == "Evicted"
    });
    let waited = tainted.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(3),
        "evicted {waited:?} after the taint, before tolerationSeconds"
    );
    let v: serde_json::Value =
        serde_json::from_str(&n.ok(&["pod", "inspect", "plain", "-o", "json"])).unwrap();
    assert_eq!(v["status"]["phase"], "Failed");
    assert_eq!(v["status"]["reason"], "Evicted");
    assert_eq!(
        v["status"]["message"],
        "Taint manager: deleting due to NoExecute taint maint=now:NoExecute"
    );
    n.wait("plain's container to stop", 30, || {
        let v: serde_json::Value =
            serde_json::from_str(&n.ok(&["pod", "inspect", "plain", "-o", "json"])).unwrap();
        v["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    // Tolerated without a time limit: stays.
    assert_eq!(n.ls("forever")[2], "Running");

    // Removing the taint before tolerationSeconds cancels the eviction.
    n.ok(&["node", "taint", "maint-"]);
    pod(
        "saved",
        "{key: maint, operator: Exists, effect: NoExecute, tolerationSeconds: 3}",
    );
    n.ok(&["node", "taint", "maint=again:NoExecute"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    n.ok(&["node", "taint", "maint-"]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(n.ls("saved")[2], "Running");
    for p in ["plain", "patient", "forever", "saved"] {
        n.ok(&["pod", "rm", "-f", p]);
    }
}

/// Two `pod run`s at once, each asking for 60% of the node's CPU: admission is serialized,
/// so exactly one of them is admitted.
#[test]
fn concurrent_pod_runs_do_not_overcommit() {
    if !root_ok() {
        return;
    }
    let n = Node::new();
    let v: serde_json::Value =
        serde_json::from_str(&n.ok(&["node", "show", "-o", "json"])).unwrap();
    let cpu = v["status"]["allocatable"]["cpu"]
        .as_str()
        .unwrap()
        .to_string();
    let millis: u64 = match cpu.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cpu.parse::<u64>().unwrap() * 1000,
    };
    let want = millis * 6 / 10;
    let spawn = |name: &str| {
        let m = n.manifest(
            name,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
                 containers: [{{name: c, image: host, command: [sleep, '1000'], resources: {{requests: {{cpu: {want}m}}}}}}]\n"
            ),
        );
        let mut c = Command::new(bin());
        c.arg("--storage")
            .arg(n.storage.path())
            .arg("--root")
            .arg(n.root.path())
            .args(["pod", "run", m.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn("one"), spawn("two"));
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{outs:?}");
    let refused = outs.iter().find(|o| !o.status.success()).unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("OutOfcpu"),
        "{refused:?}"
    );
    for p in ["one", "two"] {
        let _ = n.cmd(&["pod", "rm", "-f", p]);
    }
}
