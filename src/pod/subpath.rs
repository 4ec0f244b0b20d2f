//! `subPath` volume mounts resolved inside their volume (the CVE-2017-1002101 class).
//!
//! A container can write into a volume, so any path below the volume's directory is under its
//! control: `ln -s / shared/evil` in one container must not give the next one mounting
//! `subPath: evil` the host's `/`. As kubelet does (`pkg/volume/util/subpath/subpath_linux.go`),
//! the supervisor opens the volume directory, resolves the subPath from that fd with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (a symlink to `/`, `../../..` or an
//! absolute target stays inside the volume, the volume acting as `/`), creates what is missing
//! inside the volume, and bind-mounts the resolved `O_PATH` fd (`/proc/self/fd/N`) at a path
//! below the pod directory, which only root can reach. The container's spec names that bind, so
//! a symlink swapped in after the check has nothing left to redirect.
//!
//! The bind lives in the supervisor's private mount namespace, which every container's mount
//! namespace is copied from; it vanishes with the supervisor.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag, fstat};

use super::PodError;
use crate::rootfs::safe;

/// Resolve `sub` (relative, normal components only: see
/// [`super::sandbox::sub_path_components`]) inside `volume` and bind what it names at `target`,
/// replacing what an earlier instance had there. A missing path is created as a directory
/// inside the volume, with the volume directory's mode (kubelet's `SafeMakeDir`).
pub fn bind(volume: &Path, sub: &Path, target: &Path) -> Result<(), PodError> {
    let root = nix::fcntl::open(
        volume,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PodError::io("open volume", volume, e.into()))?;
    let resolved = resolve(root.as_fd(), sub).map_err(|e| PodError::Invalid(e.to_string()))?;
    let is_dir = fstat(resolved.as_fd())
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .map_err(|e| PodError::io("stat subPath", &volume.join(sub), e.into()))?;
    replace_target(target, is_dir)?;
    nix::mount::mount(
        Some(&safe::fd_path(&resolved)),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| PodError::io("bind subPath at", target, e.into()))
}

/// The fd of `sub` inside `root`, created as a directory (with the root's mode) when missing.
fn resolve(
    root: std::os::fd::BorrowedFd<'_>,
    sub: &Path,
) -> Result<OwnedFd, crate::rootfs::RootfsError> {
    match safe::open(root, sub, OFlag::O_PATH) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => {
            let mode = fstat(root).map(|st| st.st_mode & 0o7777).unwrap_or(0o755);
            safe::mkdir_all(root, sub, mode)
        }
        Err(e) => Err(crate::rootfs::RootfsError::sys("resolve subPath", sub, e)),
    }
}

/// An empty mount point at `target` of the right kind: the bind of an earlier instance is
/// detached first (it stays in use by that instance's mount namespace until it exits).
fn replace_target(target: &Path, is_dir: bool) -> Result<(), PodError> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(PodError::io("unmount old subPath", target, e.into())),
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir(target),
        Ok(_) => std::fs::remove_file(target),
        Err(_) => Ok(()),
    }
    .map_err(|e| PodError::io("remove old subPath", target, e))?;
    if let Some(parent) = target.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| PodError::io("create", parent, e))?;
    }
    if is_dir {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(target)
            .map_err(|e| PodError::io("create", target, e))?;
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .map_err(|e| PodError::io("create", target, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The planning half without mounts: every hostile shape resolves to something inside
    /// the volume (the bind itself needs root and is covered by the privileged tests).
    #[test]
    fn symlinks_in_the_volume_resolve_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::write(vol.join("inside"), "in").unwrap();
        symlink("/", vol.join("root")).unwrap();
        symlink("../../../../../..", vol.join("up")).unwrap();
        symlink("/inside", vol.join("file")).unwrap();
        symlink("/etc/passwd", vol.join("hostfile")).unwrap();
        let rfd =
            nix::fcntl::open(&vol, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let real = |sub: &str| {
            let fd = resolve(rfd.as_fd(), Path::new(sub)).unwrap();
            std::fs::read_link(safe::fd_path(&fd)).unwrap()
        };
        let vol_real = vol.canonicalize().unwrap();
        assert_eq!(real("root"), vol_real);
        assert_eq!(real("up"), vol_real);
        assert_eq!(real("up/root/up"), vol_real);
        assert_eq!(real("file"), vol_real.join("inside"));
        // A target outside is looked up inside: `/etc/passwd` of the volume, created as a
        // directory as a missing subPath is; the host's file is untouched.
        assert_eq!(real("hostfile"), vol_real.join("etc/passwd"));
        assert!(vol.join("etc/passwd").is_dir());
        assert_eq!(real("a/b/c"), vol_real.join("a/b/c"));
        assert!(vol.join("a/b/c").is_dir());
    }
}
