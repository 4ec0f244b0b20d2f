use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cli::oci::Events;
use peapod_oci::container::events::{OomNotifier, oom_event, still_running};
use peapod_oci::container::{Container, lifecycle};

/// How often a stream with `--interval 0` (no stats, as in runc) checks that the container
/// still runs.
const IDLE_CHECK: Duration = Duration::from_secs(1);

pub fn run(root: &Path, args: &Events) -> Result<i32> {
    let what = || format!("events of container `{}`", args.id);
    if args.stats {
        crate::outln!("{}", lifecycle::stats(root, &args.id).with_context(what)?);
        return Ok(0);
    }
    // As runc: a stats event every interval (the first after one interval), an `oom` event
    // as soon as the kernel reports one. Unlike runc, the stream ends when the container stops.
    let (_, cg) = lifecycle::events_source(root, &args.id).with_context(what)?;
    let mut oom = OomNotifier::new(cg.as_ref()).with_context(what)?;
    let ticks = !args.interval.is_zero();
    let mut next = Instant::now() + if ticks { args.interval } else { IDLE_CHECK };
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        if let Some(n) = &mut oom {
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(n.fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                Ok(_) => {
                    for _ in 0..n.take(cg.as_ref()).with_context(what)? {
                        crate::outln!("{}", serde_json::to_string(&oom_event(&args.id))?);
                    }
                }
                Err(e) => return Err(e).context("poll for OOM events"),
            }
        } else {
            std::thread::sleep(wait);
        }
        if Instant::now() < next {
            continue;
        }
        match Container::load(root, &args.id) {
            Ok(c) if still_running(&c) => {}
            _ => return Ok(0),
        }
        if ticks {
            // A failed read is reported and the stream goes on, as runc does.
            match lifecycle::stats_line(&args.id, cg.as_ref()) {
                Ok(line) => crate::outln!("{line}"),
                Err(e) => log::error!("{}: {e}", what()),
            }
            next += args.interval;
        } else {
            next += IDLE_CHECK;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn oom_event_is_runcs_line() {
        let line = serde_json::to_string(&peapod_oci::container::events::oom_event("c1")).unwrap();
        assert_eq!(line, r#"{"type":"oom","id":"c1"}"#);
    }
}
