//! `/dev` inside the container: the default device nodes every runtime provides, the spec's
//! `linux.devices`, and the standard symlinks. All paths resolve inside the rootfs fd, so a
//! `/dev` that is a symlink in the image cannot redirect writes to the host
//! (CVE-2026-41579 / CVE-2026-47766).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag, makedev};
use nix::unistd::symlinkat;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::kernel::{Host, Kernel};
use super::{RootfsError, safe};

/// (path, major, minor): runc's default devices, all `c` with mode 0666.
pub const DEFAULT_DEVICES: &[(&str, i64, i64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

struct Node {
    path: PathBuf,
    kind: SFlag,
    major: i64,
    minor: i64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

fn node_of(d: &LinuxDevice) -> Result<Node, RootfsError> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RootfsError::BadMount {
                dest: d.path().clone(),
                reason: "linux.devices[].type `a` is not a device node type".into(),
            });
        }
    };
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    })
}

/// Create the device nodes and symlinks in the rootfs's `/dev`.
pub fn populate(root: BorrowedFd<'_>, spec: &Spec) -> Result<(), RootfsError> {
    populate_with(&Host, root, spec)
}

/// [`populate`] through the kernel `k`. In a user namespace other than the initial one
/// ([`Kernel::in_user_ns`]) mknod is denied: device nodes are bind-mounted from the host
/// instead (as runc does).
pub fn populate_with(k: &dyn Kernel, root: BorrowedFd<'_>, spec: &Spec) -> Result<(), RootfsError> {
    let userns = k.in_user_ns();
    let mut nodes: Vec<Node> = DEFAULT_DEVICES
        .iter()
        .map(|(p, ma, mi)| Node {
            path: PathBuf::from(p),
            kind: SFlag::S_IFCHR,
            major: *ma,
            minor: *mi,
            mode: 0o666,
            uid: None,
            gid: None,
        })
        .collect();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        nodes.push(node_of(d)?);
    }
    // A spec device replaces a default one at the same path, and a later entry an earlier
    // one: keep the last of each path (linear, whatever the length of linux.devices).
    let mut seen = std::collections::HashSet::new();
    let mut nodes: Vec<Node> = nodes
        .into_iter()
        .rev()
        .filter(|n| seen.insert(n.path.clone()))
        .collect();
    nodes.reverse();
    for n in &nodes {
        create_node(k, root, n, userns)?;
    }
    let dev = safe::mkdir_all(root, Path::new("/dev"), 0o755)?;
    for (target, link) in SYMLINKS {
        let name = Path::new(link).file_name().unwrap_or_default();
        match symlinkat(*target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(RootfsError::sys("symlink", Path::new(link), e)),
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = symlinkat("/proc/kcore", dev.as_fd(), "core");
    }
    Ok(())
}

fn create_node(
    k: &dyn Kernel,
    root: BorrowedFd<'_>,
    n: &Node,
    userns: bool,
) -> Result<(), RootfsError> {
    if !n.path.starts_with("/dev") {
        return Err(RootfsError::BadMount {
            dest: n.path.clone(),
            reason: "linux.devices[].path must be under /dev".into(),
        });
    }
    let parent = safe::mkdir_all(root, n.path.parent().unwrap_or(Path::new("/dev")), 0o755)?;
    let name = n.path.file_name().unwrap_or_default();
    if userns {
        let target = safe::ensure_file(root, &n.path)?;
        return k
            .mount(
                Some(&n.path),
                &safe::fd_path(&target),
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(|e| RootfsError::sys("bind device", &n.path, e));
    }
    // A leftover node of the image may not match the spec: replace it.
    let unlinked = nix::unistd::unlinkat(
        parent.as_fd(),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let dev = makedev(n.major as u64, n.minor as u64);
    match k.mknodat(
        parent.as_fd(),
        name,
        n.kind,
        Mode::from_bits_truncate(n.mode),
        dev,
    ) {
        Ok(()) => {}
        // Something the spec mounted there (a bind mount onto /dev/null, say) cannot be
        // unlinked (EBUSY): runc treats an existing device path as done, and so does peapod,
        // for a mount point only. An image's own file there was unlinked above.
        Err(Errno::EEXIST) if unlinked == Err(Errno::EBUSY) => return Ok(()),
        Err(e) => return Err(RootfsError::sys("mknod", &n.path, e)),
    }
    // mknod honours the umask; set the exact mode.
    k.fchmodat(parent.as_fd(), name, Mode::from_bits_truncate(n.mode))
        .map_err(|e| RootfsError::sys("chmod", &n.path, e))?;
    if n.uid.is_some() || n.gid.is_some() {
        k.fchownat(parent.as_fd(), name, n.uid, n.gid)
            .map_err(|e| RootfsError::sys("chown", &n.path, e))?;
    }
    Ok(())
}

/// Open `/dev/null` and prove it is the real character device 1:3 before it is bind-mounted
/// over masked paths (CVE-2025-31133: a symlinked `/dev/null` turned masking into a write).
pub fn open_verified_null() -> Result<OwnedFd, RootfsError> {
    let p = Path::new("/dev/null");
    let fd = nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("open", p, e))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| RootfsError::sys("stat", p, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != makedev(1, 3) {
        return Err(RootfsError::BadMount {
            dest: p.into(),
            reason: "/dev/null is not the null character device; refusing to mask with it".into(),
        });
    }
    Ok(fd)
}
