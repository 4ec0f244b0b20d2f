//! Long simulated runs of the pod state machine against a scripted fake executor.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::backoff::BackoffConfig;
use super::clock::Millis;
use super::machine::{Action, Event, EventType, KillReason, PodMachine, StartStage};
use super::probe::ProbeOutcome;
use super::spec::{ContainerSpec, PodSpec, ProbeKind, ProbeSpec, RestartPolicy};
use super::status::{ConditionType, ContainerState, PodPhase};

/// How one container instance behaves once started.
#[derive(Debug, Clone, Copy)]
enum Life {
    /// Exits by itself after the duration.
    Exit {
        after: Duration,
        code: i32,
        oom: bool,
    },
    /// Runs until killed.
    Forever,
    /// Its process cannot be started.
    FailStart,
    /// It cannot even be created.
    FailCreate,
    /// Its image cannot be found or pulled.
    FailImage(StartStage),
}

fn exit_after(secs: u64, code: i32) -> Life {
    Life::Exit {
        after: Duration::from_secs(secs),
        code,
        oom: false,
    }
}

type LifeFn = Box<dyn Fn(u32) -> Life>;
/// A queue position: (time, insertion sequence).
type QueueKey = (Millis, u64);
/// A running instance: its start time and its scheduled exit, if any.
type Instance = (Millis, Option<QueueKey>);
type ProbeFn = Box<dyn Fn(&str, ProbeKind, u32, Duration) -> ProbeOutcome>;

struct Sim {
    m: PodMachine,
    now: Millis,
    queue: BTreeMap<QueueKey, Event>,
    seq: u64,
    wake: Option<Millis>,
    lives: HashMap<String, LifeFn>,
    probe: ProbeFn,
    /// Time a container takes to exit after its stop signal.
    stop_delay: Duration,
    /// (container, instance) -> (start time, queue key of its exit, if scheduled).
    running: HashMap<(String, u32), Instance>,
    log: Vec<(Millis, Action)>,
}

fn s(secs: u64) -> Millis {
    Millis(secs * 1000)
}

impl Sim {
    fn new(spec: PodSpec) -> Sim {
        let m = PodMachine::new(spec, Millis(0)).expect("valid spec");
        Sim {
            m,
            now: Millis(0),
            queue: BTreeMap::new(),
            seq: 0,
            wake: None,
            lives: HashMap::new(),
            probe: Box::new(|_, _, _, _| ProbeOutcome::Success),
            stop_delay: Duration::from_secs(1),
            running: HashMap::new(),
            log: Vec::new(),
        }
    }

    fn life(mut self, container: &str, f: impl Fn(u32) -> Life + 'static) -> Sim {
        self.lives.insert(container.to_string(), Box::new(f));
        self
    }

    fn probes(
        mut self,
        f: impl Fn(&str, ProbeKind, u32, Duration) -> ProbeOutcome + 'static,
    ) -> Sim {
        self.probe = Box::new(f);
        self
    }

    fn push(&mut self, at: Millis, event: Event) -> QueueKey {
        self.seq += 1;
        let key = (at, self.seq);
        self.queue.insert(key, event);
        key
    }

    fn deliver(&mut self, event: Event) {
        let actions = self.m.handle(event, self.now);
        for a in actions {
            self.log.push((self.now, a.clone()));
            self.act(a);
        }
    }

    fn act(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Start {
                container,
                instance,
            } => {
                let life = self
                    .lives
                    .get(&container)
                    .map_or(Life::Forever, |f| f(instance));
                match life {
                    Life::FailImage(stage) => {
                        self.push(
                            now,
                            Event::StartFailed {
                                container,
                                instance,
                                stage,
                                message: "no image".into(),
                                at: now,
                            },
                        );
                    }
                    Life::FailCreate | Life::FailStart => {
                        let stage = if matches!(life, Life::FailCreate) {
                            StartStage::Create
                        } else {
                            StartStage::Start
                        };
                        self.push(
                            now,
                            Event::StartFailed {
                                container,
                                instance,
                                stage,
                                message: "exec: \"nope\": executable file not found in $PATH"
                                    .into(),
                                at: now,
                            },
                        );
                    }
                    Life::Forever | Life::Exit { .. } => {
                        self.push(
                            now,
                            Event::ContainerStarted {
                                container: container.clone(),
                                instance,
                                at: now,
                            },
                        );
                        let exit = match life {
                            Life::Exit { after, code, oom } => {
                                let at = now + after;
                                Some(self.push(
                                    at,
                                    Event::ContainerExited {
                                        container: container.clone(),
                                        instance,
                                        exit_code: code,
                                        oom_killed: oom,
                                        at,
                                    },
                                ))
                            }
                            _ => None,
                        };
                        self.running.insert((container, instance), (now, exit));
                    }
                }
            }
            Action::Kill {
                container,
                instance,
                grace,
                ..
            } => {
                let Some((_, exit)) = self.running.get(&(container.clone(), instance)).copied()
                else {
                    return;
                };
                let (delay, code) = if self.stop_delay < grace {
                    (self.stop_delay, 143)
                } else {
                    (grace, 137)
                };
                let at = now + delay;
                if let Some(key) = exit {
                    if key.0 <= at {
                        return;
                    }
                    self.queue.remove(&key);
                }
                let key = self.push(
                    at,
                    Event::ContainerExited {
                        container: container.clone(),
                        instance,
                        exit_code: code,
                        oom_killed: false,
                        at,
                    },
                );
                self.running.insert((container, instance), (now, Some(key)));
            }
            Action::RunProbe {
                container,
                instance,
                kind,
                ..
            } => {
                let started = self
                    .running
                    .get(&(container.clone(), instance))
                    .map_or(now, |r| r.0);
                let result =
                    (self.probe)(&container, kind, instance, now.saturating_since(started));
                self.push(
                    now,
                    Event::ProbeResult {
                        container,
                        instance,
                        kind,
                        result,
                        output: "probe output".into(),
                    },
                );
            }
            Action::ScheduleWake { at } => self.wake = Some(at),
            Action::RecordEvent(_) | Action::PodFinished { .. } => {}
        }
    }

    fn start(mut self) -> Sim {
        self.deliver(Event::SandboxReady);
        self
    }

    /// Processes everything due up to and including `until`.
    fn run_until(&mut self, until: Millis) {
        loop {
            let next_event = self.queue.keys().next().copied();
            let next = match (next_event, self.wake) {
                (Some((t, _)), Some(w)) => t.min(w),
                (Some((t, _)), None) => t,
                (None, Some(w)) => w,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if let Some(key) = next_event.filter(|k| k.0 == next) {
                let event = self.queue.remove(&key).expect("queued event");
                if let Event::ContainerExited {
                    container,
                    instance,
                    ..
                } = &event
                {
                    self.running.remove(&(container.clone(), *instance));
                }
                self.deliver(event);
            } else {
                self.wake = None;
                self.deliver(Event::Tick);
            }
        }
        self.now = until;
    }

    fn stop(&mut self, grace: Option<Duration>) {
        self.deliver(Event::StopRequested { grace });
    }

    fn starts(&self, container: &str) -> Vec<Millis> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Start { container: c, .. } if c == container => Some(*t),
                _ => None,
            })
            .collect()
    }

    fn kills(&self) -> Vec<(Millis, String, Duration, KillReason)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Kill {
                    container,
                    grace,
                    reason,
                    ..
                } => Some((*t, container.clone(), *grace, *reason)),
                _ => None,
            })
            .collect()
    }

    fn events(&self, reason: &str) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::RecordEvent(e) if e.reason == reason => Some(e.message.clone()),
                _ => None,
            })
            .collect()
    }

    fn probe_runs(&self, container: &str, kind: ProbeKind) -> Vec<Millis> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::RunProbe {
                    container: c,
                    kind: k,
                    ..
                } if c == container && *k == kind => Some(*t),
                _ => None,
            })
            .collect()
    }

    fn finished(&self) -> Option<PodPhase> {
        self.log.iter().find_map(|(_, a)| match a {
            Action::PodFinished { phase } => Some(*phase),
            _ => None,
        })
    }

    fn status_col(&self) -> String {
        self.m.row(self.now).status
    }
}

fn pod(name: &str, policy: RestartPolicy, apps: &[&str]) -> PodSpec {
    let mut p = PodSpec::new(name, "uid-1");
    p.restart_policy = policy;
    for a in apps {
        p.containers.push(ContainerSpec::new(*a));
    }
    p
}

/// Gaps between consecutive starts of `container`, in whole seconds.
fn restart_delays(sim: &Sim, container: &str) -> Vec<u64> {
    let starts = sim.starts(container);
    starts
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) / 1000)
        .collect()
}

#[test]
fn crash_loop_for_two_simulated_hours() {
    // Each instance runs 1s and fails. kubelet restarts the first failure at once (no back-off
    // entry yet), then waits 10, 20, 40, 80, 160, 300, 300... seconds after each exit.
    let mut sim = Sim::new(pod("crash", RestartPolicy::Always, &["app"]))
        .life("app", |_| exit_after(1, 1))
        .start();
    sim.run_until(s(2 * 3600));
    let starts = sim.starts("app");
    let mut expected_gap_after_exit = vec![0, 10, 20, 40, 80, 160];
    while expected_gap_after_exit.len() < starts.len() - 1 {
        expected_gap_after_exit.push(300);
    }
    // start-to-start = 1s of running + the wait.
    let gaps: Vec<u64> = restart_delays(&sim, "app").iter().map(|g| g - 1).collect();
    assert_eq!(gaps, expected_gap_after_exit);
    // Exact start times for the first restarts.
    let first: Vec<u64> = starts.iter().take(8).map(|t| t.0 / 1000).collect();
    assert_eq!(first, [0, 1, 12, 33, 74, 155, 316, 617]);
    // 2h: 8 starts by 617s, then one every 301s.
    assert_eq!(starts.len(), 8 + ((7200 - 617) / 301) as usize);

    // Status while backing off: CrashLoopBackOff with kubelet's message.
    let status = sim.m.status();
    let app = &status.container_statuses[0];
    match &app.state {
        ContainerState::Waiting { reason, message } => {
            assert_eq!(reason, "CrashLoopBackOff");
            assert_eq!(
                message,
                "back-off 5m0s restarting failed container=app pod=crash_default(uid-1)"
            );
        }
        other => panic!("expected waiting, got {other:?}"),
    }
    assert_eq!(
        app.last_state.as_ref().map(|t| t.reason.as_str()),
        Some("Error")
    );
    assert_eq!(app.restart_count as usize, starts.len() - 1);
    assert_eq!(status.phase, PodPhase::Running);
    let row = sim.m.row(sim.now);
    assert_eq!(row.status, "CrashLoopBackOff");
    assert_eq!(row.ready, "0/1");
    assert!(
        row.restarts.starts_with(&format!("{} (", starts.len() - 1)),
        "{}",
        row.restarts
    );
    let backoffs = sim.events("BackOff");
    assert_eq!(
        backoffs[0],
        "Back-off restarting failed container app in pod crash_default(uid-1)"
    );
    // One BackOff event per wait (every exit but the first).
    assert_eq!(backoffs.len(), starts.len() - 1);
}

#[test]
fn back_off_resets_after_ten_minutes_of_running() {
    let mut sim = Sim::new(pod("p", RestartPolicy::Always, &["app"]))
        .life("app", |i| {
            if i == 4 {
                exit_after(660, 1)
            } else {
                exit_after(1, 1)
            }
        })
        .start();
    sim.run_until(s(800));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    // 0, 1 (immediate), 12 (+10), 33 (+20), 74 (+40); instance 4 runs 660s and exits at 734:
    // more than 600s after its restart, so it restarts at once and the back-off is 10s again.
    assert_eq!(starts[..7], [0, 1, 12, 33, 74, 734, 745]);
}

#[test]
fn exactly_ten_minutes_does_not_reset() {
    // Restarted at 74s, exits at exactly 674s: 600s is not "more than" 600s, but GC removes the
    // entry 1ms later, before the 80s window ends, so it restarts at 674.001s and resets.
    let mut sim = Sim::new(pod("p", RestartPolicy::Always, &["app"]))
        .life("app", |i| {
            if i == 4 {
                exit_after(600, 1)
            } else {
                exit_after(1, 1)
            }
        })
        .start();
    sim.run_until(s(800));
    let starts: Vec<Millis> = sim.starts("app");
    assert_eq!(starts[5], Millis(674_001));
    assert_eq!(starts[6], Millis(685_001));
}

#[test]
fn annotation_overrides_initial_and_max() {
    let mut spec = pod("fast", RestartPolicy::Always, &["app"]);
    spec.backoff = BackoffConfig::parse("1s,4s").unwrap();
    let mut sim = Sim::new(spec)
        .life("app", |_| Life::Exit {
            after: Duration::from_millis(100),
            code: 2,
            oom: false,
        })
        .start();
    sim.run_until(s(30));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0).collect();
    // Waits after each 100ms run: 0, 1, 2, 4, 4, 4...
    assert_eq!(starts[..7], [0, 100, 1200, 3300, 7400, 11_500, 15_600]);
    assert!(
        sim.m.status().container_statuses[0]
            .state
            .waiting_reason()
            .is_some()
    );
}

#[test]
fn on_failure_exit_zero_ends_completed() {
    let mut sim = Sim::new(pod("job", RestartPolicy::OnFailure, &["app"]))
        .life("app", |_| exit_after(5, 0))
        .start();
    sim.run_until(s(60));
    assert_eq!(sim.starts("app").len(), 1);
    assert_eq!(sim.finished(), Some(PodPhase::Succeeded));
    let status = sim.m.status();
    assert_eq!(status.phase, PodPhase::Succeeded);
    let t = status.container_statuses[0].state.terminated().unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));
    assert_eq!(t.finished_at, s(5));
    let row = sim.m.row(s(60));
    assert_eq!(
        (
            row.ready.as_str(),
            row.status.as_str(),
            row.restarts.as_str()
        ),
        ("0/1", "Completed", "0")
    );
    assert_eq!(row.age, "60s");
    let ready = status.condition(ConditionType::Ready).unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    assert!(
        !status
            .condition(ConditionType::PodReadyToStartContainers)
            .unwrap()
            .status
    );
}

#[test]
fn on_failure_restarts_failures_until_success() {
    let mut sim = Sim::new(pod("job", RestartPolicy::OnFailure, &["app"]))
        .life("app", |i| {
            if i < 3 {
                exit_after(1, 3)
            } else {
                exit_after(1, 0)
            }
        })
        .start();
    sim.run_until(s(120));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    assert_eq!(starts, [0, 1, 12, 33]);
    assert_eq!(sim.finished(), Some(PodPhase::Succeeded));
    assert_eq!(sim.m.status().container_statuses[0].restart_count, 3);
    // kubectl's "ago" is from the last *lastState* termination: instance 2's exit at 13s.
    assert_eq!(sim.m.row(s(120)).restarts, "3 (107s ago)");
}

#[test]
fn never_does_not_restart() {
    let mut sim = Sim::new(pod("once", RestartPolicy::Never, &["app", "side"]))
        .life("app", |_| exit_after(3, 1))
        .life("side", |_| exit_after(5, 0))
        .start();
    sim.run_until(s(4));
    assert_eq!(sim.m.status().phase, PodPhase::Running);
    // kubectl shows the failed container's reason next to a running one.
    assert_eq!(sim.m.row(s(4)).status, "Error");
    sim.run_until(s(100));
    assert_eq!(sim.starts("app").len(), 1);
    assert_eq!(sim.finished(), Some(PodPhase::Failed));
    assert_eq!(sim.m.row(s(100)).status, "Error");
}

#[test]
fn oom_killed_is_reported_then_crash_loops() {
    let oom = |_| Life::Exit {
        after: Duration::from_secs(2),
        code: 137,
        oom: true,
    };
    let mut sim = Sim::new(pod("mem", RestartPolicy::Always, &["app"]))
        .life("app", oom)
        .start();
    sim.run_until(s(5));
    let st = sim.m.status();
    let last = st.container_statuses[0].last_state.clone().unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (137, "OOMKilled"));
    assert_eq!(sim.status_col(), "CrashLoopBackOff");

    let mut never = Sim::new(pod("mem", RestartPolicy::Never, &["app"]))
        .life("app", oom)
        .start();
    never.run_until(s(5));
    assert_eq!(never.status_col(), "OOMKilled");
    assert_eq!(never.finished(), Some(PodPhase::Failed));
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let mut spec = pod("init", RestartPolicy::Always, &["app"]);
    spec.init_containers = vec![ContainerSpec::new("i1"), ContainerSpec::new("i2")];
    let mut sim = Sim::new(spec)
        .life("i1", |_| exit_after(2, 0))
        .life("i2", |_| exit_after(3, 0))
        .start();
    sim.run_until(s(1));
    assert_eq!(sim.status_col(), "Init:0/2");
    assert_eq!(sim.m.status().phase, PodPhase::Pending);
    let app = &sim.m.status().container_statuses[0];
    assert_eq!(app.state.waiting_reason(), Some("PodInitializing"));
    sim.run_until(s(3));
    assert_eq!(sim.status_col(), "Init:1/2");
    sim.run_until(s(10));
    assert_eq!(sim.starts("i1"), [s(0)]);
    assert_eq!(sim.starts("i2"), [s(2)]);
    assert_eq!(sim.starts("app"), [s(5)]);
    assert_eq!(sim.status_col(), "Running");
    let st = sim.m.status();
    assert_eq!(st.phase, PodPhase::Running);
    let init = st.condition(ConditionType::Initialized).unwrap();
    assert!(init.status);
    assert_eq!(init.last_transition_time, s(5));
    assert!(st.init_container_statuses.iter().all(|c| c.ready));
}

#[test]
fn failing_init_container_backs_off_or_fails_the_pod() {
    let mut spec = pod("init", RestartPolicy::Always, &["app"]);
    spec.init_containers = vec![ContainerSpec::new("i1")];
    let mut sim = Sim::new(spec.clone())
        .life("i1", |_| exit_after(1, 1))
        .start();
    sim.run_until(s(5));
    assert_eq!(sim.starts("i1"), [s(0), s(1)]);
    assert_eq!(sim.status_col(), "Init:CrashLoopBackOff");
    assert_eq!(sim.m.status().phase, PodPhase::Pending);
    assert!(sim.starts("app").is_empty());

    spec.restart_policy = RestartPolicy::Never;
    let mut sim = Sim::new(spec).life("i1", |_| exit_after(1, 1)).start();
    sim.run_until(s(60));
    assert_eq!(sim.starts("i1"), [s(0)]);
    assert!(sim.starts("app").is_empty());
    assert_eq!(sim.finished(), Some(PodPhase::Failed));
    assert_eq!(sim.status_col(), "Init:Error");
}

fn sidecar(name: &str) -> ContainerSpec {
    ContainerSpec {
        restart_policy: Some(RestartPolicy::Always),
        ..ContainerSpec::new(name)
    }
}

#[test]
fn sidecar_starts_first_and_stops_last() {
    // initContainers: [log (sidecar, startup probe), setup]; containers: [job]. OnFailure.
    let mut spec = pod("side", RestartPolicy::OnFailure, &["job"]);
    let mut log = sidecar("log");
    log.startup_probe = Some(ProbeSpec {
        period_seconds: 1,
        ..ProbeSpec::default()
    });
    spec.init_containers = vec![log, ContainerSpec::new("setup")];
    let mut sim = Sim::new(spec)
        .life("setup", |_| exit_after(1, 0))
        .life("job", |_| exit_after(10, 0))
        .probes(|c, kind, _, since| {
            if c == "log" && kind == ProbeKind::Startup && since < Duration::from_secs(2) {
                ProbeOutcome::Failure
            } else {
                ProbeOutcome::Success
            }
        })
        .start();
    sim.run_until(s(1));
    assert_eq!(sim.status_col(), "Init:0/2");
    sim.run_until(s(60));
    // setup waits for the sidecar's startup probe (succeeds at 2s), job for setup.
    assert_eq!(sim.starts("log"), [s(0)]);
    assert_eq!(sim.starts("setup"), [s(2)]);
    assert_eq!(sim.starts("job"), [s(3)]);
    // job completes at 13s; only then is the sidecar stopped, with the pod's grace period.
    let kills = sim.kills();
    assert_eq!(
        kills,
        [(
            s(13),
            "log".to_string(),
            Duration::from_secs(30),
            KillReason::PodCompleted
        )]
    );
    assert_eq!(sim.finished(), Some(PodPhase::Succeeded));
    assert_eq!(sim.status_col(), "Completed");
    let st = sim.m.status();
    assert_eq!(st.init_container_statuses[0].restart_count, 0);
}

#[test]
fn sidecar_is_restarted_whatever_the_pod_policy() {
    let mut spec = pod("side", RestartPolicy::Never, &["app"]);
    spec.init_containers = vec![sidecar("proxy")];
    let mut sim = Sim::new(spec)
        .life("proxy", |i| {
            if i == 0 {
                exit_after(5, 1)
            } else {
                Life::Forever
            }
        })
        .start();
    sim.run_until(s(30));
    assert_eq!(sim.starts("proxy"), [s(0), s(5)]);
    assert_eq!(sim.starts("app"), [s(0)]);
    let row = sim.m.row(s(30));
    assert_eq!(
        (row.ready.as_str(), row.status.as_str()),
        ("2/2", "Running")
    );
    assert_eq!(row.restarts, "1 (25s ago)");
}

#[test]
fn stop_kills_apps_then_sidecars_in_reverse_order() {
    let mut spec = pod("stop", RestartPolicy::Always, &["a", "b"]);
    spec.init_containers = vec![sidecar("s1"), sidecar("s2")];
    let mut sim = Sim::new(spec).start();
    sim.stop_delay = Duration::from_secs(3);
    sim.run_until(s(10));
    sim.stop(Some(Duration::from_secs(20)));
    assert_eq!(sim.status_col(), "Terminating");
    sim.run_until(s(60));
    let kills: Vec<(u64, String, u64)> = sim
        .kills()
        .into_iter()
        .map(|(t, c, g, _)| (t.0 / 1000, c, g.as_secs()))
        .collect();
    assert_eq!(
        kills,
        [
            (10, "a".into(), 20),
            (10, "b".into(), 20),
            (13, "s2".into(), 17),
            (16, "s1".into(), 14),
        ]
    );
    assert_eq!(sim.events("Killing")[0], "Stopping container a");
    assert_eq!(sim.finished(), Some(PodPhase::Failed));
    assert_eq!(sim.m.status().phase, PodPhase::Failed);
    assert_eq!(sim.status_col(), "Error");
    assert!(sim.starts("a").len() == 1, "no restart after a stop");
}

#[test]
fn stop_grace_is_at_least_two_seconds_and_sidecars_go_at_the_deadline() {
    let mut spec = pod("stop", RestartPolicy::Always, &["a"]);
    spec.init_containers = vec![sidecar("s")];
    // The app ignores SIGTERM: it only dies at the SIGKILL.
    let mut sim = Sim::new(spec.clone()).start();
    sim.stop_delay = Duration::from_secs(100);
    sim.run_until(s(1));
    // A zero grace period: every kill gets kubelet's minimum of 2s, and sidecars do not wait
    // for their turn (kubelet only waits while grace remains).
    sim.stop(Some(Duration::ZERO));
    sim.run_until(s(30));
    let kills: Vec<(u64, String, u64)> = sim
        .kills()
        .into_iter()
        .map(|(t, c, g, _)| (t.0 / 1000, c, g.as_secs()))
        .collect();
    assert_eq!(kills, [(1, "a".into(), 2), (1, "s".into(), 2)]);
    assert_eq!(sim.finished(), Some(PodPhase::Failed));

    // 5s: the sidecar waits for the app, which dies at the SIGKILL at 6s; by then no grace is
    // left, so the sidecar gets the 2s minimum.
    let mut sim = Sim::new(spec).start();
    sim.stop_delay = Duration::from_secs(100);
    sim.run_until(s(1));
    sim.stop(Some(Duration::from_secs(5)));
    sim.run_until(s(30));
    let kills: Vec<(u64, String, u64)> = sim
        .kills()
        .into_iter()
        .map(|(t, c, g, _)| (t.0 / 1000, c, g.as_secs()))
        .collect();
    assert_eq!(kills, [(1, "a".into(), 5), (6, "s".into(), 2)]);
    let st = sim.m.status();
    assert_eq!(
        st.container_statuses[0]
            .state
            .terminated()
            .map(|t| t.exit_code),
        Some(137)
    );
}

#[test]
fn stop_while_backing_off_cancels_the_restart() {
    let mut sim = Sim::new(pod("p", RestartPolicy::Always, &["app"]))
        .life("app", |_| exit_after(1, 1))
        .start();
    sim.run_until(s(5));
    assert_eq!(sim.status_col(), "CrashLoopBackOff");
    sim.stop(None);
    sim.run_until(s(60));
    assert_eq!(sim.starts("app").len(), 2);
    assert_eq!(sim.finished(), Some(PodPhase::Failed));
    let st = sim.m.status();
    let app = &st.container_statuses[0];
    assert_eq!(app.state.terminated().map(|t| t.exit_code), Some(1));
    assert_eq!(app.last_state.as_ref().map(|t| t.exit_code), Some(1));
}

fn liveness(threshold: i32, grace: Option<i64>) -> ProbeSpec {
    ProbeSpec {
        period_seconds: 10,
        failure_threshold: threshold,
        termination_grace_period_seconds: grace,
        ..ProbeSpec::default()
    }
}

#[test]
fn liveness_failure_kills_and_restarts_with_back_off() {
    let mut spec = pod("live", RestartPolicy::Always, &["app"]);
    spec.containers[0].liveness_probe = Some(liveness(3, Some(5)));
    // Healthy for 25s after each start, then failing.
    let mut sim = Sim::new(spec)
        .probes(|_, _, _, since| {
            if since >= Duration::from_secs(25) {
                ProbeOutcome::Failure
            } else {
                ProbeOutcome::Success
            }
        })
        .start();
    sim.run_until(s(200));
    // Probes at 0,10,20 pass; 30,40,50 fail -> killed at 50 with the probe's 5s grace.
    let kills = sim.kills();
    assert_eq!(
        kills[0],
        (
            s(50),
            "app".into(),
            Duration::from_secs(5),
            KillReason::LivenessProbe
        )
    );
    assert_eq!(
        sim.events("Killing")[0],
        "Container app failed liveness probe, will be restarted"
    );
    assert_eq!(
        sim.events("Unhealthy")[0],
        "Liveness probe failed: probe output"
    );
    // Exits at 51 (SIGTERM honoured after 1s) and restarts at once: no earlier exit to back
    // off from. The second instance is killed at 101, exits at 102; the previous exit (51) is
    // more than the 10s window ago, so it restarts at once too, and the window grows.
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    assert_eq!(starts[..3], [0, 51, 102]);
    // While killed and restarted, the probes stop for the old instance (on hold).
    let runs = sim.probe_runs("app", ProbeKind::Liveness);
    assert!(!runs.iter().any(|t| *t > s(50) && *t < s(51)));
    let st = sim.m.status();
    assert_eq!(st.container_statuses[0].restart_count, 3);
    assert_eq!(
        st.container_statuses[0]
            .last_state
            .as_ref()
            .map(|t| t.exit_code),
        Some(143)
    );
}

#[test]
fn liveness_failure_under_never_kills_without_restart() {
    let mut spec = pod("live", RestartPolicy::Never, &["app"]);
    spec.containers[0].liveness_probe = Some(liveness(1, None));
    let mut sim = Sim::new(spec)
        .probes(|_, _, _, _| ProbeOutcome::Failure)
        .start();
    sim.run_until(s(100));
    assert_eq!(
        sim.events("Killing"),
        ["Container app failed liveness probe"]
    );
    assert_eq!(sim.kills()[0].2, Duration::from_secs(30));
    assert_eq!(sim.starts("app").len(), 1);
    assert_eq!(sim.finished(), Some(PodPhase::Failed));
}

#[test]
fn startup_probe_gates_liveness_and_readiness() {
    let mut spec = pod("slow", RestartPolicy::Always, &["app"]);
    spec.containers[0].startup_probe = Some(ProbeSpec {
        period_seconds: 5,
        failure_threshold: 10,
        ..ProbeSpec::default()
    });
    spec.containers[0].liveness_probe = Some(liveness(3, None));
    spec.containers[0].readiness_probe = Some(ProbeSpec::default());
    let mut sim = Sim::new(spec)
        .probes(|_, kind, _, since| match kind {
            ProbeKind::Startup if since < Duration::from_secs(20) => ProbeOutcome::Failure,
            _ => ProbeOutcome::Success,
        })
        .start();
    sim.run_until(s(19));
    assert_eq!(sim.m.row(s(19)).ready, "0/1");
    assert!(!sim.m.status().container_statuses[0].started);
    sim.run_until(s(45));
    let startup: Vec<u64> = sim
        .probe_runs("app", ProbeKind::Startup)
        .iter()
        .map(|t| t.0 / 1000)
        .collect();
    assert_eq!(startup, [0, 5, 10, 15, 20]);
    let live: Vec<u64> = sim
        .probe_runs("app", ProbeKind::Liveness)
        .iter()
        .map(|t| t.0 / 1000)
        .collect();
    assert_eq!(live, [20, 30, 40]);
    let ready: Vec<u64> = sim
        .probe_runs("app", ProbeKind::Readiness)
        .iter()
        .map(|t| t.0 / 1000)
        .collect();
    assert_eq!(ready, [20, 30, 40]);
    assert!(
        sim.kills().is_empty(),
        "failing startup probes below the threshold do not kill"
    );
    let st = sim.m.status();
    assert!(st.container_statuses[0].started && st.container_statuses[0].ready);
    assert_eq!(sim.m.row(s(45)).ready, "1/1");
}

#[test]
fn startup_probe_failure_kills() {
    let mut spec = pod("slow", RestartPolicy::Always, &["app"]);
    spec.containers[0].startup_probe = Some(ProbeSpec {
        period_seconds: 1,
        failure_threshold: 3,
        ..ProbeSpec::default()
    });
    let mut sim = Sim::new(spec)
        .probes(|_, _, _, _| ProbeOutcome::Failure)
        .start();
    sim.run_until(s(3));
    assert_eq!(sim.kills()[0].3, KillReason::StartupProbe);
    assert_eq!(sim.kills()[0].0, s(2));
    assert_eq!(
        sim.events("Killing")[0],
        "Container app failed startup probe, will be restarted"
    );
}

#[test]
fn readiness_flips_ready_without_restarts() {
    let mut spec = pod("web", RestartPolicy::Always, &["app"]);
    spec.containers[0].readiness_probe = Some(ProbeSpec {
        period_seconds: 5,
        ..ProbeSpec::default()
    });
    // Not ready until 12s, ready until 40s, failing after.
    let mut sim = Sim::new(spec)
        .probes(|_, _, _, since| {
            let t = since.as_secs();
            if (12..40).contains(&t) {
                ProbeOutcome::Success
            } else {
                ProbeOutcome::Failure
            }
        })
        .start();
    sim.run_until(s(10));
    assert_eq!(sim.m.row(s(10)).ready, "0/1");
    assert_eq!(sim.m.status().phase, PodPhase::Running);
    sim.run_until(s(15));
    assert_eq!(sim.m.row(s(15)).ready, "1/1");
    let st = sim.m.status();
    let ready = st.condition(ConditionType::Ready).unwrap();
    assert!(ready.status);
    assert_eq!(ready.last_transition_time, s(15));
    // Failures at 40, 45, 50: not ready from the third.
    sim.run_until(s(49));
    assert_eq!(sim.m.row(s(49)).ready, "1/1");
    sim.run_until(s(50));
    assert_eq!(sim.m.row(s(50)).ready, "0/1");
    let st = sim.m.status();
    let cr = st.condition(ConditionType::ContainersReady).unwrap();
    assert_eq!(cr.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        cr.message.as_deref(),
        Some("containers with unready status: [app]")
    );
    assert!(sim.kills().is_empty());
    assert_eq!(sim.starts("app").len(), 1);
    assert_eq!(sim.events("Unhealthy").len(), 3 + 3);
    assert_eq!(sim.status_col(), "Running");
}

#[test]
fn start_errors_and_create_errors() {
    // A process that cannot start: StartError 128, then the normal back-off.
    let mut sim = Sim::new(pod("bad", RestartPolicy::Always, &["app"]))
        .life("app", |_| Life::FailStart)
        .start();
    sim.run_until(s(40));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    assert_eq!(starts, [0, 0, 10, 30]);
    let st = sim.m.status();
    let last = st.container_statuses[0].last_state.clone().unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (128, "StartError"));
    assert_eq!(
        sim.events("Failed")[0],
        "Error: exec: \"nope\": executable file not found in $PATH"
    );

    // A container that cannot be created: CreateContainerError, retried every 10s, no restart
    // counted.
    let mut sim = Sim::new(pod("bad", RestartPolicy::Never, &["app"]))
        .life("app", |_| Life::FailCreate)
        .start();
    sim.run_until(s(25));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    assert_eq!(starts, [0, 10, 20]);
    assert_eq!(sim.status_col(), "CreateContainerError");
    assert_eq!(sim.m.status().container_statuses[0].restart_count, 0);
    assert_eq!(sim.m.status().phase, PodPhase::Pending);
}

#[test]
fn missing_images_wait_with_kubelets_reasons() {
    // Never: ErrImageNeverPull, looked at again every 10 s.
    let mut sim = Sim::new(pod("never", RestartPolicy::Always, &["app"]))
        .life("app", |_| Life::FailImage(StartStage::ImageNeverPull))
        .start();
    sim.run_until(s(25));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    assert_eq!(starts, [0, 10, 20]);
    assert_eq!(sim.status_col(), "ErrImageNeverPull");
    assert_eq!(sim.events("ErrImageNeverPull")[0], "no image");
    assert_eq!(sim.m.status().phase, PodPhase::Pending);

    // Pull failures: ErrImagePull, then ImagePullBackOff with the back-off doubling (10 s, 20 s,
    // 40 s...), until a pull succeeds.
    let mut sim = Sim::new(pod("pull", RestartPolicy::Always, &["app"]))
        .life("app", |i| {
            if i < 3 {
                Life::FailImage(StartStage::ImagePull)
            } else {
                Life::Forever
            }
        })
        .start();
    sim.run_until(Millis(500));
    assert_eq!(sim.status_col(), "ErrImagePull");
    sim.run_until(s(5));
    assert_eq!(sim.status_col(), "ImagePullBackOff");
    assert_eq!(
        sim.m.status().container_statuses[0].state,
        ContainerState::Waiting {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"\"".into()
        }
    );
    sim.run_until(s(15));
    assert_eq!(sim.status_col(), "ImagePullBackOff");
    sim.run_until(s(100));
    let starts: Vec<u64> = sim.starts("app").iter().map(|t| t.0 / 1000).collect();
    assert_eq!(starts, [0, 10, 30, 70]);
    assert_eq!(sim.status_col(), "Running");
    assert_eq!(sim.m.status().container_statuses[0].restart_count, 0);
}

#[test]
fn post_start_hook_failure_kills_the_container() {
    let mut sim = Sim::new(pod("hook", RestartPolicy::Always, &["app"])).start();
    sim.run_until(s(1));
    sim.deliver(Event::StartFailed {
        container: "app".into(),
        instance: 0,
        stage: StartStage::PostStartHook,
        message: "hook exited 1".into(),
        at: s(1),
    });
    assert_eq!(sim.events("FailedPostStartHook"), ["hook exited 1"]);
    assert_eq!(sim.kills()[0].3, KillReason::PostStartHookFailed);
    sim.run_until(s(5));
    assert_eq!(sim.starts("app").len(), 2);
}

#[test]
fn stale_and_unknown_events_are_ignored() {
    let mut sim = Sim::new(pod("p", RestartPolicy::Always, &["app"])).start();
    sim.run_until(s(1));
    let before = sim.m.clone();
    for e in [
        Event::ContainerExited {
            container: "app".into(),
            instance: 7,
            exit_code: 1,
            oom_killed: false,
            at: s(1),
        },
        Event::ContainerStarted {
            container: "nope".into(),
            instance: 0,
            at: s(1),
        },
        Event::ProbeResult {
            container: "app".into(),
            instance: 0,
            kind: ProbeKind::Liveness,
            result: ProbeOutcome::Failure,
            output: String::new(),
        },
    ] {
        let actions = sim.m.handle(e, s(1));
        assert!(actions.is_empty(), "{actions:?}");
    }
    assert_eq!(sim.m, before);
}

#[test]
fn functional_form_and_serde_round_trip() {
    let spec = pod("p", RestartPolicy::Always, &["app"]);
    let m = PodMachine::new(spec, Millis(0)).unwrap();
    let (m, actions) = super::machine::on_event(m, Event::SandboxReady, Millis(5));
    assert_eq!(
        actions,
        [Action::Start {
            container: "app".into(),
            instance: 0
        }]
    );
    let json = serde_json::to_string(&m).unwrap();
    let back: PodMachine = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    let st = back.status();
    assert_eq!(st.start_time, Some(Millis(5)));
    assert_eq!(
        st.container_statuses[0].state.waiting_reason(),
        Some("ContainerCreating")
    );
    assert_eq!(back.row(Millis(5)).status, "ContainerCreating");
}

#[test]
fn events_carry_types_and_containers() {
    let mut sim = Sim::new(pod("p", RestartPolicy::Always, &["app"])).start();
    sim.run_until(s(1));
    let started = sim
        .log
        .iter()
        .find_map(|(_, a)| match a {
            Action::RecordEvent(e) if e.reason == "Started" => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.type_, EventType::Normal);
    assert_eq!(started.message, "Container started");
    assert_eq!(started.container.as_deref(), Some("app"));
}

#[test]
fn container_restart_policy_overrides_the_pod_policy() {
    // ContainerRestartRules: a container's own policy wins for app containers.
    let mut spec = pod("mixed", RestartPolicy::Always, &["once", "always"]);
    spec.containers[0].restart_policy = Some(RestartPolicy::Never);
    let mut sim = Sim::new(spec)
        .life("once", |_| exit_after(1, 1))
        .life("always", |i| {
            if i == 0 {
                exit_after(1, 0)
            } else {
                Life::Forever
            }
        })
        .start();
    sim.run_until(s(30));
    assert_eq!(sim.starts("once"), [s(0)]);
    assert_eq!(sim.starts("always"), [s(0), s(1)]);
    assert_eq!(sim.m.status().phase, PodPhase::Running);
    assert!(sim.finished().is_none());
}

#[test]
fn sandbox_condition_and_scheduled_transition_times() {
    let mut sim =
        Sim::new(pod("p", RestartPolicy::Never, &["app"])).life("app", |_| exit_after(10, 0));
    let st = sim.m.status();
    assert!(
        !st.condition(ConditionType::PodReadyToStartContainers)
            .unwrap()
            .status
    );
    assert!(st.condition(ConditionType::PodScheduled).unwrap().status);
    sim.now = s(2);
    sim.deliver(Event::SandboxReady);
    sim.run_until(s(5));
    let st = sim.m.status();
    let sandbox = st
        .condition(ConditionType::PodReadyToStartContainers)
        .unwrap();
    assert!(sandbox.status);
    assert_eq!(sandbox.last_transition_time, s(2));
    assert_eq!(
        st.condition(ConditionType::Ready)
            .unwrap()
            .last_transition_time,
        s(2)
    );
    assert_eq!(st.start_time, Some(s(2)));
    sim.run_until(s(20));
    let st = sim.m.status();
    assert_eq!(st.phase, PodPhase::Succeeded);
    let sandbox = st
        .condition(ConditionType::PodReadyToStartContainers)
        .unwrap();
    assert_eq!(
        (sandbox.status, sandbox.last_transition_time),
        (false, s(12))
    );
    assert_eq!(
        st.condition(ConditionType::PodScheduled)
            .unwrap()
            .last_transition_time,
        s(0)
    );
}
