//! The supervisor's status in the Kubernetes API's shape (`v1.PodStatus`), for `pod inspect`
//! and `pod ls -o json|yaml`: RFC 3339 times, `state.terminated`, condition strings.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use peapod_kube::supervisor::status::{ContainerState, ContainerStatus, PodStatus, Terminated};
use peapod_kube::supervisor::{EventRecord, Millis};

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
