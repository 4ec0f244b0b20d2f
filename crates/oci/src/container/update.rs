//! runc's `update` flags onto an OCI `LinuxResources` object: sizes as runc's `units.RAMInBytes`
//! takes them (`512m`, `1.5g`), each flag overriding the same field of the `--resources`
//! document (runc ignores the flags when `--resources` is given; peapod applies both).

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
    /// Sizes: `-1` or go-units sizes (see [`size`]).
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

#[derive(Debug, Error)]
pub enum UpdateError {
    /// runc's words: `invalid value for memory: invalid size: 'abc'`.
    #[error("invalid value for {flag}: {reason}")]
    Size { flag: &'static str, reason: String },
    #[error("resources do not match the OCI LinuxResources schema")]
    Schema(#[source] serde_json::Error),
}

/// A size flag of `update` as runc 1.5.1 takes it: `-1` (unlimited), or go-units'
/// `RAMInBytes`: a number (what Go's `ParseFloat` reads, fractions included), an optional space,
/// then an optional suffix `b`, or `k m g t p` (any case, binary multiples) optionally followed
/// by `b` or `ib` (`512m`, `1.5g`, `64MiB`, `100 kb`). The errors are runc's words; `flag`
/// names the flag in them.
pub fn size(flag: &'static str, s: &str) -> Result<i64, UpdateError> {
    if s == "-1" {
        return Ok(-1);
    }
    let err = |reason: String| UpdateError::Size { flag, reason };
    let invalid = || err(format!("invalid size: '{s}'"));
    // The number ends at the last digit, dot or space; a space right there is dropped.
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid());
    };
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let n: f64 = num.parse().map_err(|_| {
        err(format!(
            "strconv.ParseFloat: parsing \"{num}\": invalid syntax"
        ))
    })?;
    if n < 0.0 {
        return Err(invalid());
    }
    let bad_suffix = |sfx: &str| err(format!("invalid suffix: '{sfx}'"));
    if sfx.chars().count() > 3 {
        return Err(bad_suffix(sfx));
    }
    let sfx = sfx.to_lowercase();
    let mul = match sfx.as_bytes() {
        [] => 1.0,
        [b'b'] => 1.0,
        [b'b', ..] => return Err(bad_suffix(&sfx)),
        [u, rest @ ..] => {
            let Some(exp) = "kmgtp".find(*u as char) else {
                return Err(bad_suffix(&sfx));
            };
            if !matches!(rest, [] | [b'b'] | [b'i', b'b']) {
                return Err(bad_suffix(&sfx));
            }
            1024f64.powi(exp as i32 + 1)
        }
    };
    // Go's int64(float64); sizes past i64 are refused instead of wrapping.
    let bytes = n * mul;
    if bytes.is_nan() || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// The resources to apply: `base` (the `--resources` document, `{}` without one) with the
/// flags set over it. An update that sets nothing changes nothing and succeeds, as in runc.
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
        set("memory", "limit", size("memory", x)?.into())
    }
    if let Some(x) = &f.memory_reservation {
        set(
            "memory",
            "reservation",
            size("memory-reservation", x)?.into(),
        )
    }
    if let Some(x) = &f.memory_swap {
        set("memory", "swap", size("memory-swap", x)?.into())
    }
    if let Some(x) = f.pids_limit {
        set("pids", "limit", x.into())
    }
    if let Some(x) = f.blkio_weight {
        set("blockIO", "weight", x.into())
    }
    serde_json::from_value(v).map_err(UpdateError::Schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// go-units' RAMInBytes as runc 1.5.1 applies it (values and messages checked against
    /// `runc update` on this host).
    #[test]
    fn sizes_are_runcs() {
        for (s, want) in [
            ("512m", 512i64 << 20),
            ("1G", 1 << 30),
            ("100", 100),
            ("-1", -1),
            ("1.5g", 1536 << 20),
            ("64MiB", 64 << 20),
            ("64mb", 64 << 20),
            ("100000kb", 100000 << 10),
            ("64 m", 64 << 20),
            ("1kib", 1024),
            ("2p", 2 << 50),
            ("0", 0),
            ("1e3", 1000),
            ("10B", 10),
        ] {
            assert_eq!(size("memory", s).unwrap(), want, "{s}");
        }
        for (s, msg) in [
            ("abc", "invalid value for memory: invalid size: 'abc'"),
            ("-2", "invalid value for memory: invalid size: '-2'"),
            ("1x", "invalid value for memory: invalid suffix: 'x'"),
            ("1bi", "invalid value for memory: invalid suffix: 'bi'"),
            ("1mbb", "invalid value for memory: invalid suffix: 'mbb'"),
            ("1XYZW", "invalid value for memory: invalid suffix: 'XYZW'"),
            ("", "invalid value for memory: invalid size: ''"),
            (
                "1  m",
                "invalid value for memory: strconv.ParseFloat: parsing \"1 \": invalid syntax",
            ),
            (
                "1.2.3",
                "invalid value for memory: strconv.ParseFloat: parsing \"1.2.3\": invalid syntax",
            ),
            (
                "99999999p",
                "invalid value for memory: invalid size: '99999999p'",
            ),
        ] {
            assert_eq!(size("memory", s).unwrap_err().to_string(), msg, "{s}");
        }
    }

    #[test]
    fn flags_override_the_document_and_nothing_changes_nothing() {
        let base = serde_json::json!({"memory": {"limit": 1}, "pids": {"limit": 5}});
        let f = UpdateFlags {
            memory: Some("2k".into()),
            ..Default::default()
        };
        let r = resources(base, &f).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(2048));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 5);
        let none = resources(serde_json::json!({}), &UpdateFlags::default()).unwrap();
        assert_eq!(none, LinuxResources::default());
    }

    #[test]
    fn pids_limit_minus_one_is_unlimited() {
        let f = UpdateFlags {
            pids_limit: Some(-1),
            ..Default::default()
        };
        let r = resources(serde_json::json!({}), &f).unwrap();
        assert_eq!(r.pids().as_ref().unwrap().limit(), -1);
    }
}
