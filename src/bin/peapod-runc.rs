//! `peapod-runc`: the runc-compatible OCI verbs of peapod only, the binary containerd's
//! `BinaryName` and podman's `--runtime` point at (README "Performance": smaller and faster to
//! start than the full `peapod`, which accepts the same verbs).

fn main() {
    peapod_runc::app::main::<peapod_runc::cli::RuncCli>()
}
