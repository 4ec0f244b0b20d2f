use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cli::oci::{Format, Ps};
use peapod_oci::container::lifecycle;

pub fn run(root: &Path, args: &Ps) -> Result<i32> {
    let pids = lifecycle::pids(root, &args.id)
        .with_context(|| format!("ps of container `{}`", args.id))?;
    if let Format::Json = args.format {
        crate::outln!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    // Table: ps(1)'s own output, filtered to the container's pids (as runc does).
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args.clone()
    };
    let out = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    crate::outln!("{header}");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            crate::outln!("{l}");
        }
    }
    Ok(0)
}
