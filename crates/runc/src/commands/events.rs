use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::oci::Events;
use peapod_oci::container::{Container, Status, lifecycle};

pub fn run(root: &Path, args: &Events) -> Result<i32> {
    if args.stats {
        crate::outln!(
            "{}",
            lifecycle::stats(root, &args.id)
                .with_context(|| format!("stats of container `{}`", args.id))?
        );
        return Ok(0);
    }
    let interval = humantime::parse_duration(&args.interval)
        .or_else(|_| args.interval.parse::<u64>().map(Duration::from_secs))
        .with_context(|| format!("--interval `{}`: use a duration like 5s", args.interval))?;
    let c = Container::load(root, &args.id)?;
    let cg = c
        .cgroup()?
        .with_context(|| format!("container `{}` has no cgroup", args.id))?;
    let mut ooms = cg.oom_kill_count().unwrap_or(0);
    while c.status() != Status::Stopped {
        let n = cg.oom_kill_count().unwrap_or(ooms);
        if n > ooms {
            crate::outln!("{}", serde_json::json!({"type": "oom", "id": args.id}));
            ooms = n;
        }
        crate::outln!("{}", lifecycle::stats(root, &args.id)?);
        std::thread::sleep(interval);
    }
    Ok(0)
}
