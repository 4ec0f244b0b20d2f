//! The node: this machine as a Kubernetes `Node` object, and the decisions the scheduler and
//! kubelet make about pods on it. On one machine peapod plays both kube-scheduler's filter
//! and kubelet's admission; running pods across machines is Kubernetes' job, with peapod as
//! its OCI runtime.
//!
//! - [`object`]: the Node (name, labels, taints, capacity, allocatable from the node config and
//!   the machine's facts); reading the machine and the files `<storage>/node.json` and
//!   `node-config.yaml` is `peapod_pod::node`'s job, this crate does no I/O;
//! - [`labels`], [`taints`]: `kubectl label` / `kubectl taint` syntax, checks and messages;
//! - [`predicates`]: node selector and affinity, tolerations, soft scores (pure);
//! - [`fit`]: pod requests against allocatable (pure);
//! - [`ports`]: NodePorts, the host ports a pod claims against the admitted pods' (pure);
//! - [`admit`]: what `pod run` asks before creating anything, given the pods already admitted
//!   (the pod layer reads them);
//! - [`eviction`]: NoExecute taints against a running pod's tolerations, clock-injected;
//! - [`schedule`]: a dry-run multi-node placement planner with kube-scheduler's filters and
//!   scores.

pub mod eviction;
pub mod fit;
pub mod labels;
pub mod object;
pub mod ports;
pub mod predicates;
pub mod schedule;
pub mod taints;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use thiserror::Error;

use fit::Amounts;
use predicates::NodeView;

pub use eviction::{Eviction, decide as decide_eviction};
pub use object::{Machine, NodeConfig};

#[derive(Debug, Error)]
pub enum NodeError {
    /// A malformed `node label` / `node taint` argument.
    #[error("{0}")]
    Syntax(String),
    /// The change collides with what is there (needs `--overwrite`).
    #[error("{0}")]
    Conflict(String),
    /// A removal of something absent.
    #[error("{0}")]
    NotFound(String),
    #[error(
        "node config {0}: the format is kubelet's (systemReserved, kubeReserved, evictionHard, maxPods)"
    )]
    Config(String),
    #[error("corrupt node object {0}")]
    Corrupt(String),
    #[error("{op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A planner input that is not a Node, Pod or Deployment, or is malformed.
    #[error("{0}")]
    Input(String),
}

impl NodeError {
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        NodeError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why `pod run` refuses a pod on this node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdmitError {
    /// A scheduler filter failed: the scheduler's one-line `FitError` message, e.g.
    /// `0/1 nodes are available: 1 node(s) had untolerated taint {env_role: yes}.`
    #[error("{0}")]
    Unschedulable(String),
    /// kubelet's resource admission: `OutOfcpu: Node didn't have enough resource: ...`.
    #[error("{reason}: {message}")]
    OutOf { reason: String, message: String },
}

/// kube-scheduler's filter reasons (`framework/plugins/*`).
pub mod reasons {
    pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
    pub const NODE_NAME: &str = "node(s) didn't match the requested node name";
    pub const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";

    /// TaintToleration's reason for the first untolerated taint.
    pub fn untolerated(taint: &k8s_openapi::api::core::v1::Taint) -> String {
        format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        )
    }

    /// `FitError.Error()`: `0/N nodes are available: ` and the reasons with their node
    /// counts, each `"<count> <reason>"`, sorted as strings and joined with `, `, then `.`.
    pub fn fit_error(nodes: usize, counts: &std::collections::BTreeMap<String, usize>) -> String {
        let mut items: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        items.sort();
        if items.is_empty() {
            format!("0/{nodes} nodes are available.")
        } else {
            format!("0/{nodes} nodes are available: {}.", items.join(", "))
        }
    }
}

/// The taint `node.kubernetes.io/unschedulable:NoSchedule` a cordoned node carries; a pod
/// tolerating it passes NodeUnschedulable.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// A supervisor clock reading as an API timestamp.
pub fn timestamp(m: crate::supervisor::Millis) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_millisecond(i64::try_from(m.0).unwrap_or(0))
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

pub(crate) fn labels_of(node: &Node) -> std::collections::BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

pub(crate) fn taints_of(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// The filters kube-scheduler runs for one pod on one node, in its default plugin order
/// (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodeResourcesFit). Returns
/// the reasons of the first failing filter (NodeResourcesFit may give several), or none.
pub fn filter(node: &Node, pod: &Pod, allocatable: &Amounts, used: &Amounts) -> Vec<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let name = node.metadata.name.clone().unwrap_or_default();
    let labels = labels_of(node);
    let taints = taints_of(node);
    let view = NodeView {
        name: &name,
        labels: &labels,
        taints: &taints,
    };
    let cordon = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: taints::NO_SCHEDULE.into(),
        ..Default::default()
    };
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        && !predicates::tolerated(&tolerations, &cordon)
    {
        return vec![reasons::UNSCHEDULABLE.into()];
    }
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty())
        && n != name
    {
        return vec![reasons::NODE_NAME.into()];
    }
    if let Some(t) = predicates::untolerated_taint(&tolerations, &taints) {
        return vec![reasons::untolerated(t)];
    }
    if !predicates::required_affinity_matches(&spec, view) {
        return vec![reasons::NODE_AFFINITY.into()];
    }
    fit::fits(&fit::pod_requests(&spec), allocatable, used)
        .iter()
        .map(fit::Insufficient::scheduler_reason)
        .collect()
}

/// Requests of the pods already admitted on the node (their count in `pods`).
pub fn used_by(pods: &[Pod]) -> Amounts {
    let mut used = Amounts::default();
    for p in pods {
        used.add(&fit::pod_requests(&p.spec.clone().unwrap_or_default()));
    }
    used
}

/// Admission of `pod` on this node at `pod run`, given the pods already running on it:
/// the scheduler's filters for node name, cordon, taints (NoSchedule and NoExecute, since
/// peapod replaces both the scheduler and kubelet) and node selector/affinity, each refused
/// with the scheduler's message; then kubelet's resource fit (`OutOfcpu`, `OutOfmemory`,
/// `OutOfephemeral-storage`, `OutOfpods`). PreferNoSchedule taints and preferred affinity
/// never refuse: they come back as warnings.
pub fn admit(node: &Node, pod: &Pod, running: &[Pod]) -> Result<Vec<String>, AdmitError> {
    let allocatable = object::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
    let used = used_by(running);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut pre = filter(node, pod, &allocatable, &Amounts::default());
    // The fit part is kubelet's: check it below with the real usage.
    pre.retain(|r| !r.starts_with("Insufficient ") && r != "Too many pods");
    if let Some(r) = pre.into_iter().next() {
        return Err(AdmitError::Unschedulable(reasons::fit_error(
            1,
            &std::collections::BTreeMap::from([(r, 1)]),
        )));
    }
    // NodePorts: a host port another admitted pod holds.
    if ports::first_conflict(pod, running).is_some() {
        return Err(AdmitError::Unschedulable(reasons::fit_error(
            1,
            &std::collections::BTreeMap::from([(ports::REASON.to_string(), 1)]),
        )));
    }
    if let Some(i) = fit::fits(&fit::pod_requests(&spec), &allocatable, &used).first() {
        return Err(AdmitError::OutOf {
            reason: i.kubelet_reason(),
            message: i.kubelet_message(),
        });
    }
    let mut warnings = Vec::new();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let soft: Vec<String> = taints_of(node)
        .iter()
        .filter(|t| t.effect == taints::PREFER_NO_SCHEDULE)
        .filter(|t| {
            predicates::intolerable_prefer_no_schedule(&tolerations, std::slice::from_ref(t)) > 0
        })
        .map(taints::to_string)
        .collect();
    if !soft.is_empty() {
        warnings.push(format!(
            "the node has PreferNoSchedule taint(s) the pod does not tolerate ({}): admitted, \
             as this node is the only one",
            soft.join(", ")
        ));
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let labels = labels_of(node);
    let taints = taints_of(node);
    let view = NodeView {
        name: &name,
        labels: &labels,
        taints: &taints,
    };
    let total: i64 = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .map(|p| i64::from(p.weight))
        .sum();
    let got = predicates::preferred_affinity_score(&spec, view);
    if got < total {
        warnings.push(format!(
            "the node matches preferred node affinity terms of weight {got} out of {total}: \
             admitted, as this node is the only one"
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests;
