//! Probe scheduling and result bookkeeping for one container, as kubelet's prober workers.
//!
//! Upstream (kubernetes/kubernetes `pkg/kubelet/prober/`):
//! - `worker.go` `doProbe`: initial results (readiness Failure, liveness Success, startup
//!   Unknown), skip while `secondsSinceStart < initialDelaySeconds`, only the startup probe
//!   until the container has started and never after, `resultRun` counting against the
//!   thresholds, `onHold` after a liveness/startup failure until a new container instance, and
//!   liveness/startup forced to Success and stopped when the pod is being deleted.
//! - `prober.go` `probe`: Warning counts as Success (event `ProbeWarning`), Unknown counts as
//!   Failure, Failure records `Unhealthy` `"<Type> probe failed: <output>"`, and a prober error
//!   records `"<Type> probe errored and resulted in unknown state: <err>"` and is discarded.
//! - `prober_manager.go` `isContainerStarted` / `UpdatePodStatus`: started and ready.
//!
//! Timing is deterministic here: a probe first runs at `startedAt + initialDelaySeconds` (or
//! when the startup probe succeeds, if later) and then every `periodSeconds` from the start of
//! the previous run. kubelet's worker ticks on a free-running ticker created with the pod (with
//! a random initial sleep after a kubelet restart) and triggers readiness immediately when the
//! container becomes started; the schedule here is that behaviour without the jitter. A result
//! that arrives after the next run was due triggers the next run at once (Go's ticker buffers
//! one tick). Running the probe (exec/http/tcp/grpc, with its timeout) is the executor's job.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::Millis;
use super::spec::{ContainerSpec, ProbeKind, ProbeSpec};

/// What the executor observed for one probe run (`probe.Result` plus the error case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// The check passed.
    Success,
    /// Passed with a warning (e.g. an HTTP redirect to another host); counts as Success.
    Warning,
    /// The check failed (non-zero exit, bad status code, refused connection, timeout).
    Failure,
    /// No verdict; counts as Failure without an event.
    Unknown,
    /// The prober itself failed (e.g. could not exec); kubelet discards the result.
    Error,
}

/// The cached result kubelet's results manager holds per container and probe type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeStatus {
    Unknown,
    Success,
    Failure,
}

/// An event a probe result asks to record: (warning type always), reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub reason: &'static str,
    pub message: String,
}

/// What one result changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeUpdate {
    /// Events to record (all `Warning`).
    pub events: Vec<ProbeEvent>,
    /// The cached result changed to this value.
    pub changed_to: Option<ProbeStatus>,
}

/// One probe type of one container (a `worker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeWorker {
    kind: ProbeKind,
    spec: ProbeSpec,
    result: ProbeStatus,
    last_result: Option<ProbeStatus>,
    result_run: u32,
    on_hold: bool,
    stopped: bool,
    in_flight: bool,
    next_due: Millis,
}

impl ProbeWorker {
    fn new(kind: ProbeKind, spec: ProbeSpec) -> ProbeWorker {
        ProbeWorker {
            kind,
            spec,
            result: initial_result(kind),
            last_result: None,
            result_run: 0,
            on_hold: false,
            stopped: false,
            in_flight: false,
            next_due: Millis(0),
        }
    }

    /// The cached result.
    pub fn result(&self) -> ProbeStatus {
        self.result
    }

    /// The probe's timing spec.
    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }
}

/// kubelet's `initialValue` per probe type (`newWorker`).
pub fn initial_result(kind: ProbeKind) -> ProbeStatus {
    match kind {
        ProbeKind::Readiness => ProbeStatus::Failure,
        ProbeKind::Liveness => ProbeStatus::Success,
        ProbeKind::Startup => ProbeStatus::Unknown,
    }
}

/// The probes of one container, for its current instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerProbes {
    workers: Vec<ProbeWorker>,
    instance: u32,
    started_at: Millis,
    running: bool,
}

/// A probe run the scheduler asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueProbe {
    pub kind: ProbeKind,
    pub instance: u32,
    pub timeout: Duration,
}

impl ContainerProbes {
    /// Workers for the probes `spec` declares.
    pub fn new(spec: &ContainerSpec) -> ContainerProbes {
        let workers = [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ]
        .into_iter()
        .filter_map(|kind| spec.probe(kind).map(|p| ProbeWorker::new(kind, *p)))
        .collect();
        ContainerProbes {
            workers,
            instance: 0,
            started_at: Millis(0),
            running: false,
        }
    }

    fn worker(&self, kind: ProbeKind) -> Option<&ProbeWorker> {
        self.workers.iter().find(|w| w.kind == kind)
    }

    /// True when the container declares a probe of `kind`.
    pub fn has(&self, kind: ProbeKind) -> bool {
        self.worker(kind).is_some()
    }

    /// The cached result of `kind`, if the container has that probe.
    pub fn result(&self, kind: ProbeKind) -> Option<ProbeStatus> {
        self.worker(kind).map(|w| w.result)
    }

    /// A new instance is running since `started_at`: results go back to their initial values
    /// and probing resumes ("We've got a new container; resume probing"). The run counters are
    /// reset too (kubelet keeps them across instances; see the module docs of `machine`).
    pub fn on_container_started(&mut self, instance: u32, started_at: Millis) {
        self.instance = instance;
        self.started_at = started_at;
        self.running = true;
        for w in &mut self.workers {
            let stopped = w.stopped;
            *w = ProbeWorker::new(w.kind, w.spec);
            w.stopped = stopped;
            w.next_due = started_at + w.spec.initial_delay();
        }
    }

    /// The instance is gone: nothing is probed until the next one, and in-flight results are
    /// stale.
    pub fn on_container_stopped(&mut self) {
        self.running = false;
        for w in &mut self.workers {
            w.in_flight = false;
        }
    }

    /// The pod is being deleted or terminated: liveness and startup report Success and stop;
    /// readiness keeps running until the container exits.
    pub fn on_terminating(&mut self) {
        for w in &mut self.workers {
            if w.kind != ProbeKind::Readiness {
                w.result = ProbeStatus::Success;
                w.stopped = true;
                w.in_flight = false;
            }
        }
    }

    /// `isContainerStarted`: running, and the startup probe (if any) has succeeded.
    pub fn started(&self) -> bool {
        self.running
            && self
                .worker(ProbeKind::Startup)
                .is_none_or(|w| w.result == ProbeStatus::Success)
    }

    /// `UpdatePodStatus`: started, and the readiness probe (if any) has succeeded.
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .worker(ProbeKind::Readiness)
                .is_none_or(|w| w.result == ProbeStatus::Success)
    }

    /// The probe whose failure means the running instance must be killed (liveness is checked
    /// first, as in `computePodActions`).
    pub fn kill_reason(&self) -> Option<ProbeKind> {
        [ProbeKind::Liveness, ProbeKind::Startup]
            .into_iter()
            .find(|k| self.result(*k) == Some(ProbeStatus::Failure))
    }

    fn eligible(&self, w: &ProbeWorker) -> Option<Millis> {
        if !self.running || w.on_hold || w.stopped || w.in_flight {
            return None;
        }
        // Until started only the startup probe runs; once started it never runs again.
        let started = self.started();
        if (w.kind == ProbeKind::Startup) == started {
            return None;
        }
        // `int32(time.Since(startedAt).Seconds()) < initialDelaySeconds` skips the run.
        let not_before = self.started_at + w.spec.initial_delay();
        Some(w.next_due.max(not_before))
    }

    /// The probe runs due at `now`; each is marked in flight until its result arrives.
    pub fn take_due(&mut self, now: Millis) -> Vec<DueProbe> {
        let mut due = Vec::new();
        for i in 0..self.workers.len() {
            let w = &self.workers[i];
            let Some(at) = self.eligible(w) else { continue };
            if at > now {
                continue;
            }
            let w = &mut self.workers[i];
            w.in_flight = true;
            w.next_due = now + w.spec.period();
            due.push(DueProbe {
                kind: w.kind,
                instance: self.instance,
                timeout: w.spec.timeout(),
            });
        }
        due
    }

    /// The earliest time a probe becomes due, if any is pending.
    pub fn next_wake(&self) -> Option<Millis> {
        self.workers.iter().filter_map(|w| self.eligible(w)).min()
    }

    /// Handles one probe result of `kind` for the current instance (`doProbe` after the call
    /// to the prober). `container` is only used in event messages' context by the caller.
    pub fn on_result(
        &mut self,
        kind: ProbeKind,
        outcome: ProbeOutcome,
        output: &str,
    ) -> ProbeUpdate {
        let mut update = ProbeUpdate::default();
        let was_started = self.started();
        let Some(w) = self.workers.iter_mut().find(|w| w.kind == kind) else {
            return update;
        };
        if !w.in_flight {
            // Not asked for (stale or duplicate): ignore.
            return update;
        }
        w.in_flight = false;
        if w.stopped || w.on_hold || !self.running {
            return update;
        }
        let result = match outcome {
            ProbeOutcome::Error => {
                update.events.push(ProbeEvent {
                    reason: "Unhealthy",
                    message: format!(
                        "{} probe errored and resulted in unknown state: {output}",
                        kind.as_str()
                    ),
                });
                return update;
            }
            ProbeOutcome::Success => ProbeStatus::Success,
            ProbeOutcome::Warning => {
                update.events.push(ProbeEvent {
                    reason: "ProbeWarning",
                    message: format!("{} probe warning: {output}", kind.as_str()),
                });
                ProbeStatus::Success
            }
            ProbeOutcome::Failure => {
                update.events.push(ProbeEvent {
                    reason: "Unhealthy",
                    message: format!("{} probe failed: {output}", kind.as_str()),
                });
                ProbeStatus::Failure
            }
            ProbeOutcome::Unknown => ProbeStatus::Failure,
        };
        if w.last_result == Some(result) {
            w.result_run += 1;
        } else {
            w.last_result = Some(result);
            w.result_run = 1;
        }
        let threshold = match result {
            ProbeStatus::Failure => w.spec.failure_threshold,
            _ => w.spec.success_threshold,
        };
        if (w.result_run as i64) < i64::from(threshold) {
            return update;
        }
        if w.result != result {
            w.result = result;
            update.changed_to = Some(result);
        }
        if kind != ProbeKind::Readiness && result == ProbeStatus::Failure {
            // The container will be killed; stop probing until a new instance appears.
            w.on_hold = true;
            w.result_run = 0;
        }
        // Once the startup probe succeeds, liveness and readiness start (not before their
        // initial delay).
        if !was_started && self.started() {
            let started_at = self.started_at;
            for w in &mut self.workers {
                if w.kind != ProbeKind::Startup {
                    w.next_due = started_at + w.spec.initial_delay();
                }
            }
        }
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kinds: &[(ProbeKind, ProbeSpec)]) -> ContainerSpec {
        let mut c = ContainerSpec::new("c");
        for (k, p) in kinds {
            match k {
                ProbeKind::Startup => c.startup_probe = Some(*p),
                ProbeKind::Liveness => c.liveness_probe = Some(*p),
                ProbeKind::Readiness => c.readiness_probe = Some(*p),
            }
        }
        c
    }

    fn s(secs: u64) -> Millis {
        Millis(secs * 1000)
    }

    fn outcome_time(i: usize) -> u64 {
        i as u64 * 10
    }

    #[test]
    fn initial_results_and_started_ready() {
        let mut p = ContainerProbes::new(&spec(&[
            (ProbeKind::Liveness, ProbeSpec::default()),
            (ProbeKind::Readiness, ProbeSpec::default()),
        ]));
        assert!(!p.started());
        p.on_container_started(0, s(0));
        assert!(p.started());
        assert!(!p.ready());
        assert_eq!(p.result(ProbeKind::Liveness), Some(ProbeStatus::Success));
        let due = p.take_due(s(0));
        assert_eq!(due.len(), 2);
        let u = p.on_result(ProbeKind::Readiness, ProbeOutcome::Success, "");
        assert_eq!(u.changed_to, Some(ProbeStatus::Success));
        assert!(p.ready());
        assert_eq!(p.next_wake(), Some(s(10)));
    }

    #[test]
    fn initial_delay_and_period() {
        let mut p = ContainerProbes::new(&spec(&[(
            ProbeKind::Liveness,
            ProbeSpec {
                initial_delay_seconds: 5,
                period_seconds: 3,
                ..ProbeSpec::default()
            },
        )]));
        p.on_container_started(0, s(100));
        assert!(p.take_due(s(104)).is_empty());
        assert_eq!(p.next_wake(), Some(s(105)));
        assert_eq!(p.take_due(s(105)).len(), 1);
        // In flight: nothing more until the result.
        assert_eq!(p.next_wake(), None);
        p.on_result(ProbeKind::Liveness, ProbeOutcome::Success, "");
        assert_eq!(p.next_wake(), Some(s(108)));
        // A late result makes the next run due at once.
        assert_eq!(p.take_due(s(108)).len(), 1);
        p.on_result(ProbeKind::Liveness, ProbeOutcome::Success, "");
        assert_eq!(p.next_wake(), Some(s(111)));
    }

    #[test]
    fn failure_threshold_and_on_hold() {
        let mut p = ContainerProbes::new(&spec(&[(ProbeKind::Liveness, ProbeSpec::default())]));
        p.on_container_started(0, s(0));
        for i in 0..2 {
            p.take_due(s(i * 10));
            let u = p.on_result(ProbeKind::Liveness, ProbeOutcome::Failure, "boom");
            assert_eq!(u.changed_to, None);
            assert_eq!(u.events[0].message, "Liveness probe failed: boom");
        }
        assert_eq!(p.kill_reason(), None);
        p.take_due(s(20));
        let u = p.on_result(ProbeKind::Liveness, ProbeOutcome::Unknown, "");
        // Unknown counts as a failure but records no event.
        assert!(u.events.is_empty());
        assert_eq!(u.changed_to, Some(ProbeStatus::Failure));
        assert_eq!(p.kill_reason(), Some(ProbeKind::Liveness));
        // On hold: no more probes for this instance.
        assert_eq!(p.next_wake(), None);
        // A new instance resets everything.
        p.on_container_stopped();
        p.on_container_started(1, s(40));
        assert_eq!(p.kill_reason(), None);
        assert_eq!(p.next_wake(), Some(s(40)));
    }

    #[test]
    fn a_success_in_between_resets_the_run() {
        let mut p = ContainerProbes::new(&spec(&[(ProbeKind::Liveness, ProbeSpec::default())]));
        p.on_container_started(0, s(0));
        for (i, outcome) in [
            ProbeOutcome::Failure,
            ProbeOutcome::Failure,
            ProbeOutcome::Success,
            ProbeOutcome::Failure,
            ProbeOutcome::Failure,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(p.take_due(s(outcome_time(i))).len(), 1);
            p.on_result(ProbeKind::Liveness, outcome, "");
        }
        assert_eq!(p.kill_reason(), None);
    }

    #[test]
    fn startup_gates_the_others() {
        let mut p = ContainerProbes::new(&spec(&[
            (
                ProbeKind::Startup,
                ProbeSpec {
                    period_seconds: 2,
                    failure_threshold: 30,
                    ..ProbeSpec::default()
                },
            ),
            (ProbeKind::Liveness, ProbeSpec::default()),
            (ProbeKind::Readiness, ProbeSpec::default()),
        ]));
        p.on_container_started(0, s(0));
        assert!(!p.started());
        let due = p.take_due(s(0));
        assert_eq!(
            due.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [ProbeKind::Startup]
        );
        p.on_result(ProbeKind::Startup, ProbeOutcome::Failure, "not yet");
        assert_eq!(p.kill_reason(), None);
        assert_eq!(p.next_wake(), Some(s(2)));
        p.take_due(s(2));
        let u = p.on_result(ProbeKind::Startup, ProbeOutcome::Success, "");
        assert_eq!(u.changed_to, Some(ProbeStatus::Success));
        assert!(p.started());
        // Liveness and readiness are due now; startup never runs again.
        let due = p.take_due(s(3));
        assert_eq!(
            due.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [ProbeKind::Liveness, ProbeKind::Readiness]
        );
    }

    #[test]
    fn warning_counts_as_success_and_error_is_discarded() {
        let mut p = ContainerProbes::new(&spec(&[(ProbeKind::Readiness, ProbeSpec::default())]));
        p.on_container_started(0, s(0));
        p.take_due(s(0));
        let u = p.on_result(ProbeKind::Readiness, ProbeOutcome::Error, "exec failed");
        assert_eq!(
            u.events[0].message,
            "Readiness probe errored and resulted in unknown state: exec failed"
        );
        assert!(!p.ready());
        p.take_due(s(10));
        let u = p.on_result(ProbeKind::Readiness, ProbeOutcome::Warning, "redirect");
        assert_eq!(u.events[0].reason, "ProbeWarning");
        assert_eq!(u.events[0].message, "Readiness probe warning: redirect");
        assert!(p.ready());
        // Results nobody asked for are ignored.
        let u = p.on_result(ProbeKind::Readiness, ProbeOutcome::Failure, "x");
        assert_eq!(u, ProbeUpdate::default());
    }

    #[test]
    fn termination_forces_liveness_and_startup_success() {
        let mut p = ContainerProbes::new(&spec(&[
            (ProbeKind::Startup, ProbeSpec::default()),
            (ProbeKind::Liveness, ProbeSpec::default()),
            (ProbeKind::Readiness, ProbeSpec::default()),
        ]));
        p.on_container_started(0, s(0));
        p.on_terminating();
        assert!(p.started());
        let due = p.take_due(s(0));
        assert_eq!(
            due.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [ProbeKind::Readiness]
        );
    }
}
