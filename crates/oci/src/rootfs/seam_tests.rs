//! The rootfs setup through [`RecordingKernel`]: which mounts, in which order, with which
//! arguments, for a given spec, and which error a failing step reports. A temporary
//! directory stands in for the rootfs (path resolution, mkdir and file creation are real).

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use nix::errno::Errno;
use serde_json::json;

use super::kernel::{Op, RecordingKernel};
use super::*;

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&bundle).unwrap();
    Fx {
        root: root.canonicalize().unwrap(),
        bundle: bundle.canonicalize().unwrap(),
        _dir: dir,
    }
}

impl Fx {
    fn k(&self) -> RecordingKernel {
        RecordingKernel::new(&self.root)
    }
    fn prepare(&self, k: &RecordingKernel, s: &Spec) -> Result<(), RootfsError> {
        prepare_with(k, s, &self.root, &self.bundle, &v2(), Vec::new())
    }
    fn mkdir(&self, p: &str) {
        std::fs::create_dir_all(self.root.join(p)).unwrap();
    }
    fn file(&self, p: &str) {
        let p = self.root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
}

fn spec(mut v: serde_json::Value) -> Spec {
    v["ociVersion"] = "1.0.2".into();
    serde_json::from_value(v).unwrap()
}

fn v2() -> Vec<CgroupSource> {
    vec![(String::new(), PathBuf::from("/sys/fs/cgroup/ctr"))]
}

/// The mount operations after the first three (propagation of `/`, the rootfs's parent
/// made private, the rootfs bind), without the device nodes.
fn mounts_after_root(k: &RecordingKernel) -> Vec<String> {
    k.lines()
        .into_iter()
        .skip(3)
        .filter(|l| !["mknod", "chmod", "chown"].iter().any(|p| l.starts_with(p)))
        .collect()
}

fn mount_flags(op: &Op) -> MsFlags {
    match op {
        Op::Mount { flags, .. } => *flags,
        other => panic!("not a mount: {other:?}"),
    }
}

// ---- prepare: the mount plan ----

#[test]
fn default_spec_isolates_the_root_then_mounts_in_spec_order() {
    let f = fx();
    let k = f.k();
    f.prepare(&k, &Spec::default()).unwrap();
    let lines = k.lines();
    // rslave on `/` (nothing propagates back to the host), the mount holding the rootfs
    // private, the rootfs bound onto itself so that pivot_root takes it.
    assert_eq!(
        lines[..3],
        [
            "mount - / - REC|SLAVE -",
            "mount - / - PRIVATE -",
            "mount / / - BIND|REC -",
        ]
    );
    assert_eq!(
        mounts_after_root(&k),
        [
            "mount proc /proc proc  -",
            "mount tmpfs /dev tmpfs NOSUID|STRICTATIME mode=755,size=65536k",
            "mount devpts /dev/pts devpts NOSUID|NOEXEC newinstance,ptmxmode=0666,mode=0620,gid=5",
            "mount shm /dev/shm tmpfs NOSUID|NODEV|NOEXEC mode=1777,size=65536k",
            "mount mqueue /dev/mqueue mqueue NOSUID|NODEV|NOEXEC -",
            // sysfs is read-only from the start: only tmpfs and /dev are made ro late.
            "mount sysfs /sys sysfs RDONLY|NOSUID|NODEV|NOEXEC -",
            // cgroup v2: a bind of the container's own cgroup, remounted with the options.
            "mount /sys/fs/cgroup/ctr /sys/fs/cgroup - BIND -",
            "mount - /sys/fs/cgroup - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|BIND -",
        ]
    );
    // Every destination exists as a directory inside the rootfs, nowhere else.
    for d in ["proc", "dev/pts", "dev/shm", "dev/mqueue", "sys/fs/cgroup"] {
        assert!(f.root.join(d).is_dir(), "{d}");
    }
}

#[test]
fn default_devices_are_made_with_mknod_after_every_mount() {
    let f = fx();
    let k = f.k();
    f.prepare(&k, &Spec::default()).unwrap();
    let lines = k.lines();
    let first_node = lines.iter().position(|l| l.starts_with("mknod")).unwrap();
    assert!(lines[first_node..].iter().all(|l| !l.starts_with("mount")));
    let nodes: Vec<&str> = lines[first_node..].iter().map(String::as_str).collect();
    assert_eq!(
        nodes,
        [
            "mknod /dev/null c 1:3 0666",
            "chmod /dev/null 0666",
            "mknod /dev/zero c 1:5 0666",
            "chmod /dev/zero 0666",
            "mknod /dev/full c 1:7 0666",
            "chmod /dev/full 0666",
            "mknod /dev/random c 1:8 0666",
            "chmod /dev/random 0666",
            "mknod /dev/urandom c 1:9 0666",
            "chmod /dev/urandom 0666",
            "mknod /dev/tty c 5:0 0666",
            "chmod /dev/tty 0666",
        ]
    );
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        assert_eq!(
            std::fs::read_link(f.root.join("dev").join(link)).unwrap(),
            PathBuf::from(target)
        );
    }
}

#[test]
fn devices_in_a_user_namespace_are_bind_mounted_from_the_host() {
    let f = fx();
    let k = f.k().in_userns();
    f.prepare(&k, &spec(json!({}))).unwrap();
    let lines = k.lines();
    assert!(lines.iter().all(|l| !l.starts_with("mknod")));
    let binds: Vec<&String> = lines.iter().skip(3).collect();
    assert_eq!(
        binds,
        [
            "mount /dev/null /dev/null - BIND -",
            "mount /dev/zero /dev/zero - BIND -",
            "mount /dev/full /dev/full - BIND -",
            "mount /dev/random /dev/random - BIND -",
            "mount /dev/urandom /dev/urandom - BIND -",
            "mount /dev/tty /dev/tty - BIND -",
        ]
    );
    // The bind targets are empty files created inside the rootfs.
    assert!(f.root.join("dev/null").is_file());
}

#[test]
fn spec_devices_replace_defaults_and_get_their_owner() {
    let f = fx();
    let k = f.k();
    let s = spec(json!({"linux": {"devices": [
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 384, "uid": 1000},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
        {"path": "/dev/disk/loop9", "type": "b", "major": 7, "minor": 9, "gid": 6},
        {"path": "/dev/pipe", "type": "p", "major": 0, "minor": 0, "fileMode": 420},
    ]}}));
    f.prepare(&k, &s).unwrap();
    let nodes: Vec<String> = k
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("mount"))
        .collect();
    assert_eq!(
        nodes,
        [
            "mknod /dev/zero c 1:5 0666",
            "chmod /dev/zero 0666",
            "mknod /dev/full c 1:7 0666",
            "chmod /dev/full 0666",
            "mknod /dev/random c 1:8 0666",
            "chmod /dev/random 0666",
            "mknod /dev/urandom c 1:9 0666",
            "chmod /dev/urandom 0666",
            "mknod /dev/tty c 5:0 0666",
            "chmod /dev/tty 0666",
            // The spec's /dev/null replaces the default one, at the spec's place.
            "mknod /dev/null c 1:3 0600",
            "chmod /dev/null 0600",
            "chown /dev/null Some(1000) None",
            "mknod /dev/fuse c 10:229 0666",
            "chmod /dev/fuse 0666",
            "mknod /dev/disk/loop9 b 7:9 0666",
            "chmod /dev/disk/loop9 0666",
            "chown /dev/disk/loop9 None Some(6)",
            "mknod /dev/pipe p 0:0 0644",
            "chmod /dev/pipe 0644",
        ]
    );
    assert!(f.root.join("dev/disk").is_dir());
}

#[test]
fn devices_outside_dev_or_of_type_a_are_refused() {
    let f = fx();
    let s = spec(json!({"linux": {"devices": [
        {"path": "/etc/evil", "type": "c", "major": 1, "minor": 3}
    ]}}));
    let e = f.prepare(&f.k(), &s).unwrap_err().to_string();
    assert_eq!(
        e,
        "mount `/etc/evil`: linux.devices[].path must be under /dev"
    );
    assert!(!f.root.join("etc").exists());
    let s = spec(json!({"linux": {"devices": [
        {"path": "/dev/all", "type": "a", "major": 1, "minor": 3}
    ]}}));
    let e = f.prepare(&f.k(), &s).unwrap_err().to_string();
    assert!(e.contains("type `a` is not a device node type"), "{e}");
}

#[test]
fn a_bind_mounted_dev_gets_no_device_nodes() {
    let f = fx();
    let k = f.k();
    let s = spec(json!({"mounts": [
        {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}
    ]}));
    f.prepare(&k, &s).unwrap();
    assert_eq!(mounts_after_root(&k), ["mount /dev /dev - BIND|REC -"]);
    assert!(k.lines().iter().all(|l| !l.starts_with("mknod")));
    assert!(!f.root.join("dev/fd").exists());
}

#[test]
fn bind_mount_with_options_propagation_and_recursive_readonly() {
    let f = fx();
    std::fs::create_dir(f.bundle.join("data")).unwrap();
    let k = f.k();
    let s = spec(json!({"mounts": [{
        "destination": "/mnt/data", "type": "bind", "source": "data",
        "options": ["rbind", "ro", "nosuid", "rslave", "rro"]
    }]}));
    f.prepare(&k, &s).unwrap();
    let src = f.bundle.join("data").display().to_string();
    assert_eq!(
        mounts_after_root(&k),
        [
            // The source is relative to the bundle; the target a directory in the rootfs.
            format!("mount {src} /mnt/data - BIND|REC -"),
            // A bind ignores its flags: a remount applies them.
            "mount - /mnt/data - RDONLY|NOSUID|REMOUNT|BIND -".into(),
            "mount - /mnt/data - REC|SLAVE -".into(),
            // rro: every mount below too, with one mount_setattr(AT_RECURSIVE).
            format!(
                "mount_setattr /mnt/data rec=true set={:#x} clear=0x0",
                peapod_sys::mount_attr::RDONLY
            ),
        ]
    );
    assert!(f.root.join("mnt/data").is_dir());
}

#[test]
fn bind_mount_of_a_file_gets_a_file_target_and_no_remount_without_flags() {
    let f = fx();
    let src = f.bundle.join("hosts");
    std::fs::write(&src, "127.0.0.1 localhost\n").unwrap();
    let k = f.k();
    let s = spec(json!({"mounts": [{
        "destination": "/etc/hosts", "type": "bind", "source": src, "options": ["bind"]
    }]}));
    f.prepare(&k, &s).unwrap();
    assert_eq!(
        mounts_after_root(&k),
        [format!("mount {} /etc/hosts - BIND -", src.display())]
    );
    assert!(f.root.join("etc/hosts").is_file());
}

#[test]
fn missing_bind_source_names_the_mount_and_the_source() {
    let f = fx();
    let k = f.k();
    let s = spec(json!({"mounts": [{
        "destination": "/x", "type": "bind", "source": "/nonexistent/peapod-src", "options": ["rbind"]
    }]}));
    let e = f.prepare(&k, &s).unwrap_err().to_string();
    assert!(
        e.starts_with("mount `/x`: bind source `/nonexistent/peapod-src`:"),
        "{e}"
    );
    assert_eq!(k.lines().len(), 3);
}

#[test]
fn a_refused_bind_remount_is_retried_with_the_locked_flags_kept() {
    let f = fx();
    std::fs::create_dir(f.bundle.join("data")).unwrap();
    let k = f.k().fail_at(4, Errno::EPERM);
    let s = spec(json!({"mounts": [{
        "destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]
    }]}));
    f.prepare(&k, &s).unwrap();
    let ops = k.ops();
    let (first, retry) = (mount_flags(&ops[4]), mount_flags(&ops[5]));
    let want = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    assert_eq!(first, want);
    // The retry keeps what the source's mount has (user namespaces lock those flags).
    let locked = locked_flags(
        nix::fcntl::open(&f.root, OFlag::O_PATH, Mode::empty())
            .unwrap()
            .as_fd(),
    );
    assert_eq!(retry, want | (locked - MsFlags::MS_RDONLY));
}

#[test]
fn a_failed_remount_retry_is_reported_as_remount_of_the_destination() {
    let f = fx();
    std::fs::create_dir(f.bundle.join("data")).unwrap();
    let k = f.k().fail_if("mount - /data", Errno::EPERM);
    let s = spec(json!({"mounts": [{
        "destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]
    }]}));
    let e = f.prepare(&k, &s).unwrap_err();
    assert!(
        matches!(&e, RootfsError::Sys { op: "remount", path, errno: Errno::EPERM } if path == Path::new("/data")),
        "{e}"
    );
}

#[test]
fn readonly_tmpfs_is_mounted_writable_and_made_readonly_by_finish() {
    let f = fx();
    let k = f.k();
    let s = spec(json!({"mounts": [
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nosuid", "mode=1777"]}
    ]}));
    f.prepare(&k, &s).unwrap();
    assert_eq!(
        mounts_after_root(&k),
        ["mount tmpfs /tmp tmpfs NOSUID mode=1777"]
    );
    let k = f.k();
    finish_with(&k, &f.root, &s).unwrap();
    assert_eq!(k.lines(), ["mount - /tmp - RDONLY|NOSUID|REMOUNT|BIND -"]);
}

#[test]
fn a_tmpfs_over_an_existing_directory_keeps_its_mode() {
    let f = fx();
    f.mkdir("run");
    f.mkdir("var/cache");
    std::fs::set_permissions(f.root.join("run"), std::fs::Permissions::from_mode(0o710)).unwrap();
    let k = f.k();
    let s = spec(json!({"mounts": [
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/var/cache", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]},
        {"destination": "/new", "type": "tmpfs", "source": "tmpfs"},
    ]}));
    f.prepare(&k, &s).unwrap();
    let cache_mode = std::fs::metadata(f.root.join("var/cache"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(cache_mode & 0o7777, 0o755);
    assert_eq!(
        mounts_after_root(&k),
        [
            "mount tmpfs /run tmpfs  mode=0710,size=1m",
            // An explicit mode= wins.
            "mount tmpfs /var/cache tmpfs  mode=700",
            // A new directory: the kernel's default.
            "mount tmpfs /new tmpfs  -",
        ]
    );
}

#[test]
fn proc_on_a_symlink_is_refused_with_runcs_words_before_anything_is_mounted() {
    let f = fx();
    symlink("/tmp/x", f.root.join("proc")).unwrap();
    let k = f.k();
    let s = spec(json!({"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]}));
    let e = f.prepare(&k, &s).unwrap_err().to_string();
    assert_eq!(
        e,
        "error mounting \"proc\" to rootfs at \"/proc\": filesystem \"proc\" must be mounted on ordinary directory"
    );
    assert_eq!(k.lines().len(), 3);
    assert!(!f.root.join("tmp").exists());
}

#[test]
fn bad_mounts_are_refused_naming_the_destination() {
    let f = fx();
    for (m, want) in [
        (
            json!({"destination": "rel/dir", "type": "tmpfs", "source": "tmpfs"}),
            "mount `rel/dir`: destination must be an absolute path",
        ),
        (
            json!({"destination": "/x", "type": "proc", "source": "proc", "options": ["tmpcopyup"]}),
            "mount `/x`: tmpcopyup works only on tmpfs mounts",
        ),
    ] {
        let k = f.k();
        let e = f.prepare(&k, &spec(json!({ "mounts": [m] }))).unwrap_err();
        assert_eq!(e.to_string(), want);
        assert_eq!(k.lines().len(), 3, "{want}");
    }
}

#[test]
fn propagation_of_a_non_bind_mount_follows_the_mount() {
    let f = fx();
    let k = f.k();
    let s = spec(json!({"mounts": [
        {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]},
    ]}));
    f.prepare(&k, &s).unwrap();
    assert_eq!(
        mounts_after_root(&k),
        [
            "mount tmpfs /shared tmpfs  -",
            "mount - /shared - REC|SHARED -"
        ]
    );
}

#[test]
fn cgroup_v1_is_a_tmpfs_with_a_readonly_bind_per_hierarchy() {
    let f = fx();
    let k = f.k();
    let cgroups = vec![
        (
            "cpu,cpuacct".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ctr"),
        ),
        (
            "memory".to_string(),
            PathBuf::from("/sys/fs/cgroup/memory/ctr"),
        ),
    ];
    let s = spec(json!({"mounts": [{
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }]}));
    prepare_with(&k, &s, &f.root, &f.bundle, &cgroups, Vec::new()).unwrap();
    assert_eq!(
        mounts_after_root(&k),
        [
            "mount tmpfs /sys/fs/cgroup tmpfs NOSUID|NODEV|NOEXEC mode=755",
            "mount /sys/fs/cgroup/cpu,cpuacct/ctr /sys/fs/cgroup/cpu,cpuacct - BIND -",
            "mount - /sys/fs/cgroup/cpu,cpuacct - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|BIND -",
            "mount /sys/fs/cgroup/memory/ctr /sys/fs/cgroup/memory - BIND -",
            "mount - /sys/fs/cgroup/memory - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|BIND -",
            "mount - /sys/fs/cgroup - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|BIND -",
        ]
    );
}

#[test]
fn a_failure_at_step_n_stops_there_and_names_the_operation_and_path() {
    let f = fx();
    // Step 6: proc, /dev, devpts, then /dev/shm.
    let k = f.k().fail_if("mount shm", Errno::EPERM);
    let e = f.prepare(&k, &Spec::default()).unwrap_err();
    assert_eq!(e.to_string(), format!("mount `/dev/shm`: {}", Errno::EPERM));
    let lines = k.lines();
    assert_eq!(lines.len(), 7);
    assert!(lines[6].starts_with("mount shm /dev/shm tmpfs"));
    for (n, op, path) in [
        (0, "set propagation of /", PathBuf::from("/")),
        (2, "bind rootfs", PathBuf::from("ROOT")),
        (3, "mount", PathBuf::from("/proc")),
        (9, "bind cgroup", PathBuf::from("/sys/fs/cgroup")),
        (11, "mknod", PathBuf::from("/dev/null")),
        (12, "chmod", PathBuf::from("/dev/null")),
    ] {
        let f = fx();
        let k = f.k().fail_at(n, Errno::EACCES);
        let path = if path == Path::new("ROOT") {
            f.root.clone()
        } else {
            path
        };
        match f.prepare(&k, &Spec::default()).unwrap_err() {
            RootfsError::Sys {
                op: o,
                path: p,
                errno,
            } => {
                assert_eq!((o, &p, errno), (op, &path, Errno::EACCES), "step {n}");
            }
            e => panic!("step {n}: {e}"),
        }
        assert_eq!(k.lines().len(), n + 1, "nothing after step {n}");
    }
}

#[test]
fn the_rootfs_parent_is_made_private_walking_up_past_non_mount_points() {
    let f = fx();
    // EINVAL: the rootfs is not a mount point; its parent (outside the rootfs) is tried.
    let k = f.k().fail_at(1, Errno::EINVAL);
    f.prepare(&k, &spec(json!({}))).unwrap();
    let lines = k.lines();
    assert_eq!(lines[1], "mount - / - PRIVATE -");
    assert_eq!(
        lines[2],
        format!("mount - {} - PRIVATE -", f.root.parent().unwrap().display())
    );
    assert_eq!(lines[3], "mount / / - BIND|REC -");
    // Another error stops there.
    let k = f.k().fail_at(1, Errno::EPERM);
    let e = f.prepare(&k, &spec(json!({}))).unwrap_err().to_string();
    assert!(e.starts_with("make rootfs parent private `"), "{e}");
}

#[test]
fn rootfs_propagation_is_applied_before_and_after_the_switch() {
    let f = fx();
    let s = spec(json!({"linux": {"rootfsPropagation": "shared"}}));
    let k = f.k();
    f.prepare(&k, &s).unwrap();
    assert_eq!(k.lines()[0], "mount - / - SHARED -");
    let k = f.k();
    pivot_with(&k, &s, &f.root, false).unwrap();
    assert_eq!(k.lines().last().unwrap(), "mount - / - SHARED -");
    // private: already what make_parent_private gave the root, not applied again.
    let s = spec(json!({"linux": {"rootfsPropagation": "rprivate"}}));
    let k = f.k();
    pivot_with(&k, &s, &f.root, false).unwrap();
    assert_eq!(k.lines().last().unwrap(), "chdir /");
    let s = spec(json!({"linux": {"rootfsPropagation": "sideways"}}));
    let e = f.prepare(&f.k(), &s).unwrap_err().to_string();
    assert_eq!(
        e,
        "mount `/`: linux.rootfsPropagation `sideways` is not a propagation type"
    );
}

#[test]
fn pivot_root_stacks_the_old_root_and_detaches_it() {
    let f = fx();
    let k = f.k();
    pivot_with(&k, &spec(json!({})), &f.root, false).unwrap();
    assert_eq!(
        k.lines(),
        [
            "chdir /",
            "pivot_root . .",
            // fchdir to the old root (the host's `/` here: the fake did not pivot).
            "fchdir /",
            "mount - . - REC|SLAVE -",
            "umount2 . MntFlags(MNT_DETACH)",
            "chdir /",
        ]
    );
    assert_eq!(k.ops()[0], Op::Chdir("/".into()));
    let k = f.k().fail_if("pivot_root", Errno::EINVAL);
    let e = pivot_with(&k, &spec(json!({})), &f.root, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("pivot_root `{}`: {}", f.root.display(), Errno::EINVAL)
    );
    assert_eq!(k.lines().len(), 2);
}

#[test]
fn no_pivot_moves_the_rootfs_onto_slash_and_chroots() {
    let f = fx();
    let k = f.k();
    pivot_with(&k, &spec(json!({})), &f.root, true).unwrap();
    assert_eq!(
        k.lines(),
        ["chdir /", "mount . / - MOVE -", "chroot .", "chdir /"]
    );
    // A private root propagation is not safe without pivot_root: refused before any op.
    let k = f.k();
    let s = spec(json!({"linux": {"rootfsPropagation": "private"}}));
    let e = pivot_with(&k, &s, &f.root, true).unwrap_err().to_string();
    assert!(e.contains("not safe without pivot_root"), "{e}");
    assert!(k.lines().is_empty());
}

#[test]
fn without_a_mount_namespace_the_init_only_chroots() {
    let f = fx();
    let k = f.k();
    chroot_only_with(&k, &f.root).unwrap();
    assert_eq!(k.lines(), ["chdir /", "chroot .", "chdir /"]);
    let k = f.k().fail_at(1, Errno::EPERM);
    let e = chroot_only_with(&k, &f.root).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("chroot `{}`: {}", f.root.display(), Errno::EPERM)
    );
}

#[test]
fn an_idmapped_tree_is_attached_by_fd_then_gets_the_bind_options() {
    let f = fx();
    let tree_dir = tempfile::tempdir().unwrap();
    let tree = nix::fcntl::open(
        tree_dir.path(),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let k = f.k();
    let s = spec(json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/idm", "type": "bind", "source": tree_dir.path(), "options": ["rbind", "idmap", "ro"]},
    ]}));
    prepare_with(&k, &s, &f.root, &f.bundle, &v2(), vec![(1, tree)]).unwrap();
    let tree_path = tree_dir
        .path()
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        mounts_after_root(&k),
        [
            "mount proc /proc proc  -".to_string(),
            format!("move_mount {tree_path} /idm"),
            "mount - /idm - RDONLY|REMOUNT|BIND -".into(),
        ]
    );
}

// ---- finish: readonly and masked paths, read-only root ----

#[test]
fn masked_directories_share_one_tmpfs_and_files_get_dev_null() {
    let f = fx();
    f.mkdir("proc/acpi");
    f.mkdir("proc/scsi");
    f.file("proc/kcore");
    let k = f.k();
    let s = spec(json!({"linux": {"maskedPaths": [
        "/proc/acpi", "/proc/kcore", "/proc/missing", "/proc/scsi", "/proc/acpi"
    ]}}));
    finish_with(&k, &f.root, &s).unwrap();
    assert_eq!(
        k.lines(),
        [
            "mount tmpfs /proc/acpi tmpfs RDONLY size=4k,nr_inodes=1",
            // The verified host /dev/null here (the container's after pivot_root).
            "mount /dev/null /proc/kcore - BIND -",
            // A missing path is skipped, a duplicate masked once.
            "mount /proc/acpi /proc/scsi - BIND -",
        ]
    );
}

#[test]
fn readonly_paths_are_bound_onto_themselves_and_remounted_before_masking() {
    let f = fx();
    f.mkdir("proc/sys");
    f.mkdir("proc/acpi");
    let k = f.k();
    let s = spec(json!({"linux": {
        "readonlyPaths": ["/proc/sys", "/proc/nope", "/proc/sys"],
        "maskedPaths": ["/proc/acpi"],
    }}));
    finish_with(&k, &f.root, &s).unwrap();
    assert_eq!(
        k.lines(),
        [
            "mount /proc/sys /proc/sys - BIND|REC -",
            "mount - /proc/sys - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|BIND -",
            "mount tmpfs /proc/acpi tmpfs RDONLY size=4k,nr_inodes=1",
        ]
    );
    let k = f.k().fail_at(0, Errno::EPERM);
    let e = finish_with(&k, &f.root, &s).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("bind readonly path `/proc/sys`: {}", Errno::EPERM)
    );
}

#[test]
fn a_readonly_root_is_remounted_last_by_path() {
    let f = fx();
    f.mkdir("proc/acpi");
    f.mkdir("dev");
    let k = f.k();
    let s = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}],
        "linux": {"maskedPaths": ["/proc/acpi"]},
    }));
    finish_with(&k, &f.root, &s).unwrap();
    let lines = k.lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        "mount tmpfs /proc/acpi tmpfs RDONLY size=4k,nr_inodes=1"
    );
    assert_eq!(lines[1], "mount - /dev - RDONLY|REMOUNT|BIND -");
    let Op::Mount { target, flags, .. } = &k.ops()[2] else {
        panic!("{lines:?}")
    };
    assert_eq!(target, "/");
    assert!(flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT | MsFlags::MS_BIND));
    let k = f.k().fail_at(2, Errno::EROFS);
    let e = finish_with(&k, &f.root, &s).unwrap_err().to_string();
    assert_eq!(e, format!("remount read-only `/`: {}", Errno::EROFS));
}

#[test]
fn a_failed_mask_names_the_path() {
    let f = fx();
    f.file("proc/kcore");
    let k = f.k().fail_at(0, Errno::EPERM);
    let s = spec(json!({"linux": {"maskedPaths": ["/proc/kcore"]}}));
    let e = finish_with(&k, &f.root, &s).unwrap_err().to_string();
    assert_eq!(e, format!("mask `/proc/kcore`: {}", Errno::EPERM));
}

#[test]
fn failures_of_the_attribute_and_device_steps_name_them() {
    let f = fx();
    std::fs::create_dir(f.bundle.join("data")).unwrap();
    let s = spec(json!({"mounts": [{
        "destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "rnosuid"]
    }]}));
    let k = f.k().fail_if("mount_setattr", Errno::ENOSYS);
    let e = f.prepare(&k, &s).unwrap_err().to_string();
    assert_eq!(e, format!("mount_setattr `/data`: {}", Errno::ENOSYS));
    let k = f.k().in_userns().fail_if("mount /dev/zero", Errno::EPERM);
    let e = f.prepare(&k, &spec(json!({}))).unwrap_err().to_string();
    assert_eq!(e, format!("bind device `/dev/zero`: {}", Errno::EPERM));
    let k = f.k().fail_if("move_mount", Errno::EINVAL);
    let tree =
        nix::fcntl::open(&f.bundle, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    let s = spec(json!({"mounts": [{
        "destination": "/idm", "type": "bind", "source": "data", "options": ["rbind", "idmap"]
    }]}));
    let e = prepare_with(&k, &s, &f.root, &f.bundle, &v2(), vec![(0, tree)])
        .unwrap_err()
        .to_string();
    assert_eq!(e, format!("move_mount idmapped `/idm`: {}", Errno::EINVAL));
}

#[test]
fn sysfs_on_a_file_is_refused_and_a_missing_proc_is_created() {
    let f = fx();
    f.file("sys");
    let s = spec(json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
    ]}));
    let k = f.k();
    let e = f.prepare(&k, &s).unwrap_err().to_string();
    assert!(
        e.starts_with("error mounting \"sysfs\" to rootfs at \"/sys\""),
        "{e}"
    );
    assert!(f.root.join("proc").is_dir());
    assert_eq!(mounts_after_root(&k), ["mount proc /proc proc  -"]);
}

/// The UTS names first, then each sysctl (in key order) through its procfs file, before
/// `finish` makes /proc/sys read-only; the write goes through the seam, so nothing of this
/// machine's is changed. The host's /proc stands in for the container's.
#[test]
fn names_then_sysctls_are_set_through_procfs() {
    let f = fx();
    let s = spec(
        json!({"hostname": "h", "domainname": "d", "linux": {"sysctl": {
            "net.ipv4.ip_forward": "1", "kernel.shmmax": "4096"
        }}}),
    );
    let k = f.k();
    set_names_and_sysctls_with(&k, Path::new("/"), &s).unwrap();
    assert_eq!(
        k.lines(),
        [
            "sethostname h",
            "setdomainname d",
            "sysctl /proc/sys/kernel/shmmax 4096",
            "sysctl /proc/sys/net/ipv4/ip_forward 1",
        ]
    );
    let k = f.k().fail_if("setdomainname", Errno::EPERM);
    let e = set_names_and_sysctls_with(&k, Path::new("/"), &s)
        .unwrap_err()
        .to_string();
    assert_eq!(e, format!("setdomainname `d`: {}", Errno::EPERM));
    assert_eq!(k.lines().len(), 2, "nothing after the failed step");
}

/// A sysctl's path that is not procfs (a file the image placed where /proc/sys would be,
/// with no /proc mounted over it) is never written, and the error names the key.
#[test]
fn a_sysctl_file_outside_procfs_is_refused() {
    let f = fx();
    f.file("proc/sys/net/ipv4/ip_forward");
    let s = spec(json!({"linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}}));
    let k = f.k();
    let e = set_names_and_sysctls_with(&k, &f.root, &s)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "`/proc/sys/net/ipv4/ip_forward` is not on procfs; refusing linux.sysctl `net.ipv4.ip_forward`"
    );
    assert!(k.lines().is_empty());
    // A symlink planted there is not followed.
    let f = fx();
    f.mkdir("proc/sys/net/ipv4");
    symlink(
        "/proc/sys/net/ipv4/ip_forward",
        f.root.join("proc/sys/net/ipv4/ip_forward"),
    )
    .unwrap();
    let k = f.k();
    let e = set_names_and_sysctls_with(&k, &f.root, &s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not on procfs"), "{e}");
    assert!(k.lines().is_empty());
}

// ---- the console ----

/// An init's terminal: the slave's fd bind-mounted onto a plain `/dev/console` in the
/// container's root. A `/dev/console` the image made a symlink (CVE-2025-52565) is replaced,
/// and its target is neither mounted on nor changed. Any open fd stands in for the pty slave.
#[test]
fn the_console_is_bound_by_fd_onto_a_plain_file_never_through_a_symlink() {
    let f = fx();
    let slave = std::fs::File::open("/dev/null").unwrap();
    f.mkdir("dev");
    let k = f.k();
    bind_console_with(&k, &f.root, slave.as_fd()).unwrap();
    assert_eq!(k.lines(), ["mount /dev/null /dev/console - BIND -"]);
    assert!(f.root.join("dev/console").is_file());

    let f = fx();
    f.file("etc/passwd");
    f.mkdir("dev");
    symlink("/etc/passwd", f.root.join("dev/console")).unwrap();
    let k = f.k();
    bind_console_with(&k, &f.root, slave.as_fd()).unwrap();
    assert_eq!(k.lines(), ["mount /dev/null /dev/console - BIND -"]);
    let meta = std::fs::symlink_metadata(f.root.join("dev/console")).unwrap();
    assert!(meta.is_file(), "{meta:?}");
    assert_eq!(std::fs::read(f.root.join("etc/passwd")).unwrap(), b"x");

    // A /dev that is a symlink out of the root is resolved inside it.
    let f = fx();
    symlink("/", f.root.join("dev")).unwrap();
    let k = f.k();
    bind_console_with(&k, &f.root, slave.as_fd()).unwrap();
    assert_eq!(k.lines(), ["mount /dev/null /console - BIND -"]);
    assert!(f.root.join("console").is_file());

    let k = f.k().fail_if("mount", Errno::EPERM);
    let e = bind_console_with(&k, &f.root, slave.as_fd())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "bind mount the terminal onto `/dev/console`: {}",
            Errno::EPERM
        )
    );
}
