use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Kill;
use peapod_oci::container::lifecycle;
use peapod_oci::signal;

pub fn run(root: &Path, args: &Kill) -> Result<i32> {
    let sig = signal::parse(&args.signal)?;
    lifecycle::kill(root, &args.id, sig, args.all)
        .with_context(|| format!("kill container `{}`", args.id))?;
    Ok(0)
}
