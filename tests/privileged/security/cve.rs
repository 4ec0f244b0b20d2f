//! Defences against the CVEs the README claims (exe overwrite, leaked fds, /dev/null and
//! /dev/console symlinks, inheritable caps, mount targets through symlinks).
//!
//! Each test's comment says how it was seen to fail with its defence removed: the named code
//! was changed locally (never committed), the binary rebuilt, the test run and seen to fail,
//! then the change reverted.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::oci::peapod_within;
use crate::common::{Bundle, captured, root_ok, rootfs, unique};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The spec's mounts with the `/dev` tmpfs replaced by a bind mount of `dev` (a host directory
/// the test fills, standing for an image's own /dev).
fn mounts_with_dev_from(b: &Bundle, dev: &Path) -> serde_json::Value {
    let mut mounts = b.config()["mounts"].clone();
    for m in mounts.as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            *m =
                json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]});
        }
    }
    mounts
}

/// CVE-2019-5736: a container process with CAP_SYS_PTRACE watches for the runtime's process
/// that `exec` puts in its pid namespace, keeps its `/proc/<pid>/exe` open, and once no
/// peapod runs any more reopens it for writing through `/proc/self/fd/3` (the attack's
/// second step; `4>>` only opens, no byte is written). peapod runs from a detached read-only
/// view of its binary, so the reopen fails with EROFS. Checked with `ensure_sealed_self`
/// returning `Ok(())` at its top: the watcher opened the binary for writing (`OPENED`), the
/// test failed. The test runs its own copy of the binary, which only its own commands execute.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_opened_for_write() {
    if !root_ok() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // `command exec`: a failed redirection of the special built-in `exec` (the process left
    // before the open) would otherwise end the shell. A caught process's exe can stay
    // text-busy through fd 3 after the process is gone (seen on 6.18 in about one run of five):
    // after 2 s of that the watcher lets it go, removes `found` so that the test execs again,
    // and catches another (up to 10 rounds).
    let script = r#"
        round=0
        while :; do
          for d in /proc/[0-9]*; do
            t=$(readlink $d/exe 2>/dev/null) || continue
            case "$t" in *peapod*) ;; *) continue;; esac
            command exec 3< $d/exe 2>/dev/null || continue
            echo "$t" > /out/found
            i=0
            while [ $i -lt 40 ]; do
              msg=$( (exec 4>>/proc/self/fd/3) 2>&1 ) && r=OPENED || r="REFUSED $msg"
              case "$msg" in *busy*) i=$((i+1)); sleep 0.05; continue;; esac
              break
            done
            round=$((round+1))
            if [ $i -ge 40 ]; then
              exec 3<&-
              [ $round -lt 10 ] && { rm /out/found; continue; }
              r="BUSY $msg"
            fi
            echo "$r" > /out/result.tmp && mv /out/result.tmp /out/result
            exit 0
          done
        done"#;
    let caps = json!(["CAP_SYS_PTRACE", "CAP_CHOWN", "CAP_KILL"]);
    let b = Bundle::new(
        &["sh", "-c", script],
        json!({"process": {"capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}}),
    );
    let mut cfg = b.config();
    cfg["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind"]}),
    );
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    // This test's own copy of the binary: every process that executes an inode makes a write
    // open of it fail with ETXTBSY before the read-only check is reached, and the other tests'
    // runtimes and supervisors execute the shared binary all the time.
    let own = tempfile::Builder::new()
        .prefix("pp-cve-bin")
        .tempdir()
        .unwrap();
    let exe = own.path().join("peapod-runc");
    std::fs::copy(crate::common::oci_bin(), &exe).unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(&exe);
        c.arg("--root").arg(&b.state_root).args(args);
        captured(c)
    };
    let id = unique("cve-5736");
    let o = run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    let o = run(&["start", &id]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    // Exec while the watcher has nothing caught; let every peapod end while it tries.
    let result = out.path().join("result");
    let t = Instant::now();
    while !result.exists() && t.elapsed() < Duration::from_secs(90) {
        if out.path().join("found").exists() {
            std::thread::sleep(Duration::from_millis(50));
        } else {
            let _ = run(&["exec", &id, "true"]);
        }
    }
    let text = std::fs::read_to_string(&result).unwrap_or_else(|_| {
        let found = out.path().join("found").exists();
        panic!("no result from the watcher (it caught a peapod process: {found})")
    });
    assert!(
        text.starts_with("REFUSED") && text.contains("Read-only"),
        "{text}"
    );
    let o = peapod_within(&b.state_root, &["delete", "-f", &id], 30);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// CVE-2024-21626: `process.cwd` set to `/proc/self/fd/N` where N is a directory fd of the
/// host that leaked into the runtime (here fd 5, inherited from the caller). The init sees
/// that `getcwd` lies outside its root and refuses to run. Checked with the `verify_cwd()`
/// call in `process/init.rs` removed: `ls` listed the host directory and the test failed.
#[test]
fn cve_2024_21626_leaked_fd_cwd_is_refused() {
    if !root_ok() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let marker = format!("HOST-ONLY-{}", std::process::id());
    std::fs::write(host.path().join(&marker), "").unwrap();
    let b = Bundle::new(
        &["ls", "-a"],
        json!({"process": {"cwd": "/proc/self/fd/5"}}),
    );
    let dir = std::fs::File::open(host.path()).unwrap();
    let mut cmd = b.cmd(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique("cve-21626"),
    ]);
    leak_as_fd5(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&dir));
    let o = captured(cmd);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains(&marker),
        "the container listed the host: {out}"
    );
    // Since the init closes every fd it does not need (parity_proc::created_init_holds_no_
    // runtime_or_caller_fd), fd 5 is gone before the chdir, which then fails; `verify_cwd`
    // stays as the second line of defence.
    assert!(
        !o.status.success()
            && (stderr(&o).contains("outside the container root")
                || stderr(&o).contains("chdir to cwd `/proc/self/fd/5`")),
        "{}",
        stderr(&o)
    );
}

fn leak_as_fd5(cmd: &mut Command, fd: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2 is async-signal-safe, as pre_exec requires; fd 5 of the child is not owned
    // by anything in it.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// CVE-2025-31133: the container's /dev (an image's own, bind-mounted) has `null` as a
/// symlink to a file the container controls; masking must not bind that file over the masked
/// paths. peapod opens /dev/null without following links and checks it is the 1:3 character
/// device. Checked with `open_verified_null` reduced to a plain `open("/dev/null", O_PATH)`:
/// /proc/cpuinfo then read SECRET and the test failed.
#[test]
fn cve_2025_31133_dev_null_symlink_never_masks() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &["cat", "/proc/cpuinfo"],
        json!({"linux": {"maskedPaths": ["/proc/cpuinfo"]}}),
    );
    let dev = b.path().join("image-dev");
    std::fs::create_dir(&dev).unwrap();
    std::fs::write(dev.join("secret"), "SECRET\n").unwrap();
    std::os::unix::fs::symlink("/dev/secret", dev.join("null")).unwrap();
    let mut cfg = b.config();
    cfg["mounts"] = mounts_with_dev_from(&b, &dev);
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    let (code, out, err) = b.run(&unique("cve-31133"));
    assert!(!out.contains("SECRET"), "masked with the symlink's target");
    assert!(
        code != 0 && err.contains("/dev/null"),
        "want a refusal naming /dev/null, got {code}: {err}"
    );
}

/// CVE-2025-52565: /dev/console planted as a symlink (to `/dev/target`, a plain file) must
/// not carry the console bind mount elsewhere: peapod replaces the symlink with a file and
/// mounts the verified pty slave by fd. Checked with the unlink of the symlink removed (then in
/// `setup_console`, now `rootfs::bind_console_with`): the console was mounted over /dev/target
/// ("LINK" and a character device were printed) and the test failed.
#[test]
fn cve_2025_52565_dev_console_symlink_is_replaced() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "[ -L /dev/console ] && echo LINK; stat -c 'target=%F' /dev/target; stat -c 'console=%F' /dev/console; echo done",
        ],
        json!({"process": {"terminal": true}}),
    );
    let dev = b.path().join("image-dev");
    std::fs::create_dir(&dev).unwrap();
    std::fs::write(dev.join("target"), "").unwrap();
    nix::sys::stat::mknod(
        &dev.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/target", dev.join("console")).unwrap();
    let mut cfg = b.config();
    cfg["mounts"] = mounts_with_dev_from(&b, &dev);
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let recv = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        peapod_oci::process::channel::recv_fd(&conn)
            .unwrap()
            .expect("a pty master")
    });
    let id = unique("cve-52565");
    b.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = recv.join().unwrap();
    b.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    while !text.contains("done") && t.elapsed() < Duration::from_secs(20) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("done"), "{text:?}");
    assert!(!text.contains("LINK"), "{text:?}");
    assert!(text.contains("target=regular empty file"), "{text:?}");
    assert!(text.contains("console=character special file"), "{text:?}");
}

/// CVE-2022-29162: `exec --cap` must add the capability to the bounding, effective and
/// permitted sets only, never to the inheritable set (which would let a non-root program gain
/// it through file capabilities). Checked by also inserting the capability into the
/// inheritable set in `commands/exec.rs`: CapInh was 0x1000 and the test failed.
#[test]
fn cve_2022_29162_exec_cap_leaves_inheritable_empty() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["sleep", "300"], json!({}));
    let id = unique("cve-29162");
    b.create(&id);
    b.ok(&["start", &id]);
    let status = b.ok(&[
        "exec",
        "--cap",
        "CAP_NET_ADMIN",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    };
    assert_ne!(field("CapEff:") & (1 << 12), 0, "--cap did not apply");
    assert_eq!(field("CapInh:"), 0, "{status}");
    assert_eq!(field("CapAmb:"), 0, "{status}");
    let o = peapod_within(&b.state_root, &["delete", "-f", &id], 30);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Mount destinations through symlinks in the rootfs: `/escape` (absolute) and `/escape-rel`
/// (`../../..`) point at a host directory; the spec mounts tmpfs at `/escape/sub` and
/// `/escape-rel/sub`. Resolved inside the rootfs (`openat2(RESOLVE_IN_ROOT)`), both land in the
/// rootfs's own copy of that path and the host directory stays empty. Checked with
/// `safe::mkdir_all` replaced by a `create_dir_all` of `rootfs.join(dest)` (host resolution):
/// `sub` appeared in the host directory and the test failed.
#[test]
fn mount_destinations_through_symlinks_stay_in_the_rootfs() {
    if !root_ok() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let b = Bundle::new(&["true"], json!({}));
    let own = b.path().join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&own)
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(host.path(), own.join("escape")).unwrap();
    let up = "../".repeat(32);
    std::os::unix::fs::symlink(
        format!(
            "{up}{}",
            host.path().display().to_string().trim_start_matches('/')
        ),
        own.join("escape-rel"),
    )
    .unwrap();
    let mut cfg = b.config();
    cfg["root"]["path"] = own.to_str().unwrap().into();
    let mounts = cfg["mounts"].as_array_mut().unwrap();
    for dest in ["/escape/sub", "/escape-rel/sub"] {
        mounts.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
    }
    std::fs::write(b.path().join("config.json"), cfg.to_string()).unwrap();
    let (code, _, err) = b.run(&unique("mnt-symlink"));
    assert_eq!(code, 0, "{err}");
    let leaked: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leaked.is_empty(), "created on the host: {leaked:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(host.path().to_str().unwrap()));
}

/// A runtime started with a standard fd closed (a caller's `>&-`) must not let a file it opens
/// take that number: `state` would print the container's state into its own `--log` file.
/// `peapod-runc` starts without Rust's runtime start-up, so this is `peapod_sys::bare_start`'s job
/// (fds 0-2 opened on /dev/null when closed). Seen to fail with `bare_start`'s fd loop removed:
/// the log held the state JSON.
#[test]
fn closed_standard_fds_are_not_reused_for_runtime_files() {
    if !root_ok() {
        return;
    }
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let id = unique("closedfd");
    b.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let log = b.path().join("runtime.log");
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"exec "$@" >&-"#)
        .arg("sh")
        .arg(crate::common::oci_bin())
        .arg("--root")
        .arg(&b.state_root)
        .arg("--log")
        .arg(&log)
        .args(["state", &id])
        .output()
        .unwrap();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    b.ok(&["delete", "--force", &id]);
    assert!(
        out.status.success(),
        "state with stdout closed: {}",
        stderr(&out)
    );
    assert!(
        !logged.contains("ociVersion"),
        "the state went into the log: {logged}"
    );
}
