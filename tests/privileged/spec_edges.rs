//! Spec edge cases (issue 13, section 2), each compared with runc 1.5.1 on the same bundle:
//! `linux.timeOffsets` with and without a user namespace, a config without a mount namespace,
//! and `/proc` or `/sys` that is not a directory in the rootfs. Nothing on the host may change:
//! the tests check the host's mounts and the paths a symlink points at.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use super::features_process::Runc;
use crate::common::*;

fn text(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `run` the bundle in the foreground with peapod and with runc.
fn run_both(b: &Bundle, runc: &Runc, name: &str) -> [(Option<i32>, String, String); 2] {
    let bundle = b.path().to_str().unwrap();
    let ours = b.out(&["run", "--bundle", bundle, &unique(name)]);
    let theirs = runc.out(&["run", "--bundle", bundle, &unique(&format!("{name}r"))]);
    [text(&ours), text(&theirs)]
}

/// A private, writable copy of the busybox rootfs (the shared one is never modified).
fn rootfs_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pp-edge-rootfs")
        .tempdir()
        .unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs().display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "copy the rootfs");
    dir
}

/// The host's mounts at `/` or under `dir`, as mountinfo shows them (mount point, options,
/// propagation, type, source): what a run that mounted on the host would change. Other tests
/// mount elsewhere at the same time, so only these lines are compared.
fn host_mounts(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    let mut lines: Vec<String> = info
        .lines()
        .filter(|l| {
            let mp = l.split(' ').nth(4).unwrap_or_default();
            mp == "/" || mp == dir || mp.starts_with(&format!("{dir}/"))
        })
        .map(|l| l.split(' ').skip(4).collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

/// `linux.namespaces` of the default spec with `add` appended and `drop` left out.
fn namespaces(add: &[&str], drop: &str) -> Value {
    let b = Bundle::new(&["true"], json!({}));
    let mut ns: Vec<Value> = b.config()["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != drop)
        .cloned()
        .collect();
    ns.extend(add.iter().map(|t| json!({"type": t})));
    Value::Array(ns)
}

const OFFSETS: &str = "cat /proc/self/timens_offsets; cut -d ' ' -f 1 /proc/uptime";

/// Offsets of a new time namespace, with and without a new user namespace: the container
/// sees them (`timens_offsets`, a boottime two days ahead in `/proc/uptime`), as with runc.
#[test]
fn spec_edges_time_offsets_with_and_without_user_namespace() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for userns in [false, true] {
        let mut patch = json!({"linux": {
            "namespaces": namespaces(if userns { &["time", "user"] } else { &["time"] }, ""),
            "timeOffsets": {
                "monotonic": {"secs": 86400, "nanosecs": 0},
                "boottime": {"secs": 172800, "nanosecs": 0}
            }
        }});
        if userns {
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            patch["linux"]["uidMappings"] = map.clone();
            patch["linux"]["gidMappings"] = map;
        }
        let b = Bundle::new(&["sh", "-c", OFFSETS], patch);
        let [ours, theirs] = run_both(&b, &runc, "edgetime");
        assert_eq!(theirs.0, Some(0), "runc (userns {userns}): {}", theirs.2);
        assert_eq!(ours.0, Some(0), "peapod (userns {userns}): {}", ours.2);
        let offsets = |out: &str| {
            out.lines()
                .take(2)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            offsets(&ours.1),
            ["monotonic 86400 0", "boottime 172800 0"],
            "userns {userns}: {}",
            ours.1
        );
        assert_eq!(offsets(&ours.1), offsets(&theirs.1), "userns {userns}");
        let uptime: f64 = ours.1.lines().nth(2).unwrap().parse().unwrap();
        assert!(
            uptime >= host_uptime + 172800.0,
            "boottime offset not applied (userns {userns}): {uptime} vs host {host_uptime}"
        );
    }
}

/// runc's check: procfs and sysfs go on an ordinary directory. A `/proc` that is a symlink
/// to a host-looking path, or a `/sys` that is a symlink or a file, fails the create with
/// runc's words and exit status; nothing is mounted or created, in the rootfs or on the host.
#[test]
fn spec_edges_proc_or_sys_not_a_directory_is_refused_like_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let target = PathBuf::from(format!("/tmp/{}", unique("pp-edge-target")));
    for (dir, kind, typ) in [
        ("proc", "symlink", "proc"),
        ("sys", "symlink", "sysfs"),
        ("sys", "file", "sysfs"),
        ("proc", "file", "proc"),
    ] {
        let root = rootfs_copy();
        let at = root.path().join(dir);
        std::fs::remove_dir(&at).unwrap();
        if kind == "symlink" {
            std::os::unix::fs::symlink(&target, &at).unwrap();
        } else {
            std::fs::write(&at, "").unwrap();
        }
        let b = Bundle::new(
            &["true"],
            json!({"root": {"path": root.path(), "readonly": false}}),
        );
        let before = host_mounts(root.path());
        let [ours, theirs] = run_both(&b, &runc, "edgeproc");
        let want = format!(
            "error mounting \"{typ}\" to rootfs at \"/{dir}\": filesystem \"{typ}\" must be mounted on ordinary directory"
        );
        assert_eq!(theirs.0, Some(1), "runc {dir} {kind}: {}", theirs.2);
        assert!(
            theirs.2.replace("\\\"", "\"").contains(&want),
            "runc {dir} {kind}: {}",
            theirs.2
        );
        assert_eq!(ours.0, theirs.0, "peapod {dir} {kind}: {}", ours.2);
        assert!(
            ours.2.replace("\\\"", "\"").contains(&want),
            "peapod {dir} {kind}: {}",
            ours.2
        );
        assert_eq!(
            host_mounts(root.path()),
            before,
            "{dir} {kind}: host mounts changed"
        );
        assert!(!target.exists(), "{dir} {kind}: the host path was created");
        let inside = root.path().join(target.strip_prefix("/").unwrap());
        assert!(
            !inside.exists(),
            "{dir} {kind}: the link target was created"
        );
        assert!(
            std::fs::symlink_metadata(&at).is_ok_and(|m| !m.is_dir()),
            "{dir} {kind}: replaced"
        );
    }
}

/// Without a mount namespace the container runs chrooted in its rootfs in the host's mount
/// namespace and mounts nothing: the host's mountinfo is the same after `run`, after
/// `create`/`start` and after an `exec`, which runs in the container's root (runc 1.5.1 runs
/// it in the host's). runc's refusal of masked paths is matched; `mounts` are refused
/// (runc 1.5.1 makes them on the host and leaves them there, so it is not run with them).
#[test]
fn spec_edges_no_mount_namespace_never_touches_host_mounts() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let root = rootfs_copy();
    let before = host_mounts(root.path());
    let base = json!({
        "root": {"path": root.path(), "readonly": false},
        "mounts": [],
        "linux": {"namespaces": namespaces(&[], "mount"), "maskedPaths": [], "readonlyPaths": []}
    });
    // runc's check and words.
    let mut masked = base.clone();
    masked["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    let b = Bundle::new(&["true"], masked);
    let [ours, theirs] = run_both(&b, &runc, "edgenomnt");
    let want = "unable to restrict sys entries without a private MNT namespace";
    assert_eq!(theirs.0, Some(1), "runc: {}", theirs.2);
    assert!(theirs.2.contains(want), "runc: {}", theirs.2);
    assert_eq!(ours.0, theirs.0, "peapod: {}", ours.2);
    assert!(ours.2.contains(want), "peapod: {}", ours.2);
    // Mounts would be made on the host: refused by name.
    let mut mounts = base.clone();
    mounts["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    let b = Bundle::new(&["true"], mounts);
    let (code, _, err) = b.run(&unique("edgenomnt"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mounts needs a mount namespace"), "{err}");
    // It runs, in the rootfs, with no /proc.
    let b = Bundle::new(
        &["sh", "-c", "ls /; test -e /proc/self || echo no-proc"],
        base.clone(),
    );
    let (code, out, err) = b.run(&unique("edgenomnt"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bin\n") && out.contains("no-proc"), "{out}");
    assert!(!out.contains("work\n"), "the host's root: {out}");
    assert_eq!(
        host_mounts(root.path()),
        before,
        "run changed the host's mounts"
    );
    // create/start (the start fifo without a /proc in the rootfs) and exec.
    let b = Bundle::new(&["sleep", "30"], base);
    let id = unique("edgenomntd");
    b.create(&id);
    b.ok(&["start", &id]);
    b.wait_status(&id, "running");
    let o = b.out(&["exec", &id, "ls", "/"]);
    let (code, out, err) = text(&o);
    assert_eq!(code, Some(0), "exec: {err}");
    assert!(
        out.contains("bin\n") && !out.contains("work\n"),
        "exec ran in: {out}"
    );
    assert_eq!(
        host_mounts(root.path()),
        before,
        "exec changed the host's mounts"
    );
    b.ok(&["delete", "--force", &id]);
    assert_eq!(
        host_mounts(root.path()),
        before,
        "delete changed the host's mounts"
    );
    assert!(
        std::fs::read_dir(root.path().join("dev"))
            .unwrap()
            .next()
            .is_none(),
        "device nodes were made in the rootfs"
    );
}

/// `peapod --version | head -1` (and the OCI binary's, and `peapod completion bash | head`): a
/// reader that is gone before the output is written ends the command as SIGPIPE ends runc or
/// coreutils, never with a panic.
#[test]
fn spec_edges_version_to_a_closed_pipe_does_not_panic() {
    let runs: [(PathBuf, &[&str]); 4] = [
        (bin(), &["--version"]),
        (oci_bin(), &["--version"]),
        (bin(), &["completion", "bash"]),
        (bin(), &["completion", "zsh"]),
    ];
    for (bin, args) in runs {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let o = Command::new(&bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked"),
            "{} {args:?}: {err}",
            bin.display()
        );
        assert!(
            o.status.success()
                || std::os::unix::process::ExitStatusExt::signal(&o.status) == Some(13),
            "{} {args:?}: {:?} {err}",
            bin.display(),
            o.status
        );
    }
}

/// A user namespace the holder process owns, mapping 0 to host 100000 (65536 ids), killed on drop.
struct UserNs(std::process::Child);

impl UserNs {
    fn new() -> UserNs {
        let mut child = Command::new("unshare")
            .args(["--user", "sleep", "1000"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        // The namespace exists once the child's ns link differs from ours.
        let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
        let t = std::time::Instant::now();
        while std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(ours.clone()) {
            assert!(t.elapsed().as_secs() < 10, "unshare --user did not start");
            if child.try_wait().unwrap().is_some() {
                panic!("unshare --user exited");
            }
            std::thread::yield_now();
        }
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), "0 100000 65536").unwrap();
        }
        UserNs(child)
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Joining an existing user namespace by path (no maps in the config): the container runs as
/// root of that namespace, as with runc. Before the fix the init kept the host's (unmapped)
/// ids after `setns`, and creating `/dev/pts` in the container's own `/dev` tmpfs failed with
/// `mkdir dev/pts: EOVERFLOW`.
#[test]
fn spec_edges_joined_user_namespace_runs_like_runc() {
    if !root_ok() {
        return;
    }
    let Some(runc) = Runc::new() else { return };
    let userns = UserNs::new();
    let mut ns = namespaces(&[], "user");
    ns.as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": userns.path()}));
    let b = Bundle::new(
        &["sh", "-c", "id; cat /proc/self/uid_map; ls /dev/pts"],
        json!({"linux": {"namespaces": ns}}),
    );
    let [ours, theirs] = run_both(&b, &runc, "edgejoin");
    assert_eq!(theirs.0, Some(0), "runc: {}", theirs.2);
    assert_eq!(ours.0, Some(0), "peapod: {}", ours.2);
    assert!(ours.1.starts_with("uid=0(root) gid=0(root)"), "{}", ours.1);
    assert!(
        ours.1.contains("100000"),
        "not in the joined namespace: {}",
        ours.1
    );
    assert_eq!(ours.1, theirs.1, "peapod (left) and runc (right) differ");
}
