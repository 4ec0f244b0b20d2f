//! The per-pod supervisor: the side-effect half of [`peapod_kube::supervisor::PodMachine`].
//!
//! One single-threaded process per pod, detached from the CLI (new session, child
//! subreaper, inherited fds closed). It builds the sandbox, executes the machine's actions
//! (start, kill, wake), reaps container processes, copies their output into CRI logs and
//! writes the pod's record after every change.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::handler::{self, Handler, Pending, Target};
use super::logs::{LogWriter, Stream};
use super::network::{self, PodNetwork};
use super::sandbox::{self, ContainerContext, PodPaths};
use super::{PodError, Record, STOP_FILE, now, start_time};
use peapod_kube::resources::{ContainerRef, PodResources};
use peapod_kube::supervisor::{
    Action, Event, EventRecord, EventType, Millis, PodMachine, ProbeKind, ProbeOutcome, StartStage,
};
use peapod_oci::container::create::{CreateOpts, create};
use peapod_oci::container::lifecycle;
use peapod_oci::spec_template::{HostEntry, host_entries, prepare_host_root};

const PAUSE_ID: &str = sandbox::SANDBOX_ID;
/// Events kept in the record (the oldest go first).
const MAX_EVENTS: usize = 1000;

struct Instance {
    container: String,
    instance: u32,
    oom_before: u64,
}

struct LogPipe {
    fd: OwnedFd,
    key: (String, u32),
    stream: Stream,
}

struct Kill {
    pid: i32,
    container: String,
    deadline: Millis,
    /// The `preStop` hook still running (its child's pid); the stop signal waits for it.
    prestop: Option<i32>,
}

/// What a handler child runs for.
#[derive(Debug, Clone)]
enum Purpose {
    Probe(ProbeKind),
    PostStart,
    PreStop,
    /// Pulling the container's image before this instance can start.
    Pull {
        started: Millis,
    },
}

/// Where a container's image stands when it is to start.
/// An instance created (its process waits for `start`) and not yet started.
#[derive(Debug)]
struct Created {
    pid: i32,
    out_r: OwnedFd,
    err_r: OwnedFd,
    oom_before: u64,
}

enum ImageReady {
    /// `image: host`.
    Host,
    Image(Box<peapod_image::ImageInfo>),
    /// A pull runs in a child; the start resumes when it ends.
    Pulling,
    Failed(Event),
}

/// A probe or hook running in a child of the supervisor.
struct HandlerRun {
    pending: Pending,
    container: String,
    instance: u32,
    purpose: Purpose,
    handler: Handler,
    timeout: Duration,
    /// When the child is killed if it has not answered (its own timeout plus slack).
    deadline: Millis,
    killed: bool,
}

impl HandlerRun {
    /// SIGKILL the child (once); its reap then reports what it had, or a timeout.
    fn kill(&mut self) {
        if !self.killed {
            let _ = nix::sys::signal::kill(
                Pid::from_raw(self.pending.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.killed = true;
        }
    }
}

/// Slack over a probe's timeout before the supervisor kills its child.
const HANDLER_SLACK: Duration = Duration::from_secs(2);
/// kubelet's `minimumGracePeriodInSeconds`: what is left for the stop signal after a
/// `preStop` hook used up the grace period.
const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

/// Everything the supervisor holds.
pub struct Supervisor {
    paths: PodPaths,
    /// `--storage`: where the node object (taints) lives.
    storage: PathBuf,
    /// A tolerated NoExecute taint's `tolerationSeconds` run out at this time.
    evict_at: Option<Millis>,
    pod: Pod,
    resources: PodResources,
    machine: PodMachine,
    record: Record,
    hosts: Vec<HostEntry>,
    node_memory: i64,
    running: HashMap<i32, Instance>,
    pipes: Vec<LogPipe>,
    writers: HashMap<(String, u32), LogWriter>,
    kills: Vec<Kill>,
    handlers: Vec<HandlerRun>,
    /// The image's `StopSignal` per container (SIGTERM when absent).
    stop_signals: HashMap<String, i32>,
    wake: Option<Millis>,
    pause_pid: i32,
    /// The pod's CNI network (`None`: loopback only or `hostNetwork`).
    network: Option<PodNetwork>,
    /// The pin of the pod's network namespace (see [`network`]), made in the host's mount
    /// namespace before the pause container (which joins it) and removed after DEL: `CNI_NETNS` for ADD and
    /// DEL, so the namespace outlives the pause process, and this supervisor too.
    netns: Option<PathBuf>,
    /// The host's mount namespace, where the pin is made and removed (this process's own is
    /// private).
    host_mntns: Option<OwnedFd>,
    /// `status.podIPs` once the network is set up.
    pod_ips: Vec<String>,
    /// A failed ADD is retried at this time, with the crash-loop back-off.
    net_retry: Option<Millis>,
    net_backoff: Duration,
    /// Instances created while the first ADD ran, started once it succeeded.
    precreated: HashMap<(String, u32), Created>,
    /// The first ADD, started as soon as the namespace was pinned, before the pause container
    /// was made; waited for before the containers start, or before DEL in a teardown.
    pending_add: Option<network::PendingAttach>,
}

/// Total memory of the node in bytes (`MemTotal` of /proc/meminfo).
pub fn node_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(i64::MAX)
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(&'a Container, ContainerRef)> {
    let spec = pod.spec.as_ref()?;
    if let Some((i, c)) = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, c)| c.name == name)
    {
        return Some((c, ContainerRef::Init(i)));
    }
    spec.containers
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == name)
        .map(|(i, c)| (c, ContainerRef::App(i)))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), PodError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| PodError::io("pipe", Path::new("pipe"), e.into()))
}

impl Supervisor {
    /// Build the sandbox: directories, /etc files, the pod's /dev/shm, volumes, the pause
    /// container. On error everything made so far is removed by [`Supervisor::teardown`].
    pub fn new(
        paths: PodPaths,
        storage: &Path,
        pod: Pod,
        pause_binary: &Path,
        host_mntns: Option<OwnedFd>,
        pending_add: Option<network::PendingAttach>,
    ) -> Result<Supervisor, PodError> {
        let early = || -> Result<_, PodError> {
            let (spec, resources) = peapod_kube::manifest::to_supervisor(&pod)?;
            let machine =
                PodMachine::new(spec, now()).map_err(|e| PodError::Invalid(e.to_string()))?;
            let network = PodNetwork::load(&paths)?;
            if network.is_some() && (pending_add.is_none() || host_mntns.is_none()) {
                return Err(PodError::Invalid(
                    "pod network: the supervisor was given no ADD or no host mount namespace \
                     (it is started by `pod run`)"
                        .into(),
                ));
            }
            Ok((resources, machine, network))
        };
        let (resources, machine, network) = match early() {
            Ok(v) => v,
            Err(e) => {
                // DEL (by `pod run`'s undo) only once the ADD is over.
                if let Some(p) = pending_add {
                    let _ = p.wait();
                }
                return Err(e);
            }
        };
        let me = std::process::id() as i32;
        let pod_ips = if network.is_some() {
            Vec::new()
        } else {
            vec![sandbox::LOOPBACK_IP.to_string()]
        };
        let net_backoff = machine.spec().backoff.initial;
        let mut sup = Supervisor {
            record: Record {
                machine: machine.clone(),
                events: Vec::new(),
                supervisor_pid: me,
                supervisor_start_time: start_time(me),
                pause_pid: 0,
                supervisor_done: false,
                message: None,
                evicted: None,
                pod_ips: pod_ips.clone(),
            },
            paths,
            storage: storage.to_path_buf(),
            evict_at: None,
            pod,
            resources,
            machine,
            hosts: host_entries(),
            node_memory: node_memory(),
            running: HashMap::new(),
            pipes: Vec::new(),
            writers: HashMap::new(),
            kills: Vec::new(),
            handlers: Vec::new(),
            stop_signals: HashMap::new(),
            wake: None,
            pause_pid: 0,
            network,
            netns: None,
            host_mntns,
            pod_ips,
            net_retry: None,
            net_backoff,
            precreated: HashMap::new(),
            pending_add,
        };
        if let Err(e) = sup.build_sandbox(pause_binary) {
            sup.teardown();
            return Err(e);
        }
        sup.record.pause_pid = sup.pause_pid;
        sup.save();
        Ok(sup)
    }

    fn build_sandbox(&mut self, pause_binary: &Path) -> Result<(), PodError> {
        // The pod's network namespace was pinned, and its ADD started, by `pod run` before it
        // became this supervisor: the plugins' work overlaps all the sandbox's creation. The
        // pause container joins the namespace by the pin. (Pods get no user namespace, so a
        // network namespace made by the host's root is the right owner.)
        if self.network.is_some() {
            self.netns = Some(network::pin_path(&self.paths)?);
        }
        let p = &self.paths;
        let mk = |d: &Path| std::fs::create_dir_all(d).map_err(|e| PodError::io("create", d, e));
        mk(&p.dir.join("etc"))?;
        mk(&p.shm())?;
        let w = |f: &str, data: &[u8]| {
            let path = p.etc(f);
            std::fs::write(&path, data).map_err(|e| PodError::io("write", &path, e))
        };
        w(
            "hostname",
            format!("{}\n", sandbox::hostname(&self.pod)).as_bytes(),
        )?;
        w("hosts", sandbox::etc_hosts(&self.pod, None).as_bytes())?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        w(
            "resolv.conf",
            sandbox::resolv_conf(&host_resolv, &self.pod)?.as_bytes(),
        )?;
        let spec = self.pod.spec.clone().unwrap_or_default();
        if !spec.host_ipc.unwrap_or(false) {
            let opts = format!("mode=1777,size={}", sandbox::SHM_SIZE);
            nix::mount::mount(
                Some("shm"),
                &p.shm(),
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID
                    | nix::mount::MsFlags::MS_NODEV
                    | nix::mount::MsFlags::MS_NOEXEC,
                Some(opts.as_str()),
            )
            .map_err(|e| PodError::io("mount /dev/shm tmpfs at", &p.shm(), e.into()))?;
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(ed) = &v.empty_dir {
                let dir = p.volume(&v.name);
                mk(&dir)?;
                if ed.medium.as_deref() == Some("Memory") {
                    let mut opts = "mode=1777".to_string();
                    if let Some(limit) = &ed.size_limit {
                        let q: peapod_kube::quantity::Quantity = limit.0.parse().map_err(|e| {
                            PodError::Invalid(format!("volume `{}` sizeLimit: {e}", v.name))
                        })?;
                        opts.push_str(&format!(",size={}", q.to_bytes()));
                    }
                    nix::mount::mount(
                        Some("tmpfs"),
                        &dir,
                        Some("tmpfs"),
                        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                        Some(opts.as_str()),
                    )
                    .map_err(|e| PodError::io("mount emptyDir tmpfs at", &dir, e.into()))?;
                }
            } else if let Some(hp) = &v.host_path {
                check_host_path(&v.name, &hp.path, hp.type_.as_deref().unwrap_or(""))?;
            }
        }
        // The pause container.
        let bundle = p.bundle(PAUSE_ID);
        prepare_host_root(&bundle.join("rootfs"), &self.hosts)
            .map_err(|e| PodError::io("create", &bundle.join("rootfs"), e))?;
        let pspec = sandbox::pause_spec(
            &self.pod,
            p,
            pause_binary,
            &self.hosts,
            self.netns.as_deref(),
        );
        write_spec(&bundle, &pspec)?;
        let null = || {
            std::fs::File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| PodError::io("open", Path::new("/dev/null"), e))
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(p.dir.join("pause.log"))
            .map(OwnedFd::from)
            .map_err(|e| PodError::io("open", &p.dir.join("pause.log"), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| PodError::io("dup", &p.dir.join("pause.log"), e))?;
        let opts = CreateOpts {
            bundle,
            stdio: Some([null()?, log, log2]),
            ..CreateOpts::default()
        };
        let st = create(&p.oci_root(), PAUSE_ID, opts)?;
        lifecycle::start(&p.oci_root(), PAUSE_ID)?;
        self.pause_pid = st.pid;
        Ok(())
    }

    /// ADD of the pod's network (when it has one): the pod IP goes into the record,
    /// `/etc/hosts` and, through them, the containers' environment and probes. A failure
    /// (already undone by the plugins' DEL) is kubelet's `FailedCreatePodSandBox`, retried
    /// with the crash-loop back-off. True when the sandbox is ready.
    fn setup_network(&mut self) -> bool {
        let (Some(net), Some(path)) = (self.network.clone(), self.netns.clone()) else {
            return true;
        };
        let res = net.attach(&self.paths, &path);
        self.network_set_up(&net, res)
    }

    /// The first ADD, overlapped with the creation of the instances the pod starts with (the
    /// plugins' work, mostly their `iptables` runs, is most of what a pod network costs):
    /// the ADD runs in a child while those instances are created up to the point where their
    /// process waits for `start`; they are started, as before, only after the ADD succeeded
    /// (or removed if it failed). True when the sandbox is ready.
    fn setup_network_overlapped(&mut self) -> bool {
        let (Some(net), Some(_)) = (self.network.clone(), self.netns.as_ref()) else {
            return true;
        };
        let Some(pending) = self.pending_add.take() else {
            return self.setup_network();
        };
        // The instances SandboxReady starts, asked of a copy of the machine.
        let starts: Vec<(String, u32)> = self
            .machine
            .clone()
            .handle(Event::SandboxReady, now())
            .into_iter()
            .filter_map(|a| match a {
                Action::Start {
                    container,
                    instance,
                } => Some((container, instance)),
                _ => None,
            })
            .collect();
        for (name, instance) in starts {
            if self.may_precreate(&name)
                && let Ok(c) = self.create_instance(&name, instance, false)
            {
                self.precreated.insert((name, instance), c);
            }
            // A failed creation is made again, and reported, by the start proper.
        }
        let res = pending.wait();
        let ready = self.network_set_up(&net, res);
        if !ready {
            self.discard_precreated();
        }
        ready
    }

    /// Remove the instances created during ADD and not started: all of them when ADD failed;
    /// after SandboxReady none is left (the machine asked for the same starts), but should
    /// one be, it does not wait for a `start` that never comes. One whose container runs
    /// meanwhile was replaced by the start proper (same OCI id), so only its pipes go.
    fn discard_precreated(&mut self) {
        for ((name, _), c) in std::mem::take(&mut self.precreated) {
            if !self.running.values().any(|i| i.container == name) {
                let _ = lifecycle::delete(&self.paths.oci_root(), &name, true);
            }
            let _ = waitpid(Pid::from_raw(c.pid), Some(WaitPidFlag::WNOHANG));
        }
    }

    /// Whether `name` may be created before the pod's network is up: its image needs no pull
    /// (a pull is started by the start proper) and nothing of its spec depends on the pod's
    /// IP (the downward API's `status.podIP`/`status.podIPs` in its environment).
    fn may_precreate(&self, name: &str) -> bool {
        let Some((c, _)) = find_container(&self.pod, name) else {
            return false;
        };
        let uses_pod_ip = c.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .is_some_and(|f| f.field_path.starts_with("status.podIP"))
        });
        if uses_pod_ip {
            return false;
        }
        let image = c.image.clone().unwrap_or_default();
        if image == sandbox::HOST_IMAGE {
            return true;
        }
        use peapod_image::{self as image, PullPolicy};
        let Ok(store) = image::Store::open(&self.storage) else {
            return false;
        };
        match image::pull_policy(&image, c.image_pull_policy.as_deref()) {
            Ok(PullPolicy::Always) | Err(_) => false,
            Ok(_) => store.resolve(&image).is_ok_and(|p| p.is_some()),
        }
    }

    /// The outcome of ADD: the pod IP into the record and `/etc/hosts`, or the failure
    /// event and the retry. True when the sandbox is ready.
    fn network_set_up(
        &mut self,
        net: &PodNetwork,
        res: Result<peapod_cni::CniResult, String>,
    ) -> bool {
        match res {
            Ok(result) => {
                self.pod_ips = result
                    .pod_ips(peapod_cni::DEFAULT_IFNAME)
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect();
                self.record.pod_ips = self.pod_ips.clone();
                let hosts = self.paths.etc("hosts");
                let text = sandbox::etc_hosts(&self.pod, self.pod_ips.first().map(String::as_str));
                // Rewritten in place, as kubelet does: instances created while ADD ran have
                // the file bind-mounted already, and none of them runs yet. World-readable
                // (containers may run as any user; build_sandbox made it so) and unsynced,
                // as kubelet's.
                if let Err(e) = std::fs::write(&hosts, text.as_bytes()) {
                    log::error!("write `{}`: {e}", hosts.display());
                }
                true
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create pod sandbox: failed to setup network for sandbox \"{}\": {e}",
                    net.container_id
                );
                log::warn!("{msg}");
                self.record_event(EventType::Warning, "FailedCreatePodSandBox", msg, None);
                self.net_retry = Some(Millis(now().0 + self.net_backoff.as_millis() as u64));
                let max = self.machine.spec().backoff.max;
                self.net_backoff = (self.net_backoff * 2).min(max);
                self.save();
                false
            }
        }
    }

    fn save(&mut self) {
        self.record.machine = self.machine.clone();
        let qos = serde_json::to_value(self.resources.qos_class()).unwrap_or_default();
        let qos = qos.as_str().unwrap_or_default();
        if let Err(e) = self.record.save(&self.paths, &self.pod, qos) {
            log::error!("save pod record: {e}");
        }
    }

    fn handle(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(ev) = queue.pop_front() {
            let actions = self.machine.handle(ev, now());
            for a in actions {
                self.execute(a, &mut queue);
            }
        }
        self.save();
    }

    /// Perform one action; immediate answers are queued as events, in order.
    fn execute(&mut self, action: Action, queue: &mut VecDeque<Event>) {
        match action {
            Action::Start {
                container,
                instance,
            } => self.start_reported(&container, instance, false, queue),
            Action::Kill {
                container,
                instance,
                grace,
                ..
            } => self.kill(&container, instance, grace),
            Action::RunProbe {
                container,
                instance,
                kind,
                timeout,
            } => {
                if let Err(output) = self.run_probe(&container, instance, kind, timeout) {
                    queue.push_back(Event::ProbeResult {
                        container,
                        instance,
                        kind,
                        result: ProbeOutcome::Error,
                        output,
                    });
                }
            }
            Action::ScheduleWake { at } => self.wake = Some(at),
            Action::RecordEvent(e) => {
                peapod_kube::supervisor::record_event(&mut self.record.events, e, MAX_EVENTS)
            }
            Action::PodFinished { phase } => log::info!("pod finished: {phase:?}"),
        }
    }

    /// Start an instance and queue what happened (nothing while its image is being pulled),
    /// then its `postStart` hook.
    fn start_reported(
        &mut self,
        container: &str,
        instance: u32,
        pulled: bool,
        queue: &mut VecDeque<Event>,
    ) {
        let Some(ev) = self.start(container, instance, pulled) else {
            return;
        };
        let started = matches!(ev, Event::ContainerStarted { .. });
        queue.push_back(ev);
        if started && let Err(message) = self.post_start(container, instance) {
            queue.push_back(Event::StartFailed {
                container: container.to_string(),
                instance,
                stage: StartStage::PostStartHook,
                message,
                at: now(),
            });
        }
    }

    /// Append an event of the executor's own (the machine's come as `RecordEvent`).
    fn record_event(
        &mut self,
        type_: EventType,
        reason: &str,
        message: String,
        container: Option<&str>,
    ) {
        let e = EventRecord::new(type_, reason, message, container, now());
        peapod_kube::supervisor::record_event(&mut self.record.events, e, MAX_EVENTS);
    }

    /// kubelet's image manager: the pull policy against the store. `pulled`: a pull for this
    /// start has just succeeded.
    fn image_ready(&mut self, c: &Container, instance: u32, pulled: bool) -> ImageReady {
        use peapod_image::{self as image, PullPolicy};
        let image = c.image.clone().unwrap_or_default();
        if image == sandbox::HOST_IMAGE {
            return ImageReady::Host;
        }
        let fail = |stage, message: String| {
            ImageReady::Failed(Event::StartFailed {
                container: c.name.clone(),
                instance,
                stage,
                message,
                at: now(),
            })
        };
        let looked_up = image::Store::open(&self.storage).and_then(|store| {
            let policy = image::pull_policy(&image, c.image_pull_policy.as_deref())?;
            Ok((policy, store.resolve(&image)?))
        });
        let (policy, present) = match looked_up {
            Ok(r) => r,
            Err(e) => return fail(StartStage::Create, e.to_string()),
        };
        let must_pull = !pulled
            && (policy == PullPolicy::Always
                || (policy == PullPolicy::IfNotPresent && present.is_none()));
        if !must_pull {
            return match present {
                Some(info) => {
                    if !pulled {
                        self.record_event(
                            EventType::Normal,
                            "Pulled",
                            image::already_present_message(&image),
                            Some(&c.name),
                        );
                    }
                    ImageReady::Image(Box::new(info))
                }
                None if policy == PullPolicy::Never => fail(
                    StartStage::ImageNeverPull,
                    image::never_pull_message(&image),
                ),
                None => fail(
                    StartStage::ImagePull,
                    format!("image {image:?} is not in the store after its pull"),
                ),
            };
        }
        self.record_event(
            EventType::Normal,
            "Pulling",
            format!("Pulling image {image:?}"),
            Some(&c.name),
        );
        let pull = Handler::Pull {
            image: image.clone(),
            storage: self.storage.clone(),
        };
        match self.spawn_handler(
            &c.name,
            instance,
            Purpose::Pull { started: now() },
            pull,
            Duration::from_secs(u32::MAX as u64),
            Some(Millis(u64::MAX)),
        ) {
            Ok(_) => ImageReady::Pulling,
            Err(e) => fail(StartStage::ImagePull, e),
        }
    }

    /// Where `httpGet`/`tcpSocket` handlers without `host` connect.
    fn pod_ip(&self) -> &str {
        self.pod_ips
            .first()
            .map(String::as_str)
            .unwrap_or(sandbox::LOOPBACK_IP)
    }

    /// Where handlers of `container` run.
    fn target(&self, container: &str) -> Result<Target, String> {
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let netns = if host_network {
            None
        } else if self.pause_pid > 0 {
            Some(PathBuf::from(format!("/proc/{}/ns/net", self.pause_pid)))
        } else {
            return Err("the pod's network namespace is gone".into());
        };
        Ok(Target {
            netns,
            oci_root: self.paths.oci_root(),
            container: container.to_string(),
        })
    }

    fn spawn_handler(
        &mut self,
        container: &str,
        instance: u32,
        purpose: Purpose,
        handler: Handler,
        timeout: Duration,
        deadline: Option<Millis>,
    ) -> Result<i32, String> {
        let target = self.target(container)?;
        let pending = handler::spawn(&handler, &target, timeout).map_err(|e| e.to_string())?;
        let pid = pending.pid;
        self.handlers.push(HandlerRun {
            pending,
            container: container.to_string(),
            instance,
            purpose,
            handler,
            timeout,
            deadline: deadline
                .unwrap_or_else(|| Millis(now().0 + (timeout + HANDLER_SLACK).as_millis() as u64)),
            killed: false,
        });
        Ok(pid)
    }

    fn run_probe(
        &mut self,
        name: &str,
        instance: u32,
        kind: ProbeKind,
        timeout: Duration,
    ) -> Result<(), String> {
        let (c, _) = find_container(&self.pod, name).ok_or("no such container")?;
        let probe = match kind {
            ProbeKind::Liveness => &c.liveness_probe,
            ProbeKind::Readiness => &c.readiness_probe,
            ProbeKind::Startup => &c.startup_probe,
        }
        .as_ref()
        .ok_or("the container has no such probe")?;
        let h = Handler::from_probe(probe, c, kind.as_str())
            .map_err(|e| e.to_string())?
            .with_pod_ip(self.pod_ip());
        self.spawn_handler(name, instance, Purpose::Probe(kind), h, timeout, None)
            .map(|_| ())
    }

    /// Start the `postStart` hook of a new instance, if it has one. kubelet gives the hook
    /// no timeout; it ends with the container at the latest.
    fn post_start(&mut self, name: &str, instance: u32) -> Result<(), String> {
        let Some((c, _)) = find_container(&self.pod, name) else {
            return Ok(());
        };
        let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return Ok(());
        };
        let h = Handler::from_lifecycle(h, c, "postStart")
            .map_err(|e| e.to_string())?
            .with_pod_ip(self.pod_ip());
        self.spawn_handler(
            name,
            instance,
            Purpose::PostStart,
            h,
            Duration::from_secs(u32::MAX as u64),
            Some(Millis(u64::MAX)),
        )
        .map(|_| ())
    }

    /// Apply the node's NoExecute taints (kubelet's taint manager): evict now, at a time, or
    /// keep running (which cancels an eviction planned earlier).
    fn check_taints(&mut self) {
        use peapod_kube::node::eviction::{self, Eviction};
        if self.record.evicted.is_some() || self.machine.finished().is_some() {
            return;
        }
        let t = now();
        match crate::node::decide_eviction(&self.storage, &self.pod, self.machine.created_at(), t) {
            Ok(Eviction::Keep) => self.evict_at = None,
            Ok(Eviction::At { at, .. }) => self.evict_at = Some(at),
            Ok(Eviction::Now { taint }) => {
                self.evict_at = None;
                let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
                let message = eviction::event_message(ns, &self.paths.name);
                self.record_event(EventType::Normal, eviction::EVENT_REASON, message, None);
                self.record.evicted = Some(eviction::message(&taint));
                self.handle(Event::StopRequested { grace: None });
            }
            Err(e) => log::warn!("read the node's taints: {e}"),
        }
    }

    /// A handler child exited: hand its verdict to whoever waits for it.
    fn handler_done(&mut self, run: HandlerRun) {
        let HandlerRun {
            pending,
            container,
            instance,
            purpose,
            handler,
            timeout,
            ..
        } = run;
        let hook_pid = pending.pid;
        let v = pending.verdict(timeout);
        if let Purpose::Pull { started } = purpose {
            let image = find_container(&self.pod, &container)
                .and_then(|(c, _)| c.image.clone())
                .unwrap_or_default();
            if v.outcome == ProbeOutcome::Success {
                let took = Duration::from_millis(now().0.saturating_sub(started.0));
                self.record_event(
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {}",
                        humantime::format_duration(Duration::from_millis(took.as_millis() as u64))
                    ),
                    Some(&container),
                );
                let mut queue = VecDeque::new();
                self.start_reported(&container, instance, true, &mut queue);
                for ev in queue {
                    self.handle(ev);
                }
            } else {
                self.record_event(
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image {image:?}: {}", v.output),
                    Some(&container),
                );
                self.handle(Event::StartFailed {
                    container,
                    instance,
                    stage: StartStage::ImagePull,
                    message: format!("Failed to pull image {image:?}: {}", v.output),
                    at: now(),
                });
            }
            return;
        }
        let ok = matches!(v.outcome, ProbeOutcome::Success | ProbeOutcome::Warning);
        let hook_error = |what: &str| {
            format!(
                "{} for Container {container:?} in Pod {:?} failed - error: {}",
                handler.describe(),
                self.paths.name,
                if v.output.is_empty() { what } else { &v.output }
            )
        };
        match purpose {
            Purpose::Probe(kind) => self.handle(Event::ProbeResult {
                container,
                instance,
                kind,
                result: v.outcome,
                output: v.output,
            }),
            Purpose::PostStart if !ok => {
                let message = hook_error("the hook failed");
                self.handle(Event::StartFailed {
                    container,
                    instance,
                    stage: StartStage::PostStartHook,
                    message,
                    at: now(),
                })
            }
            Purpose::PostStart | Purpose::Pull { .. } => {}
            Purpose::PreStop => {
                if !ok {
                    let message = hook_error("the hook failed");
                    self.record_event(
                        EventType::Warning,
                        "FailedPreStopHook",
                        message,
                        Some(&container),
                    );
                }
                if let Some(k) = self.kills.iter_mut().find(|k| k.prestop == Some(hook_pid)) {
                    k.prestop = None;
                    k.deadline = k
                        .deadline
                        .max(Millis(now().0 + MIN_GRACE_AFTER_HOOK.as_millis() as u64));
                    let sig = self.stop_signal(&container);
                    let _ = lifecycle::kill(&self.paths.oci_root(), &container, sig, false);
                }
                self.save();
            }
        }
    }

    fn start(&mut self, name: &str, instance: u32, pulled: bool) -> Option<Event> {
        let created = match self.precreated.remove(&(name.to_string(), instance)) {
            Some(c) => c,
            None => match self.create_instance(name, instance, pulled) {
                Ok(c) => c,
                Err(ev) => return ev,
            },
        };
        self.start_created(name, instance, created)
    }

    /// Everything of an instance's start up to the OCI `create` (its process waits for
    /// `start`); `Err(None)` while its image is being pulled.
    fn create_instance(
        &mut self,
        name: &str,
        instance: u32,
        pulled: bool,
    ) -> Result<Created, Option<Event>> {
        let failed = |stage, message| start_failed(name, instance, stage, message);
        let Some((c, which)) = find_container(&self.pod, name) else {
            return Err(Some(failed(
                StartStage::Create,
                format!("container `{name}` is not in the pod"),
            )));
        };
        let c = c.clone();
        let info = match self.image_ready(&c, instance, pulled) {
            ImageReady::Host => None,
            ImageReady::Image(info) => Some(info),
            ImageReady::Pulling => return Err(None),
            ImageReady::Failed(ev) => return Err(Some(ev)),
        };
        let oci = self.paths.oci_root();
        // The previous instance is gone (reaped); its OCI state goes before the id is reused.
        let _ = lifecycle::delete(&oci, name, true);
        let bundle = self.paths.bundle(name);
        let rootfs = bundle.join("rootfs");
        let mounted = match &info {
            None => prepare_host_root(&rootfs, &self.hosts)
                .map_err(|e| PodError::io("create", &rootfs, e)),
            Some(info) => self.mount_image_rootfs(name, info, &rootfs),
        };
        if let Err(e) = mounted {
            return Err(Some(failed(StartStage::Create, e.to_string())));
        }
        let signal = info
            .as_ref()
            .and_then(|i| peapod_image::stop_signal(&i.config))
            .and_then(|s| peapod_oci::signal::parse(&s).ok())
            .unwrap_or(libc::SIGTERM);
        self.stop_signals.insert(name.to_string(), signal);
        let bound = sandbox::sub_path_mounts(&self.pod, &c, &self.paths).and_then(|mounts| {
            mounts.iter().try_for_each(|(i, volume, sub)| {
                super::subpath::bind(volume, sub, &self.paths.sub_path(name, *i))
            })
        });
        if let Err(e) = bound {
            return Err(Some(failed(StartStage::Create, e.to_string())));
        }
        let cx = ContainerContext {
            paths: &self.paths,
            pod_ips: &self.pod_ips,
            pause_pid: self.pause_pid,
            host_entries: &self.hosts,
            node_memory: self.node_memory,
            resources: &self.resources,
            which,
            image: info.as_deref(),
        };
        let prepared =
            sandbox::container_spec(&self.pod, &c, &cx).and_then(|spec| write_spec(&bundle, &spec));
        if let Err(e) = prepared {
            return Err(Some(failed(StartStage::Create, e.to_string())));
        }
        let (out_r, out_w) = match pipe() {
            Ok(p) => p,
            Err(e) => return Err(Some(failed(StartStage::Create, e.to_string()))),
        };
        let (err_r, err_w) = match pipe() {
            Ok(p) => p,
            Err(e) => return Err(Some(failed(StartStage::Create, e.to_string()))),
        };
        let null = match std::fs::File::open("/dev/null") {
            Ok(f) => OwnedFd::from(f),
            Err(e) => return Err(Some(failed(StartStage::Create, e.to_string()))),
        };
        let opts = CreateOpts {
            bundle,
            stdio: Some([null, out_w, err_w]),
            ..CreateOpts::default()
        };
        let st = match create(&oci, name, opts) {
            Ok(st) => st,
            Err(e) => {
                let msg = e.to_string();
                // A missing executable is a start error (exit 128) in kubelet's terms.
                let stage = if msg.contains("executable file not found") {
                    StartStage::Start
                } else {
                    StartStage::Create
                };
                return Err(Some(failed(stage, msg)));
            }
        };
        let oom_before =
            peapod_oci::cgroups::manager(Some(&self.paths.container_cgroup(name)), name)
                .and_then(|cg| cg.oom_kill_count())
                .unwrap_or(0);
        Ok(Created {
            pid: st.pid,
            out_r,
            err_r,
            oom_before,
        })
    }

    /// `start` of an instance [`Supervisor::create_instance`] made, and its logs.
    fn start_created(&mut self, name: &str, instance: u32, created: Created) -> Option<Event> {
        let failed = |stage, message| start_failed(name, instance, stage, message);
        let Created {
            pid,
            out_r,
            err_r,
            oom_before,
        } = created;
        let oci = self.paths.oci_root();
        if let Err(e) = lifecycle::start(&oci, name) {
            let _ = lifecycle::delete(&oci, name, true);
            return Some(failed(StartStage::Start, e.to_string()));
        }
        match LogWriter::create(&self.paths.dir, name, instance) {
            Ok(w) => {
                self.writers.insert((name.to_string(), instance), w);
                for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
                    let _ = nix::fcntl::fcntl(
                        &fd,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    self.pipes.push(LogPipe {
                        fd,
                        key: (name.to_string(), instance),
                        stream,
                    });
                }
            }
            Err(e) => log::error!("logs of `{name}`: {e}"),
        }
        // Like kubelet's container GC: the current and the previous instance keep their logs.
        if let Err(e) = super::logs::prune_instances(&self.paths.dir, name, 2) {
            log::warn!("prune old logs of `{name}`: {e}");
        }
        self.running.insert(
            pid,
            Instance {
                container: name.to_string(),
                instance,
                oom_before,
            },
        );
        Some(Event::ContainerStarted {
            container: name.to_string(),
            instance,
            at: now(),
        })
    }

    /// The signal that stops `container`: its image's `StopSignal`, else SIGTERM.
    fn stop_signal(&self, container: &str) -> i32 {
        self.stop_signals
            .get(container)
            .copied()
            .unwrap_or(libc::SIGTERM)
    }

    /// A fresh writable overlay of the image for this instance (a restarted container gets a
    /// new writable layer, as with containerd): upper and work under the pod directory.
    fn mount_image_rootfs(
        &self,
        name: &str,
        info: &peapod_image::ImageInfo,
        rootfs: &Path,
    ) -> Result<(), PodError> {
        let _ = nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH);
        let dir = self.paths.dir.join("overlay").join(name);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PodError::io("remove", &dir, e));
            }
            _ => {}
        }
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        for d in [&upper, &work, &rootfs.to_path_buf()] {
            std::fs::create_dir_all(d).map_err(|e| PodError::io("create", d, e))?;
        }
        peapod_image::mount_overlay(&info.layer_dirs, Some((&upper, &work)), rootfs)
            .map_err(|e| PodError::Invalid(e.to_string()))
    }

    fn kill(&mut self, name: &str, instance: u32, grace: Duration) {
        let Some((&pid, _)) = self
            .running
            .iter()
            .find(|(_, i)| i.container == name && i.instance == instance)
        else {
            return;
        };
        let deadline = Millis(now().0 + grace.as_millis() as u64);
        if let Some(k) = self.kills.iter_mut().find(|k| k.pid == pid) {
            k.deadline = k.deadline.min(deadline);
            return;
        }
        // kubelet runs `preStop` first (when there is grace to run it in), then signals.
        let pod_ip = self.pod_ip().to_string();
        let hook = find_container(&self.pod, name)
            .and_then(|(c, _)| {
                let h = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
                Some(Handler::from_lifecycle(h, c, "preStop").map(|h| h.with_pod_ip(&pod_ip)))
            })
            .filter(|_| !grace.is_zero());
        let prestop = match hook {
            Some(Ok(h)) => {
                match self.spawn_handler(name, instance, Purpose::PreStop, h, grace, Some(deadline))
                {
                    Ok(pid) => Some(pid),
                    Err(e) => {
                        log::warn!("preStop hook of `{name}`: {e}");
                        None
                    }
                }
            }
            Some(Err(e)) => {
                log::warn!("preStop hook of `{name}`: {e}");
                None
            }
            None => None,
        };
        if prestop.is_none() {
            let _ = lifecycle::kill(&self.paths.oci_root(), name, self.stop_signal(name), false);
        }
        self.kills.push(Kill {
            pid,
            container: name.to_string(),
            deadline,
            prestop,
        });
    }

    fn reap(&mut self) {
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(st) => st,
            };
            let (pid, code) = match st {
                WaitStatus::Exited(p, c) => (p.as_raw(), c),
                WaitStatus::Signaled(p, s, _) => (p.as_raw(), 128 + s as i32),
                _ => continue,
            };
            if let Some(i) = self.handlers.iter().position(|h| h.pending.pid == pid) {
                let run = self.handlers.swap_remove(i);
                self.handler_done(run);
                continue;
            }
            if pid == self.pause_pid {
                self.record.message =
                    Some("the pause process exited: the pod's namespaces are gone".into());
                self.pause_pid = 0;
                self.handle(Event::StopRequested {
                    grace: Some(Duration::ZERO),
                });
                continue;
            }
            let Some(inst) = self.running.remove(&pid) else {
                continue;
            };
            self.kills.retain(|k| k.pid != pid);
            // Probes and hooks of a finished instance have nothing left to check.
            for h in &mut self.handlers {
                if h.container == inst.container && h.instance == inst.instance {
                    h.kill();
                }
            }
            self.drain_logs(&inst.container, inst.instance);
            let oom_after = peapod_oci::cgroups::manager(
                Some(&self.paths.container_cgroup(&inst.container)),
                &inst.container,
            )
            .and_then(|cg| cg.oom_kill_count())
            .unwrap_or(0);
            let _ = lifecycle::delete(&self.paths.oci_root(), &inst.container, true);
            self.handle(Event::ContainerExited {
                container: inst.container,
                instance: inst.instance,
                exit_code: code,
                oom_killed: oom_after > inst.oom_before,
                at: now(),
            });
        }
    }

    /// Copy what a pipe has; false at EOF.
    fn pump(&mut self, idx: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match nix::unistd::read(&self.pipes[idx].fd, &mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    let p = &self.pipes[idx];
                    if let Some(w) = self.writers.get_mut(&p.key)
                        && let Err(e) = w.write(p.stream, &buf[..n], std::time::SystemTime::now())
                    {
                        log::error!("write log: {e}");
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }

    fn drain_logs(&mut self, container: &str, instance: u32) {
        let key = (container.to_string(), instance);
        let mut i = 0;
        while i < self.pipes.len() {
            if self.pipes[i].key == key {
                self.pump(i);
                self.pipes.remove(i);
            } else {
                i += 1;
            }
        }
        if let Some(mut w) = self.writers.remove(&key) {
            let _ = w.flush_partial(std::time::SystemTime::now());
        }
    }

    /// Remove everything the sandbox made on the host; the pod directory (status, logs)
    /// stays until `pod rm`.
    pub fn teardown(&mut self) {
        // DEL while the namespace is still pinned (kubelet tears the network down before it
        // stops the sandbox), then the pin goes; a failure leaves marker and pin for `pod rm`
        // to retry.
        if let Some(p) = self.pending_add.take() {
            // DEL only once the ADD is over (its marker tells DEL it may have run).
            let _ = p.wait();
        }
        let had_pin = self.netns.take().is_some();
        let ns = match self.host_mntns.as_ref() {
            Some(fd) => network::PinNs::Host(fd.as_fd()),
            None => network::PinNs::Own,
        };
        if let Err(e) = network::detach(&self.paths, None, ns) {
            log::warn!("teardown: {e}");
            if had_pin {
                self.record.message = Some(e.to_string());
            }
        }
        let oci = self.paths.oci_root();
        if let Ok(list) = lifecycle::list(&oci) {
            for (st, _) in list {
                if let Err(e) = lifecycle::delete(&oci, &st.id, true) {
                    log::warn!("teardown: {e}");
                }
            }
        }
        // Image rootfs overlays (in this process's mount namespace).
        for name in self.stop_signals.keys() {
            let rootfs = self.paths.bundle(name).join("rootfs");
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        }
        teardown_host(&self.paths, &self.pod);
    }

    /// The event loop; returns when the pod is finished and nothing runs any more.
    pub fn run(mut self, mut ready: Option<std::fs::File>) {
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        let sfd = match mask.thread_block().and_then(|_| {
            SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        }) {
            Ok(f) => f,
            Err(e) => {
                log::error!("signalfd: {e}");
                self.teardown();
                return;
            }
        };
        if self.setup_network_overlapped() {
            self.handle(Event::SandboxReady);
        }
        self.discard_precreated();
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "ok");
        }
        // Building the sandbox touched most of the binary; an idle supervisor needs little of
        // it. Release the read-only pages now and after every quiet period.
        // NoExecute taints: checked now and whenever the node object is replaced.
        let node_watch = watch_node(&self.storage);
        self.check_taints();
        let mut trimmed = now();
        trim_text();
        loop {
            self.reap();
            if self.machine.finished().is_some()
                && self.running.is_empty()
                && self.handlers.is_empty()
            {
                break;
            }
            let t = now();
            for h in &mut self.handlers {
                if h.deadline <= t {
                    h.kill();
                }
            }
            for k in std::mem::take(&mut self.kills) {
                if k.deadline > t || k.prestop.is_some() {
                    // A running preStop hook was killed above; the signal follows its reap.
                    self.kills.push(k);
                } else {
                    let _ =
                        lifecycle::kill(&self.paths.oci_root(), &k.container, libc::SIGKILL, true);
                }
            }
            if self.evict_at.is_some_and(|w| w <= t) {
                self.evict_at = None;
                self.check_taints();
                continue;
            }
            if self.net_retry.is_some_and(|w| w <= t) {
                self.net_retry = None;
                if self.setup_network() {
                    self.handle(Event::SandboxReady);
                }
                continue;
            }
            if self.wake.is_some_and(|w| w <= t) {
                self.wake = None;
                self.handle(Event::Tick);
                continue;
            }
            let next = self
                .kills
                .iter()
                .filter(|k| k.prestop.is_none())
                .map(|k| k.deadline)
                .chain(
                    self.handlers
                        .iter()
                        .filter(|h| !h.killed)
                        .map(|h| h.deadline),
                )
                .chain(self.wake)
                .chain(self.net_retry)
                .chain(self.evict_at)
                .min();
            let timeout = match next {
                Some(at) => PollTimeout::try_from(Duration::from_millis(
                    at.0.saturating_sub(t.0).min(60_000),
                ))
                .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::from(60_000u16),
            };
            let mut fds: Vec<PollFd> = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(w) = &node_watch {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            }
            let skip = fds.len();
            fds.extend(
                self.pipes
                    .iter()
                    .map(|p| PollFd::new(p.fd.as_fd(), PollFlags::POLLIN)),
            );
            let polled = poll(&mut fds, timeout);
            if matches!(polled, Err(e) if e != nix::errno::Errno::EINTR) {
                break;
            }
            if polled == Ok(0)
                && now().0.saturating_sub(trimmed.0) >= TRIM_PERIOD.as_millis() as u64
            {
                trimmed = now();
                trim_text();
            }
            let node_changed =
                node_watch.is_some() && fds[1].revents().is_some_and(|r| !r.is_empty());
            let ready_pipes: Vec<bool> = fds
                .iter()
                .skip(skip)
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            for idx in (0..ready_pipes.len()).rev() {
                if ready_pipes[idx] && !self.pump(idx) {
                    self.pipes.remove(idx);
                }
            }
            if let (true, Some(w)) = (node_changed, &node_watch)
                && w.read_events().is_ok_and(|evs| {
                    evs.iter()
                        .any(|e| e.name.as_deref() == Some(NODE_FILE.as_ref()))
                })
            {
                self.check_taints();
            }
            while let Ok(Some(info)) = sfd.read_signal() {
                if info.ssi_signo as i32 != libc::SIGCHLD {
                    let grace = read_stop_grace(&self.paths);
                    self.handle(Event::StopRequested { grace });
                }
            }
        }
        self.teardown();
        self.record.supervisor_done = true;
        self.save();
    }
}

const NODE_FILE: &str = "node.json";

/// Watch `storage` for a new node object (written by rename, so `IN_MOVED_TO`).
fn watch_node(storage: &Path) -> Option<nix::sys::inotify::Inotify> {
    if let Err(e) = std::fs::create_dir_all(storage) {
        log::warn!(
            "create `{}`: {e}; NoExecute taints are not watched",
            storage.display()
        );
        return None;
    }
    crate::watch_writes(storage)
        .map_err(|e| log::warn!("watch `{}`: {e}", storage.display()))
        .ok()
}

/// How long the supervisor stays quiet before it releases its read-only pages again.
const TRIM_PERIOD: Duration = Duration::from_secs(30);

fn trim_text() {
    if let Err(e) = peapod_sys::release_idle_memory() {
        log::debug!("release read-only pages: {e}");
    }
}

/// `config.json` of a pod container: private (0600), its env may hold secrets.
fn write_spec(bundle: &Path, spec: &oci_spec::runtime::Spec) -> Result<(), PodError> {
    std::fs::create_dir_all(bundle).map_err(|e| PodError::io("create", bundle, e))?;
    let data =
        peapod_oci::json::to_vec(spec, true).map_err(|e| PodError::Invalid(e.to_string()))?;
    crate::write_private(&bundle.join("config.json"), &data)
}

fn read_stop_grace(paths: &PodPaths) -> Option<Duration> {
    let data = std::fs::read(paths.dir.join(STOP_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    v["grace_seconds"].as_u64().map(Duration::from_secs)
}

/// hostPath `type` checks (kubelet `checkType`); `...OrCreate` types create the path.
pub fn check_host_path(volume: &str, path: &str, typ: &str) -> Result<(), PodError> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let bad = |what: &str| {
        Err(PodError::Invalid(format!(
            "volume `{volume}`: hostPath type check failed: {path} is not {what}"
        )))
    };
    use std::os::unix::fs::FileTypeExt;
    match typ {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .create(p)
                    .map_err(|e| PodError::io("create hostPath", p, e))?;
                std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .map_err(|e| PodError::io("chmod hostPath", p, e))?;
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                bad("a directory")
            }
        }
        "Directory" => {
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                bad("a directory")
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| PodError::io("create hostPath parent", parent, e))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| PodError::io("create hostPath", p, e))?;
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                bad("a file")
            }
        }
        "File" => {
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                bad("a file")
            }
        }
        "Socket" => {
            if meta.is_ok_and(|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                bad("a socket file")
            }
        }
        "CharDevice" => {
            if meta.is_ok_and(|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                bad("a character device")
            }
        }
        "BlockDevice" => {
            if meta.is_ok_and(|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                bad("a block device")
            }
        }
        other => Err(PodError::Invalid(format!(
            "volume `{volume}`: unknown hostPath type `{other}`"
        ))),
    }
}

/// Host-side leftovers of a pod: mounts (shm, memory emptyDirs; in the supervisor's mount
/// namespace) and the cgroups of the sandbox and containers (the pod cgroup and the
/// supervisor's leaf go with `pod rm`).
pub fn teardown_host(paths: &PodPaths, pod: &Pod) {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut mounts: Vec<PathBuf> = vec![paths.shm()];
    for v in spec.volumes.iter().flatten() {
        if v.empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() == Some("Memory"))
        {
            mounts.push(paths.volume(&v.name));
        }
    }
    for m in mounts {
        match nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => log::warn!("teardown: unmount `{}`: {e}", m.display()),
        }
    }
    super::cgroup::PodCgroup::of(paths).destroy_children_but_supervisor();
}

/// The supervisor's event for an instance that could not be created or started.
fn start_failed(name: &str, instance: u32, stage: StartStage, message: String) -> Event {
    Event::StartFailed {
        container: name.to_string(),
        instance,
        stage,
        message,
        at: now(),
    }
}
