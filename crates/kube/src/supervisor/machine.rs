//! The per-pod supervisor state machine: `on_event(state, event, now) -> (state, actions)`.
//!
//! It reproduces what kubelet's pod worker does for one pod, event-driven instead of
//! periodically re-synced:
//! - `pkg/kubelet/kuberuntime/kuberuntime_manager.go` `computePodActions`: start, keep, kill;
//!   `KillPod` once no app container runs or will be restarted; `doBackOff` before every start
//!   of a container that has exited before.
//! - `kuberuntime_container.go` `computeInitContainerActions`: init containers one at a time in
//!   spec order, sidecars (`restartPolicy: Always`) started before the next init container
//!   once running and started (startup probe), always restarted, killed on liveness/startup
//!   failure; a failed init container fails the pod under `restartPolicy: Never` and is
//!   restarted otherwise.
//! - `pkg/kubelet/container/helpers.go` `ShouldContainerBeRestarted`: Never / OnFailure (exit
//!   code != 0) / Always, per container when it declares a policy (`ContainerRestartRules`).
//! - `kuberuntime_container.go` `killContainer` / `setTerminationGracePeriod`: the grace period
//!   (deletion override, else the probe's `terminationGracePeriodSeconds` for probe kills,
//!   else the pod's), at least 2s; event `Killing`.
//! - `kuberuntime_termination_order.go`: at termination, sidecars wait for every app container
//!   and for the sidecars after them, within the grace period.
//!
//! Where peapod deviates (deliberately, documented):
//! - container restarts after a liveness/startup kill check back-off against the previous exit,
//!   as kubelet's same-sync restart does, but happen when the executor reports the exit;
//! - probe run counters restart with every container instance (kubelet keeps `resultRun` across
//!   instances, so a new instance can be killed after fewer failures than the threshold);
//! - a `CreateContainerError` is retried after kubelet's pod-worker back-off of 10s
//!   ([`CREATE_RETRY_PERIOD`]) without jitter;
//! - a sidecar's `preStop` hook runs when its turn to stop comes (kubelet starts it at the
//!   beginning of the termination and then waits for the turn);
//! - the `BackOff` event is recorded once per back-off window (kubelet repeats it each sync).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::Backoff;
use super::clock::Millis;
use super::probe::{ContainerProbes, ProbeOutcome, ProbeStatus};
use super::spec::{MINIMUM_GRACE_PERIOD, PodSpec, ProbeKind, RestartPolicy, SpecError};
use super::status::{
    ConditionType, ConditionValue, ContainerState, ContainerStatus, PodCondition, PodPhase, PodRow,
    PodStatus, PrintInput, Terminated, containers_ready_condition, get_phase,
    initialized_condition, print_pod, ready_condition,
};

/// kubelet's pod worker back-off after a failed sync (`backOffPeriod`, pkg/kubelet/kubelet.go),
/// used here to retry a container whose creation failed.
pub const CREATE_RETRY_PERIOD: Duration = Duration::from_secs(10);

/// How long `ErrImagePull` shows before kubelet's next sync reports `ImagePullBackOff`
/// (kubelet re-syncs a pod whose container waits within about a second).
pub const PULL_BACKOFF_SHOWN_AFTER: Duration = Duration::from_secs(1);

/// The exit code containerd reports for a container whose process could not be started.
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// Where a start attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartStage {
    /// Creating the container failed (bad mount, missing volume...): no instance exists.
    /// Waiting reason `CreateContainerError`; retried after [`CREATE_RETRY_PERIOD`].
    Create,
    /// The instance exists but its process could not be started (exec not found...):
    /// `Terminated{exitCode: 128, reason: StartError}` and the normal restart rules.
    Start,
    /// The `postStart` hook failed after the container was reported started: the container is
    /// killed (event `FailedPostStartHook`).
    PostStartHook,
    /// The image is absent and `imagePullPolicy` is `Never`: waiting reason
    /// `ErrImageNeverPull` (message: kubelet's), checked again after [`CREATE_RETRY_PERIOD`].
    ImageNeverPull,
    /// Pulling the image failed: waiting reason `ErrImagePull`, then `ImagePullBackOff` while
    /// the next attempt waits (the crash-loop back-off durations, per container).
    ImagePull,
}

/// What the executor reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The sandbox (namespaces, cgroups, volumes) is ready: containers may start.
    SandboxReady,
    /// `Start{container, instance}` succeeded; the process runs since `at`.
    ContainerStarted {
        container: String,
        instance: u32,
        at: Millis,
    },
    /// `Start{container, instance}` failed at `stage`.
    StartFailed {
        container: String,
        instance: u32,
        stage: StartStage,
        message: String,
        at: Millis,
    },
    /// The instance exited at `at` (reaped). `oom_killed` when the cgroup's `memory.events`
    /// `oom_kill` counter increased for it.
    ContainerExited {
        container: String,
        instance: u32,
        exit_code: i32,
        oom_killed: bool,
        at: Millis,
    },
    /// The outcome of a `RunProbe`.
    ProbeResult {
        container: String,
        instance: u32,
        kind: ProbeKind,
        result: ProbeOutcome,
        output: String,
    },
    /// A `ScheduleWake` time has come (spurious ticks are harmless).
    Tick,
    /// `pod stop` / `pod rm`: terminate the pod, optionally with a `--grace-period` override.
    StopRequested { grace: Option<Duration> },
}

/// Why a container is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillReason {
    LivenessProbe,
    StartupProbe,
    PostStartHookFailed,
    /// `pod stop` / `pod rm`.
    PodStopped,
    /// Every app container finished and none will restart: remaining sidecars are stopped.
    PodCompleted,
    /// An init container failed under `restartPolicy: Never`.
    InitContainerFailed,
}

/// Kubernetes event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// An event to record (`kubectl describe` / `pod inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    /// The container the event is about (`involvedObject.fieldPath`), if any.
    pub container: Option<String>,
    /// When it last happened (`lastTimestamp`).
    pub at: Millis,
    /// How many times it happened (`count`): identical events are one, counted.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    /// When it first happened (`firstTimestamp`), if it happened more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Millis>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl EventRecord {
    pub fn new(
        type_: EventType,
        reason: &str,
        message: String,
        container: Option<&str>,
        at: Millis,
    ) -> Self {
        EventRecord {
            type_,
            reason: reason.to_string(),
            message,
            container: container.map(str::to_string),
            at,
            count: 1,
            first: None,
        }
    }

    /// `firstTimestamp`.
    pub fn first_at(&self) -> Millis {
        self.first.unwrap_or(self.at)
    }
}

/// Record `e` in `events` as kubelet's event recorder does: an event identical to one already
/// there (same container, type, reason and message) is that one again, its count raised and
/// its last time moved to `e`'s (and to the end of the list, which stays in the order of the
/// last times); at most `max` events are kept, the oldest dropped. So a crash loop or a probe
/// failing every second adds no entry after its first, and the record stays small.
pub fn record_event(events: &mut Vec<EventRecord>, e: EventRecord, max: usize) {
    let same = |o: &EventRecord| {
        o.container == e.container
            && o.type_ == e.type_
            && o.reason == e.reason
            && o.message == e.message
    };
    if let Some(i) = events.iter().rposition(same) {
        let mut old = events.remove(i);
        old.first = Some(old.first_at());
        old.count = old.count.saturating_add(e.count);
        old.at = e.at;
        events.push(old);
    } else {
        events.push(e);
    }
    if events.len() > max {
        let cut = events.len() - max;
        events.drain(..cut);
    }
}

/// What the executor must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Create and start a new instance of `container`; answer with `ContainerStarted` or
    /// `StartFailed` carrying the same `instance`.
    Start { container: String, instance: u32 },
    /// Send the stop signal to `instance` (after its `preStop` hook, within `grace`), then
    /// SIGKILL when `grace` runs out; answer with `ContainerExited`. A second `Kill` for the same
    /// instance with a shorter grace shortens the deadline.
    Kill {
        container: String,
        instance: u32,
        grace: Duration,
        reason: KillReason,
    },
    /// Run the probe `kind` against `instance` with `timeout`; answer with `ProbeResult`.
    RunProbe {
        container: String,
        instance: u32,
        kind: ProbeKind,
        timeout: Duration,
    },
    /// Deliver `Tick` at `at`; replaces any earlier `ScheduleWake`.
    ScheduleWake { at: Millis },
    /// Append to the pod's events.
    RecordEvent(EventRecord),
    /// Every container has stopped for good: tear down the sandbox; the phase is final.
    PodFinished { phase: PodPhase },
}

/// The lifecycle of one container's current instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Run {
    /// Never created.
    NotCreated,
    /// `Start` issued, no answer yet.
    Starting {
        instance: u32,
    },
    Running {
        instance: u32,
        started_at: Millis,
    },
    /// The last instance has terminated (its record is `last`).
    Exited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Role {
    Init,
    Sidecar,
    App,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PendingKill {
    instance: u32,
    reason: KillReason,
    /// Restart right after the exit (probe kills with a restarting policy).
    restart: bool,
    deadline: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ctr {
    name: String,
    role: Role,
    /// Index in `spec.init_containers` or `spec.containers`.
    index: usize,
    run: Run,
    next_instance: u32,
    /// Instances that were created (ran, or failed to start): restartCount + 1.
    created: u32,
    last: Option<Terminated>,
    prev: Option<Terminated>,
    backoff: Backoff,
    probes: ContainerProbes,
    kill: Option<PendingKill>,
    /// Waiting reason and message while waiting to (re)start.
    waiting: Option<(String, String)>,
    release_at: Option<Millis>,
    retry_at: Option<Millis>,
    /// Failed image pulls in a row (image pull back-off).
    #[serde(default)]
    pull_failures: u32,
    /// When `ErrImagePull` turns into `ImagePullBackOff`.
    #[serde(default)]
    pull_backoff_at: Option<Millis>,
}

impl Ctr {
    fn is_active(&self) -> bool {
        matches!(self.run, Run::Starting { .. } | Run::Running { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Termination {
    cause: KillReason,
    grace: Duration,
    started: Millis,
    deadline: Millis,
}

/// The supervisor's state for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMachine {
    spec: PodSpec,
    created_at: Millis,
    sandbox_ready: bool,
    start_time: Option<Millis>,
    ctrs: Vec<Ctr>,
    termination: Option<Termination>,
    deletion_requested_at: Option<Millis>,
    finished: Option<PodPhase>,
    ever_initialized: bool,
    conditions: Vec<PodCondition>,
    scheduled_wake: Option<Millis>,
}

/// The functional form of [`PodMachine::handle`] (style guideline 4).
pub fn on_event(mut state: PodMachine, event: Event, now: Millis) -> (PodMachine, Vec<Action>) {
    let actions = state.handle(event, now);
    (state, actions)
}

struct InitPass {
    initialized: bool,
    kill_pod: bool,
    to_start: Vec<usize>,
}

impl PodMachine {
    /// A machine for a validated `spec`, created (`metadata.creationTimestamp`) at `now`.
    /// Nothing starts before [`Event::SandboxReady`].
    pub fn new(spec: PodSpec, now: Millis) -> Result<PodMachine, SpecError> {
        spec.validate()?;
        let mut ctrs = Vec::new();
        for (i, c) in spec.init_containers.iter().enumerate() {
            let role = if spec.is_sidecar(i) {
                Role::Sidecar
            } else {
                Role::Init
            };
            ctrs.push(Ctr::new(c, role, i));
        }
        for (i, c) in spec.containers.iter().enumerate() {
            ctrs.push(Ctr::new(c, Role::App, i));
        }
        let mut machine = PodMachine {
            spec,
            created_at: now,
            sandbox_ready: false,
            start_time: None,
            ctrs,
            termination: None,
            deletion_requested_at: None,
            finished: None,
            ever_initialized: false,
            conditions: Vec::new(),
            scheduled_wake: None,
        };
        machine.update_conditions(now);
        Ok(machine)
    }

    /// The pod this machine runs.
    pub fn spec(&self) -> &PodSpec {
        &self.spec
    }

    /// `metadata.creationTimestamp`.
    pub fn created_at(&self) -> Millis {
        self.created_at
    }

    /// When `pod stop`/`pod rm` was first requested (`metadata.deletionTimestamp`).
    pub fn deletion_requested_at(&self) -> Option<Millis> {
        self.deletion_requested_at
    }

    /// The final phase once every container has stopped for good.
    pub fn finished(&self) -> Option<PodPhase> {
        self.finished
    }

    /// The earliest time a `Tick` is needed, if any.
    pub fn next_wake(&self) -> Option<Millis> {
        self.scheduled_wake
    }

    /// Applies one event at `now` and returns what the executor must do, in order.
    pub fn handle(&mut self, event: Event, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::SandboxReady => {
                if !self.sandbox_ready {
                    self.sandbox_ready = true;
                    self.start_time.get_or_insert(now);
                }
            }
            Event::ContainerStarted {
                container,
                instance,
                at,
            } => self.on_started(&container, instance, at, now, &mut out),
            Event::StartFailed {
                container,
                instance,
                stage,
                message,
                at,
            } => self.on_start_failed(&container, instance, stage, message, at, now, &mut out),
            Event::ContainerExited {
                container,
                instance,
                exit_code,
                oom_killed,
                at,
            } => self.on_exited(
                &container, instance, exit_code, oom_killed, at, now, &mut out,
            ),
            Event::ProbeResult {
                container,
                instance,
                kind,
                result,
                output,
            } => self.on_probe_result(&container, instance, kind, result, &output, now, &mut out),
            Event::Tick => {}
            Event::StopRequested { grace } => {
                self.deletion_requested_at.get_or_insert(now);
                if self.finished.is_none() {
                    self.begin_termination(KillReason::PodStopped, grace, now, &mut out);
                }
            }
        }
        self.reconcile(now, &mut out);
        self.dispatch_probes(now, &mut out);
        self.update_conditions(now);
        self.schedule(now, &mut out);
        out
    }

    // -----------------------------------------------------------------------------------------
    // Event handlers
    // -----------------------------------------------------------------------------------------

    fn find(&self, name: &str) -> Option<usize> {
        self.ctrs.iter().position(|c| c.name == name)
    }

    fn record(
        out: &mut Vec<Action>,
        type_: EventType,
        reason: &str,
        message: String,
        container: &str,
        now: Millis,
    ) {
        out.push(Action::RecordEvent(EventRecord::new(
            type_,
            reason,
            message,
            Some(container),
            now,
        )));
    }

    fn on_started(
        &mut self,
        name: &str,
        instance: u32,
        at: Millis,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(idx) = self.find(name) else { return };
        let c = &mut self.ctrs[idx];
        if c.run != (Run::Starting { instance }) {
            return;
        }
        c.run = Run::Running {
            instance,
            started_at: at,
        };
        c.created += 1;
        c.waiting = None;
        c.retry_at = None;
        c.pull_failures = 0;
        c.pull_backoff_at = None;
        c.probes.on_container_started(instance, at);
        if self.termination.is_some() {
            c.probes.on_terminating();
        }
        // kubelet records both after CreateContainer and StartContainer (messages as of the
        // change that dropped the container name, kubernetes#134043).
        Self::record(
            out,
            EventType::Normal,
            "Created",
            "Container created".into(),
            name,
            now,
        );
        Self::record(
            out,
            EventType::Normal,
            "Started",
            "Container started".into(),
            name,
            now,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_start_failed(
        &mut self,
        name: &str,
        instance: u32,
        stage: StartStage,
        message: String,
        at: Millis,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(idx) = self.find(name) else { return };
        let grace = self.spec.termination_grace_period;
        let c = &mut self.ctrs[idx];
        match stage {
            StartStage::Create | StartStage::Start => {
                if c.run != (Run::Starting { instance }) {
                    return;
                }
                Self::record(
                    out,
                    EventType::Warning,
                    "Failed",
                    format!("Error: {message}"),
                    name,
                    now,
                );
                if stage == StartStage::Create {
                    c.run = if c.created == 0 {
                        Run::NotCreated
                    } else {
                        Run::Exited
                    };
                    c.waiting = Some(("CreateContainerError".into(), message));
                    c.retry_at = Some(now + CREATE_RETRY_PERIOD);
                } else {
                    c.created += 1;
                    c.waiting = None;
                    c.prev = c.last.take();
                    c.last = Some(Terminated {
                        exit_code: START_ERROR_EXIT_CODE,
                        reason: "StartError".into(),
                        message,
                        started_at: at,
                        finished_at: at,
                    });
                    c.run = Run::Exited;
                }
            }
            StartStage::ImageNeverPull | StartStage::ImagePull => {
                if c.run != (Run::Starting { instance }) {
                    return;
                }
                c.run = if c.created == 0 {
                    Run::NotCreated
                } else {
                    Run::Exited
                };
                let (reason, wait) = if stage == StartStage::ImageNeverPull {
                    Self::record(
                        out,
                        EventType::Warning,
                        "ErrImageNeverPull",
                        message.clone(),
                        name,
                        now,
                    );
                    ("ErrImageNeverPull", CREATE_RETRY_PERIOD)
                } else {
                    c.pull_failures += 1;
                    Self::record(
                        out,
                        EventType::Warning,
                        "Failed",
                        "Error: ErrImagePull".into(),
                        name,
                        now,
                    );
                    let config = self.spec.backoff;
                    let wait = config
                        .initial
                        .saturating_mul(1 << (c.pull_failures - 1).min(16))
                        .min(config.max);
                    c.pull_backoff_at = Some(now + PULL_BACKOFF_SHOWN_AFTER);
                    ("ErrImagePull", wait)
                };
                c.waiting = Some((reason.into(), message));
                c.retry_at = Some(now + wait);
            }
            StartStage::PostStartHook => {
                let Run::Running {
                    instance: running, ..
                } = c.run
                else {
                    return;
                };
                if running != instance || c.kill.is_some() {
                    return;
                }
                Self::record(
                    out,
                    EventType::Warning,
                    "FailedPostStartHook",
                    message,
                    name,
                    now,
                );
                self.issue_kill(
                    idx,
                    grace,
                    KillReason::PostStartHookFailed,
                    false,
                    "FailedPostStartHook".into(),
                    now,
                    out,
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_exited(
        &mut self,
        name: &str,
        instance: u32,
        exit_code: i32,
        oom_killed: bool,
        at: Millis,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(idx) = self.find(name) else { return };
        let config = self.spec.backoff;
        let terminating = self.termination.is_some();
        let c = &mut self.ctrs[idx];
        let started_at = match c.run {
            Run::Running {
                instance: i,
                started_at,
            } if i == instance => started_at,
            // Exited before the start was reported: it was created all the same.
            Run::Starting { instance: i } if i == instance => {
                c.created += 1;
                at
            }
            _ => return,
        };
        // containerd's reasons (internal/cri/server/helpers.go).
        let reason = if oom_killed {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        c.prev = c.last.take();
        c.last = Some(Terminated {
            exit_code,
            reason: reason.into(),
            message: String::new(),
            started_at,
            finished_at: at,
        });
        c.run = Run::Exited;
        c.waiting = None;
        c.probes.on_container_stopped();
        let kill = c.kill.take();
        if kill.is_some_and(|k| k.restart) && !terminating {
            // kubelet restarts a probe-killed container in the same sync, and doBackOff looks at
            // the most recent *exited* instance of the pre-kill snapshot: the previous one.
            match c.prev.as_ref().map(|t| t.finished_at) {
                None => self.issue_start(idx, out),
                Some(ts) => {
                    if !c.backoff.is_in_backoff_since(ts, now) {
                        c.backoff.next(&config, ts, now);
                        self.issue_start(idx, out);
                    }
                    // Otherwise that start fails with CrashLoopBackOff and the normal rules
                    // below apply to the instance that just exited.
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_probe_result(
        &mut self,
        name: &str,
        instance: u32,
        kind: ProbeKind,
        result: ProbeOutcome,
        output: &str,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(idx) = self.find(name) else { return };
        let c = &mut self.ctrs[idx];
        if !matches!(c.run, Run::Running { instance: i, .. } if i == instance) {
            return;
        }
        let update = c.probes.on_result(kind, result, output);
        for e in update.events {
            Self::record(out, EventType::Warning, e.reason, e.message, name, now);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Starting and killing
    // -----------------------------------------------------------------------------------------

    fn issue_start(&mut self, idx: usize, out: &mut Vec<Action>) {
        let c = &mut self.ctrs[idx];
        let instance = c.next_instance;
        c.next_instance += 1;
        c.release_at = None;
        c.retry_at = None;
        c.run = Run::Starting { instance };
        out.push(Action::Start {
            container: c.name.clone(),
            instance,
        });
    }

    /// Starts `idx` unless it is active or must wait (`doBackOff`, create retry).
    fn start_container(&mut self, idx: usize, now: Millis, out: &mut Vec<Action>) {
        let config = self.spec.backoff;
        let format_pod = self.spec.format_pod();
        let c = &mut self.ctrs[idx];
        if c.is_active() || c.retry_at.is_some_and(|t| now < t) {
            return;
        }
        // doBackOff: measured from the FinishedAt of the most recent exited instance.
        if c.run == Run::Exited
            && let Some(ts) = c.last.as_ref().map(|t| t.finished_at)
        {
            if c.backoff.is_in_backoff_since(ts, now) {
                let release = c.backoff.release_at(ts).unwrap_or(now);
                if c.release_at != Some(release) || c.waiting.is_none() {
                    c.release_at = Some(release);
                    c.waiting = Some((
                        "CrashLoopBackOff".into(),
                        c.backoff.waiting_message(&c.name, &format_pod),
                    ));
                    let message = format!(
                        "Back-off restarting failed container {} in pod {format_pod}",
                        c.name
                    );
                    let name = c.name.clone();
                    Self::record(out, EventType::Warning, "BackOff", message, &name, now);
                }
                return;
            }
            c.backoff.next(&config, ts, now);
        }
        self.issue_start(idx, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_kill(
        &mut self,
        idx: usize,
        grace: Duration,
        reason: KillReason,
        restart: bool,
        message: String,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let c = &mut self.ctrs[idx];
        let Run::Running { instance, .. } = c.run else {
            return;
        };
        let grace = grace.max(MINIMUM_GRACE_PERIOD);
        let deadline = now + grace;
        // A kill already under way with an earlier deadline stands; a shorter one replaces it.
        if let Some(k) = &c.kill
            && k.instance == instance
            && k.deadline <= deadline
        {
            return;
        }
        c.kill = Some(PendingKill {
            instance,
            reason,
            restart,
            deadline,
        });
        let name = c.name.clone();
        Self::record(out, EventType::Normal, "Killing", message, &name, now);
        out.push(Action::Kill {
            container: name,
            instance,
            grace,
            reason,
        });
    }

    /// Kills `idx` for a failed liveness/startup probe (`computePodActions`).
    fn kill_for_probe(
        &mut self,
        idx: usize,
        kind: ProbeKind,
        restart: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let c = &self.ctrs[idx];
        if c.kill.is_some() {
            return;
        }
        let what = match kind {
            ProbeKind::Startup => "startup",
            _ => "liveness",
        };
        let message = if c.role == Role::Sidecar {
            format!("Init container {} failed {what} probe", c.name)
        } else if restart {
            format!(
                "Container {} failed {what} probe, will be restarted",
                c.name
            )
        } else {
            format!("Container {} failed {what} probe", c.name)
        };
        // setTerminationGracePeriod: the probe's override, else the pod's grace period.
        let spec = match c.role {
            Role::App => &self.spec.containers[c.index],
            _ => &self.spec.init_containers[c.index],
        };
        let grace = spec
            .probe(kind)
            .and_then(|p| p.termination_grace_period_seconds)
            .map_or(self.spec.termination_grace_period, |s| {
                Duration::from_secs(s.max(0) as u64)
            });
        let reason = match kind {
            ProbeKind::Startup => KillReason::StartupProbe,
            _ => KillReason::LivenessProbe,
        };
        self.issue_kill(idx, grace, reason, restart, message, now, out);
    }

    // -----------------------------------------------------------------------------------------
    // The sync: what to start, keep and kill
    // -----------------------------------------------------------------------------------------

    fn reconcile(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.finished.is_some() {
            return;
        }
        // A failed pull shows `ErrImagePull` until the next sync, then the back-off.
        for c in &mut self.ctrs {
            if c.pull_backoff_at.is_some_and(|t| t <= now) {
                c.pull_backoff_at = None;
                if c.waiting.as_ref().is_some_and(|(r, _)| r == "ErrImagePull") {
                    let image = match c.role {
                        Role::App => &self.spec.containers[c.index].image,
                        _ => &self.spec.init_containers[c.index].image,
                    };
                    c.waiting = Some((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image {image:?}"),
                    ));
                }
            }
        }
        if self.termination.is_some() {
            self.drive_termination(now, out);
            return;
        }
        if !self.sandbox_ready {
            return;
        }
        let pass = self.init_pass(now, out);
        if pass.kill_pod {
            self.begin_termination(KillReason::InitContainerFailed, None, now, out);
            return;
        }
        for idx in pass.to_start {
            self.start_container(idx, now, out);
        }
        if !pass.initialized {
            return;
        }
        self.ever_initialized = true;
        let mut keep = 0;
        let mut to_start = Vec::new();
        for idx in 0..self.ctrs.len() {
            let c = &self.ctrs[idx];
            if c.role != Role::App {
                continue;
            }
            match c.run {
                Run::Running { .. } => {
                    if c.kill.is_none()
                        && let Some(kind) = c.probes.kill_reason()
                    {
                        let restart = self.spec.app_restart_policy(c.index) != RestartPolicy::Never;
                        self.kill_for_probe(idx, kind, restart, now, out);
                    }
                    // Still running until the exit is reported.
                    keep += 1;
                }
                Run::Starting { .. } => keep += 1,
                Run::NotCreated => to_start.push(idx),
                Run::Exited => {
                    if self.should_restart_app(idx) {
                        to_start.push(idx);
                    }
                }
            }
        }
        if keep == 0 && to_start.is_empty() {
            // KillPod: nothing runs and nothing will; sidecars are not restarted any more.
            self.begin_termination(KillReason::PodCompleted, None, now, out);
            return;
        }
        for idx in to_start {
            self.start_container(idx, now, out);
        }
    }

    /// `ShouldContainerBeRestarted` for an exited app container.
    fn should_restart_app(&self, idx: usize) -> bool {
        let c = &self.ctrs[idx];
        match self.spec.app_restart_policy(c.index) {
            RestartPolicy::Always => true,
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => c.last.as_ref().is_some_and(|t| t.exit_code != 0),
        }
    }

    /// `computeInitContainerActions`: which init containers and sidecars to start or kill, and
    /// whether the pod is initialized. Iterates in reverse, like kubelet, so the furthest
    /// progress decides.
    fn init_pass(&mut self, now: Millis, out: &mut Vec<Action>) -> InitPass {
        let inits: Vec<usize> = (0..self.ctrs.len())
            .filter(|i| self.ctrs[*i].role != Role::App)
            .collect();
        if inits.is_empty() {
            return InitPass {
                initialized: true,
                kill_pod: false,
                to_start: Vec::new(),
            };
        }
        let app_active = self
            .ctrs
            .iter()
            .any(|c| c.role == Role::App && c.is_active());
        let mut pod_has_initialized = app_active;
        let mut previously_initialized = app_active;
        let mut to_start = Vec::new();
        let last = inits.len() - 1;
        for (pos, &idx) in inits.iter().enumerate().rev() {
            let sidecar = self.ctrs[idx].role == Role::Sidecar;
            if self.ctrs[idx].run == Run::NotCreated {
                if previously_initialized && sidecar {
                    to_start.push(idx);
                }
                continue;
            }
            if previously_initialized && !sidecar {
                continue;
            }
            match self.ctrs[idx].run {
                Run::NotCreated | Run::Starting { .. } => {}
                Run::Running { .. } if !sidecar => {}
                Run::Running { .. } => {
                    let c = &self.ctrs[idx];
                    let startup = c.probes.result(ProbeKind::Startup);
                    let startup_ok = match startup {
                        None | Some(ProbeStatus::Success) => true,
                        Some(ProbeStatus::Unknown) => false,
                        Some(ProbeStatus::Failure) => {
                            self.kill_for_probe(idx, ProbeKind::Startup, true, now, out);
                            false
                        }
                    };
                    if startup_ok {
                        if pos == last {
                            pod_has_initialized = true;
                        } else if !previously_initialized {
                            to_start.push(inits[pos + 1]);
                        }
                        let c = &self.ctrs[idx];
                        if c.probes.result(ProbeKind::Liveness) == Some(ProbeStatus::Failure) {
                            self.kill_for_probe(idx, ProbeKind::Liveness, true, now, out);
                        }
                    }
                }
                Run::Exited => {
                    let c = &self.ctrs[idx];
                    if sidecar {
                        to_start.push(idx);
                    } else if c
                        .last
                        .as_ref()
                        .is_some_and(|t| t.exit_code != 0 || t.reason == "OOMKilled")
                    {
                        if self.spec.restart_policy == RestartPolicy::Never {
                            return InitPass {
                                initialized: false,
                                kill_pod: true,
                                to_start: Vec::new(),
                            };
                        }
                        to_start.push(idx);
                    } else if pos == last {
                        pod_has_initialized = true;
                    } else {
                        to_start.push(inits[pos + 1]);
                    }
                }
            }
            previously_initialized = true;
        }
        if !previously_initialized {
            to_start.push(inits[0]);
        }
        to_start.sort_unstable();
        to_start.dedup();
        InitPass {
            initialized: pod_has_initialized,
            kill_pod: false,
            to_start,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Termination
    // -----------------------------------------------------------------------------------------

    fn begin_termination(
        &mut self,
        cause: KillReason,
        grace: Option<Duration>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let grace = grace.unwrap_or(self.spec.termination_grace_period);
        let deadline = now + grace;
        match &mut self.termination {
            Some(t) => {
                if deadline < t.deadline {
                    *t = Termination {
                        cause: t.cause,
                        grace,
                        started: now,
                        deadline,
                    };
                }
                if cause == KillReason::PodStopped {
                    t.cause = cause;
                }
            }
            None => {
                self.termination = Some(Termination {
                    cause,
                    grace,
                    started: now,
                    deadline,
                });
            }
        }
        for c in &mut self.ctrs {
            c.waiting = None;
            c.release_at = None;
            c.retry_at = None;
            if let Some(k) = &mut c.kill {
                k.restart = false;
            }
            c.probes.on_terminating();
        }
        self.drive_termination(now, out);
    }

    fn drive_termination(&mut self, now: Millis, out: &mut Vec<Action>) {
        let Some(term) = self.termination else { return };
        let message = |name: &str| format!("Stopping container {name}");
        // Everything but sidecars is killed at once with the full grace period.
        for idx in 0..self.ctrs.len() {
            if self.ctrs[idx].role != Role::Sidecar {
                let name = self.ctrs[idx].name.clone();
                self.issue_kill(idx, term.grace, term.cause, false, message(&name), now, out);
            }
        }
        // Sidecars wait for every app container and for the sidecars after them, at most until
        // the grace period is over; they get what is left of it (whole seconds, at least 2s).
        let apps_active = self
            .ctrs
            .iter()
            .any(|c| c.role == Role::App && c.is_active());
        let mut later_active = false;
        for idx in (0..self.ctrs.len()).rev() {
            if self.ctrs[idx].role != Role::Sidecar {
                continue;
            }
            let active = self.ctrs[idx].is_active();
            if (!apps_active && !later_active) || now >= term.deadline {
                let waited = Duration::from_secs(now.saturating_since(term.started).as_secs());
                let remaining = term.grace.saturating_sub(waited);
                let name = self.ctrs[idx].name.clone();
                self.issue_kill(idx, remaining, term.cause, false, message(&name), now, out);
            }
            later_active |= active;
        }
        if !self.ctrs.iter().any(Ctr::is_active) {
            self.finish(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        let (init, apps) = self.container_statuses();
        let phase = get_phase(&self.spec, &init, &apps, true, self.ever_initialized);
        // TerminatePod: a terminated pod always ends in a terminal phase.
        let phase = if phase.is_terminal() {
            phase
        } else {
            PodPhase::Failed
        };
        self.finished = Some(phase);
        out.push(Action::PodFinished { phase });
    }

    // -----------------------------------------------------------------------------------------
    // Probes, conditions, timers
    // -----------------------------------------------------------------------------------------

    fn dispatch_probes(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.finished.is_some() {
            return;
        }
        for c in &mut self.ctrs {
            if !matches!(c.run, Run::Running { .. }) {
                continue;
            }
            for due in c.probes.take_due(now) {
                out.push(Action::RunProbe {
                    container: c.name.clone(),
                    instance: due.instance,
                    kind: due.kind,
                    timeout: due.timeout,
                });
            }
        }
    }

    fn schedule(&mut self, now: Millis, out: &mut Vec<Action>) {
        let mut wake: Option<Millis> = None;
        let mut consider = |t: Option<Millis>| {
            if let Some(t) = t.filter(|t| *t > now) {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        if self.finished.is_none() {
            for c in &self.ctrs {
                consider(c.release_at);
                consider(c.retry_at);
                consider(c.pull_backoff_at);
                if matches!(c.run, Run::Running { .. }) {
                    consider(c.probes.next_wake());
                }
            }
            if let Some(t) = self.termination {
                let sidecar_waiting = self
                    .ctrs
                    .iter()
                    .any(|c| c.role == Role::Sidecar && c.kill.is_none() && c.is_active());
                if sidecar_waiting {
                    consider(Some(t.deadline));
                }
            }
        }
        if wake != self.scheduled_wake {
            if let Some(at) = wake {
                out.push(Action::ScheduleWake { at });
            }
            self.scheduled_wake = wake;
        }
    }

    fn update_conditions(&mut self, now: Millis) {
        let status = self.compute_status();
        let (init, apps) = (&status.init_container_statuses, &status.container_statuses);
        let initialized = initialized_condition(&self.spec, init, apps, status.phase);
        let containers_ready = containers_ready_condition(&self.spec, init, apps, status.phase);
        let ready = ready_condition(&containers_ready);
        let sandbox = ConditionValue {
            status: self.sandbox_ready && self.finished.is_none(),
            reason: None,
            message: None,
        };
        let scheduled = ConditionValue {
            status: true,
            reason: None,
            message: None,
        };
        let values = [
            (ConditionType::PodReadyToStartContainers, sandbox),
            (ConditionType::Initialized, initialized),
            (ConditionType::Ready, ready),
            (ConditionType::ContainersReady, containers_ready),
            (ConditionType::PodScheduled, scheduled),
        ];
        let mut next = Vec::new();
        for (type_, v) in values {
            // The status manager keeps lastTransitionTime while the status is unchanged.
            let since = match self.conditions.iter().find(|c| c.type_ == type_) {
                Some(old) if old.status == v.status => old.last_transition_time,
                _ if type_ == ConditionType::PodScheduled => self.created_at,
                _ => now,
            };
            next.push(PodCondition {
                type_,
                status: v.status,
                reason: v.reason,
                message: v.message,
                last_transition_time: since,
            });
        }
        self.conditions = next;
    }

    // -----------------------------------------------------------------------------------------
    // Status
    // -----------------------------------------------------------------------------------------

    fn container_status(&self, c: &Ctr) -> ContainerStatus {
        let default_reason = if self.spec.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let waiting = |fallback: &str| match &c.waiting {
            Some((reason, message)) => ContainerState::Waiting {
                reason: reason.clone(),
                message: message.clone(),
            },
            None => ContainerState::Waiting {
                reason: fallback.to_string(),
                message: String::new(),
            },
        };
        let (state, last_state) = match c.run {
            Run::NotCreated => (waiting(default_reason), None),
            Run::Starting { .. } if c.created == 0 => (waiting(default_reason), None),
            Run::Starting { .. } => (waiting("ContainerCreating"), c.last.clone()),
            Run::Running { started_at, .. } => {
                (ContainerState::Running { started_at }, c.last.clone())
            }
            Run::Exited => match (&c.waiting, &c.last) {
                (None, Some(last)) => (ContainerState::Terminated(last.clone()), c.prev.clone()),
                _ => (waiting("ContainerCreating"), c.last.clone()),
            },
        };
        // Regular init containers are ready once they completed (UpdatePodStatus).
        let ready = if c.role == Role::Init {
            state.terminated().is_some_and(|t| t.exit_code == 0)
        } else {
            c.probes.ready()
        };
        ContainerStatus {
            name: c.name.clone(),
            state,
            last_state,
            ready,
            started: c.probes.started(),
            restart_count: c.created.saturating_sub(1),
        }
    }

    fn container_statuses(&self) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
        let mut init = Vec::new();
        let mut apps = Vec::new();
        for c in &self.ctrs {
            let s = self.container_status(c);
            if c.role == Role::App {
                apps.push(s);
            } else {
                init.push(s);
            }
        }
        (init, apps)
    }

    fn compute_status(&self) -> PodStatus {
        let (init, apps) = self.container_statuses();
        let phase = match self.finished {
            Some(phase) => phase,
            None => get_phase(&self.spec, &init, &apps, false, self.ever_initialized),
        };
        PodStatus {
            phase,
            conditions: self.conditions.clone(),
            init_container_statuses: init,
            container_statuses: apps,
            start_time: self.start_time,
        }
    }

    /// The pod's status as of the last event.
    pub fn status(&self) -> PodStatus {
        self.compute_status()
    }

    /// The `kubectl get pods` row at `now`.
    pub fn row(&self, now: Millis) -> PodRow {
        let status = self.compute_status();
        print_pod(
            PrintInput {
                spec: &self.spec,
                status: &status,
                created_at: self.created_at,
                deletion_requested_at: self.deletion_requested_at,
                reason: None,
            },
            now,
        )
    }
}

impl Ctr {
    fn new(spec: &super::spec::ContainerSpec, role: Role, index: usize) -> Ctr {
        Ctr {
            name: spec.name.clone(),
            role,
            index,
            run: Run::NotCreated,
            next_instance: 0,
            created: 0,
            last: None,
            prev: None,
            backoff: Backoff::default(),
            probes: ContainerProbes::new(spec),
            kill: None,
            waiting: None,
            release_at: None,
            retry_at: None,
            pull_failures: 0,
            pull_backoff_at: None,
        }
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    fn ev(reason: &str, message: &str, c: Option<&str>, at: u64) -> EventRecord {
        EventRecord::new(EventType::Normal, reason, message.into(), c, Millis(at))
    }

    /// A crash loop for an hour adds no entry after its first events: identical ones are
    /// counted, as kubelet's recorder does, and the list stays in the order of last times.
    #[test]
    fn identical_events_are_counted_not_repeated() {
        let mut evs = Vec::new();
        for i in 0..3600 {
            record_event(
                &mut evs,
                ev("Started", "Container started", Some("a"), i * 1000),
                1000,
            );
            record_event(
                &mut evs,
                ev(
                    "BackOff",
                    "Back-off restarting failed container a",
                    Some("a"),
                    i * 1000 + 1,
                ),
                1000,
            );
        }
        record_event(
            &mut evs,
            ev("Started", "Container started", Some("b"), 5),
            1000,
        );
        let got: Vec<_> = evs
            .iter()
            .map(|e| {
                (
                    e.reason.as_str(),
                    e.container.as_deref(),
                    e.count,
                    e.first_at().0,
                    e.at.0,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Started", Some("a"), 3600, 0, 3_599_000),
                ("BackOff", Some("a"), 3600, 1, 3_599_001),
                ("Started", Some("b"), 1, 5, 5),
            ]
        );
        // A different message is a different event.
        record_event(&mut evs, ev("BackOff", "other", Some("a"), 9), 1000);
        assert_eq!(evs.len(), 4);
        // Distinct events are bounded: the oldest go.
        for i in 0..10 {
            record_event(&mut evs, ev("X", &i.to_string(), None, 10 + i), 5);
        }
        assert_eq!(evs.len(), 5);
        assert_eq!(evs[0].message, "5");
    }

    /// Records written before counting existed (no `count`, no `first`) still load.
    #[test]
    fn old_records_load_with_a_count_of_one() {
        let e: EventRecord = serde_json::from_str(
            r#"{"type_":"Normal","reason":"Started","message":"m","container":null,"at":7}"#,
        )
        .unwrap();
        assert_eq!((e.count, e.first_at()), (1, Millis(7)));
        let s = serde_json::to_string(&e).unwrap();
        assert!(!s.contains("count") && !s.contains("first"), "{s}");
    }
}
