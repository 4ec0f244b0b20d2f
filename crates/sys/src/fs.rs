//! Atomic file replacement: the one writer of every state file, record, config and cache of
//! peapod (the OCI state, pod records, the node object, CNI's result cache).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replace `path` with `data`, mode `mode` exactly (whatever the umask): a new temp file in the
/// same directory (hidden, and its name has no `.conf`/`.conflist`/`.json` extension, so CNI's
/// config discovery never picks it up), fsync, rename over `path`, fsync the directory. A
/// reader sees the old file or the new one, never a torn one; so does a crash. On error the
/// temp file is removed; one a killed writer left behind is replaced, not an obstacle.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, true)
}

/// [`write_atomic_mode`] without the fsyncs: readers still see the old file or the new one,
/// but a power loss may leave either (or an empty file). For files whose loss a reboot makes
/// moot or that the writer's peers do not sync either: libcni's result cache (libcni writes it
/// without fsync, as host-local writes its allocations), a pod's `/etc/hosts` (kubelet's is
/// unsynced too). An fsync pair costs milliseconds on a busy disk, on every pod start.
pub fn write_replace_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> io::Result<()> {
        // A temp file of the same name was left by a killed writer whose pid we now have.
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have cleared bits of `mode`; set it exactly.
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// [`write_atomic_mode`] with mode 0600: state is private (a config holds the container's
/// environment, which may hold secrets).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_exact_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic_mode(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
        // The unsynced variant replaces the same way.
        write_replace_mode(&p, b"three", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a directory fails after the temp file was written.
        let p = dir.path().join("d");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("x"), b"").unwrap();
        assert!(write_atomic(&p, b"x").is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A temp file a killed writer left (same pid, same counter) does not block the next write.
    /// Checked by removing the `remove_file` before `create_new`: the write fails with EEXIST.
    #[test]
    fn a_stale_temp_file_is_no_obstacle() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let next = TMP_COUNTER.load(Ordering::Relaxed);
        // Other tests of this binary may take counter values meanwhile: cover the next few.
        for n in next..next + 64 {
            let stale = dir
                .path()
                .join(format!(".state.json.tmp-{}-{n}", std::process::id()));
            fs::write(stale, b"torn").unwrap();
        }
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
    }
}
