use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::oci::Update;
use peapod_oci::container::lifecycle;
use peapod_oci::container::update::{UpdateFlags, resources};

/// The `--resources` document: a file, `-` for stdin, or none (`{}`).
fn base(args: &Update) -> Result<serde_json::Value> {
    Ok(match args.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("read resources from stdin")?;
            serde_json::from_str(&s).context("parse resources JSON from stdin")?
        }
        Some(f) => {
            serde_json::from_slice(&std::fs::read(f).with_context(|| format!("read `{f}`"))?)
                .with_context(|| format!("parse resources JSON `{f}`"))?
        }
        None => serde_json::json!({}),
    })
}

pub fn run(root: &Path, args: &Update) -> Result<i32> {
    // runc refuses these where Intel RDT is not enabled; peapod never has it.
    if args.l3_cache_schema.is_some() {
        anyhow::bail!("Intel RDT/CAT: --l3-cache-schema is not supported: peapod has no Intel RDT");
    }
    if args.mem_bw_schema.is_some() {
        anyhow::bail!("Intel RDT/MBA: --mem-bw-schema is not supported: peapod has no Intel RDT");
    }
    let flags = UpdateFlags {
        cpu_period: args.cpu_period,
        cpu_quota: args.cpu_quota,
        cpu_share: args.cpu_share,
        cpu_rt_period: args.cpu_rt_period,
        cpu_rt_runtime: args.cpu_rt_runtime,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        cpu_idle: args.cpu_idle,
        cpu_burst: args.cpu_burst,
        memory: args.memory.clone(),
        memory_reservation: args.memory_reservation.clone(),
        memory_swap: args.memory_swap.clone(),
        pids_limit: args.pids_limit,
        blkio_weight: args.blkio_weight,
    };
    let r = resources(base(args)?, &flags)?;
    lifecycle::update(root, &args.id, &r)
        .with_context(|| format!("update container `{}`", args.id))?;
    Ok(0)
}
