//! `peapod pod ...`: Kubernetes-style pods on this machine.

use std::path::PathBuf;

use clap::{Args, Subcommand};
pub use peapod_runc::output::Output;

#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Run the pods of a manifest (YAML or JSON, kind: Pod)
    Run(PodRun),
    /// List pods (NAME READY STATUS RESTARTS AGE)
    Ls(PodLs),
    /// Show a pod with its status and events
    Inspect(PodInspect),
    /// Print a container's logs
    Logs(PodLogs),
    /// Run a command in a pod's container
    Exec(PodExec),
    /// Stop a pod's containers gracefully
    Stop(PodStop),
    /// Remove a pod and everything it made
    Rm(PodRm),
}

#[derive(Debug, Args)]
pub struct PodRun {
    pub file: PathBuf,
    /// Wait until every container is ready (e.g. 30s)
    #[arg(long)]
    pub wait_ready: Option<String>,
    /// CNI network configurations: the first *.conflist/*.conf is the pods' network (peapod
    /// writes its default `peapod` network there when there is none)
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories, colon-separated (default: $CNI_PATH, else
    /// /opt/cni/bin:/usr/lib/cni); without any plugin, pods get loopback only
    #[arg(long, value_name = "DIRS")]
    pub cni_bin_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct PodLs {
    /// Output format (wide adds IP, NODE, NOMINATED NODE, READINESS GATES as kubectl)
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PodInspect {
    pub name: String,
    /// Output format: yaml, json or name (the pod is one document, not a table)
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PodLogs {
    pub name: String,
    /// Container (default: the first app container)
    #[arg(short, long)]
    pub container: Option<String>,
    /// Keep printing new output
    #[arg(short, long)]
    pub follow: bool,
    /// The previous instance of the container
    #[arg(short, long)]
    pub previous: bool,
    /// Only the last N lines
    #[arg(long)]
    pub tail: Option<usize>,
    /// Prefix each line with its RFC 3339 timestamp
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Debug, Args)]
pub struct PodExec {
    pub name: String,
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass stdin to the process
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PodStop {
    /// One or more pods
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_name = "NAME"
    )]
    pub names: Vec<String>,
    /// Every pod under --root
    #[arg(short, long)]
    pub all: bool,
    /// Seconds before SIGKILL (default: terminationGracePeriodSeconds)
    #[arg(long)]
    pub grace_period: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PodRm {
    /// One or more pods
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_name = "NAME"
    )]
    pub names: Vec<String>,
    /// Every pod under --root
    #[arg(short, long)]
    pub all: bool,
    /// Stop the pod first if it is running
    #[arg(short, long)]
    pub force: bool,
}
