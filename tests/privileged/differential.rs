//! The same scenarios through runc and peapod: what the container sees and the exit codes
//! must agree. Skipped (with the reason) where runc is not installed or cannot run (runc
//! 1.1 works on the hybrid host; in the VM the comparison still runs where runc works).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::*;

fn runc() -> Option<&'static str> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn runc_and_peapod_agree() {
    if !root_ok()
        || !can_run(
            "needs runc installed (apt-get install runc)",
            runc().is_some(),
        )
    {
        return;
    }
    let script = "hostname; id; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; \
        awk '{print $2, $3}' /proc/self/mounts | grep -v cgroup | sort; ls /dev | sort | tr '\\n' ' '; echo; \
        cat /proc/self/oom_score_adj; exit 5";
    let b = Bundle::new(&["sh", "-c", script], json!({"hostname": "diff"}));
    let (code, ours, err) = b.run(&unique("diff"));
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(runc().unwrap());
    cmd.args([
        "--root",
        state.path().to_str().unwrap(),
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique("diffr"),
    ]);
    let o = captured(cmd);
    let theirs = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status.code() != Some(5)
        && !can_run(
            &format!(
                "runc itself fails here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            false,
        )
    {
        return;
    }
    assert_eq!(code, 5, "{err}");
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(ours, theirs, "container view differs from runc's");
}
