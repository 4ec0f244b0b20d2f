use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Create;
use peapod::container::create::create;

pub fn run(root: &Path, args: &Create) -> Result<i32> {
    create(root, &args.id, super::create_opts(&args.flags))
        .with_context(|| format!("create container `{}`", args.id))?;
    Ok(0)
}
