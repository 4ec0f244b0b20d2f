//! The local image store: OCI image layouts and docker archives imported into
//! `<storage>/images`, each layer unpacked once into its own directory and shared, stacked
//! read-only with overlayfs for a container's rootfs.
//!
//! On disk (`<storage>/images`):
//! - `blobs/sha256/<hex>`: manifests and configs, verified against their digest;
//! - `layers/<diffid hex>/diff`: a layer unpacked (whiteouts in overlayfs form, see [`unpack`]),
//!   `layers/<diffid hex>/size`: its content size in bytes;
//! - `repositories.json`: name (`docker.io/library/busybox:latest`) → manifest digest;
//! - `lock`: `flock`ed shared by imports, exclusive by `rm` and `prune`; `refs.lock`: exclusive
//!   while an import publishes;
//! - `tmp/`: one staging directory per import, renamed into place only when complete, so a failed
//!   or interrupted import leaves nothing visible (`image prune` removes the remains).
//!
//! The pod layer calls [`Store::open`], [`Store::resolve`], [`Store::pull`], [`merge_process`],
//! [`merge_env`], [`working_dir`], [`user`], [`stop_signal`], [`pull_policy`],
//! [`never_pull_message`] (and the other kubelet messages) and [`mount_overlay`]:
//!
//! ```no_run
//! use std::path::Path;
//! use peapod_image::{self as image, PullPolicy, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (name, explicit) = ("busybox:1.36", Some("IfNotPresent"));
//! let store = Store::open(Path::new("/var/lib/peapod"))?;
//! let img = match (image::pull_policy(name, explicit)?, store.resolve(name)?) {
//!     (PullPolicy::Never, None) => return Err(image::never_pull_message(name).into()),
//!     (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, None) => {
//!         store.pull(name, &image::PullOptions::default())?; // ErrImagePull on failure
//!         store.resolve(name)?.ok_or("pulled image vanished")?
//!     }
//!     (_, Some(img)) => img,
//! };
//! let argv = image::merge_process(&img.config, None, None); // pod command/args here
//! let env = image::merge_env(&img.config, &[("K".into(), "v".into())]);
//! let cwd = image::working_dir(&img.config, None);
//! // Per container, in the pod's state directory: upper and work on one filesystem.
//! let (upper, work, rootfs) = (Path::new("c/upper"), Path::new("c/work"), Path::new("c/rootfs"));
//! image::mount_overlay(&img.layer_dirs, Some((upper, work)), rootfs)?;
//! # let _ = (argv, env, cwd);
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod digest;
pub mod http;
pub mod import;
pub mod overlay;
pub mod reference;
pub mod registry;
pub mod store;
pub mod tls;
pub mod unpack;

use std::path::{Path, PathBuf};

pub use config::{
    NO_COMMAND, lookup_user, merge_env, merge_process, stop_signal, user, working_dir,
};
pub use import::{ImportOptions, ImportProgress, ImportReport};
pub use overlay::mount_overlay;
pub use reference::{
    ERR_IMAGE_NEVER_PULL, ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, PullPolicy, Reference,
    already_present_message, back_off_message, never_pull_message, pull_policy,
};
pub use registry::PullOptions;
pub use store::{ImageInfo, ImageSummary, PruneReport, Store};

use thiserror::Error;

/// The image name reserved for pods that run on a read-only view of this machine (`image: host`
/// in a manifest, `peapod_kube::manifest::HOST_IMAGE`): never stored, refused as a name. The two
/// crates do not depend on each other; peapod-pod checks that they agree.
pub const HOST_IMAGE: &str = "host";

/// Errors of the image store.
#[derive(Debug, Error)]
pub enum ImageError {
    /// A file operation failed. (The cause is in the message, not a `source`: the CLI prints
    /// error chains, which would repeat it.)
    #[error("{op} `{path}`: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A name that docker would not accept.
    #[error("invalid image name `{name}`: {reason}")]
    InvalidReference { name: String, reason: String },
    /// An `imagePullPolicy` kubelet would reject.
    #[error(
        "imagePullPolicy: Unsupported value: \"{0}\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
    )]
    InvalidPullPolicy(String),
    /// Content does not match its digest.
    #[error(
        "verify {what}: digest {actual} does not match {expected}; the archive is corrupt or was altered"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// Content does not have the size its descriptor says.
    #[error("verify {what}: {actual} bytes, the descriptor says {expected}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A layer entry that would land outside the layer directory.
    #[error("unpack layer entry `{entry}`: {reason}; refusing an entry that escapes the layer")]
    Escape { entry: PathBuf, reason: String },
    /// The archive is not in a format peapod reads.
    #[error("import `{path}`: {reason}")]
    Format { path: PathBuf, reason: String },
    /// Something valid that peapod does not support (yet).
    #[error("unsupported {0}")]
    Unsupported(String),
    /// A JSON document that does not parse.
    #[error("parse {what}: {error}")]
    Json {
        what: String,
        error: serde_json::Error,
    },
    /// No image by that name.
    #[error("image `{0}` is not in the store; hint: `peapod image ls` lists the images")]
    NotFound(String),
    /// An image ID prefix that matches several images.
    #[error("image ID prefix `{0}` matches several images; give more digits")]
    Ambiguous(String),
    /// A name peapod reserves.
    #[error("image name `{0}` is reserved for pods that run on a read-only view of this machine")]
    Reserved(String),
    /// Talking to a registry failed.
    #[error("registry: {0}")]
    Registry(String),
    /// The trust configuration of HTTPS pulls is unusable (a bad CA file).
    #[error("tls: {0}")]
    TlsConfig(String),
    /// A TLS connection to a registry failed: the handshake or the server's certificate.
    #[error("tls connection to {host}: {reason}")]
    Tls { host: String, reason: String },
    /// An `https://` server answered in plain HTTP.
    #[error(
        "tls connection to {host}: the server answered in plain HTTP, not TLS; hint: pass --insecure for a plain-HTTP registry"
    )]
    NotTls { host: String },
    /// A mount failed.
    #[error("mount overlay on `{target}`: {reason}")]
    Mount { target: PathBuf, reason: String },
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: &Path, error: std::io::Error) -> ImageError {
        ImageError::Io {
            op,
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn json(what: impl Into<String>, error: serde_json::Error) -> ImageError {
        ImageError::Json {
            what: what.into(),
            error,
        }
    }
}

#[cfg(test)]
mod tests;
