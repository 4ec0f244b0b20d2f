use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Create;
use peapod_oci::container::create::create;

pub fn run(root: &Path, args: &Create) -> Result<i32> {
    // SIGINT, SIGTERM or SIGHUP during a slow create make it undo everything and fail,
    // instead of dying half-way.
    peapod_sys::catch_interrupts().context("install signal handlers")?;
    create(root, &args.id, super::create_opts(&args.flags))
        .with_context(|| format!("create container `{}`", args.id))?;
    Ok(0)
}
