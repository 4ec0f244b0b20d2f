//! Command-line definitions (clap only), defined once with clap's derive. The OCI verbs follow
//! runc's flags exactly, since containerd's shim and podman's conmon build argv for runc.
//!
//! Each verb's arguments are built only when that verb is used: a verb's variant holds
//! [`Deferred<T>`], whose `augment_args` hands `T`'s to [`clap::Command::defer`]. Building every
//! verb's parser up front was most of clap's start-up, which every container start pays.

pub mod oci;

use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

/// What a wrapper of parsed arguments `T` shares: it reads as `T` and is parsed as `T`; each
/// wrapper differs only in how it adds `T`'s arguments to the command (its `Args`).
macro_rules! wraps_args {
    ($name:ident) => {
        impl<T> std::ops::Deref for $name<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T: FromArgMatches> FromArgMatches for $name<T> {
            fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
                T::from_arg_matches(m).map($name)
            }
            fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
                self.0.update_from_arg_matches(m)
            }
        }
    };
}

/// A verb's arguments `T`, added to its `clap::Command` only when that verb is parsed (or a
/// whole-tree consumer such as help, completions or man pages builds it).
#[derive(Debug)]
pub struct Deferred<T>(pub T);

wraps_args!(Deferred);

impl<T: Args> Args for Deferred<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_args)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_args_for_update)
    }
}

/// A group of verbs `T` (`pod`, `image`, `node`), built only when the group is used.
#[derive(Debug)]
pub struct DeferredGroup<T>(pub T);

wraps_args!(DeferredGroup);

impl<T: Subcommand> Args for DeferredGroup<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.subcommand_required(true)
            .arg_required_else_help(true)
            .defer(T::augment_subcommands)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.subcommand_required(true)
            .arg_required_else_help(true)
            .defer(T::augment_subcommands_for_update)
    }
}

/// runc's globals as `runc` takes them: before the verb only (`runc create --root x` is
/// "flag provided but not defined: -root"). The same [`GlobalOpts`] are global in `peapod`,
/// whose own verbs take them anywhere; in `peapod-runc` nothing is copied into each verb's
/// parser at every start.
#[derive(Debug)]
pub struct BeforeVerb<T>(pub T);

wraps_args!(BeforeVerb);

/// Added first (flattened before any other field), so `mut_args` sees `T`'s arguments only.
impl<T: Args> Args for BeforeVerb<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        T::augment_args(cmd).mut_args(|a| a.global(false))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        T::augment_args_for_update(cmd).mut_args(|a| a.global(false))
    }
}

/// The flags every verb takes (runc's globals).
#[derive(Debug, clap::Args)]
pub struct GlobalOpts {
    /// Directory for container state
    #[arg(long, global = true, default_value = "/run/peapod")]
    pub root: PathBuf,
    /// Write logs (and errors) to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Format of the --log file
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages (logrus-style `level=debug` lines, to --log or stderr)
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups: `cgroupsPath` is `slice:prefix:name`, a transient scope unit
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

/// The runc-compatible verbs, shared by `peapod` (flattened into its verbs) and `peapod-runc`.
#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Create a container from a bundle (runc create)
    Create(Deferred<oci::Create>),
    /// Start a created container
    Start(Deferred<oci::Id>),
    /// Print a container's state as JSON
    State(Deferred<oci::Id>),
    /// Send a signal to a container's process(es)
    Kill(Deferred<oci::Kill>),
    /// Delete a container and its state
    Delete(Deferred<oci::Delete>),
    /// Create and start a container, and wait for it
    Run(Deferred<oci::Run>),
    /// Run another process in a running container
    Exec(Deferred<oci::Exec>),
    /// List containers
    List(Deferred<oci::List>),
    /// List the processes of a container
    Ps(Deferred<oci::Ps>),
    /// Freeze every process of a container
    Pause(Deferred<oci::Id>),
    /// Thaw a paused container
    Resume(Deferred<oci::Id>),
    /// Change a container's cgroup resources
    Update(Deferred<oci::Update>),
    /// Print a container's resource statistics
    Events(Deferred<oci::Events>),
    /// Write a template config.json
    Spec(Deferred<oci::Spec>),
    /// Print the OCI features this runtime supports
    Features,
}

impl OciCommand {
    /// Verbs that put a process into a container, and so run from a sealed copy.
    pub fn enters_container(&self) -> bool {
        matches!(
            self,
            OciCommand::Create(_) | OciCommand::Run(_) | OciCommand::Exec(_)
        )
    }

    /// Run the verb.
    pub fn dispatch(&self, root: &std::path::Path) -> anyhow::Result<i32> {
        use crate::commands;
        match self {
            OciCommand::Create(a) => commands::create::run(root, a),
            OciCommand::Start(a) => commands::start::run(root, a),
            OciCommand::State(a) => commands::state::run(root, a),
            OciCommand::Kill(a) => commands::kill::run(root, a),
            OciCommand::Delete(a) => commands::delete::run(root, a),
            OciCommand::Run(a) => commands::run::run(root, a),
            OciCommand::Exec(a) => commands::exec::run(root, a),
            OciCommand::List(a) => commands::list::run(root, a),
            OciCommand::Ps(a) => commands::ps::run(root, a),
            OciCommand::Pause(a) => commands::pause::pause(root, a),
            OciCommand::Resume(a) => commands::pause::resume(root, a),
            OciCommand::Update(a) => commands::update::run(root, a),
            OciCommand::Events(a) => commands::events::run(root, a),
            OciCommand::Spec(a) => commands::spec::run(a),
            OciCommand::Features => commands::features::run(),
        }
    }
}

/// The `peapod-runc` command line: the globals and the OCI verbs.
#[derive(Debug, Parser)]
#[command(
    name = "peapod-runc",
    about = "The runc-compatible OCI runtime of peapod (the OCI verbs of `peapod`)",
    disable_version_flag = true
)]
pub struct RuncCli {
    #[command(flatten)]
    pub global: BeforeVerb<GlobalOpts>,
    #[command(subcommand)]
    pub command: Option<OciCommand>,
}

impl crate::app::Program for RuncCli {
    fn global(&self) -> &GlobalOpts {
        &self.global.0
    }
    fn enters_container(&self) -> bool {
        self.command
            .as_ref()
            .is_some_and(OciCommand::enters_container)
    }
    fn is_exec(&self) -> bool {
        matches!(self.command, Some(OciCommand::Exec(_)))
    }
    fn dispatch(&self) -> anyhow::Result<i32> {
        match &self.command {
            Some(c) => c.dispatch(&self.global.0.root),
            None => anyhow::bail!("no command given: see `peapod-runc --help`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_runc_command_line_is_consistent() {
        RuncCli::command().debug_assert();
    }

    /// Only the verb in use gets its arguments built: the start-up saving of `defer`.
    #[test]
    fn only_the_parsed_verb_is_built() {
        let mut cmd = RuncCli::command();
        let m = cmd
            .try_get_matches_from_mut(["peapod-runc", "kill", "--all", "c1", "KILL"])
            .unwrap();
        let cli = RuncCli::from_arg_matches(&m).unwrap();
        let Some(OciCommand::Kill(k)) = &cli.command else {
            panic!("{cli:?}")
        };
        assert!(k.all);
        assert_eq!((k.id.as_str(), k.signal.as_str()), ("c1", "KILL"));
        let args = |name: &str| {
            cmd.find_subcommand(name)
                .unwrap()
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .count()
        };
        assert!(args("kill") > 0);
        assert_eq!(args("create"), 0, "create was built though unused");
    }

    #[test]
    fn interval_is_a_go_duration() {
        use std::time::Duration;
        for (s, want) in [
            ("5s", Duration::from_secs(5)),
            ("500ms", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h", Duration::from_secs(7200)),
            ("0", Duration::ZERO),
            ("10us", Duration::from_micros(10)),
        ] {
            assert_eq!(oci::go_duration(s), Ok(want), "{s}");
        }
        for s in ["5", "", "1x", "s", "-1s", "1.s5", "."] {
            assert!(oci::go_duration(s).is_err(), "{s}");
        }
        let cli = RuncCli::try_parse_from(["x", "events", "--interval", "250ms", "id"]).unwrap();
        let Some(OciCommand::Events(e)) = cli.command else {
            panic!()
        };
        assert_eq!(e.interval, Duration::from_millis(250));
        assert!(RuncCli::try_parse_from(["x", "events", "--interval", "5", "id"]).is_err());
    }

    #[test]
    fn update_takes_runcs_flags() {
        let cli = RuncCli::try_parse_from([
            "x",
            "update",
            "--pids-limit",
            "-1",
            "--memory",
            "-1",
            "--l3-cache-schema",
            "L3:0=f",
            "--mem-bw-schema",
            "MB:0=50",
            "id",
        ])
        .unwrap();
        let Some(OciCommand::Update(u)) = cli.command else {
            panic!()
        };
        assert_eq!(u.pids_limit, Some(-1));
        assert_eq!(u.memory.as_deref(), Some("-1"));
        assert!(u.l3_cache_schema.is_some() && u.mem_bw_schema.is_some());
    }

    #[test]
    fn runc_argv_parses_as_runc_means_it() {
        for argv in [
            &[
                "peapod-runc",
                "--root",
                "/r",
                "create",
                "--bundle",
                "/b",
                "id",
            ][..],
            &["peapod-runc", "exec", "-t", "id", "sh", "-c", "x"],
            &[
                "peapod-runc",
                "--log-format",
                "json",
                "delete",
                "--force",
                "id",
            ],
            &["peapod-runc", "list", "--format", "json"],
            &["peapod-runc", "list", "-f", "json"],
            &["peapod-runc", "ps", "--format", "json", "id"],
            &["peapod-runc", "features"],
        ] {
            RuncCli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        let cli =
            RuncCli::try_parse_from(["x", "--root", "/r", "exec", "-t", "id", "sh", "-c", "x"])
                .unwrap();
        assert_eq!(cli.global.root, PathBuf::from("/r"));
        // As runc: the globals come before the verb.
        for argv in [
            &["x", "exec", "--root", "/r", "id", "true"][..],
            &["x", "create", "--log-format", "json", "id"],
            &["x", "delete", "--debug", "id"],
        ] {
            assert!(RuncCli::try_parse_from(argv).is_err(), "{argv:?}");
        }
        let Some(OciCommand::Exec(e)) = cli.command else {
            panic!()
        };
        assert!(e.tty);
        assert_eq!(e.command, ["sh", "-c", "x"]);
    }
}
