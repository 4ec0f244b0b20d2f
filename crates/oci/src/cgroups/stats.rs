//! Resource usage in the shape of the `data` object of runc's `events --stats` (runc
//! `types/events.go`, as runc 1.5.1 encodes it): field names and order, units (nanoseconds,
//! bytes) and omitted zero values (`omitempty` numbers and lists, `omitzero` structs) match, so
//! tools that decode runc's output decode ours. Missing files (a controller that is not there)
//! leave the defaults; malformed files are errors. Pressure (PSI) is read on cgroup v2 where the
//! kernel has it, as runc does.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::{CgroupError, Result, parse_flat_keyed, read_opt};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Go's `omitzero`: the value equals its type's zero value.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    /// v1 only (runc reads no cpuset statistics on v2, and prints this object zeroed).
    pub cpuset: CpusetStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    /// Keyed by page size as the kernel names it (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CpuStats {
    #[serde(skip_serializing_if = "is_default")]
    pub usage: CpuUsage,
    #[serde(skip_serializing_if = "is_default")]
    pub throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// `cpu.pressure`, `memory.pressure`, `io.pressure` (v2): averages in percent, total in
/// microseconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Psi {
    pub some: PsiData,
    pub full: PsiData,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// The v1 cpuset cgroup's settings, as runc reports them.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CpusetStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// CPU time in nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Bytes; `max` is the peak usage; an unlimited `limit` is reported as the kernel shows it
/// (v2 `max` becomes `u64::MAX`, like runc).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MemoryStats {
    /// Page cache: v1 `cache`, v2 `file` of memory.stat.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub usage: MemoryEntry,
    /// Memory plus swap, as on v1 (v2 values are added up for compatibility, like runc).
    #[serde(skip_serializing_if = "is_default")]
    pub swap: MemoryEntry,
    #[serde(skip_serializing_if = "is_default")]
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP", skip_serializing_if = "is_default")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat verbatim.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct HugetlbStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// A single-number file; `max` reads as `u64::MAX`; `None` when missing.
fn read_u64(dir: &Path, file: &str) -> Result<Option<u64>> {
    let Some(text) = read_opt(dir, file)? else {
        return Ok(None);
    };
    match text.trim() {
        "max" => Ok(Some(u64::MAX)),
        t => t.parse().map(Some).map_err(|_| CgroupError::Parse {
            path: dir.join(file),
            reason: format!("expected a number, got {t:?}"),
        }),
    }
}

/// A flat-keyed file; empty when missing.
fn read_keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    match read_opt(dir, file)? {
        Some(text) => parse_flat_keyed(&dir.join(file), &text),
        None => Ok(BTreeMap::new()),
    }
}

/// A space-separated list of numbers (`cpuacct.usage_percpu`).
fn read_list(dir: &Path, file: &str) -> Result<Vec<u64>> {
    let Some(text) = read_opt(dir, file)? else {
        return Ok(Vec::new());
    };
    text.split_whitespace()
        .map(|n| {
            n.parse().map_err(|_| CgroupError::Parse {
                path: dir.join(file),
                reason: format!("bad number {n:?}"),
            })
        })
        .collect()
}

/// USER_HZ: `cpuacct.stat` counts in clock ticks of 1/100 s on every Linux architecture.
const NS_PER_TICK: u64 = 1_000_000_000 / 100;

pub fn cpu_v1(cpu: Option<&Path>, cpuacct: Option<&Path>) -> Result<CpuStats> {
    let mut s = CpuStats::default();
    if let Some(dir) = cpuacct {
        s.usage.total = read_u64(dir, "cpuacct.usage")?.unwrap_or(0);
        s.usage.percpu = read_list(dir, "cpuacct.usage_percpu")?;
        s.usage.percpu_kernel = read_list(dir, "cpuacct.usage_percpu_sys")?;
        s.usage.percpu_user = read_list(dir, "cpuacct.usage_percpu_user")?;
        match (
            read_u64(dir, "cpuacct.usage_user")?,
            read_u64(dir, "cpuacct.usage_sys")?,
        ) {
            (Some(user), Some(sys)) => (s.usage.user, s.usage.kernel) = (user, sys),
            _ => {
                let stat = read_keyed(dir, "cpuacct.stat")?;
                s.usage.user = stat
                    .get("user")
                    .copied()
                    .unwrap_or(0)
                    .saturating_mul(NS_PER_TICK);
                s.usage.kernel = stat
                    .get("system")
                    .copied()
                    .unwrap_or(0)
                    .saturating_mul(NS_PER_TICK);
            }
        }
    }
    if let Some(dir) = cpu {
        let stat = read_keyed(dir, "cpu.stat")?;
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        s.throttling = Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_time"),
        };
    }
    Ok(s)
}

pub fn cpu_v2(dir: &Path) -> Result<CpuStats> {
    let stat = read_keyed(dir, "cpu.stat")?;
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    // cpu.stat counts microseconds; runc reports nanoseconds (a hostile or corrupt file saturates).
    let ns = |k: &str| get(k).saturating_mul(1000);
    Ok(CpuStats {
        usage: CpuUsage {
            total: ns("usage_usec"),
            user: ns("user_usec"),
            kernel: ns("system_usec"),
            ..Default::default()
        },
        throttling: Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: ns("throttled_usec"),
        },
        psi: psi(dir, "cpu.pressure")?,
    })
}

/// A v2 pressure file (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0`, then `full ...`);
/// `None` when the file is missing or the kernel has PSI switched off (reading it fails with
/// EOPNOTSUPP), where runc reports none either.
pub fn psi(dir: &Path, file: &str) -> Result<Option<Psi>> {
    let path = dir.join(file);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
        {
            return Ok(None);
        }
        Err(err) => {
            return Err(CgroupError::Io {
                op: "read",
                path,
                err,
            });
        }
    };
    parse_psi(&path, &text).map(Some)
}

/// The text of a pressure file.
pub fn parse_psi(path: &Path, text: &str) -> Result<Psi> {
    let bad = |what: &str| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("bad pressure data {what:?}"),
    };
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let data = match fields.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in fields {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad(kv))?;
            let float = || v.parse::<f64>().map_err(|_| bad(kv));
            match k {
                "avg10" => data.avg10 = float()?,
                "avg60" => data.avg60 = float()?,
                "avg300" => data.avg300 = float()?,
                "total" => data.total = v.parse().map_err(|_| bad(kv))?,
                _ => {}
            }
        }
    }
    Ok(psi)
}

/// A cpuset list (`0-3,8`) as runc reports it: every cpu (or node) number.
fn read_id_list(dir: &Path, file: &str) -> Result<Vec<u16>> {
    let Some(text) = read_opt(dir, file)? else {
        return Ok(Vec::new());
    };
    let bad = || CgroupError::Parse {
        path: dir.join(file),
        reason: format!("bad cpu list {:?}", text.trim()),
    };
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The v1 cpuset cgroup's files (`cpuset.cpus`, `cpuset.cpu_exclusive`, ...).
pub fn cpuset_v1(dir: &Path) -> Result<CpusetStats> {
    let get = |f: &str| -> Result<u64> { Ok(read_u64(dir, &format!("cpuset.{f}"))?.unwrap_or(0)) };
    let relax = match read_opt(dir, "cpuset.sched_relax_domain_level")? {
        Some(t) => t.trim().parse().map_err(|_| CgroupError::Parse {
            path: dir.join("cpuset.sched_relax_domain_level"),
            reason: format!("expected a number, got {:?}", t.trim()),
        })?,
        None => 0,
    };
    Ok(CpusetStats {
        cpus: read_id_list(dir, "cpuset.cpus")?,
        cpu_exclusive: get("cpu_exclusive")?,
        mems: read_id_list(dir, "cpuset.mems")?,
        mem_hardwall: get("mem_hardwall")?,
        mem_exclusive: get("mem_exclusive")?,
        memory_migrate: get("memory_migrate")?,
        memory_spread_page: get("memory_spread_page")?,
        memory_spread_slab: get("memory_spread_slab")?,
        memory_pressure: get("memory_pressure")?,
        sched_load_balance: get("sched_load_balance")?,
        sched_relax_domain_level: relax,
    })
}

fn entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let get = |suffix: &str| read_u64(dir, &format!("{prefix}{suffix}"));
    Ok(MemoryEntry {
        limit: get("limit_in_bytes")?.unwrap_or(0),
        usage: get("usage_in_bytes")?.unwrap_or(0),
        max: get("max_usage_in_bytes")?.unwrap_or(0),
        failcnt: get("failcnt")?.unwrap_or(0),
    })
}

pub fn memory_v1(dir: &Path) -> Result<MemoryStats> {
    let raw = read_keyed(dir, "memory.stat")?;
    Ok(MemoryStats {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: entry_v1(dir, "memory.")?,
        swap: entry_v1(dir, "memory.memsw.")?,
        kernel: entry_v1(dir, "memory.kmem.")?,
        kernel_tcp: entry_v1(dir, "memory.kmem.tcp.")?,
        raw,
        psi: None,
    })
}

pub fn memory_v2(dir: &Path) -> Result<MemoryStats> {
    let raw = read_keyed(dir, "memory.stat")?;
    let events = read_keyed(dir, "memory.events")?;
    let usage = MemoryEntry {
        limit: read_u64(dir, "memory.max")?.unwrap_or(u64::MAX),
        usage: read_u64(dir, "memory.current")?.unwrap_or(0),
        max: read_u64(dir, "memory.peak")?.unwrap_or(0),
        // how often the limit was hit
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    let mut swap = MemoryEntry::default();
    if let Some(current) = read_u64(dir, "memory.swap.current")? {
        let limit = read_u64(dir, "memory.swap.max")?.unwrap_or(u64::MAX);
        swap.usage = current.saturating_add(usage.usage);
        swap.limit = if limit == u64::MAX || usage.limit == u64::MAX {
            u64::MAX
        } else {
            limit.saturating_add(usage.limit)
        };
    }
    Ok(MemoryStats {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        raw,
        psi: psi(dir, "memory.pressure")?,
        ..Default::default()
    })
}

pub fn pids(dir: &Path) -> Result<PidsStats> {
    Ok(PidsStats {
        current: read_u64(dir, "pids.current")?.unwrap_or(0),
        limit: read_u64(dir, "pids.max")?
            .filter(|l| *l != u64::MAX)
            .unwrap_or(0),
    })
}

/// `MAJ:MIN`.
fn dev(path: &Path, s: &str) -> Result<(u64, u64)> {
    let parsed = s
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    parsed.ok_or_else(|| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("bad device {s:?}"),
    })
}

/// v1 `blkio.*_recursive` lines: `8:0 Read 4096`; the `Total N` summary lines are skipped.
fn blkio_entries(dir: &Path, file: &str) -> Result<Vec<BlkioEntry>> {
    let Some(text) = read_opt(dir, file)? else {
        return Ok(Vec::new());
    };
    let path = dir.join(file);
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let (major, minor) = dev(&path, f[0])?;
        let value = f[2].parse().map_err(|_| CgroupError::Parse {
            path: path.clone(),
            reason: format!("bad value in {line:?}"),
        })?;
        out.push(BlkioEntry {
            major,
            minor,
            op: f[1].to_string(),
            value,
        });
    }
    Ok(out)
}

pub fn blkio_v1(dir: &Path) -> Result<BlkioStats> {
    // Same preference as runc: BFQ, then CFQ, then the throttling layer's counters.
    for prefix in ["blkio.bfq.", "blkio.", "blkio.throttle."] {
        let bytes = format!("{prefix}io_service_bytes_recursive");
        if dir.join(&bytes).exists() {
            return Ok(BlkioStats {
                io_service_bytes_recursive: blkio_entries(dir, &bytes)?,
                io_serviced_recursive: blkio_entries(
                    dir,
                    &format!("{prefix}io_serviced_recursive"),
                )?,
                psi: None,
            });
        }
    }
    Ok(BlkioStats::default())
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
pub fn blkio_v2(dir: &Path) -> Result<BlkioStats> {
    let mut s = BlkioStats {
        psi: psi(dir, "io.pressure")?,
        ..Default::default()
    };
    let Some(text) = read_opt(dir, "io.stat")? else {
        return Ok(s);
    };
    let path = dir.join("io.stat");
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(device) = fields.next() else {
            continue;
        };
        let (major, minor) = dev(&path, device)?;
        for kv in fields {
            let Some((key, value)) = kv.split_once('=') else {
                continue;
            };
            let (list, op) = match key {
                "rbytes" => (&mut s.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut s.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut s.io_serviced_recursive, "Read"),
                "wios" => (&mut s.io_serviced_recursive, "Write"),
                "dios" => (&mut s.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            let value = value.parse().map_err(|_| CgroupError::Parse {
                path: path.clone(),
                reason: format!("bad value in {kv:?}"),
            })?;
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(s)
}

/// Page sizes with hugetlb files in `dir` (`hugetlb.2MB.current` → `2MB`).
pub fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut sizes: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    sizes
}

pub fn hugetlb(dir: &Path, v2: bool) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    let suffix = if v2 { ".current" } else { ".usage_in_bytes" };
    for size in hugetlb_sizes(dir, suffix) {
        let file = |s: &str| format!("hugetlb.{size}.{s}");
        let stats = if v2 {
            HugetlbStats {
                usage: read_u64(dir, &file("current"))?.unwrap_or(0),
                max: 0,
                failcnt: read_keyed(dir, &file("events"))?
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            }
        } else {
            HugetlbStats {
                usage: read_u64(dir, &file("usage_in_bytes"))?.unwrap_or(0),
                max: read_u64(dir, &file("max_usage_in_bytes"))?.unwrap_or(0),
                failcnt: read_u64(dir, &file("failcnt"))?.unwrap_or(0),
            }
        };
        out.insert(size, stats);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_expand_as_runc_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cpuset.cpus"), "0-2,5\n").unwrap();
        fs::write(dir.path().join("cpuset.mems"), "0\n").unwrap();
        fs::write(dir.path().join("cpuset.sched_relax_domain_level"), "-1\n").unwrap();
        fs::write(dir.path().join("cpuset.sched_load_balance"), "1\n").unwrap();
        let s = cpuset_v1(dir.path()).unwrap();
        assert_eq!(s.cpus, [0, 1, 2, 5]);
        assert_eq!(s.mems, [0]);
        assert_eq!(s.sched_relax_domain_level, -1);
        assert_eq!(s.sched_load_balance, 1);
        fs::write(dir.path().join("cpuset.cpus"), "3-1\n").unwrap();
        assert!(cpuset_v1(dir.path()).is_err());
    }

    #[test]
    fn zero_structs_are_omitted_as_runc_omitzero() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(v["cpu"], serde_json::json!({}));
        let m = v["memory"].as_object().unwrap();
        assert!(m.is_empty(), "{m:?}");
        let cpuset = v["cpuset"].as_object().unwrap();
        assert!(cpuset.contains_key("cpu_exclusive") && !cpuset.contains_key("cpus"));
    }

    #[test]
    fn pressure_files_parse() {
        let p = parse_psi(
            Path::new("cpu.pressure"),
            "some avg10=94.51 avg60=74.28 avg300=58.65 total=8684549298\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 94.51);
        assert_eq!(p.some.total, 8684549298);
        assert_eq!(p.full, PsiData::default());
        assert!(parse_psi(Path::new("x"), "some avg10=x").is_err());
    }
}
