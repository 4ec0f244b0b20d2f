use anyhow::{Context, Result, bail};

use crate::cli::oci::Spec;
use peapod_oci::spec_template::{default_spec, host_entries, host_view_spec, prepare_host_root};

pub fn run(args: &Spec) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("spec: `{}` already exists: remove it first", path.display());
    }
    let spec = if args.host {
        let entries = host_entries();
        let root = args.bundle.join("rootfs");
        prepare_host_root(&root, &entries)
            .with_context(|| format!("create `{}`", root.display()))?;
        host_view_spec(&entries)
    } else {
        default_spec(args.rootless)
    };
    let mut json = peapod_oci::json::to_vec(&spec, true)?;
    json.push(b'\n');
    std::fs::write(&path, json).with_context(|| format!("write `{}`", path.display()))?;
    Ok(0)
}
