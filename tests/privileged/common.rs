//! Helpers for privileged tests: they run the real `peapod` binary as root on busybox
//! bundles made by `rootfs-tools/busybox-rootfs`. A test that cannot run says why; with
//! `PEAPOD_MUST_WORK=1` (CI) that is a failure instead of a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn must_work() -> bool {
    std::env::var("PEAPOD_MUST_WORK").is_ok_and(|v| v == "1")
}

/// Write `text` to `path` as an executable (0755): a shell script standing in for a plugin or
/// a runtime.
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Return false (and say why) when the test cannot run here.
pub fn can_run(requirement: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if must_work() {
        panic!("PEAPOD_MUST_WORK=1 but this test cannot run: {requirement}");
    }
    eprintln!("SKIP: {requirement}");
    false
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn root_ok() -> bool {
    can_run("needs root", is_root())
}

pub fn bin() -> PathBuf {
    std::env::var_os("PEAPOD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_peapod")))
}

/// cgroup v2 unified at /sys/fs/cgroup (the VM), as opposed to v1/hybrid (the host).
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// One busybox rootfs shared by all tests (containers get it read-only).
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = if std::env::var_os("PEAPOD_IN_VM").is_some() {
            PathBuf::from("/tmp/peapod-test-rootfs")
        } else {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox-rootfs")
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-tools/busybox-rootfs");
        let st = Command::new(script)
            .arg(&dir)
            .status()
            .expect("run rootfs-tools/busybox-rootfs");
        assert!(st.success(), "busybox-rootfs failed");
        dir
    })
}

/// The OCI binary callers use (containerd's `BinaryName`, podman's `--runtime`): the OCI
/// tests run against it. `peapod` accepts the same verbs (one clap definition), which
/// `core::the_full_binary_runs_the_oci_verbs_too` checks.
pub fn oci_bin() -> PathBuf {
    std::env::var_os("PEAPOD_RUNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_peapod-runc")))
}

/// A bundle in a temp dir whose config.json is `peapod spec` patched with `patch`.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub state_root: PathBuf,
}

pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

impl Bundle {
    pub fn new(args: &[&str], patch: serde_json::Value) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("pp-bundle")
            .tempdir()
            .unwrap();
        let out = Command::new(oci_bin())
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = dir.path().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        v["root"]["path"] = rootfs().to_str().unwrap().into();
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = args.into();
        // The test machine lacks CAP_SYS_RESOURCE and has nofile hard 20000.
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]);
        merge(&mut v, patch);
        std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let state_root = dir.path().join("state");
        Bundle { dir, state_root }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    /// Replace the bundle's config.json with `cfg`.
    pub fn write_config(&self, cfg: &serde_json::Value) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec(cfg).unwrap(),
        )
        .unwrap();
    }

    /// `peapod-runc --root <state> ARGS...`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(oci_bin());
        c.arg("--root").arg(&self.state_root).args(args);
        c
    }

    /// Run peapod to completion. Output goes through files, not pipes: a container started
    /// by `create` or `exec -d` inherits our stdio (as with runc), and a pipe would only
    /// reach EOF when the container exits.
    pub fn out(&self, args: &[&str]) -> Output {
        captured(self.cmd(args))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "peapod {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    pub fn run(&self, id: &str) -> (i32, String, String) {
        let o = self.out(&["run", "--bundle", self.path().to_str().unwrap(), id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn create(&self, id: &str) {
        let o = self.out(&["create", "--bundle", self.path().to_str().unwrap(), id]);
        assert!(
            o.status.success(),
            "create: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let t = std::time::Instant::now();
        while self.state(id)["status"] != want {
            assert!(
                t.elapsed().as_secs() < 30,
                "container {id} never became {want}: {}",
                self.state(id)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Leave nothing behind even when an assertion failed half-way.
        if let Ok(rd) = std::fs::read_dir(&self.state_root) {
            for e in rd.flatten() {
                let _ = self.out(&[
                    "delete",
                    "--force",
                    e.file_name().to_str().unwrap_or_default(),
                ]);
            }
        }
    }
}

/// Run `cmd` with stdin from /dev/null and stdout/stderr captured through temp files.
pub fn captured(mut cmd: Command) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// Directories of a container's cgroup that still exist on the host.
pub fn leftover_cgroups(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![base.join("peapod").join(id)];
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            dirs.push(e.path().join("peapod").join(id));
        }
    }
    for d in dirs {
        if d.exists() {
            found.push(d);
        }
    }
    found
}

pub fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

impl Bundle {
    /// The container's cgroup path as peapod recorded it.
    pub fn cgroup_path(&self, id: &str) -> String {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.state_root.join(id).join("state.json")).unwrap(),
        )
        .unwrap();
        st["cgroup_path"].as_str().unwrap().to_string()
    }

    /// A knob of the container's cgroup on the host (`ctrl` is the v1 controller).
    pub fn knob(&self, id: &str, ctrl: &str, file: &str) -> PathBuf {
        let rel = self.cgroup_path(id);
        let rel = rel.trim_start_matches('/');
        if cgroup_v2() {
            Path::new("/sys/fs/cgroup").join(rel).join(file)
        } else {
            Path::new("/sys/fs/cgroup").join(ctrl).join(rel).join(file)
        }
    }
}

/// The real binary with a `--root` and a `--storage` of its own (temp dirs), for pod, node and
/// image tests. Pods left at the end are removed with `pod rm -f`.
pub struct Peapod {
    pub root: tempfile::TempDir,
    pub storage: tempfile::TempDir,
    /// Scratch space for manifests.
    pub dir: tempfile::TempDir,
}

impl Peapod {
    pub fn new() -> Peapod {
        let tmp = |prefix: &str| tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        Peapod {
            root: tmp("pp-root"),
            storage: tmp("pp-storage"),
            dir: tmp("pp-files"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        // No CNI plugins unless a test names them (`--cni-bin-dir`, tests/privileged/network.rs):
        // the other pod tests keep the loopback-only network and never touch the host's CNI
        // configuration, bridges or iptables.
        c.env("CNI_PATH", self.dir.path().join("no-cni-plugins"));
        c.arg("--root")
            .arg(self.root.path())
            .arg("--storage")
            .arg(self.storage.path())
            .args(args);
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        captured(self.command(args))
    }

    /// The command succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "peapod {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The command fails; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(!o.status.success(), "peapod {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// `pod run` of `yaml`.
    pub fn run(&self, yaml: &str) {
        let p = self.manifest("m", yaml);
        self.ok(&["pod", "run", p.to_str().unwrap()]);
    }

    pub fn inspect(&self, pod: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["pod", "inspect", pod, "-o", "json"])).unwrap()
    }

    /// The `pod ls` row of `name` as columns.
    pub fn ls(&self, name: &str) -> Vec<String> {
        let out = self.ok(&["pod", "ls"]);
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not in {out}"));
        line.split("   ")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Poll `f` until it holds (at most `secs`); how long that took.
    pub fn wait(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) -> std::time::Duration {
        let t = std::time::Instant::now();
        while !f() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(secs),
                "timed out waiting for {what}: {}",
                self.ok(&["pod", "ls"])
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        t.elapsed()
    }

    /// The last component of the pod's cgroup path (`pod-<key>`), as `pod inspect` shows it.
    pub fn cgroup(&self, pod: &str) -> String {
        let v = self.inspect(pod);
        let path = v["peapod"]["cgroup"].as_str().unwrap();
        path.rsplit('/').next().unwrap().to_string()
    }

    pub fn logs(&self, pod: &str, c: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["pod", "logs", pod, "-c", c]).stdout).into_owned()
    }

    /// `reason: message` of the pod's events, once per occurrence.
    pub fn events(&self, pod: &str) -> Vec<(String, String)> {
        self.inspect(pod)["events"]
            .as_array()
            .into_iter()
            .flatten()
            // An event that happened n times is one entry with `count: n`: n pairs here.
            .flat_map(|e| {
                let pair = (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                );
                std::iter::repeat_n(pair, e["count"].as_u64().unwrap_or(1) as usize)
            })
            .collect()
    }
}

impl Drop for Peapod {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.root.path().join("pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = self.cmd(&[
                "pod",
                "rm",
                "-f",
                e.file_name().to_str().unwrap_or_default(),
            ]);
        }
    }
}
