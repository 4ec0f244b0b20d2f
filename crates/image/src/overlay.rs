//! A container rootfs from image layers: overlayfs with the layers as read-only lowers.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use super::ImageError;
use peapod_sys as sys;

/// The longest mount(2) option string (one page).
const MAX_MOUNT_DATA: usize = 4096;

/// Mount an overlay of `layer_dirs` (bottom → top, as [`super::ImageInfo::layer_dirs`]) on
/// `target`. With `upper = Some((upperdir, workdir))` the mount is writable (a container's own
/// changes land in upperdir; both on the same filesystem, workdir empty); with None it is
/// read-only.
///
/// Uses the new mount API with one `lowerdir+` per layer (Linux 6.8), which has no total length
/// limit, and falls back to mount(2), whose option string must fit in 4096 bytes. `index=off`:
/// the layers are shared by many overlays, and the inode index would tie each lower to one
/// upper.
pub fn mount_overlay(
    layer_dirs: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), ImageError> {
    let fail = |reason: String| ImageError::Mount {
        target: target.to_path_buf(),
        reason,
    };
    if layer_dirs.is_empty() {
        return Err(fail("an image with no layers".into()));
    }
    if upper.is_none() && layer_dirs.len() == 1 {
        // overlayfs wants two lowers without an upper: a read-only bind mount is the same view.
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(
            Some(&layer_dirs[0]),
            target,
            None::<&str>,
            bind,
            None::<&str>,
        )
        .map_err(|e| fail(format!("bind `{}`: {e}", layer_dirs[0].display())))?;
        return mount(
            None::<&str>,
            target,
            None::<&str>,
            bind | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| fail(format!("remount read-only: {e}")));
    }
    match mount_new_api(layer_dirs, upper, target) {
        Ok(()) => Ok(()),
        Err(NewApi::Unsupported) => mount_legacy(layer_dirs, upper, target).map_err(fail),
        Err(NewApi::Failed(why)) => Err(fail(why)),
    }
}

enum NewApi {
    /// No fsopen, or no `lowerdir+` (before Linux 6.8; seen at create before 6.5).
    Unsupported,
    Failed(String),
}

/// The messages the kernel left in a filesystem context (`e overlay: ...`).
fn fs_log(fs: &OwnedFd) -> String {
    let Ok(dup) = fs.try_clone() else {
        return String::new();
    };
    let mut f = std::fs::File::from(dup);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    out.join("; ")
}

fn mount_new_api(
    layers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), NewApi> {
    let fs = sys::fsopen("overlay").map_err(|_| NewApi::Unsupported)?;
    let failed =
        |what: String, e: std::io::Error| NewApi::Failed(format!("{what}: {e} {}", fs_log(&fs)));
    let path = |p: &Path| p.to_str().map(str::to_string);
    for (i, l) in layers.iter().rev().enumerate() {
        let s = path(l).ok_or(NewApi::Unsupported)?;
        match sys::fsconfig_set(&fs, "lowerdir+", Some(&s)) {
            Ok(()) => {}
            Err(e) if i == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                return Err(NewApi::Unsupported);
            }
            Err(e) => return Err(failed(format!("lowerdir+ `{s}`"), e)),
        }
    }
    if let Some((u, w)) = upper {
        let u = path(u).ok_or(NewApi::Unsupported)?;
        let w = path(w).ok_or(NewApi::Unsupported)?;
        sys::fsconfig_set(&fs, "upperdir", Some(&u))
            .map_err(|e| failed(format!("upperdir `{u}`"), e))?;
        sys::fsconfig_set(&fs, "workdir", Some(&w))
            .map_err(|e| failed(format!("workdir `{w}`"), e))?;
    }
    sys::fsconfig_set(&fs, "index", Some("off")).map_err(|e| failed("index=off".into(), e))?;
    let attrs = if upper.is_none() {
        libc::MOUNT_ATTR_RDONLY
    } else {
        0
    };
    // Before Linux 6.5 overlayfs parses its options only here (legacy fs_context), so an
    // unknown `lowerdir+` shows up as EINVAL at create: mount(2) then says what is wrong, if
    // anything else is.
    let mnt = sys::fsmount(&fs, attrs).map_err(|e| match e.raw_os_error() {
        Some(libc::EINVAL) => NewApi::Unsupported,
        _ => failed("create".into(), e),
    })?;
    sys::move_mount_to(&mnt, target).map_err(|e| NewApi::Failed(format!("move_mount: {e}")))
}

/// `:`, `,` and `\` are separators in overlay options: escape them.
fn escape(p: &Path) -> String {
    let mut s = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, ':' | ',' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// The option string for mount(2), or why it cannot be built.
pub fn legacy_options(layers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Result<String, String> {
    let lower: Vec<String> = layers.iter().rev().map(|l| escape(l)).collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some((u, w)) = upper {
        opts.push_str(&format!(",upperdir={},workdir={}", escape(u), escape(w)));
    }
    opts.push_str(",index=off");
    if opts.len() >= MAX_MOUNT_DATA {
        return Err(format!(
            "{} layers need {} bytes of mount options, over the kernel's {MAX_MOUNT_DATA} before Linux 6.8; hint: a shorter --storage path",
            layers.len(),
            opts.len()
        ));
    }
    Ok(opts)
}

fn mount_legacy(
    layers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), String> {
    let opts = legacy_options(layers, upper)?;
    let flags = if upper.is_none() {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .map_err(|e| e.to_string())
}
