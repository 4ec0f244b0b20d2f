//! The `peapod` binary: parse flags, set up logging, dispatch to a verb.

mod cli;
mod commands;

use clap::FromArgMatches;

use cli::{Cli, Command, LogFormat};
use peapod::logger;

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let root = &cli.global.root;
    let Some(cmd) = &cli.command else {
        anyhow::bail!("no command given: see `peapod --help`");
    };
    match cmd {
        Command::Create(a) => commands::create::run(root, a),
        Command::Start(a) => commands::start::run(root, a),
        Command::State(a) => commands::state::run(root, a),
        Command::Kill(a) => commands::kill::run(root, a),
        Command::Delete(a) => commands::delete::run(root, a),
        Command::Run(a) => commands::run::run(root, a),
        Command::Exec(a) => commands::exec::run(root, a),
        Command::List(a) => commands::list::run(root, a),
        Command::Ps(a) => commands::ps::run(root, a),
        Command::Pause(a) => commands::pause::pause(root, a),
        Command::Resume(a) => commands::pause::resume(root, a),
        Command::Update(a) => commands::update::run(root, a),
        Command::Events(a) => commands::events::run(root, a),
        Command::Spec(a) => commands::spec::run(a),
        Command::Features => commands::features::run(),
        Command::Pod(p) => commands::pod::run(root, &cli.global.storage, p),
        Command::Image(c) => commands::image::run(root, &cli.global.storage, c),
        Command::Node(n) => commands::node::run(root, &cli.global.storage, n),
        Command::Schedule(a) => commands::node::schedule(a),
        Command::Supervise(a) => {
            peapod::pod::ops::supervise(root, &cli.global.storage, &a.name, a.ready_fd)
        }
    }
}

/// Whether argv may name a verb that puts a process into a container, judged before clap
/// runs: re-executing from a protected binary first saves parsing the command line twice
/// (clap's start-up is most of a short command's cost under emulation). Any argument equal to
/// such a verb counts, so a container named `run` only costs a needless re-execution; the
/// exact check after parsing (`Command::enters_container`) stays.
fn may_enter_container() -> bool {
    std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")))
}

/// The error and its causes joined with ": ", as `{:#}` does, but a cause whose text the
/// message already ends with (an error that prints its source and also returns it from
/// `source()`) is not repeated.
fn chain_message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.ends_with(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

fn main() {
    if may_enter_container()
        && let Err(e) = peapod::sys::ensure_sealed_self()
    {
        eprintln!("run from a sealed copy of peapod: {e}");
        std::process::exit(1);
    }
    let matches = cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.global.version {
        println!("peapod version {}", env!("CARGO_PKG_VERSION"));
        println!("spec: {}", peapod::container::state::OCI_VERSION);
        println!("libseccomp: {}", peapod::seccomp::library_version());
        return;
    }
    let format = match cli.global.log_format {
        LogFormat::Text => logger::Format::Text,
        LogFormat::Json => logger::Format::Json,
    };
    if let Err(e) = logger::init(cli.global.log.as_deref(), format, cli.global.debug) {
        eprintln!("open log file: {e}");
        std::process::exit(1);
    }
    let is_exec = matches!(cli.command, Some(Command::Exec(_)));
    let result = if cli.global.systemd_cgroup {
        let why = if std::path::Path::new("/run/systemd/system").exists() {
            "peapod drives cgroupfs only"
        } else {
            "systemd is not running on this host"
        };
        Err(anyhow::anyhow!(
            "--systemd-cgroup is not supported: {why}; omit the flag to use cgroupfs"
        ))
    } else {
        if cli.command.as_ref().is_some_and(Command::enters_container)
            && let Err(e) = peapod::sys::ensure_sealed_self()
        {
            eprintln!("run from a sealed copy of peapod: {e}");
            std::process::exit(1);
        }
        dispatch(&cli)
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = chain_message(&e);
            log::error!("{msg}");
            if cli.global.log.is_some() {
                eprintln!("{msg}");
            }
            // runc's exec reports its own failures as 255, leaving 1..254 to the process.
            std::process::exit(if is_exec { 255 } else { 1 });
        }
    }
}
