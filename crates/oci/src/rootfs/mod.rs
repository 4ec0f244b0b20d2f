//! The container's filesystem view: mounts from the spec, `/dev`, pivot_root, masked and
//! read-only paths. Runs inside the container init after it entered its mount namespace.

pub mod copyup;
pub mod dev;
pub mod kernel;
pub mod options;
pub mod safe;

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, fstatvfs};
use oci_spec::runtime::{Mount, Spec};
use thiserror::Error;

use kernel::{Host, Kernel};

#[derive(Debug, Error)]
pub enum RootfsError {
    #[error("{op} `{path}`: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("mount `{dest}`: {reason}")]
    BadMount { dest: PathBuf, reason: String },
    /// runc's words (callers match them): a `proc` or `sysfs` mount whose destination in the
    /// rootfs is a symlink or another non-directory.
    #[error(
        "error mounting \"{typ}\" to rootfs at \"{}\": filesystem \"{typ}\" must be mounted on ordinary directory",
        dest.display()
    )]
    NotDirectory { typ: String, dest: PathBuf },
    /// A sysctl's file that is not procfs' (a file the image placed there, with no /proc
    /// mounted over it): never written.
    #[error("`{}` is not on procfs; refusing linux.sysctl `{key}`", path.display())]
    NotProcfs { key: String, path: PathBuf },
}

impl RootfsError {
    pub fn sys(op: &'static str, path: &Path, errno: Errno) -> Self {
        RootfsError::Sys {
            op,
            path: path.to_path_buf(),
            errno,
        }
    }
}

/// A host directory to expose at a cgroup mount: (subsystem or "" for cgroup v2, host dir).
pub type CgroupSource = (String, PathBuf);

/// Flags the kernel refuses to clear on a bind remount in a user namespace: keep whatever
/// the mount already has (runc `getUnprivilegedMountFlags`).
fn locked_flags(fd: BorrowedFd<'_>) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = fstatvfs(fd) {
        let fl = st.flags();
        for (s, m) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if fl.contains(s) {
                f |= m;
            }
        }
    }
    f
}

/// Prepare the mount namespace before pivot_root: stop propagation to the host, make the
/// rootfs a mount point and perform every mount of the spec inside it.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroups: &[CgroupSource],
    idmap_trees: Vec<(usize, OwnedFd)>,
) -> Result<(), RootfsError> {
    prepare_with(&Host, spec, rootfs, bundle, cgroups, idmap_trees)
}

/// [`prepare`] through the kernel `k`.
pub fn prepare_with(
    k: &dyn Kernel,
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroups: &[CgroupSource],
    mut idmap_trees: Vec<(usize, OwnedFd)>,
) -> Result<(), RootfsError> {
    let root_prop = root_propagation(spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // Nothing mounted below may propagate back to the host (runc uses rslave, not rprivate,
    // so host unmounts still reach the container). A requested propagation is applied as
    // given (recursive or not), as runc does.
    k.mount(None, Path::new("/"), None, root_prop, None)
        .map_err(|e| RootfsError::sys("set propagation of /", Path::new("/"), e))?;
    // With `shared`/`rshared` the mounts of this namespace are peers of the host's: make the
    // mount holding the rootfs private so the bind below (and everything mounted inside it)
    // stays here, whatever happens later; pivot_root also refuses a shared parent.
    make_parent_private(k, rootfs)?;
    // pivot_root needs the new root to be a mount point.
    k.mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| RootfsError::sys("bind rootfs", rootfs, e))?;
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("open rootfs", rootfs, e))?;
    let mut dev_is_bind = false;
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if m.destination() == Path::new("/dev") {
            dev_is_bind = is_bind(m);
        }
        // Each tree is closed as soon as it is attached (or on the way out on an error).
        let tree = idmap_trees
            .iter()
            .position(|(idx, _)| *idx == i)
            .map(|p| idmap_trees.swap_remove(p).1);
        mount_one(k, root.as_fd(), m, bundle, cgroups, tree)?;
    }
    if !dev_is_bind {
        dev::populate_with(k, root.as_fd(), spec)?;
    }
    Ok(())
}

/// Make the mount that holds `rootfs` private (the rootfs itself when it is a mount point,
/// else the nearest mount above it: `MS_PRIVATE` on a path that is not a mount point fails
/// with EINVAL), as runc's `rootfsParentMountPrivate`.
fn make_parent_private(k: &dyn Kernel, rootfs: &Path) -> Result<(), RootfsError> {
    let mut path = rootfs;
    loop {
        match k.mount(None, path, None, MsFlags::MS_PRIVATE, None) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if path != Path::new("/") => {
                path = path.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => return Err(RootfsError::sys("make rootfs parent private", path, e)),
        }
    }
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

fn mount_one(
    k: &dyn Kernel,
    root: BorrowedFd<'_>,
    m: &Mount,
    bundle: &Path,
    cgroups: &[CgroupSource],
    idmap_tree: Option<OwnedFd>,
) -> Result<(), RootfsError> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(RootfsError::BadMount {
            dest: dest.clone(),
            reason: "destination must be an absolute path".into(),
        });
    }
    let opts = options::parse(m.options().as_deref().unwrap_or_default())?;
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(k, root, dest, &opts, cgroups);
    }
    if let Some(tree) = idmap_tree {
        return mount_idmapped(k, root, dest, &opts, tree);
    }
    if opts.is_bind() || typ == "bind" {
        let src = m.source().as_deref().unwrap_or(Path::new(""));
        let src = if src.is_relative() {
            bundle.join(src)
        } else {
            src.to_path_buf()
        };
        let meta = std::fs::metadata(&src).map_err(|e| RootfsError::BadMount {
            dest: dest.clone(),
            reason: format!("bind source `{}`: {e}", src.display()),
        })?;
        let target = if meta.is_dir() {
            safe::mkdir_all(root, dest, 0o755)?
        } else {
            safe::ensure_file(root, dest)?
        };
        let rec = opts.flags & MsFlags::MS_REC;
        k.mount(
            Some(&src),
            &safe::fd_path(&target),
            None,
            MsFlags::MS_BIND | rec,
            None,
        )
        .map_err(|e| RootfsError::sys("bind mount", dest, e))?;
        let fresh = safe::lookup(root, dest)?;
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(k, &fresh, dest, extra)?;
        }
        propagate(k, &fresh, dest, &opts.propagation)?;
        return set_recursive(k, root, dest, &opts);
    }
    // A tmpfs without `mode=` over an existing directory keeps that directory's mode, as runc
    // does (a new directory gets the kernel's 1777).
    let existing_mode = (typ == "tmpfs" && !opts.data.split(',').any(|o| o.starts_with("mode=")))
        .then(|| safe::open(root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY).ok())
        .flatten()
        .and_then(|fd| nix::sys::stat::fstat(&fd).ok())
        .map(|st| st.st_mode & 0o7777);
    if typ == "proc" || typ == "sysfs" {
        ordinary_directory(root, dest, typ)?;
    }
    let target = safe::mkdir_all(root, dest, 0o755)?;
    // A read-only tmpfs or `/dev` is mounted writable and made read-only at the end (after
    // the device nodes, devpts and the mounts below it are in place), as runc does.
    let flags = if late_readonly(m, &opts) {
        opts.flags - MsFlags::MS_RDONLY
    } else {
        opts.flags
    };
    if opts.tmpcopyup && typ != "tmpfs" {
        return Err(RootfsError::BadMount {
            dest: dest.clone(),
            reason: "tmpcopyup works only on tmpfs mounts".into(),
        });
    }
    // Opened before the mount hides it: the copy source for tmpcopyup.
    let below = if opts.tmpcopyup {
        Some(copyup::open_dir(target.as_fd(), dest)?)
    } else {
        None
    };
    let source = m
        .source()
        .as_deref()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| typ.into());
    let data = match existing_mode {
        Some(m) if opts.data.is_empty() => format!("mode={m:04o}"),
        Some(m) => format!("mode={m:04o},{}", opts.data),
        None => opts.data.clone(),
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    k.mount(
        Some(&source),
        &safe::fd_path(&target),
        Some(typ),
        flags,
        data,
    )
    .map_err(|e| RootfsError::sys("mount", dest, e))?;
    if let Some(below) = below {
        let fresh = safe::open(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| RootfsError::sys("open", dest, e))?;
        copyup::copy_tree(below.as_fd(), fresh.as_fd(), dest)?;
    }
    if !opts.propagation.is_empty() {
        let fresh = safe::lookup(root, dest)?;
        propagate(k, &fresh, dest, &opts.propagation)?;
    }
    set_recursive(k, root, dest, &opts)
}

/// Attach an idmapped bind made on the host (a detached tree with `MOUNT_ATTR_IDMAP`, see
/// `container::create`) at `dest`, resolved inside the rootfs, then apply the bind's other
/// options, as runc does with the mount fd its parent sends.
fn mount_idmapped(
    k: &dyn Kernel,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &options::MountOptions,
    tree: OwnedFd,
) -> Result<(), RootfsError> {
    let is_dir = nix::sys::stat::fstat(&tree)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| RootfsError::sys("stat idmapped mount source", dest, e))?;
    let target = if is_dir {
        safe::mkdir_all(root, dest, 0o755)?
    } else {
        safe::ensure_file(root, dest)?
    };
    k.move_mount_onto(tree.as_fd(), target.as_fd())
        .map_err(|e| RootfsError::sys("move_mount idmapped", dest, e))?;
    drop(tree);
    let fresh = safe::lookup(root, dest)?;
    let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount_bind(k, &fresh, dest, extra)?;
    }
    propagate(k, &fresh, dest, &opts.propagation)?;
    set_recursive(k, root, dest, opts)
}

/// procfs and sysfs go on a directory only (runc's check): a `/proc` the image made a symlink
/// (to a host-looking path such as `/tmp/x`, or anywhere) or a file is refused before anything
/// is created or mounted. A missing destination is created as a directory.
fn ordinary_directory(root: BorrowedFd<'_>, dest: &Path, typ: &str) -> Result<(), RootfsError> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let pfd = match safe::open(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(RootfsError::sys("resolve", parent, e)),
    };
    match nix::sys::stat::fstatat(&pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => Err(RootfsError::NotDirectory {
            typ: typ.to_string(),
            dest: dest.to_path_buf(),
        }),
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(RootfsError::sys("stat", dest, e)),
    }
}

/// Whether `m` is a non-bind tmpfs or `/dev` asking for `ro`: mounted writable first and
/// remounted read-only by [`finish`] (runc `finalizeRootfs`).
fn late_readonly(m: &Mount, opts: &options::MountOptions) -> bool {
    opts.flags.contains(MsFlags::MS_RDONLY)
        && !opts.is_bind()
        && (m.typ().as_deref() == Some("tmpfs") || m.destination() == Path::new("/dev"))
}

/// The per-mount flags a read-only remount keeps from the mount's options.
const MOUNT_ATTR_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// The recursive options (`rro`, `rnosuid`...) on the mount at `dest` and every mount below
/// it, in one `mount_setattr(AT_RECURSIVE)` on a handle of the mount (runc `setRecAttr`).
fn set_recursive(
    k: &dyn Kernel,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &options::MountOptions,
) -> Result<(), RootfsError> {
    if opts.rec_set == 0 && opts.rec_clear == 0 {
        return Ok(());
    }
    let fresh = safe::lookup(root, dest)?;
    k.mount_setattr(fresh.as_fd(), true, opts.rec_set, opts.rec_clear)
        .map_err(|e| RootfsError::sys("mount_setattr", dest, e))
}

/// Remount a bind with exactly `flags`, as runc: first as asked (so the bind does not pick up
/// the source's nosuid/nodev); if the kernel refuses because the source has locked flags (a
/// user namespace), again with those kept.
fn remount_bind(
    k: &dyn Kernel,
    fd: &OwnedFd,
    dest: &Path,
    flags: MsFlags,
) -> Result<(), RootfsError> {
    let remount = |flags: MsFlags| {
        k.mount(
            None,
            &safe::fd_path(fd),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None,
        )
    };
    remount(flags)
        .or_else(|_| remount(flags | locked_flags(fd.as_fd()) & !MsFlags::MS_RDONLY))
        .map_err(|e| RootfsError::sys("remount", dest, e))
}

fn propagate(
    k: &dyn Kernel,
    fd: &OwnedFd,
    dest: &Path,
    props: &[MsFlags],
) -> Result<(), RootfsError> {
    for p in props {
        k.mount(None, &safe::fd_path(fd), None, *p, None)
            .map_err(|e| RootfsError::sys("set propagation", dest, e))?;
    }
    Ok(())
}

/// A `cgroup` mount shows the container's own cgroup: on v2 a bind of its directory, on v1 a
/// tmpfs with one bind per controller hierarchy (what runc's v1 mount looks like).
fn mount_cgroup(
    k: &dyn Kernel,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &options::MountOptions,
    cgroups: &[CgroupSource],
) -> Result<(), RootfsError> {
    let ro = opts.flags & MsFlags::MS_RDONLY;
    let base = opts.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let target = safe::mkdir_all(root, dest, 0o755)?;
    if let [(ss, dir)] = cgroups
        && ss.is_empty()
    {
        k.mount(
            Some(dir),
            &safe::fd_path(&target),
            None,
            MsFlags::MS_BIND,
            None,
        )
        .map_err(|e| RootfsError::sys("bind cgroup", dest, e))?;
        let fresh = safe::lookup(root, dest)?;
        return remount_bind(k, &fresh, dest, base | ro);
    }
    k.mount(
        Some(Path::new("tmpfs")),
        &safe::fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(|e| RootfsError::sys("mount cgroup tmpfs", dest, e))?;
    for (ss, dir) in cgroups {
        let sub = dest.join(ss);
        let t = safe::mkdir_all(root, &sub, 0o755)?;
        k.mount(Some(dir), &safe::fd_path(&t), None, MsFlags::MS_BIND, None)
            .map_err(|e| RootfsError::sys("bind cgroup", &sub, e))?;
        let fresh = safe::lookup(root, &sub)?;
        remount_bind(k, &fresh, &sub, base | ro)?;
    }
    if !ro.is_empty() {
        let fresh = safe::lookup(root, dest)?;
        remount_bind(k, &fresh, dest, base | ro)?;
    }
    Ok(())
}

/// `linux.rootfsPropagation` as mount flags (None: not set).
fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>, RootfsError> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(p) => options::propagation_flags(p)
            .map(Some)
            .ok_or_else(|| RootfsError::BadMount {
                dest: "/".into(),
                reason: format!("linux.rootfsPropagation `{p}` is not a propagation type"),
            }),
    }
}

/// Switch the root: pivot_root, or chroot after a move mount with `--no-pivot`; then the
/// requested `rootfsPropagation` on the new `/` (after the switch, as runc: applied before,
/// a shared root would reach the host's mounts).
pub fn pivot(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    pivot_with(&Host, spec, rootfs, no_pivot)
}

/// [`pivot`] through the kernel `k`.
pub fn pivot_with(
    k: &dyn Kernel,
    spec: &Spec,
    rootfs: &Path,
    no_pivot: bool,
) -> Result<(), RootfsError> {
    let prop = root_propagation(spec)?;
    if no_pivot && prop.is_some_and(|p| p.contains(MsFlags::MS_PRIVATE)) {
        return Err(RootfsError::BadMount {
            dest: "/".into(),
            reason: "rootfsPropagation of [r]private is not safe without pivot_root".into(),
        });
    }
    switch_root(k, rootfs, no_pivot)?;
    // Private is what make_parent_private already gave the root (runc skips it too).
    if let Some(flags) = prop.filter(|p| !p.contains(MsFlags::MS_PRIVATE)) {
        k.mount(None, Path::new("/"), None, flags, None)
            .map_err(|e| RootfsError::sys("set rootfs propagation", Path::new("/"), e))?;
    }
    Ok(())
}

/// Without a mount namespace of its own the container shares the runtime's: enter the rootfs
/// with `chroot` alone (runc does too), mounting nothing, so the host's mounts stay as they are.
pub fn chroot_only(rootfs: &Path) -> Result<(), RootfsError> {
    chroot_only_with(&Host, rootfs)
}

/// [`chroot_only`] through the kernel `k`.
pub fn chroot_only_with(k: &dyn Kernel, rootfs: &Path) -> Result<(), RootfsError> {
    k.chdir(rootfs)
        .map_err(|e| RootfsError::sys("chdir", rootfs, e))?;
    k.chroot(Path::new("."))
        .map_err(|e| RootfsError::sys("chroot", rootfs, e))?;
    k.chdir(Path::new("/"))
        .map_err(|e| RootfsError::sys("chdir", Path::new("/"), e))
}

fn switch_root(k: &dyn Kernel, rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    k.chdir(rootfs)
        .map_err(|e| RootfsError::sys("chdir", rootfs, e))?;
    if no_pivot {
        k.mount(
            Some(Path::new(".")),
            Path::new("/"),
            None,
            MsFlags::MS_MOVE,
            None,
        )
        .map_err(|e| RootfsError::sys("move rootfs to /", rootfs, e))?;
        k.chroot(Path::new("."))
            .map_err(|e| RootfsError::sys("chroot", rootfs, e))?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "."
        // then drops the old root without needing a directory for it inside the rootfs.
        let old = File::open("/").map_err(|e| {
            RootfsError::sys(
                "open old root",
                Path::new("/"),
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        k.pivot_root(Path::new("."), Path::new("."))
            .map_err(|e| RootfsError::sys("pivot_root", rootfs, e))?;
        k.fchdir(old.as_fd())
            .map_err(|e| RootfsError::sys("fchdir old root", Path::new("/"), e))?;
        // Keep the unmount from propagating to the host's mounts.
        k.mount(
            None,
            Path::new("."),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| RootfsError::sys("make old root slave", Path::new("/"), e))?;
        k.umount2(Path::new("."), MntFlags::MNT_DETACH)
            .map_err(|e| RootfsError::sys("unmount old root", Path::new("/"), e))?;
    }
    k.chdir(Path::new("/"))
        .map_err(|e| RootfsError::sys("chdir", Path::new("/"), e))
}

/// The entries of a path list in order, each once.
fn unique(list: Option<&Vec<String>>) -> Vec<&String> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .flatten()
        .filter(|p| seen.insert(p.as_str()))
        .collect()
}

/// After the root switch and before [`finish`], whose read-only paths make `/proc/sys`
/// read-only (runc's order): the hostname, the domain name, then the sysctls (in key order),
/// each written through a file verified to be on procfs.
pub fn set_names_and_sysctls(spec: &Spec) -> Result<(), RootfsError> {
    set_names_and_sysctls_with(&Host, Path::new("/"), spec)
}

/// [`set_names_and_sysctls`] through the kernel `k`, with the container's root at
/// `root_dir`.
pub fn set_names_and_sysctls_with(
    k: &dyn Kernel,
    root_dir: &Path,
    spec: &Spec,
) -> Result<(), RootfsError> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        k.sethostname(h)
            .map_err(|e| RootfsError::sys("sethostname", Path::new(h), e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        k.setdomainname(d)
            .map_err(|e| RootfsError::sys("setdomainname", Path::new(d), e))?;
    }
    let sysctls: std::collections::BTreeMap<_, _> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .collect();
    for (key, value) in sysctls {
        // `key` was checked by `container::spec::validate` (no empty or `..` components, and
        // in a namespace the container owns).
        let file = crate::linux::sysctl_file(key);
        let path = root_dir.join(file.strip_prefix("/").unwrap_or(&file));
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RootfsError::sys("open for linux.sysctl", &file, e))?;
        let st =
            nix::sys::statfs::fstatfs(&fd).map_err(|e| RootfsError::sys("statfs", &file, e))?;
        if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(RootfsError::NotProcfs {
                key: key.clone(),
                path: file,
            });
        }
        k.write_sysctl(fd.as_fd(), value)
            .map_err(|e| RootfsError::sys("write linux.sysctl", &file, e))?;
    }
    Ok(())
}

/// The container's terminal at `/dev/console` (an init's, after the root switch): the pty
/// slave `slave`, already verified, bind-mounted by fd onto a plain file. CVE-2025-52565: a
/// `/dev/console` the image made a symlink would carry the bind mount to wherever it points,
/// so it is replaced by a plain file (as runc does since 1.2.8), and neither the source nor
/// the target is mounted by a path that could be swapped.
pub fn bind_console(slave: BorrowedFd<'_>) -> Result<(), RootfsError> {
    bind_console_with(&Host, Path::new("/"), slave)
}

/// [`bind_console`] through the kernel `k`, with the container's root at `root_dir`.
pub fn bind_console_with(
    k: &dyn Kernel,
    root_dir: &Path,
    slave: BorrowedFd<'_>,
) -> Result<(), RootfsError> {
    let console = Path::new("/dev/console");
    let root = nix::fcntl::open(
        root_dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("open", root_dir, e))?;
    let dev = safe::open(
        root.as_fd(),
        Path::new("/dev"),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    )
    .map_err(|e| RootfsError::sys("open", Path::new("/dev"), e))?;
    if nix::sys::stat::fstatat(&dev, "console", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    {
        nix::unistd::unlinkat(&dev, "console", nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(|e| RootfsError::sys("remove the symlink", console, e))?;
    }
    let target = safe::ensure_file(root.as_fd(), console)?;
    k.mount(
        Some(&safe::fd_path(&slave)),
        &safe::fd_path(&target),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .map_err(|e| RootfsError::sys("bind mount the terminal onto", console, e))
}

/// After pivot_root: masked and read-only paths, a read-only root, final propagation.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    finish_with(&Host, Path::new("/"), spec)
}

/// [`finish`] through the kernel `k`, with the container's root at `root_dir` (`/` but in
/// the tests, which also leave `/dev/null` the host's).
pub fn finish_with(k: &dyn Kernel, root_dir: &Path, spec: &Spec) -> Result<(), RootfsError> {
    let root = nix::fcntl::open(
        root_dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("open", Path::new("/"), e))?;
    let linux = spec.linux().as_ref();
    // A path listed twice would stack a second mount on the first: every later lookup through
    // it walks the stack, so thousands of duplicates made the work quadratic. Each path once.
    for p in unique(linux.and_then(|l| l.readonly_paths().as_ref())) {
        let path = Path::new(p);
        let fd = match safe::open(root.as_fd(), path, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(RootfsError::sys("resolve readonly path", path, e)),
        };
        k.mount(
            Some(&safe::fd_path(&fd)),
            &safe::fd_path(&fd),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| RootfsError::sys("bind readonly path", path, e))?;
        let fresh = safe::lookup(root.as_fd(), path)?;
        remount_bind(
            k,
            &fresh,
            path,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )?;
    }
    mask_paths(
        k,
        root.as_fd(),
        unique(linux.and_then(|l| l.masked_paths().as_ref())),
    )?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let opts = options::parse(m.options().as_deref().unwrap_or_default())?;
        if late_readonly(m, &opts) {
            let dest = m.destination();
            let fresh = safe::lookup(root.as_fd(), dest)?;
            remount_bind(k, &fresh, dest, opts.flags & MOUNT_ATTR_FLAGS)?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        // By path: after pivot_root "/" is the container root itself, and this must work
        // in a container without /proc (no /proc/self/fd to go through).
        let flags = MsFlags::MS_RDONLY | locked_flags(root.as_fd()) & !MsFlags::MS_RDONLY;
        k.mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None,
        )
        .map_err(|e| RootfsError::sys("remount read-only", Path::new("/"), e))?;
    }
    Ok(())
}

/// Mask `paths`: a file with `/dev/null` (verified), every directory with the same empty
/// read-only tmpfs (one superblock, `size=4k,nr_inodes=1`, bound on the next ones), as runc
/// 1.5 does. A missing path is skipped.
fn mask_paths(
    k: &dyn Kernel,
    root: BorrowedFd<'_>,
    paths: Vec<&String>,
) -> Result<(), RootfsError> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = dev::open_verified_null()?;
    // The root of the first masking tmpfs: the bind source for the other directories.
    let mut tmpfs: Option<OwnedFd> = None;
    for p in paths {
        let path = Path::new(p);
        let fd = match safe::open(root, path, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(RootfsError::sys("resolve masked path", path, e)),
        };
        let is_dir = nix::sys::stat::fstat(&fd)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .unwrap_or(false);
        let res = match (&tmpfs, is_dir) {
            (None, true) => k.mount(
                Some(Path::new("tmpfs")),
                &safe::fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=4k,nr_inodes=1"),
            ),
            (Some(src), true) => k.mount(
                Some(&safe::fd_path(src)),
                &safe::fd_path(&fd),
                None,
                MsFlags::MS_BIND,
                None,
            ),
            (_, false) => k.mount(
                Some(&safe::fd_path(&null)),
                &safe::fd_path(&fd),
                None,
                MsFlags::MS_BIND,
                None,
            ),
        };
        res.map_err(|e| RootfsError::sys("mask", path, e))?;
        if is_dir && tmpfs.is_none() {
            tmpfs = Some(safe::lookup(root, path)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn mnt(dest: &str, typ: &str, opts: &[&str]) -> (Mount, options::MountOptions) {
        let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        let m = MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .options(opts.clone())
            .build()
            .unwrap();
        (m, options::parse(&opts).unwrap())
    }

    #[test]
    fn read_only_tmpfs_and_dev_are_made_read_only_last() {
        for (dest, typ, opts, want) in [
            ("/dev", "tmpfs", &["nosuid", "ro"][..], true),
            ("/tmp", "tmpfs", &["ro"][..], true),
            ("/dev", "tmpfs", &["nosuid"][..], false),
            ("/sys", "sysfs", &["ro"][..], false),
            ("/dev", "bind", &["rbind", "ro"][..], false),
            ("/x", "tmpfs", &["bind", "ro"][..], false),
        ] {
            let (m, o) = mnt(dest, typ, opts);
            assert_eq!(late_readonly(&m, &o), want, "{dest} {typ} {opts:?}");
        }
    }
}

#[cfg(test)]
mod seam_tests;
