//! The remaining mount items of issue 13 §2 against runc 1.5.1: a bind mount whose destination
//! is a dangling symlink in the rootfs, masked directories sharing one read-only tmpfs (and a
//! duplicate masked path masked once), and a read-only `/dev` with devpts and the default
//! devices. Before the change a file bind onto a dangling symlink failed with `create: ELOOP`,
//! every masked directory got a tmpfs of its own without runc's `size=4k,nr_inodes=1`, and a
//! `ro` `/dev` failed with `mkdir dev/pts: EROFS`, as did a mount below a `ro` tmpfs (checked by running these tests against the
//! binary built without the fix).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::*;
use crate::mounts_propagation::{have_runc, runc_run};

/// A bundle running `script` whose rootfs is a private writable copy of the busybox rootfs.
fn private_bundle(script: &str) -> Bundle {
    let b = Bundle::new(&["sh", "-c", script], json!({"root": {"readonly": false}}));
    let copy = b.path().join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a rootfs");
    let mut cfg = b.config();
    cfg["root"]["path"] = copy.to_str().unwrap().into();
    b.write_config(&cfg);
    b
}

/// (exit code, stdout) of peapod and of runc on `b`.
fn run_both(b: &Bundle, id: &str) -> [(i32, String); 2] {
    let (code, out, _) = b.run(&unique(id));
    let o = runc_run(b, &unique(&format!("{id}r")));
    [
        (code, out),
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ),
    ]
}

#[test]
fn bind_onto_dangling_symlink_matches_runc() {
    if !have_runc() {
        return;
    }
    let src = tempfile::Builder::new()
        .prefix("pp-mounts2-src")
        .tempdir()
        .unwrap();
    std::fs::write(src.path().join("f"), "dir-source\n").unwrap();
    let file = src.path().join("file");
    std::fs::write(&file, "file-source\n").unwrap();
    let script = "for p in /target /target/dir /tfile /pp-mounts2-escape /rel/up; do \
        stat -c '%n %F %a' $p; done; cat /dlink/f /elink/f /flink; \
        awk '{print $4, $5}' /proc/self/mountinfo | grep pp-mounts2-src";
    let mut outs = Vec::new();
    for runtime in ["peapod", "runc"] {
        let b = private_bundle(script);
        let root = b.path().join("rootfs");
        // Absolute, relative escaping the root, and a file target; all dangling.
        std::os::unix::fs::symlink("/target/dir", root.join("dlink")).unwrap();
        std::os::unix::fs::symlink("../../../../../../pp-mounts2-escape", root.join("elink"))
            .unwrap();
        std::os::unix::fs::symlink("/tfile", root.join("flink")).unwrap();
        std::fs::create_dir(root.join("rel")).unwrap();
        std::os::unix::fs::symlink("up", root.join("rel/link")).unwrap();
        let mut cfg = b.config();
        for (dest, source) in [
            ("/dlink", src.path()),
            ("/elink", src.path()),
            ("/flink", file.as_path()),
            ("/rel/link", src.path()),
        ] {
            cfg["mounts"].as_array_mut().unwrap().push(json!({
                "destination": dest, "type": "bind", "source": source, "options": ["rbind"],
            }));
        }
        b.write_config(&cfg);
        let (code, out, err) = if runtime == "peapod" {
            b.run(&unique("dangling"))
        } else {
            let o = runc_run(&b, &unique("danglingr"));
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        assert_eq!(code, 0, "{runtime}: {err}");
        // Never followed outside the rootfs.
        for escaped in ["/pp-mounts2-escape", "/target/dir", "/tfile"] {
            assert!(!Path::new(escaped).exists(), "{runtime} created {escaped}");
        }
        assert!(root.join("pp-mounts2-escape").is_dir(), "{runtime}");
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1], "peapod (left) and runc (right) differ");
    assert!(outs[0].contains("/tfile regular file 644"), "{}", outs[0]);
    assert!(outs[0].contains("file-source"), "{}", outs[0]);
}

/// The masks of a container's mountinfo: (mount point, root, per-mount options, fs type,
/// super options), the device replaced by its index of first appearance (numbers differ
/// between runs, sharing must not).
fn mask_view(mountinfo: &str, masked: &[&str]) -> Vec<String> {
    let mut devs: HashMap<String, usize> = HashMap::new();
    let mut v = Vec::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 10 || !masked.contains(&f[4]) {
            continue;
        }
        let sep = f.iter().position(|x| *x == "-").unwrap();
        let n = devs.len();
        let dev = *devs.entry(f[2].to_string()).or_insert(n);
        v.push(format!(
            "{} dev{dev} {} {} {} {}",
            f[4],
            f[3],
            f[5],
            f[sep + 1],
            f[sep + 3]
        ));
    }
    v
}

#[test]
fn masked_directories_share_one_tmpfs_like_runc() {
    if !have_runc() {
        return;
    }
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "cat /proc/self/mountinfo; stat -c '%n %a' /tmp /root; touch /tmp/x 2>&1; \
             wc -c </etc/hosts",
        ],
        json!({}),
    );
    // Only paths every busybox rootfs has (the VM's differs from the host's).
    let masked = [
        "/tmp",
        "/root",
        "/tmp",
        "/proc/acpi",
        "/sys/firmware",
        "/etc/hosts",
        "/missing",
        "/sys/firmware",
        "/etc/hosts",
    ];
    let mut cfg = b.config();
    cfg["linux"]["maskedPaths"] = json!(masked);
    b.write_config(&cfg);
    let [ours, theirs] = run_both(&b, "mask");
    assert_eq!(ours.0, theirs.0, "exit codes: {ours:?} {theirs:?}");
    let view = |o: &str| {
        let mut v = mask_view(o, &masked);
        v.extend(o.lines().filter(|l| !l.contains(" - ")).map(str::to_string));
        v
    };
    let (mine, runc) = (view(&ours.1), view(&theirs.1));
    assert_eq!(mine, runc, "peapod (left) and runc (right) differ");
    // One mount per path, and every directory on the same tmpfs.
    for p in ["/tmp dev", "/sys/firmware dev", "/etc/hosts dev"] {
        assert_eq!(
            mine.iter().filter(|l| l.starts_with(p)).count(),
            1,
            "{p}: {mine:?}"
        );
    }
    assert!(
        mine.iter()
            .any(|l| l.starts_with("/root dev0 / ro,relatime tmpfs ro,size=4k,nr_inodes=1")),
        "{mine:?}"
    );
}

#[test]
fn read_only_dev_with_devpts_matches_runc() {
    if !have_runc() {
        return;
    }
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "awk '$5 ~ \"^/(dev|tmp)\" {for (i = 7; i < NF; i++) if ($i == \"-\") \
             print $5, $6, $(i + 1), $(i + 3)}' /proc/self/mountinfo; ls /dev; \
             echo x >/dev/null && echo null-ok; touch /dev/x /tmp/x 2>&1; exit 3",
        ],
        json!({}),
    );
    let mut cfg = b.config();
    let dev = cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["destination"] == "/dev")
        .unwrap();
    dev["options"].as_array_mut().unwrap().push("ro".into());
    // A read-only tmpfs with a mount below it: also made read-only only at the end.
    for d in ["/tmp", "/tmp/sub"] {
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "ro"],
        }));
    }
    b.write_config(&cfg);
    let [ours, theirs] = run_both(&b, "rodev");
    assert_eq!(ours, theirs, "peapod (left) and runc (right) differ");
    assert_eq!(ours.0, 3, "{}", ours.1);
    assert!(ours.1.contains("/dev ro,nosuid tmpfs rw,"), "{}", ours.1);
    assert!(
        ours.1.contains("/tmp/sub ro,nosuid,relatime tmpfs rw"),
        "{}",
        ours.1
    );
    assert!(ours.1.contains("/dev/pts "), "{}", ours.1);
    assert!(ours.1.contains("Read-only file system"), "{}", ours.1);
}
