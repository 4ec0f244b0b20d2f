//! What both binaries do around a verb: protect themselves before parsing when a verb may
//! enter a container, parse, print the version, set up logging, run the verb and report its
//! error as runc does.

use crate::cli::{GlobalOpts, LogFormat};
use peapod_oci::logger;

/// A command line that the shared start-up can run.
pub trait Program: clap::Parser {
    fn global(&self) -> &GlobalOpts;
    /// Whether the verb puts a process into a container (and so runs from a sealed copy).
    fn enters_container(&self) -> bool;
    /// `exec` reports its own failures as 255, leaving 1..254 to the process (runc's rule).
    fn is_exec(&self) -> bool;
    fn dispatch(&self) -> anyhow::Result<i32>;
    /// Whether the verb is one of peapod's own (pods, images, node: kubectl-like), whose
    /// messages go to stderr as `error: ...` rather than runc's logrus lines.
    fn plain_messages(&self) -> bool {
        false
    }
}

/// Whether argv may name a verb that puts a process into a container, judged before clap
/// runs: re-executing from a protected binary first saves parsing the command line twice
/// (clap's start-up is most of a short command's cost under emulation). Any argument equal to
/// such a verb counts, so a container named `run` only costs a needless re-execution; the
/// exact check after parsing ([`Program::enters_container`]) stays.
fn may_enter_container() -> bool {
    std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")))
}

/// The error and its causes joined with ": ", as `{:#}` does, but a cause whose text the
/// message already ends with (an error that prints its source and also returns it from
/// `source()`) is not repeated.
pub fn chain_message(e: &anyhow::Error) -> String {
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

/// Whether the error is a write to a closed pipe (`peapod list | head -1`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The runc release whose command line peapod answers as (differential tests compare with it).
pub const RUNC_COMPAT: &str = "1.5.1";

/// runc's `--version` lines, in runc's order and shape, so that parsers of runc's output read
/// them (containerd's go-runc takes the version only from a first line starting with
/// `runc version `, then `commit: ` and `spec: `; Docker splits the first line on `version`):
///
/// 1. `runc version 1.5.1+peapod.0.1.0`: the runc release whose behaviour this binary
///    implements, with peapod's own version as semver build metadata (whatever the name the
///    binary is called by);
/// 2. `commit: <git commit of the source>` (`unknown` when not built from a git checkout);
/// 3. `spec: <the OCI runtime-spec version peapod implements and writes>`;
/// 4. `rust: rustc X.Y.Z`, the compiler, where runc prints `go: goX.Y.Z`;
/// 5. `libseccomp: X.Y.Z`, the library version found at run time, as runc.
fn print_version() -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "runc version {RUNC_COMPAT}+peapod.{}",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(out, "commit: {}", env!("PEAPOD_GIT_COMMIT"))?;
    writeln!(out, "spec: {}", peapod_oci::container::state::OCI_VERSION)?;
    writeln!(out, "rust: {}", env!("PEAPOD_RUSTC_VERSION"))?;
    writeln!(
        out,
        "libseccomp: {}",
        peapod_oci::seccomp::library_version()
    )?;
    out.flush()
}

/// A command line clap refuses: its message, then runc's status for a usage error (1; clap's
/// own is 2). Help and version requests keep clap's output and status.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            let _ = e.print();
            std::process::exit(1)
        }
    }
}

fn sealed_or_exit() {
    if let Err(e) = peapod_sys::ensure_sealed_self() {
        eprintln!("run from a sealed copy of peapod: {e}");
        std::process::exit(1);
    }
}

/// Parse the command line of `P` and run it; never returns.
pub fn main<P: Program>() -> ! {
    if may_enter_container() {
        sealed_or_exit();
    }
    let cli = match P::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let global = cli.global();
    if global.version {
        if let Err(e) = print_version() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                peapod_sys::die_of_sigpipe();
            }
            eprintln!("print the version: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    let format = match global.log_format {
        LogFormat::Text if cli.plain_messages() => logger::Format::Plain,
        LogFormat::Text => logger::Format::Text,
        LogFormat::Json => logger::Format::Json,
    };
    if let Err(e) = logger::init(global.log.as_deref(), format, global.debug) {
        eprintln!("open log file: {e}");
        std::process::exit(1);
    }
    peapod_oci::cgroups::set_systemd_driver(global.systemd_cgroup);
    let result = {
        if cli.enters_container() {
            sealed_or_exit();
        }
        cli.dispatch()
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) if is_broken_pipe(&e) => peapod_sys::die_of_sigpipe(),
        Err(e) => {
            let msg = chain_message(&e);
            log::error!("{msg}");
            if global.log.is_some() {
                eprintln!("{msg}");
            }
            std::process::exit(if cli.is_exec() { 255 } else { 1 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_told_apart_from_other_errors() {
        let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("list containers");
        assert!(is_broken_pipe(&pipe));
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(&other));
    }

    #[test]
    fn chain_message_does_not_repeat_a_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "open x: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::from(Outer(std::io::Error::other("boom"))).context("create");
        assert_eq!(chain_message(&e), "create: open x: boom");
    }
}
