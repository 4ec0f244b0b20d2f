//! Resource usage in the shape of the `data` object of runc's `events --stats` (runc
//! `types/events.go`): field names, units (nanoseconds, bytes) and omitted zero values match, so
//! tools that decode runc's output decode ours. Missing files (a controller that is not there)
//! leave the defaults; malformed files are errors.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::{CgroupError, Result, parse_flat_keyed, read_opt};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    /// Keyed by page size as the kernel names it (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
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

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Page cache: v1 `cache`, v2 `file` of memory.stat.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory plus swap, as on v1 (v2 values are added up for compatibility, like runc).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat verbatim.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
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

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
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
            });
        }
    }
    Ok(BlkioStats::default())
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
pub fn blkio_v2(dir: &Path) -> Result<BlkioStats> {
    let mut s = BlkioStats::default();
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
