//! Recursive mount options (`rro`, `rnosuid`... `rnosymfollow`, issue 13 §2) applied with
//! `mount_setattr(AT_RECURSIVE)`, and `nosymfollow` with effect, against runc 1.5.1: the
//! per-mount options the container sees on a bind and on the tmpfs below it, and whether a
//! symlink can be followed, must be runc's. Before the change every recursive option was
//! refused (`mount option ... is not supported`) and `nosymfollow` went to the filesystem as
//! data: checked with `PEAPOD_BIN=<main's peapod>`, the test fails on the first option.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde_json::json;

use crate::common::*;
use crate::mounts_propagation::{have_runc, runc_run};

/// (exit code, stdout, stderr) of one runtime on `b`.
fn run_both(b: &Bundle, id: &str) -> [(i32, String); 2] {
    let (code, out, err) = b.run(&unique(id));
    let o = runc_run(b, &unique(&format!("{id}r")));
    let theirs = String::from_utf8_lossy(&o.stdout).into_owned();
    let _ = err;
    [(code, out), (o.status.code().unwrap_or(-1), theirs)]
}

#[test]
fn recursive_options_and_nosymfollow_match_runc() {
    if !have_runc() {
        return;
    }
    let vol = tempfile::Builder::new()
        .prefix("pp-ropt")
        .tempdir()
        .unwrap();
    std::fs::write(vol.path().join("f"), "data\n").unwrap();
    std::os::unix::fs::symlink("f", vol.path().join("link")).unwrap();
    let sub = vol.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=64k"),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(sub.clone());
    let script = "awk '$5 ~ \"^/v\" {print $5, $6}' /proc/self/mountinfo; \
        cat /v/link >/dev/null 2>&1 && echo follows || echo nofollow";
    for opt in [
        "rro",
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnoatime",
        "ratime",
        "rrelatime",
        "rnorelatime",
        "rstrictatime",
        "rnostrictatime",
        "rdiratime",
        "rnodiratime",
        "rnosymfollow",
        "nosymfollow",
    ] {
        let b = Bundle::new(&["sh", "-c", script], json!({}));
        let mut cfg = b.config();
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/v", "type": "bind", "source": vol.path(),
            "options": ["rbind", opt],
        }));
        std::fs::write(
            b.path().join("config.json"),
            serde_json::to_vec(&cfg).unwrap(),
        )
        .unwrap();
        let [ours, theirs] = run_both(&b, "ropt");
        assert_eq!(
            ours, theirs,
            "option {opt}: peapod (left) and runc (right) differ"
        );
        if opt.contains("nosymfollow") {
            assert!(ours.1.ends_with("nofollow\n"), "{opt}: {}", ours.1);
        }
    }
}
