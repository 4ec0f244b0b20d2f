use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Delete;
use peapod_oci::container::lifecycle;

pub fn run(root: &Path, args: &Delete) -> Result<i32> {
    lifecycle::delete(root, &args.id, args.force)
        .with_context(|| format!("delete container `{}`", args.id))?;
    Ok(0)
}
