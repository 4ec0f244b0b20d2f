use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use oci_spec::runtime::{Capability, Process};

use crate::cli::oci::Exec;
use peapod_oci::container::exec::{ExecOpts, exec};
use peapod_oci::container::{Container, wait};

/// The process to run: `--process FILE`, or the container's own process with the flags
/// applied (runc `getProcess`).
fn process(root: &Path, args: &Exec) -> Result<Process> {
    if let Some(f) = &args.process {
        let data = peapod_oci::container::spec::read_bounded(f)?;
        return peapod_oci::container::spec::parse_process(&data)
            .with_context(|| format!("parse process `{}`", f.display()));
    }
    if args.command.is_empty() {
        bail!("exec: give a command after the container id, or --process FILE");
    }
    let c = Container::load(root, &args.id)
        .with_context(|| format!("exec in container `{}`", args.id))?;
    let mut p = c
        .spec()?
        .process()
        .clone()
        .context("the container's config has no process")?;
    p.set_args(Some(args.command.clone()));
    p.set_env(Some(override_env(
        p.env().clone().unwrap_or_default(),
        &args.env,
    )));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    p.set_terminal(Some(args.tty));
    if let Some(u) = &args.user {
        let mut user = p.user().clone();
        let (uid, gid) = u
            .split_once(':')
            .map_or((u.as_str(), None), |(a, b)| (a, Some(b)));
        user.set_uid(
            uid.parse()
                .with_context(|| format!("--user `{u}`: use uid[:gid] with numbers"))?,
        );
        user.set_gid(
            gid.map(str::parse)
                .transpose()
                .with_context(|| format!("--user `{u}`: use uid[:gid] with numbers"))?
                .unwrap_or(0),
        );
        p.set_user(user);
    }
    if !args.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(args.additional_gids.clone()));
        p.set_user(user);
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap: Capability = serde_json::from_value(name.clone().into())
                .with_context(|| format!("--cap `{name}`: unknown capability"))?;
            // Inheritable stays untouched (CVE-2022-29162).
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ]
            .iter_mut()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

pub fn run(root: &Path, args: &Exec) -> Result<i32> {
    if args.apparmor.is_some() {
        bail!("exec: --apparmor is not supported by peapod");
    }
    if args.process_label.is_some() {
        bail!("exec: --process-label is not supported by peapod");
    }
    let mut p = process(root, args)?;
    let opts = ExecOpts {
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        preserve_fds: args.preserve_fds,
        ignore_paused: args.ignore_paused,
        pidfd_socket: args.pidfd_socket.clone(),
        cgroup: args.cgroup.clone(),
    };
    let proxy_tty = !args.detach && p.terminal().unwrap_or(false) && args.console_socket.is_none();
    if proxy_tty && let Some((rows, cols)) = wait::caller_winsize() {
        // The pty comes back only once the process runs: size it from the start instead.
        let size = oci_spec::runtime::BoxBuilder::default()
            .height(rows)
            .width(cols)
            .build()
            .context("console size")?;
        p.set_console_size(Some(size));
    }
    let pair = if proxy_tty {
        Some(socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?)
    } else {
        None
    };
    let mask = if args.detach {
        None
    } else {
        nix::sys::prctl::set_child_subreaper(true)?;
        Some(wait::block_signals()?)
    };
    let started = exec(root, &args.id, &p, &opts, pair)
        .with_context(|| format!("exec in container `{}`", args.id))?;
    let Some(mask) = mask else { return Ok(0) };
    // The process is our child now; like runc's exec, do not adopt what it orphans.
    nix::sys::prctl::set_child_subreaper(false)?;
    wait::wait_forwarding(started.pid, &mask, started.tty)
        .with_context(|| format!("exec in container `{}`", args.id))
}

/// The spec's environment with `--env` applied: a variable given again replaces the spec's
/// value in place, a new one is appended (runc `getProcess`).
fn override_env(mut env: Vec<String>, extra: &[String]) -> Vec<String> {
    for kv in extra {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(e) => e.clone_from(kv),
            None => env.push(kv.clone()),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::override_env;

    #[test]
    fn env_overrides_in_place_and_appends_new() {
        let spec = vec!["PATH=/bin".to_string(), "TERM=xterm".to_string()];
        let got = override_env(spec, &["PATH=/foo".into(), "NEW=1".into()]);
        assert_eq!(got, ["PATH=/foo", "TERM=xterm", "NEW=1"]);
    }
}
