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

/// runc's `--version` lines: `NAME version V`, then `key: value` lines.
fn print_version(name: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{name} version {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "spec: {}", peapod_oci::container::state::OCI_VERSION)?;
    writeln!(
        out,
        "libseccomp: {}",
        peapod_oci::seccomp::library_version()
    )?;
    out.flush()
}

fn sealed_or_exit() {
    if let Err(e) = peapod_sys::ensure_sealed_self() {
        eprintln!("run from a sealed copy of peapod: {e}");
        std::process::exit(1);
    }
}

/// Parse the command line of `P` and run it; never returns.
pub fn main<P: Program>(name: &str) -> ! {
    if may_enter_container() {
        sealed_or_exit();
    }
    let cli = P::parse();
    let global = cli.global();
    if global.version {
        if let Err(e) = print_version(name) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                peapod_sys::die_of_sigpipe();
            }
            eprintln!("print the version: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    let format = match global.log_format {
        LogFormat::Text => logger::Format::Text,
        LogFormat::Json => logger::Format::Json,
    };
    if let Err(e) = logger::init(global.log.as_deref(), format, global.debug) {
        eprintln!("open log file: {e}");
        std::process::exit(1);
    }
    let result = if global.systemd_cgroup {
        let why = if std::path::Path::new("/run/systemd/system").exists() {
            "peapod drives cgroupfs only"
        } else {
            "systemd is not running on this host"
        };
        Err(anyhow::anyhow!(
            "--systemd-cgroup is not supported: {why}; omit the flag to use cgroupfs"
        ))
    } else {
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
