//! The `peapod` command line (clap only, derive): runc's globals and OCI verbs, defined once in
//! `peapod-runc` and flattened here, plus the pod, image and node verbs. Every verb's arguments
//! are built only when it is used ([`Deferred`], [`DeferredGroup`]).

pub mod image;
pub mod node;
pub mod pod;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
pub use peapod_runc::cli::{Deferred, DeferredGroup, GlobalOpts, OciCommand};

#[derive(Debug, Parser)]
#[command(
    name = "peapod",
    about = "Run Kubernetes-style pods and OCI containers",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    /// Directory for persistent data: the image store and the node object
    #[arg(long, global = true, default_value = "/var/lib/peapod")]
    pub storage: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

// One value per process, parsed once: boxing the OCI variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Oci(OciCommand),
    /// Kubernetes-style pods
    Pod(DeferredGroup<pod::PodCommand>),
    /// The local image store: import, pull, ls, inspect, rm, prune
    Image(DeferredGroup<image::ImageCommand>),
    /// This machine as a Kubernetes node: show, label, taint
    Node(DeferredGroup<node::NodeCommand>),
    /// Plan where pods would go on a set of nodes (dry run, like kube-scheduler)
    Schedule(Deferred<node::Schedule>),
    /// Print a shell completion script (bash, zsh or fish)
    Completion(Deferred<Completion>),
    /// Write a man page for peapod and each of its verbs into DIR
    Man(Deferred<Man>),
    /// A pod's supervisor (started by `pod run`, not by hand)
    #[command(name = "__supervise", hide = true)]
    Supervise(Deferred<SuperviseArgs>),
}

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    pub name: String,
    pub ready_fd: i32,
    /// The host's mount namespace (pins of pod network namespaces are made there).
    pub mntns_fd: Option<i32>,
    /// The child running the pod network's ADD, started by `pod run`
    #[arg(long, value_name = "PID", requires = "add_fd")]
    pub add_child: Option<i32>,
    /// The read end of that child's result pipe
    #[arg(long, value_name = "FD", requires = "add_child")]
    pub add_fd: Option<i32>,
}

#[derive(Debug, clap::Args)]
pub struct Completion {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct Man {
    /// Directory for the pages (peapod.1, peapod-pod-run.1, ...)
    pub dir: PathBuf,
}

impl Command {
    /// Verbs that put a process into a container, and so run from a sealed copy.
    pub fn enters_container(&self) -> bool {
        match self {
            Command::Oci(c) => c.enters_container(),
            Command::Pod(p) => matches!(**p, pod::PodCommand::Run(_) | pod::PodCommand::Exec(_)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_oci_verb_of_peapod_runc_is_a_peapod_verb() {
        let mut runc = peapod_runc::cli::RuncCli::command();
        runc.build();
        let mut ours = Cli::command();
        ours.build();
        let sorted_ids = |args: &mut dyn Iterator<Item = &clap::Arg>| {
            let mut v: Vec<String> = args.map(|a| a.get_id().to_string()).collect();
            v.sort();
            v
        };
        // A verb's own arguments, without the globals `peapod` copies into each verb.
        let own =
            |c: &clap::Command| sorted_ids(&mut c.get_arguments().filter(|a| !a.is_global_set()));
        for v in runc.get_subcommands() {
            let mine = ours
                .find_subcommand(v.get_name())
                .unwrap_or_else(|| panic!("peapod lacks `{}`", v.get_name()));
            assert_eq!(own(mine), own(v), "{}", v.get_name());
        }
        // The same globals: before the verb in peapod-runc (as runc), anywhere in peapod.
        let globals = sorted_ids(&mut ours.get_arguments().filter(|a| a.get_id() != "storage"));
        assert_eq!(globals, sorted_ids(&mut runc.get_arguments()));
    }

    #[test]
    fn argv_parses_to_the_verbs() {
        for argv in [
            &["peapod", "--root", "/r", "create", "--bundle", "/b", "id"][..],
            &["peapod", "kill", "--all", "id", "KILL"],
            &["peapod", "pod", "ls", "-o", "wide"],
            &["peapod", "pod", "ls", "-o", "name"],
            &["peapod", "node", "label", "a=b", "--overwrite"],
            &["peapod", "node", "show", "-o", "wide"],
            &["peapod", "image", "ls", "--format", "json"],
            &["peapod", "image", "ls", "-o", "wide"],
            &["peapod", "list", "-o", "yaml"],
            &["peapod", "__supervise", "p", "5"],
            &["peapod", "features"],
            &["peapod", "completion", "fish"],
            &[
                "peapod",
                "--storage",
                "/s",
                "exec",
                "-t",
                "id",
                "sh",
                "-c",
                "x",
            ],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        let cli = Cli::try_parse_from(["peapod", "pod", "ls", "-o", "wide"]).unwrap();
        let Some(Command::Pod(p)) = &cli.command else {
            panic!("{cli:?}")
        };
        let pod::PodCommand::Ls(ls) = &**p else {
            panic!("{p:?}")
        };
        assert_eq!(ls.output, peapod_runc::output::Output::Wide);
        let cli = Cli::try_parse_from(["peapod", "__supervise", "p", "5"]).unwrap();
        assert!(
            matches!(&cli.command, Some(Command::Supervise(s)) if s.name == "p" && s.ready_fd == 5)
        );
        let argv = [
            "peapod",
            "__supervise",
            "p",
            "5",
            "6",
            "--add-child",
            "9",
            "--add-fd",
            "7",
        ];
        let cli = Cli::try_parse_from(argv).unwrap();
        assert!(matches!(&cli.command, Some(Command::Supervise(s))
            if s.mntns_fd == Some(6) && s.add_child.zip(s.add_fd) == Some((9, 7))));
        // The ADD's child and pipe come together.
        Cli::try_parse_from(["peapod", "__supervise", "p", "5", "6", "--add-child", "9"])
            .unwrap_err();
        // A group without a verb prints its help (an error), as before.
        assert!(Cli::try_parse_from(["peapod", "pod"]).is_err());
    }

    /// Only the verb in use gets its arguments built (the start-up saving of `defer`).
    #[test]
    fn only_the_parsed_verb_is_built() {
        let mut cmd = Cli::command();
        let m = cmd
            .try_get_matches_from_mut(["peapod", "state", "c1"])
            .unwrap();
        Cli::from_arg_matches(&m).unwrap();
        let own = |c: &clap::Command| c.get_arguments().filter(|a| !a.is_global_set()).count();
        assert!(own(cmd.find_subcommand("state").unwrap()) > 0);
        assert_eq!(own(cmd.find_subcommand("run").unwrap()), 0);
        assert_eq!(
            cmd.find_subcommand("pod")
                .unwrap()
                .get_subcommands()
                .count(),
            0
        );
    }

    #[test]
    fn enters_container_names_the_verbs_that_do() {
        let enters = |argv: &[&str]| {
            Cli::try_parse_from(argv)
                .unwrap()
                .command
                .unwrap()
                .enters_container()
        };
        assert!(enters(&["peapod", "run", "c"]));
        assert!(enters(&["peapod", "exec", "c", "true"]));
        assert!(enters(&["peapod", "pod", "exec", "p", "--", "true"]));
        assert!(enters(&["peapod", "pod", "run", "f.yaml"]));
        assert!(!enters(&["peapod", "state", "c"]));
        assert!(!enters(&["peapod", "pod", "ls"]));
    }
}
