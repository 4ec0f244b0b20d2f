use anyhow::{Context, Result, bail};

use crate::cli::oci::Spec;
use peapod::spec_template::default_spec;

pub fn run(args: &Spec) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("spec: `{}` already exists: remove it first", path.display());
    }
    let json = serde_json::to_string_pretty(&default_spec(args.rootless))?;
    std::fs::write(&path, json + "\n").with_context(|| format!("write `{}`", path.display()))?;
    Ok(0)
}
