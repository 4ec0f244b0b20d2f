//! `peapod image ...`: the local image store.

use std::path::PathBuf;

use clap::{Args, Subcommand};
pub use peapod_runc::output::Output;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout (directory or tar) or a docker archive (`docker save`)
    Import(Import),
    /// Pull an image from a registry (OCI distribution API over HTTPS, certificates always
    /// verified; a registry on localhost that does not speak TLS is used over plain HTTP)
    Pull(Pull),
    /// List images
    #[command(alias = "list")]
    Ls(Ls),
    /// Show an image's digest, config and layer directories as JSON
    Inspect(Inspect),
    /// Remove image names, and the layers no other image uses
    #[command(alias = "remove")]
    Rm(Rm),
    /// Remove unused blobs and layers and what interrupted imports left
    Prune,
}

#[derive(Debug, Args)]
pub struct Import {
    /// The archive (tar) or OCI layout directory
    pub path: PathBuf,
    /// Store the image as NAME[:TAG] instead of the names the archive carries
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "HTTPS unless --insecure; a registry on localhost, 127.0.0.0/8 or ::1 is \
    tried over HTTPS first and used over plain HTTP only when it answers in plain HTTP (docker's rule). \
    Certificates are checked against the system's CAs (/etc/ssl/certs) plus --cert-dir or \
    /etc/containers/certs.d/HOST[:PORT]/*.crt."
)]
pub struct Pull {
    /// `NAME[:TAG]` or `NAME@sha256:...` (`busybox` is `docker.io/library/busybox:latest`)
    pub name: String,
    /// Talk plain HTTP (no TLS) to the registry. There is no option to skip certificate
    /// verification: trust the registry's CA with --cert-dir instead
    #[arg(long)]
    pub insecure: bool,
    /// Trust the CA certificates in DIR/*.crt (PEM) besides the system's, instead of those in
    /// /etc/containers/certs.d/HOST[:PORT]/ (or /etc/docker/certs.d/HOST[:PORT]/)
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Ls {
    /// Print image IDs only
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format (`--format` as podman; wide adds the digest and creation time)
    #[arg(short, long, visible_alias = "format", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct Inspect {
    /// Name (`busybox:1.36`), `name@sha256:...` or image ID prefix
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Rm {
    /// Names or image IDs
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove it even if a pod that has not finished uses it
    #[arg(short, long)]
    pub force: bool,
}
