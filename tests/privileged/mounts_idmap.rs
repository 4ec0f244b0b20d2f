//! Idmapped mounts (issue 13 §3): `mounts[].uidMappings/gidMappings` and the `idmap`/`ridmap`
//! options, against runc 1.5.1. The bind source is a loop-mounted ext4 image made here (tmpfs
//! takes idmapped mounts only from Linux 6.3; the VM runs 6.1) with files owned by uid 1000:
//! what the container sees (`stat -c '%u %g'`) and the host owner of a file it creates must
//! be runc's, with and without a user namespace; refusals carry runc's words; a create that
//! fails after an idmapped tree was made leaves no state, mount or process behind. Before the
//! change peapod refused every such mount in its config validation (`mounts[i].uidMappings
//! (idmapped mounts) is not supported by peapod`, `mount option idmap is not supported`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, umount2};
use serde_json::json;

use crate::common::*;
use crate::mounts_propagation::{have_runc, runc_run};

/// An ext4 image loop-mounted on a temp dir: `d/` and `d/f` owned by 1000:1000 (mode 755),
/// `w/` owned by 0:0 and writable by all. Unmounted and detached on drop.
struct Ext4 {
    dir: tempfile::TempDir,
    loopdev: String,
}

impl Ext4 {
    fn new() -> Option<Ext4> {
        let have = |t: &str| {
            Command::new(t)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success() || !o.stderr.is_empty())
        };
        if !can_run(
            "needs mkfs.ext4 (e2fsprogs) and losetup",
            have("mkfs.ext4") && have("losetup"),
        ) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pp-idmap")
            .tempdir()
            .unwrap();
        let img = dir.path().join("pp-idmap.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let st = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&img)
            .status()
            .unwrap();
        assert!(st.success(), "mkfs.ext4 failed");
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let loopdev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let me = Ext4 { dir, loopdev };
        std::fs::create_dir(me.mnt()).unwrap();
        nix::mount::mount(
            Some(me.loopdev.as_str()),
            &me.mnt(),
            Some("ext4"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let d = me.mnt().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("f"), "data\n").unwrap();
        std::os::unix::fs::chown(&d, Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(d.join("f"), Some(1000), Some(1000)).unwrap();
        let w = me.mnt().join("w");
        std::fs::create_dir(&w).unwrap();
        std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o777)).unwrap();
        Some(me)
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Host (uid, gid) of `rel` in the image, then remove it (None: it does not exist).
    fn take_owner(&self, rel: &str) -> Option<(u32, u32)> {
        let p = self.mnt().join(rel);
        let m = std::fs::symlink_metadata(&p).ok()?;
        std::fs::remove_file(&p).unwrap();
        Some((m.uid(), m.gid()))
    }

    /// Mounts of the image in this (the host's) mount namespace.
    fn host_mounts(&self) -> usize {
        let mnt = self.mnt();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).map(Path::new) == Some(mnt.as_path()))
            .count()
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = umount2(&self.mnt(), MntFlags::MNT_DETACH);
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

fn maps(c: u32, h: u32, n: u32) -> serde_json::Value {
    json!([{"containerID": c, "hostID": h, "size": n}])
}

/// A bundle running `script` with `mount` added (at `/tmp`: every busybox rootfs has it, and
/// root of a user namespace could not make a new mount point in the root-owned rootfs) and, with `userns`, a user namespace
/// mapping container 0 to host 100000.
fn bundle(script: &str, mount: serde_json::Value, userns: bool) -> Bundle {
    let b = Bundle::new(&["sh", "-c", script], json!({}));
    let mut cfg = b.config();
    cfg["mounts"].as_array_mut().unwrap().push(mount);
    if userns {
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        cfg["linux"]["uidMappings"] = maps(0, 100000, 65536);
        cfg["linux"]["gidMappings"] = maps(0, 100000, 65536);
    }
    std::fs::write(
        b.path().join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    b
}

/// Exit code, stdout and host owner of the created file.
type Outcome = (i32, String, Option<(u32, u32)>);

/// (exit code, stdout) of peapod and runc on `b`, each followed by the host owner of the file
/// `created` (relative to the image) the container made, which is then removed.
fn both(b: &Bundle, id: &str, img: &Ext4, created: &str) -> [Outcome; 2] {
    let (code, out, err) = b.run(&unique(id));
    assert!(err.is_empty(), "peapod: {err}");
    let ours = (code, out, img.take_owner(created));
    let o = runc_run(b, &unique(&format!("{id}r")));
    let theirs = (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        img.take_owner(created),
    );
    [ours, theirs]
}

/// No container state under the bundle's state root (none at all when the create failed
/// before making it).
fn no_state(b: &Bundle) -> bool {
    !b.state_root.exists() || b.ok(&["list", "-q"]).trim().is_empty()
}

const SCRIPT: &str = "stat -c '%u %g' /tmp/d /tmp/d/f /tmp/w; \
    touch /tmp/d/new 2>&1; stat -c '%u %g' /tmp/d/new 2>&1; \
    touch /tmp/w/new 2>&1; stat -c '%u %g' /tmp/w/new 2>&1";

#[test]
fn idmapped_bind_without_user_namespace_matches_runc() {
    if !have_runc() {
        return;
    }
    let Some(img) = Ext4::new() else { return };
    // Disk 1000 shows as 0 and the other way round: root in the container owns d/ and what
    // it creates there is 1000 on disk.
    let own = json!({"uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1},
            {"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1},
            {"containerID": 0, "hostID": 1000, "size": 1}]});
    for (n, opts) in [
        vec!["rbind"],
        vec!["bind", "idmap"],
        vec!["rbind", "ridmap"],
        vec!["bind", "idmap", "ro"],
    ]
    .into_iter()
    .enumerate()
    {
        let mut m =
            json!({"destination": "/tmp", "type": "bind", "source": img.mnt(), "options": opts});
        merge(&mut m, own.clone());
        let b = bundle(SCRIPT, m, false);
        let [ours, theirs] = both(&b, &format!("idmap{n}"), &img, "d/new");
        assert_eq!(ours, theirs, "options {opts:?}: peapod, then runc");
        assert_eq!(ours.0, if opts.contains(&"ro") { 1 } else { 0 }, "{opts:?}");
        let lines: Vec<&str> = ours.1.lines().collect();
        assert_eq!(lines[..3], ["0 0", "0 0", "1000 1000"], "{opts:?}");
        if opts.contains(&"ro") {
            assert!(ours.1.contains("Read-only file system"), "{}", ours.1);
            assert_eq!(ours.2, None);
        } else {
            assert_eq!(lines[3], "0 0", "{opts:?}");
            assert_eq!(ours.2, Some((1000, 1000)), "{opts:?}");
        }
        let _ = img.take_owner("w/new");
    }
    assert_eq!(img.host_mounts(), 1, "a container's mount reached the host");
}

#[test]
fn idmap_option_takes_the_container_user_namespace_like_runc() {
    if !have_runc() {
        return;
    }
    let Some(img) = Ext4::new() else { return };
    // No maps of its own: the container's (0 -> 100000), so the container sees the disk's
    // ids and its root creates files owned by 0 on disk (100000 without idmap).
    let m = json!({"destination": "/tmp", "type": "bind", "source": img.mnt(), "options": ["rbind", "idmap"]});
    let b = bundle(SCRIPT, m, true);
    let [ours, theirs] = both(&b, "idmapu", &img, "w/new");
    assert_eq!(ours, theirs, "peapod, then runc");
    let lines: Vec<&str> = ours.1.lines().collect();
    assert_eq!(lines[..3], ["1000 1000", "1000 1000", "0 0"], "{}", ours.1);
    assert_eq!(ours.2, Some((0, 0)));
    let _ = img.take_owner("d/new");
    assert_eq!(img.host_mounts(), 1, "a container's mount reached the host");
}

#[test]
fn idmap_refusals_use_runcs_words() {
    if !have_runc() {
        return;
    }
    let one = json!({"uidMappings": maps(0, 1000, 1), "gidMappings": maps(0, 1000, 1)});
    let mut tmpfs =
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]});
    merge(&mut tmpfs, one.clone());
    let no_maps = json!({"destination": "/tmp", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]});
    let mut uid_only =
        json!({"destination": "/tmp", "type": "bind", "source": "/tmp", "options": ["bind"]});
    uid_only["uidMappings"] = maps(0, 1000, 1);
    for (n, (m, words)) in [
        (tmpfs, "id-mapped mounts are only supported for bind-mounts"),
        (
            no_maps,
            "id-mapped mounts must have both uid and gid mappings specified",
        ),
        (
            uid_only,
            "id-mapped mounts must have both uid and gid mappings specified",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let b = bundle("true", m, false);
        let id = unique(&format!("idmapx{n}"));
        let (code, _, err) = b.run(&id);
        assert_ne!(code, 0);
        assert!(err.contains(words), "peapod: {err}");
        let o = runc_run(&b, &unique(&format!("idmapx{n}r")));
        let theirs = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && theirs.contains(words),
            "runc: {theirs}"
        );
        assert!(no_state(&b), "state left behind");
    }
}

#[test]
fn failed_idmapped_create_leaves_nothing_behind() {
    if !root_ok() {
        return;
    }
    let Some(img) = Ext4::new() else { return };
    // The maps are only refused by the kernel (size 0): the create fails after the first
    // idmapped tree was made.
    let good = json!({"destination": "/tmp", "type": "bind", "source": img.mnt().join("d"),
        "options": ["bind"], "uidMappings": maps(0, 1000, 1), "gidMappings": maps(0, 1000, 1)});
    let b = bundle("true", good, false);
    let mut cfg = b.config();
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/x", "type": "bind", "source": img.mnt().join("w"),
        "options": ["bind"], "uidMappings": maps(0, 1000, 0), "gidMappings": maps(0, 1000, 1)}));
    std::fs::write(
        b.path().join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let id = unique("idmapfail");
    let o = b.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("write uid_map `0 1000 0`"), "{err}");
    assert!(no_state(&b), "state left behind");
    assert!(leftover_cgroups(&id).is_empty(), "cgroup left behind");
    assert_eq!(img.host_mounts(), 1, "a mount was left on the host");
    // The image can be unmounted: no detached tree or process holds it any more.
    umount2(&img.mnt(), MntFlags::empty()).expect("image still busy after a failed create");
}

#[test]
fn rbind_and_ridmap_reach_submounts_like_runc() {
    if !have_runc() {
        return;
    }
    let (Some(img), Some(sub)) = (Ext4::new(), Ext4::new()) else {
        return;
    };
    // A second image mounted below the first: `rbind` takes it along, `ridmap` idmaps it too.
    let below = img.mnt().join("sub");
    std::fs::create_dir(&below).unwrap();
    nix::mount::mount(
        Some(&sub.mnt()),
        &below,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(below);
    let script = "stat -c '%u %g' /tmp/d/f /tmp/sub/d/f 2>&1; \
        awk '$5 ~ \"^/tmp\" {print $5, $6}' /proc/self/mountinfo";
    let mut seen = Vec::new();
    for (n, opts) in [
        ["bind", "idmap"],
        ["rbind", "idmap"],
        ["rbind", "ridmap"],
        ["bind", "ridmap"],
    ]
    .into_iter()
    .enumerate()
    {
        let m = json!({"destination": "/tmp", "type": "bind", "source": img.mnt(), "options": opts,
            "uidMappings": maps(1000, 0, 1), "gidMappings": maps(1000, 0, 1)});
        let b = bundle(script, m, false);
        let [ours, theirs] = both(&b, &format!("idmapr{n}"), &img, "none");
        assert_eq!(ours, theirs, "options {opts:?}: peapod, then runc");
        seen.push(ours.1);
    }
    // The submount is missing without rbind, shows disk ids with idmap, mapped ones with ridmap.
    assert!(seen[0].contains("can't stat '/tmp/sub/d/f'"), "{}", seen[0]);
    assert!(seen[1].starts_with("0 0\n1000 1000\n"), "{}", seen[1]);
    assert!(seen[2].starts_with("0 0\n0 0\n"), "{}", seen[2]);
    assert!(
        seen[2].contains("/tmp/sub rw,relatime,idmapped"),
        "{}",
        seen[2]
    );
}
