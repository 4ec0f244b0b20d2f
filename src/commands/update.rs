use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;

use crate::cli::oci::Update;
use peapod_oci::container::lifecycle;

/// `512m` style sizes as runc's update takes them; -1 means unlimited.
fn size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("invalid size `{s}`: use bytes or a k, m, g suffix"))?;
    Ok(if n < 0 { n } else { n * mul })
}

fn resources(args: &Update) -> Result<LinuxResources> {
    let mut v = match args.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("read resources from stdin")?;
            serde_json::from_str::<serde_json::Value>(&s)
                .context("parse resources JSON from stdin")?
        }
        Some(f) => {
            serde_json::from_slice(&std::fs::read(f).with_context(|| format!("read `{f}`"))?)
                .with_context(|| format!("parse resources JSON `{f}`"))?
        }
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, val: serde_json::Value| {
        v[section][key] = val;
    };
    if let Some(x) = args.cpu_period {
        set("cpu", "period", x.into())
    }
    if let Some(x) = args.cpu_quota {
        set("cpu", "quota", x.into())
    }
    if let Some(x) = args.cpu_share {
        set("cpu", "shares", x.into())
    }
    if let Some(x) = args.cpu_rt_period {
        set("cpu", "realtimePeriod", x.into())
    }
    if let Some(x) = args.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", x.into())
    }
    if let Some(x) = &args.cpuset_cpus {
        set("cpu", "cpus", x.clone().into())
    }
    if let Some(x) = &args.cpuset_mems {
        set("cpu", "mems", x.clone().into())
    }
    if let Some(x) = args.cpu_idle {
        set("cpu", "idle", x.into())
    }
    if let Some(x) = args.cpu_burst {
        set("cpu", "burst", x.into())
    }
    if let Some(x) = &args.memory {
        set("memory", "limit", size(x)?.into())
    }
    if let Some(x) = &args.memory_reservation {
        set("memory", "reservation", size(x)?.into())
    }
    if let Some(x) = &args.memory_swap {
        set("memory", "swap", size(x)?.into())
    }
    if let Some(x) = args.pids_limit {
        set("pids", "limit", x.into())
    }
    if let Some(x) = args.blkio_weight {
        set("blockIO", "weight", x.into())
    }
    if v.as_object().is_some_and(|o| o.is_empty()) {
        bail!("update: nothing to change: pass --resources FILE|- or a flag such as --memory");
    }
    serde_json::from_value(v).context("resources do not match the OCI LinuxResources schema")
}

pub fn run(root: &Path, args: &Update) -> Result<i32> {
    let r = resources(args)?;
    lifecycle::update(root, &args.id, &r)
        .with_context(|| format!("update container `{}`", args.id))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes() {
        assert_eq!(size("512m").unwrap(), 512 << 20);
        assert_eq!(size("1G").unwrap(), 1 << 30);
        assert_eq!(size("100").unwrap(), 100);
        assert_eq!(size("-1").unwrap(), -1);
        assert!(size("lots").is_err());
    }
}
