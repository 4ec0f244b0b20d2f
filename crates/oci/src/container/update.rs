//! runc's `update` flags onto an OCI `LinuxResources` object: sizes as runc's `units.RAMInBytes`
//! takes them (`512m`), each flag overriding the same field of the `--resources` document.

use oci_spec::runtime::LinuxResources;
use thiserror::Error;

/// The resource flags of `update`; `None` leaves the field as the base document has it.
#[derive(Debug, Clone, Default)]
pub struct UpdateFlags {
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub cpu_idle: Option<i64>,
    pub cpu_burst: Option<u64>,
    /// Sizes: bytes or a k, m, g, t suffix (see [`size`]).
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

#[derive(Debug, Error)]
pub enum UpdateError {
    #[error("invalid size `{value}`: use bytes or a k, m, g suffix")]
    Size {
        value: String,
        source: std::num::ParseIntError,
    },
    #[error("update: nothing to change: pass --resources FILE|- or a flag such as --memory")]
    Nothing,
    #[error("resources do not match the OCI LinuxResources schema")]
    Schema(#[source] serde_json::Error),
}

/// `512m` style sizes as runc's update takes them; -1 means unlimited.
pub fn size(s: &str) -> Result<i64, UpdateError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num.parse().map_err(|source| UpdateError::Size {
        value: s.to_string(),
        source,
    })?;
    Ok(if n < 0 { n } else { n * mul })
}

/// The resources to apply: `base` (the `--resources` document, `{}` without one) with the
/// flags set over it. Refuses an update that changes nothing.
pub fn resources(mut v: serde_json::Value, f: &UpdateFlags) -> Result<LinuxResources, UpdateError> {
    let mut set = |section: &str, key: &str, val: serde_json::Value| {
        v[section][key] = val;
    };
    if let Some(x) = f.cpu_period {
        set("cpu", "period", x.into())
    }
    if let Some(x) = f.cpu_quota {
        set("cpu", "quota", x.into())
    }
    if let Some(x) = f.cpu_share {
        set("cpu", "shares", x.into())
    }
    if let Some(x) = f.cpu_rt_period {
        set("cpu", "realtimePeriod", x.into())
    }
    if let Some(x) = f.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", x.into())
    }
    if let Some(x) = &f.cpuset_cpus {
        set("cpu", "cpus", x.clone().into())
    }
    if let Some(x) = &f.cpuset_mems {
        set("cpu", "mems", x.clone().into())
    }
    if let Some(x) = f.cpu_idle {
        set("cpu", "idle", x.into())
    }
    if let Some(x) = f.cpu_burst {
        set("cpu", "burst", x.into())
    }
    if let Some(x) = &f.memory {
        set("memory", "limit", size(x)?.into())
    }
    if let Some(x) = &f.memory_reservation {
        set("memory", "reservation", size(x)?.into())
    }
    if let Some(x) = &f.memory_swap {
        set("memory", "swap", size(x)?.into())
    }
    if let Some(x) = f.pids_limit {
        set("pids", "limit", x.into())
    }
    if let Some(x) = f.blkio_weight {
        set("blockIO", "weight", x.into())
    }
    if v.as_object().is_some_and(|o| o.is_empty()) {
        return Err(UpdateError::Nothing);
    }
    serde_json::from_value(v).map_err(UpdateError::Schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("512m").unwrap(), 512 << 20);
        assert_eq!(size("1G").unwrap(), 1 << 30);
        assert_eq!(size("100").unwrap(), 100);
        assert_eq!(size("-1").unwrap(), -1);
        assert!(size("lots").is_err());
    }

    #[test]
    fn flags_override_the_document_and_nothing_is_refused() {
        let base = serde_json::json!({"memory": {"limit": 1}, "pids": {"limit": 5}});
        let f = UpdateFlags {
            memory: Some("2k".into()),
            ..Default::default()
        };
        let r = resources(base, &f).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(2048));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 5);
        assert!(matches!(
            resources(serde_json::json!({}), &UpdateFlags::default()),
            Err(UpdateError::Nothing)
        ));
    }
}
