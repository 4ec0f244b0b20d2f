//! Mount options of an OCI `mounts[]` entry parsed into flags, propagation and data
//! (runc `parseMountOptions`). Pure; unit-tested without root.

use nix::mount::MsFlags;
use peapod_sys::mount_attr as attr;

use super::RootfsError;

/// `MS_NOSYMFOLLOW` (Linux 5.10; not in nix's `MsFlags`).
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// A mount entry ready for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the first `mount(2)` call.
    pub flags: MsFlags,
    /// Flags that must be cleared (e.g. `rw` after an inherited `ro`).
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
    /// `tmpcopyup`: the new tmpfs starts with a copy of the directory it covers.
    pub tmpcopyup: bool,
    /// Recursive options (`rro`, `rnosuid`...): `MOUNT_ATTR_*` set and cleared with
    /// `mount_setattr(AT_RECURSIVE)` on the mount and everything below it.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// `idmap` (Some(false)) or `ridmap` (Some(true), the idmapping on every mount of the
    /// tree): the bind is an idmapped mount; the last of the two wins, as in runc.
    pub idmap: Option<bool>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// A recursive option: (name, attribute, clear instead of set), as runc's `recAttrFlags`.
const RECURSIVE: &[(&str, u64, bool)] = &[
    ("rro", attr::RDONLY, false),
    ("rrw", attr::RDONLY, true),
    ("rnosuid", attr::NOSUID, false),
    ("rsuid", attr::NOSUID, true),
    ("rnodev", attr::NODEV, false),
    ("rdev", attr::NODEV, true),
    ("rnoexec", attr::NOEXEC, false),
    ("rexec", attr::NOEXEC, true),
    ("rnodiratime", attr::NODIRATIME, false),
    ("rdiratime", attr::NODIRATIME, true),
    ("rrelatime", attr::RELATIME, false),
    ("rnorelatime", attr::RELATIME, true),
    ("rnoatime", attr::NOATIME, false),
    ("ratime", attr::NOATIME, true),
    ("rstrictatime", attr::STRICTATIME, false),
    ("rnostrictatime", attr::STRICTATIME, true),
    ("rnosymfollow", attr::NOSYMFOLLOW, false),
    ("rsymfollow", attr::NOSYMFOLLOW, true),
];

/// Parse `options` of one mount.
pub fn parse(options: &[String]) -> Result<MountOptions, RootfsError> {
    let mut flags = MsFlags::empty();
    let mut cleared = MsFlags::empty();
    let mut propagation = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    let mut tmpcopyup = false;
    let (mut rec_set, mut rec_clear) = (0u64, 0u64);
    let mut idmap = None;
    for opt in options {
        let o = opt.as_str();
        if let Some(&(_, a, clear)) = RECURSIVE.iter().find(|(n, _, _)| *n == o) {
            // An access-time setting is one value of a field: mount_setattr(2) takes the
            // whole field in attr_clr whenever it changes (a part of it is EINVAL).
            let atime = a & attr::ATIME_MASK == a;
            if clear {
                rec_clear |= if atime && a != 0 { attr::ATIME_MASK } else { a };
            } else {
                rec_set |= a;
                if atime {
                    rec_clear |= attr::ATIME_MASK;
                }
            }
            continue;
        }
        let (set, clear) = match o {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "tmpcopyup" => {
                tmpcopyup = true;
                continue;
            }
            "idmap" | "ridmap" => {
                idmap = Some(o == "ridmap");
                continue;
            }
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                propagation.push(propagation_flags(o).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            _ => {
                data.push(o);
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
        cleared.insert(clear);
        cleared.remove(set);
    }
    Ok(MountOptions {
        flags,
        cleared,
        propagation,
        data: data.join(","),
        tmpcopyup,
        rec_set,
        rec_clear,
        idmap,
    })
}

/// `rootfsPropagation` and per-mount propagation names.
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// The option names `features` advertises.
pub const KNOWN: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn runc_default_proc_and_tmpfs() {
        let m = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(m.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(m.data, "mode=755,size=65536k");
        assert!(!m.is_bind());
    }

    #[test]
    fn bind_ro_with_propagation() {
        let m = p(&["rbind", "ro", "rslave", "nosuid"]);
        assert!(m.is_bind());
        assert!(
            m.flags
                .contains(MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID)
        );
        assert_eq!(m.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(m.data, "");
    }

    #[test]
    fn later_options_win() {
        let m = p(&["ro", "rw"]);
        assert!(!m.flags.contains(MsFlags::MS_RDONLY));
        assert!(m.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn recursive_options_are_mount_attributes() {
        let m = p(&[
            "rbind",
            "rro",
            "rnosuid",
            "rexec",
            "rnoatime",
            "nosymfollow",
        ]);
        assert_eq!(m.rec_set, attr::RDONLY | attr::NOSUID | attr::NOATIME);
        assert_eq!(m.rec_clear, attr::NOEXEC | attr::ATIME_MASK);
        assert!(m.flags.contains(MS_NOSYMFOLLOW));
        assert_eq!(m.data, "");
        let m = p(&["rrelatime"]);
        assert_eq!((m.rec_set, m.rec_clear), (0, attr::ATIME_MASK));
    }

    #[test]
    fn idmap_options_are_parsed_not_passed_as_data() {
        assert_eq!(p(&["bind"]).idmap, None);
        let m = p(&["rbind", "idmap"]);
        assert_eq!((m.idmap, m.data.as_str()), (Some(false), ""));
        assert_eq!(p(&["bind", "ridmap"]).idmap, Some(true));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(false));
    }
}
