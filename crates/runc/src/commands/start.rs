use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Id;
use peapod_oci::container::lifecycle;

pub fn run(root: &Path, args: &Id) -> Result<i32> {
    lifecycle::start(root, &args.id).with_context(|| format!("start container `{}`", args.id))?;
    Ok(0)
}
