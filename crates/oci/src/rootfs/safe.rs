//! Path resolution that can never leave the container root: every lookup is
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to an fd of the root, and
//! mounts target the resolved fd (`/proc/self/fd/N`), never a path string that a symlink
//! swapped in later could redirect (CVE-2021-30465, CVE-2025-31133).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

use super::RootfsError;

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// `path` as a relative path (container paths are absolute in the spec).
fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

/// Lookups of one path before EAGAIN is reported. With `..` in a path, `openat2` answers
/// EAGAIN when a rename or a mount anywhere on the system raced with the resolution (it can no
/// longer prove that `..` stayed inside the root) and asks the caller to retry (openat2(2));
/// another container starting meanwhile is enough. A retry resolves the whole path again, so
/// it is as safe as the first try; the bound only keeps a system renaming without pause from
/// spinning us forever.
const EAGAIN_RETRIES: u32 = 256;

/// Open `path` inside `root` with `flags`.
pub fn open(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let r = rel(path);
    let r = if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    };
    let mut retries = 0;
    loop {
        match openat2(root, &r, how(flags)) {
            Err(Errno::EAGAIN) if retries < EAGAIN_RETRIES => retries += 1,
            res => return res,
        }
    }
}

/// An `O_PATH` handle of `path` inside `root`.
pub fn lookup(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, RootfsError> {
    open(root, path, OFlag::O_PATH).map_err(|e| RootfsError::sys("resolve", path, e))
}

/// Create every missing directory of `path` inside `root` and return an `O_PATH` handle.
/// A dangling symlink on the way (an image's `/var/run -> /run` without `/run`) gets its
/// target created, resolved inside the root.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, RootfsError> {
    mkdir_all_depth(root, path, mode, 0)
}

/// Symlinks followed while creating one path, as the kernel's own limit (ELOOP).
const MAX_LINKS: u32 = 40;

fn mkdir_all_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: u32,
    depth: u32,
) -> Result<OwnedFd, RootfsError> {
    if depth > MAX_LINKS {
        return Err(RootfsError::sys("mkdir", path, Errno::ELOOP));
    }
    let r = rel(path);
    let mut prefix = PathBuf::new();
    for comp in r.components() {
        let parent = prefix.clone();
        prefix.push(comp);
        match open(root, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {
                let pfd = open(root, &parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .map_err(|e| RootfsError::sys("resolve", &parent, e))?;
                let name = comp.as_os_str();
                match mkdirat(pfd.as_fd(), name, Mode::from_bits_truncate(mode)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        if let Ok(target) = nix::fcntl::readlinkat(pfd.as_fd(), name) {
                            let target = Path::new("/").join(&parent).join(target);
                            mkdir_all_depth(root, &target, mode, depth + 1)?;
                        }
                    }
                    Err(e) => return Err(RootfsError::sys("mkdir", &prefix, e)),
                }
            }
            Err(e) => return Err(RootfsError::sys("resolve", &prefix, e)),
        }
    }
    open(root, &r, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| RootfsError::sys("resolve", path, e))
}

/// Make sure a regular file exists at `path` (a bind-mount target for a file source). A
/// dangling symlink there gets its target created, resolved inside the root, as runc does.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, RootfsError> {
    ensure_file_depth(root, path, 0)
}

fn ensure_file_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    depth: u32,
) -> Result<OwnedFd, RootfsError> {
    if depth > MAX_LINKS {
        return Err(RootfsError::sys("create", path, Errno::ELOOP));
    }
    if let Ok(fd) = open(root, path, OFlag::O_PATH) {
        return Ok(fd);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| RootfsError::sys("create", path, Errno::EINVAL))?;
    let pfd = mkdir_all(root, parent, 0o755)?;
    match nix::fcntl::openat(
        pfd.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        // A symlink whose target is missing: create the target, relative to the link's
        // directory (an absolute target is taken from the container root).
        Err(Errno::ELOOP) => {
            let target = nix::fcntl::readlinkat(pfd.as_fd(), name)
                .map_err(|e| RootfsError::sys("readlink", path, e))?;
            let target = Path::new("/").join(rel(parent)).join(target);
            return ensure_file_depth(root, &target, depth + 1).and_then(|_| lookup(root, path));
        }
        Err(e) => return Err(RootfsError::sys("create", path, e)),
    }
    lookup(root, path)
}

/// The magic-link path that makes `mount(2)` act on an fd (or `open(2)` reopen it).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink("/etc", root.join("evil")).unwrap();
        symlink("../../../../", root.join("up")).unwrap();
        let rfd =
            nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        // mkdir through an absolute symlink lands inside the root, not in the host's /etc.
        mkdir_all(rfd.as_fd(), Path::new("/evil/peapod-test-dir"), 0o755).unwrap();
        assert!(root.join("etc/peapod-test-dir").is_dir());
        assert!(!Path::new("/etc/peapod-test-dir").exists());
        mkdir_all(rfd.as_fd(), Path::new("/up/x/../y"), 0o755).unwrap();
        assert!(root.join("y").is_dir());
        ensure_file(rfd.as_fd(), Path::new("/a/b/file")).unwrap();
        assert!(root.join("a/b/file").is_file());
        // A dangling symlink as a file target: its target is created inside the root.
        symlink("/etc/peapod-test-file", root.join("flink")).unwrap();
        symlink("../../../peapod-rel-file", root.join("a/rlink")).unwrap();
        ensure_file(rfd.as_fd(), Path::new("/flink")).unwrap();
        ensure_file(rfd.as_fd(), Path::new("/a/rlink")).unwrap();
        assert!(root.join("etc/peapod-test-file").is_file());
        assert!(root.join("peapod-rel-file").is_file());
        assert!(!Path::new("/etc/peapod-test-file").exists());
    }

    /// Renames anywhere on the system make `openat2` fail a `..` lookup with EAGAIN (it could
    /// not prove the lookup stayed inside the root); `open` retries, so a container's mount
    /// target resolves however busy the host is (a parallel test run made `create` fail with
    /// `resolve ...: EAGAIN` before).
    #[test]
    fn dot_dot_lookups_survive_concurrent_renames() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("target"), b"").unwrap();
        let rfd =
            nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let stop = AtomicBool::new(false);
        let churn = dir.path().join("churn");
        std::fs::write(&churn, b"").unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let (a, b) = (churn.clone(), dir.path().join("churn2"));
                while !stop.load(Ordering::Relaxed) {
                    std::fs::rename(&a, &b).unwrap();
                    std::fs::rename(&b, &a).unwrap();
                }
            });
            let path = Path::new("/a/b/c/../../../../../../../a/b/../b/c/../../../target");
            let failures = (0..20_000)
                .filter(|_| open(rfd.as_fd(), path, OFlag::O_PATH).is_err())
                .count();
            stop.store(true, Ordering::Relaxed);
            assert_eq!(
                failures, 0,
                "lookups with `..` failed under concurrent renames"
            );
        });
    }
}
