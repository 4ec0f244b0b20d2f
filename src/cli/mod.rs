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
    Supervise(SuperviseArgs),
}

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    pub name: String,
    pub ready_fd: i32,
}

/// The command line, with each verb's arguments built only when that verb is used
/// (`Command::defer`). Building every verb's parser up front was most of clap's start-up, and
/// every container start pays start-up (under emulation, about 60 ms of a 250 ms start). The
/// derived types still parse the matches ([`Cli`] is `FromArgMatches`); the names below are
/// theirs, and a unit test checks that both agree.
pub fn command() -> clap::Command {
    use clap::{Args, Subcommand};
    type Build = fn(clap::Command) -> clap::Command;
    let verb = |name: &'static str, about: &'static str, build: Build| {
        clap::Command::new(name).about(about).defer(build)
    };
    let group = |name: &'static str, about: &'static str, build: Build| {
        clap::Command::new(name)
            .about(about)
            .subcommand_required(true)
            .arg_required_else_help(true)
            .defer(build)
    };
    let top = clap::Command::new("peapod")
        .about("Run Kubernetes-style pods and OCI containers")
        .disable_version_flag(true);
    GlobalOpts::augment_args(top)
        .subcommand(verb(
            "create",
            "Create a container from a bundle (runc create)",
            oci::Create::augment_args,
        ))
        .subcommand(verb(
            "start",
            "Start a created container",
            oci::Id::augment_args,
        ))
        .subcommand(verb(
            "state",
            "Print a container's state as JSON",
            oci::Id::augment_args,
        ))
        .subcommand(verb(
            "kill",
            "Send a signal to a container's process(es)",
            oci::Kill::augment_args,
        ))
        .subcommand(verb(
            "delete",
            "Delete a container and its state",
            oci::Delete::augment_args,
        ))
        .subcommand(verb(
            "run",
            "Create and start a container, and wait for it",
            oci::Run::augment_args,
        ))
        .subcommand(verb(
            "exec",
            "Run another process in a running container",
            oci::Exec::augment_args,
        ))
        .subcommand(verb("list", "List containers", oci::List::augment_args))
        .subcommand(verb(
            "ps",
            "List the processes of a container",
            oci::Ps::augment_args,
        ))
        .subcommand(verb(
            "pause",
            "Freeze every process of a container",
            oci::Id::augment_args,
        ))
        .subcommand(verb(
            "resume",
            "Thaw a paused container",
            oci::Id::augment_args,
        ))
        .subcommand(verb(
            "update",
            "Change a container's cgroup resources",
            oci::Update::augment_args,
        ))
        .subcommand(verb(
            "events",
            "Print a container's resource statistics",
            oci::Events::augment_args,
        ))
        .subcommand(verb(
            "spec",
            "Write a template config.json",
            oci::Spec::augment_args,
        ))
        .subcommand(
            clap::Command::new("features").about("Print the OCI features this runtime supports"),
        )
        .subcommand(group(
            "pod",
            "Kubernetes-style pods",
            pod::PodCommand::augment_subcommands,
        ))
        .subcommand(group(
            "image",
            "The local image store: import, pull, ls, inspect, rm, prune",
            image::ImageCommand::augment_subcommands,
        ))
        .subcommand(group(
            "node",
            "This machine as a Kubernetes node: show, label, taint",
            node::NodeCommand::augment_subcommands,
        ))
        .subcommand(verb(
            "schedule",
            "Plan where pods would go on a set of nodes (dry run, like kube-scheduler)",
            node::Schedule::augment_args,
        ))
        .subcommand(
            verb(
                "__supervise",
                "A pod's supervisor",
                SuperviseArgs::augment_args,
            )
            .hide(true),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// The deferred command line and the derived one name the same verbs.
    #[test]
    fn deferred_command_matches_the_derived_types() {
        let mut ours = command();
        ours.build();
        let mut derived = Cli::command();
        derived.build();
        let names = |c: &clap::Command| {
            let mut v: Vec<String> = c
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&ours), names(&derived));
        for argv in [
            vec!["peapod", "--root", "/r", "create", "--bundle", "/b", "id"],
            vec!["peapod", "kill", "--all", "id", "KILL"],
            vec!["peapod", "pod", "ls", "-o", "wide"],
            vec!["peapod", "node", "label", "a=b", "--overwrite"],
            vec!["peapod", "__supervise", "p", "5"],
            vec!["peapod", "features"],
            vec!["peapod", "exec", "-t", "id", "sh", "-c", "x"],
        ] {
            let m = command().try_get_matches_from(&argv).unwrap();
            let cli = Cli::from_arg_matches(&m).unwrap();
            let want = Cli::try_parse_from(&argv).unwrap();
            assert_eq!(format!("{cli:?}"), format!("{want:?}"), "{argv:?}");
        }
    }
}
