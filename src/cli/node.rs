//! `peapod node ...` (kubectl's `label node`, `taint node`, `describe node`) and
//! `peapod schedule`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
pub use peapod_runc::output::Output;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Show this node: labels, taints, capacity, allocatable and the requests of its pods
    Show(NodeShow),
    /// Set (KEY=VALUE) or remove (KEY-) node labels, as `kubectl label node`
    Label(NodeLabel),
    /// Add (KEY[=VALUE]:EFFECT) or remove (KEY[:EFFECT]-) node taints, as `kubectl taint node`
    Taint(NodeTaint),
    /// Mark the node unschedulable: new pods are refused unless they tolerate
    /// node.kubernetes.io/unschedulable:NoSchedule (running pods stay)
    Cordon,
    /// Mark the node schedulable again
    Uncordon,
}

#[derive(Debug, Args)]
pub struct NodeShow {
    /// Print the node as `kubectl get node` does (table, wide, json, yaml, name) instead of
    /// the summary
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Args)]
pub struct NodeLabel {
    /// KEY=VALUE to set, KEY- to remove
    #[arg(required = true, value_name = "KEY=VALUE|KEY-")]
    pub labels: Vec<String>,
    /// Allow changing the value of an existing label
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct NodeTaint {
    /// KEY[=VALUE]:EFFECT to add, KEY[=VALUE][:EFFECT]- to remove; EFFECT is NoSchedule,
    /// PreferNoSchedule or NoExecute
    #[arg(required = true, value_name = "TAINT")]
    pub taints: Vec<String>,
    /// Allow replacing a taint with the same key and effect
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct Schedule {
    /// YAML or JSON file with the v1 Node objects to plan for
    #[arg(long)]
    pub nodes: PathBuf,
    /// Pod and Deployment manifests; pods are placed in this order
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}
