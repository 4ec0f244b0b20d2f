//! The pure half of peapod's per-pod supervisor: kubelet's restart, back-off, probe and status
//! logic as a state machine with an injected clock. No syscalls, processes, I/O or clock reads.
//!
//! ```text
//!   executor (side effects)                        PodMachine (this module)
//!   ───────────────────────                        ────────────────────────
//!   sandbox ready ───────────── Event::SandboxReady ──▶
//!                 ◀── Action::Start{container, instance}
//!   spawn, report ─ Event::ContainerStarted / StartFailed ──▶
//!   reap (waitpid) ─ Event::ContainerExited{exit_code, oom_killed, at} ──▶
//!                 ◀── Action::RunProbe{container, instance, kind, timeout}
//!   exec/http/tcp ─ Event::ProbeResult{..., result, output} ──▶
//!                 ◀── Action::Kill{container, instance, grace, reason}
//!                 ◀── Action::ScheduleWake{at}      (one timer; the latest replaces it)
//!   timer fires ──── Event::Tick ──▶
//!   pod stop/rm ──── Event::StopRequested{grace} ──▶
//!                 ◀── Action::RecordEvent(..)       (append to the pod's events)
//!                 ◀── Action::PodFinished{phase}    (tear the sandbox down)
//! ```
//!
//! After every `handle` the executor persists [`PodMachine::status`] (atomically) and can
//! render [`PodMachine::row`] for `pod ls`.
//!
//! Modules: [`clock`] (the `Millis` time value, Go duration text), [`spec`] (the plain pod
//! description), [`backoff`] (crash-loop back-off and the `peapod.io/restart-backoff`
//! annotation), [`probe`] (probe workers), [`machine`] (the pod state machine), [`status`]
//! (phase, conditions, `kubectl get pods` columns).

pub mod backoff;
pub mod clock;
pub mod machine;
pub mod probe;
pub mod spec;
pub mod status;

#[cfg(test)]
mod sim_tests;

pub use backoff::{BackoffConfig, BackoffError, RESTART_BACKOFF_ANNOTATION};
pub use clock::Millis;
pub use machine::{
    Action, Event, EventRecord, EventType, KillReason, PodMachine, StartStage, on_event,
    record_event,
};
pub use probe::{ProbeOutcome, ProbeStatus};
pub use spec::{ContainerSpec, PodSpec, ProbeKind, ProbeSpec, RestartPolicy, SpecError};
pub use status::{ContainerState, ContainerStatus, PodPhase, PodRow, PodStatus, Terminated};
