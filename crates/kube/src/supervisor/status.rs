//! Pod status as kubelet reports it and as `kubectl get pods` prints it.
//!
//! Upstream (kubernetes/kubernetes):
//! - `pkg/kubelet/kubelet_pods.go` `getPhase`: the pod phase from container statuses, init
//!   containers, sidecars and the restart policy.
//! - `pkg/kubelet/status/generate.go`: the `Initialized`, `ContainersReady` and `Ready`
//!   conditions with their reasons and messages.
//! - `pkg/printers/internalversion/printers.go` `printPod`: the READY, STATUS and RESTARTS
//!   columns (`Init:1/2`, `Init:CrashLoopBackOff`, `PodInitializing`, `Completed`, `NotReady`,
//!   `Terminating`, `"3 (5s ago)"`...).
//! - `staging/src/k8s.io/apimachinery/pkg/util/duration/duration.go` `HumanDuration`: AGE.

use serde::{Deserialize, Serialize};

use super::clock::Millis;
use super::spec::{PodSpec, RestartPolicy};

/// Pod phase (`v1.PodPhase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Never produced by kubelet (the control plane sets it); kept for completeness.
    Unknown,
}

impl PodPhase {
    /// The API string.
    pub fn as_str(&self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }

    /// Succeeded or Failed (`IsPodPhaseTerminal`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// `v1.ContainerStateTerminated` (kubelet never sets `signal`, so it is not modelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerStatusUnknown`...
    pub reason: String,
    pub message: String,
    pub started_at: Millis,
    pub finished_at: Millis,
}

/// `v1.ContainerState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting { reason: String, message: String },
    Running { started_at: Millis },
    Terminated(Terminated),
}

impl ContainerState {
    /// The waiting reason, if waiting.
    pub fn waiting_reason(&self) -> Option<&str> {
        match self {
            ContainerState::Waiting { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The termination, if terminated.
    pub fn terminated(&self) -> Option<&Terminated> {
        match self {
            ContainerState::Terminated(t) => Some(t),
            _ => None,
        }
    }

    /// True when running.
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// `v1.ContainerStatus`, the fields the supervisor maintains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    /// `lastState.terminated`.
    pub last_state: Option<Terminated>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: u32,
}

/// Pod condition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionType {
    PodReadyToStartContainers,
    Initialized,
    Ready,
    ContainersReady,
    PodScheduled,
}

impl ConditionType {
    /// The API string.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConditionType::PodReadyToStartContainers => "PodReadyToStartContainers",
            ConditionType::Initialized => "Initialized",
            ConditionType::Ready => "Ready",
            ConditionType::ContainersReady => "ContainersReady",
            ConditionType::PodScheduled => "PodScheduled",
        }
    }

    /// The order kubelet lists them in.
    pub const ALL: [ConditionType; 5] = [
        ConditionType::PodReadyToStartContainers,
        ConditionType::Initialized,
        ConditionType::Ready,
        ConditionType::ContainersReady,
        ConditionType::PodScheduled,
    ];
}

/// A condition's value without its transition time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionValue {
    pub status: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl ConditionValue {
    fn truth() -> ConditionValue {
        ConditionValue {
            status: true,
            reason: None,
            message: None,
        }
    }

    fn falsity(reason: &str, message: Option<String>) -> ConditionValue {
        ConditionValue {
            status: false,
            reason: Some(reason.to_string()),
            message,
        }
    }
}

/// `v1.PodCondition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Millis,
}

/// `v1.PodStatus`, the fields the supervisor maintains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: PodPhase,
    pub conditions: Vec<PodCondition>,
    pub init_container_statuses: Vec<ContainerStatus>,
    pub container_statuses: Vec<ContainerStatus>,
    pub start_time: Option<Millis>,
}

impl PodStatus {
    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: ConditionType) -> Option<&PodCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

fn find<'a>(statuses: &'a [&'a ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().copied().find(|s| s.name == name)
}

/// `getPhase` (kubelet_pods.go). `pod_is_terminal` is true once the pod worker has stopped
/// every container for good (deleted, or completed and killed); `pod_has_initialized` is true
/// once the pod has been initialized at some point.
pub fn get_phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
    pod_has_initialized: bool,
) -> PodPhase {
    let all: Vec<&ContainerStatus> = statuses.iter().chain(init_statuses).collect();
    let mut pending_restartable_init = 0;
    let mut pending_regular_init = 0;
    let mut failed_initialization = 0;
    for (i, c) in spec.init_containers.iter().enumerate() {
        if spec.is_sidecar(i) {
            continue;
        }
        let Some(s) = find(&all, &c.name) else {
            pending_regular_init += 1;
            continue;
        };
        match &s.state {
            ContainerState::Running { .. } => pending_regular_init += 1,
            ContainerState::Terminated(t) => {
                if t.exit_code != 0 {
                    failed_initialization += 1;
                }
            }
            ContainerState::Waiting { .. } => match &s.last_state {
                Some(t) => {
                    if t.exit_code != 0 {
                        failed_initialization += 1;
                    }
                }
                None => pending_regular_init += 1,
            },
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for (i, c) in spec.init_containers.iter().enumerate() {
        if !spec.is_sidecar(i) {
            continue;
        }
        let Some(s) = find(&all, &c.name) else {
            unknown += 1;
            continue;
        };
        match &s.state {
            ContainerState::Running { .. } => {
                if !s.started {
                    pending_restartable_init += 1;
                }
                running += 1;
            }
            // Terminated sidecars are ignored.
            ContainerState::Terminated(_) => {}
            ContainerState::Waiting { .. } => {
                if s.last_state.is_none() {
                    pending_restartable_init += 1;
                }
            }
        }
    }
    for c in &spec.containers {
        let Some(s) = find(&all, &c.name) else {
            unknown += 1;
            continue;
        };
        match &s.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } => {
                if s.last_state.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if failed_initialization > 0 && spec.restart_policy == RestartPolicy::Never {
        return PodPhase::Failed;
    }
    if pending_regular_init > 0 || (pending_restartable_init > 0 && !pod_has_initialized) {
        return PodPhase::Pending;
    }
    if waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 && unknown == 0 {
        return PodPhase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                PodPhase::Succeeded
            } else {
                PodPhase::Failed
            };
        }
        if spec.restart_policy == RestartPolicy::Always {
            return PodPhase::Running;
        }
        if stopped == succeeded {
            return PodPhase::Succeeded;
        }
        if spec.restart_policy == RestartPolicy::Never {
            return PodPhase::Failed;
        }
        return PodPhase::Running;
    }
    PodPhase::Pending
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// `HasAnyRegularContainerStarted`: an app container is running or terminated.
fn any_regular_container_started(spec: &PodSpec, statuses: &[&ContainerStatus]) -> bool {
    statuses.iter().any(|s| {
        spec.containers.iter().any(|c| c.name == s.name)
            && matches!(
                s.state,
                ContainerState::Running { .. } | ContainerState::Terminated(_)
            )
    })
}

/// `GeneratePodInitializedCondition` (status/generate.go).
pub fn initialized_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: PodPhase,
) -> ConditionValue {
    let all: Vec<&ContainerStatus> = init_statuses.iter().chain(statuses).collect();
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for (i, c) in spec.init_containers.iter().enumerate() {
        let Some(s) = find(&all, &c.name) else {
            unknown.push(c.name.as_str());
            continue;
        };
        if spec.is_sidecar(i) {
            if !s.started {
                incomplete.push(c.name.as_str());
            }
            continue;
        }
        if s.state.terminated().is_none_or(|t| t.exit_code != 0) {
            incomplete.push(c.name.as_str());
        }
    }
    if phase == PodPhase::Succeeded && unknown.is_empty() {
        return ConditionValue {
            status: true,
            reason: Some("PodCompleted".into()),
            message: None,
        };
    }
    if any_regular_container_started(spec, &all) {
        return ConditionValue::truth();
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        return ConditionValue::truth();
    }
    ConditionValue::falsity("ContainersNotInitialized", Some(messages.join(", ")))
}

/// `GenerateContainersReadyCondition` (status/generate.go): sidecars and app containers must be
/// ready.
pub fn containers_ready_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: PodPhase,
) -> ConditionValue {
    let all: Vec<&ContainerStatus> = init_statuses.iter().chain(statuses).collect();
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec
        .init_containers
        .iter()
        .enumerate()
        .filter(|(i, _)| spec.is_sidecar(*i))
        .map(|(_, c)| c);
    for c in sidecars.chain(spec.containers.iter()) {
        match find(&all, &c.name) {
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            Some(_) => {}
            None => unknown.push(c.name.as_str()),
        }
    }
    if phase == PodPhase::Succeeded && unknown.is_empty() {
        return ConditionValue::falsity("PodCompleted", None);
    }
    if phase == PodPhase::Failed {
        return ConditionValue::falsity("PodFailed", None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        return ConditionValue::truth();
    }
    ConditionValue::falsity("ContainersNotReady", Some(messages.join(", ")))
}

/// `GeneratePodReadyCondition` without readiness gates: the same as `ContainersReady`.
pub fn ready_condition(containers_ready: &ConditionValue) -> ConditionValue {
    containers_ready.clone()
}

/// One `kubectl get pods` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRow {
    pub name: String,
    pub ready: String,
    pub status: String,
    pub restarts: String,
    pub age: String,
}

/// What `printPod` reads besides the status.
#[derive(Debug, Clone, Copy)]
pub struct PrintInput<'a> {
    pub spec: &'a PodSpec,
    pub status: &'a PodStatus,
    /// `metadata.creationTimestamp`.
    pub created_at: Millis,
    /// `metadata.deletionTimestamp` (set by `pod stop`/`pod rm`).
    pub deletion_requested_at: Option<Millis>,
    /// `status.reason` (e.g. `Evicted`), if any.
    pub reason: Option<&'a str>,
}

/// `translateTimestampSince`: the human duration from `t` (second precision, as a
/// `metav1.Time` has) to `now`.
fn since(t: Millis, now: Millis) -> String {
    human_duration_ms(now.signed_since(t.floor_seconds()))
}

/// kubectl's `printPod` for one pod.
pub fn print_pod(input: PrintInput<'_>, now: Millis) -> PodRow {
    let spec = input.spec;
    let status = input.status;
    let mut restarts: u64 = 0;
    let mut sidecar_restarts: u64 = 0;
    let mut ready_containers = 0;
    let sidecar_count = (0..spec.init_containers.len())
        .filter(|i| spec.is_sidecar(*i))
        .count();
    let total_containers = spec.containers.len() + sidecar_count;
    let mut last_restart: Option<Millis> = None;
    let mut last_sidecar_restart: Option<Millis> = None;
    let mut reason = input
        .reason
        .map_or_else(|| status.phase.as_str().to_string(), str::to_string);

    let is_sidecar = |name: &str| {
        spec.init_containers
            .iter()
            .position(|c| c.name == name)
            .is_some_and(|i| spec.is_sidecar(i))
    };

    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().enumerate() {
        restarts += u64::from(c.restart_count);
        if let Some(t) = &c.last_state {
            last_restart = last_restart.max(Some(t.finished_at));
        }
        let sidecar = is_sidecar(&c.name);
        if sidecar {
            sidecar_restarts += u64::from(c.restart_count);
            if let Some(t) = &c.last_state {
                last_sidecar_restart = last_sidecar_restart.max(Some(t.finished_at));
            }
        }
        match &c.state {
            ContainerState::Terminated(t) if t.exit_code == 0 => continue,
            _ if sidecar && c.started => {
                if c.ready {
                    ready_containers += 1;
                }
                continue;
            }
            ContainerState::Terminated(t) => {
                reason = if t.reason.is_empty() {
                    format!("Init:ExitCode:{}", t.exit_code)
                } else {
                    format!("Init:{}", t.reason)
                };
            }
            ContainerState::Waiting { reason: r, .. }
                if !r.is_empty() && r != "PodInitializing" =>
            {
                reason = format!("Init:{r}");
            }
            _ => {
                reason = format!("Init:{i}/{}", spec.init_containers.len());
            }
        }
        initializing = true;
        break;
    }

    let initialized = status
        .condition(ConditionType::Initialized)
        .is_some_and(|c| c.status);
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().rev() {
            restarts += u64::from(c.restart_count);
            if let Some(t) = &c.last_state {
                last_restart = last_restart.max(Some(t.finished_at));
            }
            match &c.state {
                ContainerState::Waiting { reason: r, .. } if !r.is_empty() => reason = r.clone(),
                ContainerState::Terminated(t) if !t.reason.is_empty() => reason = t.reason.clone(),
                ContainerState::Terminated(t) => reason = format!("ExitCode:{}", t.exit_code),
                ContainerState::Running { .. } if c.ready => {
                    has_running = true;
                    ready_containers += 1;
                }
                _ => {}
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = status
                .condition(ConditionType::Ready)
                .is_some_and(|c| c.status);
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if input.deletion_requested_at.is_some() && !status.phase.is_terminal() {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(t, now)),
        _ => restarts.to_string(),
    };
    PodRow {
        name: spec.name.clone(),
        ready: format!("{ready_containers}/{total_containers}"),
        status: reason,
        restarts,
        age: since(input.created_at, now),
    }
}

/// `duration.HumanDuration` for a signed number of milliseconds: `5s`, `3m20s`, `10m`, `2h5m`,
/// `2d3h`, `3y45d`... ("~2-3 significant figures").
pub fn human_duration_ms(ms: i64) -> String {
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = ms / 60_000;
    if minutes < 10 {
        let s = (ms / 1000) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = ms / 3_600_000;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::spec::ContainerSpec;

    const S: i64 = 1000;

    #[test]
    fn human_durations() {
        let cases = [
            (-3 * S, "<invalid>"),
            (-1500, "0s"),
            (0, "0s"),
            (5 * S, "5s"),
            (119 * S, "119s"),
            (120 * S, "2m"),
            (200 * S, "3m20s"),
            (599 * S, "9m59s"),
            (600 * S, "10m"),
            (179 * 60 * S, "179m"),
            (180 * 60 * S, "3h"),
            (3 * 3600 * S + 5 * 60 * S, "3h5m"),
            (8 * 3600 * S, "8h"),
            (47 * 3600 * S, "47h"),
            (51 * 3600 * S, "2d3h"),
            (48 * 3600 * S, "2d"),
            (8 * 24 * 3600 * S, "8d"),
            (729 * 24 * 3600 * S, "729d"),
            (730 * 24 * 3600 * S, "2y"),
            (775 * 24 * 3600 * S, "2y45d"),
            (9 * 365 * 24 * 3600 * S, "9y"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration_ms(ms), want, "{ms}ms");
        }
    }

    fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: ContainerState::Running {
                started_at: Millis(1000),
            },
            last_state: None,
            ready,
            started: true,
            restart_count: 0,
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: ContainerState::Waiting {
                reason: reason.into(),
                message: String::new(),
            },
            last_state: None,
            ready: false,
            started: false,
            restart_count: 0,
        }
    }

    fn term(exit_code: i32, reason: &str, finished_s: u64) -> Terminated {
        Terminated {
            exit_code,
            reason: reason.into(),
            message: String::new(),
            started_at: Millis(0),
            finished_at: Millis(finished_s * 1000),
        }
    }

    fn terminated(name: &str, exit_code: i32, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: ContainerState::Terminated(term(exit_code, reason, 50)),
            last_state: None,
            ready: false,
            started: false,
            restart_count: 0,
        }
    }

    fn spec(init: &[&str], sidecars: &[&str], apps: &[&str], policy: RestartPolicy) -> PodSpec {
        let mut p = PodSpec::new("p", "u");
        p.restart_policy = policy;
        for n in init {
            let mut c = ContainerSpec::new(*n);
            if sidecars.contains(n) {
                c.restart_policy = Some(RestartPolicy::Always);
            }
            p.init_containers.push(c);
        }
        for n in apps {
            p.containers.push(ContainerSpec::new(*n));
        }
        p
    }

    fn status(
        p: &PodSpec,
        init: Vec<ContainerStatus>,
        apps: Vec<ContainerStatus>,
        terminal: bool,
    ) -> PodStatus {
        let phase = get_phase(p, &init, &apps, terminal, false);
        let init_c = initialized_condition(p, &init, &apps, phase);
        let cr = containers_ready_condition(p, &init, &apps, phase);
        let mut conditions = Vec::new();
        for (t, v) in [
            (ConditionType::Initialized, init_c),
            (ConditionType::Ready, cr.clone()),
            (ConditionType::ContainersReady, cr),
        ] {
            conditions.push(PodCondition {
                type_: t,
                status: v.status,
                reason: v.reason,
                message: v.message,
                last_transition_time: Millis(0),
            });
        }
        PodStatus {
            phase,
            conditions,
            init_container_statuses: init,
            container_statuses: apps,
            start_time: None,
        }
    }

    fn row(p: &PodSpec, st: &PodStatus, now_s: u64) -> PodRow {
        print_pod(
            PrintInput {
                spec: p,
                status: st,
                created_at: Millis(1000),
                deletion_requested_at: None,
                reason: None,
            },
            Millis(now_s * 1000),
        )
    }

    #[test]
    fn phases() {
        let always = spec(&[], &[], &["a", "b"], RestartPolicy::Always);
        let st = status(
            &always,
            vec![],
            vec![running("a", true), waiting("b", "ContainerCreating")],
            false,
        );
        assert_eq!(st.phase, PodPhase::Pending);
        let st = status(
            &always,
            vec![],
            vec![running("a", true), running("b", false)],
            false,
        );
        assert_eq!(st.phase, PodPhase::Running);
        // All stopped under Always: Running (restarting); terminal: by exit codes.
        let done = vec![terminated("a", 0, "Completed"), terminated("b", 1, "Error")];
        assert_eq!(
            status(&always, vec![], done.clone(), false).phase,
            PodPhase::Running
        );
        assert_eq!(
            status(&always, vec![], done.clone(), true).phase,
            PodPhase::Failed
        );
        let never = spec(&[], &[], &["a", "b"], RestartPolicy::Never);
        assert_eq!(
            status(&never, vec![], done.clone(), false).phase,
            PodPhase::Failed
        );
        let on_failure = spec(&[], &[], &["a", "b"], RestartPolicy::OnFailure);
        assert_eq!(
            status(&on_failure, vec![], done, false).phase,
            PodPhase::Running
        );
        let ok = vec![
            terminated("a", 0, "Completed"),
            terminated("b", 0, "Completed"),
        ];
        assert_eq!(
            status(&on_failure, vec![], ok, false).phase,
            PodPhase::Succeeded
        );
        // CrashLoopBackOff (waiting with a last state) counts as stopped.
        let mut crash = waiting("a", "CrashLoopBackOff");
        crash.last_state = Some(term(1, "Error", 10));
        let one = spec(&[], &[], &["a"], RestartPolicy::Always);
        assert_eq!(
            status(&one, vec![], vec![crash], false).phase,
            PodPhase::Running
        );
        // Init containers.
        let init = spec(&["i"], &[], &["a"], RestartPolicy::Never);
        let st = status(
            &init,
            vec![running("i", false)],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        assert_eq!(st.phase, PodPhase::Pending);
        let st = status(
            &init,
            vec![terminated("i", 1, "Error")],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        assert_eq!(st.phase, PodPhase::Failed);
    }

    #[test]
    fn conditions_messages() {
        let p = spec(&["i", "s"], &["s"], &["a", "b"], RestartPolicy::Always);
        let init = vec![running("i", false), waiting("s", "PodInitializing")];
        let apps = vec![
            waiting("a", "PodInitializing"),
            waiting("b", "PodInitializing"),
        ];
        let st = status(&p, init, apps, false);
        let c = st.condition(ConditionType::Initialized).unwrap();
        assert!(!c.status);
        assert_eq!(c.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            c.message.as_deref(),
            Some("containers with incomplete status: [i s]")
        );
        let c = st.condition(ConditionType::ContainersReady).unwrap();
        assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            c.message.as_deref(),
            Some("containers with unready status: [s a b]")
        );
        let init = vec![terminated("i", 0, "Completed"), running("s", true)];
        let st = status(
            &p,
            init,
            vec![running("a", true), running("b", true)],
            false,
        );
        assert!(st.condition(ConditionType::Initialized).unwrap().status);
        assert!(st.condition(ConditionType::Ready).unwrap().status);
    }

    #[test]
    fn kubectl_status_column() {
        // Init:0/2 while the first init container runs.
        let p = spec(&["i1", "i2"], &[], &["a"], RestartPolicy::Always);
        let st = status(
            &p,
            vec![running("i1", false), waiting("i2", "PodInitializing")],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        assert_eq!(row(&p, &st, 10).status, "Init:0/2");
        assert_eq!(row(&p, &st, 10).ready, "0/1");
        // Init:1/2 once the first completed.
        let st = status(
            &p,
            vec![terminated("i1", 0, "Completed"), running("i2", false)],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        assert_eq!(row(&p, &st, 10).status, "Init:1/2");
        // Init:CrashLoopBackOff with restarts.
        let mut crash = waiting("i2", "CrashLoopBackOff");
        crash.last_state = Some(term(1, "Error", 40));
        crash.restart_count = 3;
        let st = status(
            &p,
            vec![terminated("i1", 0, "Completed"), crash],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        let r = row(&p, &st, 100);
        assert_eq!(r.status, "Init:CrashLoopBackOff");
        assert_eq!(r.restarts, "3 (60s ago)");
        // Init:Error for a failed init container that is not restarted.
        let st = status(
            &p,
            vec![
                terminated("i1", 1, "Error"),
                waiting("i2", "PodInitializing"),
            ],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        assert_eq!(row(&p, &st, 10).status, "Init:Error");
        // PodInitializing once init is done and the app container is being created.
        let st = status(
            &p,
            vec![
                terminated("i1", 0, "Completed"),
                terminated("i2", 0, "Completed"),
            ],
            vec![waiting("a", "PodInitializing")],
            false,
        );
        assert_eq!(row(&p, &st, 10).status, "PodInitializing");
    }

    #[test]
    fn kubectl_app_statuses() {
        let p = spec(&[], &[], &["a", "b"], RestartPolicy::Always);
        let st = status(
            &p,
            vec![],
            vec![running("a", true), running("b", false)],
            false,
        );
        let r = row(&p, &st, 200);
        assert_eq!(
            (
                r.ready.as_str(),
                r.status.as_str(),
                r.restarts.as_str(),
                r.age.as_str()
            ),
            ("1/2", "Running", "0", "3m19s")
        );
        // A crash-looping container shows through a running one.
        let mut crash = waiting("b", "CrashLoopBackOff");
        crash.last_state = Some(term(137, "OOMKilled", 95));
        crash.restart_count = 2;
        let st = status(&p, vec![], vec![running("a", true), crash], false);
        let r = row(&p, &st, 100);
        assert_eq!(r.status, "CrashLoopBackOff");
        assert_eq!(r.restarts, "2 (5s ago)");
        // OOMKilled shows as the terminated reason.
        let st = status(
            &p,
            vec![],
            vec![running("a", true), terminated("b", 137, "OOMKilled")],
            false,
        );
        assert_eq!(row(&p, &st, 100).status, "OOMKilled");
        // Completed next to a ready running container: Running or NotReady.
        let st = status(
            &p,
            vec![],
            vec![running("a", true), terminated("b", 0, "Completed")],
            false,
        );
        assert_eq!(row(&p, &st, 100).status, "NotReady");
        // An empty reason prints the exit code; the first container wins (iterated backwards).
        let st = status(
            &p,
            vec![],
            vec![terminated("a", 3, ""), terminated("b", 0, "Completed")],
            false,
        );
        assert_eq!(row(&p, &st, 100).status, "ExitCode:3");
        // All completed under OnFailure: Completed.
        let q = spec(&[], &[], &["a"], RestartPolicy::OnFailure);
        let st = status(&q, vec![], vec![terminated("a", 0, "Completed")], false);
        assert_eq!(st.phase, PodPhase::Succeeded);
        assert_eq!(row(&q, &st, 100).status, "Completed");
        // Deletion: Terminating until the phase is terminal.
        let st = status(
            &p,
            vec![],
            vec![running("a", true), running("b", true)],
            false,
        );
        let r = print_pod(
            PrintInput {
                spec: &p,
                status: &st,
                created_at: Millis(1000),
                deletion_requested_at: Some(Millis(5000)),
                reason: None,
            },
            Millis(9000),
        );
        assert_eq!(r.status, "Terminating");
    }

    #[test]
    fn sidecars_count_in_ready_column() {
        let p = spec(&["s", "i"], &["s"], &["a"], RestartPolicy::Always);
        let st = status(
            &p,
            vec![running("s", true), terminated("i", 0, "Completed")],
            vec![running("a", true)],
            false,
        );
        let r = row(&p, &st, 10);
        assert_eq!(r.ready, "2/2");
        assert_eq!(r.status, "Running");
    }
}
