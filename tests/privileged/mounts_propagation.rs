//! `linux.rootfsPropagation` (issue 13 §3) against runc 1.5.1, and the host's mount table after
//! a `create` that fails: nothing the container mounted may show up in the host's namespace.
//!
//! The rootfs is made a shared mount point of its own (what containerd's overlay rootfs is on a
//! systemd host), so the container's copy of it is a peer of the host's: before the fix,
//! `shared`/`rshared` failed with `pivot_root: EINVAL` and left the rootfs bind stacked on the
//! host's rootfs mount, and `unbindable` failed with `bind rootfs: EINVAL`. Checked by running
//! these tests against main's binary (`PEAPOD_BIN=<main's peapod>`): every propagation but the
//! slave/private ones failed, and `failed_create_leaves_no_mount_behind` counted leftovers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde_json::json;

use crate::common::*;
use crate::terminal::runc_bin;

/// runc 1.5.1 running `b` in the foreground with a state root of its own.
pub fn runc_run(b: &Bundle, id: &str) -> Output {
    let state = tempfile::Builder::new()
        .prefix("pp-runc")
        .tempdir()
        .unwrap();
    let bin = runc_bin().expect("runc 1.5.1");
    let mut cmd = Command::new(&bin);
    cmd.arg("--root")
        .arg(state.path())
        .args(["run", "--bundle", b.path().to_str().unwrap(), id]);
    let o = captured(cmd);
    let _ = captured({
        let mut c = Command::new(&bin);
        c.arg("--root")
            .arg(state.path())
            .args(["delete", "--force", id]);
        c
    });
    o
}

/// Whether runc 1.5.1 is there (a missing one fails under PEAPOD_MUST_WORK).
pub fn have_runc() -> bool {
    root_ok() && can_run("needs runc 1.5.1 (shared/tools)", runc_bin().is_some())
}

/// A private copy of the busybox rootfs, bind-mounted on a directory of its own and made a
/// shared mount (peer group of its own): the container's namespace copy is its peer.
pub struct SharedRoot {
    pub dir: tempfile::TempDir,
}

impl SharedRoot {
    pub fn new() -> SharedRoot {
        let dir = tempfile::Builder::new().prefix("pp-mnt").tempdir().unwrap();
        let r = dir.path().join("rootfs");
        std::fs::create_dir(&r).unwrap();
        mount(
            Some(rootfs()),
            &r,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        mount(
            None::<&str>,
            &r,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        SharedRoot { dir }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Mounts of the host's (our) namespace at or below the temp dir.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(self.dir.path())
    }
}

impl Drop for SharedRoot {
    fn drop(&mut self) {
        // Our mounts, and whatever a bug stacked on them: the latest first.
        for _ in 0..256 {
            let Some(last) = self.mounts().pop() else {
                break;
            };
            if umount2(last.as_str(), MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

/// Mount points (mountinfo field 5) of this process's namespace at or below `dir`, one entry
/// per mount (stacked mounts count each).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// `/proc/self/mountinfo` of a container reduced to (mount point, propagation kinds): peer
/// group numbers differ between runs, the kinds (`shared`, `master`, `unbindable`) must not.
/// The v1 cgroup hierarchies below /sys/fs/cgroup are left out (runc also shows `name=systemd`,
/// a cgroup matter, not a mount one).
fn propagation_view(mountinfo: &str) -> Vec<String> {
    let mut v: Vec<String> = mountinfo
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| !m.starts_with("/sys/fs/cgroup/"))
        })
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let opt = f
                .iter()
                .skip(6)
                .take_while(|x| **x != "-")
                .map(|x| x.split(':').next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(",");
            format!("{} [{opt}]", f.get(4).unwrap_or(&""))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn rootfs_propagation_matches_runc() {
    if !have_runc() {
        return;
    }
    let shared = SharedRoot::new();
    let before = shared.mounts();
    for prop in [
        "shared",
        "rshared",
        "slave",
        "rslave",
        "private",
        "rprivate",
        "unbindable",
    ] {
        let b = Bundle::new(
            &["cat", "/proc/self/mountinfo"],
            json!({"root": {"path": shared.rootfs()}, "linux": {"rootfsPropagation": prop}}),
        );
        let (code, ours, err) = b.run(&unique(&format!("prop-{prop}")));
        assert_eq!(code, 0, "peapod with rootfsPropagation {prop}: {err}");
        let o = runc_run(&b, &unique(&format!("propr-{prop}")));
        assert!(
            o.status.success(),
            "runc with {prop}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let theirs = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            propagation_view(&ours),
            propagation_view(&theirs),
            "propagation inside the container differs from runc's with {prop}"
        );
        assert_eq!(
            shared.mounts(),
            before,
            "{prop}: the host's mounts under the rootfs changed"
        );
    }
}

/// CRI `Bidirectional`: a volume bound `rshared` in a container with an `rshared` root; what
/// the container mounts inside the volume appears on the host, nothing else does.
#[test]
fn rshared_volume_propagates_to_the_host() {
    if !have_runc() {
        return;
    }
    let shared = SharedRoot::new();
    let vol = shared.dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    mount(
        Some(&vol),
        &vol,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    mount(
        None::<&str>,
        &vol,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    let caps = json!(["CAP_SYS_ADMIN"]);
    for (rt, i) in [("peapod", 0), ("runc", 1)] {
        let sub = format!("m{i}");
        std::fs::create_dir(vol.join(&sub)).unwrap();
        let b = Bundle::new(
            &[
                "sh",
                "-c",
                &format!("mount -t tmpfs -o size=64k bidi /vol/{sub} && echo ok"),
            ],
            json!({
                "root": {"path": shared.rootfs()},
                "linux": {"rootfsPropagation": "rshared"},
                "process": {"capabilities": {"bounding": caps, "effective": caps, "permitted": caps}},
            }),
        );
        let mut cfg = b.config();
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/vol", "type": "bind", "source": vol,
            "options": ["rbind", "rshared"],
        }));
        std::fs::write(
            b.path().join("config.json"),
            serde_json::to_vec(&cfg).unwrap(),
        )
        .unwrap();
        let (code, out, err) = if rt == "peapod" {
            b.run(&unique("bidi"))
        } else {
            let o = runc_run(&b, &unique("bidir"));
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        assert_eq!((code, out.trim()), (0, "ok"), "{rt}: {err}");
        let m = vol.join(&sub);
        let here = mounts_under(&m);
        assert_eq!(
            here.len(),
            1,
            "{rt}: the volume mount did not reach the host"
        );
        umount2(&m, MntFlags::MNT_DETACH).unwrap();
    }
    umount2(&vol, MntFlags::MNT_DETACH).unwrap();
    assert_eq!(shared.mounts(), [shared.rootfs().to_str().unwrap()]);
}

/// A create that fails before the mounts, between them, in a hook before pivot_root and after
/// pivot_root leaves the host's mount table as it was, with every propagation.
#[test]
fn failed_create_leaves_no_mount_behind() {
    if !have_runc() {
        return;
    }
    let shared = SharedRoot::new();
    let before = shared.mounts();
    let fail_points: [(&str, serde_json::Value); 3] = [
        (
            "missing bind source after a tmpfs",
            json!({"extra": [
                {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/opt", "type": "bind", "source": "/nonexistent-peapod-src", "options": ["rbind"]},
            ]}),
        ),
        (
            "failing createContainer hook",
            json!({"hooks": {"createContainer": [{"path": "/bin/false"}]}}),
        ),
        (
            "cwd that is a file",
            json!({"process": {"cwd": "/etc/passwd"}}),
        ),
    ];
    for prop in ["rshared", "shared", "rslave", "unbindable"] {
        for (what, patch) in &fail_points {
            let mut p =
                json!({"root": {"path": shared.rootfs()}, "linux": {"rootfsPropagation": prop}});
            let extra = patch.get("extra").cloned();
            if extra.is_none() {
                merge(&mut p, patch.clone());
            }
            let b = Bundle::new(&["true"], p);
            if let Some(extra) = extra {
                let mut cfg = b.config();
                let ms = cfg["mounts"].as_array_mut().unwrap();
                ms.extend(extra.as_array().unwrap().iter().cloned());
                std::fs::write(
                    b.path().join("config.json"),
                    serde_json::to_vec(&cfg).unwrap(),
                )
                .unwrap();
            }
            let id = unique("propfail");
            let o = b.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
            assert!(!o.status.success(), "{prop}, {what}: create succeeded");
            assert_eq!(
                shared.mounts(),
                before,
                "{prop}, {what}: a failed create left mounts behind: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let r = runc_run(&b, &unique("propfailr"));
            assert!(!r.status.success(), "{prop}, {what}: runc succeeded");
        }
    }
}
