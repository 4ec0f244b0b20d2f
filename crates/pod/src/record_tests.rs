//! `status.json`: the records written by peapod before `schemaVersion` (fixtures under
//! `tests/fixtures/v1/`, copied from pods run by that binary) load and show the same
//! `pod inspect` as that binary did; the versioned document round-trips; a newer version is
//! refused.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;

/// Fixtures made by the previous release: `pod.json` and `status.json` of a pod, with the
/// `pod inspect -o json` that release printed for them.
const V1: &[(&str, &str)] = &[
    ("completed", "hello"),
    ("running-crashloop", "crashy"),
    ("stopped", "crashy"),
];

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(dir)
}

/// A root holding the fixture's pod.
fn root_with(dir: &str, name: &str) -> (tempfile::TempDir, PodPaths) {
    let root = tempfile::tempdir().unwrap();
    let paths = PodPaths::new(root.path(), name).unwrap();
    std::fs::create_dir_all(&paths.dir).unwrap();
    for f in [POD_FILE, STATUS_FILE] {
        std::fs::copy(fixture(dir).join(f), paths.dir.join(f)).unwrap();
    }
    (root, paths)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// `pod inspect` without what depends on the root's path (the cgroup's name).
fn inspect_of(root: &Path, name: &str) -> Value {
    let mut v = ops::inspect(root, name).unwrap();
    v["peapod"].as_object_mut().unwrap().remove("cgroup");
    v
}

fn expected_inspect(dir: &str) -> Value {
    let mut v = read_json(&fixture(dir).join("inspect.json"));
    v["peapod"].as_object_mut().unwrap().remove("cgroup");
    v
}

fn qos_of(pod: &Pod) -> String {
    let q = serde_json::to_value(
        peapod_kube::manifest::to_supervisor(pod)
            .unwrap()
            .1
            .qos_class(),
    );
    q.unwrap().as_str().unwrap().to_string()
}

#[test]
fn previous_release_records_inspect_the_same() {
    for (dir, name) in V1 {
        let (root, _) = root_with(dir, name);
        assert_eq!(
            inspect_of(root.path(), name),
            expected_inspect(dir),
            "{dir}"
        );
    }
}

#[test]
fn previous_release_records_list() {
    let (root, _) = root_with("completed", "hello");
    let row = ops::row(root.path(), "hello").unwrap();
    assert_eq!(
        (
            row.ready.as_str(),
            row.status.as_str(),
            row.restarts.as_str()
        ),
        ("0/1", "Completed", "0")
    );
    // Its supervisor is long gone without having finished: ls says so.
    let (root, _) = root_with("running-crashloop", "crashy");
    let row = ops::row(root.path(), "crashy").unwrap();
    assert_eq!(row.ready, "1/2");
    assert_eq!(row.status, "Unknown (supervisor lost)");
    assert!(row.restarts.starts_with("6 ("), "{}", row.restarts);
    // Nothing to stop: the supervisor is gone.
    assert!(
        ops::request_stop(root.path(), "crashy", None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn previous_release_record_upgrades_to_the_versioned_document() {
    for (dir, name) in V1 {
        let (root, paths) = root_with(dir, name);
        let old = Record::load(&paths).unwrap();
        let pod = load_pod(&paths).unwrap();
        old.save(&paths, &pod, &qos_of(&pod)).unwrap();
        let doc = read_json(&paths.dir.join(STATUS_FILE));
        assert_eq!(doc["schemaVersion"], SCHEMA_VERSION, "{dir}");
        let expected = expected_inspect(dir);
        // The document holds what `pod inspect` shows.
        assert_eq!(doc["status"], expected["status"], "{dir}");
        assert_eq!(doc["events"], expected["events"], "{dir}");
        assert_eq!(
            doc["supervisor"]["pid"],
            expected["peapod"]["supervisorPid"]
        );
        assert_eq!(
            doc["supervisor"]["pausePid"],
            expected["peapod"]["pausePid"]
        );
        // ... and loads back to the same record, the same `pod inspect`.
        assert_eq!(Record::load(&paths).unwrap(), old, "{dir}");
        assert_eq!(inspect_of(root.path(), name), expected, "{dir}");
    }
}

#[test]
fn versioned_document_round_trips_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_root, paths) = root_with("running-crashloop", "crashy");
    let mut rec = Record::load(&paths).unwrap();
    rec.message = Some("sandbox died".into());
    rec.evicted = Some("Taint node.kubernetes.io/unreachable".into());
    rec.pod_ips = vec!["10.88.0.7".into()];
    rec.supervisor_done = true;
    let pod = load_pod(&paths).unwrap();
    rec.save(&paths, &pod, "BestEffort").unwrap();
    let p = paths.dir.join(STATUS_FILE);
    let mode = std::fs::metadata(&p).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(Record::load(&paths).unwrap(), rec);
    let doc = read_json(&p);
    assert_eq!(doc["status"]["phase"], "Failed");
    assert_eq!(doc["status"]["podIP"], "10.88.0.7");
    assert_eq!(doc["evicted"], "Taint node.kubernetes.io/unreachable");
    assert_eq!(doc["supervisor"]["message"], "sandbox died");
    assert_eq!(doc["supervisor"]["done"], true);
    assert_eq!(doc["podIPs"][0], "10.88.0.7");
}

#[test]
fn newer_schema_version_is_refused() {
    let (_root, paths) = root_with("completed", "hello");
    let p = paths.dir.join(STATUS_FILE);
    let rec = Record::load(&paths).unwrap();
    let pod = load_pod(&paths).unwrap();
    let mut doc = serde_json::to_value(rec.document(&pod, "BestEffort")).unwrap();
    doc["schemaVersion"] = 3.into();
    std::fs::write(&p, doc.to_string()).unwrap();
    let err = Record::load(&paths).unwrap_err().to_string();
    assert!(err.contains(&p.display().to_string()), "{err}");
    assert!(err.contains("schemaVersion 3"), "{err}");
    assert!(err.contains("upgrade peapod"), "{err}");
    // Neither `pod inspect` nor `pod ls` shows such a pod as if it were another.
    let e = ops::inspect(paths.dir.parent().unwrap().parent().unwrap(), "hello").unwrap_err();
    assert!(e.to_string().contains("upgrade peapod"), "{e}");
}

#[test]
fn malformed_schema_version_is_corrupt() {
    for bad in [
        r#"{"schemaVersion":"2"}"#,
        r#"{"schemaVersion":-1}"#,
        "{",
        "[]",
    ] {
        let err = Record::parse(bad.as_bytes(), Path::new("/r/pods/x/status.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("corrupt `/r/pods/x/status.json`"),
            "{bad}: {err}"
        );
    }
    // A document of this version missing a part is corrupt too, not half read.
    let err = Record::parse(br#"{"schemaVersion":2}"#, Path::new("s.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field"), "{err}");
}
