//! Real clients drive peapod exactly as they drive runc: podman (through conmon, `--runtime`)
//! and containerd's runc shim (`ctr run --runc-binary`, with a private containerd daemon).
//!
//! Each client is isolated from the machine's own configuration and state: its root, run
//! root, config files, socket and cgroup parent live in a temp dir or carry the test's pid,
//! and the test checks at the end that nothing is left behind (mounts, processes, cgroups,
//! runtime state). peapod is called through a wrapper script named `peapod` that appends
//! each argv to a log and then `exec`s the real binary, so a failure shows what the client
//! sent. Packages: `podman conmon catatonit` and `containerd` (Debian 12).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// Longest a single client command may take before the test calls it hung.
const CLIENT_TIMEOUT: &str = "180";

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn have(names: &[&str]) -> bool {
    names.iter().all(|n| which(n).is_some())
}

/// `timeout -k 10 180 PROG`: a hung client fails the test (exit 124) instead of hanging it.
fn client(prog: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "10", CLIENT_TIMEOUT, prog]);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// The wrapper named `peapod` the clients are given, and the log of every argv it got.
struct Runtime {
    path: PathBuf,
    log: PathBuf,
}

impl Runtime {
    fn new(dir: &Path) -> Runtime {
        Runtime::wrapping(dir, &oci_bin())
    }

    /// A logging wrapper around `target` (peapod, or runc for a differential run).
    fn wrapping(dir: &Path, target: &Path) -> Runtime {
        let bindir = dir.join("bin");
        fs::create_dir_all(&bindir).unwrap();
        let path = bindir.join("peapod");
        let log = dir.join("peapod-argv.log");
        write_executable(
            &path,
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{}'\nexec '{}' \"$@\"\n",
                log.display(),
                target.display()
            ),
        );
        Runtime { path, log }
    }

    /// Every argv the client sent, one line each.
    fn calls(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The container ids the client created (the last word of each `create`).
    fn created_ids(&self) -> Vec<String> {
        self.calls()
            .lines()
            .filter(|l| l.split(' ').any(|w| w == "create"))
            .filter_map(|l| l.split(' ').next_back().map(str::to_string))
            .collect()
    }
}

/// Processes (other than this one) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = text(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!("pid {name}: {}", cmd.trim()));
        }
    }
    found
}

fn wait_no_processes(needle: &str, within: Duration) -> Vec<String> {
    let t = Instant::now();
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || t.elapsed() > within {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mounts_mentioning(needles: &[&str]) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().any(|n| !n.is_empty() && l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Every cgroup hierarchy root: `/sys/fs/cgroup` itself (v2) and each v1 controller mount.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = PathBuf::from("/sys/fs/cgroup");
    let mut roots = vec![base.clone()];
    for e in fs::read_dir(&base).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() && p.join("cgroup.procs").exists() {
            roots.push(p);
        }
    }
    roots
}

/// `rel` (relative to each hierarchy root) where it still exists.
fn cgroups_at(rel: &str) -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|r| r.join(rel.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

/// Directories below `root` whose name contains one of `ids`.
fn dirs_naming(root: &Path, ids: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if ids.iter().any(|id| name.contains(id.as_str())) {
                found.push(e.path());
            }
            todo.push(e.path());
        }
    }
    found
}

/// Remove a cgroup subtree that this test (through its client) created, deepest first.
/// Retries for a while: the last process of a cgroup may still be exiting.
fn remove_cgroup_tree(dir: &Path) -> Result<(), String> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for e in fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        let t = Instant::now();
        while let Err(e) = fs::remove_dir(d) {
            if e.kind() == std::io::ErrorKind::NotFound {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("rmdir {}: {e}", d.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// A directory a client creates outside its temp dir (a path it hardcodes), held while a
/// test uses that client. Whether it existed is recorded at the first hold in this process;
/// the last release removes it when no test of this process found it there. Files in it are
/// the client's bookkeeping (podman's blob-info cache, containerd's socket dirs), not peapod
/// state.
pub(crate) struct HostPath {
    path: &'static str,
}

/// path -> (existed before the first hold, holders now)
static HOST_PATHS: Mutex<BTreeMap<&'static str, (bool, usize)>> = Mutex::new(BTreeMap::new());

impl HostPath {
    pub(crate) fn hold(path: &'static str) -> HostPath {
        let mut m = HOST_PATHS.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(path).or_insert((Path::new(path).exists(), 0)).1 += 1;
        HostPath { path }
    }
}

impl Drop for HostPath {
    fn drop(&mut self) {
        let mut m = HOST_PATHS.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.get_mut(self.path).unwrap();
        e.1 -= 1;
        if e.1 == 0 && !e.0 {
            let _ = fs::remove_dir_all(self.path);
        }
    }
}

// ------------------------------------------------------------------------------------------
// podman
// ------------------------------------------------------------------------------------------

/// podman with everything under a temp dir: `--root`, `--runroot`, `--tmpdir`, vfs storage,
/// `CONTAINERS_CONF` (nofile/nproc 20000 because of the machine's hard limit, cgroupfs,
/// file events and file locks), its own storage and registries config, a unique cgroup
/// parent, and no network.
struct Podman {
    dir: tempfile::TempDir,
    runtime: Runtime,
    cgroup_parent: String,
    host_paths: Vec<HostPath>,
    ctr_pids: Vec<i32>,
    cleaned: bool,
}

impl Podman {
    /// `tag` tells apart the tests of this process (they run in parallel).
    fn new(tag: &str) -> Podman {
        Podman::with_runtime(tag, &oci_bin())
    }

    fn with_runtime(tag: &str, target: &Path) -> Podman {
        // Paths created by podman itself that no option moves: the root blob-info cache
        // (containers/image hardcodes /var/lib/containers/cache for euid 0).
        let host_paths = vec![HostPath::hold("/var/lib/containers")];
        let dir = tempfile::Builder::new()
            .prefix("pp-podman")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["tmp", "imgtmp", "net"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let runtime = Runtime::wrapping(d, target);
        fs::write(
            d.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
tmp_dir = "{d}/tmp"
static_dir = "{d}/root/libpod"
volume_path = "{d}/root/volumes"
image_copy_tmp_dir = "{d}/imgtmp"
# conmon passes `--log-format=json --log FILE` to runtimes named here, as it does for runc.
runtime_supports_json = ["peapod"]

[network]
network_config_dir = "{d}/net"
"#,
                d = d.display()
            ),
        )
        .unwrap();
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n",
                d = d.display()
            ),
        )
        .unwrap();
        fs::write(d.join("registries.conf"), "").unwrap();
        Podman {
            runtime,
            cgroup_parent: format!("/pp-podman-{}-{tag}", std::process::id()),
            dir,
            host_paths,
            ctr_pids: Vec::new(),
            cleaned: false,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = client("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("TMPDIR", d.join("imgtmp"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(&self.runtime.path)
            .args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        captured(self.cmd(args))
    }

    /// Context for an assertion message: the command, its output and what peapod was sent.
    fn why(&self, args: &[&str], o: &Output) -> String {
        format!(
            "podman {args:?}: {}\n--- peapod calls:\n{}",
            show(o),
            self.runtime.calls()
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(o.status.success(), "{}", self.why(args, &o));
        text(&o.stdout)
    }

    /// `podman run` with the isolation flags.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "run",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        v.extend_from_slice(extra);
        v
    }

    fn import(&self) {
        let tar = self.dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the busybox rootfs");
        // `tar -C rootfs -c . | podman import - localhost/ppbb`, with the tar as a file.
        let mut c = self.cmd(&["import", "-", "localhost/ppbb"]);
        let out = tempfile::tempfile().unwrap();
        c.stdin(fs::File::open(&tar).unwrap())
            .stdout(out.try_clone().unwrap())
            .stderr(out.try_clone().unwrap());
        let st = c.status().unwrap();
        assert!(st.success(), "podman import failed: {st}");
        let images = self.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert!(images.contains("localhost/ppbb:latest"), "{images}");
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
            .trim()
            .to_string()
    }

    fn wait_status(&self, name: &str, want: &str) {
        let t = Instant::now();
        loop {
            let s = self.inspect(name, "{{.State.Status}}");
            if s == want {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{name} is {s}, never became {want}\n--- peapod calls:\n{}",
                self.runtime.calls()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Remove every container and image, then list what is left behind: mounts, processes,
    /// cgroups and runtime state of the containers peapod ran. Removes podman's own leftovers
    /// (its conmon cgroup and the cgroup parent, the blob-info cache) that are not peapod's.
    fn cleanup(&mut self) -> Vec<String> {
        if self.cleaned {
            return Vec::new();
        }
        self.cleaned = true;
        let mut problems = Vec::new();
        let rm = self.out(&["rm", "--all", "--force", "--time", "0"]);
        if !rm.status.success() {
            problems.push(format!("podman rm --all --force: {}", show(&rm)));
        }
        let _ = self.out(&["rmi", "--all", "--force"]);
        let d = self.dir.path().to_str().unwrap().to_string();
        let ids = self.runtime.created_ids();

        // conmon (its argv names the temp dir) and the containers' processes must be gone.
        problems.extend(wait_no_processes(&d, Duration::from_secs(15)));
        for pid in &self.ctr_pids {
            let p = PathBuf::from(format!("/proc/{pid}"));
            let t = Instant::now();
            while p.exists() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Ok(cmd) = fs::read(p.join("cmdline")) {
                problems.push(format!(
                    "container process {pid} still alive: {}",
                    text(&cmd).replace('\0', " ")
                ));
            }
        }
        let mut needles: Vec<&str> = ids.iter().map(String::as_str).collect();
        needles.push(&d);
        problems.extend(
            mounts_mentioning(&needles)
                .into_iter()
                .map(|m| format!("mount left: {m}")),
        );
        for id in &ids {
            // podman passes no --root: peapod keeps state in its default /run/peapod.
            let state = Path::new("/run/peapod").join(id);
            if state.exists() {
                problems.push(format!("runtime state left: {}", state.display()));
            }
            for cg in leftover_cgroups(id) {
                problems.push(format!("container cgroup left: {}", cg.display()));
            }
        }
        // The containers' cgroups: <parent>/libpod-<id>, or <parent>/<pod id>/libpod-<id>.
        for root in cgroups_at(&self.cgroup_parent) {
            for cg in dirs_naming(&root, &ids) {
                problems.push(format!("container cgroup left: {}", cg.display()));
            }
        }
        // podman's own: <parent>/conmon stays by design; remove the parent subtree.
        for cg in cgroups_at(&self.cgroup_parent) {
            if let Err(e) = remove_cgroup_tree(&cg) {
                problems.push(e);
            }
        }
        self.host_paths.clear();
        problems
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

fn podman_ok() -> bool {
    root_ok()
        && can_run(
            "needs podman and conmon (apt-get install podman conmon catatonit)",
            have(&["podman", "conmon", "tar", "timeout"]),
        )
}

#[test]
fn podman_run_exec_kill_rm() {
    if !podman_ok() {
        return;
    }
    let mut p = Podman::new("run");
    p.import();

    // Foreground run: output and exit code come back through conmon.
    let args = p.run_args(&[
        "--rm",
        "localhost/ppbb",
        "sh",
        "-c",
        "echo hello from peapod; exit 42",
    ]);
    let o = p.out(&args);
    assert_eq!(o.status.code(), Some(42), "{}", p.why(&args, &o));
    assert_eq!(
        text(&o.stdout),
        "hello from peapod\n",
        "{}",
        p.why(&args, &o)
    );

    // A terminal: create gets --console-socket, conmon receives the pty master.
    let args = p.run_args(&["--rm", "-t", "localhost/ppbb", "tty"]);
    let o = p.out(&args);
    assert!(o.status.success(), "{}", p.why(&args, &o));
    assert!(
        text(&o.stdout).starts_with("/dev/pts/"),
        "{}",
        p.why(&args, &o)
    );

    // Detached container, then exec, pause/unpause, kill and rm.
    let name = format!("pp-{}", std::process::id());
    let id = p.ok(&p.run_args(&["-d", "--name", &name, "localhost/ppbb", "sleep", "1000"]));
    let id = id.trim();
    assert_eq!(id.len(), 64, "podman run -d printed {id:?}");
    p.wait_status(&name, "running");
    let pid: i32 = p.inspect(&name, "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0);
    p.ctr_pids.push(pid);
    let host_cmd = text(&fs::read(format!("/proc/{pid}/cmdline")).unwrap());
    assert_eq!(
        host_cmd, "sleep\x001000\x00",
        "the container's pid 1 seen from the host"
    );

    let args = [
        "exec",
        &name,
        "sh",
        "-c",
        "echo in exec; cat /proc/1/cmdline; echo; exit 7",
    ];
    let o = p.out(&args);
    assert_eq!(o.status.code(), Some(7), "{}", p.why(&args, &o));
    assert_eq!(
        text(&o.stdout),
        "in exec\nsleep\x001000\x00\n",
        "{}",
        p.why(&args, &o)
    );

    let args = ["exec", "--user", "nobody", &name, "id", "-u"];
    let o = p.out(&args);
    assert_eq!(text(&o.stdout).trim(), "65534", "{}", p.why(&args, &o));

    let args = ["exec", "-t", &name, "tty"];
    let o = p.out(&args);
    assert!(
        text(&o.stdout).starts_with("/dev/pts/"),
        "{}",
        p.why(&args, &o)
    );

    p.ok(&["pause", &name]);
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "paused");
    p.ok(&["unpause", &name]);
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");

    p.ok(&["kill", &name]); // SIGKILL by default
    p.wait_status(&name, "exited");
    assert_eq!(p.inspect(&name, "{{.State.ExitCode}}"), "137");
    p.ok(&["rm", "--force", &name]);
    let left = p.ok(&["ps", "--all", "--quiet", "--no-trunc"]);
    assert!(!left.contains(id), "{name} still listed: {left}");

    // A named signal reaches the container's pid 1, which handles it.
    let trap = format!("{name}-term");
    p.ok(&p.run_args(&[
        "-d",
        "--name",
        &trap,
        "localhost/ppbb",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]));
    p.wait_status(&trap, "running");
    p.ok(&["kill", "--signal", "TERM", &trap]);
    p.wait_status(&trap, "exited");
    assert_eq!(p.inspect(&trap, "{{.State.ExitCode}}"), "3");
    p.ok(&["rm", &trap]);

    // rm --force of a running container: kill, then delete --force.
    let busy = format!("{name}-busy");
    p.ok(&p.run_args(&["-d", "--name", &busy, "localhost/ppbb", "sleep", "1000"]));
    p.wait_status(&busy, "running");
    p.ctr_pids
        .push(p.inspect(&busy, "{{.State.Pid}}").parse().unwrap());
    p.ok(&["rm", "--force", "--time", "0", &busy]);

    // What conmon and podman sent: the verbs of oci-contract.md §1.3.
    let calls = p.runtime.calls();
    for verb in [
        "--log-format=json --log ",
        "create --bundle ",
        "--console-socket ",
        "start ",
        "exec --pid-file ",
        "--tty",
        "pause ",
        "resume ",
        "kill ",
        "delete --force ",
    ] {
        assert!(calls.contains(verb), "podman never sent `{verb}`:\n{calls}");
    }

    let problems = p.cleanup();
    assert!(
        problems.is_empty(),
        "left behind after podman cleanup:\n{}\n--- peapod calls:\n{calls}",
        problems.join("\n")
    );
}

/// A pod: podman's infra container (its pause image built locally from catatonit, run by
/// peapod too) holds the namespaces, and each container joins them by path.
#[test]
fn podman_pod_shares_namespaces() {
    if !podman_ok()
        || !can_run(
            "needs catatonit for podman's pause image (apt-get install catatonit)",
            have(&["catatonit"]),
        )
    {
        return;
    }
    if cgroup_v2() {
        // In the cgroup v2 VM podman 4.3's pods (cgroupfs manager) fail with runc 1.1.5 too:
        // the device cgroup denies /dev/null to the infra container. Assert that peapod
        // behaves exactly as runc there; should runc ever succeed, peapod must as well.
        let outcome = |target: &Path| {
            let mut p = Podman::with_runtime("podv2", target);
            p.import();
            let pod = format!("pp-{}-v2pod", std::process::id());
            let cg = p.cgroup_parent.clone();
            let o = p.out(&[
                "pod",
                "create",
                "--name",
                &pod,
                "--network",
                "none",
                "--cgroup-parent",
                &cg,
            ]);
            let o = if o.status.success() {
                p.out(&["run", "--rm", "--pod", &pod, "localhost/ppbb", "true"])
            } else {
                o
            };
            let _ = p.out(&["pod", "rm", "--force", "--time", "0", &pod]);
            let problems = p.cleanup();
            assert!(problems.is_empty(), "left behind: {problems:?}");
            (o.status.success(), text(&o.stderr))
        };
        let runc = Path::new("/usr/sbin/runc");
        if !can_run(
            "needs runc for the differential run in the VM",
            runc.exists(),
        ) {
            return;
        }
        let (runc_ok, runc_err) = outcome(runc);
        let (ours_ok, ours_err) = outcome(&oci_bin());
        assert_eq!(ours_ok, runc_ok, "runc: {runc_err}\npeapod: {ours_err}");
        if !runc_ok {
            assert!(
                runc_err.contains("/dev/null") && ours_err.contains("/dev/null"),
                "runc: {runc_err}\npeapod: {ours_err}"
            );
        }
        return;
    }
    let mut p = Podman::new("pod");
    p.import();
    let pod = format!("pp-{}-pod", std::process::id());
    let cgroup_parent = p.cgroup_parent.clone();
    p.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--hostname",
        "pp-pod",
        "--network",
        "none",
        "--cgroup-parent",
        &cgroup_parent,
    ]);
    let a = format!("{pod}-a");
    p.ok(&[
        "run",
        "-d",
        "--pod",
        &pod,
        "--name",
        &a,
        "localhost/ppbb",
        "sleep",
        "1000",
    ]);
    p.wait_status(&a, "running");
    let a_pid: i32 = p.inspect(&a, "{{.State.Pid}}").parse().unwrap();
    p.ctr_pids.push(a_pid);
    let infra = p
        .ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod])
        .trim()
        .to_string();
    let infra_pid: i32 = p.inspect(&infra, "{{.State.Pid}}").parse().unwrap();
    p.ctr_pids.push(infra_pid);
    for ns in ["net", "ipc", "uts"] {
        let link = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(
            link(a_pid),
            link(infra_pid),
            "{ns} namespace of {a} vs the infra container"
        );
        assert_ne!(
            link(a_pid),
            fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
            "{a} must not be in the host's {ns} namespace"
        );
    }
    let script = "readlink /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts; hostname";
    let in_a = p.ok(&["exec", &a, "sh", "-c", script]);
    let args = [
        "run",
        "--rm",
        "--pod",
        &pod,
        "localhost/ppbb",
        "sh",
        "-c",
        script,
    ];
    let o = p.out(&args);
    assert!(o.status.success(), "{}", p.why(&args, &o));
    assert_eq!(
        text(&o.stdout),
        in_a,
        "a second container of the pod sees other namespaces"
    );
    assert!(in_a.ends_with("pp-pod\n"), "hostname of the pod: {in_a}");
    p.ok(&["pod", "rm", "--force", "--time", "0", &pod]);
    let problems = p.cleanup();
    assert!(
        problems.is_empty(),
        "left behind:\n{}\n--- peapod calls:\n{}",
        problems.join("\n"),
        p.runtime.calls()
    );
}

/// What podman's own config.json asks for, for common `podman run` options, works as with
/// runc (every expectation here is runc 1.1's behaviour; run this test with
/// `PEAPOD_BIN=/usr/sbin/runc` to check them). All cases run; the failures are listed.
#[test]
fn podman_run_options_work_as_with_runc() {
    if !podman_ok() {
        return;
    }
    let mut p = Podman::new("opts");
    p.import();
    let vol = p.dir.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("f"), "data\n").unwrap();
    let vol_ro = format!("{}:/data:ro", vol.display());
    let cgroup_limits = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
        cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    // (options and command, expected stdout with whitespace runs squeezed to one space)
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--hostname", "pphost", "hostname"], "pphost"),
        (
            vec!["-e", "FOO=bar", "-w", "/tmp", "sh", "-c", "echo $FOO; pwd"],
            "bar /tmp",
        ),
        (
            vec!["--user", "1000:1000", "sh", "-c", "id -u; id -g"],
            "1000 1000",
        ),
        (
            vec![
                "--cap-add",
                "SYS_ADMIN",
                "sh",
                "-c",
                "hostname capped && hostname",
            ],
            "capped",
        ),
        (
            vec!["sh", "-c", "grep Seccomp: /proc/self/status"],
            "Seccomp: 2",
        ),
        (
            vec![
                "--security-opt",
                "seccomp=unconfined",
                "sh",
                "-c",
                "grep Seccomp: /proc/self/status",
            ],
            "Seccomp: 0",
        ),
        (
            vec![
                "--privileged",
                "sh",
                "-c",
                "mount -t tmpfs none /tmp && echo mounted",
            ],
            "mounted",
        ),
        (
            vec![
                "-v",
                &vol_ro,
                "sh",
                "-c",
                "cat /data/f; touch /data/g 2>/dev/null || echo ro",
            ],
            "data ro",
        ),
        (
            vec![
                "--read-only",
                "--read-only-tmpfs=false",
                "sh",
                "-c",
                "touch /x 2>/dev/null || echo ro",
            ],
            "ro",
        ),
        // --read-only gives /tmp, /var/tmp and /run tmpfs mounts with `tmpcopyup`.
        (
            vec![
                "--read-only",
                "sh",
                "-c",
                "touch /x 2>/dev/null || echo ro; touch /tmp/x && echo tmp-rw",
            ],
            "ro tmp-rw",
        ),
        // --tmpfs mounts carry `tmpcopyup`: the image's files appear in the tmpfs.
        (
            vec![
                "--tmpfs",
                "/etc",
                "sh",
                "-c",
                "grep -c root /etc/passwd; grep ' /etc ' /proc/mounts | cut -d' ' -f3",
            ],
            "1 tmpfs",
        ),
        // podman's spec lists /proc/sys in readonlyPaths: sysctls are written before that.
        (
            vec![
                "--sysctl",
                "net.ipv4.ip_forward=1",
                "cat",
                "/proc/sys/net/ipv4/ip_forward",
            ],
            "1",
        ),
        (
            vec![
                "--shm-size",
                "1m",
                "sh",
                "-c",
                "df -k /dev/shm | tail -n1 | awk '{print $2}'",
            ],
            "1024",
        ),
        (
            vec![
                "--memory",
                "20m",
                "--pids-limit",
                "50",
                "sh",
                "-c",
                cgroup_limits,
            ],
            "20971520 50",
        ),
        (
            vec![
                "--uidmap",
                "0:100000:65536",
                "--gidmap",
                "0:100000:65536",
                "sh",
                "-c",
                "cat /proc/self/uid_map; id -u",
            ],
            "0 100000 65536 0",
        ),
        (
            vec!["--init", "cat", "/proc/1/cmdline"],
            "/run/podman-init\0--\0cat\0/proc/1/cmdline\0",
        ),
    ];
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut failures = Vec::new();
    for (opts, want) in &cases {
        // The image goes between the options and the command.
        let cmd_at = command_start(opts);
        let mut args = p.run_args(&["--rm"]);
        args.extend_from_slice(&opts[..cmd_at]);
        args.push("localhost/ppbb");
        args.extend_from_slice(&opts[cmd_at..]);
        let o = p.out(&args);
        let got = text(&o.stdout);
        let ok = o.status.success()
            && if want.contains('\0') {
                got == *want
            } else {
                squeeze(&got) == *want
            };
        if !ok {
            failures.push(format!(
                "podman {}: want {want:?}, got {} {got:?} {}",
                opts.join(" "),
                o.status,
                text(&o.stderr).trim()
            ));
        }
    }
    let problems = p.cleanup();
    assert!(
        failures.is_empty() && problems.is_empty(),
        "{} of {} cases differ from runc:\n{}\nleft behind:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        problems.join("\n")
    );
}

/// Index of the command in `podman run` options: the first word that is neither an
/// option nor an option's value (every option used above takes a value unless it is in
/// the list of flags).
fn command_start(opts: &[&str]) -> usize {
    const FLAGS: &[&str] = &["--privileged", "--read-only", "--init", "--rm"];
    let mut i = 0;
    while i < opts.len() && opts[i].starts_with('-') {
        i += if FLAGS.contains(&opts[i]) || opts[i].contains('=') {
            1
        } else {
            2
        };
    }
    i
}

/// podman turns the runtime's error text into the shell's exit codes, as with runc:
/// 127 when the command does not exist, 126 when it cannot be executed.
#[test]
fn podman_maps_runtime_exec_errors() {
    if !podman_ok() {
        return;
    }
    let mut p = Podman::new("err");
    p.import();
    for (cmd, want) in [
        ("nosuchcmd", 127),
        ("/nonexistent", 127),
        ("/etc/passwd", 126),
        ("/tmp", 126),
    ] {
        let args = p.run_args(&["--rm", "localhost/ppbb", cmd]);
        let o = p.out(&args);
        assert_eq!(o.status.code(), Some(want), "{}", p.why(&args, &o));
    }
    let name = format!("pp-{}-err", std::process::id());
    p.ok(&p.run_args(&["-d", "--name", &name, "localhost/ppbb", "sleep", "1000"]));
    p.wait_status(&name, "running");
    p.ctr_pids
        .push(p.inspect(&name, "{{.State.Pid}}").parse().unwrap());
    for (cmd, want) in [("nosuchcmd", 127), ("/etc/passwd", 126)] {
        let args = ["exec", &name, cmd];
        let o = p.out(&args);
        assert_eq!(o.status.code(), Some(want), "{}", p.why(&args, &o));
    }
    p.ok(&["rm", "--force", "--time", "0", &name]);
    let problems = p.cleanup();
    assert!(
        problems.is_empty(),
        "left behind:\n{}\n--- peapod calls:\n{}",
        problems.join("\n"),
        p.runtime.calls()
    );
}

// ------------------------------------------------------------------------------------------
// containerd
// ------------------------------------------------------------------------------------------

fn sha256_file(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(o.status.success(), "sha256sum {}", path.display());
    text(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Move `file` into the layout's blob store; returns (digest, size).
fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
    let hex = sha256_file(file);
    let size = fs::metadata(file).unwrap().len();
    fs::rename(file, layout.join("blobs/sha256").join(&hex)).unwrap();
    (format!("sha256:{hex}"), size)
}

fn add_json_blob(layout: &Path, v: &serde_json::Value) -> (String, u64) {
    let tmp = layout.join("blob.json");
    fs::write(&tmp, serde_json::to_vec(v).unwrap()).unwrap();
    add_blob(layout, &tmp)
}

/// An OCI image archive of the busybox rootfs, named `localhost/ppbb:latest`: one
/// uncompressed layer, a config, a manifest, index.json and oci-layout. No registry.
fn busybox_oci_archive(dir: &Path) -> PathBuf {
    let layout = dir.join("oci-image");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = dir.join("layer.tar");
    let st = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(rootfs())
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the busybox rootfs");
    let (layer_digest, layer_size) = add_blob(&layout, &layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = add_json_blob(&layout, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = add_json_blob(&layout, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": "localhost/ppbb:latest",
                "org.opencontainers.image.ref.name": "latest",
            },
        }],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("ppbb-oci.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the OCI layout");
    archive
}

/// A private containerd: root, state, sockets and config in a temp dir, the CRI plugin
/// disabled, a namespace and cgroup parent unique to this test, peapod as the shim's runc
/// binary with its own `--runc-root`. Stopped (and checked for leftovers) at the end.
struct Containerd {
    dir: tempfile::TempDir,
    runtime: Runtime,
    daemon: Option<Child>,
    ns: String,
    runc_root: String,
    fifo_dir: String,
    host_paths: Vec<HostPath>,
    cleaned: bool,
}

impl Containerd {
    fn start() -> Containerd {
        // The runc shim v2 of containerd 1.6 keeps its sockets under /run/containerd/s and
        // some FIFOs under /run/containerd/fifo whatever the daemon's state dir is.
        let host_paths = vec![HostPath::hold("/run/containerd")];
        let dir = tempfile::Builder::new()
            .prefix("pp-containerd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["root", "state", "fifo", "runc"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let runtime = Runtime::new(d);
        let config = d.join("config.toml");
        fs::write(
            &config,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"#,
                d = d.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            ns: format!("pp-ctr-{}", std::process::id()),
            runc_root: d.join("runc").to_str().unwrap().to_string(),
            fifo_dir: d.join("fifo").to_str().unwrap().to_string(),
            runtime,
            daemon: Some(daemon),
            dir,
            host_paths,
            cleaned: false,
        };
        let t = Instant::now();
        loop {
            if c.dir.path().join("containerd.sock").exists() && c.out(&["version"]).status.success()
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "containerd did not come up:\n{}",
                c.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn daemon_log(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = client("ctr");
        c.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", &self.ns])
            .args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        captured(self.cmd(args))
    }

    fn why(&self, args: &[&str], o: &Output) -> String {
        format!(
            "ctr {args:?}: {}\n--- peapod calls:\n{}\n--- containerd log (tail):\n{}",
            show(o),
            self.runtime.calls(),
            self.daemon_log()
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(o.status.success(), "{}", self.why(args, &o));
        text(&o.stdout)
    }

    /// `ctr run` with peapod as the runc binary.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "run",
            "--runc-binary",
            self.runtime.path.to_str().unwrap(),
            "--runc-root",
            &self.runc_root,
            "--fifo-dir",
            &self.fifo_dir,
        ];
        v.extend_from_slice(extra);
        v
    }

    /// (pid, status) of a task from `ctr task ls`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        self.ok(&["task", "ls"]).lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3 && w[0] == id).then(|| (w[1].parse().unwrap_or(0), w[2].to_string()))
        })
    }

    fn wait_task(&self, id: &str, want: &str) {
        let t = Instant::now();
        loop {
            let st = self.task(id);
            if st.as_ref().is_some_and(|(_, s)| s == want) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "task {id} is {st:?}, never became {want}\n--- peapod calls:\n{}",
                self.runtime.calls()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Delete what is left in the namespace, stop the daemon, and list what stayed behind.
    fn cleanup(&mut self) -> Vec<String> {
        if self.cleaned {
            return Vec::new();
        }
        self.cleaned = true;
        let mut problems = Vec::new();
        if let Some(mut daemon) = self.daemon.take() {
            // Best effort: tasks and containers an earlier failure left.
            let tasks = self.out(&["task", "ls", "--quiet"]);
            for id in text(&tasks.stdout).split_whitespace() {
                let _ = self.out(&["task", "kill", "--signal", "SIGKILL", id]);
                let _ = self.out(&["task", "delete", "--force", id]);
            }
            let containers = self.out(&["container", "ls", "--quiet"]);
            for id in text(&containers.stdout).split_whitespace() {
                let _ = self.out(&["container", "delete", id]);
            }
            let _ = self.out(&["image", "rm", "localhost/ppbb:latest"]);
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(daemon.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while daemon.try_wait().ok().flatten().is_none() {
                if t.elapsed() > Duration::from_secs(15) {
                    problems.push("containerd ignored SIGTERM for 15 s".to_string());
                    let _ = daemon.kill();
                    let _ = daemon.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let d = self.dir.path().to_str().unwrap().to_string();
        // Shims name the daemon's socket in their argv; containers their bundle.
        problems.extend(wait_no_processes(&d, Duration::from_secs(15)));
        let ids = self.runtime.created_ids();
        let mut needles: Vec<&str> = ids.iter().map(String::as_str).collect();
        needles.push(&d);
        problems.extend(
            mounts_mentioning(&needles)
                .into_iter()
                .map(|m| format!("mount left: {m}")),
        );
        for id in &ids {
            let state = Path::new(&self.runc_root).join(&self.ns).join(id);
            if state.exists() {
                problems.push(format!("runtime state left: {}", state.display()));
            }
            // ctr's default cgroupsPath is /<namespace>/<id>.
            for cg in cgroups_at(&format!("{}/{id}", self.ns))
                .into_iter()
                .chain(leftover_cgroups(id))
            {
                problems.push(format!("container cgroup left: {}", cg.display()));
            }
        }
        // The /<namespace> parents are created on the way (runc leaves them too).
        for cg in cgroups_at(&self.ns) {
            if let Err(e) = remove_cgroup_tree(&cg) {
                problems.push(e);
            }
        }
        self.host_paths.clear();
        problems
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

fn containerd_ok() -> bool {
    root_ok()
        && can_run(
            "needs containerd and ctr (apt-get install containerd)",
            have(&[
                "containerd",
                "ctr",
                "containerd-shim-runc-v2",
                "tar",
                "sha256sum",
                "timeout",
            ]),
        )
}

#[test]
fn containerd_run_exec_kill_delete() {
    if !containerd_ok() {
        return;
    }
    let mut c = Containerd::start();
    let archive = busybox_oci_archive(c.dir.path());
    let out = c.ok(&["image", "import", archive.to_str().unwrap()]);
    assert!(out.contains("localhost/ppbb:latest"), "{out}");
    let pid = std::process::id();

    // Foreground run with --rm: output and exit code through the shim.
    let id0 = format!("pp-{pid}-rm");
    let args = c.run_args(&[
        "--rm",
        "localhost/ppbb:latest",
        &id0,
        "sh",
        "-c",
        "echo hello from peapod; exit 3",
    ]);
    let o = c.out(&args);
    assert_eq!(o.status.code(), Some(3), "{}", c.why(&args, &o));
    assert_eq!(
        text(&o.stdout),
        "hello from peapod\n",
        "{}",
        c.why(&args, &o)
    );

    // Detached: exec, ps, pause/resume, kill, delete.
    let id = format!("pp-{pid}-d");
    c.ok(&c.run_args(&["--detach", "localhost/ppbb:latest", &id, "sleep", "1000"]));
    c.wait_task(&id, "RUNNING");
    let (init, _) = c.task(&id).unwrap();
    assert!(init > 0);
    let host_cmd = text(&fs::read(format!("/proc/{init}/cmdline")).unwrap());
    assert_eq!(host_cmd, "sleep\x001000\x00");

    let args = [
        "task",
        "exec",
        "--fifo-dir",
        &c.fifo_dir,
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo in exec; cat /proc/1/cmdline; echo; exit 5",
    ];
    let o = c.out(&args);
    assert_eq!(o.status.code(), Some(5), "{}", c.why(&args, &o));
    assert_eq!(
        text(&o.stdout),
        "in exec\nsleep\x001000\x00\n",
        "{}",
        c.why(&args, &o)
    );

    let ps = c.ok(&["task", "ps", &id]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&init.to_string())),
        "task ps does not list pid {init}:\n{ps}"
    );

    c.ok(&["task", "pause", &id]);
    c.wait_task(&id, "PAUSED");
    c.ok(&["task", "resume", &id]);
    c.wait_task(&id, "RUNNING");

    c.ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    c.wait_task(&id, "STOPPED");
    let args = ["task", "delete", &id];
    let o = c.out(&args);
    assert!(o.status.success(), "{}", c.why(&args, &o));
    assert!(
        text(&o.stderr).contains("exit code 137"),
        "{}",
        c.why(&args, &o)
    );
    c.ok(&["container", "delete", &id]);
    assert!(c.task(&id).is_none());

    // kill --all with a named signal: pid 1 traps it.
    let id2 = format!("pp-{pid}-all");
    c.ok(&c.run_args(&[
        "--detach",
        "localhost/ppbb:latest",
        &id2,
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]));
    c.wait_task(&id2, "RUNNING");
    c.ok(&["task", "kill", "--all", "--signal", "SIGTERM", &id2]);
    c.wait_task(&id2, "STOPPED");
    let args = ["task", "delete", &id2];
    let o = c.out(&args);
    assert!(
        text(&o.stderr).contains("exit code 3"),
        "{}",
        c.why(&args, &o)
    );
    c.ok(&["container", "delete", &id2]);

    // A failing create: the shim reports peapod's last error line from log.json.
    let id3 = format!("pp-{pid}-bad");
    let args = c.run_args(&["--rm", "localhost/ppbb:latest", &id3, "/nonexistent"]);
    let o = c.out(&args);
    assert!(!o.status.success(), "{}", c.why(&args, &o));
    assert!(
        text(&o.stderr).contains("/nonexistent"),
        "{}",
        c.why(&args, &o)
    );
    let _ = c.out(&["container", "delete", &id3]);

    // What the shim sent: runc's globals on every call, and the verbs of oci-contract.md §1.3.
    let calls = c.runtime.calls();
    for line in calls.lines() {
        assert!(
            line.starts_with(&format!("--root {}/{} --log ", c.runc_root, c.ns))
                && line.contains(" --log-format json "),
            "call without runc's globals: {line}"
        );
    }
    for verb in [
        " create --bundle ",
        " start ",
        " exec --process ",
        " ps --format json ",
        " pause ",
        " resume ",
        " kill --all ",
        " delete ",
    ] {
        assert!(
            calls.contains(verb),
            "the shim never sent `{verb}`:\n{calls}"
        );
    }

    let problems = c.cleanup();
    assert!(
        problems.is_empty(),
        "left behind after containerd cleanup:\n{}\n--- peapod calls:\n{calls}",
        problems.join("\n")
    );
}
