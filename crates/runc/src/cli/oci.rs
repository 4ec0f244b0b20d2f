//! runc-compatible verbs.

use std::path::PathBuf;

use clap::Args;

pub use crate::output::Output;

#[derive(Debug, Args)]
pub struct Id {
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateFlags {
    /// Path to the bundle (the directory holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container init's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the container init
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for a rootfs on ramfs)
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the session keyring of the caller
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container process
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(..=peapod_oci::process::MAX_PRESERVE_FDS as i64))]
    pub preserve_fds: u32,
}

#[derive(Debug, Args)]
pub struct Create {
    #[command(flatten)]
    pub flags: CreateFlags,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return after start instead of waiting for the container
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility: peapod never makes itself a subreaper for a detached run
    #[arg(long)]
    pub no_subreaper: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Kill {
    /// Signal every process of the container
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// Signal name or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Kill the container first if it is running
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// process.json describing the process (other flags then do not apply)
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process started
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Add an environment variable (KEY=VALUE)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NET_ADMIN)
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass N extra fds (3..3+N) to the process
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(..=peapod_oci::process::MAX_PRESERVE_FDS as i64))]
    pub preserve_fds: u32,
    /// Allow exec in a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// AppArmor profile (not supported)
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux process label (not supported)
    #[arg(long)]
    pub process_label: Option<String>,
    /// Sub-cgroup of the container's to run in: PATH, or CONTROLLERS:PATH (cgroup v1)
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Unix socket that receives a pidfd of the process
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
    pub id: String,
    /// Command and arguments (without --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct List {
    /// Output format (`--format`/`-f` as runc)
    #[arg(short = 'o', long = "output", visible_alias = "format", short_alias = 'f', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Print ids only
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct Ps {
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    pub id: String,
    /// Arguments for ps(1) in table format (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Update {
    /// JSON LinuxResources, or - for stdin
    #[arg(short, long)]
    pub resources: Option<String>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    /// Memory limit (bytes, or with k, m, g suffix)
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub memory_reservation: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Intel RDT/CAT L3 cache schema (not supported: peapod has no Intel RDT)
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema (not supported: peapod has no Intel RDT)
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Events {
    /// Print one stats object and exit
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats, a Go duration as runc takes it (5s, 500ms, 1m30s)
    #[arg(long, default_value = "5s", value_parser = go_duration)]
    pub interval: std::time::Duration,
    pub id: String,
}

/// A Go `time.ParseDuration` string, which runc's `--interval` is: a sequence of decimal
/// numbers each with a unit (`ns us µs ms s m h`), optionally signed; `0` alone needs no unit.
/// A bare number such as `5` is refused, as runc refuses it. Negative durations are refused
/// (runc would tick never).
pub fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: use a number with a unit, e.g. 5s or 500ms");
    let t = s.strip_prefix('+').unwrap_or(s);
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n_end);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        let u_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(u_end);
        let ns = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * ns;
        rest = next;
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_nanos(total as u64))
}

#[derive(Debug, Args)]
pub struct Spec {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a spec for a rootless container
    #[arg(long)]
    pub rootless: bool,
    /// Root the container in a read-only view of this host's /usr, /etc and libraries
    /// (creates <bundle>/rootfs; no image needed)
    #[arg(long, conflicts_with = "rootless")]
    pub host: bool,
}
