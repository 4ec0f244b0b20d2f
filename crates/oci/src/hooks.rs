//! OCI hooks: run each with the container state on stdin, its args and env, and its timeout.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use thiserror::Error;

/// runc's words (`error running poststart hook #0: exit status 3, ...`), which callers match;
/// `#N` is the hook's index in its list in config.json.
#[derive(Debug, Error)]
pub enum HookError {
    #[error("error running {kind} hook #{index}: start `{path}`: {err}")]
    Spawn {
        kind: &'static str,
        index: usize,
        path: String,
        err: std::io::Error,
    },
    #[error("error running {kind} hook #{index}: {status}, stderr: {stderr}")]
    Failed {
        kind: &'static str,
        index: usize,
        status: String,
        stderr: String,
    },
    #[error("error running {kind} hook #{index}: `{path}` was killed: the runtime was interrupted")]
    Interrupted {
        kind: &'static str,
        index: usize,
        path: String,
    },
    #[error("error running {kind} hook #{index}: `{path}` timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        index: usize,
        path: String,
        secs: i64,
    },
}

/// Where a hook runs, which decides what it inherits when its `env` is absent (runc runs hooks
/// as Go's `exec.Cmd`, where a nil `Env` means the parent's environment; `"env": []` is empty).
#[derive(Debug, Clone, Copy)]
pub enum Site<'a> {
    /// From the runtime (prestart, createRuntime, poststart, poststop): the caller's
    /// environment (without peapod's own variables), in the bundle directory.
    Runtime,
    /// From the container's init: `env` is what the init holds at that point (nothing for
    /// createContainer, the process's for startContainer), in `cwd` (the rootfs for
    /// createContainer) or the init's own working directory.
    Init {
        env: &'a [String],
        cwd: Option<&'a std::path::Path>,
    },
}

/// Run `hooks` from the runtime, in order; the first failure stops the sequence.
pub fn run(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state_json: &[u8],
) -> Result<(), HookError> {
    run_at(kind, hooks, state_json, Site::Runtime)
}

/// Run `hooks` in order from `site`; the first failure stops the sequence.
pub fn run_at(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state_json: &[u8],
    site: Site<'_>,
) -> Result<(), HookError> {
    for (index, h) in hooks.into_iter().flatten().enumerate() {
        run_one(kind, index, h, state_json, site)?;
    }
    Ok(())
}

fn set_env<'a>(cmd: &mut Command, vars: impl IntoIterator<Item = &'a String>) {
    for kv in vars {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
}

fn run_one(
    kind: &'static str,
    index: usize,
    h: &Hook,
    state_json: &[u8],
    site: Site<'_>,
) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some(argv0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
    }
    cmd.args(args.iter().skip(1));
    match (h.env(), site) {
        (Some(env), _) => {
            cmd.env_clear();
            set_env(&mut cmd, env);
        }
        (None, Site::Runtime) => {
            for k in peapod_sys::INTERNAL_ENV {
                cmd.env_remove(k);
            }
        }
        (None, Site::Init { env, .. }) => {
            cmd.env_clear();
            set_env(&mut cmd, env);
        }
    }
    let cwd = match site {
        // runc runs runtime hooks in the bundle directory.
        Site::Runtime => serde_json::from_slice::<serde_json::Value>(state_json)
            .ok()
            .and_then(|v| v["bundle"].as_str().map(std::path::PathBuf::from))
            .filter(|b| b.is_absolute() && b.is_dir()),
        Site::Init { cwd, .. } => cwd.map(std::path::Path::to_path_buf),
    };
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let spawn_err = |err| HookError::Spawn {
        kind,
        index,
        path: path.clone(),
        err,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state_json);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| (t, Instant::now() + Duration::from_secs(t as u64)));
    // stderr is drained while the hook runs: a hook that writes more than a pipe holds
    // (64 KiB) would otherwise block forever on a full pipe while we wait for its exit.
    let mut stderr = StderrTail::default();
    let mut pipe = child.stderr.take();
    loop {
        if let Some(p) = &mut pipe
            && !stderr.drain(p, Duration::from_millis(5))
        {
            pipe = None;
        }
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            if let Some(p) = &mut pipe {
                while stderr.drain(p, Duration::ZERO) {}
            }
            if status.success() {
                return Ok(());
            }
            use std::os::unix::process::ExitStatusExt;
            // Go's wording of a process state.
            let status = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(sig)) => format!("signal: {sig}"),
                _ => status.to_string(),
            };
            return Err(HookError::Failed {
                kind,
                index,
                status,
                stderr: stderr.text(),
            });
        }
        if let Some((secs, at)) = deadline
            && Instant::now() >= at
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                kind,
                index,
                path,
                secs,
            });
        }
        if peapod_sys::interrupted().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Interrupted { kind, index, path });
        }
        if pipe.is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What a hook wrote to stderr: the first [`StderrTail::KEEP`] bytes are kept for the error
/// message, the rest is read and dropped.
#[derive(Default)]
struct StderrTail {
    kept: Vec<u8>,
    dropped: usize,
}

impl StderrTail {
    const KEEP: usize = 16 * 1024;

    /// Wait up to `wait` for data and read what is there; false at EOF (or on error).
    fn drain(&mut self, pipe: &mut std::process::ChildStderr, wait: Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return true,
            Err(_) => return false,
        }
        let mut buf = [0u8; 8192];
        match std::io::Read::read(pipe, &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                let room = Self::KEEP.saturating_sub(self.kept.len()).min(n);
                self.kept.extend_from_slice(&buf[..room]);
                self.dropped += n - room;
                true
            }
            Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
        }
    }

    fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.kept).trim().to_string();
        if self.dropped > 0 {
            format!("{s}... ({} more bytes)", self.dropped)
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn hook(args: &[&str], timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn state_reaches_stdin_and_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state");
        let ok = hook(&["sh", "-c", &format!("cat > {}", out.display())], None);
        run("prestart", Some(&vec![ok]), b"{\"id\":\"x\"}").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"{\"id\":\"x\"}");
        let bad = hook(&["sh", "-c", "echo nope >&2; exit 3"], None);
        let e = run("poststop", Some(&vec![bad]), b"")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "error running poststop hook #0: exit status 3, stderr: nope"
        );
    }

    #[test]
    fn a_hook_filling_the_stderr_pipe_does_not_hang() {
        // 256 KiB to stderr with no timeout: before stderr was drained while waiting, the hook
        // blocked on the full pipe and `run` waited for its exit forever.
        let loud = hook(
            &[
                "sh",
                "-c",
                "head -c 262144 /dev/zero | tr '\\0' x >&2; exit 1",
            ],
            None,
        );
        let t = Instant::now();
        let e = run("poststart", Some(&vec![loud]), b"")
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(
            e.ends_with(&format!("... ({} more bytes)", 262_144 - 16 * 1024)),
            "{e}"
        );
    }

    #[test]
    fn timeout_kills_the_hook() {
        let slow = hook(&["sh", "-c", "sleep 5"], Some(1));
        let t = Instant::now();
        let e = run("createRuntime", Some(&vec![slow]), b"").unwrap_err();
        assert!(matches!(e, HookError::Timeout { secs: 1, .. }));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
