//! peapod as a RuntimeClass handler under containerd's CRI plugin (issue 14), beside runc.
//!
//! `rootfs-tools/cri-test` starts a private containerd 1.6 with the handlers `runc` and
//! `peapod` (containerd-shim-runc-v2 with `BinaryName`), drives each through crictl (runp,
//! create, start, exec -s, exec -it, logs, stats, update, stop, rm, stopp, rmp, a pod sharing
//! localhost, an exit code, an OOM kill, mount propagation, security contexts, a systemd-form
//! cgroup parent), greps containerd's log for retry loops and checks that nothing is left
//! behind. It exits non-zero when runc fails a step, when peapod fails a step runc passes that
//! is not in its `KNOWN_PEAPOD_FAILURES` list, when a listed step passes (the list is the
//! to-do of issue 14 and must shrink with each fix), or when anything is left over.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn crictl_walkthrough_runc_and_peapod() {
    if !root_ok() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crictl = repo.join("../shared/tools/crictl-1.26.1.xz");
    let tools = ["containerd", "ctr", "jq", "script", "xz", "ip"];
    let have = |t: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !can_run(
        "containerd, ctr, jq, script, xz, ip, the CNI plugins in /usr/lib/cni and \
         ../shared/tools/crictl-1.26.1.xz (apt-get install containerd containernetworking-plugins)",
        tools.iter().all(|t| have(t))
            && Path::new("/usr/lib/cni/bridge").exists()
            && (crictl.exists() || Path::new("/work/shared/tools/crictl-1.26.1.xz").exists()),
    ) {
        return;
    }
    // The shims' sockets live in /run/containerd/s whatever the daemon's state dir is; the
    // clients tests remove that directory when they made it, so hold it while we run.
    let _run_containerd = crate::clients::HostPath::hold("/run/containerd");
    let peapod = bin();
    let pause = peapod.with_file_name("peapod-pause");
    // The walk-through takes minutes (about 8 in the VM): its progress lines go straight to
    // the test's stderr as they come (not through libtest's capture), and are kept for the
    // checks below.
    let mut child = Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" 2>&1"])
        .arg(repo.join("rootfs-tools/cri-test"))
        .args(["--handlers", "runc,peapod", "--peapod"])
        .arg(&peapod)
        .arg("--pause")
        .arg(&pause)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run rootfs-tools/cri-test");
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "cri-test: {line}");
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "cri-test failed ({status}):\n{stdout}");
    // The table covers both handlers and the reference passed the whole walk-through.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("step "))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        table
            .first()
            .is_some_and(|h| h.contains("runc") && h.contains("peapod")),
        "no results table for both handlers:\n{stdout}"
    );
    for step in ["runp", "exec-tty", "oom-killed", "teardown", "no-leftovers"] {
        let row = table
            .iter()
            .find(|l| l.split_whitespace().next() == Some(step))
            .unwrap_or_else(|| panic!("no row for step {step}:\n{stdout}"));
        assert_eq!(
            row.split_whitespace().nth(1),
            Some("pass"),
            "runc did not pass {step}:\n{stdout}"
        );
    }
}
