use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use crate::cli::oci::Run;
use peapod_oci::container::{create, lifecycle, spec, wait};
use peapod_oci::process::channel::recv_fd;

/// create + start; in the foreground, wait with signal forwarding, then delete unless --keep.
pub fn run(root: &Path, args: &Run) -> Result<i32> {
    let mut opts = super::create_opts(&args.flags);
    // A config.json that fails to load is reported by create, with its path.
    opts.config = spec::load_config(&opts.bundle).ok();
    let terminal = opts
        .config
        .as_ref()
        .and_then(|c| c.spec.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false);
    let mut tty_sock: Option<OwnedFd> = None;
    if !args.detach && terminal && opts.console_socket.is_none() {
        // Foreground with a terminal: receive the pty master ourselves and proxy it.
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        opts.console_fd = Some(theirs);
        tty_sock = Some(ours);
    }
    // `start` runs these without reading config.json again (as `peapod start` does).
    let poststart = match &opts.config {
        Some(c) => lifecycle::Poststart::of(&c.spec),
        None => lifecycle::Poststart::FromConfig,
    };
    let mask = if args.detach {
        None
    } else {
        // The init is a grandchild: as subreaper we become its parent when stage 1 exits.
        nix::sys::prctl::set_child_subreaper(true)?;
        Some(wait::block_signals()?)
    };
    let st = create::create(root, &args.id, opts)
        .with_context(|| format!("create container `{}`", args.id))?;
    let Some(mask) = mask else {
        lifecycle::start_with(root, &args.id, poststart)
            .with_context(|| format!("start container `{}`", args.id))?;
        return Ok(0);
    };
    // The init is our child now. runc stays the subreaper of the processes it orphans (a
    // container sharing our pid namespace) and reaps them, unless --no-subreaper.
    if args.no_subreaper {
        nix::sys::prctl::set_child_subreaper(false)?;
    }
    // The caller's terminal is set up before start, so the process sees its size at once.
    let tty = match &tty_sock {
        Some(s) => recv_fd(s)
            .context("receive pty master")
            .and_then(|m| m.map(wait::Terminal::new).transpose().map_err(Into::into)),
        None => Ok(None),
    };
    let started = tty.and_then(|tty| {
        lifecycle::start_with(root, &args.id, poststart)
            .with_context(|| format!("start container `{}`", args.id))?;
        Ok(tty)
    });
    let tty = match started {
        Ok(tty) => tty,
        Err(e) => {
            let _ = lifecycle::delete(root, &args.id, true);
            return Err(e);
        }
    };
    let code = wait::wait_terminal(nix::unistd::Pid::from_raw(st.pid), &mask, tty)
        .with_context(|| format!("run container `{}`", args.id))?;
    if !args.keep {
        lifecycle::delete(root, &args.id, true)
            .with_context(|| format!("delete container `{}`", args.id))?;
    }
    Ok(code)
}
