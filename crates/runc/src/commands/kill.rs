use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Kill;
use peapod_oci::container::lifecycle;
use peapod_oci::signal;

pub fn run(root: &Path, args: &Kill) -> Result<i32> {
    // Signal 0 only checks that the container's init is alive (runc's `kill ID 0`).
    let sig = match args.signal.as_str() {
        "0" => 0,
        s => signal::parse(s)?,
    };
    lifecycle::kill(root, &args.id, sig, args.all)
        .with_context(|| format!("kill container `{}`", args.id))?;
    Ok(0)
}
