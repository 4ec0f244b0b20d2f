//! NoExecute taint eviction, as the taint-eviction controller decides it
//! (`pkg/controller/tainteviction`), pure and clock-injected so the per-pod supervisor can
//! call it whenever the node object changes and on its timer:
//!
//! - no NoExecute taint on the node: [`Eviction::Keep`] (a pending eviction is cancelled,
//!   which is how removing the taint in time saves the pod);
//! - a NoExecute taint no toleration tolerates: [`Eviction::Now`];
//! - every NoExecute taint tolerated: the tolerations used (the first matching toleration of
//!   each taint, as `GetMatchingTolerations`) give the minimum `tolerationSeconds`; any value
//!   ≤ 0 means now, none set means forever ([`Eviction::Keep`]), otherwise
//!   [`Eviction::At`] `start + seconds`.
//!
//! `start` is when the taint manager would have started the timer: the latest of the pod's
//! start and the earliest `timeAdded` among the NoExecute taints (a taint without
//! `timeAdded` counts from `now`). Deriving it from the stored taints keeps the decision
//! stateless: a restarted supervisor reaches the same deadline.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::predicates::tolerates;
use super::taints::{NO_EXECUTE, to_string};
use crate::supervisor::Millis;

/// `status.reason` of a pod evicted by a NoExecute taint (what `pod ls` shows).
pub const EVICTED_REASON: &str = "Evicted";
/// The `DisruptionTarget` condition's reason the taint manager sets.
pub const DISRUPTION_REASON: &str = "DeletionByTaintManager";
/// The event reason the taint manager records (`Marking for deletion Pod ns/name`).
pub const EVENT_REASON: &str = "TaintManagerEviction";

/// What to do with a running pod given the node's taints.
#[derive(Debug, Clone, PartialEq)]
pub enum Eviction {
    /// Keep running (no NoExecute taint, or tolerated forever); cancels a pending eviction.
    Keep,
    /// Stop the pod now; `taint` is the first taint responsible.
    Now { taint: Taint },
    /// Stop the pod at `at` unless a later decision says otherwise.
    At { at: Millis, taint: Taint },
}

fn time_added(t: &Taint) -> Option<Millis> {
    t.time_added
        .as_ref()
        .map(|t| Millis(u64::try_from(t.0.as_millisecond()).unwrap_or(0)))
}

/// Decides a running pod's fate under the node's taints (see the module documentation).
/// `pod_started` is when the pod was admitted on this node; `now` is the caller's clock.
pub fn decide(
    tolerations: &[Toleration],
    taints: &[Taint],
    pod_started: Millis,
    now: Millis,
) -> Eviction {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == NO_EXECUTE).collect();
    if no_execute.is_empty() {
        return Eviction::Keep;
    }
    let mut used = Vec::new();
    for taint in &no_execute {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push((t, *taint)),
            None => {
                return Eviction::Now {
                    taint: (*taint).clone(),
                };
            }
        }
    }
    let mut min: Option<(i64, &Taint)> = None;
    for (t, taint) in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Eviction::Now {
                    taint: taint.clone(),
                };
            }
            if min.is_none_or(|(m, _)| s < m) {
                min = Some((s, taint));
            }
        }
    }
    let Some((seconds, taint)) = min else {
        return Eviction::Keep;
    };
    let earliest = no_execute
        .iter()
        .map(|t| time_added(t).unwrap_or(now))
        .min()
        .unwrap_or(now);
    let start = earliest.max(pod_started);
    let at = Millis(
        start
            .0
            .saturating_add(u64::try_from(seconds).unwrap_or(0).saturating_mul(1000)),
    );
    if at <= now {
        Eviction::Now {
            taint: taint.clone(),
        }
    } else {
        Eviction::At {
            at,
            taint: taint.clone(),
        }
    }
}

/// The message stored with [`EVICTED_REASON`]: the taint manager's `DisruptionTarget`
/// message, naming the taint.
pub fn message(taint: &Taint) -> String {
    format!(
        "Taint manager: deleting due to NoExecute taint {}",
        to_string(taint)
    )
}

/// The taint manager's event message for the pod.
pub fn event_message(namespace: &str, name: &str) -> String {
    format!("Marking for deletion Pod {namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn taint(key: &str, effect: &str, added_ms: Option<i64>) -> Taint {
        Taint {
            key: key.into(),
            value: None,
            effect: effect.into(),
            time_added: added_ms.map(|ms| Time(Timestamp::from_millisecond(ms).unwrap())),
        }
    }

    fn tol(key: &str, effect: Option<&str>, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: effect.map(str::to_string),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn timing() {
        let now = Millis(100_000);
        let t = taint("maint", NO_EXECUTE, Some(90_000));
        // No NoExecute taint: keep (and cancel).
        assert_eq!(
            decide(&[], &[taint("x", "NoSchedule", None)], Millis(0), now),
            Eviction::Keep
        );
        assert_eq!(decide(&[], &[], Millis(0), now), Eviction::Keep);
        // Untolerated: now.
        assert_eq!(
            decide(&[], std::slice::from_ref(&t), Millis(0), now),
            Eviction::Now { taint: t.clone() }
        );
        // Tolerated forever.
        assert_eq!(
            decide(
                &[tol("maint", None, None)],
                std::slice::from_ref(&t),
                Millis(0),
                now
            ),
            Eviction::Keep
        );
        // Zero or negative seconds: now.
        for s in [0, -5] {
            assert!(matches!(
                decide(
                    &[tol("maint", Some(NO_EXECUTE), Some(s))],
                    std::slice::from_ref(&t),
                    Millis(0),
                    now
                ),
                Eviction::Now { .. }
            ));
        }
        // 30 s from timeAdded (90 s): at 120 s.
        assert_eq!(
            decide(
                &[tol("maint", Some(NO_EXECUTE), Some(30))],
                std::slice::from_ref(&t),
                Millis(0),
                now
            ),
            Eviction::At {
                at: Millis(120_000),
                taint: t.clone()
            }
        );
        // Pod started after the taint: the clock starts with the pod.
        assert_eq!(
            decide(
                &[tol("maint", None, Some(30))],
                std::slice::from_ref(&t),
                Millis(95_000),
                now
            ),
            Eviction::At {
                at: Millis(125_000),
                taint: t.clone()
            }
        );
        // Deadline passed: now.
        assert!(matches!(
            decide(
                &[tol("maint", None, Some(5))],
                std::slice::from_ref(&t),
                Millis(0),
                now
            ),
            Eviction::Now { .. }
        ));
        // No timeAdded: from now.
        let bare = taint("maint", NO_EXECUTE, None);
        assert_eq!(
            decide(
                &[tol("maint", None, Some(2))],
                std::slice::from_ref(&bare),
                Millis(0),
                now
            ),
            Eviction::At {
                at: Millis(102_000),
                taint: bare.clone()
            }
        );
    }

    #[test]
    fn minimum_among_used_tolerations() {
        let now = Millis(0);
        let a = taint("a", NO_EXECUTE, Some(0));
        let b = taint("b", NO_EXECUTE, Some(0));
        let tols = [tol("a", None, Some(60)), tol("b", None, Some(20))];
        assert_eq!(
            decide(&tols, &[a.clone(), b.clone()], now, now),
            Eviction::At {
                at: Millis(20_000),
                taint: b.clone()
            }
        );
        // One taint tolerated forever, the other for 60 s: 60 s.
        let tols = [tol("a", None, Some(60)), tol("b", None, None)];
        assert!(matches!(
            decide(&tols, &[a.clone(), b.clone()], now, now),
            Eviction::At {
                at: Millis(60_000),
                ..
            }
        ));
        // One taint not tolerated at all: now.
        assert!(
            matches!(decide(&tols[..1], &[a, b.clone()], now, now), Eviction::Now { taint } if taint == b)
        );
    }

    #[test]
    fn messages() {
        let mut t = taint("maint", NO_EXECUTE, None);
        t.value = Some("yes".into());
        assert_eq!(
            message(&t),
            "Taint manager: deleting due to NoExecute taint maint=yes:NoExecute"
        );
        assert_eq!(
            event_message("default", "web"),
            "Marking for deletion Pod default/web"
        );
        assert_eq!(EVICTED_REASON, "Evicted");
    }
}
