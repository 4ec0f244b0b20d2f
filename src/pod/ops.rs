//! The pod verbs: run, stop, rm, ls, inspect, exec.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use nix::unistd::ForkResult;

use super::sandbox::PodPaths;
use super::supervise::{Supervisor, teardown_host};
use super::{POD_FILE, PodError, Record, STOP_FILE, load_pod, manifest};
use crate::container::lifecycle;
use crate::supervisor::PodRow;
use crate::supervisor::status::ConditionType;
use crate::sys;

/// The `peapod-pause` binary: next to the on-disk `peapod` (the running copy is a sealed
/// memfd, so its original path comes from the environment `ensure_sealed_self` set).
pub fn pause_binary() -> Result<PathBuf, PodError> {
    let exe = std::env::var_os(sys::ORIGINAL_EXE_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_default();
    let p = exe.with_file_name("peapod-pause");
    if p.is_file() {
        Ok(p)
    } else {
        Err(PodError::Invalid(format!(
            "pause binary `{}` not found: install peapod-pause next to peapod",
            p.display()
        )))
    }
}

fn random_uid() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parse and validate every pod of a manifest file, and admit each on this node (the node
/// object under `storage`, counting the pods already under `root` and the file's earlier
/// pods), before anything is created; warnings are returned for the caller to print.
pub fn load_manifest(
    path: &Path,
    root: &Path,
    storage: &Path,
) -> Result<(Vec<Pod>, Vec<String>), PodError> {
    let text = manifest::read_manifest(path).map_err(|e| PodError::io("read", path, e))?;
    let pods = manifest::parse_manifests(&text)?;
    let mut warnings = Vec::new();
    let node = crate::node::load(storage).map_err(|e| PodError::Invalid(e.to_string()))?;
    let mut admitted = crate::node::admitted_pods(root);
    for p in &pods {
        warnings.extend(manifest::validate(p)?.into_iter().map(|w| w.to_string()));
        // Checked here so a bad DNS setting fails `pod run`, not the sandbox.
        super::sandbox::resolv_conf("", p)?;
        super::handler::check_pod(p)?;
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let w = crate::node::admit(&node, p, &admitted)
            .map_err(|e| PodError::Invalid(format!("pod `{name}`: {e}")))?;
        warnings.extend(w.into_iter().map(|w| format!("pod `{name}`: {w}")));
        admitted.push(p.clone());
        manifest::to_supervisor(p)?;
        for c in p.spec.iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        }) {
            super::sandbox::check_image(c)?;
        }
    }
    Ok((pods, warnings))
}

/// Start one pod: its directory, then a detached supervisor that builds the sandbox and
/// starts the containers. Returns once the supervisor reports the first sync, or its error
/// (then nothing of the pod remains).
pub fn run_pod(root: &Path, storage: &Path, mut pod: Pod) -> Result<String, PodError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let paths = PodPaths::new(root, &name);
    // Checked here so a missing pause binary creates nothing.
    pause_binary()?;
    std::fs::create_dir_all(root.join("pods"))
        .map_err(|e| PodError::io("create", &root.join("pods"), e))?;
    match std::fs::create_dir(&paths.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(PodError::Exists(name));
        }
        Err(e) => return Err(PodError::io("create", &paths.dir, e)),
    }
    pod.metadata.uid = Some(random_uid());
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pod.metadata.creation_timestamp = None;
    let data = serde_json::to_vec_pretty(&pod).map_err(|e| PodError::Invalid(e.to_string()))?;
    if let Err(e) = std::fs::write(paths.dir.join(POD_FILE), data) {
        let _ = std::fs::remove_dir_all(&paths.dir);
        return Err(PodError::io("write", &paths.dir.join(POD_FILE), e));
    }
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| PodError::io("pipe", &paths.dir, e.into()))?;
    match sys::fork().map_err(|e| PodError::io("fork supervisor for", &paths.dir, e.into()))? {
        ForkResult::Child => {
            drop(r);
            // Detach: new session, then a second fork so the supervisor is no session
            // leader and is reparented away from the CLI.
            let _ = nix::unistd::setsid();
            match sys::fork() {
                Ok(ForkResult::Child) => exec_supervisor(root, storage, &name, w),
                _ => sys::exit_now(0),
            }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut line = String::new();
            let _ = BufReader::new(std::fs::File::from(r)).read_line(&mut line);
            if line.trim() == "ok" {
                return Ok(name);
            }
            let msg = line
                .trim()
                .strip_prefix("error: ")
                .unwrap_or("the pod supervisor exited during start-up")
                .to_string();
            let _ = remove_dir(&paths);
            Err(PodError::Invalid(format!("pod `{name}`: {msg}")))
        }
    }
}

/// Become the supervisor in a fresh image of the on-disk binary: a private mount namespace
/// where that file is bind-mounted read-only onto itself, then `execve` of the hidden
/// `__supervise` verb. The CLI's heap and its sealed per-invocation copy stay behind, the text
/// is shared with every other peapod through the page cache, and `/proc/<pid>/exe` of the
/// supervisor and of the stages it forks still cannot be opened for writing (EROFS), which is
/// what the sealed copy protects against (CVE-2019-5736). Mounts the supervisor makes (the
/// pod's /dev/shm, memory emptyDirs) live in its namespace and vanish with the pod.
fn exec_supervisor(root: &Path, storage: &Path, name: &str, ready: std::os::fd::OwnedFd) -> ! {
    let fail = |ready: &std::os::fd::OwnedFd, msg: String| -> ! {
        let _ = nix::unistd::write(ready, format!("error: {msg}\n").as_bytes());
        sys::exit_now(1)
    };
    let exe = std::env::var_os(sys::ORIGINAL_EXE_ENV)
        .map(PathBuf::from)
        .or_else(|| std::fs::read_link("/proc/self/exe").ok())
        .unwrap_or_default();
    if let Err(e) = sys::read_only_view(&exe) {
        fail(
            &ready,
            format!(
                "read-only mount of `{}` for the supervisor: {e}",
                exe.display()
            ),
        );
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ready);
    if let Err(e) = sys::clear_cloexec(fd) {
        fail(
            &ready,
            format!("pass the ready pipe to the supervisor: {e}"),
        );
    }
    let arg = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let args = [
        arg("peapod"),
        arg("--root"),
        std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap_or_default(),
        arg("--storage"),
        std::ffi::CString::new(storage.as_os_str().as_encoded_bytes()).unwrap_or_default(),
        arg("__supervise"),
        arg(name),
        arg(&fd.to_string()),
    ];
    let (exe_c, env) = match (sys::c_path(&exe), sys::c_env()) {
        (Ok(p), Ok(e)) => (p, e),
        (Err(e), _) | (_, Err(e)) => fail(
            &ready,
            format!("exec the supervisor `{}`: {e}", exe.display()),
        ),
    };
    let err = nix::unistd::execve(&exe_c, &args, &env).unwrap_err();
    fail(
        &ready,
        format!("exec the supervisor `{}`: {err}", exe.display()),
    )
}

/// The supervisor (`peapod __supervise NAME FD`): never returns.
pub fn supervise(root: &Path, storage: &Path, name: &str, ready_fd: i32) -> ! {
    let _ = nix::sys::prctl::set_name(c"peapod:[POD]");
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut ready = std::fs::File::from(sys::adopt_fd(ready_fd));
    let paths = PodPaths::new(root, name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.dir.join("supervisor.log"));
    if let Ok(f) = &log {
        let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(f), 1);
        let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(f), 2);
    }
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0);
    }
    let _ = sys::cloexec_from(3);
    let _ = std::env::set_current_dir("/");
    let started = load_pod(&paths).and_then(|pod| {
        let pause = pause_binary()?;
        Supervisor::new(paths, storage, pod, &pause)
    });
    match started {
        Ok(sup) => {
            sup.run(Some(ready));
            sys::exit_now(0)
        }
        Err(e) => {
            let _ = std::io::Write::write_all(&mut ready, format!("error: {e}\n").as_bytes());
            sys::exit_now(1)
        }
    }
}

/// An exclusive lock on the runtime root directory itself (no lock file to leave behind),
/// held from admission until the admitted pods' directories exist, so that concurrent
/// `pod run`s see each other's requests.
pub fn admission_lock(root: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, PodError> {
    std::fs::create_dir_all(root).map_err(|e| PodError::io("create", root, e))?;
    let dir = std::fs::File::open(root).map_err(|e| PodError::io("open", root, e))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| PodError::io("lock", root, e.into()))
}

/// `(pod, image)` for every container image of the pods under `root` whose supervisor has
/// not finished (their overlays may use the image's layers).
pub fn images_in_use(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in super::list(root) {
        let paths = PodPaths::new(root, &name);
        let Ok(pod) = load_pod(&paths) else { continue };
        if Record::load(&paths).is_ok_and(|r| r.supervisor_done) {
            continue;
        }
        for c in pod.spec.iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        }) {
            if let Some(image) = c
                .image
                .as_deref()
                .filter(|i| *i != super::sandbox::HOST_IMAGE)
            {
                out.push((name.clone(), image.to_string()));
            }
        }
    }
    out
}

/// Wait until the pod is Ready (every container ready) or `timeout` passes.
pub fn wait_ready(root: &Path, name: &str, timeout: Duration) -> Result<(), PodError> {
    let paths = PodPaths::new(root, name);
    let t = Instant::now();
    loop {
        let rec = Record::load(&paths)?;
        let status = rec.machine.status();
        if status
            .condition(ConditionType::Ready)
            .is_some_and(|c| c.status)
        {
            return Ok(());
        }
        if rec.machine.finished().is_some() {
            return Err(PodError::Invalid(format!(
                "pod `{name}` finished before it was ready"
            )));
        }
        if t.elapsed() > timeout {
            return Err(PodError::Invalid(format!(
                "pod `{name}` not ready after {}",
                humantime::format_duration(timeout)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ask the supervisor to stop the pod and wait for it.
pub fn stop(root: &Path, name: &str, grace: Option<u64>) -> Result<(), PodError> {
    let paths = PodPaths::new(root, name);
    load_pod(&paths)?;
    let rec = Record::load(&paths)?;
    if rec.supervisor_done || !rec.supervisor_alive() {
        return Ok(());
    }
    let req = serde_json::json!({ "grace_seconds": grace });
    std::fs::write(paths.dir.join(STOP_FILE), req.to_string())
        .map_err(|e| PodError::io("write", &paths.dir.join(STOP_FILE), e))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rec.supervisor_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| PodError::io("signal supervisor of", &paths.dir, e.into()))?;
    let limit = Duration::from_secs(
        grace.unwrap_or_else(|| rec.machine.spec().termination_grace_period.as_secs()) + 30,
    );
    let t = Instant::now();
    // Done means its record says so and the process is gone (it exits right after writing).
    while Record::load(&paths).is_ok_and(|r| r.supervisor_alive()) {
        if t.elapsed() > limit {
            return Err(PodError::Invalid(format!(
                "pod `{name}` did not stop within {}s",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn remove_dir(paths: &PodPaths) -> Result<(), PodError> {
    match std::fs::remove_dir_all(&paths.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PodError::io("remove", &paths.dir, e)),
    }
}

/// Remove a pod and everything it made. A running pod needs `force` (then it is stopped
/// with grace 0). Works after the supervisor was killed too.
pub fn remove(root: &Path, name: &str, force: bool) -> Result<(), PodError> {
    let paths = PodPaths::new(root, name);
    let pod = load_pod(&paths)?;
    if let Ok(rec) = Record::load(&paths)
        && rec.supervisor_alive()
        && !rec.supervisor_done
    {
        if !force && rec.machine.finished().is_none() {
            return Err(PodError::Invalid(format!(
                "pod `{name}` is running: stop it first (`peapod pod stop {name}`) or use -f"
            )));
        }
        // A finished pod's supervisor may still be tearing the sandbox down: wait for it.
        stop(root, name, Some(0))?;
    }
    // Whatever a lost supervisor left behind.
    let oci = paths.oci_root();
    for (st, _) in lifecycle::list(&oci).unwrap_or_default() {
        lifecycle::delete(&oci, &st.id, true)?;
    }
    teardown_host(&paths, &pod);
    remove_dir(&paths)
}

/// The `pod ls` row, honest about a supervisor that died.
pub fn row(root: &Path, name: &str) -> Result<PodRow, PodError> {
    let paths = PodPaths::new(root, name);
    let rec = Record::load(&paths)?;
    let mut row = rec.machine.row(super::now());
    if rec.evicted.is_some() {
        // kubectl prints `status.reason` when it is set.
        row.status = crate::node::eviction::EVICTED_REASON.into();
    } else if !rec.supervisor_done && !rec.supervisor_alive() {
        row.status = "Unknown (supervisor lost)".into();
    }
    Ok(row)
}

/// `pod inspect`: the Pod object with peapod's status and events.
pub fn inspect(root: &Path, name: &str) -> Result<serde_json::Value, PodError> {
    let paths = PodPaths::new(root, name);
    let pod = load_pod(&paths)?;
    let rec = Record::load(&paths)?;
    let mut v = serde_json::to_value(&pod).map_err(|e| PodError::Invalid(e.to_string()))?;
    let qos =
        serde_json::to_value(manifest::to_supervisor(&pod)?.1.qos_class()).unwrap_or_default();
    v["status"] = super::status::pod_status(
        &rec.machine.status(),
        qos.as_str().unwrap_or_default(),
        &pod,
    );
    if let Some(m) = &rec.evicted {
        use crate::node::eviction::{DISRUPTION_REASON, EVICTED_REASON};
        let st = &mut v["status"];
        st["phase"] = "Failed".into();
        st["reason"] = EVICTED_REASON.into();
        st["message"] = m.clone().into();
        if let Some(c) = st["conditions"].as_array_mut() {
            c.push(serde_json::json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": DISRUPTION_REASON,
                "message": m,
            }));
        }
    }
    v["events"] = super::status::events(&rec.events);
    v["peapod"] = serde_json::json!({
        "supervisorPid": rec.supervisor_pid,
        "supervisorAlive": rec.supervisor_alive(),
        "pausePid": rec.pause_pid,
        "message": rec.message,
    });
    Ok(v)
}

/// The OCI runtime root and container id of a pod's container, for `pod exec`.
pub fn container_target(
    root: &Path,
    name: &str,
    container: Option<&str>,
) -> Result<(PathBuf, String, oci_spec::runtime::Process), PodError> {
    let paths = PodPaths::new(root, name);
    let pod = load_pod(&paths)?;
    let first = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let c = container.map(str::to_string).unwrap_or(first);
    let spec = crate::container::spec::load(&paths.bundle(&c))
        .map_err(|_| PodError::NotFound(format!("{name}/{c}")))?;
    let process = spec.process().clone().unwrap_or_default();
    Ok((paths.oci_root(), c, process))
}
