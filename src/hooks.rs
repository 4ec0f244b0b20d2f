//! OCI hooks: run each with the container state on stdin, its args and env, and its timeout.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HookError {
    #[error("{kind} hook `{path}`: {source}")]
    Spawn {
        kind: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{kind} hook `{path}` exited with {status}{stderr}")]
    Failed {
        kind: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook `{path}` timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        path: String,
        secs: i64,
    },
}

/// Run `hooks` in order; the first failure stops the sequence.
pub fn run(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state_json: &[u8],
) -> Result<(), HookError> {
    for h in hooks.into_iter().flatten() {
        run_one(kind, h, state_json)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, h: &Hook, state_json: &[u8]) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some(argv0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let spawn_err = |source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
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
    loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            if status.success() {
                return Ok(());
            }
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            let stderr = stderr.trim();
            return Err(HookError::Failed {
                kind,
                path,
                status: status.to_string(),
                stderr: if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                },
            });
        }
        if let Some((secs, at)) = deadline
            && Instant::now() >= at
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout { kind, path, secs });
        }
        std::thread::sleep(Duration::from_millis(2));
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
            "poststop hook `/bin/sh` exited with exit status: 3: nope"
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
