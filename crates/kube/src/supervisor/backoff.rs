//! kubelet's crash-loop back-off: one `flowcontrol.Backoff` entry per container.
//!
//! Upstream (kubernetes/kubernetes):
//! - `pkg/kubelet/kubelet.go`: `initialCrashLoopBackOff` (10s), `newCrashLoopBackOff`, and the
//!   `HasExpiredFunc` that resets an entry once `eventTime - lastUpdate > 600s`.
//! - `pkg/kubelet/apis/config/v1beta1/defaults.go`: `MaxContainerBackOff` (300s).
//! - `staging/src/k8s.io/client-go/util/flowcontrol/backoff.go`: `Next`, `IsInBackOffSince`,
//!   `GC` (which also uses `HasExpiredFunc`, evaluated at `now`).
//! - `pkg/kubelet/kuberuntime/kuberuntime_manager.go` `doBackOff`: the event time is the
//!   `FinishedAt` of the most recent exited instance; in back-off the container waits with
//!   reason `CrashLoopBackOff`, otherwise `Next` is called and the container starts.
//!
//! Consequences worth knowing (all reproduced): the first restart after the first exit is
//! immediate (there is no entry yet); later waits are 10s, 20s, 40s, 80s, 160s, 300s, 300s...
//! counted from each exit; an instance that ran more than 10 minutes after its (re)start resets
//! the sequence and restarts immediately.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::{DurationError, Millis, format_go_duration, parse_go_duration};

/// `initialCrashLoopBackOff` (pkg/kubelet/kubelet.go).
pub const INITIAL_CRASH_LOOP_BACKOFF: Duration = Duration::from_secs(10);
/// `MaxContainerBackOff` (pkg/kubelet/apis/config/v1beta1/defaults.go).
pub const MAX_CRASH_LOOP_BACKOFF: Duration = Duration::from_secs(300);
/// The `HasExpiredFunc` threshold kubelet installs (pkg/kubelet/kubelet.go): an entry not
/// updated for longer than this is reset.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);
/// The pod annotation that overrides the initial and maximum back-off.
pub const RESTART_BACKOFF_ANNOTATION: &str = "peapod.io/restart-backoff";

/// Initial and maximum crash-loop back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: INITIAL_CRASH_LOOP_BACKOFF,
            max: MAX_CRASH_LOOP_BACKOFF,
        }
    }
}

/// An invalid `peapod.io/restart-backoff` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackoffError {
    #[error(
        "annotation {RESTART_BACKOFF_ANNOTATION}=\"{value}\": expected \"<initial>[,<max>]\" \
         (hint: e.g. \"1s,4s\")"
    )]
    Shape { value: String },
    #[error("annotation {RESTART_BACKOFF_ANNOTATION}=\"{value}\": {source}")]
    Duration {
        value: String,
        #[source]
        source: DurationError,
    },
    #[error("annotation {RESTART_BACKOFF_ANNOTATION}=\"{value}\": durations must be positive")]
    Zero { value: String },
}

impl BackoffConfig {
    /// Parses `"<initial>[,<max>]"` in Go duration syntax (`"1s,4s"`, `"500ms"`, `"2s, 1m"`).
    ///
    /// - With only `<initial>`, the maximum stays 300s (or `<initial>` if that is larger).
    /// - With `<max>` below `<initial>`, the initial value is lowered to the maximum, as kubelet's
    ///   `newCrashLoopBackOff` does for `maxContainerRestartPeriod`.
    /// - Zero is refused: a zero back-off would restart in a tight loop.
    pub fn parse(value: &str) -> Result<BackoffConfig, BackoffError> {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        if parts.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(BackoffError::Shape {
                value: value.to_string(),
            });
        }
        let parse = |s: &str| {
            let d = parse_go_duration(s).map_err(|source| BackoffError::Duration {
                value: value.to_string(),
                source,
            })?;
            if d.is_zero() {
                return Err(BackoffError::Zero {
                    value: value.to_string(),
                });
            }
            Ok(d)
        };
        let initial = parse(parts[0])?;
        let config = match parts.get(1) {
            None => BackoffConfig {
                initial,
                max: MAX_CRASH_LOOP_BACKOFF.max(initial),
            },
            Some(max) => {
                let max = parse(max)?;
                BackoffConfig {
                    initial: initial.min(max),
                    max,
                }
            }
        };
        Ok(config)
    }

    /// The configuration for a pod's annotations: the override when present, else kubelet's.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<BackoffConfig, BackoffError> {
        match annotations.get(RESTART_BACKOFF_ANNOTATION) {
            Some(v) => BackoffConfig::parse(v),
            None => Ok(BackoffConfig::default()),
        }
    }
}

/// One `backoffEntry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffEntry {
    /// The current window.
    pub backoff: Duration,
    /// When `Next` last ran (kubelet's clock at the restart), not the event time.
    pub last_update: Millis,
}

/// The back-off state of one container (kubelet keys it by pod, container name and spec hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Backoff {
    entry: Option<BackoffEntry>,
}

/// kubelet's `HasExpiredFunc`: `eventTime.Sub(lastUpdate) > 600s`.
fn has_expired(event_time: Millis, last_update: Millis) -> bool {
    i128::from(event_time.signed_since(last_update)) > BACKOFF_RESET_AFTER.as_millis() as i128
}

impl Backoff {
    /// The entry, if any.
    pub fn entry(&self) -> Option<BackoffEntry> {
        self.entry
    }

    /// The current window (`Backoff.Get`), zero without an entry.
    pub fn current(&self) -> Duration {
        self.entry.map_or(Duration::ZERO, |e| e.backoff)
    }

    /// `GC`: drops the entry once it has expired at `now`. kubelet runs this every housekeeping
    /// period (2s); it is modelled as continuous.
    pub fn gc(&mut self, now: Millis) {
        if self.entry.is_some_and(|e| has_expired(now, e.last_update)) {
            self.entry = None;
        }
    }

    /// `IsInBackOffSince(key, eventTime)`: `now - eventTime < backoff` unless the entry is
    /// missing or expired.
    pub fn is_in_backoff_since(&mut self, event_time: Millis, now: Millis) -> bool {
        self.gc(now);
        let Some(entry) = self.entry else {
            return false;
        };
        if has_expired(event_time, entry.last_update) {
            return false;
        }
        i128::from(now.signed_since(event_time)) * 1_000_000 < entry.backoff.as_nanos() as i128
    }

    /// `Next(key, eventTime)`: a new or expired entry starts at `initial`, otherwise the window
    /// doubles up to `max`; `lastUpdate` becomes `now`.
    pub fn next(&mut self, config: &BackoffConfig, event_time: Millis, now: Millis) {
        self.gc(now);
        let backoff = match self.entry {
            Some(e) if !has_expired(event_time, e.last_update) => {
                e.backoff.saturating_mul(2).min(config.max)
            }
            _ => config.initial,
        };
        self.entry = Some(BackoffEntry {
            backoff,
            last_update: now,
        });
    }

    /// When a container that exited at `event_time` leaves back-off: at the end of the window,
    /// or earlier when `GC` drops the entry. `None` when it is not in back-off.
    pub fn release_at(&self, event_time: Millis) -> Option<Millis> {
        let entry = self.entry?;
        let window_end = event_time + entry.backoff;
        // GC removes the entry once `now - lastUpdate > 600s`, i.e. 1ms after the threshold.
        let gc_at = entry.last_update + BACKOFF_RESET_AFTER + Duration::from_millis(1);
        Some(window_end.min(gc_at))
    }

    /// kubelet's waiting message: `back-off 20s restarting failed container=app pod=p_ns(uid)`.
    pub fn waiting_message(&self, container: &str, format_pod: &str) -> String {
        format!(
            "back-off {} restarting failed container={container} pod={format_pod}",
            format_go_duration(self.current())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Millis {
        Millis(secs * 1000)
    }

    #[test]
    fn annotation_parsing() {
        let c = BackoffConfig::parse("1s,4s").unwrap();
        assert_eq!(c.initial, Duration::from_secs(1));
        assert_eq!(c.max, Duration::from_secs(4));
        let c = BackoffConfig::parse(" 500ms , 2s ").unwrap();
        assert_eq!(c.initial, Duration::from_millis(500));
        let c = BackoffConfig::parse("2s").unwrap();
        assert_eq!(c.max, MAX_CRASH_LOOP_BACKOFF);
        let c = BackoffConfig::parse("10m").unwrap();
        assert_eq!(c.max, Duration::from_secs(600));
        // max below initial lowers initial (newCrashLoopBackOff).
        let c = BackoffConfig::parse("10s,2s").unwrap();
        assert_eq!(
            (c.initial, c.max),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
        for bad in ["", ",", "1s,", "1s,2s,3s", "1", "0s", "1s,0", "-1s", "fast"] {
            assert!(BackoffConfig::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            BackoffConfig::parse("a,b").unwrap_err().to_string(),
            "annotation peapod.io/restart-backoff=\"a,b\": invalid duration `a`"
        );
        assert_eq!(
            BackoffConfig::parse("1s,2s,3s").unwrap_err().to_string(),
            "annotation peapod.io/restart-backoff=\"1s,2s,3s\": expected \"<initial>[,<max>]\" \
             (hint: e.g. \"1s,4s\")"
        );
        let mut ann = BTreeMap::new();
        assert_eq!(
            BackoffConfig::from_annotations(&ann),
            Ok(BackoffConfig::default())
        );
        ann.insert(RESTART_BACKOFF_ANNOTATION.to_string(), "1s,4s".to_string());
        assert_eq!(
            BackoffConfig::from_annotations(&ann).unwrap().max,
            Duration::from_secs(4)
        );
    }

    #[test]
    fn doubling_sequence_caps_at_max() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::default();
        let mut seen = Vec::new();
        let mut t = s(0);
        for _ in 0..9 {
            b.next(&cfg, t, t);
            seen.push(b.current().as_secs());
            t = t + Duration::from_secs(1);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300, 300]);
    }

    #[test]
    fn in_backoff_window_is_measured_from_the_event() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::default();
        assert!(!b.is_in_backoff_since(s(100), s(100)));
        b.next(&cfg, s(100), s(100));
        assert!(b.is_in_backoff_since(s(100), s(109)));
        assert!(!b.is_in_backoff_since(s(100), s(110)));
        assert_eq!(b.release_at(s(100)), Some(s(110)));
        assert_eq!(
            b.waiting_message("app", "p_default(u)"),
            "back-off 10s restarting failed container=app pod=p_default(u)"
        );
    }

    #[test]
    fn expires_after_ten_minutes_since_last_update() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::default();
        b.next(&cfg, s(0), s(0));
        b.next(&cfg, s(10), s(20));
        assert_eq!(b.current(), Duration::from_secs(20));
        // The instance started at 20s ran until 620s: exactly 600s is not "more than".
        assert!(b.is_in_backoff_since(s(620), s(620)));
        // One more millisecond and the entry is expired: no back-off, and Next resets.
        let ev = Millis(620_001);
        assert!(!b.is_in_backoff_since(ev, ev));
        b.next(&cfg, ev, ev);
        assert_eq!(b.current(), INITIAL_CRASH_LOOP_BACKOFF);
    }

    #[test]
    fn gc_releases_a_long_window_early() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::default();
        for _ in 0..6 {
            b.next(&cfg, s(0), s(0));
        }
        assert_eq!(b.current(), MAX_CRASH_LOOP_BACKOFF);
        // Restarted at 0, exited at 500: the window would end at 800, but GC drops the entry
        // 600s after the last update.
        assert_eq!(b.release_at(s(500)), Some(Millis(600_001)));
        assert!(b.is_in_backoff_since(s(500), s(600)));
        assert!(!b.is_in_backoff_since(s(500), Millis(600_001)));
        assert_eq!(b.entry(), None);
    }
}
