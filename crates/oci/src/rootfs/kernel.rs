//! The seam between the rootfs setup and the kernel: every privileged side effect of
//! [`super::prepare`], [`super::pivot`], [`super::chroot_only`], [`super::finish`] and
//! [`super::dev::populate`] (mount, remount, propagation, `mount_setattr`, `move_mount`,
//! `pivot_root`, `chdir`/`fchdir`/`chroot`, `umount2`, `mknod`/`chmod`/`chown` of device
//! nodes, and the user-namespace probe that picks mknod or bind), and of
//! [`super::set_names_and_sysctls`] (`sethostname`, `setdomainname`, the sysctl writes) goes
//! through [`Kernel`].
//!
//! [`Host`] forwards each call to nix/`peapod_sys` exactly as the code did before the seam.
//! The tests use `RecordingKernel` (cfg(test)): it records every operation with its
//! arguments, performs none of them and fails a chosen one, so the order and arguments of
//! the mounts for a spec, and the error a failure at step N reports, are unit-tested
//! without root.
//!
//! Why this cut (and not youki's whole-`Syscall` trait or a pure "plan then apply" split):
//! the setup interleaves path resolution with the mounts (each mount targets the fd that
//! `openat2(RESOLVE_IN_ROOT)` resolved just before, and later steps resolve through what
//! earlier ones mounted), so a plan computed up front would have to model the filesystem,
//! and the resolution is what protects against symlink races. The unprivileged parts
//! (openat2, mkdirat, creating files and symlinks, fstat/fstatvfs) therefore stay real and
//! run against a temporary directory standing in for the rootfs in the tests; only what
//! needs root crosses the seam. The recorder shows `/proc/self/fd/N` targets as the path
//! they resolve to inside that directory, so the records read like container paths.

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

/// The privileged operations of the rootfs setup. Errors are the raw errno; the callers add
/// the operation and the container path.
pub trait Kernel {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    /// `mount_setattr(2)` on the mount `fd` is a handle of (no idmapping).
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> Result<(), Errno>;
    /// Attach the detached tree `tree` onto `target` (`move_mount` by fds).
    fn move_mount_onto(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno>;
    fn chdir(&self, path: &Path) -> Result<(), Errno>;
    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<(), Errno>;
    fn chroot(&self, path: &Path) -> Result<(), Errno>;
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    ) -> Result<(), Errno>;
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> Result<(), Errno>;
    /// `fchownat(AT_SYMLINK_NOFOLLOW)`.
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), Errno>;
    /// Whether the process runs in a user namespace other than the initial one (device
    /// nodes are then bind-mounted from the host, mknod being denied).
    fn in_user_ns(&self) -> bool;
    fn sethostname(&self, name: &str) -> Result<(), Errno>;
    fn setdomainname(&self, name: &str) -> Result<(), Errno>;
    /// Write `value` into the sysctl file `file`, an `O_PATH` fd the caller verified to be on
    /// procfs, reopened for writing.
    fn write_sysctl(&self, file: BorrowedFd<'_>, value: &str) -> Result<(), Errno>;
}

fn errno_of(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// The real kernel.
pub struct Host;

impl Kernel for Host {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        nix::mount::umount2(target, flags)
    }

    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> Result<(), Errno> {
        peapod_sys::mount_setattr(fd, recursive, set, clear, None).map_err(errno_of)
    }

    fn move_mount_onto(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
        peapod_sys::move_mount_onto(tree, target).map_err(errno_of)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chdir(&self, path: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(path)
    }

    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        nix::unistd::fchdir(fd)
    }

    fn chroot(&self, path: &Path) -> Result<(), Errno> {
        nix::unistd::chroot(path)
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    ) -> Result<(), Errno> {
        nix::sys::stat::mknodat(dir, name, kind, perm, dev)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> Result<(), Errno> {
        nix::sys::stat::fchmodat(
            dir,
            name,
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    }

    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), Errno> {
        nix::unistd::fchownat(
            dir,
            name,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    fn sethostname(&self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn setdomainname(&self, name: &str) -> Result<(), Errno> {
        peapod_sys::setdomainname(name).map_err(errno_of)
    }

    fn write_sysctl(&self, file: BorrowedFd<'_>, value: &str) -> Result<(), Errno> {
        let fd = nix::fcntl::open(
            &super::safe::fd_path(&file),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        nix::unistd::write(&fd, value.as_bytes()).map(drop)
    }

    fn in_user_ns(&self) -> bool {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .unwrap_or(false)
    }
}

#[cfg(test)]
pub use recording::{Op, RecordingKernel};

#[cfg(test)]
mod recording {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;

    /// One recorded operation; paths are shown inside the fake rootfs (see [`RecordingKernel`]).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Op {
        Mount {
            source: Option<String>,
            target: String,
            fstype: Option<String>,
            flags: MsFlags,
            data: Option<String>,
        },
        Umount2 {
            target: String,
            flags: MntFlags,
        },
        MountSetattr {
            target: String,
            recursive: bool,
            set: u64,
            clear: u64,
        },
        MoveMount {
            tree: String,
            target: String,
        },
        PivotRoot {
            new_root: String,
            put_old: String,
        },
        Chdir(String),
        Fchdir(String),
        Chroot(String),
        Mknod {
            path: String,
            kind: SFlag,
            perm: u32,
            dev: u64,
        },
        Chmod {
            path: String,
            mode: u32,
        },
        Chown {
            path: String,
            uid: Option<u32>,
            gid: Option<u32>,
        },
        SetHostname(String),
        SetDomainname(String),
        Sysctl {
            path: String,
            value: String,
        },
    }

    fn flag_names(flags: MsFlags) -> String {
        let names: Vec<&str> = flags
            .iter_names()
            .map(|(n, _)| n.trim_start_matches("MS_"))
            .collect();
        let rest = flags.bits() & !MsFlags::all().bits();
        let mut s = names.join("|");
        if rest != 0 {
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(&format!("{rest:#x}"));
        }
        s
    }

    impl Op {
        /// A one-line summary for assertions: `mount SOURCE TARGET TYPE FLAGS DATA`, `-`
        /// for an absent field.
        pub fn line(&self) -> String {
            let o = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
            match self {
                Op::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => format!(
                    "mount {} {target} {} {} {}",
                    o(source),
                    o(fstype),
                    flag_names(*flags),
                    o(data)
                ),
                Op::Umount2 { target, flags } => format!("umount2 {target} {:?}", flags),
                Op::MountSetattr {
                    target,
                    recursive,
                    set,
                    clear,
                } => {
                    format!("mount_setattr {target} rec={recursive} set={set:#x} clear={clear:#x}")
                }
                Op::MoveMount { tree, target } => format!("move_mount {tree} {target}"),
                Op::PivotRoot { new_root, put_old } => format!("pivot_root {new_root} {put_old}"),
                Op::Chdir(p) => format!("chdir {p}"),
                Op::Fchdir(p) => format!("fchdir {p}"),
                Op::Chroot(p) => format!("chroot {p}"),
                Op::Mknod {
                    path,
                    kind,
                    perm,
                    dev,
                } => {
                    let k = if *kind == SFlag::S_IFBLK {
                        "b"
                    } else if *kind == SFlag::S_IFIFO {
                        "p"
                    } else {
                        "c"
                    };
                    format!(
                        "mknod {path} {k} {}:{} {perm:04o}",
                        nix::sys::stat::major(*dev),
                        nix::sys::stat::minor(*dev)
                    )
                }
                Op::Chmod { path, mode } => format!("chmod {path} {mode:04o}"),
                Op::Chown { path, uid, gid } => format!("chown {path} {uid:?} {gid:?}"),
                Op::SetHostname(n) => format!("sethostname {n}"),
                Op::SetDomainname(n) => format!("setdomainname {n}"),
                Op::Sysctl { path, value } => format!("sysctl {path} {value}"),
            }
        }
    }

    type FailIf = Box<dyn Fn(usize, &Op) -> Option<Errno>>;

    /// A fake kernel: records each call, performs nothing, and fails the calls a test
    /// chose. Paths under `root` (directly or through `/proc/self/fd/N` or a dir fd) are
    /// recorded as absolute paths inside it (`root` itself as `/`), others as given.
    pub struct RecordingKernel {
        root: PathBuf,
        userns: bool,
        ops: RefCell<Vec<Op>>,
        fail: Vec<FailIf>,
    }

    impl RecordingKernel {
        pub fn new(root: &Path) -> Self {
            RecordingKernel {
                root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
                userns: false,
                ops: RefCell::new(Vec::new()),
                fail: Vec::new(),
            }
        }

        /// Pretend to run in a user namespace.
        pub fn in_userns(mut self) -> Self {
            self.userns = true;
            self
        }

        /// Fail the `n`th operation (0-based) with `errno`.
        pub fn fail_at(mut self, n: usize, errno: Errno) -> Self {
            self.fail
                .push(Box::new(move |i, _| (i == n).then_some(errno)));
            self
        }

        /// Fail every operation whose [`Op::line`] starts with `prefix`.
        pub fn fail_if(mut self, prefix: &str, errno: Errno) -> Self {
            let prefix = prefix.to_string();
            self.fail.push(Box::new(move |_, op| {
                op.line().starts_with(&prefix).then_some(errno)
            }));
            self
        }

        pub fn ops(&self) -> Vec<Op> {
            self.ops.borrow().clone()
        }

        /// [`Op::line`] of every recorded operation.
        pub fn lines(&self) -> Vec<String> {
            self.ops.borrow().iter().map(Op::line).collect()
        }

        fn show(&self, p: &Path) -> String {
            let real = if p.starts_with("/proc/self/fd") {
                std::fs::read_link(p).unwrap_or_else(|_| p.to_path_buf())
            } else {
                p.to_path_buf()
            };
            match real.strip_prefix(&self.root) {
                Ok(rest) => Path::new("/").join(rest).display().to_string(),
                Err(_) => real.display().to_string(),
            }
        }

        fn fd(&self, fd: BorrowedFd<'_>) -> String {
            self.show(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))
        }

        fn at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> String {
            let d = self.fd(dir);
            Path::new(&d).join(name).display().to_string()
        }

        fn record(&self, op: Op) -> Result<(), Errno> {
            let i = self.ops.borrow().len();
            let err = self.fail.iter().find_map(|f| f(i, &op));
            self.ops.borrow_mut().push(op);
            err.map_or(Ok(()), Err)
        }
    }

    impl Kernel for RecordingKernel {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> Result<(), Errno> {
            self.record(Op::Mount {
                source: source.map(|s| self.show(s)),
                target: self.show(target),
                fstype: fstype.map(str::to_string),
                flags,
                data: data.map(str::to_string),
            })
        }

        fn umount2(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
            self.record(Op::Umount2 {
                target: self.show(target),
                flags,
            })
        }

        fn mount_setattr(
            &self,
            fd: BorrowedFd<'_>,
            recursive: bool,
            set: u64,
            clear: u64,
        ) -> Result<(), Errno> {
            self.record(Op::MountSetattr {
                target: self.fd(fd),
                recursive,
                set,
                clear,
            })
        }

        fn move_mount_onto(
            &self,
            tree: BorrowedFd<'_>,
            target: BorrowedFd<'_>,
        ) -> Result<(), Errno> {
            self.record(Op::MoveMount {
                tree: self.fd(tree),
                target: self.fd(target),
            })
        }

        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
            self.record(Op::PivotRoot {
                new_root: new_root.display().to_string(),
                put_old: put_old.display().to_string(),
            })
        }

        fn chdir(&self, path: &Path) -> Result<(), Errno> {
            self.record(Op::Chdir(self.show(path)))
        }

        fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
            self.record(Op::Fchdir(self.fd(fd)))
        }

        fn chroot(&self, path: &Path) -> Result<(), Errno> {
            self.record(Op::Chroot(path.display().to_string()))
        }

        fn mknodat(
            &self,
            dir: BorrowedFd<'_>,
            name: &OsStr,
            kind: SFlag,
            perm: Mode,
            dev: u64,
        ) -> Result<(), Errno> {
            self.record(Op::Mknod {
                path: self.at(dir, name),
                kind,
                perm: perm.bits(),
                dev,
            })
        }

        fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> Result<(), Errno> {
            self.record(Op::Chmod {
                path: self.at(dir, name),
                mode: mode.bits(),
            })
        }

        fn fchownat(
            &self,
            dir: BorrowedFd<'_>,
            name: &OsStr,
            uid: Option<u32>,
            gid: Option<u32>,
        ) -> Result<(), Errno> {
            self.record(Op::Chown {
                path: self.at(dir, name),
                uid,
                gid,
            })
        }

        fn in_user_ns(&self) -> bool {
            self.userns
        }

        fn sethostname(&self, name: &str) -> Result<(), Errno> {
            self.record(Op::SetHostname(name.into()))
        }

        fn setdomainname(&self, name: &str) -> Result<(), Errno> {
            self.record(Op::SetDomainname(name.into()))
        }

        fn write_sysctl(&self, file: BorrowedFd<'_>, value: &str) -> Result<(), Errno> {
            self.record(Op::Sysctl {
                path: self.fd(file),
                value: value.into(),
            })
        }
    }
}
