//! Command-line definitions (clap only). The OCI verbs follow runc's flags exactly, since
//! containerd's shim and podman's conmon build argv for runc.

pub mod image;
pub mod node;
pub mod oci;
pub mod pod;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "peapod",
    about = "Run Kubernetes-style pods and OCI containers",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, clap::Args)]
pub struct GlobalOpts {
    /// Directory for container state
    #[arg(long, global = true, default_value = "/run/peapod")]
    pub root: PathBuf,
    /// Directory for persistent data: the image store and the node object
    #[arg(long, global = true, default_value = "/var/lib/peapod")]
    pub storage: PathBuf,
    /// Write logs (and errors) to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Format of the --log file
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: peapod drives cgroupfs)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Create(oci::Create),
    Start(oci::Id),
    State(oci::Id),
    Kill(oci::Kill),
    Delete(oci::Delete),
    Run(oci::Run),
    Exec(oci::Exec),
    List(oci::List),
    Ps(oci::Ps),
    Pause(oci::Id),
    Resume(oci::Id),
    Update(oci::Update),
    Events(oci::Events),
    Spec(oci::Spec),
    Features,
    /// Kubernetes-style pods
    #[command(subcommand)]
    Pod(pod::PodCommand),
    /// The local image store (`--storage`/images)
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// This machine as a Kubernetes node: show, label, taint
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Plan where pods would go on a set of nodes (dry run, like kube-scheduler)
    Schedule(node::Schedule),
    /// A pod's supervisor (started by `pod run`, not by hand)
    #[command(name = "__supervise", hide = true)]
    Supervise {
        name: String,
        ready_fd: i32,
    },
}

impl Command {
    /// Verbs that put a process into a container, and so run from a sealed copy.
    pub fn enters_container(&self) -> bool {
        matches!(
            self,
            Command::Create(_)
                | Command::Run(_)
                | Command::Exec(_)
                | Command::Pod(pod::PodCommand::Run(_) | pod::PodCommand::Exec(_))
        )
    }
}
