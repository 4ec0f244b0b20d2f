//! The pod verbs: run, stop, rm, ls, inspect, exec.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use nix::unistd::ForkResult;

use super::cgroup::PodCgroup;
use super::network::{self, NetOptions, Network, PodNetwork};
use super::sandbox::PodPaths;
use super::supervise::Supervisor;
use super::{POD_FILE, PodError, Record, STOP_FILE, load_pod};
use peapod_kube::manifest;
use peapod_kube::supervisor::PodRow;
use peapod_kube::supervisor::status::ConditionType;
use peapod_sys as sys;

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
    let mut pods = manifest::parse_manifests(&text)?;
    let mut warnings = Vec::new();
    let node = crate::node::load(storage).map_err(|e| PodError::Invalid(e.to_string()))?;
    let mut admitted = crate::node::admitted_pods(root);
    // The whole manifest is admitted before anything is created: a second document of the
    // same name, or a name already taken, fails `pod run` with nothing made.
    check_unique(&pods)?;
    let node_name = node.metadata.name.clone().unwrap_or_default();
    for p in &mut pods {
        warnings.extend(manifest::validate(p)?.into_iter().map(|w| w.to_string()));
        let name = p.metadata.name.as_deref().unwrap_or_default();
        check_free(root, name)?;
        // Checked here so a bad DNS setting fails `pod run`, not the sandbox.
        super::sandbox::resolv_conf("", p)?;
        super::handler::check_pod(p)?;
        let w = peapod_kube::node::admit(&node, p, &admitted)
            .map_err(|e| PodError::Invalid(format!("pod `{name}`: {e}")))?;
        warnings.extend(w.into_iter().map(|w| format!("pod `{name}`: {w}")));
        // Bound to this node, as the scheduler's binding sets it (`pod inspect`, the NODE
        // column of `pod ls -o wide`).
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name.get_or_insert_with(|| node_name.clone());
        }
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

/// Every pod of a manifest has its own name.
fn check_unique(pods: &[Pod]) -> Result<(), PodError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in pods.iter().filter_map(|p| p.metadata.name.as_deref()) {
        if !seen.insert(name) {
            return Err(PodError::Invalid(format!(
                "pod `{name}` appears more than once in the manifest: pod names must be unique"
            )));
        }
    }
    Ok(())
}

/// Admission: `name` is a valid pod name, no pod of that name exists under `root`, and no
/// process of an earlier pod of that name is left in its cgroup (a wiped `--root`).
fn check_free(root: &Path, name: &str) -> Result<(), PodError> {
    let paths = PodPaths::new(root, name)?;
    if std::fs::symlink_metadata(&paths.dir).is_ok() {
        return Err(PodError::Exists(name.to_string()));
    }
    let cg = PodCgroup::of(&paths);
    let left = cg.pids();
    if !left.is_empty() {
        return Err(PodError::Invalid(format!(
            "pod `{name}`: {} process(es) of an earlier pod of this name still run in cgroup `{}` (its state under `{}` is gone): remove them with `peapod pod rm -f {name}`",
            left.len(),
            cg.path(),
            root.display()
        )));
    }
    Ok(())
}

/// A directory only root can enter: created 0700, or made 0700 when it exists (`pods/`
/// and every pod directory hold manifests with secrets in their env).
pub fn private_dir(dir: &Path) -> Result<(), PodError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PodError::io("create", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| PodError::io("chmod 0700", dir, e))
}

/// Start one pod: its directory (0700) with the manifest, its cgroup, then a detached
/// supervisor, in the pod cgroup before it execs, that builds the sandbox and starts the
/// containers.
/// Returns once the supervisor reports the first sync, or its error (then nothing of the pod
/// remains). Killed at any point, it leaves at most a pod that `pod rm -f` removes. The pod
/// joins `net` (checked with [`network::check`] beforehand) unless it has `hostNetwork`.
pub fn run_pod(
    root: &Path,
    storage: &Path,
    mut pod: Pod,
    net: &Network,
    net_opts: &NetOptions,
) -> Result<String, PodError> {
    use std::os::unix::fs::DirBuilderExt;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let paths = PodPaths::new(root, &name)?;
    // Checked here so a missing pause binary creates nothing.
    pause_binary()?;
    private_dir(&root.join("pods"))?;
    let cg = PodCgroup::of(&paths);
    match std::fs::DirBuilder::new().mode(0o700).create(&paths.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(PodError::Exists(name));
        }
        Err(e) => return Err(PodError::io("create", &paths.dir, e)),
    }
    let undo = |e: PodError| {
        if let Err(e2) = cg.destroy() {
            log::warn!("{e2}");
        }
        // A supervisor that died between ADD and its own DEL left the marker.
        if let Err(e2) = network::detach(&paths, None, network::PinNs::Own) {
            log::warn!("{e2}");
        }
        let _ = remove_dir(&paths);
        e
    };
    pod.metadata.uid = Some(random_uid());
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pod.metadata.creation_timestamp = None;
    let data = serde_json::to_vec_pretty(&pod).map_err(|e| PodError::Invalid(e.to_string()))?;
    crate::write_private(&paths.dir.join(POD_FILE), &data).map_err(undo)?;
    let pod_net = PodNetwork::plan(&pod, &paths, net, net_opts).map_err(undo)?;
    if let Some(n) = &pod_net {
        n.save(&paths).map_err(undo)?;
        // Before the supervisor takes its mount namespace, so the pin reaches it.
        network::prepare_pin_dir(&network::pin_path(&paths).map_err(undo)?).map_err(undo)?;
    }
    // An empty cgroup left by an earlier pod of this name (admission refused a busy one).
    cg.destroy().map_err(undo)?;
    let leaf = cg.create_supervisor_leaf().map_err(undo)?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| undo(PodError::io("pipe", &paths.dir, e.into())))?;
    match sys::fork()
        .map_err(|e| undo(PodError::io("fork supervisor for", &paths.dir, e.into())))?
    {
        ForkResult::Child => {
            drop(r);
            // Detach: new session, then a second fork so the supervisor is no session
            // leader and is reparented away from the CLI. It joins the pod cgroup itself
            // (see `exec_supervisor`).
            let _ = nix::unistd::setsid();
            match sys::fork() {
                Ok(ForkResult::Child) => {
                    exec_supervisor(root, storage, &paths, pod_net, leaf.as_ref(), w)
                }
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
            Err(undo(PodError::Invalid(format!("pod `{name}`: {msg}"))))
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
///
/// A pod with a network gets it first, still in the host's mount namespace: its namespace
/// pinned and its ADD started in a child, which stays the supervisor's child across the
/// `execve`, so the plugins' work overlaps the pod cgroup join, the supervisor's start-up and
/// the sandbox's creation (containerd's CRI order: the sandbox's network before its
/// containers). The join comes after that fork because on cgroup v1 the first move of a
/// process waits for an RCU grace period (10-15 ms here) that the plugins need not wait for;
/// the ADD child is moved into the pod cgroup first, then this process, so `pod rm -f` ends
/// both with the rest (a plugin forked before the move is waited for by DEL as an orphan).
fn exec_supervisor(
    root: &Path,
    storage: &Path,
    paths: &PodPaths,
    net: Option<PodNetwork>,
    leaf: &dyn peapod_oci::cgroups::CgroupManager,
    ready: std::os::fd::OwnedFd,
) -> ! {
    let fail = |ready: &std::os::fd::OwnedFd, msg: String| -> ! {
        let _ = nix::unistd::write(ready, format!("error: {msg}\n").as_bytes());
        sys::exit_now(1)
    };
    // What the ADD child inherits: the supervisor's stdio, not the CLI's (which the plugins
    // would hold open: `pod run | cat` waiting for them), and no other fd of the CLI (the
    // admission lock, its log file) but the ready pipe.
    supervisor_stdio(paths);
    if peapod_oci::logger::logs_to_file() {
        peapod_oci::logger::detach();
    }
    if let Err(e) = sys::close_fds_in_child(&[std::os::fd::AsRawFd::as_raw_fd(&ready)]) {
        fail(
            &ready,
            format!("close the CLI's fds in the supervisor: {e}"),
        );
    }
    let add = net.map(|n| {
        let started = network::pin_path(paths)
            .map_err(|e| e.to_string())
            .and_then(|pin| {
                network::pin_new(network::PinNs::Own, &pin)?;
                n.attach_in_child(paths, &pin)
            })
            .and_then(|p| p.into_inherited());
        started.unwrap_or_else(|e| fail(&ready, format!("pod network: {e}")))
    });
    // From here on a failure waits for the ADD, so that `pod run`'s undo runs DEL after it.
    let fail = |ready: &std::os::fd::OwnedFd, msg: String| -> ! {
        wait_add_child(add.as_ref().map(|(child, _)| *child));
        fail(ready, msg)
    };
    if let Some((child, _)) = &add
        && let Err(e) = leaf.add_task(*child)
        && !crate::child_exited(*child).unwrap_or(true)
    {
        fail(
            &ready,
            format!("move the CNI ADD child into the pod cgroup: {e}"),
        );
    }
    if let Err(e) = leaf.add_task(std::process::id() as i32) {
        fail(&ready, format!("join the pod cgroup: {e}"));
    }
    let exe = std::env::var_os(sys::ORIGINAL_EXE_ENV)
        .map(PathBuf::from)
        .or_else(|| std::fs::read_link("/proc/self/exe").ok())
        .unwrap_or_default();
    // The host's mount namespace, for the pod's network namespace pin (see `network`).
    let host_mntns = match std::fs::File::open("/proc/self/ns/mnt") {
        Ok(f) => std::os::fd::OwnedFd::from(f),
        Err(e) => fail(&ready, format!("open `/proc/self/ns/mnt`: {e}")),
    };
    let mntns_fd = std::os::fd::AsRawFd::as_raw_fd(&host_mntns);
    if let Err(e) = sys::clear_cloexec(mntns_fd) {
        fail(
            &ready,
            format!("pass the host mount namespace to the supervisor: {e}"),
        );
    }
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
    let mut args = vec![
        arg("peapod"),
        arg("--root"),
        std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap_or_default(),
        arg("--storage"),
        std::ffi::CString::new(storage.as_os_str().as_encoded_bytes()).unwrap_or_default(),
        arg("__supervise"),
        arg(&paths.name),
        arg(&fd.to_string()),
        arg(&mntns_fd.to_string()),
    ];
    if let Some((child, out)) = &add {
        let out = std::os::fd::AsRawFd::as_raw_fd(out);
        args.extend([arg("--add-child"), arg(&child.to_string())]);
        args.extend([arg("--add-fd"), arg(&out.to_string())]);
    }
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

/// Before the supervisor gives up during its start-up: the ADD that `pod run` started in its
/// child ends first, so that `pod run`'s undo runs DEL after it.
fn wait_add_child(child: Option<i32>) {
    if let Some(child) = child {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    }
}

/// Stdout and stderr to the pod's `supervisor.log`, stdin from /dev/null.
fn supervisor_stdio(paths: &PodPaths) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(paths.dir.join("supervisor.log"));
    if let Ok(f) = &log {
        let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(f), 1);
        let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(f), 2);
    }
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0);
    }
}

/// The supervisor (`peapod __supervise NAME FD [MNTNS_FD] [--add-child PID --add-fd FD]`,
/// `MNTNS_FD` the host's mount namespace, `PID` and `FD` the ADD that `pod run` started in
/// its child): never returns.
pub fn supervise(
    root: &Path,
    storage: &Path,
    name: &str,
    ready_fd: i32,
    mntns_fd: Option<i32>,
    add: Option<(i32, i32)>,
) -> ! {
    let _ = nix::sys::prctl::set_name(c"peapod:[POD]");
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // Two pipes and a log file per container: a pod of thousands of containers needs more
    // than a default soft limit of 1024 fds. Raise it to the hard limit, as the Go runtime
    // does for containerd (whose containers inherit the raised limit too).
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let mut ready = match sys::adopt_inherited_fd(ready_fd) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("peapod supervisor: readiness fd {ready_fd}: {e}");
            wait_add_child(add.map(|(child, _)| child));
            std::process::exit(1)
        }
    };
    let host_mntns = match mntns_fd.map(sys::adopt_inherited_fd).transpose() {
        Ok(fd) => fd,
        Err(e) => {
            let _ = std::io::Write::write_all(
                &mut ready,
                format!("error: host mount namespace fd: {e}\n").as_bytes(),
            );
            wait_add_child(add.map(|(child, _)| child));
            sys::exit_now(1)
        }
    };
    let paths = match PodPaths::new(root, name) {
        Ok(p) => p,
        Err(e) => {
            let _ = std::io::Write::write_all(&mut ready, format!("error: {e}\n").as_bytes());
            wait_add_child(add.map(|(child, _)| child));
            sys::exit_now(1)
        }
    };
    let pending_add = match add
        .map(|(child, fd)| network::PendingAttach::adopt(child, fd))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            let _ = std::io::Write::write_all(&mut ready, format!("error: {e}\n").as_bytes());
            wait_add_child(add.map(|(child, _)| child));
            sys::exit_now(1)
        }
    };
    // Stdio is the pod's supervisor.log already (`exec_supervisor`).
    let _ = sys::cloexec_from(3);
    let _ = std::env::set_current_dir("/");
    let started = match load_pod(&paths).and_then(|pod| Ok((pod, pause_binary()?))) {
        Ok((pod, pause)) => Supervisor::new(paths, storage, pod, &pause, host_mntns, pending_add),
        Err(e) => {
            // DEL (by `pod run`'s undo) only once the ADD is over.
            if let Some(p) = pending_add {
                let _ = p.wait();
            }
            Err(e)
        }
    };
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
    use std::os::unix::fs::DirBuilderExt;
    // runc's root is 0700; an existing root keeps its mode (`pods/` below it is made 0700).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| PodError::io("create", root, e))?;
    let dir = std::fs::File::open(root).map_err(|e| PodError::io("open", root, e))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| PodError::io("lock", root, e.into()))
}

/// `(pod, image)` for every container image of the pods under `root` whose supervisor has
/// not finished (their overlays may use the image's layers).
pub fn images_in_use(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in super::list(root) {
        let Ok(paths) = PodPaths::new(root, &name) else {
            continue;
        };
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

/// The pod (one of them) that uses the image `name` of `store`, as [`images_in_use`] counts
/// them; `None` when none does or the store has no such image. `image rm` refuses such an
/// image unless forced.
pub fn image_user(
    root: &Path,
    store: &peapod_image::Store,
    name: &str,
) -> Result<Option<String>, peapod_image::ImageError> {
    let Some(info) = store.resolve(name)? else {
        return Ok(None);
    };
    Ok(images_in_use(root)
        .into_iter()
        .find(|(_, image)| {
            store
                .resolve(image)
                .ok()
                .flatten()
                .is_some_and(|i| i.id == info.id)
        })
        .map(|(pod, _)| pod))
}

/// Wait until the pod is Ready (every container ready) or `timeout` passes. The supervisor
/// writes `status.json` by rename at every change, so the wait wakes on that (inotify) rather
/// than on a polling tick; a slow tick stays as a safety net should the watch be unavailable.
pub fn wait_ready(root: &Path, name: &str, timeout: Duration) -> Result<(), PodError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    const SAFETY_TICK: Duration = Duration::from_millis(500);
    let paths = PodPaths::new(root, name)?;
    // Watch first, then read: a change between the two still wakes the wait.
    let watch = crate::watch_writes(&paths.dir)
        .map_err(|e| log::debug!("watch `{}`: {e}; polling", paths.dir.display()))
        .ok();
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
        let left = timeout.saturating_sub(t.elapsed());
        if left.is_zero() {
            return Err(PodError::Invalid(format!(
                "pod `{name}` not ready after {}",
                humantime::format_duration(timeout)
            )));
        }
        let tick = left.min(SAFETY_TICK);
        match &watch {
            Some(w) => {
                let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
                let ms = PollTimeout::try_from(tick).unwrap_or(PollTimeout::MAX);
                if poll(&mut fds, ms).is_ok_and(|n| n > 0) {
                    // Only the wake-up matters: drain what is queued (EAGAIN when empty).
                    while w.read_events().is_ok_and(|evs| !evs.is_empty()) {}
                }
            }
            None => std::thread::sleep(tick.min(Duration::from_millis(50))),
        }
    }
}

/// Ask the supervisor to stop the pod and wait for it.
pub fn stop(root: &Path, name: &str, grace: Option<u64>) -> Result<(), PodError> {
    match request_stop(root, name, grace)? {
        Some(pending) => pending.wait(),
        None => Ok(()),
    }
}

/// How long a stop waits for the supervisor's teardown after the grace period (the sandbox's
/// end: CNI DEL, cgroups, mounts): kubelet's default `--runtime-request-timeout`, which bounds
/// its StopPodSandbox call and the DEL in it. Many pods torn down at once share the CPU, so a
/// pod's teardown can take longer than alone: 50 pods stopped together in the emulated VM
/// (each DEL runs the plugin chain again) took more than the 30 s allowed before.
pub const TEARDOWN_LIMIT: Duration = Duration::from_secs(120);

/// A stop asked of a pod's supervisor, not yet finished: [`PendingStop::wait`] for it.
#[derive(Debug)]
pub struct PendingStop {
    paths: PodPaths,
    limit: Duration,
    asked: Instant,
}

/// Ask the supervisor to stop the pod (its grace period starts now) without waiting for it, so
/// that the grace periods of many pods run at the same time; `None` when it has nothing left
/// to stop.
pub fn request_stop(
    root: &Path,
    name: &str,
    grace: Option<u64>,
) -> Result<Option<PendingStop>, PodError> {
    let paths = PodPaths::new(root, name)?;
    load_pod(&paths)?;
    let rec = Record::load(&paths)?;
    if rec.supervisor_done || !rec.supervisor_alive() {
        return Ok(None);
    }
    let req = serde_json::json!({ "grace_seconds": grace });
    crate::write_private(&paths.dir.join(STOP_FILE), req.to_string().as_bytes())?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rec.supervisor_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| PodError::io("signal supervisor of", &paths.dir, e.into()))?;
    let limit = Duration::from_secs(
        grace.unwrap_or_else(|| rec.machine.spec().termination_grace_period.as_secs()),
    ) + TEARDOWN_LIMIT;
    Ok(Some(PendingStop {
        paths,
        limit,
        asked: Instant::now(),
    }))
}

impl PendingStop {
    /// Wait until the supervisor is done: its record says so and the process is gone (it
    /// exits right after writing). Fails past the grace period + [`TEARDOWN_LIMIT`], counted from
    /// the request.
    pub fn wait(self) -> Result<(), PodError> {
        while Record::load(&self.paths).is_ok_and(|r| r.supervisor_alive()) {
            if self.asked.elapsed() > self.limit {
                return Err(PodError::Invalid(format!(
                    "pod `{}` did not stop within {}s",
                    self.paths.name,
                    self.limit.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

fn remove_dir(paths: &PodPaths) -> Result<(), PodError> {
    match std::fs::remove_dir_all(&paths.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PodError::io("remove", &paths.dir, e)),
    }
}

/// What `pod rm` did beyond the usual, for the caller to tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// The pod, as recorded under `--root`.
    Pod,
    /// No state under `--root` (wiped), but the pod's cgroup was there: its processes were
    /// killed and the cgroup removed.
    Orphan { cgroup: String, processes: usize },
}

/// Remove a pod and everything it made. A running pod needs `force`, which kills it at once
/// (no grace period, as `kubectl delete --force --grace-period=0`): every process below the pod
/// cgroup, supervisor included, gets SIGKILL, then the cgroups and the pod directory go. This
/// needs nothing from the pod's state, so it also finishes what a killed `pod run` or `pod rm`
/// left, and finds a pod whose `--root` was wiped by its cgroup.
pub fn remove(root: &Path, name: &str, force: bool) -> Result<Removed, PodError> {
    let paths = PodPaths::new(root, name)?;
    let cg = PodCgroup::of(&paths);
    let have_dir = std::fs::symlink_metadata(&paths.dir).is_ok();
    if !have_dir && !cg.exists() {
        return Err(PodError::NotFound(name.to_string()));
    }
    if !force {
        match Record::load(&paths) {
            Ok(rec) if rec.supervisor_alive() && !rec.supervisor_done => {
                if rec.machine.finished().is_none() {
                    return Err(running(name));
                }
                // A finished pod's supervisor may still be tearing the sandbox down: wait.
                stop(root, name, Some(0))?;
            }
            Ok(_) => {}
            // No record: a pod still starting (its supervisor has not written one yet), or
            // what a killed `pod run` left.
            Err(_) if !cg.pids().is_empty() => return Err(running(name)),
            Err(_) => {}
        }
    }
    // The pod's network namespace, held open across the kill so DEL still finds its veth and
    // addresses (a supervisor killed before its own DEL): the recorded pause process, if it
    // is still in the pod's cgroup (a recycled pid is not).
    let netns = Record::load(&paths).ok().and_then(|rec| {
        let p = PathBuf::from(format!("/proc/{}/ns/net", rec.pause_pid));
        let f = (rec.pause_pid > 0)
            .then(|| std::fs::File::open(&p).ok())
            .flatten()?;
        cg.pids().contains(&rec.pause_pid).then_some(f)
    });
    let processes = cg.pids().len();
    cg.destroy()?;
    let ns_path = netns.as_ref().map(|f| {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(f)
        ))
    });
    network::detach(&paths, ns_path.as_deref(), network::PinNs::Own)?;
    drop(netns);
    remove_dir(&paths)?;
    Ok(if have_dir {
        Removed::Pod
    } else {
        Removed::Orphan {
            cgroup: cg.path().to_string(),
            processes,
        }
    })
}

fn running(name: &str) -> PodError {
    PodError::Invalid(format!(
        "pod `{name}` is running: stop it first (`peapod pod stop {name}`) or use -f"
    ))
}

/// The `pod ls` row, honest about a supervisor that died and about a pod whose start was
/// cut short (no record: `Pending` while its supervisor starts, else `Unknown`).
pub fn row(root: &Path, name: &str) -> Result<PodRow, PodError> {
    let paths = PodPaths::new(root, name)?;
    let rec = match Record::load(&paths) {
        Ok(rec) => rec,
        Err(e) => return unrecorded_row(&paths, e),
    };
    let mut row = rec.machine.row(super::now());
    if rec.evicted.is_some() {
        // kubectl prints `status.reason` when it is set.
        row.status = peapod_kube::node::eviction::EVICTED_REASON.into();
    } else if !rec.supervisor_done && !rec.supervisor_alive() {
        row.status = "Unknown (supervisor lost)".into();
    }
    Ok(row)
}

fn unrecorded_row(paths: &PodPaths, err: PodError) -> Result<PodRow, PodError> {
    let starting = !PodCgroup::of(paths).pids().is_empty();
    let created = std::fs::metadata(&paths.dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| peapod_kube::supervisor::Millis(d.as_millis() as u64))
        .unwrap_or_else(super::now);
    let mut row = match load_pod(paths)
        .ok()
        .and_then(|pod| manifest::to_supervisor(&pod).ok())
        .and_then(|(spec, _)| peapod_kube::supervisor::PodMachine::new(spec, created).ok())
    {
        Some(m) => m.row(super::now()),
        None if starting => return Err(err),
        None => PodRow {
            name: paths.name.clone(),
            ready: "0/0".into(),
            status: String::new(),
            restarts: "0".into(),
            age: "<unknown>".into(),
        },
    };
    row.name = paths.name.clone();
    row.status = if starting {
        "Pending".into()
    } else {
        "Unknown (incomplete: remove it with pod rm -f)".into()
    };
    Ok(row)
}

/// `pod inspect`: the Pod object with peapod's status and events.
pub fn inspect(root: &Path, name: &str) -> Result<serde_json::Value, PodError> {
    let paths = PodPaths::new(root, name)?;
    let pod = load_pod(&paths)?;
    let rec = Record::load(&paths)?;
    let mut v = serde_json::to_value(&pod).map_err(|e| PodError::Invalid(e.to_string()))?;
    let qos =
        serde_json::to_value(manifest::to_supervisor(&pod)?.1.qos_class()).unwrap_or_default();
    v["status"] = super::status::api_status(&rec, &pod, qos.as_str().unwrap_or_default());
    v["events"] = super::status::events(&rec.events);
    v["peapod"] = serde_json::json!({
        "supervisorPid": rec.supervisor_pid,
        "supervisorAlive": rec.supervisor_alive(),
        "pausePid": rec.pause_pid,
        "message": rec.message,
        "cgroup": paths.cgroup,
    });
    Ok(v)
}

/// The name of a container of `pod` given on the command line (`-c`), checked against the
/// pod before any path is built from it; `None` picks the first app container.
pub fn container_of(pod: &Pod, container: Option<&str>) -> Result<String, PodError> {
    let spec = pod.spec.as_ref();
    let Some(c) = container else {
        return spec
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .ok_or_else(|| PodError::Invalid("the pod has no containers".into()));
    };
    let known = spec.is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|x| x.name == c)
    });
    if !known || !manifest::container_name_errors(c).is_empty() {
        return Err(PodError::Invalid(format!(
            "container {c} is not valid for pod {}",
            pod.metadata.name.as_deref().unwrap_or_default()
        )));
    }
    Ok(c.to_string())
}

/// The OCI runtime root and container id of a pod's container, for `pod exec`.
pub fn container_target(
    root: &Path,
    name: &str,
    container: Option<&str>,
) -> Result<(PathBuf, String, oci_spec::runtime::Process), PodError> {
    let paths = PodPaths::new(root, name)?;
    let pod = load_pod(&paths)?;
    let c = container_of(&pod, container)?;
    let spec = peapod_oci::container::spec::load(&paths.bundle(&c))
        .map_err(|_| PodError::NotFound(format!("{name}/{c}")))?;
    let process = spec.process().clone().unwrap_or_default();
    Ok((paths.oci_root(), c, process))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_each_pod_once() {
        let doc = |n: &str| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {n}}}\nspec: {{containers: [{{name: c, image: host, command: [x]}}]}}\n"
            )
        };
        let pods = manifest::parse_manifests(&(doc("a") + &doc("b"))).unwrap();
        check_unique(&pods).unwrap();
        let pods = manifest::parse_manifests(&(doc("a") + &doc("b") + &doc("a"))).unwrap();
        assert_eq!(
            check_unique(&pods).unwrap_err().to_string(),
            "pod `a` appears more than once in the manifest: pod names must be unique"
        );
    }

    #[test]
    fn container_names_from_the_command_line_must_be_the_pods() {
        let pod: Pod = manifest::parse_manifests(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: init, image: host, command: [x]}]\n  containers: [{name: app, image: host, command: [x]}, {name: pause, image: host, command: [x]}]\n",
        )
        .unwrap()
        .remove(0);
        assert_eq!(container_of(&pod, None).unwrap(), "app");
        assert_eq!(container_of(&pod, Some("init")).unwrap(), "init");
        assert_eq!(container_of(&pod, Some("pause")).unwrap(), "pause");
        for bad in ["../../x", "_pause", "nosuch", "", "APP"] {
            assert_eq!(
                container_of(&pod, Some(bad)).unwrap_err().to_string(),
                format!("container {bad} is not valid for pod p")
            );
        }
    }
}
