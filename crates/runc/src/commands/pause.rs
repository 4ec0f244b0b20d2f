use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Id;
use peapod_oci::container::lifecycle;

pub fn pause(root: &Path, args: &Id) -> Result<i32> {
    lifecycle::pause(root, &args.id).with_context(|| format!("pause container `{}`", args.id))?;
    Ok(0)
}

pub fn resume(root: &Path, args: &Id) -> Result<i32> {
    lifecycle::resume(root, &args.id).with_context(|| format!("resume container `{}`", args.id))?;
    Ok(0)
}
