//! The rootfs details of issue 13 §1 against runc 1.5.1: the mode of a tmpfs mounted without
//! `mode=` (runc keeps the mode of an existing directory, the kernel's 1777 on a new one;
//! before the change every tmpfs was 1777: /mnt showed 1777 where runc keeps 755).

use serde_json::json;

use crate::common::*;
use crate::mounts_propagation::{have_runc, runc_run};

#[test]
fn tmpfs_default_mode_matches_runc() {
    if !have_runc() {
        return;
    }
    let b = Bundle::new(
        &["sh", "-c", "stat -c '%n %a' /tmp /mnt /mnt/deep/new"],
        json!({}),
    );
    let mut cfg = b.config();
    for d in ["/tmp", "/mnt", "/mnt/deep/new"] {
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"],
        }));
    }
    std::fs::write(
        b.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let (code, ours, err) = b.run(&unique("tmode"));
    let o = runc_run(&b, &unique("tmoder"));
    let theirs = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code, 0, "{err}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ours, theirs, "tmpfs modes: peapod (left), runc (right)");
    assert!(ours.contains("/mnt/deep/new 1777"), "{ours}");
}
