//! Running one plugin binary: finding it in the CNI_PATH dirs, the environment, stdin, the
//! timeout, and reading its error object.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::config::valid_name;

/// Where kubelet's runtimes look for plugins when `CNI_PATH` is not set: the upstream location,
/// then Debian's.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// The Debian package that ships the reference plugins.
pub const PLUGINS_PACKAGE: &str = "containernetworking-plugins";

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CniCommand {
    /// Attach the container to the network.
    Add,
    /// Detach it.
    Del,
    /// Verify the attachment.
    Check,
    /// Report supported spec versions.
    Version,
}

impl CniCommand {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Version => "VERSION",
        }
    }
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why running a plugin did not give a success answer (before the answer is interpreted).
#[derive(Debug)]
pub enum ExecFailure {
    /// The binary could not be started.
    Spawn(io::Error),
    /// It ran past the timeout and was killed.
    Timeout,
    /// It exited non-zero (or was killed by a signal).
    Failed {
        /// `exit status 1`, `signal 9`.
        status: String,
        /// Its stdout: the error object, if it wrote one.
        stdout: Vec<u8>,
        /// Its stderr.
        stderr: Vec<u8>,
    },
}

/// How plugins are found and run. The real one ([`ProcessExec`]) execs binaries; tests pass
/// fakes.
pub trait PluginExec: Send + Sync {
    /// The binary for `plugin_type`: the first `dir/plugin_type` that is a file.
    fn find(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, PluginError> {
        find_in_path(plugin_type, dirs)
    }

    /// Run `plugin` with the `CNI_*` variables `env`, `stdin` on its standard input; its stdout
    /// on exit status 0.
    fn exec(
        &self,
        plugin: &Path,
        env: &[(String, String)],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ExecFailure>;
}

/// The first `dir/plugin_type` that is a regular file (symlinks followed), as libcni's
/// `FindInPath`. The type must be a plain name: `/` or `..` cannot leave the dirs.
pub fn find_in_path(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, PluginError> {
    if !valid_name(plugin_type) {
        return Err(PluginError::BadName {
            plugin: plugin_type.to_string(),
        });
    }
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(|| PluginError::NotFound {
            plugin: plugin_type.to_string(),
            dirs: join_dirs(dirs),
        })
}

/// `CNI_PATH` form of `dirs`.
pub(crate) fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs plugin binaries as child processes, each in its own process group so a timeout kills
/// whatever it started (iptables, ...).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessExec;

/// ETXTBSY: a plugin being replaced (or a file still open for writing in a forked child of a
/// concurrent thread). libcni retries these.
const TEXT_FILE_BUSY_RETRIES: u32 = 5;

/// Linux's default pipe capacity: a write of at most this much never blocks on a fresh pipe.
const PIPE_CAPACITY: usize = 65536;

impl PluginExec for ProcessExec {
    fn exec(
        &self,
        plugin: &Path,
        env: &[(String, String)],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ExecFailure> {
        let mut attempt = 0;
        let mut child = loop {
            let mut cmd = Command::new(plugin);
            // The plugin inherits the environment (iptables needs PATH) but only our CNI_*.
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("CNI_") {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e)
                    if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                        && attempt < TEXT_FILE_BUSY_RETRIES =>
                {
                    attempt += 1;
                    // A retry back-off, not synchronisation: there is no event for "the
                    // writer closed the file".
                    thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                }
                Err(e) => return Err(ExecFailure::Spawn(e)),
            }
        };
        let pgid = Pid::from_raw(child.id() as i32);
        // stdin on its own thread: a plugin that does not read it must not block us past the
        // timeout. EPIPE (the plugin exited without reading) is not our error.
        let writer = child.stdin.take().map(|mut pipe| {
            let data = stdin.to_vec();
            thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        // Once the plugin is reaped, both threads are finishing: join them, so the caller is
        // single-threaded again when this returns (the supervisor forks right after a plugin
        // call, and `peapod_sys::fork` refuses while another thread exists). The writer is
        // done too: the config fits the pipe, or the plugin's exit made the write fail.
        let join = |waiter: thread::JoinHandle<()>| {
            let _ = waiter.join();
            // A config beyond the pipe's capacity, held open by a grandchild that does not
            // read it, would block the writer for ever: that one is left behind.
            if let Some(w) = writer.filter(|w| stdin.len() <= PIPE_CAPACITY || w.is_finished()) {
                let _ = w.join();
            }
        };
        let output = match rx.recv_timeout(timeout) {
            Ok(out) => {
                join(waiter);
                out.map_err(ExecFailure::Spawn)?
            }
            Err(_) => {
                // The child is not reaped until the waiter returns, so its pid (the group id)
                // cannot have been reused yet unless it finished in this very instant.
                if let Ok(out) = rx.try_recv() {
                    join(waiter);
                    out.map_err(ExecFailure::Spawn)?
                } else {
                    let _ = killpg(pgid, Signal::SIGKILL);
                    // Reap it; a grandchild that left the group may keep the pipes open, so do
                    // not wait for ever.
                    let _ = rx.recv_timeout(Duration::from_secs(5));
                    return Err(ExecFailure::Timeout);
                }
            }
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        let status = match (output.status.code(), output.status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => output.status.to_string(),
        };
        Err(ExecFailure::Failed {
            status,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

/// A plugin's error object (`{"cniVersion","code","msg","details"}` on stdout).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorObject {
    /// The error code (1-99 from the spec, 100+ plugin-specific).
    #[serde(default)]
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Longer description.
    #[serde(default)]
    pub details: String,
}

impl ErrorObject {
    /// The spec's name for a well-known code.
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            1 => "incompatible cni version",
            2 => "unsupported field in network configuration",
            3 => "container unknown or does not exist",
            4 => "invalid necessary environment variables",
            5 => "i/o failure",
            6 => "failed to decode content",
            7 => "invalid network config",
            11 => "try again later",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code_name() {
            Some(name) => write!(f, "code {} ({name})", self.code)?,
            None => write!(f, "code {}", self.code)?,
        }
        if !self.msg.is_empty() {
            write!(f, ": {}", self.msg)?;
        }
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

/// A plugin could not be found, run, or it failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No binary for the type in any dir.
    #[error(
        "cni plugin `{plugin}` not found in {dirs}: install Debian's `containernetworking-plugins` \
         package (apt-get install containernetworking-plugins) or set CNI_PATH"
    )]
    NotFound {
        /// The plugin type.
        plugin: String,
        /// The dirs searched, `:`-separated.
        dirs: String,
    },
    /// The type is not a file name.
    #[error("cni plugin type `{plugin}` is not a plugin binary name")]
    BadName {
        /// The type.
        plugin: String,
    },
    /// The binary could not be started.
    #[error("exec cni plugin `{path}` ({command}): {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The command.
        command: CniCommand,
        /// Why.
        source: io::Error,
    },
    /// It ran past the timeout.
    #[error("cni plugin `{path}` ({command}) did not finish within {timeout:?} and was killed")]
    Timeout {
        /// The binary.
        path: PathBuf,
        /// The command.
        command: CniCommand,
        /// The limit.
        timeout: Duration,
    },
    /// It failed with an error object.
    #[error("cni plugin `{path}` ({command}) failed: {error}")]
    Failed {
        /// The binary.
        path: PathBuf,
        /// The command.
        command: CniCommand,
        /// What it said.
        error: ErrorObject,
    },
    /// It failed without a readable error object.
    #[error("cni plugin `{path}` ({command}) failed with {status}: {output}")]
    NoErrorObject {
        /// The binary.
        path: PathBuf,
        /// The command.
        command: CniCommand,
        /// `exit status 1`.
        status: String,
        /// Its stdout if any, else its stderr, else a note that it said nothing.
        output: String,
    },
    /// It succeeded with an answer that cannot be read.
    #[error("cni plugin `{path}` ({command}) returned an unusable answer: {reason}")]
    BadOutput {
        /// The binary.
        path: PathBuf,
        /// The command.
        command: CniCommand,
        /// What is wrong.
        reason: String,
    },
}

impl PluginError {
    /// The error object, when the plugin wrote one.
    pub fn error_object(&self) -> Option<&ErrorObject> {
        match self {
            PluginError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Turn an [`ExecFailure`] of `path` running `command` into the error to report.
    pub fn from_failure(
        path: &Path,
        command: CniCommand,
        failure: ExecFailure,
        timeout: Duration,
    ) -> PluginError {
        let path = path.to_path_buf();
        match failure {
            ExecFailure::Spawn(source) => PluginError::Spawn {
                path,
                command,
                source,
            },
            ExecFailure::Timeout => PluginError::Timeout {
                path,
                command,
                timeout,
            },
            ExecFailure::Failed {
                status,
                stdout,
                stderr,
            } => {
                let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
                if !stdout.iter().all(u8::is_ascii_whitespace) {
                    if let Ok(error) = serde_json::from_slice::<ErrorObject>(&stdout) {
                        return PluginError::Failed {
                            path,
                            command,
                            error,
                        };
                    }
                    return PluginError::NoErrorObject {
                        path,
                        command,
                        status,
                        output: format!("unreadable error object {:?}", text(&stdout)),
                    };
                }
                let output = if stderr.iter().all(u8::is_ascii_whitespace) {
                    "no error message".to_string()
                } else {
                    format!("stderr: {}", text(&stderr))
                };
                PluginError::NoErrorObject {
                    path,
                    command,
                    status,
                    output,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn find_takes_the_first_dir_holding_a_file() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        script(b.path(), "bridge", "true");
        assert_eq!(
            find_in_path("bridge", &dirs).unwrap(),
            b.path().join("bridge")
        );
        script(a.path(), "bridge", "true");
        assert_eq!(
            find_in_path("bridge", &dirs).unwrap(),
            a.path().join("bridge")
        );
        // A directory of that name is not a plugin.
        fs::create_dir(a.path().join("portmap")).unwrap();
        let err = find_in_path("portmap", &dirs).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cni plugin `portmap` not found in {}:{}: install Debian's \
                 `containernetworking-plugins` package (apt-get install \
                 containernetworking-plugins) or set CNI_PATH",
                a.path().display(),
                b.path().display()
            )
        );
    }

    #[test]
    fn find_refuses_a_type_that_is_a_path() {
        // Defence: without the name check `../b/evil` would resolve outside the first dir
        // (checked by removing the check: the test then finds the script).
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        script(b.path(), "evil", "true");
        let rel = format!(
            "../{}/evil",
            b.path().file_name().unwrap().to_string_lossy()
        );
        let err = find_in_path(&rel, &[a.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, PluginError::BadName { .. }), "{err}");
        for bad in ["/bin/sh", "..", ".", ""] {
            assert!(find_in_path(bad, &[PathBuf::from("/")]).is_err(), "{bad}");
        }
    }

    #[test]
    fn exec_passes_env_and_stdin_and_returns_stdout() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "echo",
            r#"printf '{"cmd":"%s","id":"%s","stray":"%s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_STRAY"; cat"#,
        );
        let env = [
            ("CNI_COMMAND".to_string(), "ADD".to_string()),
            ("CNI_CONTAINERID".to_string(), "c1".to_string()),
        ];
        let out = ProcessExec
            .exec(&p, &env, b"<stdin>", Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"cmd":"ADD","id":"c1","stray":""}<stdin>"#
        );
    }

    #[test]
    fn exec_reports_status_stdout_and_stderr() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "fail",
            "echo oops >&2; echo '{\"code\":7}'; exit 3",
        );
        match ProcessExec.exec(&p, &[], b"", Duration::from_secs(10)) {
            Err(ExecFailure::Failed {
                status,
                stdout,
                stderr,
            }) => {
                assert_eq!(status, "exit status 3");
                assert_eq!(stdout, b"{\"code\":7}\n");
                assert_eq!(stderr, b"oops\n");
            }
            other => panic!("{other:?}"),
        }
        let missing = d.path().join("missing");
        assert!(matches!(
            ProcessExec.exec(&missing, &[], b"", Duration::from_secs(1)),
            Err(ExecFailure::Spawn(_))
        ));
    }

    /// Whether `pid` has exited (gone, or a zombie waiting for its new parent).
    fn exited(pid: i32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    /// Defence: the caller is single-threaded again once `exec` returned (the supervisor forks
    /// right after DEL to remove the netns pin): no thread is left behind. Run in a child test
    /// process, where no other test starts threads. A joined thread can still be counted by
    /// the kernel for a moment after the join returns (seen in a test run: 3 threads instead
    /// of 2 right after a call), which `peapod_sys::fork` waits out: hence `settled`, not an
    /// exact count at once.
    #[test]
    fn exec_leaves_no_thread_behind() {
        const CHILD: &str = "PEAPOD_CNI_EXEC_THREADS_CHILD";
        if std::env::var_os(CHILD).is_none() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "exec::tests::exec_leaves_no_thread_behind",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "ok", "cat >/dev/null; echo '{}'");
        let before = peapod_sys::thread_count().unwrap();
        let settled = || {
            let deadline = Instant::now() + Duration::from_secs(1);
            while peapod_sys::thread_count().unwrap() != before && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            peapod_sys::thread_count().unwrap()
        };
        for i in 0..50 {
            let out = ProcessExec.exec(&p, &[], b"{}", Duration::from_secs(10));
            assert_eq!(out.unwrap(), b"{}\n");
            assert_eq!(settled(), before, "after call {i}");
        }
    }

    #[test]
    fn exec_kills_a_plugin_past_its_timeout_with_its_children() {
        // Defence: the timeout kills the plugin's whole process group. Checked by killing only
        // the plugin's pid instead: the grandchild then outlives the deadline below.
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        let p = script(
            d.path(),
            "hang",
            &format!("sleep 60 & echo $! > {}; sleep 60", pidfile.display()),
        );
        let start = Instant::now();
        let r = ProcessExec.exec(&p, &[], b"", Duration::from_secs(1));
        assert!(matches!(r, Err(ExecFailure::Timeout)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let child: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !exited(child) {
            assert!(
                Instant::now() < deadline,
                "the plugin's child {child} survived the timeout"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn exec_does_not_hang_on_a_plugin_that_ignores_stdin() {
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "nostdin", "echo '{}'");
        // Far more than a pipe buffer.
        let big = vec![b' '; 4 << 20];
        let out = ProcessExec
            .exec(&p, &[], &big, Duration::from_secs(10))
            .unwrap();
        assert_eq!(out, b"{}\n");
    }

    #[test]
    fn failures_become_errors_naming_the_plugin() {
        let path = Path::new("/usr/lib/cni/bridge");
        let t = Duration::from_secs(1);
        let failed = |stdout: &str, stderr: &str| ExecFailure::Failed {
            status: "exit status 1".into(),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        };
        let e = PluginError::from_failure(
            path,
            CniCommand::Add,
            failed(
                r#"{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"retry"}"#,
                "",
            ),
            t,
        );
        assert_eq!(
            e.to_string(),
            "cni plugin `/usr/lib/cni/bridge` (ADD) failed: code 11 (try again later): busy: retry"
        );
        assert_eq!(e.error_object().unwrap().code, 11);
        let e = PluginError::from_failure(path, CniCommand::Del, failed("", "panic: x\n"), t);
        assert_eq!(
            e.to_string(),
            "cni plugin `/usr/lib/cni/bridge` (DEL) failed with exit status 1: stderr: panic: x"
        );
        let e = PluginError::from_failure(path, CniCommand::Del, failed("garbage", ""), t);
        assert!(
            e.to_string()
                .ends_with(r#"unreadable error object "garbage""#),
            "{e}"
        );
        let e = PluginError::from_failure(path, CniCommand::Check, failed("", ""), t);
        assert!(
            e.to_string()
                .ends_with("failed with exit status 1: no error message"),
            "{e}"
        );
        let e = PluginError::from_failure(path, CniCommand::Add, ExecFailure::Timeout, t);
        assert_eq!(
            e.to_string(),
            "cni plugin `/usr/lib/cni/bridge` (ADD) did not finish within 1s and was killed"
        );
        let e = PluginError::from_failure(
            path,
            CniCommand::Add,
            failed(r#"{"code":104,"msg":"custom"}"#, ""),
            t,
        );
        assert!(e.to_string().ends_with("failed: code 104: custom"), "{e}");
    }
}
