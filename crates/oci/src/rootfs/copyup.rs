//! `tmpcopyup` (runc and crun's extension, which podman uses for `--read-only` and
//! `--tmpfs`): a tmpfs mounted over a directory starts with a copy of what it hides. The
//! old directory is opened before the mount and read through that fd afterwards.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, fchownat, symlinkat};

use super::RootfsError;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn err<'a>(op: &'static str, name: &'a Path) -> impl FnOnce(nix::errno::Errno) -> RootfsError + 'a {
    move |e| RootfsError::sys(op, name, e)
}

/// Copy the tree under `from` into `to` (both directories), keeping modes and owners.
pub fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>, at: &Path) -> Result<(), RootfsError> {
    let mut dir = Dir::from_fd(nix::unistd::dup(from).map_err(err("dup", at))?)
        .map_err(err("read directory", at))?;
    let entries: Vec<(std::ffi::CString, Option<Type>)> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_owned(), e.file_type()))
        .filter(|(n, _)| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for (name, _) in entries {
        let path = at.join(std::ffi::OsStr::from_bytes_compat(name.as_bytes()));
        let st = fstatat(from, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(err("stat", &path))?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        if kind == SFlag::S_IFDIR {
            mkdirat(to, name.as_c_str(), mode).map_err(err("mkdir", &path))?;
            let src: OwnedFd = openat(from, name.as_c_str(), DIR_FLAGS, Mode::empty())
                .map_err(err("open", &path))?;
            let dst: OwnedFd = openat(to, name.as_c_str(), DIR_FLAGS, Mode::empty())
                .map_err(err("open", &path))?;
            copy_tree(src.as_fd(), dst.as_fd(), &path)?;
        } else if kind == SFlag::S_IFREG {
            let src = openat(
                from,
                name.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(err("open", &path))?;
            let dst = openat(
                to,
                name.as_c_str(),
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                mode,
            )
            .map_err(err("create", &path))?;
            let (mut r, mut w) = (std::fs::File::from(src), std::fs::File::from(dst));
            std::io::copy(&mut r, &mut w).map_err(|e| {
                RootfsError::sys(
                    "copy",
                    &path,
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                )
            })?;
        } else if kind == SFlag::S_IFLNK {
            let target = readlinkat(from, name.as_c_str()).map_err(err("readlink", &path))?;
            symlinkat(target.as_os_str(), to, name.as_c_str()).map_err(err("symlink", &path))?;
        } else {
            mknodat(to, name.as_c_str(), kind, mode, st.st_rdev).map_err(err("mknod", &path))?;
        }
        fchownat(
            to,
            name.as_c_str(),
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err("chown", &path))?;
        if kind != SFlag::S_IFLNK {
            // Creation honours the umask; set the exact mode (setuid bits survive chown too).
            fchmodat(to, name.as_c_str(), mode, FchmodatFlags::FollowSymlink)
                .map_err(err("chmod", &path))?;
        }
    }
    Ok(())
}

/// Open a directory for [`copy_tree`] before something is mounted over it.
pub fn open_dir(fd: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, RootfsError> {
    openat(fd, ".", DIR_FLAGS, Mode::empty()).map_err(err("open", path))
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_links_and_modes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(a.path().join("d")).unwrap();
        std::fs::write(a.path().join("d/f"), b"data").unwrap();
        std::fs::set_permissions(
            a.path().join("d/f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("d/f", a.path().join("l")).unwrap();
        let fa = nix::fcntl::open(a.path(), DIR_FLAGS, Mode::empty()).unwrap();
        let fb = nix::fcntl::open(b.path(), DIR_FLAGS, Mode::empty()).unwrap();
        copy_tree(fa.as_fd(), fb.as_fd(), Path::new("/")).unwrap();
        assert_eq!(std::fs::read(b.path().join("d/f")).unwrap(), b"data");
        let m = std::fs::metadata(b.path().join("d/f")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(b.path().join("l")).unwrap(),
            Path::new("d/f")
        );
    }
}
