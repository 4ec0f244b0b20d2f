//! The supervisor's status in the Kubernetes API's shape (`v1.PodStatus`), for `pod inspect`,
//! `pod ls -o json|yaml` and `status.json`: RFC 3339 times, `state.terminated`, condition strings.
//!
//! # `status.json`
//!
//! `<root>/pods/<name>/status.json` is rewritten by the pod's supervisor after every change,
//! atomically (a temporary file renamed over it) and 0600. It is one JSON object:
//!
//! ```text
//! {
//!   "schemaVersion": 2,
//!   "status":     v1.PodStatus, as `pod inspect` shows it (phase, conditions, podIP(s),
//!                 containerStatuses, reason/message when evicted, ...)
//!   "events":     [v1.Event-like objects, as in `pod inspect`'s `events`],
//!   "supervisor": {"pid", "startTime" (field 22 of /proc/<pid>/stat), "pausePid", "done",
//!                  "message" (why the pod ended abnormally, when it did)},
//!   "podIPs":     ["10.88.0.5"] (empty while the network is not set up),
//!   "evicted":    the taint manager's message, when a NoExecute taint evicted the pod,
//!   "machine":    {"state": ..., "events": [...]}: the supervisor state machine's snapshot,
//!                 peapod's own (no contract: its shape changes with schemaVersion)
//! }
//! ```
//!
//! `schemaVersion` goes up when a field changes meaning or goes away, or the machine snapshot
//! changes shape; a new optional field does not bump it (readers ignore fields they do not
//! know). A file without it is version 1, the record of peapod before versioning (the
//! machine's fields at the top level), and still loads, so a pod started by an older peapod
//! stays manageable after an upgrade; a version newer than [`crate::SCHEMA_VERSION`] is
//! refused with an error that names the file and the version.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use peapod_kube::supervisor::status::{ContainerState, ContainerStatus, PodStatus, Terminated};
use peapod_kube::supervisor::{EventRecord, Millis};

use crate::Record;

/// RFC 3339 with seconds, as the API server writes `metav1.Time`.
pub fn time(m: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.0);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What the status says about one container beyond the machine's view.
struct Ids<'a> {
    /// The first 8 characters of the pod UID: container IDs are unique across pods.
    pod: &'a str,
    image: String,
}

/// `containerID` of instance `n`: `<runtime>://<id>`, as kubelet reports the CRI's.
fn container_id(ids: &Ids<'_>, name: &str, n: u32) -> String {
    format!("peapod://{}-{name}-{n}", ids.pod)
}

fn terminated(t: &Terminated, id: String) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "startedAt": time(t.started_at),
        "finishedAt": time(t.finished_at),
        "containerID": id,
    });
    if !t.message.is_empty() {
        v["message"] = t.message.clone().into();
    }
    v
}

fn container(c: &ContainerStatus, ids: &Ids<'_>) -> Value {
    let state = match &c.state {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({ "reason": reason });
            if !message.is_empty() {
                w["message"] = message.clone().into();
            }
            json!({ "waiting": w })
        }
        ContainerState::Running { started_at } => {
            json!({ "running": { "startedAt": time(*started_at) } })
        }
        ContainerState::Terminated(t) => {
            json!({ "terminated": terminated(t, container_id(ids, &c.name, c.restart_count)) })
        }
    };
    let last = match &c.last_state {
        Some(t) => json!({ "terminated": terminated(
            t,
            container_id(ids, &c.name, c.restart_count.saturating_sub(1))
        ) }),
        None => json!({}),
    };
    let mut v = json!({
        "name": c.name,
        "image": ids.image,
        "state": state,
        "lastState": last,
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
    });
    if matches!(c.state, ContainerState::Running { .. }) {
        v["containerID"] = container_id(ids, &c.name, c.restart_count).into();
    }
    v
}

/// `v1.PodStatus` plus QoS class, for `pod` (its UID and container images).
pub fn pod_status(s: &PodStatus, qos: &str, pod: &Pod) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let uid = &uid[..uid.len().min(8)];
    let spec = pod.spec.clone().unwrap_or_default();
    let image_of = |name: &str| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let status = |c: &ContainerStatus| {
        container(
            c,
            &Ids {
                pod: uid,
                image: image_of(&c.name),
            },
        )
    };
    let conditions: Vec<Value> = s
        .conditions
        .iter()
        .map(|c| {
            let mut v = json!({
                "type": c.type_.as_str(),
                "status": if c.status { "True" } else { "False" },
                "lastTransitionTime": time(c.last_transition_time),
            });
            if let Some(r) = &c.reason {
                v["reason"] = r.clone().into();
            }
            if let Some(m) = &c.message {
                v["message"] = m.clone().into();
            }
            v
        })
        .collect();
    let mut v = json!({
        "phase": s.phase.as_str(),
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "qosClass": qos,
        "containerStatuses": s.container_statuses.iter().map(status).collect::<Vec<_>>(),
    });
    if !s.init_container_statuses.is_empty() {
        v["initContainerStatuses"] = s
            .init_container_statuses
            .iter()
            .map(status)
            .collect::<Vec<_>>()
            .into();
    }
    if let Some(t) = s.start_time {
        v["startTime"] = time(t).into();
    }
    v
}

/// The pod's `status` as `pod inspect` shows it and `status.json` holds it: [`pod_status`] of
/// the record's machine, with the eviction and the pod's addresses.
pub fn api_status(rec: &Record, pod: &Pod, qos: &str) -> Value {
    let mut st = pod_status(&rec.machine.status(), qos, pod);
    if let Some(m) = &rec.evicted {
        use peapod_kube::node::eviction::{DISRUPTION_REASON, EVICTED_REASON};
        st["phase"] = "Failed".into();
        st["reason"] = EVICTED_REASON.into();
        st["message"] = m.clone().into();
        if let Some(c) = st["conditions"].as_array_mut() {
            c.push(json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": DISRUPTION_REASON,
                "message": m,
            }));
        }
    }
    // No podIP while the pod's network is not set up (a failed or pending ADD).
    if rec.pod_ips.is_empty()
        && let Some(o) = st.as_object_mut()
    {
        o.remove("podIP");
        o.remove("podIPs");
    }
    if let Some(ip) = rec.pod_ips.first() {
        st["podIP"] = ip.clone().into();
        st["podIPs"] = rec.pod_ips.iter().map(|ip| json!({ "ip": ip })).collect();
    }
    st
}

/// Events as `kubectl get events` shows them.
pub fn events(evs: &[EventRecord]) -> Value {
    evs.iter()
        .map(|e| {
            json!({
                "type": format!("{:?}", e.type_),
                "reason": e.reason,
                "message": e.message,
                "involvedObject": { "fieldPath": e.container.as_ref().map(|c| format!("spec.containers{{{c}}}")) },
                "count": e.count,
                "firstTimestamp": time(e.first_at()),
                "lastTimestamp": time(e.at),
            })
        })
        .collect::<Vec<_>>()
        .into()
}
