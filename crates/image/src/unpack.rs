//! Unpack one layer tar into its own directory, in the form overlayfs stacks read-only:
//! a whiteout `.wh.NAME` becomes a 0/0 character device `NAME`, an opaque marker
//! `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory (the kernel's own
//! representation, Documentation/filesystems/overlayfs.rst "whiteouts and opaque directories").
//!
//! Every entry must stay inside the layer directory: paths with `..` are rejected, parents are
//! resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` for the entries peapod creates
//! itself, and `tar`'s `unpack_in` (>= 0.4.45: CVE-2026-33055/33056) canonicalizes the parent and
//! hard-link sources of the others.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, makedev, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, unlinkat};
use tar::EntryType;

use super::ImageError;

/// The xattr that marks an overlayfs directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): not files, skipped like containerd does.
const AUFS_META_PREFIX: &str = ".wh..wh.";

/// What unpacking a layer found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Bytes of regular file content.
    pub bytes: u64,
    /// Whiteouts (`.wh.NAME`) turned into 0/0 character devices.
    pub whiteouts: u64,
    /// Opaque markers applied.
    pub opaque_dirs: u64,
}

/// What a tar entry's name means for a layer.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryMeaning {
    /// The layer root itself (`./`): nothing to create.
    Root,
    /// `.wh..wh..opq`: the directory (relative path) is opaque.
    Opaque(PathBuf),
    /// `.wh.NAME`: NAME (relative path) is deleted.
    Whiteout(PathBuf),
    /// AUFS bookkeeping, skipped.
    Skip,
    /// An ordinary entry at this relative path.
    Path(PathBuf),
}

/// Normalize an entry name (leading `/` and `./` dropped) and classify it. `..` anywhere is an
/// error: a layer never needs it, and it is how an archive escapes.
pub fn classify(name: &Path) -> Result<EntryMeaning, ImageError> {
    let mut rel = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => rel.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::Escape {
                    entry: name.to_path_buf(),
                    reason: "`..` in the path".into(),
                });
            }
        }
    }
    let Some(base) = rel.file_name().map(|b| b.as_bytes().to_vec()) else {
        return Ok(EntryMeaning::Root);
    };
    let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    if base == OPAQUE_MARKER.as_bytes() {
        return Ok(EntryMeaning::Opaque(parent));
    }
    if base.starts_with(AUFS_META_PREFIX.as_bytes()) {
        return Ok(EntryMeaning::Skip);
    }
    if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if target.is_empty() || target == b"." || target == b".." {
            return Err(ImageError::Escape {
                entry: name.to_path_buf(),
                reason: "a whiteout without a file name".into(),
            });
        }
        return Ok(EntryMeaning::Whiteout(
            parent.join(OsStr::from_bytes(target)),
        ));
    }
    Ok(EntryMeaning::Path(rel))
}

/// Whether an xattr from a layer is applied. overlayfs' own `trusted.overlay.*` would let a
/// layer forge redirects, metacopy or opaque markers, and SELinux labels of another host mean
/// nothing here (containerd and podman drop them too).
fn keep_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") && name != b"security.selinux"
}

fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
}

/// Open directory `rel` below `root`, creating missing ones (0755, like the kernel's copy-up of a
/// missing parent would have to). A symlink on the way is an error, never followed.
fn mkdir_beneath(root: BorrowedFd<'_>, rel: &Path, entry: &Path) -> Result<OwnedFd, ImageError> {
    let err = |e: Errno| ImageError::Escape {
        entry: entry.to_path_buf(),
        reason: format!("parent `{}`: {e}", rel.display()),
    };
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        let parent = if prefix.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            prefix.clone()
        };
        prefix.push(name);
        match openat2(root, &prefix, beneath(OFlag::O_PATH | OFlag::O_DIRECTORY)) {
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                let pfd = openat2(root, &parent, beneath(OFlag::O_PATH | OFlag::O_DIRECTORY))
                    .map_err(err)?;
                match mkdirat(pfd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(err(e)),
                }
            }
            Err(e) => return Err(err(e)),
        }
    }
    let p = if prefix.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        prefix
    };
    openat2(root, &p, beneath(OFlag::O_RDONLY | OFlag::O_DIRECTORY)).map_err(err)
}

/// Remove whatever a same-layer entry left at `name` (a file or an empty directory).
fn clear(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => unlinkat(dir, name, UnlinkatFlags::RemoveDir),
        Err(e) => Err(e),
    }
}

fn set_opaque(dir: OwnedFd, entry: &Path) -> Result<(), ImageError> {
    use xattr::FileExt;
    let f = std::fs::File::from(dir);
    f.set_xattr(OPAQUE_XATTR, b"y")
        .map_err(|e| ImageError::io("set opaque xattr on", entry, e))
}

/// A 0/0 character device, overlayfs' whiteout.
fn make_whiteout(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    clear(dir, name)?;
    mknodat(dir, name, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
}

/// Create a device node or fifo entry (tar treats these as regular files).
fn make_special(
    root: BorrowedFd<'_>,
    rel: &Path,
    entry: &tar::Entry<'_, impl Read>,
) -> Result<(), ImageError> {
    let h = entry.header();
    let kind = match h.entry_type() {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let name = rel.file_name().unwrap_or_default();
    let dir = mkdir_beneath(root, rel.parent().unwrap_or(Path::new("")), rel)?;
    let num = |v: io::Result<Option<u32>>| v.ok().flatten().unwrap_or(0);
    let dev = makedev(
        u64::from(num(h.device_major())),
        u64::from(num(h.device_minor())),
    );
    let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o600) & 0o7777);
    let sys = |op: &'static str, e: Errno| ImageError::io(op, rel, io::Error::from(e));
    clear(dir.as_fd(), name).map_err(|e| sys("replace", e))?;
    mknodat(dir.as_fd(), name, kind, mode, dev).map_err(|e| sys("mknod", e))?;
    let uid = h.uid().unwrap_or(0) as u32;
    let gid = h.gid().unwrap_or(0) as u32;
    fchownat(
        dir.as_fd(),
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys("chown", e))?;
    // mknod's mode went through the umask; set it exactly (after chown, which clears setuid).
    fchmodat(dir.as_fd(), name, mode, FchmodatFlags::FollowSymlink).map_err(|e| sys("chmod", e))
}

/// The root cause of a tar error (tar wraps one io::Error in up to three "failed to unpack").
fn innermost(e: io::Error) -> io::Error {
    let kind = e.kind();
    let mut cur: &dyn std::error::Error = &e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if let Some(os) = cur
        .downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
    {
        return io::Error::from_raw_os_error(os);
    }
    io::Error::new(kind, cur.to_string())
}

/// Unpack the tar stream `r` into the existing, empty directory `dest`.
pub fn unpack_layer(r: &mut dyn Read, dest: &Path) -> Result<Unpacked, ImageError> {
    let root = nix::fcntl::open(
        dest,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::io("open layer directory", dest, io::Error::from(e)))?;
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    // Applied below instead, filtered and after chown (which clears security.capability), and
    // on every kind of entry (tar 0.4.46 sets them on regular files only).
    ar.set_unpack_xattrs(false);
    let mut out = Unpacked::default();
    let entries = ar
        .entries()
        .map_err(|e| ImageError::io("read layer tar in", dest, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::io("read layer tar in", dest, e))?;
        let name = entry
            .path()
            .map_err(|e| ImageError::io("read entry name in", dest, e))?
            .into_owned();
        let rel = match classify(&name)? {
            EntryMeaning::Root | EntryMeaning::Skip => continue,
            EntryMeaning::Opaque(dir) => {
                let fd = mkdir_beneath(root.as_fd(), &dir, &name)?;
                set_opaque(fd, &name)?;
                out.opaque_dirs += 1;
                continue;
            }
            EntryMeaning::Whiteout(target) => {
                let dir = mkdir_beneath(
                    root.as_fd(),
                    target.parent().unwrap_or(Path::new("")),
                    &name,
                )?;
                make_whiteout(dir.as_fd(), target.file_name().unwrap_or_default())
                    .map_err(|e| ImageError::io("create whiteout", &target, io::Error::from(e)))?;
                out.whiteouts += 1;
                continue;
            }
            EntryMeaning::Path(rel) => rel,
        };
        let kind = entry.header().entry_type();
        if kind.is_hard_link()
            && let Some(link) = entry
                .link_name()
                .map_err(|e| ImageError::io("read link name in", dest, e))?
            && link.components().any(|c| matches!(c, Component::ParentDir))
        {
            return Err(ImageError::Escape {
                entry: name,
                reason: format!("hard link to `{}`", link.display()),
            });
        }
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = match entry.pax_extensions() {
            Ok(Some(exts)) => exts
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let k = e.key_bytes().strip_prefix(b"SCHILY.xattr.")?;
                    keep_xattr(k).then(|| (k.to_vec(), e.value_bytes().to_vec()))
                })
                .collect(),
            _ => Vec::new(),
        };
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            make_special(root.as_fd(), &rel, &entry)?;
        } else {
            if kind.is_file() {
                out.bytes += entry.size();
            }
            // tar canonicalizes the parent (and a hard link's source) and refuses what lands
            // outside; anything else (ENOSPC, EIO...) is reported as it is.
            let inside = entry.unpack_in(dest).map_err(|e| {
                // tar nests its errors; the refusal may be a few levels down.
                if format!("{e:?}").contains("outside of destination") {
                    ImageError::Escape {
                        entry: name.clone(),
                        reason: e.to_string(),
                    }
                } else {
                    ImageError::io("unpack layer entry", &dest.join(&rel), innermost(e))
                }
            })?;
            if !inside {
                return Err(ImageError::Escape {
                    entry: name,
                    reason: "outside the layer".into(),
                });
            }
        }
        for (k, v) in xattrs {
            xattr::set(dest.join(&rel), OsStr::from_bytes(&k), &v).map_err(|e| {
                ImageError::io(
                    "set xattr",
                    &dest.join(&rel),
                    io::Error::new(e.kind(), format!("{}: {e}", String::from_utf8_lossy(&k))),
                )
            })?;
        }
    }
    Ok(out)
}
