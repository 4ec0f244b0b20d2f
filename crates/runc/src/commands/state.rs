use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Id;
use peapod_oci::container::Container;

pub fn run(root: &Path, args: &Id) -> Result<i32> {
    let c = Container::load(root, &args.id)
        .with_context(|| format!("state of container `{}`", args.id))?;
    crate::outln!(
        "{}",
        serde_json::to_string_pretty(&c.state.to_oci(c.status()))?
    );
    Ok(0)
}
